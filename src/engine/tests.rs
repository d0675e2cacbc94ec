//! The engine's promises under faults: a replay is an acknowledgement and waits for
//! durability like one; a fault after the journal took records stops every change.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::{parse_instant, Line};

fn cfg(dir: &Path) -> EngineConfig {
    EngineConfig {
        data_dir: dir.to_path_buf(),
        terminal_id: "T1".into(),
        clock: ClockPolicy::Trusted,
        cache_bytes: 4 << 20,
        offline_cap: false,
        hub: false,
        ..Default::default()
    }
}

fn open(dir: &Path) -> Engine {
    let rules = Ruleset::parse(include_str!("../../config/rules.toml"), "rules.toml").unwrap();
    Engine::open(cfg(dir), rules).unwrap()
}

fn at() -> At {
    At {
        ts: parse_instant("2026-06-15T12:00:00+08:00").unwrap(),
        trusted: true,
        actor: crate::engine::Actor::system(),
    }
}

fn sale(price: i64) -> Sale {
    Sale {
        card: "CARD0001".into(),
        lines: vec![Line {
            sku: "rice".into(),
            category: "grocery".into(),
            qty: 1,
            unit_price: price,
        }],
        ..Sale::default()
    }
}

fn with_member(dir: &Path) -> Arc<Engine> {
    let e = open(dir);
    let m = NewMember {
        card: Some("CARD0001".into()),
        name: "Member".into(),
        phone: "13900000001".into(),
        ..NewMember::default()
    };
    e.add_member(m, None, at()).unwrap();
    Arc::new(e)
}

/// Waits (with a deadline) until an fdatasync is running.
fn until_syncing(e: &Engine) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while e.journal.faults().in_sync.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "no fdatasync started");
        std::thread::yield_now();
    }
}

#[test]
fn a_replay_answers_only_once_what_it_replays_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let e = with_member(dir.path());
    e.journal.faults().sync_delay_ms.store(300, Ordering::SeqCst);
    let first = {
        let e = e.clone();
        std::thread::spawn(move || e.checkout(&sale(5000), Some("pos-1"), at()))
    };
    // The POS timed out and sends the same key while the sale is inside its sync.
    until_syncing(&e);
    let again = e.checkout(&sale(5000), Some("pos-1"), at()).unwrap();
    // The seq is the transaction id's last part (see `tx_id`).
    let seq: u64 = again
        .tx_id
        .as_deref()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(again.replayed);
    assert!(
        e.journal.durable_seq() >= seq,
        "the replay answered before record {seq} was durable (durable: {})",
        e.journal.durable_seq()
    );
    let first = first.join().unwrap().unwrap();
    assert_eq!((first.tx_id, first.total), (again.tx_id, again.total));
}

#[test]
fn after_a_failed_fdatasync_a_replay_is_refused_and_so_is_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let e = with_member(dir.path());
    let faults = e.journal.faults();
    faults.sync_delay_ms.store(200, Ordering::SeqCst);
    faults.fail_sync.store(true, Ordering::SeqCst);
    let first = {
        let e = e.clone();
        std::thread::spawn(move || e.checkout(&sale(5000), Some("pos-1"), at()))
    };
    until_syncing(&e);
    let again = e.checkout(&sale(5000), Some("pos-1"), at()).unwrap_err();
    assert_eq!(
        again.code,
        Code::Internal,
        "a replay of a sale that never became durable: {again}"
    );
    assert_eq!(first.join().unwrap().unwrap_err().code, Code::Internal);
    faults.sync_delay_ms.store(0, Ordering::SeqCst);
    let other = e.checkout(&sale(100), Some("pos-2"), at()).unwrap_err();
    assert_eq!(other.code, Code::Internal, "{other}");
    assert!(e.healthy().is_err());
    assert!(e.probe().is_err(), "the watchdog stops pinging");
}

#[test]
fn a_failed_append_stops_changes_until_a_restart_which_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let e = with_member(dir.path());
    e.journal.faults().fail_write.store(true, Ordering::SeqCst);
    assert_eq!(
        e.checkout(&sale(5000), Some("pos-1"), at()).unwrap_err().code,
        Code::Internal
    );
    let err = e.checkout(&sale(100), Some("pos-2"), at()).unwrap_err();
    assert!(err.message.contains("refusing changes"), "{err}");
    e.close().unwrap();
    drop(e);
    let e = open(dir.path());
    assert!(e.healthy().is_ok());
    let r = e.checkout(&sale(5000), Some("pos-1"), at()).unwrap();
    assert!(!r.replayed, "the failed sale never happened");
}
