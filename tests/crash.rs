//! Power-cut drill with the real binary: a loop of `loyaltyd checkout` processes is hit
//! by SIGKILL at random instants, again and again. After every kill the data dir must
//! open, `journal verify` must pass, and every checkout that printed a receipt must
//! still be there (its idempotency key replays the same transaction).
//!
//! LOYALTYD_CRASH_ROUNDS sets the number of kills (default 50); LOYALTYD_CRASH_SEED
//! replays a run (the seed is printed).

mod support;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cli::{sale_args, Term, XorShift};

const CARD: &str = "04A1B2C3";
const AT: &str = "2026-11-24T10:00:00+08:00";
const LINES: [&str; 2] = ["rice,grocery,2,3450", "oil,grocery,1,5990"];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs checkouts one after another until one is killed; returns the (key, tx_id) of
/// every receipt printed and whether the kill hit a running process.
fn loop_until_killed(t: &Term, round: u64, kill_after: Duration) -> (Vec<(String, String)>, bool) {
    let started = Instant::now();
    let mut receipts = Vec::new();
    for i in 0.. {
        let key = format!("r{round}-{i}");
        let args = sale_args("checkout", CARD, AT, &LINES, &["--key", &key]);
        let mut child = t
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let left = kill_after.saturating_sub(started.elapsed());
        let deadline = Instant::now() + left;
        let killed = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut out = String::new();
                child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
                assert_eq!(status.code(), Some(0), "checkout {key} failed: {out}");
                let v: Value = serde_json::from_str(out.trim()).unwrap();
                receipts.push((key.clone(), v["tx_id"].as_str().unwrap().to_string()));
                break false;
            }
            if Instant::now() >= deadline {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break true;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        if killed {
            return (receipts, true);
        }
        if started.elapsed() >= kill_after {
            return (receipts, false);
        }
    }
    unreachable!()
}

#[test]
fn kill_9_at_random_instants_loses_no_printed_receipt() {
    let rounds = env_u64("LOYALTYD_CRASH_ROUNDS").unwrap_or(50);
    let seed = env_u64("LOYALTYD_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!("LOYALTYD_CRASH_SEED={seed}");
    let mut rng = XorShift::new(seed);
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);

    // How long one checkout process takes here, so that kills land in every phase of it.
    let probe = Instant::now();
    t.checkout(CARD, AT, &LINES, &["--key", "probe"]);
    let one = probe.elapsed().as_micros() as u64;

    let mut all: Vec<(String, String)> = Vec::new();
    let (mut hits, mut records) = (0, t.records());
    for round in 0..rounds {
        // Up to about three checkouts' worth of time, so the kill falls in the first,
        // second or third process, at any point of it.
        let after = Duration::from_micros(rng.below(3 * one + 1));
        let (receipts, hit) = loop_until_killed(&t, round, after);
        hits += u64::from(hit);
        all.extend(receipts);

        // The journal verifies and the store opens after every kill.
        let now = t.records();
        assert!(
            now >= records,
            "round {round}: the journal shrank from {records} to {now}"
        );
        records = now;
        t.show(CARD, AT);
    }
    assert!(
        hits >= rounds / 2,
        "only {hits} of {rounds} kills hit a running checkout"
    );

    // Every printed receipt is still there: its key replays the same transaction.
    for (key, tx) in &all {
        let args = sale_args("checkout", CARD, AT, &LINES, &["--key", key]);
        let r = t.ok(&args);
        assert_eq!(
            (r["tx_id"].as_str(), r["replayed"].as_bool()),
            (Some(tx.as_str()), Some(true)),
            "the receipt of {key} was lost (seed {seed})"
        );
    }
    println!(
        "{rounds} kills, {hits} during a checkout; {} receipts printed, all present",
        all.len()
    );
}

/// A state store that was in use when the machine went down (its session names
/// another boot) is not believed: any command moves it aside and rebuilds it, by
/// itself, and the moved-aside copies stay few.
#[test]
fn a_store_left_by_another_boot_is_rebuilt_by_itself_and_old_copies_are_bounded() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    t.checkout(CARD, AT, &LINES, &["--key", "k1"]);
    let want = t.show(CARD, AT);
    let session = t.data.join("state.session");
    assert!(!session.exists(), "every command closes its session cleanly");
    for round in 0..5 {
        std::fs::write(&session, "open 0123456789abcdef0123456789abcdef\n").unwrap();
        let r = t.run(&["member", "show", "--card", CARD, "--at", AT]);
        assert_eq!(r.status, 0, "round {round}: {r:?}");
        assert!(
            r.stderr.contains("machine last went down") && r.stderr.contains("rebuilt it from the journal"),
            "round {round}: stderr says what was done: {}",
            r.stderr
        );
        assert_eq!(r.json(), want, "round {round}");
        if round >= 3 {
            assert!(r.stderr.contains("deleted the older"), "{}", r.stderr);
        }
    }
    let broken = std::fs::read_dir(&t.data)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("state.broken-")
        })
        .count();
    assert_eq!(broken, 3, "the newest three are kept");
    let r = t.ok(&sale_args("checkout", CARD, AT, &LINES, &["--key", "k1"]));
    assert_eq!(r["replayed"], true);
}
