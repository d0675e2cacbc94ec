//! Power cuts under the real daemon. Its data dir is on a FUSE filesystem of the test's
//! own (tests/support/powercut) that keeps every write in memory until it is made
//! durable and, on a cut, drops what was not; the daemon is then killed with SIGKILL
//! and started again, as after a power cut, with a new boot id.
//!
//! `powercut_drill`: cycles of commits from POS clients (with same-key retries, at once
//! and after a client timeout) cut at a random instant, sometimes a second cut during
//! the next start-up; then the daemon must start by itself and every acknowledged sale
//! must replay with the same answer, every balance must be the sum of the sales present,
//! the state must equal a rebuild from the journal, and the journal must verify.
//! LOYALTYD_POWERCUT_CYCLES (default 100), LOYALTYD_POWERCUT_SEED (printed) to replay a
//! run's decisions; README, "Tests", has the long mode.
//!
//! `powercut_replay_waits_for_the_fsync`: a retry answered while the original commit is
//! still in its (delayed) fsync is an acknowledgement: a cut right after it must not lose
//! the sale.

#[path = "support/powercut/mod.rs"]
mod powercut_fs;
#[path = "support/powercut_daemon.rs"]
mod terminal;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use powercut_fs::{copy_file, copy_tree, sync_dir, CutMode, PowerCutFs, Rng};
use serde_json::{json, Value};
use terminal::{Answer, Paths, Pos, Serve};

const CARDS: usize = 6;
const CLIENTS: usize = 4;
/// A client gives up waiting and sends the same key again (a till's retry).
const CLIENT_TIMEOUT: Duration = Duration::from_millis(150);
/// Longest a cycle's commits run before the cut.
const LOAD_MS: u64 = 600;
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Old acknowledged sales replayed per cycle (besides all of the cycle's own).
const OLD_SAMPLE: usize = 150;
/// Every this many cycles the daemon is stopped cleanly and its whole state dump
/// compared with a rebuild's.
const DUMP_EVERY: u64 = 5;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn can_run(test: &str) -> bool {
    if std::env::var("LOYALTYD_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty()) {
        eprintln!("\n*** SKIPPED {test}: not under an emulator (LOYALTYD_TEST_RUNNER is set) ***\n");
        return false;
    }
    powercut_fs::available_or_skip(test, terminal::unavailable())
}

fn card(i: usize) -> String {
    format!("PC{i:06}")
}

/// What a receipt says that a replay must repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Receipt {
    tx_id: String,
    total: i64,
    points: i64,
}

impl Receipt {
    fn of(v: &Value) -> Option<Receipt> {
        Some(Receipt {
            tx_id: v["tx_id"].as_str()?.to_string(),
            total: v["total"].as_i64()?,
            points: v["points_earned"].as_i64()?,
        })
    }
}

/// One idempotency key a client sent, and the 2xx answer it got, if any.
#[derive(Clone, Debug)]
struct Sale {
    key: String,
    card: usize,
    body: String,
    acked: Option<Receipt>,
    /// Which request got the 2xx: the first, its concurrent twin, a retry.
    acked_by: &'static str,
    acked_at: Option<Instant>,
}

fn sale_body(card_no: usize, rng: &mut Rng) -> String {
    let mut lines = vec![json!({"sku": "rice", "category": "grocery", "qty": 1 + rng.below(3), "unit_price": 3450})];
    let oil = rng.below(3);
    if oil > 0 {
        lines.push(json!({"sku": "oil", "category": "grocery", "qty": oil, "unit_price": 5990}));
    }
    json!({"card": card(card_no), "lines": lines}).to_string()
}

#[derive(Default)]
struct Stats {
    cycles: u64,
    cuts_by_mode: BTreeMap<&'static str, u64>,
    cuts_by_phase: BTreeMap<&'static str, u64>,
    sales_sent: u64,
    acked: u64,
    acked_checked: u64,
    landed_unacked: u64,
    lost_unacked: u64,
    doubles: u64,
    timeouts: u64,
    rebuild_checks: u64,
    /// Full state dumps compared with a rebuild's (after a clean stop).
    dump_checks: u64,
    epochs: u64,
    /// What the start-ups after a cut did, from their logs.
    startups: BTreeMap<&'static str, u64>,
}

/// What the clients of one cycle sent, and what they saw that was wrong.
struct Load {
    sales: Vec<Sale>,
    wrong: Vec<String>,
    doubles: u64,
    timeouts: u64,
}

/// One client thread until the daemon is gone: new keys, some sent twice at once, each
/// sent again after a client timeout (at most 3 times).
fn client(url: &str, tag: &str, mut rng: Rng, cut: &AtomicBool, sent: &AtomicU64) -> Load {
    let (pos, twin) = (Pos::new(url, CLIENT_TIMEOUT), Pos::new(url, CLIENT_TIMEOUT));
    let mut load = Load {
        sales: Vec::new(),
        wrong: Vec::new(),
        doubles: 0,
        timeouts: 0,
    };
    for i in 0.. {
        let card_no = rng.below(CARDS as u64) as usize;
        let mut sale = Sale {
            key: format!("{tag}-{i}"),
            card: card_no,
            body: sale_body(card_no, &mut rng),
            acked: None,
            acked_by: "",
            acked_at: None,
        };
        let send = |p: &Pos| p.post("/v1/checkout/commit", &sale.body, Some(&sale.key));
        sent.fetch_add(1, Ordering::SeqCst);
        let mut answers = Vec::new();
        if rng.below(5) == 0 {
            load.doubles += 1;
            thread::scope(|s| {
                let other = s.spawn(|| send(&twin));
                answers.push(("the first of two concurrent requests", send(&pos)));
                answers.push(("the second of two concurrent requests", other.join().unwrap()));
            });
        } else {
            answers.push(("the request", send(&pos)));
        }
        for _ in 0..3 {
            if !matches!(answers.last(), Some((_, Answer::Timeout))) {
                break;
            }
            load.timeouts += 1;
            answers.push(("a retry after a client timeout", send(&pos)));
        }
        let mut gone = false;
        for (by, a) in &answers {
            match a {
                Answer::Ok(200, v) => match (Receipt::of(v), &sale.acked) {
                    (Some(r), Some(first)) if &r != first => load
                        .wrong
                        .push(format!("{}: two different receipts, {first:?} and {r:?}", sale.key)),
                    (Some(r), None) => {
                        sale.acked = Some(r);
                        sale.acked_by = by;
                        sale.acked_at = Some(Instant::now());
                    }
                    (Some(_), Some(_)) => {}
                    (None, _) => load
                        .wrong
                        .push(format!("{}: a receipt without tx_id/total/points: {v}", sale.key)),
                },
                Answer::Ok(s, v) => load.wrong.push(format!("{}: answered {s}: {v}", sale.key)),
                // A fault: expected once the power is gone, not before.
                Answer::Refused(s, text) if *s >= 500 => {
                    if !cut.load(Ordering::SeqCst) {
                        load.wrong
                            .push(format!("{}: {s} before any power cut: {text}", sale.key));
                    }
                    gone = true;
                }
                Answer::Refused(s, text) => load.wrong.push(format!("{}: refused {s}: {text}", sale.key)),
                Answer::Timeout => {}
                Answer::Gone(_) => gone = true,
            }
        }
        load.sales.push(sale);
        if gone || (cut.load(Ordering::SeqCst) && answers.iter().all(|(_, a)| matches!(a, Answer::Timeout))) {
            break;
        }
    }
    load
}

struct Drill {
    fs: PowerCutFs,
    work: tempfile::TempDir,
    paths: Paths,
    rng: Rng,
    seed: u64,
    epoch: u64,
    serve: Option<(Serve, String)>,
    /// Every key known to be in the journal, with its receipt.
    ledger: Vec<(Sale, Receipt)>,
    /// Days with sales or enrolments: the daily reports to compare.
    days: BTreeSet<String>,
    boots: u64,
    startup_us: u64,
    /// What this cycle did, for its failures.
    context: String,
    cut_at: Option<Instant>,
    stats: Stats,
    failures: Vec<String>,
}

impl Drill {
    fn new(seed: u64) -> Drill {
        let fs = PowerCutFs::mount().expect("mount the power-cut filesystem");
        let work = tempfile::tempdir().unwrap();
        let paths = Paths::new(fs.path().join("data-0"), work.path());
        Drill {
            fs,
            work,
            paths,
            rng: Rng::new(seed),
            seed,
            epoch: 0,
            serve: None,
            ledger: Vec::new(),
            days: BTreeSet::new(),
            boots: 0,
            startup_us: 300_000,
            context: String::new(),
            cut_at: None,
            stats: Stats::default(),
            failures: Vec::new(),
        }
    }

    fn spawn(&mut self) -> Serve {
        self.boots += 1;
        Serve::spawn(&self.paths, &self.work.path().join(format!("boot-{}", self.boots)))
    }

    /// A fresh data dir, made and made durable as an installation would, with CARDS
    /// members enrolled.
    fn new_epoch(&mut self) {
        if let Some((mut s, _)) = self.serve.take() {
            s.kill9();
        }
        let old = self.paths.data.clone();
        if old.exists() {
            std::fs::remove_dir_all(&old).unwrap();
        }
        self.epoch += 1;
        self.stats.epochs += 1;
        self.paths.data = self.fs.path().join(format!("data-{}", self.epoch));
        std::fs::create_dir(&self.paths.data).unwrap();
        sync_dir(self.fs.path()).unwrap();
        let mut s = self.spawn();
        let url = s.wait_listening(START_DEADLINE).expect("a fresh daemon starts");
        // SIGKILL must hit the daemon itself: unshare and sh exec'ed into it.
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/exe", s.pid())).unwrap(),
            Path::new(terminal::BIN).canonicalize().unwrap()
        );
        let pos = Pos::new(&url, Duration::from_secs(30));
        for i in 0..CARDS {
            let body = json!({"card": card(i), "name": "N", "phone": format!("1390000{i:04}")});
            match pos.post("/v1/members", &body.to_string(), None) {
                Answer::Ok(201, _) => {}
                other => panic!("enrolment of {} answered {other:?}", card(i)),
            }
        }
        let Answer::Ok(200, report) = pos.get("/v1/reports/daily") else {
            panic!("no daily report")
        };
        self.ledger.clear();
        self.days = BTreeSet::from([report["date"].as_str().unwrap().to_string()]);
        self.serve = Some((s, url));
    }

    fn fail(&mut self, cycle: u64, what: String) {
        let line = format!(
            "cycle {cycle} (LOYALTYD_POWERCUT_SEED={} LOYALTYD_POWERCUT_CYCLES={}; {}): {what}",
            self.seed,
            cycle + 1,
            self.context
        );
        eprintln!("POWERCUT FAILURE {line}");
        self.failures.push(line);
    }

    /// Keeps the data dir as the cut left it (before the daemon touched it again).
    fn keep_snapshot(&self, cycle: u64) -> PathBuf {
        let to = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("powercut-failures")
            .join(format!("seed-{}-cycle-{cycle}", self.seed));
        let _ = std::fs::remove_dir_all(&to);
        let from = self.work.path().join("after-cut");
        copy_tree(&from, &to).unwrap();
        to
    }

    fn pick_mode(&mut self) -> CutMode {
        CutMode::EVERY[self.rng.below(4) as usize]
    }

    fn cut(&mut self, mode: CutMode, phase: &'static str) {
        let seed = self.rng.next_u64();
        self.fs.cut(mode, seed);
        *self.stats.cuts_by_mode.entry(mode.name()).or_default() += 1;
        *self.stats.cuts_by_phase.entry(phase).or_default() += 1;
    }

    fn cycle(&mut self, n: u64) {
        // Each cycle's decisions from the seed and its number alone: the same cycle
        // decides the same however many sales the earlier ones happened to make.
        self.rng = Rng::new(self.seed ^ (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if self.serve.is_none() {
            self.new_epoch();
        }
        self.stats.cycles += 1;
        let delay = [0, 0, 0, 2, 20, 200][self.rng.below(6) as usize];
        self.fs.set_fsync_delay(Duration::from_millis(delay));
        self.context = format!("fsync delay {delay} ms");
        let sales = self.load_and_cut(n);
        self.fs.set_fsync_delay(Duration::ZERO);
        self.fs.power_on();
        if self.rng.below(3) == 0 {
            self.startup_cut(n);
        }
        // The durable state the next start-up gets, kept in case it fails.
        let after = self.work.path().join("after-cut");
        let _ = std::fs::remove_dir_all(&after);
        copy_tree(&self.paths.data, &after).unwrap();

        let mut s = self.spawn();
        match s.wait_listening(START_DEADLINE) {
            Ok(url) => {
                let kind = if s.log_has("was missing; rebuilt") {
                    "state dir missing: rebuilt"
                } else if s.log_has("state store: ") {
                    "state moved aside: rebuilt"
                } else {
                    "journal tail replayed"
                };
                *self.stats.startups.entry(kind).or_default() += 1;
                if s.log_has("journal: cut a") {
                    *self.stats.startups.entry("torn journal tail cut").or_default() += 1;
                }
                let took = s.listening_since().unwrap() - s.spawned;
                self.startup_us = (self.startup_us * 3 + took.as_micros() as u64) / 4;
                let healthy = matches!(
                    Pos::new(&url, Duration::from_secs(10)).get("/v1/health"),
                    Answer::Ok(200, _)
                );
                self.serve = Some((s, url));
                if !healthy {
                    let kept = self.keep_snapshot(n);
                    self.fail(
                        n,
                        format!(
                            "listening but /v1/health is not 200 (data dir kept: {})",
                            kept.display()
                        ),
                    );
                    self.serve = None;
                } else if !self.verify(n, sales) {
                    let kept = self.keep_snapshot(n);
                    eprintln!("  (the data dir the failing start-up got is kept: {})", kept.display());
                    self.serve = None;
                }
            }
            Err(why) => {
                let kept = self.keep_snapshot(n);
                self.fail(
                    n,
                    format!(
                        "the daemon did not start by itself after the cut (data dir kept: {}): {why}",
                        kept.display()
                    ),
                );
            }
        }
    }

    /// Clients commit until a cut at a random instant; the daemon is killed at once.
    fn load_and_cut(&mut self, n: u64) -> Vec<Sale> {
        let (mut serve, url) = self.serve.take().unwrap();
        let mode = self.pick_mode();
        let cut_after = Duration::from_millis(self.rng.below(LOAD_MS));
        let seeds: Vec<u64> = (0..CLIENTS).map(|_| self.rng.next_u64()).collect();
        let (cut, sent) = (AtomicBool::new(false), AtomicU64::new(0));
        let epoch = self.epoch;
        let loads: Vec<Load> = thread::scope(|s| {
            let clients: Vec<_> = seeds
                .iter()
                .enumerate()
                .map(|(t, &seed)| {
                    let (url, cut, sent) = (&url, &cut, &sent);
                    s.spawn(move || client(url, &format!("e{epoch}-c{n}-t{t}"), Rng::new(seed), cut, sent))
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(10);
            while sent.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                thread::yield_now();
            }
            thread::sleep(cut_after);
            cut.store(true, Ordering::SeqCst);
            self.cut_at = Some(Instant::now());
            self.cut(mode, "commits");
            self.context += &format!(", cut ({}) {} ms into the commits", mode.name(), cut_after.as_millis());
            serve.kill9();
            clients.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut sales = Vec::new();
        for load in loads {
            self.stats.doubles += load.doubles;
            self.stats.timeouts += load.timeouts;
            for w in load.wrong {
                self.fail(n, w);
            }
            sales.extend(load.sales);
        }
        self.stats.sales_sent += sales.len() as u64;
        self.stats.acked += sales.iter().filter(|s| s.acked.is_some()).count() as u64;
        sales
    }

    /// Power fails again while the daemon starts: right after the spawn, during the
    /// journal scan, the replay or a rebuild (a random instant up to 1.3 start-ups).
    fn startup_cut(&mut self, n: u64) {
        let mode = self.pick_mode();
        let at = Duration::from_micros(self.rng.below(self.startup_us * 13 / 10 + 1));
        let mut s = self.spawn();
        let wake = s.spawned + at;
        thread::sleep(wake.saturating_duration_since(Instant::now()));
        let exited = s.exited();
        let phase = if s.listening_since().is_some() {
            "start-up (already listening)"
        } else {
            "start-up"
        };
        self.cut(mode, phase);
        s.kill9();
        self.fs.power_on();
        self.context += &format!(", cut ({}) {} ms into the next start-up", mode.name(), at.as_millis());
        if let Some(status) = exited {
            self.fail(
                n,
                format!("serve exited by itself ({status}) during start-up:\n{}", s.log_tail(12)),
            );
        }
    }

    /// After a restart: acknowledged sales replay the same, balances are the sums of
    /// the sales present, the state is a rebuild's. Returns false on a failure.
    fn verify(&mut self, n: u64, sales: Vec<Sale>) -> bool {
        let before = self.failures.len();
        let url = self.serve.as_ref().unwrap().1.clone();
        let pos = Pos::new(&url, Duration::from_secs(30));
        let mut balance = Vec::new();
        for i in 0..CARDS {
            match pos.get(&format!("/v1/cards/{}", card(i))) {
                Answer::Ok(200, v) => balance.push(v["balance"].as_i64().unwrap_or(i64::MIN)),
                other => {
                    self.fail(
                        n,
                        format!("enrolled member {} is gone: {}", card(i), terminal::show(&other)),
                    );
                    return false;
                }
            }
        }
        let replay = |s: &Sale| match pos.post("/v1/checkout/commit", &s.body, Some(&s.key)) {
            Answer::Ok(200, v) => Ok((Receipt::of(&v), v["replayed"].as_bool() == Some(true), v)),
            other => Err(terminal::show(&other)),
        };
        // Sales known to be there from earlier cycles: a sample of them.
        let mut old: Vec<usize> = (0..self.ledger.len()).collect();
        while old.len() > OLD_SAMPLE {
            let i = self.rng.below(old.len() as u64) as usize;
            old.swap_remove(i);
        }
        let mut expected = [0i64; CARDS];
        for (sale, r) in &self.ledger {
            expected[sale.card] += r.points;
        }
        for i in old {
            let (sale, want) = self.ledger[i].clone();
            self.stats.acked_checked += 1;
            match replay(&sale) {
                Ok((Some(r), true, _)) if r == want => {}
                other => self.fail(
                    n,
                    format!(
                        "sale {} of an earlier cycle ({want:?}) is not there: {other:?}",
                        sale.key
                    ),
                ),
            }
        }
        for sale in sales {
            match replay(&sale) {
                Ok((Some(r), replayed, v)) => {
                    if let Some(acked) = &sale.acked {
                        self.stats.acked_checked += 1;
                        if !replayed || &r != acked {
                            let before_cut = match (sale.acked_at, self.cut_at) {
                                (Some(a), Some(c)) if a <= c => format!("{} ms before", (c - a).as_millis()),
                                (Some(a), Some(c)) => format!("{} ms after", (a - c).as_millis()),
                                _ => "?".into(),
                            };
                            self.fail(
                                n,
                                format!(
                                    "acknowledged sale {} ({acked:?}, acknowledged by {}, {before_cut} the cut) \
                                     lost by the cut: its key now answers {} {}, {} points",
                                    sale.key,
                                    sale.acked_by,
                                    if replayed { "a replay of" } else { "a new sale" },
                                    v["tx_id"],
                                    v["points_earned"]
                                ),
                            );
                        }
                    } else if replayed {
                        self.stats.landed_unacked += 1;
                    } else {
                        self.stats.lost_unacked += 1;
                    }
                    if replayed {
                        expected[sale.card] += r.points;
                    }
                    if let Some(day) = v["at"].as_str().and_then(|a| a.get(..10)) {
                        self.days.insert(day.to_string());
                    }
                    self.ledger.push((sale, r));
                }
                Ok((None, _, v)) => self.fail(n, format!("replay of {} answered {v}", sale.key)),
                Err(e) => self.fail(n, format!("replay of {} answered {e}", sale.key)),
            }
        }
        for i in 0..CARDS {
            if balance[i] != expected[i] {
                self.fail(
                    n,
                    format!(
                        "{} has {} points after start-up; the sales present add up to {}",
                        card(i),
                        balance[i],
                        expected[i]
                    ),
                );
            }
        }
        self.rebuild_check(n, &pos);
        if n % DUMP_EVERY == 0 {
            self.dump_check(n);
        }
        self.failures.len() == before
    }

    /// Every `DUMP_EVERY` cycles, the whole state: the daemon is stopped cleanly and its
    /// `state dump` compared with that of a rebuild of its journal; then it starts again
    /// (in the same boot: a clean stop is believed).
    fn dump_check(&mut self, n: u64) {
        self.stats.dump_checks += 1;
        let Some((mut s, _)) = self.serve.take() else { return };
        match s.terminate(Duration::from_secs(20)) {
            Ok(status) if status.success() => {}
            other => {
                self.fail(n, format!("SIGTERM: the daemon stopped with {other:?}"));
                return;
            }
        }
        let (status, live, err) = self.paths.cli(&self.paths.data, &["--json", "state", "dump"]);
        if status != 0 {
            self.fail(n, format!("state dump of the daemon's data dir: {err}"));
            return;
        }
        let copy = self.work.path().join("rebuilt");
        let (_, rebuilt, err) = self.paths.cli(&copy, &["--json", "state", "dump"]);
        let (live, rebuilt): (Value, Value) = (
            serde_json::from_str(live.trim()).unwrap_or(Value::Null),
            serde_json::from_str(rebuilt.trim()).unwrap_or_else(|_| json!({"stderr": err})),
        );
        if live != rebuilt {
            let section = live.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, v)| rebuilt.get(k.as_str()) != Some(v))
                    .map(|(k, _)| k.clone())
            });
            self.fail(n, format!("state dump differs from a rebuild's (section {section:?})"));
            return;
        }
        let mut s = self.spawn();
        match s.wait_listening(START_DEADLINE) {
            Ok(url) => self.serve = Some((s, url)),
            Err(why) => self.fail(n, format!("no start after a clean stop: {why}")),
        }
    }

    /// The daemon's members and daily reports equal those of a rebuild of its journal
    /// (copied off the mount), and that journal verifies.
    fn rebuild_check(&mut self, n: u64, pos: &Pos) {
        self.stats.rebuild_checks += 1;
        let mut live = Vec::new();
        for i in 0..CARDS {
            live.push((
                vec!["--json", "member", "show", "--card"],
                card(i),
                pos.get(&format!("/v1/cards/{}", card(i))),
            ));
        }
        for d in &self.days {
            live.push((
                vec!["--json", "report", "daily", "--date"],
                d.clone(),
                pos.get(&format!("/v1/reports/daily?date={d}")),
            ));
        }
        let copy = self.work.path().join("rebuilt");
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir(&copy).unwrap();
        copy_file(&self.paths.data.join("journal.log"), &copy.join("journal.log")).unwrap();
        let (status, _, err) = self.paths.cli(&copy, &["journal", "verify"]);
        if status != 0 {
            self.fail(n, format!("journal verify: {err}"));
            return;
        }
        let (status, _, err) = self.paths.cli(&copy, &["rebuild"]);
        if status != 0 {
            self.fail(n, format!("rebuild of the journal failed: {err}"));
            return;
        }
        for (cmd, arg, answer) in live {
            let mut args = cmd.clone();
            args.push(&arg);
            let (_, out, err) = self.paths.cli(&copy, &args);
            let rebuilt: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| json!({"stderr": err}));
            match answer {
                Answer::Ok(200, v) if v == rebuilt => {}
                other => self.fail(
                    n,
                    format!(
                        "{} {arg}: the daemon says {}, a rebuild of its journal {rebuilt}",
                        cmd[1],
                        terminal::show(&other)
                    ),
                ),
            }
        }
    }

    fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "powercut drill, seed {}: {} cycles, {} data dirs; cuts by mode {:?}, by phase {:?}; \
             {} sales sent ({} sent twice at once, {} retried after a client timeout), {} acknowledged; \
             {} acknowledged sales checked; unacknowledged: {} had landed, {} had not; \
             {} rebuild comparisons ({} of the whole state); start-ups after a cut: {:?}; filesystem {:?}; {} failures",
            self.seed,
            s.cycles,
            s.epochs,
            s.cuts_by_mode,
            s.cuts_by_phase,
            s.sales_sent,
            s.doubles,
            s.timeouts,
            s.acked,
            s.acked_checked,
            s.landed_unacked,
            s.lost_unacked,
            s.rebuild_checks,
            s.dump_checks,
            s.startups,
            self.fs.counters(),
            self.failures.len()
        )
    }
}

#[test]
fn powercut_drill() {
    if !can_run("powercut_drill") {
        return;
    }
    let cycles = env_u64("LOYALTYD_POWERCUT_CYCLES").unwrap_or(100);
    let seed = env_u64("LOYALTYD_POWERCUT_SEED").unwrap_or_else(|| {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).unwrap();
        u64::from_le_bytes(b) >> 12
    });
    // A long run starts a fresh data dir now and then, so start-ups stay short.
    let fresh_every = env_u64("LOYALTYD_POWERCUT_FRESH_EVERY").unwrap_or(250).max(1);
    println!("LOYALTYD_POWERCUT_SEED={seed} LOYALTYD_POWERCUT_CYCLES={cycles}");
    let started = Instant::now();
    let mut drill = Drill::new(seed);
    for n in 0..cycles {
        if n > 0 && n % fresh_every == 0 {
            drill.serve = None;
        }
        drill.cycle(n);
        if (n + 1) % 50 == 0 {
            eprintln!("[{:>5.0} s] {}", started.elapsed().as_secs_f64(), drill.summary());
        }
    }
    drill.serve = None;
    let summary = drill.summary();
    println!("{summary} ({:.0} s)", started.elapsed().as_secs_f64());
    assert!(drill.failures.is_empty(), "{summary}:\n{}", drill.failures.join("\n"));
}

#[test]
fn powercut_replay_waits_for_the_fsync() {
    if !can_run("powercut_replay_waits_for_the_fsync") {
        return;
    }
    let fs = PowerCutFs::mount().expect("mount the power-cut filesystem");
    let work = tempfile::tempdir().unwrap();
    let paths = Paths::new(fs.path().join("data"), work.path());
    std::fs::create_dir(&paths.data).unwrap();
    sync_dir(fs.path()).unwrap();
    let mut serve = Serve::spawn(&paths, &work.path().join("boot-1"));
    let url = serve.wait_listening(START_DEADLINE).unwrap();
    let body = json!({"card": card(0), "name": "N", "phone": "13900000000"}).to_string();
    assert!(matches!(
        Pos::new(&url, Duration::from_secs(30)).post("/v1/members", &body, None),
        Answer::Ok(201, _)
    ));
    let journal = std::fs::metadata(paths.data.join("journal.log")).unwrap().ino();
    let sale = sale_body(0, &mut Rng::new(1));
    let key = "till1-race";

    fs.set_fsync_delay(Duration::from_millis(600));
    let (retry, retry_ms, original_syncing) = thread::scope(|s| {
        let original =
            s.spawn(|| Pos::new(&url, Duration::from_secs(30)).post("/v1/checkout/commit", &sale, Some(key)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs.fsyncs_in_flight(journal) == 0 {
            assert!(Instant::now() < deadline, "the commit never reached its fsync");
            thread::sleep(Duration::from_millis(1));
        }
        let sent = Instant::now();
        let retry = Pos::new(&url, Duration::from_secs(30)).post("/v1/checkout/commit", &sale, Some(key));
        let retry_ms = sent.elapsed().as_millis();
        let original_syncing = fs.fsyncs_in_flight(journal) > 0;
        if matches!(retry, Answer::Ok(..)) {
            // An acknowledgement: the power may go now.
            fs.cut(CutMode::All, 2);
        }
        let _ = original.join();
        serve.kill9();
        (retry, retry_ms, original_syncing)
    });
    fs.set_fsync_delay(Duration::ZERO);
    fs.power_on();
    let answered = match retry {
        Answer::Ok(_, v) => v,
        Answer::Refused(status, text) if status < 500 => {
            // No acknowledgement was given: nothing a cut could take back.
            println!("the retry was refused while the original was in its fsync ({status} {text})");
            return;
        }
        other => panic!("the retry of {key} was answered {}", terminal::show(&other)),
    };
    let acked = Receipt::of(&answered).unwrap();

    let mut serve = Serve::spawn(&paths, &work.path().join("boot-2"));
    let url = serve
        .wait_listening(START_DEADLINE)
        .unwrap_or_else(|why| panic!("no restart after the cut: {why}"));
    let again = Pos::new(&url, Duration::from_secs(30)).post("/v1/checkout/commit", &sale, Some(key));
    let present =
        matches!(&again, Answer::Ok(200, v) if v["replayed"] == true && Receipt::of(v).as_ref() == Some(&acked));
    assert!(
        present,
        "the retry of {key} was answered 2xx ({acked:?}) after {retry_ms} ms, {} the original commit's \
         fsync had completed; after a power cut the sale is not there (its key now answers {}): \
         a replay must not be answered before the sale is durable",
        if original_syncing { "before" } else { "after" },
        terminal::show(&again)
    );
}
