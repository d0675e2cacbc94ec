//! Every console page rendered by the real daemon on a shop's data dir: prints the
//! server time (the `Server-Timing` the console sets) and the bytes over the wire per
//! page, beside the targets (<= 50 ms, <= 300 KiB). Never passes or fails.
//!
//! ```text
//! cargo build --release --bin loyaltyd --example bench_console && target/release/examples/bench_console
//! ```
//!
//! Environment: LOYALTYD_BIN (default `target/release/loyaltyd` of this repo), BENCH_DIR
//! (where the temporary data dir goes, default `target`), BENCH_MEMBERS (20000, enrolled
//! evenly over the last 12 months), BENCH_CHECKOUTS (100000, each by a random member at
//! a random instant between their enrolment and now), BENCH_RENDERS (renders per page,
//! 30).
//!
//! The setup goes through the library (32 threads sharing fdatasyncs), then `loyaltyd
//! serve` starts on the data dir, an owner logs in through the console's login form,
//! and each page is fetched BENCH_RENDERS times over one keep-alive connection.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use loyaltyd::config::Config;
use loyaltyd::engine::{Actor, Engine, EngineConfig, Sale};
use loyaltyd::model::Role;

use common::{bench_dir, card, enrol, env_usize, random_lines, Rng};

const TOKEN: &str = "bench-token-0123456789";
const OWNER: (&str, &str) = ("own", "owner-secret-1");
const THREADS: usize = 32;
const DAY_US: i64 = 86_400_000_000;
const TARGET_MS: f64 = 50.0;
const TARGET_KIB: f64 = 300.0;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn write_config(dir: &Path, data: &Path) -> Result<PathBuf> {
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n"))?;
    let path = dir.join("loyaltyd.toml");
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    std::fs::write(
        &path,
        format!(
            "terminal_id = \"T1\"\ndata_dir = {}\nrules = {}\nclock = \"trusted\"\ncache_mib = 8\n\
             [api]\nlisten = \"127.0.0.1:0\"\ntoken_file = {}\n[reader]\nspec = \"none\"\n[sync]\nupstream = \"\"\n",
            q(data),
            q(&repo("config/rules.toml")),
            q(&token)
        ),
    )?;
    Ok(path)
}

fn setup(config: &Path, members: usize, checkouts: usize) -> Result<(Duration, String)> {
    let t0 = Instant::now();
    let cfg = Config::load(config, true).map_err(|e| anyhow!("{e}"))?;
    let rules = cfg.load_rules().map_err(|e| anyhow!("{e}"))?;
    let engine = Engine::open(EngineConfig::of(&cfg), rules)?;
    let now = engine.at(None).ts;
    let cli = |ts| engine.at(Some(ts)).by(Actor::cli());
    engine.add_staff(OWNER.0, "Owner", Role::Owner, OWNER.1, cli(now))?;
    // Twelve monthly cohorts, oldest first.
    let enrolled_at = |i: usize| now - (12 - (i * 12 / members) as i64) * 30 * DAY_US;
    for k in 0..12 {
        let range = (k * members / 12)..((k + 1) * members / 12);
        let at = cli(enrolled_at(range.start));
        enrol(&engine, range, THREADS, at)?;
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= checkouts {
                            return Ok(());
                        }
                        let mut rng = Rng::new(0x5eed ^ i as u64);
                        let who = rng.below(members);
                        let from = enrolled_at(who);
                        let ts = from + (rng.next() % (now - from) as u64) as i64;
                        let sale = Sale {
                            card: card(who),
                            lines: random_lines(&mut rng),
                            ..Sale::default()
                        };
                        engine
                            .checkout(&sale, None, engine.at(Some(ts)))
                            .with_context(|| format!("checkout {i}"))?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("setup thread panicked"))
    })?;
    let someone = engine
        .find_by_phone(&common::phone(members / 2), &engine.at(None))?
        .first()
        .map(|m| m.member_id.clone())
        .ok_or_else(|| anyhow!("member {} not found", members / 2))?;
    engine.close()?;
    Ok((t0.elapsed(), someone))
}

struct Daemon {
    child: Child,
    url: String,
}

impl Daemon {
    fn start(bin: &Path, config: &Path) -> Result<Daemon> {
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
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map_err(|_| anyhow!("the daemon did not start"))?;
            if let Some(i) = line.find("listening on http://") {
                let url = line[i + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                return Ok(Daemon { child, url });
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

struct Fetched {
    status: u16,
    server_ms: f64,
    wire_bytes: usize,
    body: String,
    set_cookies: Vec<String>,
}

fn fetch(agent: &ureq::Agent, url: &str, cookie: &str, form: Option<&str>) -> Result<Fetched> {
    let mut resp = match form {
        None => agent.get(url).header("Cookie", cookie).call()?,
        Some(body) => agent
            .post(url)
            .header("Cookie", cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body)?,
    };
    let status = resp.status().as_u16();
    let mut head = format!("HTTP/1.1 {status} OK\r\n").len() + 2;
    let mut server_ms = f64::NAN;
    let mut set_cookies = Vec::new();
    for (k, v) in resp.headers() {
        head += k.as_str().len() + 2 + v.len() + 2;
        let v = v.to_str().unwrap_or("");
        if k == "server-timing" {
            server_ms = v.trim_start_matches("app;dur=").parse().unwrap_or(f64::NAN);
        }
        if k == "set-cookie" {
            set_cookies.push(v.split(';').next().unwrap_or("").to_string());
        }
    }
    let body = resp.body_mut().with_config().limit(64 << 20).read_to_string()?;
    Ok(Fetched {
        status,
        server_ms,
        wire_bytes: head + body.len(),
        body,
        set_cookies,
    })
}

fn hidden(body: &str, name: &str) -> Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).ok_or_else(|| anyhow!("no {name} field"))? + marker.len();
    Ok(body[start..start + body[start..].find('"').unwrap_or(0)].to_string())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() -> Result<()> {
    let members = env_usize("BENCH_MEMBERS", 20_000)?;
    let checkouts = env_usize("BENCH_CHECKOUTS", 100_000)?;
    let renders = env_usize("BENCH_RENDERS", 30)?.max(1);
    let bin = std::env::var_os("LOYALTYD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("target/release/loyaltyd"));
    if !bin.exists() {
        bail!(
            "{}: missing; run `cargo build --release` first (or set LOYALTYD_BIN)",
            bin.display()
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("bench-console-")
        .tempdir_in(bench_dir()?)?;
    let config = write_config(tmp.path(), &tmp.path().join("data"))?;
    println!("loyaltyd bench_console (members={members} over 12 months, checkouts={checkouts} over their lives, renders={renders} per page)");
    let (took, someone) = setup(&config, members, checkouts)?;
    println!("setup: {:.1} s", took.as_secs_f64());
    let d = Daemon::start(&bin, &config)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let login = fetch(&agent, &format!("{}/console/login", d.url), "", None)?;
    let pre = login.set_cookies.join("; ");
    let csrf = hidden(&login.body, "csrf")?;
    let signed = fetch(
        &agent,
        &format!("{}/console/login", d.url),
        &pre,
        Some(&format!("csrf={csrf}&staff_id={}&password={}", OWNER.0, OWNER.1)),
    )?;
    let cookie = signed
        .set_cookies
        .iter()
        .find(|c| c.starts_with("loyaltyd_console="))
        .ok_or_else(|| anyhow!("login failed: {}", signed.status))?
        .clone();
    let today = chrono::Utc::now().date_naive();
    let year_ago = today - chrono::Duration::days(364);
    let pages = [
        ("login", "/console/login".to_string()),
        ("dashboard (30 days)", "/console/".to_string()),
        ("dashboard (365 days)", format!("/console/?from={year_ago}&to={today}")),
        (
            "members: search by name prefix",
            "/console/members?q=Member%201".to_string(),
        ),
        (
            "members: phone",
            format!("/console/members?q={}", common::phone(members / 2).replace('+', "%2B")),
        ),
        ("member detail", format!("/console/members/{someone}")),
        ("reports (30 days, 12 months)", "/console/reports".to_string()),
        (
            "reports (365 days, 12 months)",
            format!("/console/reports?from={year_ago}&to={today}"),
        ),
        (
            "summary CSV",
            format!("/console/reports/summary.csv?from={year_ago}&to={today}"),
        ),
        ("campaigns", "/console/campaigns".to_string()),
        ("staff", "/console/staff".to_string()),
        ("stylesheet", "/console/assets/console.css".to_string()),
    ];
    println!(
        "{:<32} {:>9} {:>9} {:>9} {:>10}  targets: server p99 <= {TARGET_MS} ms, <= {TARGET_KIB} KiB",
        "page", "p50 ms", "p99 ms", "max ms", "KiB"
    );
    for (name, path) in pages {
        let mut times = Vec::with_capacity(renders);
        let mut bytes = 0;
        for _ in 0..renders {
            let f = fetch(&agent, &format!("{}{path}", d.url), &cookie, None)?;
            if f.status != 200 {
                bail!("{path}: {} {}", f.status, &f.body[..f.body.len().min(300)]);
            }
            times.push(f.server_ms);
            bytes = bytes.max(f.wire_bytes);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let p99 = pct(&times, 0.99);
        let kib = bytes as f64 / 1024.0;
        let verdict = if p99 <= TARGET_MS && kib <= TARGET_KIB {
            "met"
        } else {
            "NOT met"
        };
        println!(
            "{name:<32} {:>9.2} {p99:>9.2} {:>9.2} {kib:>10.1}  {verdict}",
            pct(&times, 0.5),
            times[times.len() - 1],
        );
    }
    Ok(())
}
