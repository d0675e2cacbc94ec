//! The HTTP edges of the POS API: every refusal is the error document with its stable
//! code (404 and 405 included), the auth scheme's case does not matter, and bad input
//! in headers and text fields is refused plainly and changes nothing.

mod support;

use serde_json::{json, Value};
use support::daemon::{code, Daemon, TOKEN};

/// A raw request, for what the test client will not send (odd methods, raw bytes).
fn raw(url: &str, request: &[u8]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

fn error_json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn unknown_routes_and_methods_answer_404_and_405_with_the_error_document() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    let (s, body) = c.get("/v1/no/such/thing").unwrap();
    assert_eq!((s, code(&error_json(&body))), (404, "not_found"));
    let (s, body) = c.get("/v1/checkout/commit").unwrap();
    assert_eq!((s, code(&error_json(&body))), (405, "method_not_allowed"));
    let req =
        format!("DELETE /v1/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
    let (s, head, body) = raw(&d.url, req.as_bytes());
    assert_eq!((s, code(&error_json(&body))), (405, "method_not_allowed"));
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/json"),
        "{head}"
    );
    // A path that is not UTF-8 (axum answers such in plain text by itself).
    let req = format!(
        "GET /v1/cards/%FF%FE HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    let (s, head, body) = raw(&d.url, req.as_bytes());
    assert!((400..500).contains(&s), "{s}");
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/json"),
        "{head}"
    );
    error_json(&body);
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let req = format!(
            "GET /v1/reports/daily HTTP/1.1\r\nHost: x\r\nAuthorization: {scheme} {TOKEN}\r\nConnection: close\r\n\r\n"
        );
        let (s, _, body) = raw(&d.url, req.as_bytes());
        assert_eq!(s, 200, "{scheme}: {body}");
    }
    let req = "GET /v1/reports/daily HTTP/1.1\r\nHost: x\r\nAuthorization: Basic eDp5\r\nConnection: close\r\n\r\n";
    let (s, _, body) = raw(&d.url, req.as_bytes());
    assert_eq!((s, code(&error_json(&body))), (401, "unauthorized"));
}

#[test]
fn bad_keys_and_control_characters_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    let records = || c.get_json("/v1/health", 200)["journal_records"].as_u64().unwrap();
    let before = records();
    // A key of bytes that are not UTF-8: refused as such, not as "missing".
    let body =
        json!({"card": "04A1B2C3", "lines": [{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": 100}]})
            .to_string();
    let mut req = format!(
        "POST /v1/checkout/commit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(b"Idempotency-Key: k\xff\xfe\r\n\r\n");
    req.extend_from_slice(body.as_bytes());
    let (s, _, answer) = raw(&d.url, &req);
    let e = error_json(&answer);
    assert_eq!((s, code(&e)), (400, "invalid_input"));
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not UTF-8") && !message.contains("required"),
        "{message}"
    );
    // Too long a key.
    let long = "k".repeat(129);
    let e = c.post_json(
        "/v1/checkout/commit",
        &serde_json::from_str(&body).unwrap(),
        &[("Idempotency-Key", &long)],
        400,
    );
    assert_eq!(code(&e), "invalid_input");

    // Control characters in a name, a sku, a category; every script and emoji is fine.
    for (card, name) in [
        ("04A1B2C1", "Ann\u{1b}[2J"),
        ("04A1B2C2", "tab\there"),
        ("04A1B2C4", "a\u{7f}"),
    ] {
        let e = c.post_json(
            "/v1/members",
            &json!({"card": card, "name": name, "phone": "13800000001"}),
            &[],
            400,
        );
        assert_eq!(code(&e), "invalid_input", "{name:?}");
    }
    assert_eq!(records(), before, "nothing was written");
    let m = c.post_json(
        "/v1/members",
        &json!({"card": "04A1B2C3", "name": "王小明 🎉", "phone": "13800000001"}),
        &[],
        201,
    );
    assert_eq!(m["name"], "王小明 🎉");
    let before = records();
    for (sku, category) in [("ri\u{1b}ce", "grocery"), ("rice", "groc\u{0}ery")] {
        let bad =
            json!({"card": "04A1B2C3", "lines": [{"sku": sku, "category": category, "qty": 1, "unit_price": 100}]});
        for path in ["/v1/checkout/quote", "/v1/checkout/commit"] {
            let e = c.post_json(path, &bad, &[("Idempotency-Key", "k-bad")], 400);
            assert_eq!(code(&e), "invalid_input", "{path} {sku:?} {category:?}");
        }
    }
    assert_eq!(records(), before, "nothing was written");
}
