//! Counters for `GET /metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::error::Code;

/// Upper bounds (µs) of the commit latency histogram.
const BUCKETS_US: [u64; 10] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 100_000, 500_000, 2_000_000,
];

pub struct Metrics {
    pub checkouts: AtomicU64,
    pub replays: AtomicU64,
    pub refunds: AtomicU64,
    pub members_added: AtomicU64,
    refusals: [AtomicU64; Code::ALL.len()],
    pub card_reads: [AtomicU64; 3],
    commit_buckets: [AtomicU64; BUCKETS_US.len()],
    commit_count: AtomicU64,
    commit_sum_us: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            checkouts: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            refunds: AtomicU64::new(0),
            members_added: AtomicU64::new(0),
            refusals: std::array::from_fn(|_| AtomicU64::new(0)),
            card_reads: Default::default(),
            commit_buckets: Default::default(),
            commit_count: AtomicU64::new(0),
            commit_sum_us: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn refusal(&self, code: Code) {
        if let Some(i) = Code::ALL.iter().position(|c| *c == code) {
            self.refusals[i].fetch_add(1, Relaxed);
        }
    }

    pub fn commit_took(&self, d: Duration) {
        let us = d.as_micros() as u64;
        for (b, bound) in self.commit_buckets.iter().zip(BUCKETS_US) {
            if us <= bound {
                b.fetch_add(1, Relaxed);
            }
        }
        self.commit_count.fetch_add(1, Relaxed);
        self.commit_sum_us.fetch_add(us, Relaxed);
    }

    /// Renders every metric; `gauges` are (name, help, value) read at scrape time.
    pub fn render(&self, gauges: &[(&str, &str, i64)]) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "loyaltyd_checkouts_total",
            "Checkouts committed.",
            self.checkouts.load(Relaxed),
        );
        counter(
            "loyaltyd_checkout_replays_total",
            "Checkouts answered from an idempotency key.",
            self.replays.load(Relaxed),
        );
        counter(
            "loyaltyd_refunds_total",
            "Refunds committed.",
            self.refunds.load(Relaxed),
        );
        counter(
            "loyaltyd_members_added_total",
            "Members enrolled here.",
            self.members_added.load(Relaxed),
        );
        let _ = writeln!(
            s,
            "# HELP loyaltyd_refusals_total Requests refused, by error code.\n# TYPE loyaltyd_refusals_total counter"
        );
        for (c, n) in Code::ALL.iter().zip(&self.refusals) {
            let _ = writeln!(
                s,
                "loyaltyd_refusals_total{{code=\"{}\"}} {}",
                c.as_str(),
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP loyaltyd_card_reads_total Card reads, by outcome.\n# TYPE loyaltyd_card_reads_total counter"
        );
        for (status, n) in ["member", "unknown", "blocked"].iter().zip(&self.card_reads) {
            let _ = writeln!(
                s,
                "loyaltyd_card_reads_total{{status=\"{status}\"}} {}",
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP loyaltyd_commit_seconds Checkout commit latency, durable.\n# TYPE loyaltyd_commit_seconds histogram"
        );
        for (b, bound) in self.commit_buckets.iter().zip(BUCKETS_US) {
            let _ = writeln!(
                s,
                "loyaltyd_commit_seconds_bucket{{le=\"{}\"}} {}",
                bound as f64 / 1e6,
                b.load(Relaxed)
            );
        }
        let count = self.commit_count.load(Relaxed);
        let _ = writeln!(s, "loyaltyd_commit_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            s,
            "loyaltyd_commit_seconds_sum {}",
            self.commit_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "loyaltyd_commit_seconds_count {count}");
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        s
    }
}
