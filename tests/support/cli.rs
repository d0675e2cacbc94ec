//! Offline commands of the real `loyaltyd` binary: each test gets a terminal of its own
//! (a temporary data dir and ruleset) and runs commands against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub use super::loyaltyd_command;

pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/loyaltyd.toml");
pub const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rules.toml");

/// The promotion worked example 2 of rules.md adds to the ruleset.
pub const M200_25: &str = "\n[[promotions]]\nid = \"m200-25\"\nmin_minor = 20000\noff_minor = 2500\n";

/// The example ruleset of config/rules.toml.
pub fn base_rules() -> String {
    std::fs::read_to_string(RULES).expect("config/rules.toml")
}

/// What one run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(out: Output) -> Run {
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// One test's terminal: a temporary directory holding the data dir and the ruleset.
pub struct Term {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub rules: PathBuf,
}

impl Default for Term {
    fn default() -> Self {
        Term::new()
    }
}

impl Term {
    /// The shipped ruleset.
    pub fn new() -> Term {
        Term::with_rules_text(&base_rules())
    }

    /// The shipped ruleset plus `extra` TOML appended.
    pub fn with_extra_rules(extra: &str) -> Term {
        Term::with_rules_text(&(base_rules() + extra))
    }

    pub fn with_rules_text(text: &str) -> Term {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rules = tmp.path().join("rules.toml");
        std::fs::write(&rules, text).expect("write rules");
        let data = tmp.path().join("data");
        Term { tmp, data, rules }
    }

    pub fn journal(&self) -> PathBuf {
        self.data.join("journal.log")
    }

    pub fn state(&self) -> PathBuf {
        self.data.join("state")
    }

    /// The binary with the global options and `--json`, ready for a subcommand.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = loyaltyd_command();
        c.arg("--config")
            .arg(CONFIG)
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--rules")
            .arg(&self.rules)
            .arg("--json")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.cmd(args).output().expect("spawn loyaltyd"))
    }

    /// Runs a command that must succeed; returns its JSON.
    pub fn ok(&self, args: &[&str]) -> Value {
        let r = self.run(args);
        assert_eq!(
            r.status, 0,
            "loyaltyd {args:?} failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.json()
    }

    /// Runs a command that must be refused with `code`: exit 1, the error JSON on
    /// stdout, a message on stderr. Returns the error message.
    pub fn refused(&self, args: &[&str], code: &str) -> String {
        let r = self.run(args);
        assert_eq!(
            r.status, 1,
            "loyaltyd {args:?}: want exit 1 ({code}):\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        let v = r.json();
        assert_eq!(
            v["error"]["code"], code,
            "loyaltyd {args:?}: wrong code:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(!msg.is_empty(), "error without a message: {}", r.stdout);
        assert!(
            r.stderr.contains(code) && r.stderr.trim().len() > code.len(),
            "loyaltyd {args:?}: stderr should carry a message, got {:?}",
            r.stderr
        );
        msg.to_string()
    }

    pub fn add_member(&self, card: &str, phone: &str, pin: Option<&str>) -> Value {
        let mut args = vec!["member", "add", "--card", card, "--name", "Ann", "--phone", phone];
        if let Some(p) = pin {
            args.extend(["--pin", p]);
        }
        self.ok(&args)
    }

    pub fn show(&self, card: &str, at: &str) -> Value {
        self.ok(&["member", "show", "--card", card, "--at", at])
    }

    pub fn balance(&self, card: &str, at: &str) -> i64 {
        self.show(card, at)["balance"].as_i64().expect("balance")
    }

    /// `journal verify --json` must pass; returns the record count.
    pub fn records(&self) -> u64 {
        let v = self.ok(&["journal", "verify"]);
        assert_eq!(v["ok"], true, "{v}");
        v["records"].as_u64().expect("records")
    }

    /// A checkout with the given lines (SKU,CATEGORY,QTY,UNIT_PRICE) and extra args.
    pub fn checkout(&self, card: &str, at: &str, lines: &[&str], extra: &[&str]) -> Value {
        self.ok(&sale_args("checkout", card, at, lines, extra))
    }
}

/// The argument list of a quote or checkout.
pub fn sale_args<'a>(cmd: &'a str, card: &'a str, at: &'a str, lines: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![cmd, "--card", card, "--at", at];
    for l in lines {
        args.extend(["--line", l]);
    }
    args.extend_from_slice(extra);
    args
}

/// Every file under `dir` with its contents, sorted (to show nothing was touched).
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).expect("read");
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// A tiny deterministic PRNG (xorshift64*), since no rand crate is available.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
