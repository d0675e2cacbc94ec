//! The PIN lock cannot be walked around: every PIN check counts towards it (quotes
//! included), a wrong PIN is always refused (also where none was needed), a lock stops
//! everything that checks a PIN, and quotes that check a PIN are rate-limited.

mod support;

use serde_json::{json, Value};
use support::daemon::{code, Client, Daemon};

fn member_with_points(c: &Client) {
    c.post_json(
        "/v1/members",
        &json!({"card": "04A1B2C3", "name": "Ann", "phone": "13800000001", "pin": "1234"}),
        &[],
        201,
    );
    let big =
        json!({"card": "04A1B2C3", "lines": [{"sku": "wine", "category": "alcohol", "qty": 1, "unit_price": 300000}]});
    c.post_json("/v1/checkout/commit", &big, &[("Idempotency-Key", "earn")], 200);
}

fn sale_with(pin: &str, redeem: i64) -> Value {
    json!({"card": "04A1B2C3", "redeem_points": redeem, "pin": pin,
           "lines": [{"sku": "wine", "category": "alcohol", "qty": 1, "unit_price": 60000}]})
}

#[test]
fn wrong_pins_in_quotes_count_and_lock_everything_that_checks_a_pin() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    member_with_points(&c);
    for _ in 0..5 {
        let e = c.post_json("/v1/checkout/quote", &sale_with("9999", 1000), &[], 422);
        assert_eq!(code(&e), "pin_invalid");
    }
    // Locked now: the right PIN is refused at a quote, a checkout and a reward.
    assert_eq!(
        code(&c.post_json("/v1/checkout/quote", &sale_with("1234", 1000), &[], 422)),
        "pin_locked"
    );
    let e = c.post_json(
        "/v1/checkout/commit",
        &sale_with("1234", 1000),
        &[("Idempotency-Key", "x")],
        422,
    );
    assert_eq!(code(&e), "pin_locked");
    let reward = json!({"card": "04A1B2C3", "sku": "mug", "pin": "1234"});
    assert_eq!(
        code(&c.post_json("/v1/rewards/redeem", &reward, &[], 422)),
        "pin_locked"
    );
    // A redemption below the PIN threshold without a PIN still goes through.
    let small = json!({"card": "04A1B2C3", "redeem_points": 500,
                       "lines": [{"sku": "wine", "category": "alcohol", "qty": 1, "unit_price": 60000}]});
    c.post_json("/v1/checkout/commit", &small, &[("Idempotency-Key", "small")], 200);
}

#[test]
fn a_wrong_pin_for_a_small_reward_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    member_with_points(&c);
    let wrong = json!({"card": "04A1B2C3", "sku": "mug", "pin": "9999"});
    for _ in 0..5 {
        assert_eq!(
            code(&c.post_json("/v1/rewards/redeem", &wrong, &[], 422)),
            "pin_invalid"
        );
    }
    let right = json!({"card": "04A1B2C3", "sku": "mug", "pin": "1234"});
    assert_eq!(code(&c.post_json("/v1/rewards/redeem", &right, &[], 422)), "pin_locked");
    assert_eq!(c.get_json("/v1/reports/daily", 200)["rewards_redeemed"], 0);
}

#[test]
fn quotes_that_check_a_pin_are_rate_limited_per_member() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    member_with_points(&c);
    let mut limited = None;
    for i in 0..20 {
        let (s, body) = c
            .post("/v1/checkout/quote", &sale_with("1234", 1000).to_string(), &[])
            .unwrap();
        if s != 200 {
            let e: Value = serde_json::from_str(&body).unwrap();
            assert_eq!((s, code(&e)), (422, "pin_locked"), "{body}");
            limited = Some(i);
            break;
        }
    }
    assert_eq!(limited, Some(10), "ten PIN-checking quotes a minute, then refused");
    // Quotes without a PIN are not limited.
    let plain =
        json!({"card": "04A1B2C3", "lines": [{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": 100}]});
    c.post_json("/v1/checkout/quote", &plain, &[], 200);
}
