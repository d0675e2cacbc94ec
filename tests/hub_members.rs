//! Members across the chain, with the real hub and two real terminals: conflicts from
//! offline enrolments (the kept member holds the card everywhere within one round; the
//! operator merges or moves), offline edits that converge on the hub's answer, and the
//! hub's chain-wide lookups and history.

mod support;

use serde_json::{json, Value};
use support::daemon::{code, url_encode, Client};
use support::eventually;
use support::hub::Hub;
use support::shop::{chain, hub_member, last_sync, Shop, PIN};

fn enrol(shop: &Shop, card: &str, name: &str, phone: &str) -> String {
    let body = json!({"card": card, "name": name, "phone": phone, "pin": PIN});
    let m = shop.c().post_json("/v1/members", &body, &[], 201);
    m["member_id"].as_str().unwrap().to_string()
}

/// Takes `shop` back online and waits for one full round after it came back.
fn reconnect(shop: &Shop) {
    let mark = last_sync(shop);
    shop.proxy.down(false);
    shop.wait_synced(&mark);
}

fn member_at(c: &Client, id: &str) -> Value {
    c.get_json(&format!("/v1/members/{id}"), 200)
}

fn hub_post(hub: &Hub, path: &str, body: &Value, status: u16) -> Value {
    hub.client().post_json(path, body, &[], status)
}

fn conflicts(hub: &Hub) -> Vec<Value> {
    hub.client().get_json("/v1/hub/conflicts", 200)["conflicts"]
        .as_array()
        .unwrap()
        .clone()
}

fn sale(shop: &Shop, card: &str, key: &str, price: i64) -> Value {
    shop.commit(card, key, price, 0)
        .unwrap_or_else(|e| panic!("{}: sale {key} refused: {e}", shop.id))
}

#[test]
fn one_card_enrolled_at_two_offline_shops_is_a_conflict_the_first_member_keeps_and_an_operator_merges() {
    let root = tempfile::tempdir().unwrap();
    let (hub, t1, t2) = chain(root.path());
    let card = "0E000001";
    t1.proxy.down(true);
    t2.proxy.down(true);
    let first = enrol(&t1, card, "Ann", "13900000001");
    let second = enrol(&t2, card, "Ann Li", "13900000002");
    let at_t1 = sale(&t1, card, "s1", 10_000)["points_earned"].as_i64().unwrap();
    let at_t2 = sale(&t2, card, "s2", 20_000)["points_earned"].as_i64().unwrap();
    assert!(at_t1 > 0 && at_t2 > 0);

    // T1 reaches the hub first: its enrolment is the earliest in the hub's order.
    reconnect(&t1);
    reconnect(&t2);
    let listed = conflicts(&hub);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let conflict = &listed[0];
    assert_eq!(
        (conflict["kind"].as_str(), conflict["value"].as_str()),
        (Some("card"), Some(card))
    );
    assert_eq!(conflict["members"], json!([first, second]));
    assert!(conflict["detected_at"].is_string());

    // Within that one round T2 hands the card to the kept member, and both shops take it.
    for shop in [&t1, &t2] {
        let seen = shop.c().get_json(&format!("/v1/cards/{card}"), 200);
        assert_eq!(seen["member_id"], first, "{}: {seen}", shop.id);
    }
    let r = sale(&t2, card, "s3", 10_000);
    assert_eq!(r["member_id"], first, "{r}");
    let after_s3 = r["balance"].as_i64().unwrap();
    assert_eq!(after_s3, at_t1 + r["points_earned"].as_i64().unwrap());
    sale(&t1, card, "s4", 100);
    // The other member keeps its own balance meanwhile.
    assert_eq!(member_at(&t2.c(), &second)["balance"].as_i64(), Some(at_t2));

    // Unknown members and conflicts are refused and change nothing.
    let resolve = format!("/v1/hub/conflicts/{}/resolve", conflict["id"].as_str().unwrap());
    let e = hub_post(&hub, &resolve, &json!({"keep": "m-nobody", "merge": true}), 400);
    assert_eq!(code(&e), "invalid_input", "{e}");
    let e = hub_post(
        &hub,
        "/v1/hub/conflicts/c-nope/resolve",
        &json!({"keep": first, "merge": true}),
        404,
    );
    assert!(!code(&e).is_empty(), "{e}");
    assert_eq!(conflicts(&hub).len(), 1);

    // The operator merges the second member into the first.
    let mark = (last_sync(&t1), last_sync(&t2));
    hub_post(&hub, &resolve, &json!({"keep": first, "merge": true}), 200);
    assert_eq!(conflicts(&hub), Vec::<Value>::new());
    let kept = hub_member(&hub, &first);
    let merged = hub_member(&hub, &second);
    assert_eq!(merged["status"], "merged", "{merged}");
    assert_eq!(merged["merged_into"], first);
    assert_eq!(merged["balance"], 0);
    let total = kept["balance"].as_i64().unwrap();
    let t1_s4 = at_t1 + at_t2;
    assert!(total >= t1_s4 + (after_s3 - at_t1), "{kept}");

    // Every terminal converges: the merged balance on the card, the other id merged.
    t1.wait_synced(&mark.0);
    t2.wait_synced(&mark.1);
    for shop in [&t1, &t2] {
        eventually(30, &format!("{} sees the merge", shop.id), || {
            let m = member_at(&shop.c(), &second);
            (m["status"] == "merged" && shop.balance(card) == Some(total)).then_some(())
        });
        // A merged member is not found by lookups any more; its id still answers.
        let found = shop.c().get_json("/v1/members?phone=13900000002", 200);
        assert_eq!(found["members"], json!([]), "{}: {found}", shop.id);
    }
    let history = hub
        .client()
        .get_json(&format!("/v1/hub/members/{first}/transactions"), 200);
    let shops: Vec<&str> = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["terminal_id"].as_str().unwrap())
        .collect();
    assert!(shops.contains(&"T1") && shops.contains(&"T2"), "{history}");
}

#[test]
fn one_phone_enrolled_at_two_offline_shops_moves_to_the_member_the_operator_keeps() {
    let root = tempfile::tempdir().unwrap();
    let (hub, t1, t2) = chain(root.path());
    let phone = "13900000077";
    t1.proxy.down(true);
    t2.proxy.down(true);
    let first = enrol(&t1, "0E000011", "Bo", phone);
    let second = enrol(&t2, "0E000012", "Bo Wang", phone);
    let earned = sale(&t2, "0E000012", "p1", 30_000)["points_earned"].as_i64().unwrap();
    reconnect(&t1);
    reconnect(&t2);
    let listed = conflicts(&hub);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["kind"], "phone");
    assert_eq!(listed[0]["value"], "+86".to_string() + phone);
    // Until resolved, the phone finds the earliest enrolment, at both shops.
    for shop in [&t1, &t2] {
        let found = shop.c().get_json(&format!("/v1/members?phone={phone}"), 200);
        assert_eq!(found["members"][0]["member_id"], first, "{}: {found}", shop.id);
    }

    // Keep the second without merging: the phone moves to it, the balances stay.
    let mark = (last_sync(&t1), last_sync(&t2));
    let resolve = format!("/v1/hub/conflicts/{}/resolve", listed[0]["id"].as_str().unwrap());
    hub_post(&hub, &resolve, &json!({"keep": second, "merge": false}), 200);
    t1.wait_synced(&mark.0);
    t2.wait_synced(&mark.1);
    for shop in [&t1, &t2] {
        eventually(30, &format!("{} sees the phone move", shop.id), || {
            let found = shop.c().get_json(&format!("/v1/members?phone={phone}"), 200);
            (found["members"][0]["member_id"] == second).then_some(())
        });
        let kept = member_at(&shop.c(), &second);
        assert_eq!(
            (kept["status"].as_str(), kept["balance"].as_i64()),
            (Some("active"), Some(earned))
        );
        let other = member_at(&shop.c(), &first);
        assert_eq!(other["status"], "active", "{other}");
        assert_ne!(other["phone"], kept["phone"], "one phone, one member");
    }
    let hub_view = hub
        .client()
        .get_json(&format!("/v1/hub/members?phone={}", url_encode(phone)), 200);
    assert_eq!(hub_view["members"][0]["member_id"], second, "{hub_view}");
}

#[test]
fn offline_edits_of_one_member_converge_on_the_hubs_answer_and_the_hub_reads_the_chain() {
    let root = tempfile::tempdir().unwrap();
    let (hub, t1, t2) = chain(root.path());
    let card = "0E000021";
    let id = enrol(&t1, card, "Cai", "13900000031");
    let tx1 = sale(&t1, card, "e1", 10_000)["tx_id"].as_str().unwrap().to_string();
    eventually(30, "T2 knows the member", || t2.balance(card).map(|_| ()));

    // Both shops edit the name offline; T2 also changes the phone.
    t1.proxy.down(true);
    t2.proxy.down(true);
    let path = format!("/v1/members/{id}");
    let (s, text) = t1.c().request("PATCH", &path, r#"{"name": "Cai One"}"#).unwrap();
    assert_eq!(s, 200, "{text}");
    let (s, text) = t2
        .c()
        .request("PATCH", &path, r#"{"name": "Cai Two", "phone": "13900000032"}"#)
        .unwrap();
    assert_eq!(s, 200, "{text}");
    let tx2 = sale(&t2, card, "e2", 20_000)["tx_id"].as_str().unwrap().to_string();

    // T2's edit reaches the hub last, so it wins; both shops end on the hub's answer.
    reconnect(&t1);
    reconnect(&t2);
    let mark = last_sync(&t1);
    t1.wait_synced(&mark);
    let answer = hub_member(&hub, &id);
    assert_eq!(
        (answer["name"].as_str(), answer["phone"].as_str()),
        (Some("Cai Two"), Some("+8613900000032"))
    );
    for shop in [&t1, &t2] {
        eventually(30, &format!("{} converges", shop.id), || {
            let m = member_at(&shop.c(), &id);
            (m["name"] == answer["name"] && m["phone"] == answer["phone"] && m["balance"] == answer["balance"])
                .then_some(())
        });
    }
    // The old phone is free at every shop, the new one finds the member.
    for shop in [&t1, &t2] {
        let old = shop.c().get_json("/v1/members?phone=13900000031", 200);
        assert_eq!(old["members"], json!([]), "{}", shop.id);
    }

    // The hub reads the chain: lookup by phone and by search, history from both shops,
    // a reprint, the ledger adding up to the balance.
    let hc = hub.client();
    let by_phone = hc.get_json("/v1/hub/members?phone=13900000032", 200);
    assert_eq!(by_phone["members"][0]["member_id"], id, "{by_phone}");
    let by_name = hc.get_json(&format!("/v1/hub/members?q={}", url_encode("cai t")), 200);
    assert_eq!(by_name["members"][0]["member_id"], id, "{by_name}");
    let history = hc.get_json(&format!("/v1/hub/members/{id}/transactions"), 200);
    let txs: Vec<(&str, &str)> = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tx_id"].as_str().unwrap(), t["terminal_id"].as_str().unwrap()))
        .collect();
    assert_eq!(txs, vec![(tx2.as_str(), "T2"), (tx1.as_str(), "T1")], "newest first");
    let reprint = hc.get_json(&format!("/v1/hub/transactions/{tx1}"), 200);
    assert_eq!(reprint["member_id"], id, "{reprint}");
    let ledger = hc.get_json(&format!("/v1/hub/members/{id}/points"), 200);
    let sum: i64 = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["points"].as_i64().unwrap())
        .sum();
    assert_eq!(Some(sum), answer["balance"].as_i64(), "{ledger}");
    // Operator endpoints need the token.
    let (s, _) = hc
        .with_token(None)
        .get(&format!("/v1/hub/members/{id}/transactions"))
        .unwrap();
    assert_eq!(s, 401);
}
