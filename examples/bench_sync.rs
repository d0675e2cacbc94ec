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
//! With BENCH_PG set to a PostgreSQL server's URL (scripts/pg-test-server.sh), the same
//! backlogs are pushed into the hub on PostgreSQL (a database of its own, dropped after):
//! by one hub process, then by two sharing the database, the terminals split between
//! them; and BENCH_PULLERS (1000) registered terminals pull an empty delta from each hub.
//!
//! Environment: LOYALTYD_BIN (default `target/release/loyaltyd`), BENCH_DIR (`target`),
//! BENCH_BACKLOG (100000 records), BENCH_TERMINALS (16), BENCH_PER_TERMINAL (10000),
//! BENCH_PG (unset), BENCH_PULLERS (1000).

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
    start_hub_with(dir, terminals, "")
}

/// A hub with `extra` config (a `[store]` table).
fn start_hub_with(dir: &Path, terminals: usize, extra: &str) -> Result<Proc> {
    let token = dir.join("hub.token");
    std::fs::write(&token, "bench-operator-token\n")?;
    let mut text = format!(
        "data_dir = {:?}\nrules = {RULES:?}\ntoken_file = {:?}\ncache_mib = 64\n",
        dir.join("hub").display().to_string(),
        token.display().to_string()
    );
    text.push_str(extra);
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
    let made = tmp.path().join("backlogs");
    for t in 0..n_terms {
        make_backlog(&made.join(format!("T{t}")), t, per_term)?;
    }
    copy_backlogs(&made, &many)?;
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
    drop(terms);
    let pull_embedded = pull_fan_out(&tmp.path().join("pull-embedded"), "")?;
    drop(hub);
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
    println!(
        "pull fan-out, embedded hub:                 {:>8.2} s   ({} terminals, empty delta; target <= 5 s)",
        pull_embedded.1.as_secs_f64(),
        pull_embedded.0
    );
    if let Ok(server) = std::env::var("BENCH_PG") {
        pg_phases(&server, tmp.path(), &made, n_terms, total, rate(total, ingest))?;
    } else {
        println!("(BENCH_PG unset: the hub on PostgreSQL is not measured)");
    }
    Ok(())
}

fn copy_backlogs(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let st = Command::new("cp").arg("-a").arg(e.path()).arg(to).status()?;
        if !st.success() {
            bail!("cp -a {} failed", e.path().display());
        }
    }
    Ok(())
}

/// A database of its own on `server`, dropped when dropped.
struct PgDb {
    server: String,
    name: String,
    url: String,
}

fn pg_sql(url: &str, sql: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(conn);
        client.batch_execute(sql).await?;
        drop(client);
        let _ = driver.await;
        Ok(())
    })
}

impl PgDb {
    fn create(server: &str, name: &str) -> Result<PgDb> {
        let name = format!("bench_{name}_{}", std::process::id());
        pg_sql(server, &format!("CREATE DATABASE {name}"))?;
        let (base, _) = server
            .rsplit_once('/')
            .ok_or_else(|| anyhow!("BENCH_PG names no database"))?;
        Ok(PgDb {
            server: server.to_string(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    fn store(&self) -> String {
        format!("[store]\nkind = \"postgres\"\nurl = {:?}\npool_size = 16\n", self.url)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = pg_sql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Ingest into the hub on PostgreSQL: one process, then two sharing one database.
fn pg_phases(server: &str, tmp: &Path, made: &Path, n_terms: usize, total: usize, embedded: f64) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ingest = |hubs: usize| -> Result<f64> {
        let db = PgDb::create(server, &format!("ingest{hubs}"))?;
        let dir = tmp.join(format!("pg{hubs}"));
        copy_backlogs(made, &dir)?;
        let procs = (0..hubs)
            .map(|h| {
                let d = dir.join(format!("hub{h}"));
                std::fs::create_dir_all(&d)?;
                start_hub_with(&d, n_terms, &db.store())
            })
            .collect::<Result<Vec<_>>>()?;
        // The terminals' secrets are in the hubs' dirs: each hub wrote its own copies.
        for t in 0..n_terms {
            std::fs::copy(
                dir.join("hub0").join(format!("B{t}.secret")),
                dir.join(format!("B{t}.secret")),
            )?;
        }
        let started = Instant::now();
        let terms = (0..n_terms)
            .map(|t| start_terminal(&dir, t, &procs[t % hubs].url))
            .collect::<Result<Vec<_>>>()?;
        let done = drained(&terms, Duration::from_secs(900))?;
        let took = done - started;
        println!(
            "PostgreSQL ingest, {hubs} hub process(es): {total} records in {:.2} s = {:.0} records/s",
            took.as_secs_f64(),
            rate(total, took)
        );
        Ok(rate(total, took))
    };
    let one = ingest(1)?;
    let two = ingest(2)?;
    let pull = {
        let db = PgDb::create(server, "pull")?;
        pull_fan_out(&tmp.join("pull-pg"), &db.store())?
    };
    println!();
    println!("hub on PostgreSQL ({cores} cores here)");
    println!(
        "ingest, 1 process, {n_terms} terminals:       {one:>8.0} records/s = {:.2} x embedded ({embedded:.0}/s; target >= 0.5 x)",
        one / embedded
    );
    println!(
        "ingest, 2 processes, one database:         {two:>8.0} records/s = {:.2} x one process (target >= 1.3 x where cores allow)",
        two / one
    );
    println!(
        "pull fan-out:                               {:>8.2} s   ({} terminals, empty delta; target <= 5 s)",
        pull.1.as_secs_f64(),
        pull.0
    );
    Ok(())
}

/// `BENCH_PULLERS` registered terminals each pull once, with a cursor at the feed's head
/// (an empty delta), 4 at a time (the hub holds at most 4 unverified requests per peer
/// address); returns how many and the wall time.
fn pull_fan_out(dir: &Path, extra: &str) -> Result<(usize, Duration)> {
    use loyaltyd::sync::wire::{self, PullReply, PullRequest};
    let n = env_usize("BENCH_PULLERS", 1000)?;
    std::fs::create_dir_all(dir)?;
    let hub = start_hub_with(dir, n, extra)?;
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let pull = |t: usize, cursor: u64| -> Result<PullReply> {
        let terminal = format!("B{t}");
        let req = PullRequest {
            terminal_id: terminal.clone(),
            epoch: 1,
            cursor,
            members: vec![],
        };
        let body = postcard::to_allocvec(&req)?;
        let secret = format!("bench-secret-of-terminal-{t:04}");
        let auth = wire::sign(secret.as_bytes(), &terminal, wire::PULL_V2_PATH, &body);
        let mut r = agent
            .post(format!("{}{}", hub.url, wire::PULL_V2_PATH))
            .header("Authorization", &auth)
            .header("Content-Type", wire::CONTENT_TYPE)
            .send(&body[..])?;
        if r.status() != 200 {
            bail!("pull of {terminal}: {} {}", r.status(), r.body_mut().read_to_string()?);
        }
        let bytes = r.body_mut().with_config().limit(wire::MAX_REPLY as u64).read_to_vec()?;
        Ok(postcard::from_bytes(&bytes)?)
    };
    let head = pull(0, 0)?.cursor;
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let t = next.fetch_add(1, Ordering::Relaxed);
                        if t >= n {
                            return Ok(());
                        }
                        let reply = pull(t, head)?;
                        if !reply.members.is_empty() || reply.cursor != head {
                            bail!("terminal {t}: the delta was not empty");
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow!("a puller panicked"))??;
        }
        Ok(())
    })?;
    Ok((n, started.elapsed()))
}
