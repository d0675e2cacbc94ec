//! Starting the real `loyaltyd serve` for end-to-end tests: a data dir of its own, an
//! ephemeral port read back from its log, and a small JSON-over-HTTP client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_loyaltyd");
pub const TOKEN: &str = "test-token-0123456789";

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    log: mpsc::Receiver<String>,
}

/// Common global options: the repo's config with a data dir and ruleset of the test's.
pub fn global_args(dir: &Path) -> Vec<String> {
    global_args_with(dir, &repo("config/loyaltyd.toml"))
}

/// The same with another config file.
pub fn global_args_with(dir: &Path, config: &Path) -> Vec<String> {
    vec![
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--rules".into(),
        rules_path(dir).display().to_string(),
    ]
}

/// The repo's ruleset, copied into the test dir so a test can change it.
pub fn rules_path(dir: &Path) -> PathBuf {
    let p = dir.join("rules.toml");
    if !p.exists() {
        std::fs::copy(repo("config/rules.toml"), &p).unwrap();
    }
    p
}

impl Daemon {
    pub fn start(dir: &Path) -> Daemon {
        Daemon::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_env(dir, extra, &[])
    }

    /// Starts with `extra` serve flags and `env` variables. Without `--upstream` in
    /// `extra` the sync target is a closed loopback port, so that a test terminal never
    /// reaches a hub a developer happens to run on the default port.
    pub fn start_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_full(dir, None, &repo("config/loyaltyd.toml"), "127.0.0.1:0", extra, env)
    }

    /// Starts with the config file `config` (its data dir and ruleset still the test's).
    pub fn start_config(dir: &Path, config: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_full(dir, None, config, "127.0.0.1:0", extra, env)
    }

    /// Starts inside network namespace `netns` (None: the test's own), listening on `listen`.
    pub fn start_at(dir: &Path, netns: Option<&str>, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_full(dir, netns, &repo("config/loyaltyd.toml"), listen, extra, env)
    }

    fn start_full(
        dir: &Path,
        netns: Option<&str>,
        config: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let token = dir.join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let mut args = global_args_with(dir, config);
        args.extend(["serve", "--listen", listen, "--token-file"].map(String::from));
        args.push(token.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--reader") {
            args.extend(["--reader".to_string(), "none".to_string()]);
        }
        if !extra.contains(&"--upstream") {
            args.extend(["--upstream".to_string(), "http://127.0.0.1:9".to_string()]);
        }
        let mut cmd = super::loyaltyd_command_in(netns);
        cmd.args(&args).envs(env.iter().copied());
        let (child, url, rx) = spawn_logged(cmd, "listening on ");
        Daemon {
            child,
            url,
            dir: dir.to_path_buf(),
            log: rx,
        }
    }

    /// Log lines received so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, Some(TOKEN))
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit, with a deadline.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "daemon did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Spawns `cmd` (LOYALTYD_LOG=info, stderr captured line by line) and waits, at most
/// 30 s, for the log line with `marker` followed by the URL it listens on.
pub fn spawn_logged(mut cmd: Command, marker: &str) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = cmd
        .env("LOYALTYD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{cmd:?} did not start; it said:\n{}", seen.join("\n")));
        seen.push(line.clone());
        if let Some(i) = line.find(marker) {
            break line[i + marker.len()..].split_whitespace().next().unwrap().to_string();
        }
    };
    (child, url, rx)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        Client {
            agent,
            base: base.to_string(),
            token: token.map(str::to_string),
        }
    }

    pub fn with_token(&self, token: Option<&str>) -> Client {
        Client::new(&self.base, token)
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    pub fn get(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(a) = self.auth() {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call()?;
        Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
    }

    pub fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Result<(u16, String), ureq::Error> {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(a) = self.auth() {
            req = req.header("Authorization", a);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.send(body)?;
        Ok((
            resp.status().as_u16(),
            resp.body_mut().with_config().limit(10 << 20).read_to_string()?,
        ))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Any method, with a JSON body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> Result<(u16, String), ureq::Error> {
        self.request_with(method, path, body, &[])
    }

    /// Any method, with a JSON body and headers.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), ureq::Error> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(a) = self.auth() {
            req = req.header("Authorization", a);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = self.agent.run(req.body(body.to_string()).unwrap())?;
        Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
    }

    /// GET returning JSON, asserting the status.
    pub fn get_json(&self, path: &str, status: u16) -> Value {
        let (s, body) = self.get(path).unwrap();
        assert_eq!(s, status, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// POST JSON, asserting the status, returning the JSON answer.
    pub fn post_json(&self, path: &str, body: &Value, headers: &[(&str, &str)], status: u16) -> Value {
        let (s, text) = self.post(path, &body.to_string(), headers).unwrap();
        assert_eq!(s, status, "POST {path} {body}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"))
    }
}

/// The error code of an error document.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
