//! Sync benchmark: prints figures, never passes or fails.
//!
//! ```text
//! cargo build --release && cargo run --release --example bench_sync
//! ```
//!
//! Phase 1 drains one terminal's backlog to a loopback hub: the backlog is made through
//! the library (members and checkouts, many threads sharing fsyncs), then the real hub
//! and the real terminal daemon are started and the time until the terminal's
//! `/v1/health` shows an empty outbox is taken. Phase 2 starts 16 terminals with a
//! backlog each against one fresh hub at once, for the hub's ingest rate.
//!
//! Environment: LOYALTYD_BIN (default `target/release/loyaltyd`), BENCH_DIR (`target`),
//! BENCH_BACKLOG (100000 records), BENCH_TERMINALS (16), BENCH_PER_TERMINAL (10000).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use common::{bench_dir, card, enrol, env_usize, random_lines, rate, Rng};
use loyaltyd::engine::{At, ClockPolicy, Engine, EngineConfig, Sale};
use loyaltyd::rules::Ruleset;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rules.toml");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/loyaltyd.toml");
/// Members per terminal; the rest of a backlog is checkouts.
const MEMBERS: usize = 1000;
/// Threads making a backlog (their commits share fsyncs).
const THREADS: usize = 8;

fn bin() -> Result<PathBuf> {
    let p = PathBuf::from(std::env::var("LOYALTYD_BIN").unwrap_or_else(|_| "target/release/loyaltyd".into()));
    if !p.exists() {
        bail!(
            "{} is missing: run `cargo build --release` first (or set LOYALTYD_BIN)",
            p.display()
        );
    }
    Ok(p)
}

/// Terminal `t`'s data dir with `records` records that go upstream: MEMBERS
/// enrolments, then checkouts by those members.
fn make_backlog(dir: &Path, t: usize, records: usize) -> Result<()> {
    let cfg = EngineConfig {
        data_dir: dir.to_path_buf(),
        terminal_id: format!("B{t}"),
        clock: ClockPolicy::Trusted,
        cache_bytes: 32 << 20,
        offline_cap: true,
        hub: false,
        ..Default::default()
    };
    let engine = Engine::open(cfg, Ruleset::load(Path::new(RULES))?)?;
    let at = engine.at(None);
    let base = t * 1_000_000;
    let members = MEMBERS.min(records);
    enrol(&engine, base..base + members, THREADS, at.clone())?;
    checkouts(&engine, base, members, records - members, at)?;
    engine.close()?;
    Ok(())
}

fn checkouts(engine: &Engine, base: usize, members: usize, n: usize, at: At) -> Result<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                let next = &next;
                let at = at.clone();
                s.spawn(move || -> Result<()> {
                    let mut rng = Rng::new(0x5EED ^ th as u64);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        let sale = Sale {
                            card: card(base + rng.below(members)),
                            lines: random_lines(&mut rng),
                            redeem_points: None,
                            pin: None,
                            coupon: None,
                        };
                        engine.checkout(&sale, Some(&format!("k{i}")), at.clone())?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| anyhow!("backlog thread panicked"))?)
    })
}

/// A spawned process whose address came from its log.
struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `args` and waits for the log line containing `marker` followed by the URL.
fn spawn(args: &[String], marker: &str) -> Result<Proc> {
    let mut child = Command::new(bin()?)
        .args(args)
        .env("LOYALTYD_LOG", "warn,loyaltyd::daemon=info,loyaltyd::hub=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow!("{args:?} exited before listening"))??;
        if let Some(i) = line.find(marker) {
            break line[i + marker.len()..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
    };
    // Keep draining the log so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Proc { child, url })
}

fn secret(dir: &Path, t: usize) -> Result<PathBuf> {
    let p = dir.join(format!("B{t}.secret"));
    std::fs::write(&p, format!("bench-secret-of-terminal-{t:04}\n"))?;
    Ok(p)
}

fn start_hub(dir: &Path, terminals: usize) -> Result<Proc> {
    let token = dir.join("hub.token");
    std::fs::write(&token, "bench-operator-token\n")?;
    let mut text = format!(
        "data_dir = {:?}\nrules = {RULES:?}\ntoken_file = {:?}\ncache_mib = 64\n",
        dir.join("hub").display().to_string(),
        token.display().to_string()
    );
    for t in 0..terminals {
        let s = secret(dir, t)?;
        text.push_str(&format!(
            "[[terminals]]\nid = \"B{t}\"\nsecret_file = {:?}\n",
            s.display().to_string()
        ));
    }
    let config = dir.join("hub.toml");
    std::fs::write(&config, text)?;
    let args = [
        "--config",
        &config.display().to_string(),
        "hub",
        "serve",
        "--listen",
        "127.0.0.1:0",
    ];
    spawn(&args.map(String::from), "hub listening on ")
}

fn start_terminal(dir: &Path, t: usize, hub: &str) -> Result<Proc> {
    let token = dir.join("pos.token");
    std::fs::write(&token, "bench-pos-token-0123\n")?;
    let data = dir.join(format!("T{t}"));
    let secret = dir.join(format!("B{t}.secret"));
    let args = [
        "--config",
        CONFIG,
        "--data-dir",
        &data.display().to_string(),
        "--rules",
        RULES,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        &token.display().to_string(),
        "--reader",
        "none",
        "--terminal-id",
        &format!("B{t}"),
        "--upstream",
        hub,
        "--upstream-secret-file",
        &secret.display().to_string(),
        "--sync-interval",
        "3600",
    ];
    spawn(&args.map(String::from), "listening on ")
}

fn outbox(url: &str) -> Result<u64> {
    let v: serde_json::Value = ureq::get(format!("{url}/v1/health"))
        .call()?
        .body_mut()
        .read_json()
        .context("health")?;
    v["outbox"].as_u64().ok_or_else(|| anyhow!("no outbox in {v}"))
}

/// Polls every terminal's health until every outbox is empty; returns when.
fn drained(terminals: &[Proc], limit: Duration) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let mut left = 0;
        for t in terminals {
            left += outbox(&t.url)?;
        }
        if left == 0 {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("{left} records still not acknowledged after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() -> Result<()> {
    let backlog = env_usize("BENCH_BACKLOG", 100_000)?;
    let n_terms = env_usize("BENCH_TERMINALS", 16)?;
    let per_term = env_usize("BENCH_PER_TERMINAL", 10_000)?;
    bin()?;
    let tmp = tempfile::tempdir_in(bench_dir()?)?;
    println!("bench dir: {}", tmp.path().display());

    // 1. One terminal's backlog to a loopback hub.
    let one = tmp.path().join("one");
    std::fs::create_dir_all(&one)?;
    let t0 = Instant::now();
    make_backlog(&one.join("T0"), 0, backlog)?;
    println!("backlog: {backlog} records made in {:.1} s", t0.elapsed().as_secs_f64());
    let hub = start_hub(&one, 1)?;
    let spawned = Instant::now();
    let term = start_terminal(&one, 0, &hub.url)?;
    let listening = Instant::now();
    let done = drained(std::slice::from_ref(&term), Duration::from_secs(600))?;
    let drain = done - listening;
    println!(
        "drain: {backlog} records acknowledged {:.2} s after the terminal listened ({:.2} s after spawn) = {:.0} records/s",
        drain.as_secs_f64(),
        (done - spawned).as_secs_f64(),
        rate(backlog, drain)
    );
    drop(term);
    drop(hub);

    // 2. Many terminals pushing at once.
    let many = tmp.path().join("many");
    std::fs::create_dir_all(&many)?;
    let t0 = Instant::now();
    for t in 0..n_terms {
        make_backlog(&many.join(format!("T{t}")), t, per_term)?;
    }
    println!(
        "{n_terms} backlogs of {per_term} records made in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let hub = start_hub(&many, n_terms)?;
    let started = Instant::now();
    let terms = (0..n_terms)
        .map(|t| start_terminal(&many, t, &hub.url))
        .collect::<Result<Vec<_>>>()?;
    let all_up = started.elapsed();
    let done = drained(&terms, Duration::from_secs(900))?;
    let total = n_terms * per_term;
    let ingest = done - started;
    println!(
        "ingest: {total} records from {n_terms} terminals in {:.2} s (all listening after {:.2} s) = {:.0} records/s",
        ingest.as_secs_f64(),
        all_up.as_secs_f64(),
        rate(total, ingest)
    );

    println!();
    println!("loyaltyd bench_sync");
    println!(
        "drain {backlog} records to a loopback hub:   {:>8.2} s   (target <= 3 s)",
        drain.as_secs_f64()
    );
    println!(
        "hub ingest, {n_terms} terminals at once:       {:>8.0} records/s ({total} records in {:.2} s)",
        rate(total, ingest),
        ingest.as_secs_f64()
    );
    Ok(())
}
