//! Every change honours `Idempotency-Key` (interface.md "Added in 0.2"): the same key
//! with the same request answers the first answer again, with the same status and no
//! second effect, also after a restart; the same key with another request is 409.

mod support;

use serde_json::{json, Value};
use support::daemon::{code, Client, Daemon};

fn key(k: &str) -> [(&'static str, &str); 1] {
    [("Idempotency-Key", k)]
}

/// The answer without the `replayed` flag, for comparing a replay with the original.
fn unflagged(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("replayed");
    }
    v
}

fn sale() -> Value {
    json!({"card": "04A1B2C3", "lines": [{"sku": "rice", "category": "grocery", "qty": 2, "unit_price": 3450}]})
}

/// POSTs `body` twice with one key: both answers equal, both `status`.
fn twice(c: &Client, path: &str, body: &Value, k: &str, status: u16) -> Value {
    let first = c.post_json(path, body, &key(k), status);
    let again = c.post_json(path, body, &key(k), status);
    assert_eq!(
        unflagged(again.clone()),
        unflagged(first.clone()),
        "{path}: the replay answers the same"
    );
    if first.get("replayed").is_some() {
        assert_eq!(
            (first["replayed"].as_bool(), again["replayed"].as_bool()),
            (Some(false), Some(true))
        );
    }
    first
}

#[test]
fn every_change_answers_a_retried_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    let ann = json!({"card": "04A1B2C3", "name": "Ann", "phone": "13800000001"});
    let m = twice(&c, "/v1/members", &ann, "k-enrol", 201);
    // Another member with the key of the first: a conflict, and nothing enrolled.
    let bob = json!({"card": "04B0B0B0", "name": "Bob", "phone": "13800000002"});
    assert_eq!(
        code(&c.post_json("/v1/members", &bob, &key("k-enrol"), 409)),
        "idempotency_conflict"
    );
    assert_eq!(code(&c.get_json("/v1/cards/04B0B0B0", 404)), "unknown_card");

    let r = twice(&c, "/v1/checkout/commit", &sale(), "k-sale", 200);
    let tx = r["tx_id"].as_str().unwrap().to_string();
    let balance = r["balance"].as_i64().unwrap();

    // A refund retried pays out once.
    let refund = json!({"tx_id": tx, "lines": [{"sku": "rice", "qty": 1}]});
    let first = twice(&c, "/v1/refunds", &refund, "k-refund", 200);
    assert_eq!(first["amount"], 3450);
    let after = c.get_json("/v1/cards/04A1B2C3", 200);
    assert_eq!(after["balance"].as_i64().unwrap(), balance - 34, "clawed back once");
    let daily = c.get_json("/v1/reports/daily", 200);
    assert_eq!(daily["refunds"], 1, "one refund made: {daily}");
    // The same key for the rest of the sale is another request.
    let rest = json!({"tx_id": tx});
    assert_eq!(
        code(&c.post_json("/v1/refunds", &rest, &key("k-refund"), 409)),
        "idempotency_conflict"
    );

    // A coupon retried is issued once.
    let coupon = json!({"card": "04A1B2C3", "type": "welcome5"});
    let cp = twice(&c, "/v1/coupons", &coupon, "k-coupon", 200);
    assert!(cp["code"].is_string());
    assert_eq!(c.get_json("/v1/reports/daily", 200)["coupons_issued"], 1);

    // Cards.
    let new = json!({"new_card": "04D0D0D0"});
    twice(&c, "/v1/cards/04A1B2C3/replace", &new, "k-replace", 200);
    let (s1, b1) = c.post("/v1/cards/04D0D0D0/block", "", &key("k-block")).unwrap();
    let (s2, b2) = c.post("/v1/cards/04D0D0D0/block", "", &key("k-block")).unwrap();
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, b2);

    // A key used for one kind of change conflicts with every other kind.
    assert_eq!(
        code(&c.post_json("/v1/coupons", &coupon, &key("k-sale"), 409)),
        "idempotency_conflict"
    );

    // After a restart the keys still answer the same, from the journal.
    drop(d);
    let d = Daemon::start(dir.path());
    let c = d.client();
    let again = c.post_json("/v1/members", &ann, &key("k-enrol"), 201);
    assert_eq!(again, m);
    let again = c.post_json("/v1/refunds", &refund, &key("k-refund"), 200);
    assert_eq!(unflagged(again), unflagged(first));
    let again = c.post_json("/v1/coupons", &coupon, &key("k-coupon"), 200);
    assert_eq!(again, cp);
    assert_eq!(c.get_json("/v1/reports/daily", 200)["refunds"], 1);
}

#[test]
fn a_reward_retried_is_redeemed_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    c.post_json(
        "/v1/members",
        &json!({"card": "04A1B2C3", "name": "Ann", "phone": "13800000001"}),
        &[],
        201,
    );
    let big =
        json!({"card": "04A1B2C3", "lines": [{"sku": "wine", "category": "alcohol", "qty": 1, "unit_price": 90000}]});
    c.post_json("/v1/checkout/commit", &big, &key("k-earn"), 200);
    let reward = json!({"card": "04A1B2C3", "sku": "mug"});
    let first = twice(&c, "/v1/rewards/redeem", &reward, "k-mug", 200);
    assert_eq!(c.get_json("/v1/reports/daily", 200)["rewards_redeemed"], 1);
    drop(d);
    let d = Daemon::start(dir.path());
    let again = d.client().post_json("/v1/rewards/redeem", &reward, &key("k-mug"), 200);
    assert_eq!(again, first, "stock left and balance as the first answer said");
}
