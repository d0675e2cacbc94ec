//! The store's own layout: transactions read back from the journal, idempotency
//! buckets, the layout check.

use super::*;
use crate::engine::{self, At, ClockPolicy, Engine, EngineConfig, NewMember, Sale};
use crate::error::Code;
use crate::model::{parse_instant, Line};
use crate::rules::Ruleset;

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

fn sale(card: &str, price: i64) -> Sale {
    Sale {
        card: card.into(),
        lines: vec![Line {
            sku: "rice".into(),
            category: "grocery".into(),
            qty: 1,
            unit_price: price,
        }],
        redeem_points: None,
        pin: None,
        coupon: None,
    }
}

fn enrol(e: &Engine, card: &str, phone: &str) {
    let m = NewMember {
        card: Some(card.into()),
        name: "Member".into(),
        phone: phone.into(),
        ..NewMember::default()
    };
    e.add_member(m, None, at()).unwrap();
}

/// Two idempotency keys that land in the same bucket.
fn colliding_keys() -> (String, String) {
    let mut seen = std::collections::HashMap::new();
    for i in 0.. {
        let key = format!("pos-{i}");
        if let Some(other) = seen.insert(idem_bucket_key(&key), key.clone()) {
            return (other, key);
        }
    }
    unreachable!()
}

#[test]
fn tx_ids_parse_back_into_their_parts() {
    let id = engine::tx_id("T-1", 0x1_2345_6789, 42);
    assert_eq!(parse_tx_id(&id), Some(("T-1", 0x2345_6789, 42)));
    for bad in [
        "",
        "T1",
        "T1-1234567-0000000001",
        "T1-1234567g-1",
        "-12345678-1",
        "T1-12345678-",
        "T1-12345678-x1",
    ] {
        assert_eq!(parse_tx_id(bad), None, "{bad:?}");
    }
}

#[test]
fn keys_sharing_a_bucket_answer_each_for_its_own_sale_and_survive_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = colliding_keys();
    assert_eq!(idem_bucket_key(&k1), idem_bucket_key(&k2));
    let e = open(dir.path());
    enrol(&e, "CARD0001", "13900000001");
    let r1 = e.checkout(&sale("CARD0001", 1000), Some(&k1), at()).unwrap();
    let r2 = e.checkout(&sale("CARD0001", 2000), Some(&k2), at()).unwrap();
    assert_ne!(r1.tx_id, r2.tx_id);
    let check = |e: &Engine| {
        let again = e.checkout(&sale("CARD0001", 2000), Some(&k2), at()).unwrap();
        assert!(again.replayed);
        assert_eq!((again.tx_id.as_ref(), again.balance), (r2.tx_id.as_ref(), r2.balance));
        let again = e.checkout(&sale("CARD0001", 1000), Some(&k1), at()).unwrap();
        assert_eq!((again.tx_id.as_ref(), again.balance), (r1.tx_id.as_ref(), r1.balance));
        // Each key is bound to its own request, not its bucket-mate's.
        let err = e.checkout(&sale("CARD0001", 2000), Some(&k1), at()).unwrap_err();
        assert_eq!(err.code, Code::IdempotencyConflict);
    };
    check(&e);
    drop(e);
    engine::rebuild(&cfg(dir.path())).unwrap();
    check(&open(dir.path()));
}

#[test]
fn a_transaction_is_found_only_by_its_own_id() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    enrol(&e, "CARD0001", "13900000001");
    let r = e.checkout(&sale("CARD0001", 5000), None, at()).unwrap();
    let id = r.tx_id.clone().unwrap();
    let tx = e.store().tx(&id).unwrap().unwrap();
    assert_eq!(
        (tx.rec.tx_id.as_str(), tx.rec.total, tx.at),
        (id.as_str(), 5000, at().ts)
    );
    let refund = e.refund(&id, &[], None, at()).unwrap();
    let (_, epoch, seq) = parse_tx_id(&id).unwrap();
    for other in [
        refund.refund_id.clone(),                     // a record, but not a checkout
        engine::tx_id("T1", epoch as u64, seq - 1),   // the member's enrolment
        engine::tx_id("T1", epoch as u64, seq + 100), // beyond the journal
        engine::tx_id("T2", epoch as u64, seq),       // another terminal's
        engine::tx_id("T1", epoch as u64 + 1, seq),   // another install's
        "T1-nonsense".to_string(),
    ] {
        assert_eq!(e.store().tx(&other).unwrap(), None, "{other}");
        let err = e.refund(&other, &[], None, at()).unwrap_err();
        assert_eq!(err.code, Code::UnknownTransaction, "{other}: {err}");
    }
    // The refund left its note: a second full refund finds nothing left.
    let tx = e.store().tx(&id).unwrap().unwrap();
    assert_eq!(tx.refund_ids, vec![refund.refund_id]);
    assert_eq!(e.refund(&id, &[], None, at()).unwrap_err().code, Code::RefundExceeds);
}

#[test]
fn a_store_of_another_layout_is_unusable_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    enrol(&e, "CARD0001", "13900000001");
    let r = e.checkout(&sale("CARD0001", 5000), Some("k"), at()).unwrap();
    e.store().flush().unwrap();
    drop(e);
    let state = dir.path().join("state");
    {
        let db = sled::open(&state).unwrap();
        db.insert(key::LAYOUT, &1u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let (journal, _) = Journal::open(&engine::journal_path(dir.path())).unwrap();
    let err = Store::open(&state, 1 << 20, false, Arc::new(journal)).err().unwrap();
    assert!(err.0.contains("key layout 1"), "{}", err.0);
    let e = open(dir.path());
    let why = e.startup.rebuilt.clone().unwrap();
    assert!(
        why.contains(&format!("key layout 1, this version uses layout {LAYOUT}")),
        "{why}"
    );
    let again = e.checkout(&sale("CARD0001", 5000), Some("k"), at()).unwrap();
    assert_eq!((again.replayed, again.tx_id), (true, r.tx_id));
}

/// The member id of a card, and its balance.
fn balance(e: &Engine, card: &str) -> (String, i64) {
    let m = e.show_member(card, at()).unwrap();
    (m.member_id, m.balance)
}

#[test]
fn a_clean_close_leaves_no_session_and_a_crash_leaves_this_boots() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("state.session");
    let e = open(dir.path());
    enrol(&e, "CARD0001", "13900000001");
    let text = std::fs::read_to_string(&session).unwrap();
    assert!(text.starts_with("open "), "{text}");
    e.close().unwrap();
    assert!(!session.exists(), "closed cleanly");
    let err = e.checkout(&sale("CARD0001", 100), None, at()).unwrap_err();
    assert_eq!(err.code, Code::StoreBusy, "nothing changes after close: {err}");
    drop(e);
    // A process that dies (no close) leaves the session of its boot: believed.
    let e = open(dir.path());
    e.checkout(&sale("CARD0001", 1000), None, at()).unwrap();
    let before = balance(&e, "CARD0001");
    drop(e);
    assert!(session.exists());
    let e = open(dir.path());
    assert_eq!(e.startup.rebuilt, None);
    assert_eq!(balance(&e, "CARD0001"), before);
}

#[test]
fn a_store_in_use_when_the_machine_went_down_is_rebuilt_whatever_its_files_say() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    enrol(&e, "CARD0001", "13900000001");
    e.checkout(&sale("CARD0001", 2500), None, at()).unwrap();
    let want = balance(&e, "CARD0001");
    e.store().flush().unwrap();
    drop(e);
    // Another boot's session, and sled's files as a power cut may leave them: some
    // emptied. Believed, this store would not even open.
    std::fs::write(
        dir.path().join("state.session"),
        "open 0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    for f in std::fs::read_dir(dir.path().join("state")).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::write(f.path(), b"").unwrap();
        }
    }
    let e = open(dir.path());
    let why = e.startup.rebuilt.clone().expect("rebuilt");
    assert!(
        why.contains("machine last went down") && why.contains("broken-"),
        "{why}"
    );
    assert_eq!(balance(&e, "CARD0001"), want);
}

#[test]
fn a_fault_seen_in_the_store_stops_changes_and_gets_it_rebuilt_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    enrol(&e, "CARD0001", "13900000001");
    e.checkout(&sale("CARD0001", 2500), None, at()).unwrap();
    let (id, want) = balance(&e, "CARD0001");
    // The member's value on disk goes bad (a bad block, say).
    e.store().settle().unwrap();
    e.store()
        .shared
        .db
        .insert(k(key::MEMBER, id.as_bytes()), b"\x01\xff\xff\xff".to_vec())
        .unwrap();
    e.store().shared.overlay.forget_recent();
    let err = e.show_member("CARD0001", at()).unwrap_err();
    assert_eq!(err.code, Code::Internal, "{err}");
    assert!(e.store().fault().is_some());
    let err = e.checkout(&sale("CARD0001", 100), None, at()).unwrap_err();
    assert_eq!(err.code, Code::Internal);
    assert!(err.message.contains("refusing changes"), "{err}");
    assert!(e.healthy().is_err());
    let text = std::fs::read_to_string(dir.path().join("state.session")).unwrap();
    assert!(text.starts_with("broken "), "{text}");
    e.close().unwrap();
    drop(e);
    let e = open(dir.path());
    let why = e.startup.rebuilt.clone().expect("rebuilt");
    assert!(why.contains("a fault was seen"), "{why}");
    assert_eq!(balance(&e, "CARD0001"), (id, want));
    assert!(e.healthy().is_ok());
}

#[test]
fn a_store_that_fails_while_its_tail_is_replayed_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    enrol(&e, "CARD0001", "13900000001");
    let enrolled = e.journal().last_seq();
    e.checkout(&sale("CARD0001", 2500), None, at()).unwrap();
    let (id, want) = balance(&e, "CARD0001");
    // sled claims to be at the enrolment but has lost the member: it opens, and
    // fails on the first record it is given.
    e.store().settle().unwrap();
    let db = &e.store().shared.db;
    db.remove(k(key::MEMBER, id.as_bytes())).unwrap();
    db.insert(
        key::APPLIED,
        enc(&Applied {
            seq: enrolled,
            pushable: 0,
        }),
    )
    .unwrap();
    db.flush().unwrap();
    drop(e);
    let e = open(dir.path());
    let why = e.startup.rebuilt.clone().expect("rebuilt");
    assert!(why.contains("replaying the journal's tail"), "{why}");
    assert_eq!(balance(&e, "CARD0001"), (id, want));
}

/// Search pages equal a brute-force answer on both sides of `search::ORDERED_READ`:
/// prefixes few members share (read whole from the ordered index) and common ones
/// (scanned in member id order at a level), names and cards alike.
#[test]
fn searches_find_the_same_members_whether_a_prefix_is_rare_or_common() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let n = search::ORDERED_READ + 200;
    let mut all = Vec::new();
    for i in 0..n {
        let m = NewMember {
            card: Some(format!("CA{i:06}")),
            name: format!("Member {i}"),
            phone: format!("139{i:08}"),
            ..NewMember::default()
        };
        let v = e.add_member(m, None, at()).unwrap();
        all.push((v.member_id, format!("member {i}"), format!("CA{i:06}")));
    }
    let expect = |by_name: bool, q: &str| -> Vec<String> {
        let q = q.to_lowercase();
        let mut ids: Vec<String> = all
            .iter()
            .filter(|(_, name, card)| {
                if by_name {
                    name.starts_with(&q)
                } else {
                    card.starts_with(&q.to_uppercase())
                }
            })
            .map(|(id, _, _)| id.clone())
            .collect();
        ids.sort();
        ids
    };
    let walk = |q: &str| -> Vec<String> {
        let (mut out, mut after) = (Vec::new(), None::<String>);
        loop {
            let (page, next) = e.search(q, after.as_deref(), Some(100), &at()).unwrap();
            out.extend(page.into_iter().map(|m| m.member_id));
            match next {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
    };
    // "member" and "CA00" are shared by every member (the level path), "Member 1" by
    // 1,111 and "Member 12" by 111 (the ordered path), "CA0012" by 100, "Member 2249" by one.
    for q in ["Member", "Member 1", "member 12", "Member 2249", "Member 99999"] {
        assert_eq!(walk(q), expect(true, q), "name {q}");
    }
    for q in ["CA00", "CA0012", "ca00123"] {
        assert_eq!(walk(q), expect(false, q), "card {q}");
    }
    assert!(expect(true, "Member").len() > search::ORDERED_READ);
}
