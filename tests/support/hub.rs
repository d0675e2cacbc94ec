//! Starting the real `loyaltyd hub serve` for the sync tests: a data dir and a config of
//! its own (absolute paths), an ephemeral port read back from its log, and a client
//! with the operator token.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;

use super::daemon::{repo, spawn_logged, Client};

pub const HUB_TOKEN: &str = "hub-operator-token-0123";

/// A terminal's secret file for the hub and the terminal to share.
pub fn secret_file(dir: &Path, terminal: &str) -> PathBuf {
    let p = dir.join(format!("{terminal}.secret"));
    std::fs::write(&p, format!("secret-of-{terminal}-0123456789abcdef\n")).unwrap();
    p
}

pub struct Hub {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    pub log: mpsc::Receiver<String>,
}

impl Hub {
    /// Starts a hub keeping its data under `dir/hub`, with `terminals` as (id, secret file).
    pub fn start(dir: &Path, terminals: &[(&str, &Path)]) -> Hub {
        Hub::start_on(dir, terminals, "127.0.0.1:0")
    }

    pub fn start_on(dir: &Path, terminals: &[(&str, &Path)], listen: &str) -> Hub {
        Hub::start_full(dir, terminals, None, listen, "")
    }

    /// Starts inside network namespace `netns` (None: the test's own), listening on `listen`.
    pub fn start_in(dir: &Path, terminals: &[(&str, &Path)], netns: Option<&str>, listen: &str) -> Hub {
        Hub::start_full(dir, terminals, netns, listen, "")
    }

    /// With `extra` config text: top-level keys first, then tables such as `[tls]`.
    pub fn start_with(dir: &Path, terminals: &[(&str, &Path)], listen: &str, extra: &str) -> Hub {
        Hub::start_full(dir, terminals, None, listen, extra)
    }

    /// With the ruleset `rules` instead of the repository's.
    pub fn start_rules(dir: &Path, terminals: &[(&str, &Path)], rules: &Path) -> Hub {
        Hub::start_ruled(dir, terminals, None, "127.0.0.1:0", "", rules)
    }

    fn start_full(dir: &Path, terminals: &[(&str, &Path)], netns: Option<&str>, listen: &str, extra: &str) -> Hub {
        Hub::start_ruled(dir, terminals, netns, listen, extra, &repo("config/rules.toml"))
    }

    fn start_ruled(
        dir: &Path,
        terminals: &[(&str, &Path)],
        netns: Option<&str>,
        listen: &str,
        extra: &str,
        rules: &Path,
    ) -> Hub {
        let token = dir.join("hub.token");
        std::fs::write(&token, format!("{HUB_TOKEN}\n")).unwrap();
        let config = dir.join("hub.toml");
        let mut text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nrules = {:?}\ntoken_file = {:?}\ncache_mib = 16\n",
            dir.join("hub").display().to_string(),
            rules.display().to_string(),
            token.display().to_string(),
        );
        text.push_str(extra);
        for (id, secret) in terminals {
            text.push_str(&format!(
                "[[terminals]]\nid = {id:?}\nsecret_file = {:?}\n",
                secret.display().to_string()
            ));
        }
        std::fs::write(&config, text).unwrap();
        let mut cmd = super::loyaltyd_command_in(netns);
        cmd.arg("--config")
            .arg(&config)
            .args(["hub", "serve", "--listen", listen]);
        let (child, url, log) = spawn_logged(cmd, "hub listening on ");
        Hub {
            child,
            url,
            dir: dir.to_path_buf(),
            log,
        }
    }

    /// host:port, for a proxy in front of it.
    pub fn addr(&self) -> String {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, r)| r);
        rest.to_string()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, Some(HUB_TOKEN))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill9();
    }
}
