//! The hub's `GET /v1/openapi.json` against the real hub: it needs no token, describes
//! exactly the routes the hub's router serves with their methods and schemes (the
//! operators' bearer token, a terminal's signature for sync), and every answer made
//! for real (with a terminal syncing members and a sale up) is declared for its
//! operation, has the described shape, and a refusal's code is one that answer names.

mod support;

use serde_json::json;
use support::hub::{secret_file, Hub, HUB_TOKEN};
use support::openapi::{description, head, operations, pairs, router_matches, Checked};
use support::shop::Shop;

/// The hub's routes: sync (signed by a terminal), the operators' (bearer token).
const HUB: [(&str, &str); 23] = [
    ("GET", "/v1/health"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/sync/push"),
    ("POST", "/v1/sync/pull"),
    ("POST", "/v1/sync/pull2"),
    ("GET", "/v1/hub/members"),
    ("GET", "/v1/hub/members/{member_id}"),
    ("GET", "/v1/hub/members/{member_id}/transactions"),
    ("GET", "/v1/hub/members/{member_id}/points"),
    ("GET", "/v1/hub/members/{member_id}/coupons"),
    ("GET", "/v1/hub/transactions/{tx_id}"),
    ("GET", "/v1/hub/conflicts"),
    ("POST", "/v1/hub/conflicts/{id}/resolve"),
    ("GET", "/v1/hub/group-buys/{deal}"),
    ("GET", "/v1/hub/group-buys/groups/{group_id}"),
    ("POST", "/v1/hub/triggers/run"),
    ("GET", "/v1/hub/terminals"),
    ("GET", "/v1/hub/reports/overspent"),
    ("GET", "/v1/hub/reports/summary"),
    ("GET", "/v1/hub/reports/retention"),
    ("GET", "/v1/hub/reports/campaigns"),
    ("GET", "/v1/hub/audit"),
    ("POST", "/v1/hub/rulesets"),
];

#[test]
fn the_hubs_description_matches_its_router() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "T1");
    let hub = Hub::start(dir.path(), &[("T1", &secret)]);
    let url = format!("http://{}", hub.addr());
    let doc = description(&url);
    head(&doc);
    assert_eq!(operations(&doc), pairs(&HUB), "described operations");
    let auth = format!("Bearer {HUB_TOKEN}");
    router_matches(
        &url,
        &doc,
        ("Authorization", &auth),
        &["/v1/health", "/v1/openapi.json"],
    );
    // Sync is signed by a terminal, not the operator's token.
    for path in ["/v1/sync/push", "/v1/sync/pull", "/v1/sync/pull2"] {
        let op = &doc["paths"][path]["post"];
        assert!(op["security"][0]["terminal_signature"].is_array(), "{path}: {op}");
        let media: Vec<&String> = op["requestBody"]["content"].as_object().unwrap().keys().collect();
        assert_eq!(media, ["application/x-loyaltyd-postcard"], "{path}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["terminal_signature"]["type"],
        "apiKey"
    );
}

#[test]
fn every_answer_of_the_hub_is_declared() {
    let root = tempfile::tempdir().unwrap();
    let secret = secret_file(root.path(), "T1");
    let hub = Hub::start(root.path(), &[("T1", &secret)]);
    let shop = Shop::open(root.path(), "T1", &hub, &secret);
    let url = format!("http://{}", hub.addr());
    let doc = description(&url);
    // A member and a sale at the shop, synced up.
    let before = support::shop::last_sync(&shop);
    let id = shop.enrol("04A1B2C3", "13800000001");
    let tx = shop.commit("04A1B2C3", "k-1", 10000, 0).unwrap()["tx_id"]
        .as_str()
        .unwrap()
        .to_string();
    shop.wait_synced(&before);

    let auth = format!("Bearer {HUB_TOKEN}");
    let op = [("Authorization", auth.as_str())];
    let mut c = Checked {
        url: &url,
        doc: &doc,
        failures: Vec::new(),
    };
    let m = |rest: &str| format!("/v1/hub/members/{id}{rest}");
    c.expect(("GET", "/v1/health", "/v1/health"), None, &[], 200);
    c.expect(
        ("GET", "/v1/hub/members", "/v1/hub/members?phone=13800000001"),
        None,
        &op,
        200,
    );
    c.expect(
        ("GET", "/v1/hub/members", "/v1/hub/members?q=mem&limit=5"),
        None,
        &op,
        200,
    );
    c.expect(("GET", "/v1/hub/members", "/v1/hub/members"), None, &op, 400);
    c.expect(("GET", "/v1/hub/members", "/v1/hub/members"), None, &[], 401);
    c.expect(("GET", "/v1/hub/members/{member_id}", &m("")), None, &op, 200);
    c.expect(
        (
            "GET",
            "/v1/hub/members/{member_id}",
            "/v1/hub/members/m-0000000000000000",
        ),
        None,
        &op,
        404,
    );
    c.expect(
        ("GET", "/v1/hub/members/{member_id}/transactions", &m("/transactions")),
        None,
        &op,
        200,
    );
    c.expect(
        (
            "GET",
            "/v1/hub/members/{member_id}/transactions",
            &m("/transactions?limit=0"),
        ),
        None,
        &op,
        400,
    );
    c.expect(
        ("GET", "/v1/hub/members/{member_id}/points", &m("/points")),
        None,
        &op,
        200,
    );
    c.expect(
        (
            "GET",
            "/v1/hub/members/{member_id}/points",
            "/v1/hub/members/m-0000000000000000/points",
        ),
        None,
        &op,
        404,
    );
    c.expect(
        ("GET", "/v1/hub/members/{member_id}/coupons", &m("/coupons")),
        None,
        &op,
        200,
    );
    c.expect(
        (
            "GET",
            "/v1/hub/transactions/{tx_id}",
            &format!("/v1/hub/transactions/{tx}"),
        ),
        None,
        &op,
        200,
    );
    c.expect(
        (
            "GET",
            "/v1/hub/transactions/{tx_id}",
            "/v1/hub/transactions/T9-00000000-0000000001",
        ),
        None,
        &op,
        404,
    );
    c.expect(("GET", "/v1/hub/conflicts", "/v1/hub/conflicts"), None, &op, 200);
    let resolve = (
        "POST",
        "/v1/hub/conflicts/{id}/resolve",
        "/v1/hub/conflicts/card-0000/resolve",
    );
    let body = Some(("application/json", json!({"keep": id, "merge": false}).to_string()));
    c.expect(resolve, body, &op, 404);
    c.expect(resolve, Some(("application/json", "{}".into())), &op, 400);
    c.expect(("GET", "/v1/hub/terminals", "/v1/hub/terminals"), None, &op, 200);
    c.expect(
        ("GET", "/v1/hub/group-buys/{deal}", "/v1/hub/group-buys/nope"),
        None,
        &op,
        404,
    );
    c.expect(
        (
            "GET",
            "/v1/hub/group-buys/groups/{group_id}",
            "/v1/hub/group-buys/groups/g-0",
        ),
        None,
        &op,
        404,
    );
    c.expect(("POST", "/v1/hub/triggers/run", "/v1/hub/triggers/run"), None, &op, 200);
    c.expect(
        ("GET", "/v1/hub/reports/overspent", "/v1/hub/reports/overspent"),
        None,
        &op,
        200,
    );
    for (path, query) in [
        ("/v1/hub/reports/summary", "?from=2026-01-01&to=2026-12-31"),
        ("/v1/hub/reports/retention", "?from=2026-01&to=2026-12"),
        ("/v1/hub/reports/campaigns", "?from=2026-01-01&to=2026-12-31"),
        ("/v1/hub/audit", "?from=2026-01-01"),
    ] {
        let asked = format!("{path}{query}");
        c.expect(("GET", path, &asked), None, &op, 200);
        let bad = format!("{path}{query}&terminal=T9");
        c.expect(("GET", path, &bad), None, &op, 400);
    }
    let publish = ("POST", "/v1/hub/rulesets", "/v1/hub/rulesets");
    let rules = std::fs::read_to_string(support::daemon::repo("config/rules.toml")).unwrap();
    let newer = rules.replacen("version = 1", "version = 2", 1);
    assert_ne!(rules, newer, "the shipped ruleset says `version = 1`");
    c.expect(publish, Some(("text/plain", newer.clone())), &op, 201);
    c.expect(publish, Some(("text/plain", newer)), &op, 400);
    c.expect(publish, Some(("text/plain", "not toml [".into())), &op, 400);
    // Sync: refused before the body is read without a terminal's signature.
    let postcard = || Some(("application/x-loyaltyd-postcard", String::from("\u{0}")));
    for path in ["/v1/sync/push", "/v1/sync/pull", "/v1/sync/pull2"] {
        c.expect(("POST", path, path), postcard(), &[], 401);
        c.expect(
            ("POST", path, path),
            postcard(),
            &[("Authorization", "LOYALTYD-HMAC terminal=T9,sig=00")],
            401,
        );
    }
    assert!(c.failures.is_empty(), "{}", c.failures.join("\n"));
}
