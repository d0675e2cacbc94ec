//! The daemon as the power-cut drill runs it: `loyaltyd serve` with its data dir on the
//! power-cut mount, each start in a mount namespace of its own where a fresh random boot
//! id is bound over /proc/sys/kernel/random/boot_id (a start after a power cut is a new
//! boot), and a POS client with a till's timeouts.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_loyaltyd");
pub const TOKEN: &str = "powercut-token-0123456789";

/// Binds its first argument over the boot id, then becomes the command that follows
/// (exec: the pid the test kills is the daemon's own).
const WITH_BOOT_ID: &str = r#"b=$1; shift; mount --bind "$b" /proc/sys/kernel/random/boot_id && exec "$@""#;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Why a daemon cannot be started the drill's way here (root, unshare, mount).
pub fn unavailable() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: the drill binds a boot id in a mount namespace (unshare --mount)".into());
    }
    let dir = tempfile::tempdir().ok()?;
    let fake = dir.path().join("boot_id");
    let id = write_boot_id(&fake);
    match Command::new("unshare")
        .args(["--mount", "sh", "-c", WITH_BOOT_ID, "sh"])
        .arg(&fake)
        .args(["cat", "/proc/sys/kernel/random/boot_id"])
        .output()
    {
        Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == id => None,
        Ok(out) => Some(format!(
            "unshare --mount could not bind a boot id: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("unshare (util-linux) cannot run: {e}")),
    }
}

/// Writes a fresh random boot id (a UUID, as the kernel prints it) and returns it.
pub fn write_boot_id(path: &Path) -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).unwrap();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    std::fs::write(path, format!("{id}\n")).unwrap();
    id
}

/// Where one terminal's files are: the data dir on the mount, the rest beside the test.
#[derive(Clone)]
pub struct Paths {
    pub data: PathBuf,
    pub rules: PathBuf,
    pub token: PathBuf,
    /// Boot id files, copies of the data dir: off the mount.
    pub work: PathBuf,
}

impl Paths {
    pub fn new(data: PathBuf, work: &Path) -> Paths {
        let rules = work.join("rules.toml");
        let token = work.join("token");
        if !rules.exists() {
            std::fs::copy(repo("config/rules.toml"), &rules).unwrap();
            std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        }
        Paths {
            data,
            rules,
            token,
            work: work.to_path_buf(),
        }
    }

    /// The global options, for a data dir of the caller's choice.
    pub fn global(&self, data: &Path) -> Vec<String> {
        vec![
            "--config".into(),
            repo("config/loyaltyd.toml").display().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--rules".into(),
            self.rules.display().to_string(),
        ]
    }

    /// An offline command on `data` (a copy off the mount): status, stdout, stderr.
    pub fn cli(&self, data: &Path, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .args(self.global(data))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// One `loyaltyd serve`, its log kept line by line.
pub struct Serve {
    child: Child,
    pub spawned: Instant,
    log: Arc<Mutex<Vec<String>>>,
    listening: Arc<Mutex<Option<(Instant, String)>>>,
    reaped: Option<ExitStatus>,
}

impl Serve {
    /// Starts the daemon on `paths.data` with a new boot id (file `boot`).
    pub fn spawn(paths: &Paths, boot: &Path) -> Serve {
        write_boot_id(boot);
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "sh", "-c", WITH_BOOT_ID, "sh"])
            .arg(boot)
            .arg(BIN)
            .args(paths.global(&paths.data))
            .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
            .arg(&paths.token)
            .args(["--reader", "none", "--upstream", "http://127.0.0.1:9"])
            .env("LOYALTYD_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = cmd.spawn().expect("unshare starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let listening = Arc::new(Mutex::new(None));
        let (log2, listening2) = (log.clone(), listening.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on ") {
                    let url = line[i + 13..].split_whitespace().next().unwrap_or_default().to_string();
                    *listening2.lock().unwrap() = Some((Instant::now(), url));
                }
                log2.lock().unwrap().push(line);
            }
        });
        Serve {
            child,
            spawned,
            log,
            listening,
            reaped: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When it said it was listening, if it has.
    pub fn listening_since(&self) -> Option<Instant> {
        self.listening.lock().unwrap().as_ref().map(|(t, _)| *t)
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait().unwrap();
        }
        self.reaped
    }

    /// Its URL once it listens; Err with what happened if it exits or takes too long.
    pub fn wait_listening(&mut self, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((_, url)) = self.listening.lock().unwrap().clone() {
                return Ok(url);
            }
            if let Some(status) = self.exited() {
                // Let the log reader drain what it said last.
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "serve exited ({status}) instead of starting:\n{}",
                    self.log_tail(12)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "serve did not listen within {within:?}:\n{}",
                    self.log_tail(12)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, and waits (with a deadline) for the daemon to stop by itself.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus, String> {
        if let Some(status) = self.reaped {
            return Ok(status);
        }
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.reaped = Some(status);
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!("did not stop within {within:?}:\n{}", self.log_tail(12)));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, and waits until the process is gone (all its threads out of the kernel).
    pub fn kill9(&mut self) -> ExitStatus {
        if self.reaped.is_none() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
            self.reaped = Some(self.child.wait().unwrap());
        }
        self.reaped.unwrap()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    pub fn log_has(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What one request came to.
#[derive(Debug, Clone)]
pub enum Answer {
    Ok(u16, Value),
    Refused(u16, String),
    Timeout,
    /// No answer: connection refused or reset (the daemon is gone or going).
    Gone(String),
}

/// An answer in one line, for messages.
pub fn show(a: &Answer) -> String {
    match a {
        Answer::Ok(s, v) => format!("{s} {v}"),
        Answer::Refused(s, text) => format!("{s} {text}"),
        Answer::Timeout => "no answer within the client timeout".into(),
        Answer::Gone(e) => format!("no answer ({e})"),
    }
}

/// A POS: one HTTP connection at a time, a till's timeout.
pub struct Pos {
    agent: ureq::Agent,
    base: String,
}

impl Pos {
    pub fn new(base: &str, timeout: Duration) -> Pos {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Pos {
            agent,
            base: base.to_string(),
        }
    }

    fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        match r {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                match resp.body_mut().read_to_string() {
                    Ok(text) if (200..300).contains(&status) => match serde_json::from_str(&text) {
                        Ok(v) => Answer::Ok(status, v),
                        Err(e) => Answer::Refused(status, format!("not JSON ({e}): {text}")),
                    },
                    Ok(text) => Answer::Refused(status, text),
                    Err(ureq::Error::Timeout(_)) => Answer::Timeout,
                    Err(e) => Answer::Gone(e.to_string()),
                }
            }
            Err(ureq::Error::Timeout(_)) => Answer::Timeout,
            Err(e) => Answer::Gone(e.to_string()),
        }
    }

    pub fn post(&self, path: &str, body: &str, key: Option<&str>) -> Answer {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {TOKEN}"));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        Pos::finish(req.send(body))
    }

    pub fn get(&self, path: &str) -> Answer {
        let req = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"));
        Pos::finish(req.call())
    }
}
