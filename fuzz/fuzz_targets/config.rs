//! The daemon's and the hub's config parsers on arbitrary text, and the reader settings
//! the daemon derives from an accepted config.
//!
//! Checks, beyond "no panic": an accepted config has a valid terminal id and cache size
//! (and the hub's terminals valid ids); a refusal names the file and says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyaltyd::config::{valid_terminal_id, Config, ConfigError, HubConfig};
use loyaltyd::reader::{ReaderOptions, ReaderSpec};

fn refused(e: &ConfigError) {
    assert_eq!(e.file, "fuzz.toml");
    assert!(!e.reason.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml") {
        Ok(cfg) => {
            assert!(valid_terminal_id(&cfg.terminal_id));
            assert!((1..=4096).contains(&cfg.cache_mib));
            let engine = loyaltyd::engine::EngineConfig::of(&cfg);
            assert_eq!(engine.cache_bytes, cfg.cache_mib << 20);
            let _ = cfg.reader.spec.parse::<ReaderSpec>();
            let _ = ReaderOptions::from_config(&cfg.reader);
        }
        Err(e) => refused(&e),
    }
    match HubConfig::parse(text, "fuzz.toml") {
        Ok(hub) => assert!(hub.terminals.iter().all(|t| valid_terminal_id(&t.id))),
        Err(e) => refused(&e),
    }
    // The reader spec is also given on the command line (`serve --reader`).
    let _ = text.parse::<ReaderSpec>();
});
