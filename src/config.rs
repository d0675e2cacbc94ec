//! The daemon's configuration file (`config/loyaltyd.toml`) and the ruleset it names.
//!
//! Two phases, as in ripgrep: parse and validate here into plain values, then build the
//! runtime objects (engine, server, reader) from them. Relative paths in the file are
//! taken from the current directory; the systemd unit uses absolute ones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::model::Role;
use crate::rules::Ruleset;

/// The configuration used when no file is given and `config/loyaltyd.toml` is absent.
/// Whether the wall clock can be believed (a Pi without RTC boots with a stale time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockPolicy {
    /// Trusted when the kernel says the clock is NTP-synchronised, or while a recent
    /// measurement against the hub's clock exists (which then corrects it).
    Auto,
    Trusted,
    Untrusted,
    /// Only the hub's clock is believed: trusted while a recent measurement exists,
    /// and business time is always corrected by it (no NTP at the shop).
    Hub,
}

impl std::str::FromStr for ClockPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<ClockPolicy, String> {
        match s {
            "auto" => Ok(ClockPolicy::Auto),
            "trusted" => Ok(ClockPolicy::Trusted),
            "untrusted" => Ok(ClockPolicy::Untrusted),
            "hub" => Ok(ClockPolicy::Hub),
            _ => Err(format!("clock policy {s:?}: auto, trusted, untrusted or hub")),
        }
    }
}

/// How an HTTP server serves its connections (see `service::http` for what each measures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

pub const EMBEDDED_CONFIG: &str = include_str!("../config/loyaltyd.toml");
/// The ruleset used when the configured one is the default path and does not exist.
pub const EMBEDDED_RULES: &str = include_str!("../config/rules.toml");
pub const DEFAULT_CONFIG_PATH: &str = "config/loyaltyd.toml";
/// The name problems in [`EMBEDDED_CONFIG`] are reported under.
const EMBEDDED_CONFIG_NAME: &str = "(embedded loyaltyd.toml)";
/// The hub's configuration used when `config/hub.toml` is absent and none is given.
pub const EMBEDDED_HUB_CONFIG: &str = include_str!("../config/hub.toml");
pub const DEFAULT_HUB_CONFIG_PATH: &str = "config/hub.toml";
pub const DEFAULT_RULES_PATH: &str = "config/rules.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This terminal's id, unique in the chain: part of every record's identity.
    pub terminal_id: String,
    pub data_dir: PathBuf,
    pub rules: PathBuf,
    #[serde(default = "default_clock")]
    pub clock: ClockPolicy,
    /// sled's page cache in MiB (sled's own default of 1 GiB would not fit a Pi Zero).
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
    #[serde(default)]
    pub api: Api,
    #[serde(default)]
    pub reader: Reader,
    #[serde(default)]
    pub feedback: Feedback,
    #[serde(default)]
    pub sync: Sync,
    #[serde(default)]
    pub members: Members,
    #[serde(default)]
    pub console: Console,
    /// No config file was found: these are the embedded defaults, whose relative paths
    /// may not exist where the binary runs (see `serve`).
    #[serde(skip)]
    pub embedded: bool,
}

fn default_clock() -> ClockPolicy {
    ClockPolicy::Auto
}

fn default_cache_mib() -> u64 {
    8
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    pub listen: String,
    /// File holding the POS bearer token (one line).
    pub token_file: PathBuf,
    /// Seconds a connection has to send a complete request head.
    pub header_read_timeout_secs: u64,
    /// Seconds a keep-alive connection may stay silent between requests.
    pub idle_timeout_secs: u64,
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// The role the POS token acts with (as staff id `pos`).
    pub pos_role: Role,
    /// Refunds larger than this (minor units) need a manager; absent: no limit.
    pub cashier_refund_limit_minor: Option<i64>,
}

/// `[console]`: the web console (`/console/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Console {
    /// A listener of its own (e.g. on the shop's LAN); absent: the POS API's listener.
    pub listen: Option<String>,
    /// Minutes without a request after which a console session ends.
    pub idle_timeout_mins: u64,
}

impl Default for Console {
    fn default() -> Console {
        Console {
            listen: None,
            idle_timeout_mins: 30,
        }
    }
}

/// `[members]`: how members' details are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Members {
    /// The country code of national phone numbers (digits, e.g. "86").
    pub default_country_code: String,
}

impl Default for Members {
    fn default() -> Members {
        Members {
            default_country_code: "86".into(),
        }
    }
}

impl Members {
    fn checked(mut self) -> Result<Members, String> {
        self.default_country_code = crate::identity::check_country_code(&self.default_country_code)
            .map_err(|e| format!("members: default_country_code: {e}"))?;
        Ok(self)
    }
}

impl Default for Api {
    fn default() -> Api {
        Api {
            listen: "127.0.0.1:7430".into(),
            token_file: "config/pos.token".into(),
            header_read_timeout_secs: default_header_read_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            max_connections: 256,
            pos_role: Role::Cashier,
            cashier_refund_limit_minor: None,
        }
    }
}

fn default_header_read_timeout() -> u64 {
    10
}

fn default_idle_timeout() -> u64 {
    30
}

fn default_hub_max_connections() -> usize {
    1024
}

/// The serving limits of `service::http` from a config's keys, checked.
fn serving_limits(
    section: &str,
    header_read_timeout_secs: u64,
    idle_timeout_secs: u64,
    max_connections: usize,
) -> Result<Limits, String> {
    for (key, v) in [
        ("header_read_timeout_secs", header_read_timeout_secs),
        ("idle_timeout_secs", idle_timeout_secs),
    ] {
        if !(1..=3600).contains(&v) {
            return Err(format!("{section}{key} must be 1 to 3600 (got {v})"));
        }
    }
    if !(1..=65536).contains(&max_connections) {
        return Err(format!(
            "{section}max_connections must be 1 to 65536 (got {max_connections})"
        ));
    }
    Ok(Limits {
        header_read_timeout: std::time::Duration::from_secs(header_read_timeout_secs),
        idle_timeout: std::time::Duration::from_secs(idle_timeout_secs),
        max_connections,
    })
}

impl Api {
    pub fn limits(&self) -> Result<Limits, String> {
        serving_limits(
            "api.",
            self.header_read_timeout_secs,
            self.idle_timeout_secs,
            self.max_connections,
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reader {
    /// `stdin`, `hid:/dev/input/by-id/...`, `rdm6300:/dev/serial0`, `wiegand:17,27`, or `none`.
    pub spec: String,
    /// RDM6300 id form: `hex` (10 hex characters) or `em4100-decimal`.
    pub rdm6300_form: String,
    /// Keyboard-wedge output: `as-typed` or `decimal-to-hex`.
    pub hid_output: String,
}

impl Default for Reader {
    fn default() -> Reader {
        Reader {
            spec: "stdin".into(),
            rdm6300_form: "hex".into(),
            hid_output: "as-typed".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Feedback {
    /// `log`, or `gpio` with the pins below (BCM numbering).
    pub kind: String,
    pub green_led: Option<u8>,
    pub red_led: Option<u8>,
    pub buzzer: Option<u8>,
}

impl Default for Feedback {
    fn default() -> Feedback {
        Feedback {
            kind: "log".into(),
            green_led: None,
            red_led: None,
            buzzer: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sync {
    /// The hub's base URL. Empty = a standalone terminal (no offline cap: it is the authority).
    pub upstream: String,
    /// This terminal's shared secret with the hub (one line); sync is off without it.
    pub secret_file: Option<PathBuf>,
    /// Seconds between sync rounds while nothing else wakes the sync task.
    pub interval_secs: u64,
    /// PEM certificates the hub's certificate must chain to (an https upstream);
    /// absent = the public roots built in (webpki-roots).
    pub ca_file: Option<PathBuf>,
}

impl Default for Sync {
    fn default() -> Sync {
        Sync {
            upstream: String::new(),
            secret_file: None,
            interval_secs: 30,
            ca_file: None,
        }
    }
}

/// The hub's configuration (`config/hub.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    #[serde(default = "default_hub_listen")]
    pub listen: String,
    pub data_dir: PathBuf,
    /// The ruleset the hub renders members with until an operator publishes one.
    pub rules: PathBuf,
    /// File holding the operators' bearer token (one line).
    pub token_file: PathBuf,
    #[serde(default = "default_hub_cache_mib")]
    pub cache_mib: u64,
    /// Seconds a connection has to send a complete request head (a new connection also
    /// its TLS handshake).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// Seconds a keep-alive connection may stay silent between requests.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Connections served at once; more wait in the accept queue.
    #[serde(default = "default_hub_max_connections")]
    pub max_connections: usize,
    /// HTTPS with these PEM files; plain HTTP without the section.
    #[serde(default)]
    pub tls: Option<HubTls>,
    /// The terminals allowed to sync, each with its shared secret.
    #[serde(default)]
    pub terminals: Vec<HubTerminalConfig>,
    #[serde(default)]
    pub members: Members,
    /// Where the hub keeps its state: the embedded store under `data_dir` (the default)
    /// or a PostgreSQL server.
    #[serde(default)]
    pub store: HubStoreConfig,
}

/// `[store]` of the hub's configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HubStoreConfig {
    #[serde(default)]
    pub kind: HubStoreKind,
    /// `postgres://user:password@host:port/database` (kind = "postgres").
    pub url: Option<String>,
    /// Connections each hub process keeps to PostgreSQL.
    #[serde(default = "default_pg_pool")]
    pub pool_size: usize,
    /// Seconds the hub keeps retrying an unreachable database at start-up before it
    /// gives up with an error.
    #[serde(default = "default_pg_connect_retry")]
    pub connect_retry_secs: u64,
    /// PEM certificates the database's certificate must chain to (a private CA), for
    /// the URL's `sslmode` (README, "The hub on PostgreSQL").
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_pg_connect_retry() -> u64 {
    60
}

fn default_pg_pool() -> usize {
    16
}

impl Default for HubStoreConfig {
    fn default() -> HubStoreConfig {
        HubStoreConfig {
            kind: HubStoreKind::Embedded,
            url: None,
            pool_size: default_pg_pool(),
            connect_retry_secs: default_pg_connect_retry(),
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HubStoreKind {
    #[default]
    Embedded,
    Postgres,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubTls {
    /// The hub's certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubTerminalConfig {
    pub id: String,
    pub secret_file: PathBuf,
}

fn default_hub_listen() -> String {
    "127.0.0.1:7440".into()
}

fn default_hub_cache_mib() -> u64 {
    64
}

/// Reads a one-line secret or token file: trimmed, at least `min` characters.
pub fn read_secret(path: &Path, what: &str, min: usize) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        reason: format!("cannot read the {what}: {e}"),
    })?;
    let secret = text.trim().to_string();
    if secret.len() < min {
        return Err(ConfigError {
            file: path.display().to_string(),
            reason: format!("the {what} must be at least {min} characters"),
        });
    }
    Ok(secret)
}

/// Terminal ids: 1 to 32 letters, digits or `_` (they are part of transaction ids).
pub fn valid_terminal_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Reads a config file, or the embedded text when `explicit` is false and the default
/// path is absent. Returns the text and the name to report problems under.
fn read_config(
    path: &Path,
    explicit: bool,
    embedded: &str,
    embedded_name: &str,
) -> Result<(String, String), ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok((t, path.display().to_string())),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
            Ok((embedded.to_string(), embedded_name.to_string()))
        }
        Err(e) => Err(ConfigError {
            file: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

impl HubConfig {
    pub fn limits(&self) -> Result<Limits, String> {
        serving_limits(
            "",
            self.header_read_timeout_secs,
            self.idle_timeout_secs,
            self.max_connections,
        )
    }

    pub fn load(path: &Path, explicit: bool) -> Result<HubConfig, ConfigError> {
        let (text, file) = read_config(path, explicit, EMBEDDED_HUB_CONFIG, "(embedded hub.toml)")?;
        HubConfig::parse(&text, &file)
    }

    /// Parses and validates hub config text; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<HubConfig, ConfigError> {
        let file = file.to_string();
        let mut cfg: HubConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.clone(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        cfg.members = cfg.members.checked().map_err(|reason| ConfigError {
            file: file.clone(),
            reason,
        })?;
        match (cfg.store.kind, &cfg.store.url) {
            (HubStoreKind::Postgres, None) => {
                return Err(ConfigError {
                    file,
                    reason: "store: kind = \"postgres\" needs url = \"postgres://...\"".into(),
                })
            }
            (HubStoreKind::Postgres, Some(u)) if !u.starts_with("postgres://") && !u.starts_with("postgresql://") => {
                return Err(ConfigError {
                    file,
                    reason: "store: url must begin with postgres://".into(),
                })
            }
            _ => {}
        }
        if cfg.store.pool_size == 0 {
            return Err(ConfigError {
                file,
                reason: "store: pool_size must be at least 1".into(),
            });
        }
        if let Some(t) = cfg.terminals.iter().find(|t| !valid_terminal_id(&t.id)) {
            return Err(ConfigError {
                file,
                reason: format!("terminals: id {:?} must be 1 to 32 letters, digits or _", t.id),
            });
        }
        cfg.limits().map_err(|reason| ConfigError { file, reason })?;
        Ok(cfg)
    }
}

/// A configuration problem, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub reason: String,
}

impl Config {
    /// Loads the config file. `explicit` is false when the path is the default, in which
    /// case a missing file falls back to the embedded defaults.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let (text, file) = read_config(path, explicit, EMBEDDED_CONFIG, EMBEDDED_CONFIG_NAME)?;
        let mut cfg = Config::parse(&text, &file)?;
        cfg.embedded = file == EMBEDDED_CONFIG_NAME;
        Ok(cfg)
    }

    /// Parses and validates config text; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let file = file.to_string();
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: file.clone(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        let bad = |reason: String| ConfigError {
            file: file.clone(),
            reason,
        };
        if !valid_terminal_id(&cfg.terminal_id) {
            return Err(bad(format!(
                "terminal_id {:?} must be 1 to 32 letters, digits or _",
                cfg.terminal_id
            )));
        }
        if !(1..=4096).contains(&cfg.cache_mib) {
            return Err(bad(format!("cache_mib must be 1 to 4096 (got {})", cfg.cache_mib)));
        }
        cfg.api.limits().map_err(bad)?;
        if cfg.api.cashier_refund_limit_minor.is_some_and(|l| l < 0) {
            return Err(bad("api: cashier_refund_limit_minor must not be negative".into()));
        }
        cfg.members = cfg.members.clone().checked().map_err(bad)?;
        if !(1..=1440).contains(&cfg.console.idle_timeout_mins) {
            return Err(bad(format!(
                "console: idle_timeout_mins must be 1 to 1440 (got {})",
                cfg.console.idle_timeout_mins
            )));
        }
        Ok(cfg)
    }

    /// Loads the ruleset the config names; the default path falls back to the embedded
    /// example when absent.
    pub fn load_rules(&self) -> Result<Ruleset, crate::rules::ruleset::RulesetError> {
        if self.rules == Path::new(DEFAULT_RULES_PATH) && !self.rules.exists() {
            return Ruleset::parse(EMBEDDED_RULES, "(embedded rules.toml)");
        }
        Ruleset::load(&self.rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_load() {
        let cfg: Config = toml::from_str(EMBEDDED_CONFIG).unwrap();
        assert_eq!(cfg.reader.spec, "stdin");
        Ruleset::parse(EMBEDDED_RULES, "embedded").unwrap();
    }

    #[test]
    fn the_packaged_configs_turn_tls_on() {
        let hub: HubConfig = toml::from_str(include_str!("../packaging/deb/hub.toml")).unwrap();
        let tls = hub.tls.as_ref().expect("the packaged hub config serves HTTPS");
        assert!(tls.cert_file.starts_with("/etc/loyaltyd/") && tls.key_file.starts_with("/etc/loyaltyd/"));
        hub.limits().unwrap();
        let terminal: Config = toml::from_str(include_str!("../packaging/deb/loyaltyd.toml")).unwrap();
        assert!(terminal.sync.ca_file.unwrap().starts_with("/etc/loyaltyd/"));
        terminal.api.limits().unwrap();
        // The repository's quick start stays on loopback, in plain HTTP.
        let dev: HubConfig = toml::from_str(EMBEDDED_HUB_CONFIG).unwrap();
        assert!(dev.tls.is_none() && dev.listen.starts_with("127.0.0.1:"));
        let dev: Config = toml::from_str(EMBEDDED_CONFIG).unwrap();
        assert!(dev.sync.ca_file.is_none() && dev.sync.upstream.starts_with("http://127.0.0.1:"));
    }

    #[test]
    fn serving_limits_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let base = "terminal_id = \"T1\"\ndata_dir = \"d\"\nrules = \"r\"\n[api]\n";
        for (line, key) in [
            ("header_read_timeout_secs = 0", "api.header_read_timeout_secs"),
            ("idle_timeout_secs = 99999", "api.idle_timeout_secs"),
            ("max_connections = 0", "api.max_connections"),
        ] {
            std::fs::write(&p, format!("{base}{line}\n")).unwrap();
            let e = Config::load(&p, true).unwrap_err().to_string();
            assert!(e.contains(key), "{line}: {e}");
        }
        std::fs::write(&p, format!("{base}header_read_timeout_secs = 2\nmax_connections = 8\n")).unwrap();
        let limits = Config::load(&p, true).unwrap().api.limits().unwrap();
        assert_eq!(limits.header_read_timeout, std::time::Duration::from_secs(2));
        assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(30));
        assert_eq!(limits.max_connections, 8);
    }

    #[test]
    fn refuses_unknown_keys_and_bad_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "terminal_id = \"T1\"\ndata_dir = \"d\"\nrules = \"r\"\nbogus = 1\n").unwrap();
        let e = Config::load(&p, true).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        std::fs::write(&p, "terminal_id = \"T 1\"\ndata_dir = \"d\"\nrules = \"r\"\n").unwrap();
        assert!(Config::load(&p, true).unwrap_err().to_string().contains("terminal_id"));
        assert!(Config::load(&dir.path().join("missing.toml"), true).is_err());
    }
}
