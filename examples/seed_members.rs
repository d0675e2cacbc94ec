//! Fills a data dir with many members, for footprint measurements (README, "Raspberry
//! Pi": the daemon's memory after start-up with 100k members).
//!
//! ```text
//! cargo run --release --example seed_members -- DATA_DIR [COUNT] [TERMINAL_ID]
//! ```
//!
//! Enrols COUNT (default 100000) members through `Engine::add_member` from 32 threads,
//! whose fsyncs group commit shares, with the shipped ruleset; terminal T1 by default.
//! Members are made as the benchmarks make them (`examples/common`: cards `BC` + 8
//! digits, phones `+861` + 10 digits). The data dir is the
//! same on every architecture, so one made here serves an aarch64 daemon too.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use loyaltyd::engine::{At, ClockPolicy, Engine, EngineConfig};
use loyaltyd::rules::Ruleset;

const RULES: &str = include_str!("../config/rules.toml");
const THREADS: usize = 32;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let data = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow!("usage: seed_members DATA_DIR [COUNT] [TERMINAL_ID]"))?,
    );
    let count: usize = match args.next() {
        Some(n) => n.replace('_', "").parse().with_context(|| format!("COUNT {n:?}"))?,
        None => 100_000,
    };
    let terminal_id = args.next().unwrap_or_else(|| "T1".to_string());
    let rules = Ruleset::parse(RULES, "config/rules.toml").map_err(|e| anyhow!("{e}"))?;
    let engine = Engine::open(
        EngineConfig {
            data_dir: data.clone(),
            terminal_id,
            clock: ClockPolicy::Trusted,
            // As config/loyaltyd.toml: cache_mib = 8.
            cache_bytes: 8 << 20,
            offline_cap: false,
            hub: false,
            ..Default::default()
        },
        rules,
    )?;
    let at = At {
        ts: loyaltyd::model::parse_instant("2026-06-15T12:00:00+08:00")?,
        trusted: true,
        actor: loyaltyd::engine::Actor::system(),
    };
    let started = Instant::now();
    common::enrol(&engine, 0..count, THREADS, at)?;
    engine.close()?;
    println!(
        "{}: {count} members enrolled in {:.1} s",
        data.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
