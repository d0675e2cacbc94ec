//! The terminal's `GET /v1/openapi.json` against the real daemon: it needs no token, it
//! describes every route the router serves (and nothing else) with the methods the
//! router answers, and every answer the API gives in the tests is declared for its
//! operation with its content type, has the described shape, and a refusal's code is
//! one that answer names. Money and points are int64, instants date-time strings, and
//! the bounds it states are the code's. (The hub's: tests/openapi_hub.rs.)

mod support;

use std::io::Write;

use serde_json::{json, Value};
use support::daemon::{rules_path, Daemon, TOKEN};
use support::openapi::{
    call, concrete, declared, description, head, offline, operations, pairs, router_matches, types, Checked, AUTH,
};

/// interface.md's POS API as the terminal serves it, and the description itself.
const TERMINAL: [(&str, &str); 43] = [
    ("GET", "/v1/health"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/sessions"),
    ("DELETE", "/v1/sessions/current"),
    ("POST", "/v1/members"),
    ("GET", "/v1/members"),
    ("GET", "/v1/members/export"),
    ("POST", "/v1/members/import"),
    ("GET", "/v1/members/{id}"),
    ("PATCH", "/v1/members/{id}"),
    ("POST", "/v1/members/{id}/status"),
    ("POST", "/v1/members/{id}/pin"),
    ("GET", "/v1/members/{id}/transactions"),
    ("GET", "/v1/members/{id}/points"),
    ("POST", "/v1/members/{id}/points"),
    ("POST", "/v1/members/{id}/activities"),
    ("GET", "/v1/members/{id}/coupons"),
    ("POST", "/v1/members/{id}/coupons"),
    ("GET", "/v1/transactions/{tx_id}"),
    ("GET", "/v1/cards/{card}"),
    ("POST", "/v1/cards/{card}/block"),
    ("POST", "/v1/cards/{card}/unblock"),
    ("POST", "/v1/cards/{card}/replace"),
    ("POST", "/v1/checkout/quote"),
    ("POST", "/v1/checkout/commit"),
    ("POST", "/v1/refunds"),
    ("POST", "/v1/coupons"),
    ("POST", "/v1/rewards/redeem"),
    ("POST", "/v1/swipe"),
    ("GET", "/v1/group-buys/{deal}"),
    ("GET", "/v1/group-buys/groups/{group_id}"),
    ("POST", "/v1/group-buys/{deal}/join"),
    ("GET", "/v1/events"),
    ("GET", "/v1/reports/daily"),
    ("GET", "/v1/reports/summary"),
    ("GET", "/v1/reports/retention"),
    ("GET", "/v1/reports/campaigns"),
    ("GET", "/v1/audit"),
    ("GET", "/metrics"),
    ("GET", "/v1/staff"),
    ("POST", "/v1/staff"),
    ("POST", "/v1/staff/{id}/disable"),
    ("POST", "/v1/staff/{id}/password"),
];

#[test]
fn the_description_needs_no_token_and_matches_the_routes_the_router_serves() {
    assert_eq!(TOKEN, AUTH.1.trim_start_matches("Bearer "));
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let doc = description(&d.url);
    head(&doc);
    assert_eq!(operations(&doc), pairs(&TERMINAL), "described operations");
    router_matches(&d.url, &doc, AUTH, &["/v1/health", "/v1/openapi.json", "/v1/sessions"]);
    // Login needs no token: without one it is refused for its body, not for the token.
    let login = &doc["paths"]["/v1/sessions"]["post"];
    assert!(login["security"].is_null(), "{login}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
}

fn line(sku: &str, category: &str, qty: i64, unit_price: i64) -> Value {
    json!({"sku": sku, "category": category, "qty": qty, "unit_price": unit_price})
}

/// (method, template, path, body, Idempotency-Key, status)
type Step<'a> = (&'a str, &'a str, String, Option<Value>, Option<&'a str>, u16);

#[test]
fn every_answer_the_tests_see_is_declared_for_its_operation() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let doc = description(&d.url);
    let big = || json!({"card": "A".repeat(70 * 1024)});
    let sale = |card: &str| json!({"card": card, "lines": [line("rice", "grocery", 2, 3450)]});
    let wine = json!({"card": "04A1B2C3", "lines": [line("wine", "alcohol", 1, 90000)]});
    let long_key = "k".repeat(128);
    let too_long_key = "k".repeat(129);
    // (method, template, path, body, Idempotency-Key, status): the answers the API's
    // tests (api, idempotency, http, bad_input) see, in an order that makes each.
    #[rustfmt::skip]
    let steps: Vec<Step> = vec![
        ("GET", "/v1/health", "/v1/health".into(), None, None, 200),
        ("GET", "/v1/openapi.json", "/v1/openapi.json".into(), None, None, 200),
        ("POST", "/v1/members", "/v1/members".into(), Some(json!({"card": "04A1B2C3", "name": "Ann", "phone": "13800000001", "pin": "1234"})), Some("k-enrol"), 201),
        ("POST", "/v1/members", "/v1/members".into(), Some(json!({"card": "04A1B2C3", "name": "Ann", "phone": "13800000001", "pin": "1234"})), Some("k-enrol"), 201),
        ("POST", "/v1/members", "/v1/members".into(), Some(json!({"card": "04B0B0B0", "name": "Bob", "phone": "13800000002"})), Some("k-enrol"), 409),
        ("POST", "/v1/members", "/v1/members".into(), Some(json!({"card": "04A1B2C3", "name": "B", "phone": "13800000003"})), None, 409),
        ("POST", "/v1/members", "/v1/members".into(), Some(json!({"card": "x", "name": "B", "phone": "13800000009"})), None, 400),
        ("POST", "/v1/members", "/v1/members".into(), Some(json!({"card": "04A1B2C9", "name": "B"})), None, 400),
        ("POST", "/v1/members", "/v1/members".into(), Some(big()), None, 413),
        ("GET", "/v1/cards/{card}", "/v1/cards/04a1b2c3".into(), None, None, 200),
        ("GET", "/v1/cards/{card}", "/v1/cards/FFFF0000".into(), None, None, 404),
        ("GET", "/v1/cards/{card}", "/v1/cards/a!".into(), None, None, 400),
        ("POST", "/v1/checkout/quote", "/v1/checkout/quote".into(), Some(sale("04A1B2C3")), None, 200),
        ("POST", "/v1/checkout/quote", "/v1/checkout/quote".into(), Some(sale("FFFF0000")), None, 404),
        ("POST", "/v1/checkout/quote", "/v1/checkout/quote".into(), Some(json!({"card": "04A1B2C3", "pin": "12ab", "lines": [line("rice", "grocery", 1, 100)]})), None, 422),
        ("POST", "/v1/checkout/quote", "/v1/checkout/quote".into(), Some(json!({"card": "04A1B2C3", "lines": [line("rice", "grocery", 1, -5)]})), None, 400),
        ("POST", "/v1/checkout/commit", "/v1/checkout/commit".into(), Some(sale("04A1B2C3")), None, 400),
        ("POST", "/v1/checkout/commit", "/v1/checkout/commit".into(), Some(sale("04A1B2C3")), Some(&too_long_key), 400),
        ("POST", "/v1/checkout/commit", "/v1/checkout/commit".into(), Some(wine.clone()), Some(&long_key), 200),
        ("POST", "/v1/checkout/commit", "/v1/checkout/commit".into(), Some(wine), Some(&long_key), 200),
        ("POST", "/v1/checkout/commit", "/v1/checkout/commit".into(), Some(sale("04A1B2C3")), Some(&long_key), 409),
        ("POST", "/v1/checkout/commit", "/v1/checkout/commit".into(), Some(json!({"card": "04A1B2C3", "redeem_points": 50, "lines": [line("rice", "grocery", 1, 10000)]})), Some("k-min"), 422),
        ("POST", "/v1/checkout/commit", "/v1/checkout/commit".into(), Some(big()), Some("k-big"), 413),
        ("POST", "/v1/rewards/redeem", "/v1/rewards/redeem".into(), Some(json!({"card": "04A1B2C3", "sku": "mug"})), Some("k-mug"), 200),
        ("POST", "/v1/rewards/redeem", "/v1/rewards/redeem".into(), Some(json!({"card": "04A1B2C3", "sku": "nope"})), None, 400),
        ("POST", "/v1/rewards/redeem", "/v1/rewards/redeem".into(), Some(json!({"card": "04A1B2C3", "sku": "mug"})), None, 422),
        ("POST", "/v1/refunds", "/v1/refunds".into(), Some(json!({"tx_id": "nope"})), None, 404),
        ("POST", "/v1/refunds", "/v1/refunds".into(), Some(json!({"tx_id": "x", "lines": [{"sku": "rice", "qty": 0}]})), None, 400),
        ("POST", "/v1/coupons", "/v1/coupons".into(), Some(json!({"card": "04A1B2C3", "type": "welcome5"})), Some("k-coupon"), 200),
        ("POST", "/v1/coupons", "/v1/coupons".into(), Some(json!({"card": "04A1B2C3", "type": "nope"})), None, 422),
        ("POST", "/v1/coupons", "/v1/coupons".into(), Some(json!({"card": "04A1B2C3", "type": "welcome5"})), Some("k-mug"), 409),
        ("POST", "/v1/swipe", "/v1/swipe".into(), Some(json!({"card": "04a1b2c3"})), None, 200),
        ("POST", "/v1/swipe", "/v1/swipe".into(), Some(json!({"card": "!!"})), None, 400),
        ("POST", "/v1/swipe", "/v1/swipe".into(), Some(big()), None, 413),
        ("GET", "/v1/events", "/v1/events".into(), None, None, 200),
        ("GET", "/v1/reports/daily", "/v1/reports/daily".into(), None, None, 200),
        ("GET", "/v1/reports/daily", "/v1/reports/daily?date=2026-13-01".into(), None, None, 400),
        ("GET", "/metrics", "/metrics".into(), None, None, 200),
        ("POST", "/v1/cards/{card}/replace", "/v1/cards/04A1B2C3/replace".into(), Some(json!({"new_card": "04A1B2C3"})), None, 409),
        ("POST", "/v1/cards/{card}/replace", "/v1/cards/FFFF0000/replace".into(), Some(json!({"new_card": "04A1B2C8"})), None, 404),
        ("POST", "/v1/cards/{card}/block", "/v1/cards/FFFF0000/block".into(), None, None, 404),
        ("POST", "/v1/cards/{card}/block", "/v1/cards/04A1B2C3/block".into(), None, Some("k-block"), 200),
        ("POST", "/v1/cards/{card}/block", "/v1/cards/04A1B2C3/block".into(), None, Some("k-enrol"), 409),
        ("POST", "/v1/checkout/commit", "/v1/checkout/commit".into(), Some(sale("04A1B2C3")), Some("k-blocked"), 422),
        ("POST", "/v1/cards/{card}/replace", "/v1/cards/04A1B2C3/replace".into(), Some(json!({"new_card": "04A1B2C5"})), None, 200),
    ];
    let mut tx_id = None;
    let mut failures = Vec::new();
    for (i, (method, template, path, body, key, status)) in steps.iter().enumerate() {
        let mut headers = vec![AUTH];
        if let Some(k) = key {
            headers.push(("Idempotency-Key", k));
        }
        let a = call(&d.url, method, path, body.as_ref(), &headers);
        if a.status != *status {
            failures.push(format!(
                "#{i} {method} {path}: wanted {status}, got {} {}",
                a.status, a.body
            ));
            continue;
        }
        if let Err(e) = declared(&doc, method, template, &a) {
            failures.push(format!("#{i} {e}"));
        }
        if *template == "/v1/checkout/commit" && a.status == 200 {
            tx_id = serde_json::from_str::<Value>(&a.body).unwrap()["tx_id"]
                .as_str()
                .map(str::to_string);
        }
    }
    // Refunds of the sale made above: in part, the rest, then nothing is left.
    let tx = tx_id.expect("a checkout was committed");
    for (body, status) in [
        (json!({"tx_id": tx, "lines": [{"sku": "wine", "qty": 1}]}), 200),
        (json!({"tx_id": tx}), 422),
    ] {
        let a = call(&d.url, "POST", "/v1/refunds", Some(&body), &[AUTH]);
        if a.status != status {
            failures.push(format!("refund {body}: wanted {status}, got {} {}", a.status, a.body));
        } else if let Err(e) = declared(&doc, "POST", "/v1/refunds", &a) {
            failures.push(e);
        }
    }
    // Without the token.
    for (method, template) in [
        ("GET", "/v1/cards/{card}"),
        ("GET", "/metrics"),
        ("POST", "/v1/members"),
    ] {
        let body = (method == "POST").then(|| json!({}));
        let a = call(&d.url, method, &concrete(template), body.as_ref(), &[]);
        if a.status != 401 {
            failures.push(format!("{method} {template} without a token: {} {}", a.status, a.body));
        } else if let Err(e) = declared(&doc, method, template, &a) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An activity, a coupon type bought with points and a group-buy deal, beside the
/// shipped ruleset's.
const CAMPAIGNS: &str = r#"
[[activities]]
id = "checkin"
points = 10
max_per_day = 1

[[coupon_types]]
id = "swap"
off_minor = 300
min_minor = 0
valid_days = 30
exchange_points = 100

[[group_buys]]
id = "hotpot2"
sku = "hotpot-set"
group_price_minor = 9900
size = 2
window_hours = 24
"#;

#[test]
fn every_answer_of_the_members_staff_and_history_endpoints_is_declared() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(rules_path(dir.path()))
        .unwrap()
        .write_all(CAMPAIGNS.as_bytes())
        .unwrap();
    let staff = |id: &str, role: &str, password: &str| {
        let args = [
            "staff",
            "add",
            "--id",
            id,
            "--name",
            id,
            "--role",
            role,
            "--password-stdin",
        ];
        offline(dir.path(), &args, &format!("{password}\n"));
    };
    staff("olu", "owner", "olu-secret-1");
    staff("cai", "cashier", "cai-secret-1");
    staff("rex", "manager", "rex-secret-1");
    let d = Daemon::start(dir.path());
    let doc = description(&d.url);
    let mut c = Checked {
        url: &d.url,
        doc: &doc,
        failures: Vec::new(),
    };
    let owner = json!({"staff_id": "olu", "password": "olu-secret-1"});
    let with_owner = |mut body: Value| {
        body["approval"] = owner.clone();
        body
    };

    // Sessions: a wrong password, a login, the session's token, its end.
    let login = ("POST", "/v1/sessions", "/v1/sessions");
    let bad = json!({"staff_id": "cai", "password": "wrong-password"});
    c.expect(login, Some(("application/json", bad.to_string())), &[], 401);
    c.expect(login, Some(("application/json", "{".into())), &[], 400);
    let right = json!({"staff_id": "cai", "password": "cai-secret-1"});
    let session = c.expect(login, Some(("application/json", right.to_string())), &[], 200);
    let bearer = format!("Bearer {}", session["token"].as_str().unwrap_or_default());
    let logout = ("DELETE", "/v1/sessions/current", "/v1/sessions/current");
    c.expect(logout, None, &[AUTH], 400);
    c.expect(logout, None, &[("Authorization", &bearer)], 204);
    c.expect(logout, None, &[("Authorization", &bearer)], 401);

    // Members: enrolments (one with a virtual card), lookups, search, edits.
    let ann = c.json(
        "POST",
        "/v1/members",
        "/v1/members",
        Some(json!({"card": "04A1B2C3", "name": "Ann", "phone": "13800000001", "pin": "1234", "tags": ["vip"]})),
        201,
    );
    c.json(
        "POST",
        "/v1/members",
        "/v1/members",
        Some(json!({"name": "Bob", "phone": "+86 138-0000-0002", "birthday": "02-29"})),
        201,
    );
    let id = ann["member_id"].as_str().unwrap_or("m-0").to_string();
    let m = |rest: &str| format!("/v1/members/{id}{rest}");
    c.json("GET", "/v1/members", "/v1/members?phone=8613800000001", None, 200);
    c.json("GET", "/v1/members", "/v1/members?q=an&limit=1", None, 200);
    c.json("GET", "/v1/members", "/v1/members?q=an&limit=0", None, 400);
    c.json("GET", "/v1/members", "/v1/members", None, 400);
    c.json("GET", "/v1/members", "/v1/members?nope=1", None, 400);
    c.json("GET", "/v1/members/{id}", &m(""), None, 200);
    c.json("GET", "/v1/members/{id}", "/v1/members/m-0000000000000000", None, 404);
    c.json(
        "PATCH",
        "/v1/members/{id}",
        &m(""),
        Some(json!({"name": " Ann Lee ", "birthday": null, "tags": ["vip", "new"]})),
        200,
    );
    c.json(
        "PATCH",
        "/v1/members/{id}",
        &m(""),
        Some(json!({"phone": "13800000002"})),
        409,
    );
    c.json(
        "PATCH",
        "/v1/members/{id}",
        &m(""),
        Some(json!({"name": "a\u{7}b"})),
        400,
    );
    c.json(
        "PATCH",
        "/v1/members/{id}",
        "/v1/members/m-0000000000000000",
        Some(json!({"name": "X"})),
        404,
    );

    // Roles: the POS token is a cashier; an owner's approval acts as the owner.
    c.json(
        "POST",
        "/v1/members/{id}/status",
        &m("/status"),
        Some(json!({"status": "inactive"})),
        403,
    );
    c.json(
        "POST",
        "/v1/members/{id}/status",
        &m("/status"),
        Some(json!({"status": "gone"})),
        400,
    );
    let wrong = json!({"status": "inactive", "approval": {"staff_id": "olu", "password": "not-it-at-all"}});
    c.json("POST", "/v1/members/{id}/status", &m("/status"), Some(wrong), 401);
    c.json(
        "POST",
        "/v1/members/{id}/status",
        &m("/status"),
        Some(with_owner(json!({"status": "inactive"}))),
        200,
    );
    c.json(
        "POST",
        "/v1/checkout/quote",
        "/v1/checkout/quote",
        Some(json!({"card": "04A1B2C3", "lines": [line("rice", "grocery", 1, 100)]})),
        422,
    );
    c.json(
        "POST",
        "/v1/members/{id}/status",
        &m("/status"),
        Some(with_owner(json!({"status": "active"}))),
        200,
    );

    // PINs: a wrong old one, a change, a reset needing a manager.
    c.json(
        "POST",
        "/v1/members/{id}/pin",
        &m("/pin"),
        Some(json!({"old_pin": "9999", "new_pin": "4321"})),
        422,
    );
    c.json(
        "POST",
        "/v1/members/{id}/pin",
        &m("/pin"),
        Some(json!({"old_pin": "1234", "new_pin": "4321"})),
        200,
    );
    c.json(
        "POST",
        "/v1/members/{id}/pin",
        &m("/pin"),
        Some(json!({"new_pin": "12"})),
        400,
    );
    c.json(
        "POST",
        "/v1/members/{id}/pin",
        &m("/pin"),
        Some(json!({"new_pin": "1111"})),
        403,
    );
    c.json(
        "POST",
        "/v1/members/{id}/pin",
        &m("/pin"),
        Some(with_owner(json!({"new_pin": "1234"}))),
        200,
    );

    // Points outside a sale, then a sale, and the history they leave.
    c.json(
        "POST",
        "/v1/members/{id}/points",
        &m("/points"),
        Some(json!({"points": 100, "reason": "goodwill"})),
        403,
    );
    c.json(
        "POST",
        "/v1/members/{id}/points",
        &m("/points"),
        Some(with_owner(json!({"points": 500, "reason": " goodwill "}))),
        200,
    );
    c.json(
        "POST",
        "/v1/members/{id}/points",
        &m("/points"),
        Some(with_owner(json!({"points": -100000, "reason": "typo"}))),
        422,
    );
    c.json(
        "POST",
        "/v1/members/{id}/points",
        &m("/points"),
        Some(with_owner(json!({"points": 0, "reason": "nothing"}))),
        400,
    );
    c.json(
        "POST",
        "/v1/members/{id}/activities",
        &m("/activities"),
        Some(json!({"activity": "checkin"})),
        200,
    );
    c.json(
        "POST",
        "/v1/members/{id}/activities",
        &m("/activities"),
        Some(json!({"activity": "checkin"})),
        422,
    );
    c.json(
        "POST",
        "/v1/members/{id}/activities",
        &m("/activities"),
        Some(json!({"activity": "nope"})),
        400,
    );
    let sale = json!({"card": "04A1B2C3", "lines": [line("wine", "alcohol", 1, 90000)]});
    let key = [AUTH, ("Idempotency-Key", "k-sale")];
    let receipt = c.expect(
        ("POST", "/v1/checkout/commit", "/v1/checkout/commit"),
        Some(("application/json", sale.to_string())),
        &key,
        200,
    );
    let tx = receipt["tx_id"].as_str().unwrap_or("T1-0").to_string();
    c.json(
        "POST",
        "/v1/refunds",
        "/v1/refunds",
        Some(json!({"tx_id": tx, "lines": [{"sku": "nope", "qty": 1}]})),
        400,
    );
    c.json(
        "POST",
        "/v1/refunds",
        "/v1/refunds",
        Some(json!({"tx_id": tx, "lines": [{"sku": "wine", "qty": 1}]})),
        200,
    );
    c.json(
        "GET",
        "/v1/transactions/{tx_id}",
        &format!("/v1/transactions/{tx}"),
        None,
        200,
    );
    c.json(
        "GET",
        "/v1/transactions/{tx_id}",
        "/v1/transactions/T1-00000000-0000000999",
        None,
        404,
    );
    c.json(
        "GET",
        "/v1/transactions/{tx_id}",
        &format!("/v1/transactions/{}", "x".repeat(81)),
        None,
        400,
    );
    let page = c.json("GET", "/v1/members/{id}/points", &m("/points?limit=2"), None, 200);
    let next = page["next"].as_str().unwrap_or("0").to_string();
    c.json(
        "GET",
        "/v1/members/{id}/points",
        &m(&format!("/points?limit=2&after={next}")),
        None,
        200,
    );
    c.json("GET", "/v1/members/{id}/points", &m("/points?after=x"), None, 400);
    c.json(
        "GET",
        "/v1/members/{id}/points",
        "/v1/members/m-0000000000000000/points",
        None,
        404,
    );
    c.json("GET", "/v1/members/{id}/transactions", &m("/transactions"), None, 200);
    c.json(
        "GET",
        "/v1/members/{id}/transactions",
        &m("/transactions?limit=101"),
        None,
        400,
    );
    c.json(
        "GET",
        "/v1/members/{id}/transactions",
        "/v1/members/m-0000000000000000/transactions",
        None,
        404,
    );
    c.json(
        "POST",
        "/v1/coupons",
        "/v1/coupons",
        Some(json!({"card": "04A1B2C3", "type": "welcome5"})),
        200,
    );
    c.json("GET", "/v1/members/{id}/coupons", &m("/coupons"), None, 200);
    c.json(
        "GET",
        "/v1/members/{id}/coupons",
        "/v1/members/m-0000000000000000/coupons",
        None,
        404,
    );

    // Coupons bought with points; group buys.
    c.json(
        "POST",
        "/v1/members/{id}/coupons",
        &m("/coupons"),
        Some(json!({"type": "swap"})),
        200,
    );
    c.json(
        "POST",
        "/v1/members/{id}/coupons",
        &m("/coupons"),
        Some(json!({"type": "welcome5"})),
        422,
    );
    c.json(
        "POST",
        "/v1/members/{id}/coupons",
        "/v1/members/m-0000000000000000/coupons",
        Some(json!({"type": "swap"})),
        404,
    );
    let join = ("POST", "/v1/group-buys/{deal}/join");
    let group = c.json(
        join.0,
        join.1,
        "/v1/group-buys/hotpot2/join",
        Some(json!({"card": "04A1B2C3"})),
        200,
    );
    let gid = group["group_id"].as_str().unwrap_or("g-0").to_string();
    c.json(
        join.0,
        join.1,
        "/v1/group-buys/hotpot2/join",
        Some(json!({"card": "04A1B2C3", "group_id": gid})),
        422,
    );
    c.json(
        join.0,
        join.1,
        "/v1/group-buys/nope/join",
        Some(json!({"card": "04A1B2C3"})),
        422,
    );
    c.json(
        join.0,
        join.1,
        "/v1/group-buys/hotpot2/join",
        Some(json!({"card": "FFFF0000"})),
        404,
    );
    c.json("GET", "/v1/group-buys/{deal}", "/v1/group-buys/hotpot2", None, 200);
    c.json("GET", "/v1/group-buys/{deal}", "/v1/group-buys/nope", None, 404);
    c.json(
        "GET",
        "/v1/group-buys/groups/{group_id}",
        &format!("/v1/group-buys/groups/{gid}"),
        None,
        200,
    );
    c.json(
        "GET",
        "/v1/group-buys/groups/{group_id}",
        "/v1/group-buys/groups/g-0",
        None,
        404,
    );

    // Cards: a blocked card unblocked by a manager; not while another is active.
    c.json("POST", "/v1/cards/{card}/block", "/v1/cards/04A1B2C3/block", None, 200);
    c.json(
        "POST",
        "/v1/cards/{card}/unblock",
        "/v1/cards/04A1B2C3/unblock",
        None,
        403,
    );
    c.json(
        "POST",
        "/v1/cards/{card}/unblock",
        "/v1/cards/04A1B2C3/unblock",
        Some(with_owner(json!({}))),
        200,
    );
    c.json(
        "POST",
        "/v1/cards/{card}/unblock",
        "/v1/cards/FFFF0000/unblock",
        Some(with_owner(json!({}))),
        404,
    );
    c.json(
        "POST",
        "/v1/cards/{card}/unblock",
        "/v1/cards/a!/unblock",
        Some(with_owner(json!({}))),
        400,
    );
    c.json(
        "POST",
        "/v1/cards/{card}/replace",
        "/v1/cards/04A1B2C3/replace",
        Some(json!({"new_card": "04A1B2C4"})),
        200,
    );
    c.json(
        "POST",
        "/v1/cards/{card}/unblock",
        "/v1/cards/04A1B2C3/unblock",
        Some(with_owner(json!({}))),
        400,
    );

    // Import and export (a manager's; the session of the owner here).
    let olu = json!({"staff_id": "olu", "password": "olu-secret-1"});
    let olu = c.expect(login, Some(("application/json", olu.to_string())), &[], 200);
    let olu = format!("Bearer {}", olu["token"].as_str().unwrap_or_default());
    let as_olu = [("Authorization", olu.as_str())];
    let import = ("POST", "/v1/members/import", "/v1/members/import");
    let header = "card,name,phone,birthday,points,tier,tags\n";
    let csv = |rows: &str| Some(("text/csv", format!("{header}{rows}")));
    c.expect(import, csv("05000001,Cat,13700000001,03-14,250,,a;b\n"), &[AUTH], 403);
    c.expect(
        import,
        csv("05000001,Cat,13700000001,03-14,250,,a;b\n,Dan,13700000002,,,,\n"),
        &as_olu,
        200,
    );
    c.expect(
        import,
        csv("05000001,Cat,13700000003,,,,\nx,Eve,nope,13-01,-1,,\n"),
        &as_olu,
        400,
    );
    c.expect(import, Some(("text/csv", "name,phone\n".into())), &as_olu, 400);
    let export = ("GET", "/v1/members/export", "/v1/members/export?format=csv");
    c.expect(export, None, &as_olu, 200);
    c.expect(export, None, &[AUTH], 403);
    c.expect(
        ("GET", "/v1/members/export", "/v1/members/export?format=xlsx"),
        None,
        &as_olu,
        400,
    );

    // Staff accounts (the owner's).
    c.expect(("GET", "/v1/staff", "/v1/staff"), None, &as_olu, 200);
    c.expect(("GET", "/v1/staff", "/v1/staff"), None, &[AUTH], 403);
    let add = ("POST", "/v1/staff", "/v1/staff");
    let new = json!({"staff_id": "mia", "name": "Mia", "role": "manager", "password": "mia-secret-1"});
    c.expect(add, Some(("application/json", new.to_string())), &as_olu, 201);
    c.expect(add, Some(("application/json", new.to_string())), &as_olu, 409);
    c.expect(add, Some(("application/json", new.to_string())), &[AUTH], 403);
    let short = json!({"staff_id": "max", "name": "Max", "role": "manager", "password": "short"});
    c.expect(add, Some(("application/json", short.to_string())), &as_olu, 400);
    let pw = json!({"password": "mia-secret-2"}).to_string();
    c.expect(
        ("POST", "/v1/staff/{id}/password", "/v1/staff/mia/password"),
        Some(("application/json", pw.clone())),
        &as_olu,
        200,
    );
    c.expect(
        ("POST", "/v1/staff/{id}/password", "/v1/staff/nobody/password"),
        Some(("application/json", pw)),
        &as_olu,
        404,
    );
    c.expect(
        ("POST", "/v1/staff/{id}/disable", "/v1/staff/mia/disable"),
        None,
        &as_olu,
        200,
    );
    c.expect(
        ("POST", "/v1/staff/{id}/disable", "/v1/staff/nobody/disable"),
        None,
        &as_olu,
        404,
    );
    c.expect(
        ("POST", "/v1/staff/{id}/disable", "/v1/staff/mia/disable"),
        None,
        &[AUTH],
        403,
    );
    // Five wrong passwords lock a staff id, for a login and for an approval alike.
    for _ in 0..4 {
        c.expect(
            login,
            Some((
                "application/json",
                json!({"staff_id": "olu", "password": "wrong-password"}).to_string(),
            )),
            &[],
            401,
        );
    }
    c.expect(
        login,
        Some((
            "application/json",
            json!({"staff_id": "olu", "password": "wrong-password"}).to_string(),
        )),
        &[],
        423,
    );
    c.json(
        "POST",
        "/v1/members/{id}/status",
        &m("/status"),
        Some(with_owner(json!({"status": "inactive"}))),
        423,
    );
    // Reports and the audit view: a manager's session (the POS token is a cashier's).
    let rex = json!({"staff_id": "rex", "password": "rex-secret-1"}).to_string();
    let rex = c.expect(login, Some(("application/json", rex)), &[], 200);
    let owner_auth = format!("Bearer {}", rex["token"].as_str().unwrap_or_default());
    let as_owner = [("Authorization", owner_auth.as_str())];
    for (template, ok, bad) in [
        (
            "/v1/reports/summary",
            "?from=2026-01-01&to=2026-12-31",
            "?from=2026-12-31&to=2026-01-01",
        ),
        (
            "/v1/reports/retention",
            "?from=2026-01&to=2026-12",
            "?from=2026-13&to=2026-12",
        ),
        (
            "/v1/reports/campaigns",
            "?from=2026-01-01&to=2026-12-31",
            "?from=2026-01-01",
        ),
        ("/v1/audit", "?limit=5", "?action=launch"),
    ] {
        let (good, wrong) = (format!("{template}{ok}"), format!("{template}{bad}"));
        c.expect(("GET", template, &good), None, &as_owner, 200);
        c.expect(("GET", template, &wrong), None, &as_owner, 400);
        c.expect(("GET", template, &good), None, &[AUTH], 403);
    }
    assert!(c.failures.is_empty(), "{}", c.failures.join("\n"));
}

/// Every schema object of the description, with the name of the property it describes.
fn walk<'a>(name: &str, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(o) => {
            if o.contains_key("type") || o.contains_key("$ref") {
                out.push((name.to_string(), v));
            }
            for (k, child) in o {
                let child_name = if k == "properties" || k == "items" || k == "oneOf" || k == "allOf" {
                    name.to_string()
                } else {
                    k.clone()
                };
                walk(&child_name, child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| walk(name, c, out)),
        _ => {}
    }
}

#[test]
fn money_points_and_instants_have_their_types_and_bounds_are_the_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let doc = description(&d.url);
    let mut all = Vec::new();
    walk("", &doc, &mut all);
    let mut integers = 0;
    for (name, schema) in &all {
        let t = types(schema);
        assert!(!t.contains(&"number"), "{name}: no floats near money: {schema}");
        if t.contains(&"integer") {
            integers += 1;
            assert_eq!(schema["format"], "int64", "{name}: {schema}");
        }
        if name == "at" || name.ends_with("_at") {
            assert!(
                t.contains(&"string") && schema["format"] == "date-time",
                "{name}: {schema}"
            );
        }
        if name == "valid_until" || name == "date" {
            assert!(t.contains(&"string") && schema["format"] == "date", "{name}: {schema}");
        }
    }
    assert!(integers > 30, "{integers} integers seen: the walk found the schemas");

    let schemas = &doc["components"]["schemas"];
    let line = &schemas["Line"]["properties"];
    assert_eq!(line["qty"]["minimum"], 1);
    assert_eq!(line["qty"]["maximum"], loyaltyd::model::MAX_QTY);
    assert_eq!(line["unit_price"]["maximum"], loyaltyd::model::MAX_UNIT_PRICE);
    let sale = &schemas["Sale"]["properties"];
    assert_eq!(sale["lines"]["maxItems"], loyaltyd::model::MAX_LINES);
    assert_eq!(sale["redeem_points"]["maximum"], loyaltyd::model::MAX_POINTS_INPUT);
    assert_eq!(schemas["RefundLine"]["properties"]["qty"], line["qty"]);
    let codes: Vec<&str> = loyaltyd::Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(schemas["ErrorBody"]["properties"]["code"]["enum"], json!(codes));
    for body in [
        "NewMember",
        "Sale",
        "ReplaceBody",
        "RefundBody",
        "RefundLine",
        "CouponBody",
        "RewardBody",
        "SwipeBody",
    ] {
        assert_eq!(
            schemas[body]["additionalProperties"], false,
            "{body} refuses unknown fields"
        );
    }
    // The content types of the two answers that are not JSON.
    let media = |path: &str| {
        doc["paths"][path]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(media("/v1/events"), ["text/event-stream"]);
    assert_eq!(media("/metrics"), ["text/plain"]);
}
