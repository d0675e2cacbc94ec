//! The bad-input table: for every surface (the POS API, the CLI, the config file, the
//! ruleset), each row a bad input with the stable code and the words of the message it
//! must get, and a check that nothing changed after the refusal (no journal record on
//! the API, the same state dump on the CLI, no start on a bad file).

mod support;

use serde_json::{json, Value};
use support::cli::Term;
use support::daemon::{code, Daemon};

const CARD: &str = "04A1B2C3";

/// (method, path, body, Idempotency-Key, status, code, words of the message)
type ApiRow = (
    &'static str,
    &'static str,
    Value,
    Option<&'static str>,
    u16,
    &'static str,
    &'static str,
);

fn api_rows() -> Vec<ApiRow> {
    let line = |sku: &str, cat: &str, qty: i64, price: i64| json!({"sku": sku, "category": cat, "qty": qty, "unit_price": price});
    let sale = |lines: Value| json!({"card": CARD, "lines": lines});
    vec![
        (
            "POST",
            "/v1/members",
            json!({"card": "a!", "name": "B", "phone": "13800000009"}),
            None,
            400,
            "invalid_card",
            "not a card number",
        ),
        (
            "POST",
            "/v1/members",
            json!({"card": "0A0A0A0A", "name": "", "phone": "13800000009"}),
            None,
            400,
            "invalid_input",
            "name must be 1 to 100",
        ),
        (
            "POST",
            "/v1/members",
            json!({"card": "0A0A0A0A", "name": "B\u{7}", "phone": "13800000009"}),
            None,
            400,
            "invalid_input",
            "control character",
        ),
        (
            "POST",
            "/v1/members",
            json!({"card": "0A0A0A0A", "name": "B", "phone": "12"}),
            None,
            400,
            "invalid_input",
            "bad phone",
        ),
        (
            "POST",
            "/v1/members",
            json!({"card": "0A0A0A0A", "name": "B", "phone": "13800000009", "birthday": "02-30"}),
            None,
            400,
            "invalid_input",
            "bad birthday",
        ),
        (
            "POST",
            "/v1/members",
            json!({"card": "0A0A0A0A", "name": "B", "phone": "13800000009", "pin": "12"}),
            None,
            400,
            "invalid_input",
            "PIN is 4 to 8 digits",
        ),
        (
            "POST",
            "/v1/members",
            json!({"card": CARD, "name": "B", "phone": "13800000009"}),
            None,
            409,
            "member_exists",
            "already belongs",
        ),
        (
            "POST",
            "/v1/members",
            json!({"card": "0A0A0A0A", "name": "B", "phone": "13800000001"}),
            None,
            409,
            "phone_taken",
            "already belongs",
        ),
        (
            "POST",
            "/v1/members",
            json!({"card": "0A0A0A0A", "name": "B", "phone": "13800000009", "x": 1}),
            None,
            400,
            "invalid_input",
            "unknown field",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            sale(json!([line("rice", "grocery", 1, 100)])),
            None,
            400,
            "invalid_input",
            "Idempotency-Key header is required",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            sale(json!([])),
            Some("k1"),
            400,
            "invalid_input",
            "at least one line",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            sale(json!([line("rice", "grocery", 0, 100)])),
            Some("k2"),
            400,
            "invalid_input",
            "quantity 0",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            sale(json!([line("rice", "grocery", 1, -1)])),
            Some("k3"),
            400,
            "invalid_input",
            "unit price -1",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            sale(json!([line("ri\u{1b}ce", "grocery", 1, 100)])),
            Some("k4"),
            400,
            "invalid_input",
            "control character",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            sale(json!([{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": 1.5}])),
            Some("k5"),
            400,
            "invalid_input",
            "bad JSON body",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            json!({"card": "FFFF0000", "lines": [line("rice", "grocery", 1, 100)]}),
            Some("k6"),
            404,
            "unknown_card",
            "no member has card",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            json!({"card": CARD, "redeem_points": 50, "lines": [line("rice", "grocery", 1, 10000)]}),
            Some("k7"),
            422,
            "below_min_redeem",
            "at least 100",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            json!({"card": CARD, "redeem_points": 5000, "lines": [line("rice", "grocery", 1, 10000)]}),
            Some("k8"),
            422,
            "insufficient_points",
            "balance is",
        ),
        (
            "POST",
            "/v1/checkout/commit",
            json!({"card": CARD, "coupon": "NOPE", "lines": [line("rice", "grocery", 1, 10000)]}),
            Some("k9"),
            422,
            "coupon_invalid",
            "NOPE",
        ),
        (
            "POST",
            "/v1/checkout/quote",
            json!({"card": CARD, "pin": "12ab", "lines": [line("rice", "grocery", 1, 100)]}),
            None,
            422,
            "pin_invalid",
            "4 to 8 digits",
        ),
        (
            "POST",
            "/v1/refunds",
            json!({"tx_id": "T1-00000000-0000000999"}),
            None,
            404,
            "unknown_transaction",
            "no transaction",
        ),
        (
            "POST",
            "/v1/refunds",
            json!({"tx_id": "x", "lines": [{"sku": "rice", "qty": 0}]}),
            None,
            400,
            "invalid_input",
            "must be 1 to",
        ),
        (
            "POST",
            "/v1/coupons",
            json!({"card": CARD, "type": "nope"}),
            None,
            422,
            "coupon_invalid",
            "no coupon type nope",
        ),
        (
            "POST",
            "/v1/rewards/redeem",
            json!({"card": CARD, "sku": "nope"}),
            None,
            400,
            "invalid_input",
            "no reward nope",
        ),
        (
            "POST",
            "/v1/rewards/redeem",
            json!({"card": CARD, "sku": "mug"}),
            None,
            422,
            "insufficient_points",
            "costs 500 points",
        ),
        (
            "POST",
            "/v1/cards/04A1B2C3/replace",
            json!({"new_card": "04A1B2C3"}),
            None,
            409,
            "member_exists",
            "already belongs",
        ),
        (
            "POST",
            "/v1/cards/FFFF0000/block",
            json!({}),
            None,
            404,
            "unknown_card",
            "no member has card",
        ),
        (
            "GET",
            "/v1/reports/daily?date=2026-02-30",
            Value::Null,
            None,
            400,
            "invalid_input",
            "bad date",
        ),
        (
            "GET",
            "/v1/nothing/here",
            Value::Null,
            None,
            404,
            "not_found",
            "no such endpoint",
        ),
        (
            "PUT",
            "/v1/members",
            json!({}),
            None,
            405,
            "method_not_allowed",
            "method",
        ),
    ]
}

#[test]
fn every_bad_api_input_gets_its_code_and_message_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    c.post_json(
        "/v1/members",
        &json!({"card": CARD, "name": "Ann", "phone": "13800000001", "pin": "1234"}),
        &[],
        201,
    );
    let records = || c.get_json("/v1/health", 200)["journal_records"].as_u64().unwrap();
    let member = || c.get_json(&format!("/v1/cards/{CARD}"), 200);
    let (before, ann) = (records(), member());
    let mut failures = Vec::new();
    for (i, (method, path, body, key, status, want, words)) in api_rows().into_iter().enumerate() {
        let headers: Vec<(&str, &str)> = key.iter().map(|k| ("Idempotency-Key", *k)).collect();
        let (s, text) = match method {
            "GET" => c.get(path).unwrap(),
            "POST" => c.post(path, &body.to_string(), &headers).unwrap(),
            _ => c.request(method, path, &body.to_string()).unwrap(),
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = v["error"]["message"].as_str().unwrap_or_default();
        if (s, code(&v)) != (status, want) || !message.contains(words) {
            failures.push(format!(
                "#{i} {method} {path}: wanted {status} {want} ...{words}..., got {s} {text}"
            ));
        }
        if records() != before {
            failures.push(format!("#{i} {method} {path}: the refusal wrote a record"));
        }
    }
    assert_eq!(member(), ann, "the member is as before");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_bad_cli_input_gets_its_code_and_message_and_changes_no_state() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", Some("1234"));
    let dump = || t.ok(&["state", "dump"]);
    let before = dump();
    let rows: &[(&[&str], &str, &str)] = &[
        (
            &["member", "add", "--card", "a!", "--name", "B", "--phone", "13800000009"],
            "invalid_card",
            "not a card number",
        ),
        (
            &[
                "member",
                "add",
                "--card",
                "0A0A0A0A",
                "--name",
                "B\u{1b}",
                "--phone",
                "13800000009",
            ],
            "invalid_input",
            "control character",
        ),
        (
            &["member", "add", "--card", CARD, "--name", "B", "--phone", "13800000009"],
            "member_exists",
            "already belongs",
        ),
        (
            &["member", "show", "--card", "FFFF0000"],
            "unknown_card",
            "no member has card",
        ),
        (
            &["member", "show", "--card", CARD, "--at", "yesterday"],
            "invalid_input",
            "RFC 3339",
        ),
        (
            &["checkout", "--card", CARD, "--line", "rice,grocery,1"],
            "invalid_input",
            "SKU,CATEGORY,QTY,UNIT_PRICE",
        ),
        (
            &["checkout", "--card", CARD, "--line", "rice,grocery,1,1.50"],
            "invalid_input",
            "minor units, an integer",
        ),
        (
            &[
                "checkout",
                "--card",
                CARD,
                "--line",
                "rice,grocery,1,100",
                "--redeem",
                "100",
            ],
            "insufficient_points",
            "balance is",
        ),
        (
            &["checkout", "--card", CARD, "--line", "rice,grocery,1,100", "--key", ""],
            "invalid_input",
            "idempotency key",
        ),
        (
            &["refund", "--tx", "T1-00000000-0000000999"],
            "unknown_transaction",
            "no transaction",
        ),
        (&["refund", "--tx", "x", "--line", "rice"], "invalid_input", "SKU,QTY"),
        (
            &["coupon", "issue", "--card", CARD, "--type", "nope"],
            "coupon_invalid",
            "no coupon type",
        ),
        (
            &["reward", "redeem", "--card", CARD, "--sku", "mug"],
            "insufficient_points",
            "costs 500",
        ),
        (
            &["card", "block", "--card", "FFFF0000"],
            "unknown_card",
            "no member has card",
        ),
        (
            &["report", "daily", "--date", "2026-13-01"],
            "invalid_input",
            "bad date",
        ),
    ];
    let mut failures = Vec::new();
    for (args, want, words) in rows {
        let r = t.run(args);
        let v: Value = serde_json::from_str(r.stdout.trim()).unwrap_or(Value::Null);
        let message = v["error"]["message"].as_str().unwrap_or_default();
        if r.status != 1 || code(&v) != *want || !message.contains(words) || !r.stderr.contains(words) {
            failures.push(format!(
                "{args:?}: wanted {want} ...{words}..., got {} {} {}",
                r.status, r.stdout, r.stderr
            ));
        }
    }
    assert_eq!(dump(), before, "no refusal changed the state");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_bad_config_or_ruleset_stops_every_command_naming_the_file_and_field() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    let before = t.ok(&["state", "dump"]);
    let dir = t.tmp.path();
    let config = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let data = t.data.display().to_string();
    let good = std::fs::read_to_string(support::cli::CONFIG).unwrap();
    let cases = [
        (config("a.toml", "terminal_id = \"T1\"\nbogus = 1\n"), "a.toml", "bogus"),
        (
            config("b.toml", &good.replace("cache_mib = 8", "cache_mib = \"x\"")),
            "b.toml",
            "cache_mib",
        ),
        (
            config("c.toml", &good.replace("terminal_id = \"T1\"", "terminal_id = \"T 1\"")),
            "c.toml",
            "terminal_id",
        ),
        (
            config("d.toml", &good.replace("[api]", "[api]\nmax_connections = 0")),
            "d.toml",
            "max_connections",
        ),
    ];
    for (file, name, field) in &cases {
        for args in [
            vec!["member", "show", "--card", CARD],
            vec!["serve", "--listen", "127.0.0.1:0"],
        ] {
            let mut full = vec!["--config", file.as_str(), "--data-dir", data.as_str(), "--json"];
            full.extend(args.iter());
            let out = support::loyaltyd_command().args(&full).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name} {args:?}: {stdout} {stderr}");
            assert!(stdout.contains("invalid_input"), "{name} {args:?}: {stdout}");
            assert!(
                stderr.contains(name) && stderr.contains(field),
                "{name} {args:?} names the file and field: {stderr}"
            );
        }
    }
    // A ruleset: the file, the field (a TOML path) and the reason.
    let good_rules = std::fs::read_to_string(&t.rules).unwrap();
    let bad = good_rules.replace("max_share_bp = 5000", "max_share_bp = 50000");
    std::fs::write(&t.rules, bad).unwrap();
    let r = t.run(&["member", "show", "--card", CARD]);
    std::fs::write(&t.rules, good_rules).unwrap();
    assert_eq!(r.status, 1, "{r:?}");
    let file = t.rules.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        r.stderr.contains(&file) && r.stderr.contains("redeem.max_share_bp"),
        "{}",
        r.stderr
    );
    assert_eq!(r.json()["error"]["code"], "invalid_input");
    assert_eq!(t.ok(&["state", "dump"]), before, "nothing changed");
}
