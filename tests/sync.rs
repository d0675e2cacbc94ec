//! Sync end to end: the real hub and real terminals on loopback, with a fault-injecting
//! proxy between them. After the link heals, every committed record is on the hub
//! exactly once, no point is applied twice, terminals and hub agree on every balance,
//! and offline double spending stays within 2 x the cap and is reported.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use support::daemon::code;
use support::eventually;
use support::hub::{secret_file, Hub};
use support::proxy::{Fault, Proxy};
use support::shop::{chain, hub_member, last_sync, Shop};

/// The hub's figures of a terminal, summed over its install epochs.
fn hub_terminal(hub: &Hub, id: &str) -> (u64, u64) {
    let all = hub.client().get_json("/v1/hub/terminals", 200);
    all.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["terminal_id"] == id)
        .fold((0, 0), |(r, d), t| {
            (
                r + t["records"].as_u64().unwrap(),
                d + t["duplicates"].as_u64().unwrap(),
            )
        })
}

/// Every terminal and the hub show the same balance for every member.
fn assert_converged(hub: &Hub, shops: &[&Shop], members: &HashMap<String, String>, expected: &HashMap<String, i64>) {
    for (card, id) in members {
        let want = expected[card];
        assert_eq!(hub_member(hub, id)["balance"], want, "hub balance of {card}");
        for s in shops {
            eventually(
                30,
                &format!("{} shows {card} at the hub's balance {want}", s.id),
                || (s.balance(card) == Some(want)).then_some(()),
            );
        }
    }
}

#[test]
fn every_record_reaches_the_hub_once_through_a_faulty_link() {
    let root = tempfile::tempdir().unwrap();
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let terminals = [("T1", s1.as_path()), ("T2", s2.as_path())];
    let mut hub = Hub::start(root.path(), &terminals);
    let mut t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let t2 = Shop::open(root.path(), "T2", &hub, &s2);

    // Members enrolled at T1 become known at T2 through the hub.
    let cards = ["0A000001", "0A000002", "0A000003", "0A000004"];
    let mut members = HashMap::new();
    for (i, card) in cards.iter().enumerate() {
        members.insert(card.to_string(), t1.enrol(card, &format!("1390000000{i}")));
    }
    let mut made = HashMap::from([("T1", cards.len() as u64), ("T2", 0u64)]);
    for card in cards {
        eventually(30, &format!("T2 knows {card}"), || {
            t2.c().get(&format!("/v1/cards/{card}")).ok().filter(|r| r.0 == 200)
        });
    }

    let mut expected: HashMap<String, i64> = cards.iter().map(|c| (c.to_string(), 0)).collect();
    let mut sale = |shop: &Shop, n: usize, made: &mut HashMap<&str, u64>| {
        let card = cards[n % cards.len()];
        let r = shop
            .commit(card, &format!("{}-{n}", shop.id), 1000 + 100 * n as i64, 0)
            .unwrap();
        *expected.get_mut(card).unwrap() += r["points_earned"].as_i64().unwrap();
        *made.get_mut(shop.id).unwrap() += 1;
    };

    // A bad link: every kind of fault, in turn, on both sides.
    let faults = [
        Fault::CutRequest,
        Fault::CutResponse,
        Fault::Duplicate,
        Fault::Drop,
        Fault::Delay(Duration::from_millis(1500)),
        Fault::CutResponse,
        Fault::Duplicate,
    ];
    t1.proxy.queue(&faults);
    t2.proxy.queue(&faults[1..]);
    for n in 0..12 {
        sale(&t1, n, &mut made);
        sale(&t2, n, &mut made);
        std::thread::sleep(Duration::from_millis(100));
    }

    // The hub dies and comes back on another port.
    hub.kill9();
    for n in 12..18 {
        sale(&t1, n, &mut made);
        sale(&t2, n, &mut made);
    }
    hub = Hub::start(root.path(), &terminals);
    t1.proxy.set_upstream(&hub.addr());
    t2.proxy.set_upstream(&hub.addr());

    // The link goes dead for a while: commits go on offline.
    t1.proxy.down(true);
    t2.proxy.down(true);
    for n in 18..24 {
        sale(&t1, n, &mut made);
        sale(&t2, n, &mut made);
    }
    t1.proxy.down(false);
    t2.proxy.down(false);

    // T1 dies after the hub acknowledged its records and before it recorded that: two
    // sales made offline, a restart with the fault armed while the link is still dead,
    // then the link returns, the hub acknowledges, and T1 exits before recording it.
    t1.proxy.down(true);
    sale(&t1, 24, &mut made);
    sale(&t1, 25, &mut made);
    t1.d.signal(libc::SIGKILL);
    t1.d.wait_exit(Duration::from_secs(10));
    t1.restart(&[("LOYALTYD_FAULT", "exit-after-ack")]);
    t1.proxy.down(false);
    let status = t1.d.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(137),
        "T1 should have died right after an acknowledgement"
    );
    t1.restart(&[]);

    // Healed: everything arrives, once.
    eventually(60, "every injected fault was used", || {
        (t1.proxy.queued() == 0 && t2.proxy.queued() == 0).then_some(())
    });
    let mark = last_sync(&t1).max(last_sync(&t2));
    t1.wait_synced(&mark);
    t2.wait_synced(&mark);
    for shop in [&t1, &t2] {
        let (records, _) = hub_terminal(&hub, shop.id);
        assert_eq!(records, made[shop.id], "records of {} held by the hub", shop.id);
    }
    println!(
        "hub holds T1 {:?} T2 {:?} (records, duplicates); faults applied at T1: {:?}",
        hub_terminal(&hub, "T1"),
        hub_terminal(&hub, "T2"),
        t1.proxy
            .applied()
            .iter()
            .filter(|a| a.1 != Fault::Pass)
            .collect::<Vec<_>>()
    );
    let dups = hub_terminal(&hub, "T1").1 + hub_terminal(&hub, "T2").1;
    assert!(
        dups > 0,
        "the duplicated and answer-lost pushes were refused as duplicates"
    );
    for f in [Fault::CutRequest, Fault::CutResponse, Fault::Duplicate, Fault::Drop] {
        assert!(t1.proxy.applied().iter().any(|a| a.1 == f), "{f:?} was injected");
    }
    assert_converged(&hub, &[&t1, &t2], &members, &expected);
    assert!(
        hub.client()
            .get_json("/v1/hub/reports/overspent", 200)
            .as_array()
            .unwrap()
            .is_empty(),
        "nobody redeemed, nobody is overspent"
    );
}

#[test]
fn offline_double_spend_is_bounded_by_the_cap_and_reported() {
    let root = tempfile::tempdir().unwrap();
    let (hub, t1, t2) = chain(root.path());
    let card = "0B000001";
    let id = t1.enrol(card, "13900000001");
    let earned = t1.commit(card, "big", 300_000, 0).unwrap()["points_earned"]
        .as_i64()
        .unwrap();
    let cap = 2000; // redeem.offline_cap_points of config/rules.toml
    assert!(earned >= cap && earned < 2 * cap, "{earned}");
    eventually(30, "T2 sees the points", || {
        (t2.balance(card) == Some(earned)).then_some(())
    });

    // Both shops lose the hub; each lets the member redeem up to the cap.
    t1.proxy.down(true);
    t2.proxy.down(true);
    let r1 = t1.commit(card, "r1", 10_000, cap).unwrap();
    let r2 = t2.commit(card, "r2", 10_000, cap).unwrap();
    assert_eq!(
        (r1["points_redeemed"].as_i64(), r2["points_redeemed"].as_i64()),
        (Some(cap), Some(cap))
    );
    // The cap counts exactly what the hub has not confirmed.
    let e = t1.commit(card, "r3", 10_000, 100).unwrap_err();
    assert_eq!(code(&e), "offline_cap_exceeded", "{e}");

    t1.proxy.down(false);
    t2.proxy.down(false);
    let mark = last_sync(&t1).max(last_sync(&t2));
    t1.wait_synced(&mark);
    t2.wait_synced(&mark);
    let want = earned + r1["points_earned"].as_i64().unwrap() + r2["points_earned"].as_i64().unwrap() - 2 * cap;
    assert!(want < 0, "the member spent more than they had: {want}");
    assert!(-want <= 2 * cap, "overspent by at most 2 x the cap");
    let members = HashMap::from([(card.to_string(), id.clone())]);
    let expected = HashMap::from([(card.to_string(), want)]);
    assert_converged(&hub, &[&t1, &t2], &members, &expected);
    let report = hub.client().get_json("/v1/hub/reports/overspent", 200);
    assert_eq!(report, json!([{"member_id": id, "balance": want}]));
    // Once confirmed, the cap no longer holds the member back; the balance does.
    let e = t1.commit(card, "r4", 10_000, 100).unwrap_err();
    assert_eq!(code(&e), "insufficient_points", "{e}");
}

#[test]
fn a_published_ruleset_and_a_blocked_card_reach_every_terminal() {
    let root = tempfile::tempdir().unwrap();
    let (hub, t1, t2) = chain(root.path());
    let card = "0C000001";
    t1.enrol(card, "13900000002");
    eventually(30, "T2 knows the card", || {
        t2.c().get(&format!("/v1/cards/{card}")).ok().filter(|r| r.0 == 200)
    });
    let sale = json!({"card": card, "lines": [{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": 5000}]});
    let quote = |s: &Shop| {
        s.c().post_json("/v1/checkout/quote", &sale, &[], 200)["points_earned"]
            .as_i64()
            .unwrap()
    };
    let before = quote(&t2);

    // Version 2 doubles the points per unit.
    let base = std::fs::read_to_string(support::daemon::repo("config/rules.toml")).unwrap();
    let v2 = base
        .replacen("version = 1", "version = 2", 1)
        .replacen("points_per_unit = 1 ", "points_per_unit = 2 ", 1);
    assert_ne!(v2, base);
    let (status, body) = hub_post(&hub, "/v1/hub/rulesets", &v2, true);
    assert_eq!(status, 201, "{body}");
    // Not newer: refused.
    let (status, body) = hub_post(&hub, "/v1/hub/rulesets", &v2, true);
    assert_eq!(
        (status, code(&serde_json::from_str(&body).unwrap())),
        (400, "invalid_input")
    );
    for s in [&t1, &t2] {
        eventually(30, &format!("{} prices with version 2", s.id), || {
            (quote(s) == 2 * before).then_some(())
        });
    }

    // Blocked at T1, refused at T2 after its next pull.
    t1.c()
        .post_json(&format!("/v1/cards/{card}/block"), &json!({}), &[], 200);
    eventually(30, "T2 refuses the blocked card", || {
        let (status, text) = t2.c().post("/v1/checkout/quote", &sale.to_string(), &[]).unwrap();
        (status == 422 && text.contains("card_blocked")).then_some(())
    });
}

/// The hub finds a refunded sale inside the terminal's record it stored, live and when
/// its state is rebuilt from its journal.
#[test]
fn refunds_reach_the_hub_and_survive_a_rebuild_of_its_state() {
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let mut hub = Hub::start(root.path(), &[("T1", s1.as_path())]);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let card = "0D000001";
    let id = t1.enrol(card, "13900000003");
    let earned = t1.commit(card, "earn", 300_000, 0).unwrap()["points_earned"]
        .as_i64()
        .unwrap();
    let sale = t1.commit(card, "spend", 20_000, 500).unwrap();
    assert_eq!(sale["points_redeemed"], 500);
    assert_ne!(
        sale["points_earned"], 500,
        "the refund must move the balance either way"
    );
    let tx = sale["tx_id"].as_str().unwrap();
    let refund = t1.c().post_json("/v1/refunds", &json!({ "tx_id": tx }), &[], 200);
    assert_eq!(refund["points_returned"], 500, "{refund}");
    assert_eq!(
        refund["balance"], earned,
        "a full refund restores the balance: {refund}"
    );
    t1.wait_synced(&last_sync(&t1));
    assert_eq!(hub_member(&hub, &id)["balance"], earned);

    // The hub's state store is lost (a file where its directory was): the hub moves
    // it aside and rebuilds it from its journal, refund included.
    hub.kill9();
    let state = root.path().join("hub").join("state");
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::write(&state, b"not a sled directory").unwrap();
    let hub = Hub::start(root.path(), &[("T1", s1.as_path())]);
    assert_eq!(hub_member(&hub, &id)["balance"], earned);
    let aside = std::fs::read_dir(root.path().join("hub"))
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("state.broken-"));
    assert!(aside, "the unusable state was moved aside, not deleted");
}

fn hub_post(hub: &Hub, path: &str, body: &str, with_token: bool) -> (u16, String) {
    let c = if with_token {
        hub.client()
    } else {
        hub.client().with_token(None)
    };
    c.post(path, body, &[]).unwrap()
}

#[test]
fn a_terminal_without_a_clock_of_its_own_takes_the_hubs() {
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let hub = Hub::start(root.path(), &[("T1", s1.as_path())]);
    let proxy = Proxy::start(&hub.addr());
    proxy.down(true);
    let dir = root.path().join("T1");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Shop::start(&dir, "T1", &proxy, &s1, &["--clock", "hub"], &[]);
    let c = d.client();
    assert_eq!(c.get_json("/v1/health", 200)["clock_trusted"], false, "no hub seen yet");
    c.post_json(
        "/v1/members",
        &json!({"card": "0E000001", "name": "Member", "phone": "13900000005"}),
        &[],
        201,
    );
    proxy.down(false);
    eventually(30, "the hub's clock is trusted", || {
        (c.get_json("/v1/health", 200)["clock_trusted"] == true).then_some(())
    });
    c.post_json(
        "/v1/members",
        &json!({"card": "0E000002", "name": "Member", "phone": "13900000006"}),
        &[],
        201,
    );
    // The hub keeps the terminal's record with its clock flag inside its own.
    let t = eventually(30, "both records reach the hub", || {
        let all = hub.client().get_json("/v1/hub/terminals", 200);
        let t = all[0].clone();
        (t["records"] == 2).then_some(t)
    });
    assert_eq!(t["untrusted_clock"], 1, "{t}");
}

#[test]
fn unauthenticated_or_unknown_terminals_are_refused() {
    use loyaltyd::sync::wire::{self, PushRequest};
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let hub = Hub::start(root.path(), &[("T1", s1.as_path())]);
    let secret = std::fs::read_to_string(&s1).unwrap().trim().as_bytes().to_vec();
    let push = |terminal: &str, key: &[u8], auth: bool| {
        let req = PushRequest {
            terminal_id: terminal.into(),
            epoch: 7,
            from: 1,
            upto: 0,
            records: vec![],
        };
        let body = postcard::to_allocvec(&req).unwrap();
        let mut r = ureq::post(format!("{}{}", hub.url, wire::PUSH_PATH))
            .config()
            .http_status_as_error(false)
            .build();
        if auth {
            r = r.header("Authorization", wire::sign(key, terminal, wire::PUSH_PATH, &body));
        }
        r.send(&body[..]).unwrap().status().as_u16()
    };
    assert_eq!(
        push("T1", &secret, true),
        200,
        "the registered terminal with its secret"
    );
    assert_eq!(push("T1", &secret, false), 401, "unsigned");
    assert_eq!(push("T1", b"a-wrong-secret-0123456789", true), 401, "wrong secret");
    assert_eq!(push("T9", &secret, true), 401, "unknown terminal");
    // A terminal cannot push another's stream with its own signature.
    let body = postcard::to_allocvec(&PushRequest {
        terminal_id: "T2".into(),
        epoch: 7,
        from: 1,
        upto: 0,
        records: vec![],
    })
    .unwrap();
    let status = ureq::post(format!("{}{}", hub.url, wire::PUSH_PATH))
        .config()
        .http_status_as_error(false)
        .build()
        .header("Authorization", wire::sign(&secret, "T1", wire::PUSH_PATH, &body))
        .send(&body[..])
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 401);
    // Operators need the token.
    let anon = hub.client().with_token(None);
    for path in ["/v1/hub/terminals", "/v1/hub/reports/overspent", "/v1/hub/members/m-1"] {
        assert_eq!(anon.get(path).unwrap().0, 401, "{path}");
    }
    assert_eq!(hub_post(&hub, "/v1/hub/rulesets", "version = 9", false).0, 401);
    assert_eq!(
        code(&hub.client().get_json("/v1/hub/members/m-nobody", 404)),
        "unknown_member"
    );
    // An unknown terminal process gets nowhere, and says so in its health.
    let t9 = Shop::open(root.path(), "T9", &hub, &secret_file(root.path(), "T9"));
    t9.enrol("0D000001", "13900000009");
    // Two sync rounds reached the hub and were refused (a round pulls first; the
    // next begins only after the last one's answer).
    eventually(20, "T9 tried twice", || (t9.proxy.applied().len() >= 2).then_some(()));
    assert_eq!(t9.health()["outbox"], 1);
    assert!(hub_terminal(&hub, "T9") == (0, 0));
}
