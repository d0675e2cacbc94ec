//! The daily trigger pass at scale: prints figures beside their targets, never passes or
//! fails.
//!
//! ```text
//! cargo run --release --example bench_triggers
//! ```
//!
//! BENCH_MEMBERS (default 1000000) members are enrolled through the library (32 threads
//! sharing fdatasyncs), birthdays spread over the year, with the shipped ruleset plus a
//! birthday and an inactivity trigger. Then the pass runs for today while one thread
//! commits checkouts back to back; the summary gives the pass's time (target <= 5 s at
//! 1M members) and the commits' latency during it (target: held up by at most 5 ms).
//! BENCH_DIR (default `target`) holds the temporary data dir.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use chrono::Datelike;
use loyaltyd::engine::{ClockPolicy, Engine, EngineConfig, NewMember};
use loyaltyd::rules::Ruleset;

use common::{bench_dir, card, env_usize, phone, random_sale, us, Lat, Rng};

const RULES: &str = include_str!("../config/rules.toml");
const TRIGGERS: &str = r#"
[[triggers]]
id = "bday"
on = "birthday"
coupon = "welcome5"

[[triggers]]
id = "miss-you"
on = "inactive"
days = 60
coupon = "welcome5"
"#;

fn member(i: usize) -> NewMember {
    // Birthdays spread over the year's days (02-29 left out).
    let d = chrono::NaiveDate::from_yo_opt(2025, 1 + (i % 365) as u32).expect("a day of 2025");
    NewMember {
        card: Some(card(i)),
        name: format!("Member {i}"),
        phone: phone(i),
        birthday: Some(format!("{:02}-{:02}", d.month(), d.day())),
        ..NewMember::default()
    }
}

fn main() -> Result<()> {
    let members = env_usize("BENCH_MEMBERS", 1_000_000)?;
    let dir = tempfile::tempdir_in(bench_dir()?)?;
    let rules = Ruleset::parse(&format!("{RULES}{TRIGGERS}"), "rules.toml").map_err(|e| anyhow!("{e}"))?;
    let engine = Engine::open(
        EngineConfig {
            data_dir: dir.path().to_path_buf(),
            clock: ClockPolicy::Trusted,
            ..Default::default()
        },
        rules,
    )?;
    let at = engine.at(None);

    let t = Instant::now();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= members {
                            return Ok(());
                        }
                        engine
                            .add_member(member(i), None, at.clone())
                            .with_context(|| format!("member {i}"))?;
                    }
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().expect("enrol thread"))
    })?;
    eprintln!("enrolled {members} members in {:.1} s", t.elapsed().as_secs_f64());

    // The till alone first, for a baseline on this machine as it is now.
    let mut rng = Rng::new(3);
    let base_end = Instant::now() + std::time::Duration::from_secs(5);
    let mut base = Vec::new();
    while Instant::now() < base_end {
        let sale = random_sale(&mut rng, members);
        let t = Instant::now();
        engine.checkout(&sale, Some(&format!("base-{}", base.len())), at.clone())?;
        base.push(us(t.elapsed()));
    }
    let base = Lat::new(base);

    // The pass while a till commits sales back to back.
    let done = AtomicBool::new(false);
    let (pass, lat) = std::thread::scope(|s| -> Result<_> {
        let till = s.spawn(|| -> Result<Vec<u32>> {
            let mut rng = Rng::new(7);
            let mut v = Vec::new();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                let sale = random_sale(&mut rng, members);
                let t = Instant::now();
                n += 1;
                engine.checkout(&sale, Some(&format!("bench-{n}")), at.clone())?;
                v.push(us(t.elapsed()));
            }
            Ok(v)
        });
        let t = Instant::now();
        let issued = engine.trigger_pass(at.clone());
        let pass = (t.elapsed(), issued);
        done.store(true, Ordering::Relaxed);
        let lat = till.join().expect("till thread")?;
        Ok((pass, lat))
    })?;
    let (elapsed, issued) = pass;
    let issued = issued?;
    let lat = Lat::new(lat);
    println!(
        "trigger pass over {members} members: {:.2} s, {issued} coupons issued (target <= 5 s at 1M)",
        elapsed.as_secs_f64()
    );
    println!(
        "commits during the pass: {} of them, p50 {} us, p99 {} us, max {} us (target: held up by <= 5 ms)",
        lat.0.len(),
        lat.pct(0.50),
        lat.pct(0.99),
        lat.max()
    );
    println!(
        "commits without the pass (5 s before it): {} of them, p50 {} us, p99 {} us, max {} us",
        base.0.len(),
        base.pct(0.50),
        base.pct(0.99),
        base.max()
    );
    engine.close()?;
    Ok(())
}
