//! The reports at chain scale (issue 17): a hub holding BENCH_MEMBERS members and
//! BENCH_CHECKOUTS checkouts pushed by BENCH_TERMINALS terminals, then the real hub
//! process answering the summary of a 365-day window and 24 months of retention over
//! HTTP; prints figures beside their targets, never passes or fails.
//!
//! ```text
//! cargo build --release --bin loyaltyd --example bench_reports && target/release/examples/bench_reports
//! ```
//!
//! Environment: LOYALTYD_BIN (default `target/release/loyaltyd` of this repo), BENCH_DIR
//! (default `target`), BENCH_MEMBERS (1000000), BENCH_CHECKOUTS (5000000),
//! BENCH_TERMINALS (10), BENCH_QUERIES (requests per report, 200), BENCH_KEEP=1 keeps
//! the data dir. Small mode: BENCH_MEMBERS=20000 BENCH_CHECKOUTS=100000 (under a
//! minute). 200,000 members and 1M checkouts took 4-8 minutes and 1.1 GB on the loaded
//! 2-core VM; the full defaults need about 5 GB of disk and, at the 2.5-5.5k pushed
//! checkouts/s measured, 20-40 minutes of setup (not run: the disk was short).
//!
//! Setup, through the library: the terminals' records (enrolments spread over the last
//! 24 months, checkouts by random members on random days after their enrolment) are
//! made as a terminal writes them and handed to `SledHub::ingest` in pushes of 2000,
//! the path a real push takes after its signature check, so the hub applies every one
//! (`Remote` records) with its report aggregates, per terminal. Then the state's keys
//! are counted by prefix, and `loyaltyd hub serve` answers the reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{Datelike, NaiveDate};
use loyaltyd::config::HubConfig;
use loyaltyd::engine;
use loyaltyd::hub::{HubStore, SledHub};
use loyaltyd::model::{self, day_no};
use loyaltyd::record::{Body, CheckoutV3, Line, MemberAddV2, PricedLineV2, Record};
use loyaltyd::sync::wire::PushRequest;

mod common;
use common::{bench_dir, card, env_usize, phone, rate, us, Lat, Rng};

const TOKEN: &str = "bench-operator-token-0123";
const PUSH: usize = 2000;
const DAYS: i64 = 730;
const EPOCH: u64 = 0x5EED_0001;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn write_config(dir: &Path, data: &Path, terminals: usize) -> Result<PathBuf> {
    let token = dir.join("hub.token");
    std::fs::write(&token, format!("{TOKEN}\n"))?;
    let quoted = |p: &Path| format!("{:?}", p.display().to_string());
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {}\nrules = {}\ntoken_file = {}\ncache_mib = 64\n",
        quoted(data),
        quoted(&repo("config/rules.toml")),
        quoted(&token),
    );
    for t in 0..terminals {
        let secret = dir.join(format!("T{t}.secret"));
        std::fs::write(&secret, "bench-terminal-secret-0123456789\n")?;
        text.push_str(&format!(
            "[[terminals]]\nid = \"T{t}\"\nsecret_file = {}\n",
            quoted(&secret)
        ));
    }
    let path = dir.join("hub.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Noon in Shanghai of local day `d` (the shipped ruleset's zone), as an instant.
fn noon(d: NaiveDate) -> model::Ts {
    let midnight_utc = d.and_hms_opt(4, 0, 0).expect("a time").and_utc();
    midnight_utc.timestamp_micros()
}

/// One terminal's stream: its next seq and the records not pushed yet.
struct Stream {
    id: String,
    seq: u64,
    pending: Vec<(u64, Vec<u8>)>,
    mono: u64,
}

impl Stream {
    fn add(&mut self, day: NaiveDate, body: Body) {
        self.seq += 1;
        self.mono += 1;
        let rec = Record {
            wall: noon(day),
            clock_trusted: true,
            boot_id: [7; 16],
            mono_us: self.mono,
            at: noon(day),
            day: day_no(day),
            idem: None,
            by: Some("pos".into()),
            requested_by: None,
            body,
        };
        self.pending.push((self.seq, rec.encode()));
    }

    fn push(&mut self, hub: &SledHub) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending);
        let push = PushRequest {
            terminal_id: self.id.clone(),
            epoch: EPOCH,
            from: records[0].0,
            upto: records[records.len() - 1].0,
            records,
        };
        let reply = hub.ingest(&push)?;
        if reply.acked != push.upto {
            bail!("{}: the hub acknowledged {} of {}", self.id, reply.acked, push.upto);
        }
        Ok(())
    }
}

fn member_id(i: usize) -> String {
    format!("m-{i:016x}")
}

fn checkout(tx_id: String, member: usize, price: i64) -> Body {
    let line = Line {
        sku: "rice".into(),
        category: "grocery".into(),
        qty: 1,
        unit_price: price,
    };
    Body::CheckoutV3(Box::new(CheckoutV3 {
        tx_id,
        member_id: member_id(member),
        card: card(member),
        lines: vec![PricedLineV2 {
            line,
            eligible: true,
            d0: 0,
            group_units: 0,
            d1: 0,
            d2: 0,
            d3: 0,
        }],
        subtotal: price,
        group_buy_discount: 0,
        tier_discount: 0,
        promotion: None,
        coupon: None,
        due: price,
        points_redeemed: 0,
        redeem_value: 0,
        total: price,
        base: price,
        points_earned: price / 100,
        lot_expires_at: None,
        tier_before: "standard".into(),
        tier_after: "standard".into(),
        visit: true,
        pin_verified: false,
        ruleset_version: 1,
        group_buys: vec![],
        gifts: vec![],
        gift_points: 0,
        coupons_issued: vec![],
        tiers_reached: vec![],
        campaigns: vec![],
    }))
}

struct Setup {
    enrol: Duration,
    fill: Duration,
}

fn build(config: &Path, members: usize, checkouts: usize, terminals: usize, today: NaiveDate) -> Result<Setup> {
    let cfg = HubConfig::load(config, true).map_err(|e| anyhow!("{e}"))?;
    let hub = SledHub::open(&cfg).map_err(|e| anyhow!("{e}"))?;
    let mut streams: Vec<Stream> = (0..terminals)
        .map(|t| Stream {
            id: format!("T{t}"),
            seq: 0,
            pending: Vec::with_capacity(PUSH),
            mono: 1,
        })
        .collect();
    let first = today - chrono::Duration::days(DAYS - 1);
    let enrolled_on = |i: usize| first + chrono::Duration::days((i as i64 * (DAYS - 1)) / members.max(1) as i64);
    let t0 = Instant::now();
    for i in 0..members {
        let s = &mut streams[i % terminals];
        s.add(
            enrolled_on(i),
            Body::MemberAddV2(Box::new(MemberAddV2 {
                member_id: member_id(i),
                card: card(i),
                name: format!("Member {i}"),
                phone: phone(i).trim_start_matches('+').to_string(),
                birthday: None,
                pin_hash: None,
                tags: vec![],
            })),
        );
        if s.pending.len() == PUSH {
            s.push(&hub)?;
        }
        if (i + 1) % 200_000 == 0 {
            println!("  enrolled {} ({:.0} s)", i + 1, t0.elapsed().as_secs_f64());
        }
    }
    for s in &mut streams {
        s.push(&hub)?;
    }
    let enrol = t0.elapsed();
    let t1 = Instant::now();
    let mut rng = Rng::new(17);
    for n in 0..checkouts {
        let m = rng.below(members);
        let since = enrolled_on(m);
        let span = (today - since).num_days() + 1;
        let day = since + chrono::Duration::days(rng.below(span as usize) as i64);
        let price = 1000 + rng.below(19_000) as i64;
        let s = &mut streams[rng.below(terminals)];
        let tx = engine::tx_id(&s.id, EPOCH, s.seq + 1);
        s.add(day, checkout(tx, m, price));
        if s.pending.len() == PUSH {
            s.push(&hub)?;
        }
        if (n + 1) % 500_000 == 0 {
            println!(
                "  checkouts {} ({:.0} s, {:.0}/s)",
                n + 1,
                t1.elapsed().as_secs_f64(),
                rate(n + 1, t1.elapsed())
            );
        }
    }
    for s in &mut streams {
        s.push(&hub)?;
    }
    let fill = t1.elapsed();
    hub.close()?;
    Ok(Setup { enrol, fill })
}

/// Keys and bytes (key + value) of the hub's state by first byte.
fn census(state: &Path) -> Result<BTreeMap<u8, (u64, u64)>> {
    let db = sled::Config::new().path(state).cache_capacity(8 << 20).open()?;
    let mut by = BTreeMap::new();
    for kv in db.iter() {
        let (k, v) = kv?;
        let e: &mut (u64, u64) = by.entry(k.first().copied().unwrap_or(0)).or_default();
        *e = (e.0 + 1, e.1 + (k.len() + v.len()) as u64);
    }
    let reports = db.get(b"Mreports")?.map_or(0, |v| v.len() as u64 + 8);
    by.insert(b'!', (1, reports));
    Ok(by)
}

struct Hub {
    child: Child,
    url: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn start_hub(bin: &Path, config: &Path) -> Result<Hub> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(["hub", "serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let hub = Hub {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(1200);
    let agent = agent();
    while Instant::now() < deadline {
        if let Ok(r) = agent.get(format!("{}/v1/health", hub.url)).call() {
            if r.status() == 200 {
                return Ok(hub);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the hub did not answer its health check")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// `n` timed GETs of `path` (after one untimed), each answer checked to be 200 JSON.
fn timed(agent: &ureq::Agent, url: &str, path: &str, n: usize) -> Result<(Lat, serde_json::Value)> {
    let mut lat = Vec::with_capacity(n);
    let mut last = serde_json::Value::Null;
    for i in 0..n + 1 {
        let t = Instant::now();
        let mut r = agent
            .get(format!("{url}{path}"))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()?;
        let text = r.body_mut().read_to_string()?;
        if i >= 1 {
            lat.push(us(t.elapsed()));
        }
        if r.status() != 200 {
            bail!("{path}: {} {text}", r.status());
        }
        last = serde_json::from_str(&text)?;
    }
    Ok((Lat::new(lat), last))
}

fn ms(us: u32) -> f64 {
    us as f64 / 1000.0
}

fn main() -> Result<()> {
    let members = env_usize("BENCH_MEMBERS", 1_000_000)?.max(10);
    let checkouts = env_usize("BENCH_CHECKOUTS", 5_000_000)?;
    let terminals = env_usize("BENCH_TERMINALS", 10)?.max(1);
    let queries = env_usize("BENCH_QUERIES", 200)?.max(1);
    let bin = std::env::var_os("LOYALTYD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("target/release/loyaltyd"));
    if !bin.exists() {
        bail!("{} is missing: cargo build --release --bin loyaltyd", bin.display());
    }
    let base = bench_dir()?;
    let tmp = tempfile::Builder::new().prefix("bench-reports-").tempdir_in(&base)?;
    let data = tmp.path().join("hub-data");
    let config = write_config(tmp.path(), &data, terminals)?;
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    println!("bench_reports: {members} members, {checkouts} checkouts from {terminals} terminals, today {today}");
    let t0 = Instant::now();
    let setup = build(&config, members, checkouts, terminals, today)?;
    println!(
        "setup: enrolment {:.0} s ({:.0}/s), checkouts {:.0} s ({:.0}/s)",
        setup.enrol.as_secs_f64(),
        rate(members, setup.enrol),
        setup.fill.as_secs_f64(),
        rate(checkouts, setup.fill)
    );

    let by = census(&data.join("state"))?;
    let total: u64 = by.iter().filter(|(p, _)| **p != b'!').map(|(_, v)| v.1).sum();
    let report_prefixes = [b'e', b'J', b'u', b'o', b'x', b'g', b'h'];
    let report: u64 = report_prefixes
        .iter()
        .map(|p| by.get(p).map_or(0, |v| v.1))
        .sum::<u64>()
        + by[&b'!'].1;
    let audit: u64 = [b'l', b'y'].iter().map(|p| by.get(p).map_or(0, |v| v.1)).sum();
    println!("state by prefix (keys, MiB of key + value):");
    for (p, (keys, bytes)) in by.iter().filter(|(p, _)| **p != b'!') {
        println!(
            "  {}  {keys:>10}  {:>9.1}",
            *p as char,
            *bytes as f64 / (1 << 20) as f64
        );
    }
    let share = |b: u64| b as f64 * 100.0 / (total - b).max(1) as f64;
    println!(
        "report aggregates (e J u o x g h Mreports): {:.1} MiB, adding {:.1} % to the rest of the state (target <= 15 %: {})",
        report as f64 / (1 << 20) as f64,
        share(report),
        if share(report) <= 15.0 { "met" } else { "NOT met" }
    );
    println!(
        "audit index (l y): {:.1} MiB, adding {:.1} % to the rest (not a report aggregate; stated apart)",
        audit as f64 / (1 << 20) as f64,
        share(audit)
    );

    let t_start = Instant::now();
    let hub = start_hub(&bin, &config)?;
    println!("hub started in {:.1} s", t_start.elapsed().as_secs_f64());
    let a = agent();
    let from = today - chrono::Duration::days(364);
    let summary = format!("/v1/hub/reports/summary?from={from}&to={today}");
    let (lat, s) = timed(&a, &hub.url, &summary, queries)?;
    println!(
        "summary of 365 days (chain): p50 {:.1} ms, p99 {:.1} ms (target p99 <= 50 ms: {}); transactions {}, active members {}",
        ms(lat.pct(0.5)),
        ms(lat.pct(0.99)),
        if ms(lat.pct(0.99)) <= 50.0 { "met" } else { "NOT met" },
        s["transactions"],
        s["active_members"]
    );
    let (lat1, _) = timed(&a, &hub.url, &format!("{summary}&terminal=T0"), queries.div_ceil(4))?;
    println!(
        "summary of 365 days, one terminal: p50 {:.1} ms, p99 {:.1} ms",
        ms(lat1.pct(0.5)),
        ms(lat1.pct(0.99))
    );
    let first_month = {
        let m = today.year() * 12 + today.month0() as i32 - 23;
        format!("{:04}-{:02}", m / 12, m % 12 + 1)
    };
    let retention = format!(
        "/v1/hub/reports/retention?from={first_month}&to={}",
        today.format("%Y-%m")
    );
    let (lat, r) = timed(&a, &hub.url, &retention, queries)?;
    println!(
        "retention of 24 months (chain): p50 {:.1} ms, p99 {:.1} ms (target p99 <= 50 ms: {}); {} cohorts",
        ms(lat.pct(0.5)),
        ms(lat.pct(0.99)),
        if ms(lat.pct(0.99)) <= 50.0 { "met" } else { "NOT met" },
        r["cohorts"].as_array().map_or(0, Vec::len)
    );
    let campaigns = format!("/v1/hub/reports/campaigns?from={from}&to={today}");
    let (lat, _) = timed(&a, &hub.url, &campaigns, queries.div_ceil(4))?;
    println!(
        "campaigns of 365 days (chain): p50 {:.1} ms, p99 {:.1} ms",
        ms(lat.pct(0.5)),
        ms(lat.pct(0.99))
    );
    let (lat, _) = timed(&a, &hub.url, "/v1/hub/audit?limit=50", queries.div_ceil(4))?;
    println!(
        "audit, newest page of 50: p50 {:.1} ms, p99 {:.1} ms",
        ms(lat.pct(0.5)),
        ms(lat.pct(0.99))
    );
    drop(hub);
    println!("whole run {:.0} s", t0.elapsed().as_secs_f64());
    if std::env::var_os("BENCH_KEEP").is_some() {
        println!("kept {}", tmp.keep().display());
    }
    Ok(())
}
