//! The daemon's configuration file (`config/loyaltyd.toml`) and the ruleset it names.
//!
//! Two phases, as in ripgrep: parse and validate here into plain values, then build the
//! runtime objects (engine, server, reader) from them. Relative paths in the file are
//! taken from the current directory; the systemd unit uses absolute ones.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::ClockPolicy;
use crate::rules::Ruleset;

/// The configuration used when no file is given and `config/loyaltyd.toml` is absent.
pub const EMBEDDED_CONFIG: &str = include_str!("../config/loyaltyd.toml");
/// The ruleset used when the configured one is the default path and does not exist.
pub const EMBEDDED_RULES: &str = include_str!("../config/rules.toml");
pub const DEFAULT_CONFIG_PATH: &str = "config/loyaltyd.toml";
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
}

impl Default for Api {
    fn default() -> Api {
        Api {
            listen: "127.0.0.1:7430".into(),
            token_file: "config/pos.token".into(),
        }
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sync {
    /// The hub's base URL. Empty = a standalone terminal (no offline cap: it is the authority).
    pub upstream: String,
    pub secret_file: Option<PathBuf>,
    pub interval_secs: Option<u64>,
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
        let (text, file) = match std::fs::read_to_string(path) {
            Ok(t) => (t, path.display().to_string()),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                (EMBEDDED_CONFIG.to_string(), "(embedded loyaltyd.toml)".to_string())
            }
            Err(e) => {
                return Err(ConfigError {
                    file: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError {
            file: file.clone(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        let bad = |reason: String| ConfigError {
            file: file.clone(),
            reason,
        };
        let id_ok = (1..=32).contains(&cfg.terminal_id.len())
            && cfg.terminal_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !id_ok {
            return Err(bad(format!(
                "terminal_id {:?} must be 1 to 32 letters, digits or _",
                cfg.terminal_id
            )));
        }
        if !(1..=4096).contains(&cfg.cache_mib) {
            return Err(bad(format!("cache_mib must be 1 to 4096 (got {})", cfg.cache_mib)));
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
