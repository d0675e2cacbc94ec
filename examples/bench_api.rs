//! POS API benchmark against the real daemon process: prints figures, never passes or fails.
//!
//! ```text
//! cargo build --release && cargo run --release --example bench_api
//! ```
//!
//! Environment: LOYALTYD_BIN (the daemon, default `target/release/loyaltyd` of this repo),
//! BENCH_DIR (where the temporary data dir goes, default `target`; keep it on the disk you
//! care about), BENCH_MEMBERS (1000000), BENCH_COMMITS (timed commits per load phase,
//! 10000), BENCH_CLIENTS (concurrent clients of the second load phase, 32), BENCH_READS
//! (card reads timed from the reader to the event stream, 200).
//!
//! Phases:
//! 1. Setup: enrol the members through the library (32 threads sharing fdatasyncs), flush
//!    and close, so the daemon starts on a full data dir as it would after a reboot.
//! 2. Start `loyaltyd serve` on it: API on an ephemeral loopback port, an RDM6300 reader
//!    on a pseudo-terminal; memory after start-up.
//! 3. Commits over HTTP: 1 client, then BENCH_CLIENTS clients (group commit); fsyncs per
//!    commit from `GET /metrics`. The 1-client commits alternate with raw 512-byte
//!    write+fdatasync on the same disk, the floor any durable commit stands on.
//! 4. Card reads: RDM6300 frames into the pty, `event: card` out of `GET /v1/events`.
//! 5. Memory after the load, SIGTERM, and the summary with each figure beside its target.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use loyaltyd::config::Config;
use loyaltyd::engine::{Engine, EngineConfig};
use loyaltyd::rules::Ruleset;

mod common;
use common::{bench_dir, card, enrol, env_usize, random_lines, rate, us, Lat, RawFile, Rng};

const TOKEN: &str = "bench-token-0123456789";
/// Threads used for the enrolment.
const SETUP_THREADS: usize = 32;
/// Members per enrolment chunk (one progress line each).
const SETUP_CHUNK: usize = 100_000;
/// Rounds that interleave the 1-client commits with raw fdatasyncs on the same disk.
const ROUNDS: usize = 10;
/// Untimed commits first: connections, caches and the allocator settle.
const WARMUP: usize = 200;
/// How long the daemon may take to replay, verify and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// Pause between card reads: a real RDM6300 repeats a frame every ~100 ms.
const READ_GAP: Duration = Duration::from_millis(20);
/// The first RDM6300 fixture of tests/fixtures/readers.json, to check `rdm6300_frame`.
const FIXTURE: (&str, &str) = ("62E3086CED", "0236324533303836434544303803");

/// A path in this repository, wherever the benchmark is started from.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

// ----- setup -----

/// What `loyaltyd --config config/loyaltyd.toml --data-dir DATA serve` opens, so the
/// data dir the library writes is the one the daemon expects (terminal id, cache size).
fn engine_config(data: &Path) -> Result<(EngineConfig, Ruleset)> {
    let mut cfg = Config::load(&repo("config/loyaltyd.toml"), true).map_err(|e| anyhow!("{e}"))?;
    cfg.rules = repo("config/rules.toml");
    let rules = cfg.load_rules().map_err(|e| anyhow!("{e}"))?;
    let ecfg = EngineConfig {
        data_dir: data.to_path_buf(),
        terminal_id: cfg.terminal_id,
        clock: cfg.clock,
        cache_bytes: cfg.cache_mib << 20,
        offline_cap: !cfg.sync.upstream.trim().is_empty(),
        hub: false,
        ..Default::default()
    };
    Ok((ecfg, rules))
}

/// Enrols `members` members in process, then flushes and closes the store so that the
/// daemon finds everything in sled and has no journal tail to replay.
fn build_data_dir(data: &Path, members: usize) -> Result<Duration> {
    let (ecfg, rules) = engine_config(data)?;
    let t0 = Instant::now();
    let engine = Engine::open(ecfg, rules)?;
    let at = engine.at(None);
    for start in (0..members).step_by(SETUP_CHUNK) {
        let end = (start + SETUP_CHUNK).min(members);
        enrol(&engine, start..end, SETUP_THREADS, at.clone())?;
        println!("  enrolled {end} of {members} ({:.0} s)", t0.elapsed().as_secs_f64());
    }
    engine.close()?;
    drop(engine);
    Ok(t0.elapsed())
}

/// Every file under `dir` (recursively) with its metadata.
fn files(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            out.extend(files(&entry.path()));
        } else {
            out.push((entry.path(), meta));
        }
    }
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The daemon binary, refusing a missing one and warning about one older than src/.
fn daemon_bin() -> Result<PathBuf> {
    let bin = std::env::var_os("LOYALTYD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("target/release/loyaltyd"));
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).map_err(|e| {
        anyhow!(
            "{}: {e}; run `cargo build --release` first (or set LOYALTYD_BIN)",
            bin.display()
        )
    })?;
    let newest_src = files(&repo("src"))
        .iter()
        .filter_map(|(_, m)| m.modified().ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if newest_src > built {
        println!(
            "note: {} is older than src/; run `cargo build --release` to measure the current code",
            bin.display()
        );
    }
    Ok(bin)
}

// ----- the daemon -----

/// A pseudo-terminal standing in for the reader's UART: the master we write frames to,
/// the slave the daemon opens by path. We keep the slave open too, so that the pty
/// lives while the daemon (re)opens it.
struct Pty {
    master: File,
    _slave: OwnedFd,
    path: String,
}

fn pty() -> Result<Pty> {
    let (mut master, mut slave) = (0, 0);
    let null = std::ptr::null_mut();
    // SAFETY: openpty writes two fds into the given ints; the other arguments may be null.
    if unsafe { libc::openpty(&mut master, &mut slave, null, std::ptr::null(), std::ptr::null()) } != 0 {
        bail!("openpty: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just opened and are owned by nobody else.
    let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
        // The daemon must not inherit them: it opens the slave by path like a real UART.
        // SAFETY: fcntl on an fd we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))?
        .display()
        .to_string();
    Ok(Pty {
        master,
        _slave: slave,
        path,
    })
}

/// The running `loyaltyd serve`; killed on drop if the benchmark fails half-way.
struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`
    url: String,
    /// Its start-up report ("journal: N records, M replayed ...").
    journal_line: String,
    started_in: Duration,
}

impl Daemon {
    fn start(bin: &Path, dir: &Path, data: &Path, reader: &str) -> Result<Daemon> {
        let token = dir.join("token");
        std::fs::write(&token, format!("{TOKEN}\n"))?;
        let offline = offline_args(bin)?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(repo("config/loyaltyd.toml"))
            .arg("--data-dir")
            .arg(data)
            .arg("--rules")
            .arg(repo("config/rules.toml"))
            .args(["serve", "--listen", "127.0.0.1:0", "--reader", reader, "--token-file"])
            .arg(&token)
            .args(&offline)
            // Relative paths in the config (secret files) are taken from the repo.
            .current_dir(repo("."))
            .env("LOYALTYD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t0 = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
        let lines = log_lines(&mut child);
        let mut daemon = Daemon {
            child,
            url: String::new(),
            journal_line: String::new(),
            started_in: Duration::ZERO,
        };
        let mut seen = Vec::new();
        while daemon.url.is_empty() {
            let left = START_TIMEOUT.saturating_sub(t0.elapsed());
            let Ok(line) = lines.recv_timeout(left) else {
                bail!("the daemon did not start; it said:\n{}", seen.join("\n"));
            };
            if let Some(i) = line.find("journal: ") {
                daemon.journal_line = line[i..].to_string();
            }
            if let Some(i) = line.find("listening on http://") {
                // "listening on http://127.0.0.1:PORT (reader: ...)"
                let addr = line[i + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                daemon.url = addr.to_string();
            }
            seen.push(line);
        }
        daemon.started_in = t0.elapsed();
        Ok(daemon)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as systemd stops it; waits for a clean exit.
    fn stop(&mut self) -> Result<()> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(anyhow!("the daemon exited with {status}"))
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the daemon did not stop within 30 s of SIGTERM")
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

/// A daemon with a sync client takes `serve --upstream`: point it at a closed loopback
/// port, as the tests do, so that the benchmark terminal runs offline and never pushes
/// its records to a hub that happens to listen on the configured address.
fn offline_args(bin: &Path) -> Result<Vec<&'static str>> {
    let help = Command::new(bin).args(["serve", "--help"]).output()?;
    Ok(if String::from_utf8_lossy(&help.stdout).contains("--upstream") {
        vec!["--upstream", "http://127.0.0.1:9"]
    } else {
        vec![]
    })
}

/// The daemon's stderr, line by line; read to the end so the pipe never fills up.
fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// VmRSS and VmHWM (peak) of a process, in KiB.
#[derive(Clone, Copy)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
}

fn mem(pid: u32) -> Result<Mem> {
    let pid = pid.to_string();
    Ok(Mem {
        rss_kib: common::proc_status_kib(&pid, "VmRSS:")?,
        hwm_kib: common::proc_status_kib(&pid, "VmHWM:")?,
    })
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).unwrap_or(&"0").parse::<u64>()? + f.get(12).unwrap_or(&"0").parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

// ----- the HTTP client -----

/// One POS connection: a ureq agent keeps its keep-alive connection to the daemon.
struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Client {
    fn new(base: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Client {
            agent,
            base: base.to_string(),
            auth: format!("Bearer {TOKEN}"),
        }
    }

    fn get(&self, path: &str) -> Result<String> {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .call()?;
        let body = resp.body_mut().read_to_string()?;
        match resp.status().as_u16() {
            200 => Ok(body),
            s => bail!("GET {path}: {s} {body}"),
        }
    }

    fn post(&self, path: &str, body: &str, idempotency_key: Option<&str>) -> Result<String> {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/json");
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        let mut resp = req.send(body)?;
        let text = resp.body_mut().read_to_string()?;
        match resp.status().as_u16() {
            200 => Ok(text),
            s => bail!("POST {path} {body}: {s} {text}"),
        }
    }

    /// A counter or gauge from `GET /metrics`.
    fn metric(&self, name: &str) -> Result<u64> {
        let text = self.get("/metrics")?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .ok_or_else(|| anyhow!("no {name} in /metrics"))?
            .trim()
            .parse()
            .with_context(|| format!("{name} in /metrics"))
    }

    /// Commits the daemon has timed over 1 ms since it started.
    fn commits_over_1ms(&self) -> Result<u64> {
        Ok(self.metric("loyaltyd_commit_seconds_count")?
            - self.metric("loyaltyd_commit_seconds_bucket{le=\"0.001\"}")?)
    }
}

// ----- commits -----

/// A sale by a random member among all enrolled, as the POS sends it.
fn sale_json(rng: &mut Rng, members: usize) -> String {
    let card = card(rng.below(members));
    serde_json::json!({"card": card, "lines": random_lines(rng)}).to_string()
}

/// One load phase: client-side latencies, the rate, and what the daemon spent on it.
struct Load {
    clients: usize,
    n: usize,
    elapsed: Duration,
    lat: Lat,
    fsyncs: u64,
    /// Commits the daemon itself timed over 1 ms (`loyaltyd_commit_seconds`, from the
    /// engine call to the durable receipt): tells a tail inside the daemon from one in
    /// HTTP, scheduling and the client.
    server_over_1ms: u64,
    cpu: Duration,
    /// The daemon's memory right after the phase.
    mem: Mem,
}

impl Load {
    fn rate(&self) -> f64 {
        rate(self.n, self.elapsed)
    }
    fn fsyncs_per_commit(&self) -> f64 {
        self.fsyncs as f64 / self.n.max(1) as f64
    }
    /// Cores' worth of daemon CPU while the phase ran.
    fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.elapsed.as_secs_f64()
    }
    /// Daemon CPU per commit, µs (includes whatever else the daemon did meanwhile).
    fn cpu_per_commit_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.n.max(1) as f64
    }
    /// Two parts of one phase as one.
    fn merge(self, later: Load) -> Load {
        let mut lat = self.lat.0;
        lat.extend(later.lat.0);
        Load {
            clients: self.clients,
            n: self.n + later.n,
            elapsed: self.elapsed + later.elapsed,
            lat: Lat::new(lat),
            fsyncs: self.fsyncs + later.fsyncs,
            server_over_1ms: self.server_over_1ms + later.server_over_1ms,
            cpu: self.cpu + later.cpu,
            mem: later.mem,
        }
    }
}

/// `n` commits spread over `clients` threads, each with its own connection and a unique
/// Idempotency-Key per request. Connections are opened before the clock starts.
fn commit_load(d: &Daemon, members: usize, n: usize, clients: usize, tag: &str) -> Result<Load> {
    let admin = Client::new(&d.url);
    let fsyncs0 = admin.metric("loyaltyd_journal_fsyncs")?;
    let over0 = admin.commits_over_1ms()?;
    let cpu0 = cpu_time(d.pid())?;
    let ready = Barrier::new(clients + 1);
    let (per_client, elapsed) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|t| {
                let count = n / clients + usize::from(t < n % clients);
                let (ready, url) = (&ready, &d.url);
                s.spawn(move || -> Result<Vec<u32>> {
                    let client = Client::new(url);
                    let connected = client.get("/v1/health");
                    ready.wait();
                    connected?;
                    let mut rng = Rng::new(tag.bytes().fold(t as u64 + 1, |h, b| h.wrapping_mul(31) ^ b as u64));
                    let mut lat = Vec::with_capacity(count);
                    for i in 0..count {
                        let body = sale_json(&mut rng, members);
                        let key = format!("{tag}-{t}-{i}");
                        let start = Instant::now();
                        client.post("/v1/checkout/commit", &body, Some(&key))?;
                        lat.push(us(start.elapsed()));
                    }
                    Ok(lat)
                })
            })
            .collect();
        ready.wait();
        let t0 = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("client thread panicked"))
            .collect();
        (results, t0.elapsed())
    });
    let mut all = Vec::with_capacity(n);
    for r in per_client {
        all.extend(r?);
    }
    Ok(Load {
        clients,
        n,
        elapsed,
        lat: Lat::new(all),
        fsyncs: admin.metric("loyaltyd_journal_fsyncs")? - fsyncs0,
        server_over_1ms: admin.commits_over_1ms()? - over0,
        cpu: cpu_time(d.pid())? - cpu0,
        mem: mem(d.pid())?,
    })
}

/// The 1-client phase in rounds, each followed by as many raw 512 B write+fdatasync on
/// the data dir's disk: commits and the disk alone see the same disk weather, which on a
/// shared machine changes by the minute. Returns the commits and the raw latencies.
fn one_client(d: &Daemon, members: usize, n: usize, raw: &mut RawFile) -> Result<(Load, Lat)> {
    let mut load: Option<Load> = None;
    let mut raw_lat = Vec::with_capacity(n);
    let rounds = ROUNDS.min(n);
    for round in 0..rounds {
        let chunk = n / rounds + usize::from(round < n % rounds);
        let part = commit_load(d, members, chunk, 1, &format!("one{round}"))?;
        load = Some(match load {
            None => part,
            Some(l) => l.merge(part),
        });
        raw_lat.extend(raw.timed_appends(chunk)?);
    }
    Ok((load.expect("at least one round"), Lat::new(raw_lat)))
}

fn print_load(l: &Load) {
    println!(
        "commits, {} client(s): {} in {:.1} s = {:.0}/s; latency p50 {} us, p99 {} us, max {} us, mean {:.0} us; \
         fsyncs {} ({:.3} per commit); daemon CPU {:.2} cores ({:.0} us per commit), {}",
        l.clients,
        l.n,
        l.elapsed.as_secs_f64(),
        l.rate(),
        l.lat.pct(0.5),
        l.lat.pct(0.99),
        l.lat.max(),
        l.lat.mean(),
        l.fsyncs,
        l.fsyncs_per_commit(),
        l.cores(),
        l.cpu_per_commit_us(),
        mem_line(l.mem),
    );
}

// ----- card reads -----

/// The 14-byte RDM6300 frame of a 10-hex-character card id: STX, the id, the XOR of its
/// 5 bytes as 2 hex characters, ETX.
fn rdm6300_frame(card: &str) -> Result<[u8; 14]> {
    let id = card.as_bytes();
    if id.len() != 10 {
        bail!("an RDM6300 id has 10 hex characters, not {card:?}");
    }
    let mut sum = 0u8;
    for pair in id.chunks(2) {
        sum ^= u8::from_str_radix(std::str::from_utf8(pair)?, 16).with_context(|| format!("card {card:?}"))?;
    }
    let mut frame = [0u8; 14];
    frame[0] = 0x02;
    frame[1..11].copy_from_slice(id);
    frame[11..13].copy_from_slice(format!("{sum:02X}").as_bytes());
    frame[13] = 0x03;
    Ok(frame)
}

/// Subscribes to `GET /v1/events`; yields (when its `event: card` line arrived, card id)
/// per card event, timed on a thread that does nothing but read the stream.
fn subscribe(url: &str) -> Result<mpsc::Receiver<(Instant, String)>> {
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let resp = agent
        .get(format!("{url}/v1/events"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut arrived = None;
        for line in BufReader::new(resp.into_body().into_reader())
            .lines()
            .map_while(Result::ok)
        {
            if line == "event: card" {
                arrived = Some(Instant::now());
            } else if let (Some(data), Some(at)) = (line.strip_prefix("data: "), arrived) {
                let ev: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
                let card = ev["card"].as_str().unwrap_or_default().to_string();
                if tx.send((at, card)).is_err() {
                    return;
                }
                arrived = None;
            }
        }
    });
    Ok(rx)
}

/// Waits until the event stream is live: swipes a probe card until its event arrives.
fn wait_live(c: &Client, events: &mpsc::Receiver<(Instant, String)>) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        c.post("/v1/swipe", r#"{"card": "PROBE0001"}"#, None)?;
        if let Ok((_, card)) = events.recv_timeout(Duration::from_millis(200)) {
            if card == "PROBE0001" {
                while events.try_recv().is_ok() {}
                return Ok(());
            }
        }
    }
    bail!("the event stream did not come alive")
}

/// `reads` frames of distinct member cards (the decoder ignores a repeat of the card still
/// in the field), each timed from just after its last byte is written to the pty to the
/// arrival of its `event: card`. Returns the latencies and the reads that got no event.
fn reader_to_sse(
    pty: &mut Pty,
    events: &mpsc::Receiver<(Instant, String)>,
    members: usize,
    reads: usize,
) -> Result<(Lat, usize)> {
    let step = (members / reads).max(1);
    let (mut lat, mut lost) = (Vec::with_capacity(reads), 0);
    for k in 0..reads {
        let card = card(k * step);
        pty.master.write_all(&rdm6300_frame(&card)?)?;
        let written = Instant::now();
        loop {
            match events.recv_timeout(Duration::from_secs(2)) {
                Ok((at, got)) if got == card => {
                    lat.push(us(at.saturating_duration_since(written)));
                    break;
                }
                Ok(_) => continue, // a late event of an earlier read
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
        std::thread::sleep(READ_GAP);
    }
    Ok((Lat::new(lat), lost))
}

// ----- main -----

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn mem_line(m: Mem) -> String {
    format!(
        "RSS {:.1} MiB, peak {:.1} MiB",
        m.rss_kib as f64 / 1024.0,
        m.hwm_kib as f64 / 1024.0
    )
}

fn main() -> Result<()> {
    let members = env_usize("BENCH_MEMBERS", 1_000_000)?.max(1);
    let n = env_usize("BENCH_COMMITS", 10_000)?.max(1);
    let clients = env_usize("BENCH_CLIENTS", 32)?.max(1);
    let reads = env_usize("BENCH_READS", 200)?.max(1);
    let bin = daemon_bin()?;
    if rdm6300_frame(FIXTURE.0)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        != FIXTURE.1
    {
        bail!("rdm6300_frame disagrees with the fixture");
    }
    let tmp = tempfile::tempdir_in(bench_dir()?)?;
    let data = tmp.path().join("data");
    println!(
        "bench dir: {}; daemon: {}; load average {}",
        tmp.path().display(),
        bin.display(),
        loadavg()
    );
    let total = Instant::now();

    // 1. Setup through the library: far quicker than 1M POST /v1/members.
    println!("setup: enrolling {members} members with {SETUP_THREADS} threads");
    let setup = build_data_dir(&data, members)?;
    let on_disk: u64 = files(&data).iter().map(|(_, m)| m.len()).sum();
    let journal = std::fs::metadata(data.join("journal.log"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "setup: {members} members in {:.1} s = {:.0}/s; data dir {:.0} MiB (journal {:.0} MiB)",
        setup.as_secs_f64(),
        rate(members, setup),
        mib(on_disk),
        mib(journal),
    );

    // 2. The real daemon, with an RDM6300 reader on a pty.
    let mut pty = pty()?;
    let mut daemon = Daemon::start(&bin, tmp.path(), &data, &format!("rdm6300:{}", pty.path))?;
    let admin = Client::new(&daemon.url);
    let mem_start = mem(daemon.pid())?;
    println!(
        "daemon: pid {} on {}, listening {:.1} s after spawn; {}",
        daemon.pid(),
        daemon.url,
        daemon.started_in.as_secs_f64(),
        daemon.journal_line
    );
    println!("daemon memory after start-up: {}", mem_line(mem_start));

    // 3. Commit latency and throughput over loopback HTTP.
    commit_load(&daemon, members, WARMUP, 1, "warmup")?;
    let raw_path = tmp.path().join("raw.log");
    let (one, raw) = one_client(&daemon, members, n, &mut RawFile::open(&raw_path)?)?;
    std::fs::remove_file(&raw_path)?;
    print_load(&one);
    println!(
        "raw 512 B write+fdatasync on the same disk, interleaved: p50 {} us, p99 {} us, max {} us",
        raw.pct(0.5),
        raw.pct(0.99),
        raw.max()
    );
    let many = commit_load(&daemon, members, n, clients, "many")?;
    print_load(&many);

    // 4. Reader frame to SSE event.
    let events = subscribe(&daemon.url)?;
    wait_live(&admin, &events)?;
    let (read_lat, lost) = reader_to_sse(&mut pty, &events, members, reads)?;
    println!(
        "card reads, pty -> SSE: {} timed, {lost} without an event; p50 {} us, p99 {} us, max {} us, mean {:.0} us",
        read_lat.0.len(),
        read_lat.pct(0.5),
        read_lat.pct(0.99),
        read_lat.max(),
        read_lat.mean(),
    );

    // 5. Memory after the load, then a clean stop.
    let mem_load = mem(daemon.pid())?;
    let records = admin.metric("loyaltyd_journal_records")?;
    println!(
        "daemon memory after the load ({records} journal records): {}",
        mem_line(mem_load)
    );
    daemon.stop()?;

    println!();
    println!("loyaltyd bench_api (members={members}, commits={n} per phase, clients=1 and {clients}, reads={reads})");
    println!(
        "setup (library, {SETUP_THREADS} threads):      {:>8.1} s   daemon listening after {:.1} s",
        setup.as_secs_f64(),
        daemon.started_in.as_secs_f64()
    );
    println!(
        "commit latency, 1 client:        p50 {} us  p99 {} us  max {} us   (target p99 <= 1000 us)",
        one.lat.pct(0.5),
        one.lat.pct(0.99),
        one.lat.max()
    );
    println!(
        "  timed by the daemon:             {} of {} over 1 ms ({:.2}%)",
        one.server_over_1ms,
        one.n,
        one.server_over_1ms as f64 * 100.0 / one.n.max(1) as f64
    );
    println!(
        "  the disk alone (raw fdatasync): p50 {} us  p99 {} us  max {} us",
        raw.pct(0.5),
        raw.pct(0.99),
        raw.max()
    );
    println!(
        "commits/s, 1 client:             {:>8.0}     fsyncs per commit {:.3}",
        one.rate(),
        one.fsyncs_per_commit()
    );
    println!(
        "commits/s, {clients} clients:           {:>8.0}     fsyncs per commit {:.3}; p50 {} us  p99 {} us",
        many.rate(),
        many.fsyncs_per_commit(),
        many.lat.pct(0.5),
        many.lat.pct(0.99)
    );
    println!(
        "group commit gain, {clients} vs 1:      {:>8.2}x    (target >= 5x)",
        many.rate() / one.rate()
    );
    println!(
        "reader frame -> SSE event:       p50 {} us  p99 {} us  max {} us   (target p99 <= 5000 us)",
        read_lat.pct(0.5),
        read_lat.pct(0.99),
        read_lat.max()
    );
    println!(
        "daemon memory, {members} members: after start-up {}; after the load {}   (target <= 64 MiB)",
        mem_line(mem_start),
        mem_line(mem_load)
    );
    println!(
        "load average at the end {}; total run time {:.0} s",
        loadavg(),
        total.elapsed().as_secs_f64()
    );
    Ok(())
}
