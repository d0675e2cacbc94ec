//! Members at chain scale (issue 15) against the real daemon process: prints figures
//! beside their targets, never passes or fails.
//!
//! ```text
//! cargo build --release --bin loyaltyd --example bench_members && target/release/examples/bench_members
//! ```
//!
//! Environment: LOYALTYD_BIN (default `target/release/loyaltyd` of this repo), BENCH_DIR
//! (where the temporary data dirs go, default `target`), BENCH_MEMBERS (1000000),
//! BENCH_HEAVY (checkouts of the heavy member, 10000), BENCH_RECORDS (journal records at
//! the end of the setup, 5000000), BENCH_LOOKUPS (10000), BENCH_SEARCHES (search queries,
//! each with its next page, 400), BENCH_PAGES (history and ledger pages each, 2000),
//! BENCH_IMPORT (rows per import file, 100000), BENCH_INDEX_RSS (1: also start the
//! daemon on copies of the store with and without the 0.2 indexes; 0: skip).
//!
//! Phases:
//! 1. Setup through the library (32 threads sharing fdatasyncs): the members, then the
//!    heavy member's checkouts (member 0), then checkouts of random other members until
//!    the journal holds BENCH_RECORDS records. The heavy member's history and ledger
//!    pages are timed in process after the first ~1M records and again at the end.
//! 2. `loyaltyd serve` on the data dir (standalone, the POS token as owner): start-up
//!    time and memory.
//! 3. Over keep-alive HTTP: lookups by phone, search pages (name, name prefix, phone
//!    suffix, card prefix, each followed by its next page), the heavy member's
//!    transactions and ledger at random depths; every answer is checked (right member,
//!    page lengths, cursors that neither skip nor repeat, the ledger adding up).
//! 4. Memory after the reads. 5. The export, streamed, with the daemon's memory sampled
//!    every 100 ms. 6. Two imports of BENCH_IMPORT new members. 7. SIGTERM.
//!
//! The indexes' cost is measured between 1 and 2, at BENCH_MEMBERS members: their share
//! of the store's bytes, and the daemon's memory (after start-up, after the lookups) on
//! two copies of the store written afresh in key order, one with every key, one without
//! the 0.2 index keys (N, S, B, A, b: search; L, H: history and ledger). The copies are
//! deleted before phase 2. BENCH_KEEP=1 keeps the bench dir at the end (8-9 GB at the
//! defaults, 4-5 GB more while the copies exist); BENCH_DATA=DIR (its `data`) then runs
//! phases 2-7 on it again without a setup, with as many members as it holds by then.
//!
//! The full defaults take about 27 minutes on the 2-core development VM: setup 20 (the
//! enrolment 2.5-4, the 4M filler checkouts 17-18 at 4-5k/s), the copies 2-3, the HTTP
//! phases 4-6 (the whole-name searches take about a second each).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use loyaltyd::config::Config;
use loyaltyd::engine::{journal_path, Engine, EngineConfig, Sale};
use serde_json::Value;

mod common;
use common::{bench_dir, card, enrol, env_usize, phone, random_lines, rate, us, Lat, Rng};

const TOKEN: &str = "bench-token-0123456789";
const SETUP_THREADS: usize = 32;
/// Members per enrolment chunk, checkouts per filler chunk (one progress line each).
const ENROL_CHUNK: usize = 100_000;
const FILL_CHUNK: usize = 500_000;
/// Entries per history or ledger page, as a till shows them.
const PAGE: usize = 20;
/// Untimed requests first: connections, caches and the allocator settle.
const WARMUP: usize = 200;
/// Untimed searches first, fewer: a search may take seconds (a multiple of KINDS' length).
const SEARCH_WARMUP: usize = 20;
/// The daemon scans and checks the whole journal before it listens.
const START_TIMEOUT: Duration = Duration::from_secs(1200);
/// Key prefixes of the indexes 0.2 added (src/store/search.rs, src/store/history.rs).
const SEARCH_KEYS: &[u8] = b"NSBAb";
const HISTORY_KEYS: &[u8] = b"LH";
/// 0.1.0's figure (README, bench_api): daemon RSS after start-up with 1M members.
const RSS_0_1_MIB: f64 = 115.5;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

struct Settings {
    members: usize,
    heavy: usize,
    records: u64,
    lookups: usize,
    searches: usize,
    pages: usize,
    import: usize,
    index_rss: bool,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        Ok(Settings {
            members: env_usize("BENCH_MEMBERS", 1_000_000)?.max(2),
            heavy: env_usize("BENCH_HEAVY", 10_000)?.max(PAGE),
            records: env_usize("BENCH_RECORDS", 5_000_000)? as u64,
            lookups: env_usize("BENCH_LOOKUPS", 10_000)?.max(1),
            searches: env_usize("BENCH_SEARCHES", 400)?.max(KINDS.len()),
            pages: env_usize("BENCH_PAGES", 2000)?.max(1),
            import: env_usize("BENCH_IMPORT", 100_000)?.max(1),
            index_rss: env_usize("BENCH_INDEX_RSS", 1)? != 0,
        })
    }
}

/// Wrong answers seen: each printed when found (the first 20) and counted.
#[derive(Default)]
struct Findings {
    listed: Vec<String>,
    count: usize,
}

impl Findings {
    fn add(&mut self, what: String) {
        self.count += 1;
        if self.listed.len() < 20 {
            println!("DEFECT: {what}");
            self.listed.push(what);
        }
    }
}

// ----- setup -----

/// A standalone terminal (no hub, no reader) on `data`, its API on an ephemeral port,
/// the POS token acting as owner so that it may import and export.
fn write_config(dir: &Path, data: &Path) -> Result<PathBuf> {
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n"))?;
    let name = data.file_name().and_then(|n| n.to_str()).unwrap_or("data");
    let path = dir.join(format!("{name}.toml"));
    let quoted = |p: &Path| format!("{:?}", p.display().to_string());
    let text = format!(
        "terminal_id = \"T1\"\ndata_dir = {}\nrules = {}\nclock = \"auto\"\ncache_mib = 8\n\
         [api]\nlisten = \"127.0.0.1:0\"\ntoken_file = {}\npos_role = \"owner\"\n\
         [reader]\nspec = \"none\"\n[sync]\nupstream = \"\"\n",
        quoted(data),
        quoted(&repo("config/rules.toml")),
        quoted(&token),
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The engine `loyaltyd --config CONFIG serve` opens.
fn open_engine(config: &Path) -> Result<Engine> {
    let cfg = Config::load(config, true).map_err(|e| anyhow!("{e}"))?;
    let rules = cfg.load_rules().map_err(|e| anyhow!("{e}"))?;
    Ok(Engine::open(EngineConfig::of(&cfg), rules)?)
}

/// `f(0)` to `f(n - 1)` on `threads` threads; their commits share fdatasyncs.
fn parallel(n: usize, threads: usize, f: impl Fn(usize) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        if let Err(e) = f(i) {
                            next.store(n, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        // The scope joins the rest if one fails.
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("setup thread panicked"))
    })
}

/// `n` checkouts by the members `who` picks, each of 2 or 3 catalog lines.
fn checkouts(engine: &Engine, n: usize, seed: u64, who: impl Fn(&mut Rng) -> usize + Sync) -> Result<()> {
    parallel(n, SETUP_THREADS, |i| {
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003) ^ i as u64);
        let sale = Sale {
            card: card(who(&mut rng)),
            lines: random_lines(&mut rng),
            ..Sale::default()
        };
        engine
            .checkout(&sale, None, engine.at(None))
            .with_context(|| format!("checkout by {}", sale.card))?;
        Ok(())
    })
}

/// The cursor of the `k`th timed page: one in ten the newest page, the others a random
/// depth into a list of `len` entries. The same sequence everywhere it is used.
fn cursor_at(rng: &mut Rng, k: usize, len: usize) -> Option<usize> {
    (k % 10 != 0).then(|| 1 + rng.below(len))
}

/// What a page before entry `after` (None: the newest) of a list of `len` holds.
fn expected_page(after: Option<usize>, len: usize) -> (usize, Option<usize>) {
    let end = after.unwrap_or(len).min(len);
    let n = end.min(PAGE);
    (n, (end > n).then_some(end - n))
}

/// The heavy member's pages through the library, timed, at the journal's current length.
struct LibPages {
    records: u64,
    tx: Lat,
    ledger: Lat,
}

fn library_pages(engine: &Engine, id: &str, len: usize, n: usize, found: &mut Findings) -> Result<LibPages> {
    let mut rng = Rng::new(7);
    let (mut tx, mut ledger) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for k in 0..WARMUP + n {
        let after = cursor_at(&mut rng, k, len);
        let cursor = after.map(|a| a.to_string());
        let t = Instant::now();
        let page = engine.transactions_page(id, cursor.as_deref(), Some(PAGE))?;
        let t_tx = us(t.elapsed());
        let t = Instant::now();
        let entries = engine.ledger_page(id, cursor.as_deref(), Some(PAGE))?;
        let t_ledger = us(t.elapsed());
        if k >= WARMUP {
            tx.push(t_tx);
            ledger.push(t_ledger);
        }
        let (want, next) = expected_page(after, len);
        let got = (page.transactions.len(), page.next.as_deref().map(str::parse::<usize>));
        if got.0 != want || got.1.map(|r| r.ok()) != next.map(Some) {
            found.add(format!(
                "library transactions_page({id}, after {cursor:?}): {} entries, next {:?}; expected {want}, {next:?}",
                got.0, page.next
            ));
        }
        if entries.entries.len() != want {
            found.add(format!(
                "library ledger_page({id}, after {cursor:?}): {} entries, expected {want}",
                entries.entries.len()
            ));
        }
    }
    Ok(LibPages {
        records: engine.journal().last_seq(),
        tx: Lat::new(tx),
        ledger: Lat::new(ledger),
    })
}

struct Setup {
    enrol: Duration,
    heavy: Duration,
    fill: Duration,
    heavy_id: String,
    early: LibPages,
    late: LibPages,
    records: u64,
    /// `find_by_phone` in process, at the end.
    lookups: Lat,
}

/// The engine's own lookups by phone, without HTTP: what the daemon adds is the rest.
fn library_lookups(engine: &Engine, members: usize, n: usize) -> Result<Lat> {
    let mut rng = Rng::new(11);
    let mut lat = Vec::with_capacity(n);
    let at = engine.at(None);
    for k in 0..WARMUP + n {
        let i = rng.below(members);
        let t = Instant::now();
        engine.find_by_phone(&phone(i), &at)?;
        if k >= WARMUP {
            lat.push(us(t.elapsed()));
        }
    }
    Ok(Lat::new(lat))
}

fn build_data_dir(config: &Path, s: &Settings, found: &mut Findings) -> Result<Setup> {
    let engine = open_engine(config)?;
    let t0 = Instant::now();
    let at = engine.at(None);
    for start in (0..s.members).step_by(ENROL_CHUNK) {
        let end = (start + ENROL_CHUNK).min(s.members);
        enrol(&engine, start..end, SETUP_THREADS, at.clone())?;
        println!(
            "  enrolled {end} of {} ({:.0} s)",
            s.members,
            t0.elapsed().as_secs_f64()
        );
    }
    let enrol_time = t0.elapsed();
    let heavy_id = engine.show_member(&card(0), engine.at(None))?.member_id;
    let t1 = Instant::now();
    checkouts(&engine, s.heavy, 1, |_| 0)?;
    let heavy = t1.elapsed();
    println!(
        "  the heavy member {heavy_id}: {} checkouts in {:.1} s ({:.0}/s); journal {} records",
        s.heavy,
        heavy.as_secs_f64(),
        rate(s.heavy, heavy),
        engine.journal().last_seq()
    );
    let early = library_pages(&engine, &heavy_id, s.heavy, s.pages, found)?;
    print_lib_pages("  heavy member's pages in process", &early);
    let t2 = Instant::now();
    let members = s.members;
    let mut round = 0;
    loop {
        let have = engine.journal().last_seq();
        if have >= s.records {
            break;
        }
        let n = (s.records - have).min(FILL_CHUNK as u64) as usize;
        round += 1;
        // Everyone but the heavy member, whose history stays at exactly BENCH_HEAVY.
        checkouts(&engine, n, 100 + round, |rng| 1 + rng.below(members - 1))?;
        println!(
            "  filled to {} records ({:.0} s, {:.0} checkouts/s)",
            engine.journal().last_seq(),
            t2.elapsed().as_secs_f64(),
            rate(
                s.records.min(engine.journal().last_seq()) as usize - early.records as usize,
                t2.elapsed()
            )
        );
    }
    let fill = t2.elapsed();
    let late = library_pages(&engine, &heavy_id, s.heavy, s.pages, found)?;
    print_lib_pages("  heavy member's pages in process", &late);
    let lookups = library_lookups(&engine, s.members, s.lookups)?;
    println!("  lookups by phone in process: {}", lat_line(&lookups));
    let records = engine.journal().last_seq();
    engine.close()?;
    drop(engine);
    Ok(Setup {
        enrol: enrol_time,
        heavy,
        fill,
        heavy_id,
        early,
        late,
        records,
        lookups,
    })
}

fn print_lib_pages(what: &str, p: &LibPages) {
    println!(
        "{what} at {} records: transactions p50 {} us p99 {} us max {} us; ledger p50 {} us p99 {} us max {} us",
        p.records,
        p.tx.pct(0.5),
        p.tx.pct(0.99),
        p.tx.max(),
        p.ledger.pct(0.5),
        p.ledger.pct(0.99),
        p.ledger.max()
    );
}

// ----- the daemon -----

fn daemon_bin() -> Result<PathBuf> {
    let bin = std::env::var_os("LOYALTYD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("target/release/loyaltyd"));
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).map_err(|e| {
        anyhow!(
            "{}: {e}; run `cargo build --release --bin loyaltyd` first (or set LOYALTYD_BIN)",
            bin.display()
        )
    })?;
    if newest_under(&repo("src")) > built {
        println!(
            "note: {} is older than src/; rebuild it to measure the current code",
            bin.display()
        );
    }
    Ok(bin)
}

fn newest_under(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let t = if meta.is_dir() {
            newest_under(&entry.path())
        } else {
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
        };
        newest = newest.max(t);
    }
    newest
}

/// Bytes under `path`, recursively.
fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| du(&e.path()))
        .sum()
}

/// Free space on the file system of `path`, for the log (a full disk stops the daemon).
fn free_disk(path: &Path) -> String {
    let Ok(c) = std::ffi::CString::new(path.display().to_string()) else {
        return "?".into();
    };
    // SAFETY: statvfs fills the zeroed struct it is given; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return "?".into();
    }
    format!(
        "{:.1} GiB",
        (st.f_bavail as u64 * st.f_frsize as u64) as f64 / (1u64 << 30) as f64
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The running `loyaltyd serve`; killed on drop if the benchmark fails half-way.
struct Daemon {
    child: Child,
    /// Its data dir.
    dir: PathBuf,
    url: String,
    journal_line: String,
    started_in: Duration,
    log: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(bin: &Path, config: &Path, data: &Path) -> Result<Daemon> {
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("LOYALTYD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let t0 = Instant::now();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut d = Daemon {
            child,
            dir: data.to_path_buf(),
            url: String::new(),
            journal_line: String::new(),
            started_in: Duration::ZERO,
            log,
        };
        let mut seen = Vec::new();
        while d.url.is_empty() {
            let Ok(line) = d.log.recv_timeout(START_TIMEOUT.saturating_sub(t0.elapsed())) else {
                bail!("the daemon did not start; it said:\n{}", seen.join("\n"));
            };
            if let Some(i) = line.find("journal: ") {
                d.journal_line = line[i..].to_string();
            }
            if let Some(i) = line.find("listening on http://") {
                let addr = line[i + "listening on ".len()..].split_whitespace().next();
                d.url = addr.unwrap_or_default().to_string();
            }
            seen.push(line);
        }
        d.started_in = t0.elapsed();
        Ok(d)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_mib(&self) -> Result<f64> {
        rss_mib(self.pid())
    }

    /// SIGTERM, as systemd stops it; how long the clean exit took.
    fn stop(&mut self) -> Result<Duration> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(120) {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    // Give the log thread the last lines.
                    std::thread::sleep(Duration::from_millis(200));
                    let said: Vec<String> = self.log.try_iter().collect();
                    let tail = &said[said.len().saturating_sub(30)..];
                    bail!(
                        "the daemon exited with {status}; free disk {}; its last words:\n{}",
                        free_disk(&self.dir),
                        tail.join("\n")
                    );
                }
                return Ok(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the daemon did not stop within 120 s of SIGTERM")
    }

    /// Warnings and errors the daemon logged since the last call.
    fn complaints(&self) -> Vec<String> {
        self.log
            .try_iter()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).unwrap_or(&"0").parse::<u64>()? + f.get(12).unwrap_or(&"0").parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// The daemon's CPU per request over a phase of `n` requests, µs, and the load average.
fn cpu_note(pid: u32, before: Duration, n: usize) -> Result<String> {
    let used = cpu_time(pid)?.saturating_sub(before);
    Ok(format!(
        "daemon CPU {:.0} us per request; load average {}",
        used.as_secs_f64() * 1e6 / n.max(1) as f64,
        loadavg()
    ))
}

fn rss_mib(pid: u32) -> Result<f64> {
    Ok(common::proc_status_kib(&pid.to_string(), "VmRSS:")? as f64 / 1024.0)
}

// ----- the HTTP client -----

/// One POS connection, kept alive.
struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Client {
    fn new(base: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Client {
            agent,
            base: base.to_string(),
            auth: format!("Bearer {TOKEN}"),
        }
    }

    /// Status and body.
    fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .call()?;
        let body = resp.body_mut().read_to_string()?;
        Ok((resp.status().as_u16(), body))
    }

    fn json(&self, path: &str) -> Result<Value> {
        match self.get(path)? {
            (200, body) => Ok(serde_json::from_str(&body)?),
            (s, body) => bail!("GET {path}: {s} {body}"),
        }
    }
}

/// Percent-encodes a query value (`+` and spaces included).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A timed GET: latency, and the JSON answer if it was a 200 (else a finding).
fn timed(c: &Client, path: &str, found: &mut Findings) -> Result<(u32, Option<Value>)> {
    let t = Instant::now();
    let (status, body) = c.get(path)?;
    let lat = us(t.elapsed());
    if status != 200 {
        found.add(format!("GET {path}: {status} {}", trunc(&body)));
        return Ok((lat, None));
    }
    Ok((lat, Some(serde_json::from_str(&body)?)))
}

fn trunc(s: &str) -> String {
    s.chars().take(300).collect()
}

// ----- lookups by phone -----

/// Member `i`'s phone as a cashier types it (national, even `k`) or in full.
fn phone_query(i: usize, k: usize) -> String {
    let p = phone(i);
    let typed = if k % 2 == 0 { p["+86".len()..].to_string() } else { p };
    format!("/v1/members?phone={}", encode(&typed))
}

fn lookups(c: &Client, members: usize, n: usize, found: &mut Findings) -> Result<Lat> {
    let mut rng = Rng::new(11);
    let mut lat = Vec::with_capacity(n);
    for k in 0..WARMUP + n {
        let i = rng.below(members);
        let path = phone_query(i, k);
        let (t, answer) = timed(c, &path, found)?;
        if k >= WARMUP {
            lat.push(t);
        }
        let Some(v) = answer else { continue };
        let names: Vec<&str> = v["members"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["name"].as_str()).collect())
            .unwrap_or_default();
        if names != [format!("Member {i}").as_str()] {
            found.add(format!(
                "GET {path}: expected Member {i}, got {}",
                trunc(&v.to_string())
            ));
        }
    }
    Ok(Lat::new(lat))
}

// ----- search -----

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A whole name, "Member 123456".
    Name,
    /// "Member 123": a name with its last three digits left off.
    NamePrefix,
    /// The last 4 or 6 digits of a phone.
    PhoneSuffix,
    /// "BC" and the first 6 digits of a card: 100 cards.
    CardPrefix,
}

const KINDS: [Kind; 4] = [Kind::Name, Kind::NamePrefix, Kind::PhoneSuffix, Kind::CardPrefix];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Name => "whole name",
            Kind::NamePrefix => "name prefix",
            Kind::PhoneSuffix => "phone suffix",
            Kind::CardPrefix => "card prefix",
        }
    }

    /// The query for member `i`'s details.
    fn text(self, i: usize, k: usize) -> String {
        match self {
            Kind::Name => format!("Member {i}"),
            Kind::NamePrefix => format!("Member {}", i / 1000),
            Kind::PhoneSuffix => {
                let p = phone(i);
                p[p.len() - if k % 2 == 0 { 4 } else { 6 }..].to_string()
            }
            Kind::CardPrefix => card(i)[..8].to_string(),
        }
    }

    /// Whether a member in an answer matches the query.
    fn matches(self, text: &str, m: &Value) -> bool {
        match self {
            Kind::Name | Kind::NamePrefix => m["name"]
                .as_str()
                .is_some_and(|n| n.to_lowercase().starts_with(&text.to_lowercase())),
            Kind::PhoneSuffix => m["phone"].as_str().is_some_and(|p| p.ends_with(text)),
            Kind::CardPrefix => m["cards"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["card"].as_str().is_some_and(|c| c.starts_with(text)))
            }),
        }
    }

    /// How many of members `0..members` the query finds: names "Member j", phones
    /// `phone(j)`, cards `card(j)`.
    fn expected(self, text: &str, members: usize) -> usize {
        match self {
            Kind::Name | Kind::NamePrefix => {
                let p: usize = text["Member ".len()..].parse().expect("a number");
                if p == 0 {
                    return 1;
                }
                // j whose decimal digits start with p's: p, p0-p9, p00-p99, ...
                let (mut n, mut scale) = (0, 1);
                while p * scale < members {
                    n += ((p + 1) * scale).min(members) - p * scale;
                    scale *= 10;
                }
                n
            }
            Kind::PhoneSuffix => {
                let d: usize = text.parse().expect("digits");
                let m = 10usize.pow(text.len() as u32);
                if d >= members {
                    0
                } else {
                    (members - 1 - d) / m + 1
                }
            }
            Kind::CardPrefix => {
                let q: usize = text[2..].parse().expect("digits");
                members.saturating_sub(q * 100).min(100)
            }
        }
    }
}

#[derive(Default)]
struct SearchLat {
    first: Vec<u32>,
    next: Vec<u32>,
}

/// A search page's member ids, checked: each matches, in ascending order, after `after`.
fn page_ids(kind: Kind, text: &str, v: &Value, after: Option<&str>, found: &mut Findings) -> Vec<String> {
    let members = v["members"].as_array().cloned().unwrap_or_default();
    let ids: Vec<String> = members
        .iter()
        .map(|m| m["member_id"].as_str().unwrap_or_default().to_string())
        .collect();
    if let Some(bad) = members.iter().find(|m| !kind.matches(text, m)) {
        found.add(format!("search {text:?}: {} does not match", trunc(&bad.to_string())));
    }
    let mut prev = after.map(str::to_string);
    for id in &ids {
        if prev.as_ref().is_some_and(|p| p >= id) {
            found.add(format!(
                "search {text:?} after {after:?}: {id} after {prev:?} (not ascending past the cursor)"
            ));
        }
        prev = Some(id.clone());
    }
    ids
}

fn search_path(text: &str, after: Option<&str>, limit: Option<usize>) -> String {
    let mut p = format!("/v1/members?q={}", encode(text));
    if let Some(a) = after {
        p += &format!("&after={}", encode(a));
    }
    if let Some(l) = limit {
        p += &format!("&limit={l}");
    }
    p
}

fn searches(c: &Client, members: usize, n: usize, found: &mut Findings) -> Result<Vec<SearchLat>> {
    let mut rng = Rng::new(13);
    let mut out: Vec<SearchLat> = KINDS.iter().map(|_| SearchLat::default()).collect();
    for k in 0..n + SEARCH_WARMUP {
        let kind = KINDS[k % KINDS.len()];
        let text = kind.text(rng.below(members), k / KINDS.len());
        let want = kind.expected(&text, members);
        let (t, Some(v)) = timed(c, &search_path(&text, None, None), found)? else {
            continue;
        };
        let ids = page_ids(kind, &text, &v, None, found);
        let next = v["next"].as_str().map(str::to_string);
        if ids.len() != want.min(PAGE) || next.is_some() != (want > PAGE) {
            found.add(format!(
                "search {text:?}: {} members, next {next:?}; {want} match, so expected {} and {}",
                ids.len(),
                want.min(PAGE),
                if want > PAGE { "a cursor" } else { "none" }
            ));
        }
        let timed_page = k >= SEARCH_WARMUP;
        if timed_page {
            out[k % KINDS.len()].first.push(t);
        }
        let Some(after) = next else { continue };
        let (t, Some(v)) = timed(c, &search_path(&text, Some(&after), None), found)? else {
            continue;
        };
        let more = page_ids(kind, &text, &v, Some(&after), found);
        if more.len() != (want - PAGE).min(PAGE) || more.iter().any(|id| ids.contains(id)) {
            found.add(format!(
                "search {text:?} after {after}: {} members (expected {}), repeats: {}",
                more.len(),
                (want - PAGE).min(PAGE),
                more.iter().any(|id| ids.contains(id))
            ));
        }
        if timed_page {
            out[k % KINDS.len()].next.push(t);
        }
    }
    Ok(out)
}

/// Every page of a few queries of each kind, 100 at a time: the ids must be exactly the
/// members that match, each once, in order. Returns the queries walked.
fn search_walks(c: &Client, members: usize, found: &mut Findings) -> Result<Vec<String>> {
    let mut rng = Rng::new(17);
    let mut walked = Vec::new();
    for kind in KINDS {
        let mut k = 0;
        while walked.iter().filter(|(kd, _)| *kd == kind.label()).count() < 2 {
            k += 1;
            let text = kind.text(rng.below(members), k);
            let want = kind.expected(&text, members);
            if want > 5000 && k < 100 {
                continue; // keeps the walks short
            }
            let (mut after, mut seen, mut pages) = (None::<String>, HashSet::new(), 0);
            let mut total = 0;
            loop {
                let v = c.json(&search_path(&text, after.as_deref(), Some(100)))?;
                let ids = page_ids(kind, &text, &v, after.as_deref(), found);
                total += ids.len();
                seen.extend(ids);
                pages += 1;
                match v["next"].as_str() {
                    Some(n) => after = Some(n.to_string()),
                    None => break,
                }
            }
            if total != want || seen.len() != want {
                found.add(format!(
                    "walking search {text:?}: {total} members over {pages} pages ({} distinct); {want} match",
                    seen.len()
                ));
            }
            walked.push((kind.label(), format!("{text:?} ({want} in {pages} pages)")));
        }
    }
    Ok(walked.into_iter().map(|(_, w)| w).collect())
}

// ----- history -----

struct HistoryLat {
    tx: Lat,
    ledger: Lat,
}

fn history(c: &Client, id: &str, len: usize, n: usize, found: &mut Findings) -> Result<HistoryLat> {
    let mut rng = Rng::new(7);
    let (mut tx, mut ledger) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for k in 0..WARMUP + n {
        let after = cursor_at(&mut rng, k, len);
        let query = match after {
            Some(a) => format!("?limit={PAGE}&after={a}"),
            None => format!("?limit={PAGE}"),
        };
        let (want, next) = expected_page(after, len);
        for (list, field, lat) in [
            ("transactions", "transactions", &mut tx),
            ("points", "entries", &mut ledger),
        ] {
            let path = format!("/v1/members/{id}/{list}{query}");
            let (t, answer) = timed(c, &path, found)?;
            if k >= WARMUP {
                lat.push(t);
            }
            let Some(v) = answer else { continue };
            let got = v[field].as_array().map_or(0, Vec::len);
            let got_next = v["next"].as_str().and_then(|s| s.parse::<usize>().ok());
            // The ledger is at least as long as the transactions: only its length is known.
            if got != want || (list == "transactions" && got_next != next) {
                found.add(format!(
                    "GET {path}: {got} entries, next {got_next:?}; expected {want}, {next:?}"
                ));
            }
        }
    }
    Ok(HistoryLat {
        tx: Lat::new(tx),
        ledger: Lat::new(ledger),
    })
}

/// Every page of the heavy member's two lists: each transaction once, all `len` of
/// them, and ledger entries that add up to the balance.
fn history_walks(c: &Client, id: &str, len: usize, found: &mut Findings) -> Result<String> {
    let balance = c.json(&format!("/v1/members/{id}"))?["balance"].as_i64().unwrap_or(-1);
    let (mut after, mut txs, mut pages) = (None::<String>, HashSet::new(), 0);
    let mut listed = 0;
    loop {
        let q = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let v = c.json(&format!("/v1/members/{id}/transactions?limit=100{q}"))?;
        for t in v["transactions"].as_array().into_iter().flatten() {
            listed += 1;
            txs.insert(t["tx_id"].as_str().unwrap_or_default().to_string());
        }
        pages += 1;
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    if listed != len || txs.len() != len {
        found.add(format!(
            "walking {id}'s transactions: {listed} listed, {} distinct; {len} made",
            txs.len()
        ));
    }
    let (mut after, mut sum, mut entries, mut newest) = (None::<String>, 0i64, 0, None);
    loop {
        let q = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let v = c.json(&format!("/v1/members/{id}/points?limit=100{q}"))?;
        for e in v["entries"].as_array().into_iter().flatten() {
            entries += 1;
            sum += e["points"].as_i64().unwrap_or(0);
            newest = newest.or(e["balance_after"].as_i64());
        }
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    if sum != balance || newest != Some(balance) {
        found.add(format!(
            "{id}'s ledger: {entries} entries add up to {sum}, the newest says {newest:?}; the balance is {balance}"
        ));
    }
    Ok(format!(
        "{listed} transactions in {pages} pages, each once; {entries} ledger entries adding up to {sum} = balance {balance}"
    ))
}

// ----- export and import -----

struct Export {
    secs: f64,
    bytes: u64,
    rows: u64,
    rss_before: f64,
    /// The largest RSS sampled in the first and the second half of the export.
    max_halves: (f64, f64),
    min: f64,
    rss_after: f64,
    head: String,
}

fn export(c: &Client, pid: u32) -> Result<Export> {
    let rss_before = rss_mib(pid)?;
    let stop = AtomicBool::new(false);
    let (read, samples) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut v = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = rss_mib(pid) {
                    v.push(r);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            v
        });
        let read = (|| -> Result<(f64, u64, u64, String)> {
            let t = Instant::now();
            let resp = c
                .agent
                .get(format!("{}/v1/members/export?format=csv", c.base))
                .header("Authorization", &c.auth)
                .call()?;
            if resp.status() != 200 {
                bail!("GET /v1/members/export: {}", resp.status());
            }
            let mut body = resp.into_body().into_reader();
            let mut buf = vec![0u8; 64 << 10];
            let (mut bytes, mut lines, mut head) = (0u64, 0u64, Vec::new());
            loop {
                let n = body.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if head.len() < 200 {
                    head.extend_from_slice(&buf[..n.min(200)]);
                }
                bytes += n as u64;
                lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            }
            let head = String::from_utf8_lossy(&head)
                .lines()
                .take(2)
                .collect::<Vec<_>>()
                .join(" | ");
            Ok((t.elapsed().as_secs_f64(), bytes, lines, head))
        })();
        stop.store(true, Ordering::Relaxed);
        (read, sampler.join().expect("sampler panicked"))
    });
    let (secs, bytes, lines, head) = read?;
    let half = samples.len() / 2;
    let max = |s: &[f64]| s.iter().copied().fold(rss_before, f64::max);
    Ok(Export {
        secs,
        bytes,
        rows: lines.saturating_sub(1),
        rss_before,
        max_halves: (max(&samples[..half]), max(&samples[half..])),
        min: samples.iter().copied().fold(rss_before, f64::min),
        rss_after: rss_mib(pid)?,
        head,
    })
}

/// `n` new members from number `from` on, as an import file; and their points.
fn import_file(from: usize, n: usize) -> (Vec<u8>, i64) {
    let mut csv = String::from("card,name,phone,birthday,points,tier,tags\n");
    let mut points = 0;
    for j in from..from + n {
        let p = (j % 1000) as i64;
        points += p;
        let tags = if j % 10 == 0 { "vip;imported" } else { "imported" };
        csv += &format!("{},Member {j},{},,{p},,{tags}\n", card(j), phone(j));
    }
    (csv.into_bytes(), points)
}

struct Import {
    rows: usize,
    mib: f64,
    secs: f64,
}

fn import(c: &Client, from: usize, n: usize, found: &mut Findings) -> Result<Import> {
    let (file, points) = import_file(from, n);
    let t = Instant::now();
    let mut resp = c
        .agent
        .post(format!("{}/v1/members/import", c.base))
        .header("Authorization", &c.auth)
        .header("Content-Type", "text/csv")
        .send(&file[..])?;
    let body = resp.body_mut().read_to_string()?;
    let secs = t.elapsed().as_secs_f64();
    if resp.status() != 200 {
        bail!("POST /v1/members/import: {} {}", resp.status(), trunc(&body));
    }
    let v: Value = serde_json::from_str(&body)?;
    if v["imported"].as_u64() != Some(n as u64) || v["points"].as_i64() != Some(points) {
        found.add(format!("import of {n} rows with {points} points answered {body}"));
    }
    // The last row is there: found by phone, with its points.
    let last = from + n - 1;
    let v = c.json(&phone_query(last, 1))?;
    let m = &v["members"][0];
    if m["name"].as_str() != Some(&format!("Member {last}")) || m["balance"].as_i64() != Some((last % 1000) as i64) {
        found.add(format!(
            "after the import, phone of Member {last}: {}",
            trunc(&v.to_string())
        ));
    }
    Ok(Import {
        rows: n,
        mib: mib(file.len() as u64),
        secs,
    })
}

// ----- the indexes' cost -----

/// Keys and bytes of the store, by first key byte (the default tree) and in the other
/// trees.
#[derive(Default)]
struct Census {
    by_prefix: std::collections::BTreeMap<u8, (u64, u64)>,
    other_trees: (u64, u64),
}

impl Census {
    fn bytes_of(&self, prefixes: &[u8]) -> u64 {
        prefixes.iter().filter_map(|p| self.by_prefix.get(p)).map(|e| e.1).sum()
    }
    fn keys_of(&self, prefixes: &[u8]) -> u64 {
        prefixes.iter().filter_map(|p| self.by_prefix.get(p)).map(|e| e.0).sum()
    }
    fn total_bytes(&self) -> u64 {
        self.by_prefix.values().map(|e| e.1).sum::<u64>() + self.other_trees.1
    }
}

/// sled as the store opens it (src/store/mod.rs).
fn open_sled(dir: &Path) -> Result<sled::Db> {
    Ok(sled::Config::new()
        .path(dir)
        .cache_capacity(8 << 20)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(Some(1000))
        .open()?)
}

/// Counts the store's keys; with `copies`, also writes every key to `full` and every key
/// but the 0.2 indexes' to `bare`, afresh and in key order, so that the two differ in
/// nothing else.
fn census(state: &Path, copies: Option<(&Path, &Path)>) -> Result<Census> {
    let db = open_sled(state)?;
    let dst = copies
        .map(|(f, b)| Ok::<_, anyhow::Error>((open_sled(f)?, open_sled(b)?)))
        .transpose()?;
    let mut c = Census::default();
    let default_tree = db.name();
    for name in db.tree_names() {
        let src = db.open_tree(&name)?;
        let to = dst
            .as_ref()
            .map(|(f, b)| Ok::<_, anyhow::Error>((f.open_tree(&name)?, b.open_tree(&name)?)))
            .transpose()?;
        for kv in src.iter() {
            let (k, v) = kv?;
            let bytes = (k.len() + v.len()) as u64;
            let index = name == default_tree
                && k.first()
                    .is_some_and(|p| SEARCH_KEYS.contains(p) || HISTORY_KEYS.contains(p));
            if name == default_tree {
                let e = c.by_prefix.entry(k.first().copied().unwrap_or(0)).or_default();
                *e = (e.0 + 1, e.1 + bytes);
            } else {
                c.other_trees = (c.other_trees.0 + 1, c.other_trees.1 + bytes);
            }
            if let Some((full, bare)) = &to {
                full.insert(&k, v.clone())?;
                if !index {
                    bare.insert(&k, v)?;
                }
            }
        }
    }
    if let Some((f, b)) = dst {
        f.flush()?;
        b.flush()?;
    }
    Ok(c)
}

/// Two data dirs beside `data` for the copies of its store, `full` and `bare`, holding
/// its journal as it is now (before the daemon appends the imports to it): one copy,
/// hard-linked into the second, since the daemons started on them only read. Returns
/// each dir with its state dir.
fn copy_dirs(data: &Path) -> Result<[(PathBuf, PathBuf); 2]> {
    let dirs = ["full", "bare"].map(|name| data.with_file_name(name));
    for dir in &dirs {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(journal_path(data), journal_path(&dirs[0]))?;
    std::fs::hard_link(journal_path(&dirs[0]), journal_path(&dirs[1]))?;
    Ok(dirs.map(|d| {
        let state = d.join("state");
        (d, state)
    }))
}

/// RSS after start-up and after the phone lookups, on one data dir.
fn daemon_rss(bin: &Path, tmp: &Path, data: &Path, s: &Settings) -> Result<(f64, f64, Duration)> {
    let config = write_config(tmp, data)?;
    let mut d = Daemon::start(bin, &config, data)?;
    let up = d.rss_mib()?;
    lookups(&Client::new(&d.url), s.members, s.lookups, &mut Findings::default())?;
    let after = d.rss_mib()?;
    let started = d.started_in;
    d.stop()?;
    Ok((up, after, started))
}

/// A kept data dir's members (0 to the first number no phone finds, found by bisection:
/// imports add them in order) and its heavy member (member 0) with its transactions.
fn survey(c: &Client, members: usize) -> Result<(usize, String, usize)> {
    let exists = |n: usize| -> Result<bool> {
        Ok(c.json(&phone_query(n, 1))?["members"]
            .as_array()
            .is_some_and(|a| !a.is_empty()))
    };
    let (mut lo, mut hi) = (members.saturating_sub(1), members + 100_000_000 - 1);
    if !exists(lo)? {
        bail!("BENCH_DATA holds no member {lo}: set BENCH_MEMBERS as when it was built");
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exists(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let id = c.json(&format!("/v1/cards/{}", card(0)))?["member_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let first = c.json(&format!("/v1/members/{id}/transactions?limit=1"))?;
    let len = first["next"]
        .as_str()
        .map_or(Ok(1), |n| n.parse::<usize>().map(|n| n + 1))?;
    Ok((lo + 1, id, len))
}

// ----- main -----

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn lat_line(l: &Lat) -> String {
    if l.0.is_empty() {
        return "none".into();
    }
    format!(
        "p50 {} us, p90 {} us, p99 {} us, max {} us (n={})",
        l.pct(0.5),
        l.pct(0.9),
        l.pct(0.99),
        l.max(),
        l.0.len()
    )
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn main() -> Result<()> {
    let s = Settings::from_env()?;
    let bin = daemon_bin()?;
    let mut tmp = tempfile::tempdir_in(bench_dir()?)?;
    // BENCH_KEEP=1 keeps the data dir for a look afterwards (it is large).
    tmp.disable_cleanup(env_usize("BENCH_KEEP", 0)? != 0);
    // BENCH_DATA=DIR: the HTTP phases on a data dir a run kept (BENCH_KEEP), no setup.
    let reuse = std::env::var_os("BENCH_DATA").map(PathBuf::from);
    let data = reuse.clone().unwrap_or_else(|| tmp.path().join("data"));
    let config = write_config(tmp.path(), &data)?;
    let total = Instant::now();
    let mut found = Findings::default();
    println!(
        "bench dir {}; daemon {}; {}; load average {}",
        tmp.path().display(),
        bin.display(),
        match &reuse {
            Some(d) => format!("the kept data dir {}", d.display()),
            None => format!("members {}, heavy {}, records {}", s.members, s.heavy, s.records),
        },
        loadavg()
    );

    // 1. Setup through the library.
    let setup = match reuse {
        Some(_) => None,
        None => {
            println!("setup: {} members, {SETUP_THREADS} threads", s.members);
            Some(build_data_dir(&config, &s, &mut found)?)
        }
    };
    if let Some(setup) = &setup {
        println!(
        "setup: enrolment {:.0} s, the heavy member {:.0} s, filler {:.0} s; {} records; data dir {:.0} MiB (journal {:.0} MiB, state {:.0} MiB); free disk {}",
        setup.enrol.as_secs_f64(),
        setup.heavy.as_secs_f64(),
        setup.fill.as_secs_f64(),
        setup.records,
        mib(du(&data)),
        mib(du(&journal_path(&data))),
        mib(du(&data.join("state"))),
        free_disk(&data)
    );
    }

    // The store's keys, and its copies with and without the indexes, before the daemon
    // adds members by import.
    let t = Instant::now();
    let copies = if s.index_rss && setup.is_some() {
        Some(copy_dirs(&data)?)
    } else {
        None
    };
    let census = census(
        &data.join("state"),
        copies.as_ref().map(|[(_, f), (_, b)]| (f.as_path(), b.as_path())),
    )?;
    println!(
        "store keys counted{} in {:.0} s:",
        if copies.is_some() { " and copied" } else { "" },
        t.elapsed().as_secs_f64()
    );
    for (p, (keys, bytes)) in &census.by_prefix {
        println!(
            "  {:>4}  {keys:>10} keys  {:>8.1} MiB",
            (*p as char).escape_default().to_string(),
            mib(*bytes)
        );
    }
    println!(
        "  other trees {} keys {:.1} MiB",
        census.other_trees.0,
        mib(census.other_trees.1)
    );

    // The indexes' cost in the daemon's memory, on the copies, which then go: the
    // disk is needed for what the daemon writes next.
    let index_rss = match &copies {
        Some([(full, _), (bare, _)]) => {
            let f = daemon_rss(&bin, tmp.path(), full, &s)?;
            let b = daemon_rss(&bin, tmp.path(), bare, &s)?;
            println!(
                "daemon on a fresh copy of the store: RSS {:.1} MiB after start-up ({:.1} s), {:.1} after the lookups; \
                 without the 0.2 indexes: {:.1} MiB ({:.1} s), {:.1}",
                f.0,
                f.2.as_secs_f64(),
                f.1,
                b.0,
                b.2.as_secs_f64(),
                b.1
            );
            std::fs::remove_dir_all(full)?;
            std::fs::remove_dir_all(bare)?;
            Some((f, b))
        }
        None => None,
    };

    // 2. The daemon.
    let mut daemon = Daemon::start(&bin, &config, &data)?;
    let c = Client::new(&daemon.url);
    let rss_up = daemon.rss_mib()?;
    println!(
        "daemon: pid {} on {}, listening {:.1} s after spawn; {}; RSS {rss_up:.1} MiB",
        daemon.pid(),
        daemon.url,
        daemon.started_in.as_secs_f64(),
        daemon.journal_line
    );

    // Who is there: as built, or as a kept dir holds them (imports add members from
    // number BENCH_MEMBERS on).
    let (pop, heavy_id, heavy_len) = match &setup {
        Some(st) => (s.members, st.heavy_id.clone(), s.heavy),
        None => survey(&c, s.members)?,
    };
    if setup.is_none() {
        println!(
            "kept data dir: members 0 to {}, the heavy member {heavy_id} with {heavy_len} transactions",
            pop - 1
        );
    }

    let records_start = c.json("/v1/health")?["journal_records"].as_u64().unwrap_or(0);

    // 3. Reads over HTTP.
    let cpu = cpu_time(daemon.pid())?;
    let lookup = lookups(&c, pop, s.lookups, &mut found)?;
    println!(
        "lookup by phone: {}; {}",
        lat_line(&lookup),
        cpu_note(daemon.pid(), cpu, s.lookups + WARMUP)?
    );
    let (t, cpu) = (Instant::now(), cpu_time(daemon.pid())?);
    let search = searches(&c, pop, s.searches, &mut found)?;
    let requests: usize = search.iter().map(|l| l.first.len() + l.next.len()).sum();
    println!(
        "search ({:.0} s; {}):",
        t.elapsed().as_secs_f64(),
        cpu_note(daemon.pid(), cpu, requests)?
    );
    for (kind, l) in KINDS.iter().zip(&search) {
        println!(
            "  {:<12}: first page {}; next page {}",
            kind.label(),
            lat_line(&Lat::new(l.first.clone())),
            lat_line(&Lat::new(l.next.clone()))
        );
    }
    let all_search = Lat::new(
        search
            .iter()
            .flat_map(|l| l.first.iter().chain(&l.next))
            .copied()
            .collect(),
    );
    println!("  every page: {}", lat_line(&all_search));
    let walks = search_walks(&c, pop, &mut found)?;
    println!("search walks (limit 100, every page): {}", walks.join("; "));
    let cpu = cpu_time(daemon.pid())?;
    let hist = history(&c, &heavy_id, heavy_len, s.pages, &mut found)?;
    println!(
        "heavy member's pages: {}",
        cpu_note(daemon.pid(), cpu, 2 * (s.pages + WARMUP))?
    );
    println!("heavy member's transactions page: {}", lat_line(&hist.tx));
    println!("heavy member's ledger page:       {}", lat_line(&hist.ledger));
    println!(
        "history walks: {}",
        history_walks(&c, &heavy_id, heavy_len, &mut found)?
    );

    // 4. Memory after the reads.
    let rss_reads = daemon.rss_mib()?;
    println!(
        "daemon RSS after the reads: {rss_reads:.1} MiB; free disk {}",
        free_disk(&data)
    );

    // 5. Export.
    let ex = export(&c, daemon.pid())?;
    println!(
        "export: {} rows, {:.1} MiB in {:.2} s ({:.0} rows/s); RSS before {:.1}, min {:.1}, max in the first half {:.1}, in the second {:.1}, after {:.1} MiB; {}",
        ex.rows,
        mib(ex.bytes),
        ex.secs,
        ex.rows as f64 / ex.secs,
        ex.rss_before,
        ex.min,
        ex.max_halves.0,
        ex.max_halves.1,
        ex.rss_after,
        ex.head
    );
    if ex.rows != pop as u64 {
        found.add(format!("the export has {} rows for {pop} members", ex.rows));
    }

    // 6. Imports.
    let mut imports = Vec::new();
    for k in 0..2 {
        let im = import(&c, pop + k * s.import, s.import, &mut found)?;
        println!(
            "import {}: {} rows ({:.1} MiB) in {:.2} s ({:.0} rows/s); RSS after {:.1} MiB; free disk {}",
            k + 1,
            im.rows,
            im.mib,
            im.secs,
            im.rows as f64 / im.secs,
            daemon.rss_mib()?,
            free_disk(&data)
        );
        imports.push(im);
    }
    let rss_end = daemon.rss_mib()?;
    let records_end = c.json("/v1/health")?["journal_records"].as_u64().unwrap_or(0);

    // 7. Stop.
    let complaints = daemon.complaints();
    let stopped_in = daemon.stop()?;
    println!("daemon stopped {:.1} s after SIGTERM", stopped_in.as_secs_f64());
    for l in complaints.iter().take(20) {
        println!("daemon log: {l}");
    }

    // The summary.
    let pct = |a: u64, b: u64| a as f64 * 100.0 / b.max(1) as f64;
    let (tx_p99, ledger_p99) = (hist.tx.pct(0.99), hist.ledger.pct(0.99));
    println!();
    println!(
        "loyaltyd bench_members: {pop} members, the heavy one with {heavy_len} checkouts, {} journal records at start (BENCH_SEARCHES={}, BENCH_PAGES={}, BENCH_LOOKUPS={})",
        records_start, s.searches, s.pages, s.lookups
    );
    match &setup {
        Some(st) => println!(
            "setup through the library: enrolment {:.0} s, heavy member {:.0} s, filler {:.0} s; daemon listening after {:.1} s",
            st.enrol.as_secs_f64(),
            st.heavy.as_secs_f64(),
            st.fill.as_secs_f64(),
            daemon.started_in.as_secs_f64()
        ),
        None => println!("on the kept data dir {}; daemon listening after {:.1} s", data.display(), daemon.started_in.as_secs_f64()),
    }
    println!("| figure | measured | target | |");
    println!("|---|---|---|---|");
    let row = |f: &str, m: String, t: &str, ok: Option<bool>| {
        println!("| {f} | {m} | {t} | {} |", ok.map(met).unwrap_or(""));
    };
    row(
        "lookup by phone over HTTP",
        lat_line(&lookup),
        "p99 <= 1 ms",
        Some(lookup.pct(0.99) <= 1000),
    );
    if let Some(st) = &setup {
        row("  the same in process (find_by_phone)", lat_line(&st.lookups), "", None);
    }
    row(
        "search page, every kind",
        lat_line(&all_search),
        "p99 <= 5 ms",
        Some(all_search.pct(0.99) <= 5000),
    );
    for (kind, l) in KINDS.iter().zip(&search) {
        let first = Lat::new(l.first.clone());
        let next = Lat::new(l.next.clone());
        row(
            &format!("  {}: first page / next page", kind.label()),
            format!("p99 {} us / {} us", first.pct(0.99), next.pct(0.99)),
            "p99 <= 5 ms",
            Some(first.pct(0.99) <= 5000 && next.pct(0.99) <= 5000),
        );
    }
    row(
        "transactions page of 20 (HTTP)",
        lat_line(&hist.tx),
        "p99 <= 5 ms",
        Some(tx_p99 <= 5000),
    );
    row(
        "ledger page of 20 (HTTP)",
        lat_line(&hist.ledger),
        "p99 <= 5 ms",
        Some(ledger_p99 <= 5000),
    );
    if let Some(st) = &setup {
        // Judged on the medians: the tails follow the machine's load more than the data.
        let early = st.early.tx.pct(0.5).max(st.early.ledger.pct(0.5));
        let late = st.late.tx.pct(0.5).max(st.late.ledger.pct(0.5));
        row(
            "same pages in process, journal short vs long",
            format!(
                "{} records: p50 {} / {} us, p99 {} / {} us; {} records: p50 {} / {} us, p99 {} / {} us \
             (transactions / ledger)",
                st.early.records,
                st.early.tx.pct(0.5),
                st.early.ledger.pct(0.5),
                st.early.tx.pct(0.99),
                st.early.ledger.pct(0.99),
                st.late.records,
                st.late.tx.pct(0.5),
                st.late.ledger.pct(0.5),
                st.late.tx.pct(0.99),
                st.late.ledger.pct(0.99)
            ),
            "independent of the journal's length (here: long's p50 within 1.5x of short's)",
            Some(late as f64 <= early as f64 * 1.5 + 20.0),
        );
    }
    let index_bytes = census.bytes_of(SEARCH_KEYS) + census.bytes_of(HISTORY_KEYS);
    row(
        "0.2 index keys in the store (N,S,B,A,b + L,H)",
        format!(
            "{} + {} keys, {:.0} + {:.0} MiB = {:.1}% of the store's {:.0} MiB of keys and values",
            census.keys_of(SEARCH_KEYS),
            census.keys_of(HISTORY_KEYS),
            mib(census.bytes_of(SEARCH_KEYS)),
            mib(census.bytes_of(HISTORY_KEYS)),
            pct(index_bytes, census.total_bytes()),
            mib(census.total_bytes())
        ),
        "",
        None,
    );
    if let Some(((f_up, f_after, _), (b_up, b_after, _))) = index_rss {
        row(
            "daemon RSS, fresh store with / without the 0.2 indexes",
            format!(
                "{f_up:.1} / {b_up:.1} MiB after start-up (+{:.1}%), {f_after:.1} / {b_after:.1} after {} lookups (+{:.1}%)",
                (f_up / b_up - 1.0) * 100.0,
                s.lookups,
                (f_after / b_after - 1.0) * 100.0
            ),
            "the indexes add <= 20 %",
            Some(f_up <= b_up * 1.2 && f_after <= b_after * 1.2),
        );
    }
    row(
        "daemon RSS (the data dir as built)",
        format!(
            "{rss_up:.1} MiB after start-up, {rss_reads:.1} after the reads, {rss_end:.1} after the imports; 0.1.0: 115-116 after start-up ({:+.0}%)",
            (rss_up / RSS_0_1_MIB - 1.0) * 100.0
        ),
        "",
        None,
    );
    row(
        &format!("export of {pop} members"),
        format!("{:.2} s, {} rows, {:.0} MiB", ex.secs, ex.rows, mib(ex.bytes)),
        "<= 10 s",
        Some(ex.secs <= 10.0 && ex.rows == pop as u64),
    );
    row(
        "  memory during the export",
        format!(
            "RSS {:.1} before, max {:.1} in the first half, {:.1} in the second, {:.1} after (MiB)",
            ex.rss_before, ex.max_halves.0, ex.max_halves.1, ex.rss_after
        ),
        "flat (second half's max within 4 MiB of the first's)",
        Some(ex.max_halves.1 <= ex.max_halves.0 + 4.0),
    );
    for (k, im) in imports.iter().enumerate() {
        row(
            &format!("import {} of {} rows", k + 1, im.rows),
            format!("{:.2} s ({:.0} rows/s)", im.secs, im.rows as f64 / im.secs),
            "<= 20 s",
            Some(im.secs <= 20.0),
        );
    }
    row(
        "wrong answers (defects)",
        format!("{} (journal at {records_end} records at the end)", found.count),
        "0",
        Some(found.count == 0),
    );
    println!(
        "load average at the end {}; total run time {:.0} s",
        loadavg(),
        total.elapsed().as_secs_f64()
    );
    for f in &found.listed {
        println!("defect: {f}");
    }
    Ok(())
}
