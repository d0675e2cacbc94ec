//! `GET /v1/openapi.json` against the real daemon: it needs no token, it describes every
//! route the router serves (and nothing else) with the methods the router answers, and
//! every answer the API gives in the tests is declared for its operation with its
//! content type. Money and points are int64, instants date-time strings, and the bounds
//! it states are the code's.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use support::daemon::{Daemon, TOKEN};

/// An answer with what the test client does not show: the content type.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

fn call(url: &str, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into();
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let text = body.map(Value::to_string).unwrap_or_default();
    if body.is_some() {
        req = req.header("Content-Type", "application/json");
    }
    let mut resp = agent.run(req.body(text).unwrap()).unwrap();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // The event stream never ends: its head is the answer.
    let body = if content_type.starts_with("text/event-stream") {
        String::new()
    } else {
        resp.body_mut().with_config().limit(10 << 20).read_to_string().unwrap()
    };
    Answer {
        status: resp.status().as_u16(),
        content_type,
        body,
    }
}

const AUTH: (&str, &str) = ("Authorization", "Bearer test-token-0123456789");

fn description(url: &str) -> Value {
    let a = call(url, "GET", "/v1/openapi.json", None, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.content_type.starts_with("application/json"), "{}", a.content_type);
    serde_json::from_str(&a.body).unwrap()
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// (METHOD, path template) of every described operation.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// A concrete path for a template.
fn concrete(template: &str) -> String {
    template.replace("{card}", "04A1B2C3")
}

#[test]
fn the_description_needs_no_token_and_matches_the_routes_the_router_serves() {
    assert_eq!(TOKEN, AUTH.1.trim_start_matches("Bearer "));
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let doc = description(&d.url);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    // interface.md's POS API (0.1) and the description itself.
    let want: BTreeSet<(String, String)> = [
        ("GET", "/v1/health"),
        ("GET", "/v1/openapi.json"),
        ("POST", "/v1/members"),
        ("GET", "/v1/cards/{card}"),
        ("POST", "/v1/cards/{card}/block"),
        ("POST", "/v1/cards/{card}/replace"),
        ("POST", "/v1/checkout/quote"),
        ("POST", "/v1/checkout/commit"),
        ("POST", "/v1/refunds"),
        ("POST", "/v1/coupons"),
        ("POST", "/v1/rewards/redeem"),
        ("POST", "/v1/swipe"),
        ("GET", "/v1/events"),
        ("GET", "/v1/reports/daily"),
        ("GET", "/metrics"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    let described = operations(&doc);
    assert_eq!(described, want, "described operations");

    // The router's own view: on each described path, a method the description does not
    // give is 405, and its Allow header lists exactly the described methods (HEAD comes
    // with GET).
    let mut by_path: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (m, p) in &described {
        by_path.entry(p).or_default().insert(m.clone());
    }
    for (path, methods) in &by_path {
        let other = ["PUT", "DELETE", "PATCH"]
            .into_iter()
            .find(|m| !methods.contains(*m))
            .unwrap();
        let a = call(&d.url, other, &concrete(path), None, &[AUTH]);
        assert_eq!(a.status, 405, "{other} {path}: {}", a.body);
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["error"]["code"], "method_not_allowed");
        let allow = call_allow(&d.url, other, &concrete(path));
        let mut expected = methods.clone();
        if methods.contains("GET") {
            expected.insert("HEAD".to_string());
        }
        assert_eq!(allow, expected, "Allow of {path}");
    }

    // Each described operation is routed, and the bearer token guards exactly those the
    // description says it does.
    for (method, path) in &described {
        let op = &doc["paths"][path][method.to_lowercase()];
        let guarded = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let body = (method == "POST").then(|| json!({}));
        let bare = call(&d.url, method, &concrete(path), body.as_ref(), &[]);
        if guarded {
            assert_eq!(bare.status, 401, "{method} {path} without a token: {}", bare.body);
            assert!(op["responses"]["401"].is_object(), "{method} {path}: 401 declared");
            assert_eq!(op["security"][0]["bearer"], json!([]), "{method} {path}");
        } else {
            assert!(
                ["/v1/health", "/v1/openapi.json"].contains(&path.as_str()),
                "{method} {path} needs no token"
            );
            assert_eq!(bare.status, 200, "{method} {path} without a token");
        }
        let authed = call(&d.url, method, &concrete(path), body.as_ref(), &[AUTH]);
        let code: Value = serde_json::from_str(&authed.body).unwrap_or(Value::Null);
        assert!(
            ![404, 405].contains(&authed.status) || code["error"]["code"] == "unknown_card",
            "{method} {path} is routed: {} {}",
            authed.status,
            authed.body
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
}

/// The methods of a 405's Allow header.
fn call_allow(url: &str, method: &str, path: &str) -> BTreeSet<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header(AUTH.0, AUTH.1)
        .body(String::new())
        .unwrap();
    let resp = agent.run(req).unwrap();
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    allow
        .split(',')
        .map(|m| m.trim().to_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

fn line(sku: &str, category: &str, qty: i64, unit_price: i64) -> Value {
    json!({"sku": sku, "category": category, "qty": qty, "unit_price": unit_price})
}

/// Checks that `a`, the answer of `method template`, is declared with its content type
/// and, for JSON, that an error document carries a code of the description.
fn declared(doc: &Value, method: &str, template: &str, a: &Answer) -> Result<(), String> {
    let op = &doc["paths"][template][method.to_lowercase()];
    let resp = &op["responses"][a.status.to_string()];
    let Some(content) = resp["content"].as_object() else {
        return Err(format!("{method} {template}: {} is not declared", a.status));
    };
    let media = a.content_type.split(';').next().unwrap().trim();
    if !content.contains_key(media) {
        return Err(format!(
            "{method} {template} {}: content type {media} is not the declared {:?}",
            a.status,
            content.keys().collect::<Vec<_>>()
        ));
    }
    if content[media]["schema"]["$ref"] == "#/components/schemas/Error" {
        let v: Value = serde_json::from_str(&a.body).map_err(|e| format!("{method} {template}: {e}"))?;
        let codes = &doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"];
        if !codes.as_array().unwrap().contains(&v["error"]["code"]) {
            return Err(format!(
                "{method} {template}: code {} is not described",
                v["error"]["code"]
            ));
        }
    }
    Ok(())
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

fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
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
