//! End-to-end tests of the POS API against the real daemon on an ephemeral port.

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::daemon::{code, Client, Daemon, TOKEN};

fn enrol(c: &Client, card: &str, phone: &str) -> Value {
    c.post_json(
        "/v1/members",
        &json!({"card": card, "name": "Ann", "phone": phone, "pin": "1234"}),
        &[],
        201,
    )
}

fn sale(card: &str) -> Value {
    json!({"card": card, "lines": [
        {"sku": "rice", "category": "grocery", "qty": 2, "unit_price": 3450},
        {"sku": "cigarettes", "category": "tobacco", "qty": 1, "unit_price": 2500},
        {"sku": "oil", "category": "grocery", "qty": 1, "unit_price": 5990}]})
}

/// A daemon with Ann enrolled (card 04A1B2C3, PIN 1234).
fn with_ann(dir: &std::path::Path) -> (Daemon, Client, Value) {
    let d = Daemon::start(dir);
    let c = d.client();
    let m = enrol(&c, "04:a1:b2:c3", "13800000001");
    (d, c, m)
}

fn commit(c: &Client, body: &Value, key: &str, status: u16) -> Value {
    c.post_json("/v1/checkout/commit", body, &[("Idempotency-Key", key)], status)
}

#[test]
fn health_needs_no_token_and_everything_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let h = Client::new(&d.url, None).get_json("/v1/health", 200);
    assert_eq!(
        (h["status"].as_str(), h["terminal_id"].as_str()),
        (Some("ok"), Some("T1"))
    );
    assert!(h["outbox"].is_u64() && h["clock_trusted"].is_boolean() && h.get("last_sync_at").is_some());
    for client in [
        Client::new(&d.url, None),
        d.client().with_token(Some("wrong-token-000")),
    ] {
        let (s, body) = client.get("/v1/cards/04A1B2C3").unwrap();
        assert_eq!(s, 401);
        assert_eq!(code(&serde_json::from_str(&body).unwrap()), "unauthorized");
        let (s, _) = client.post("/v1/members", "{}", &[]).unwrap();
        assert_eq!(s, 401);
        assert_eq!(client.get("/metrics").unwrap().0, 401);
    }
}

#[test]
fn members_and_their_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, c, m) = with_ann(dir.path());
    assert_eq!(m["cards"][0]["card"], "04A1B2C3");
    let refused = [
        (
            json!({"card": "04A1B2C3", "name": "B", "phone": "13800000002"}),
            409,
            "member_exists",
        ),
        (
            json!({"card": "04A1B2C4", "name": "B", "phone": "13800000001"}),
            409,
            "phone_taken",
        ),
        (
            json!({"card": "x", "name": "B", "phone": "13800000009"}),
            400,
            "invalid_card",
        ),
        (json!({"card": "04A1B2C9", "name": "B"}), 400, "invalid_input"),
        (
            json!({"card": "04A1B2C9", "name": "B", "phone": "1", "bogus": 1}),
            400,
            "invalid_input",
        ),
    ];
    for (body, status, want) in refused {
        assert_eq!(code(&c.post_json("/v1/members", &body, &[], status)), want, "{body}");
    }
    let (s, body) = c.post("/v1/members", "{not json", &[]).unwrap();
    assert_eq!((s, code(&serde_json::from_str(&body).unwrap())), (400, "invalid_input"));
    assert_eq!(c.get_json("/v1/cards/04A1B2C3", 200)["member_id"], m["member_id"]);
    assert_eq!(code(&c.get_json("/v1/cards/FFFF0000", 404)), "unknown_card");
    assert_eq!(code(&c.get_json("/v1/cards/a!", 400)), "invalid_card");
    // Oversized body: 413 before anything is parsed.
    let big = format!("{{\"card\": \"{}\"}}", "A".repeat(70 * 1024));
    let (s, body) = c.post("/v1/swipe", &big, &[]).unwrap();
    assert_eq!(s, 413, "{body}");
}

#[test]
fn quote_commit_and_replay_of_worked_example_1() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, c, _) = with_ann(dir.path());
    let q = c.post_json("/v1/checkout/quote", &sale("04A1B2C3"), &[], 200);
    assert_eq!(
        (q["subtotal"].as_i64(), q["total"].as_i64(), q["points_earned"].as_i64()),
        (Some(15390), Some(14390), Some(118))
    );
    assert!(q.get("tx_id").is_none() && q["max_redeem_points"].is_i64());
    let e = c.post_json("/v1/checkout/commit", &sale("04A1B2C3"), &[], 400);
    assert_eq!(code(&e), "invalid_input", "the key is required");
    let r1 = commit(&c, &sale("04A1B2C3"), "k-1", 200);
    assert_eq!(
        (r1["total"].as_i64(), r1["balance"].as_i64(), r1["replayed"].as_bool()),
        (Some(14390), Some(118), Some(false))
    );
    let r2 = commit(&c, &sale("04A1B2C3"), "k-1", 200);
    assert_eq!(
        (r2["tx_id"].clone(), r2["replayed"].as_bool()),
        (r1["tx_id"].clone(), Some(true))
    );
    let mut other = sale("04A1B2C3");
    other["lines"][0]["qty"] = json!(3);
    assert_eq!(code(&commit(&c, &other, "k-1", 409)), "idempotency_conflict");
    assert_eq!(c.get_json("/v1/cards/04A1B2C3", 200)["balance"], 118);
}

#[test]
fn business_refusals_are_422_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, c, _) = with_ann(dir.path());
    commit(&c, &sale("04A1B2C3"), "k-1", 200);
    let before = c.get_json("/v1/cards/04A1B2C3", 200);
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut s = sale("04A1B2C3");
    s["redeem_points"] = json!(50);
    cases.push((s.clone(), "below_min_redeem"));
    s["redeem_points"] = json!(500);
    cases.push((s.clone(), "insufficient_points"));
    let mut s = sale("04A1B2C3");
    s["coupon"] = json!("NOSUCHCODE");
    cases.push((s, "coupon_invalid"));
    for (body, want) in cases {
        assert_eq!(code(&commit(&c, &body, want, 422)), want);
    }
    let mut bad = sale("04A1B2C3");
    bad["lines"][0]["qty"] = json!(0);
    assert_eq!(code(&commit(&c, &bad, "bad", 400)), "invalid_input");
    bad["lines"][0]["qty"] = json!(1);
    bad["lines"][0]["unit_price"] = json!(-5);
    assert_eq!(
        code(&c.post_json("/v1/checkout/quote", &bad, &[], 400)),
        "invalid_input"
    );
    assert_eq!(
        code(&c.post_json("/v1/checkout/quote", &sale("FFFF0000"), &[], 404)),
        "unknown_card"
    );
    assert_eq!(c.get_json("/v1/cards/04A1B2C3", 200), before);
}

#[test]
fn refunds_in_parts_add_up_to_the_sale() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, c, _) = with_ann(dir.path());
    let r1 = commit(&c, &sale("04A1B2C3"), "k-1", 200);
    let tx = r1["tx_id"].as_str().unwrap();
    let f = c.post_json(
        "/v1/refunds",
        &json!({"tx_id": tx, "lines": [{"sku": "oil", "qty": 1}]}),
        &[],
        200,
    );
    assert!(f["amount"].as_i64().unwrap() > 0 && f["refund_id"].is_string());
    let f2 = c.post_json("/v1/refunds", &json!({"tx_id": tx}), &[], 200);
    assert_eq!(f["amount"].as_i64().unwrap() + f2["amount"].as_i64().unwrap(), 14390);
    assert_eq!(
        f["points_clawed_back"].as_i64().unwrap() + f2["points_clawed_back"].as_i64().unwrap(),
        118
    );
    assert_eq!(f2["balance"], 0);
    assert_eq!(
        code(&c.post_json("/v1/refunds", &json!({"tx_id": tx}), &[], 422)),
        "refund_exceeds"
    );
    assert_eq!(
        code(&c.post_json("/v1/refunds", &json!({"tx_id": "nope"}), &[], 404)),
        "unknown_transaction"
    );
}

#[test]
fn coupons_rewards_and_cards() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, c, _) = with_ann(dir.path());
    let cp = c.post_json(
        "/v1/coupons",
        &json!({"card": "04A1B2C3", "type": "welcome5"}),
        &[],
        200,
    );
    assert!(cp["code"].is_string() && cp["valid_until"].is_string());
    let e = c.post_json(
        "/v1/rewards/redeem",
        &json!({"card": "04A1B2C3", "sku": "mug"}),
        &[],
        422,
    );
    assert_eq!(code(&e), "insufficient_points");
    // Block: the card is refused; replace gives a working card.
    c.post_json("/v1/cards/04A1B2C3/block", &json!({}), &[], 200);
    assert_eq!(code(&commit(&c, &sale("04A1B2C3"), "k-2", 422)), "card_blocked");
    let m2 = c.post_json("/v1/cards/04A1B2C3/replace", &json!({"new_card": "04A1B2C5"}), &[], 200);
    assert_eq!(m2["cards"].as_array().unwrap().len(), 2);
    commit(&c, &sale("04A1B2C5"), "k-3", 200);
}

#[test]
fn reports_and_metrics_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let (d, c, _) = with_ann(dir.path());
    let r1 = commit(&c, &sale("04A1B2C3"), "k-1", 200);
    commit(&c, &sale("04A1B2C3"), "k-1", 200);
    commit(&c, &sale("04A1B2C3"), "k-2", 200);
    let mut other = sale("04A1B2C3");
    other["lines"][0]["qty"] = json!(3);
    commit(&c, &other, "k-1", 409);
    c.post_json("/v1/refunds", &json!({"tx_id": r1["tx_id"]}), &[], 200);
    for _ in 0..3 {
        assert_eq!(Client::new(&d.url, None).get("/v1/reports/daily").unwrap().0, 401);
    }
    let rep = c.get_json("/v1/reports/daily", 200);
    assert_eq!((rep["checkouts"].as_i64(), rep["refunds"].as_i64()), (Some(2), Some(1)));
    assert_eq!(
        code(&c.get_json("/v1/reports/daily?date=2026-13-01", 400)),
        "invalid_input"
    );
    let (s, text) = c.get("/metrics").unwrap();
    assert_eq!(s, 200);
    for line in [
        "loyaltyd_checkouts_total 2",
        "loyaltyd_checkout_replays_total 1",
        "loyaltyd_refusals_total{code=\"idempotency_conflict\"} 1",
        "loyaltyd_refusals_total{code=\"unauthorized\"} 3",
        "loyaltyd_commit_seconds_count 2",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[test]
fn a_swipe_reaches_an_sse_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    enrol(&c, "04A1B2C3", "13800000001");
    // Subscribe with a raw streaming GET.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let url = format!("{}/v1/events", d.url);
    thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let resp = agent
            .get(&url)
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        for line in BufReader::new(resp.into_body().into_reader())
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The subscription is live once a swipe shows up; swipe until one does.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut data = None;
    while data.is_none() && Instant::now() < deadline {
        c.post_json("/v1/swipe", &json!({"card": "04a1b2c3"}), &[], 200);
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(d) = line.strip_prefix("data: ") {
                data = Some(d.to_string());
                break;
            }
        }
    }
    let ev: Value = serde_json::from_str(&data.expect("no SSE event within 10 s")).unwrap();
    assert_eq!(
        (ev["card"].as_str(), ev["status"].as_str()),
        (Some("04A1B2C3"), Some("member"))
    );
    assert_eq!(ev["member"]["name"], "Ann");
    // Unknown and blocked cards.
    let ev = c.post_json("/v1/swipe", &json!({"card": "FFFF0001"}), &[], 200);
    assert_eq!((ev["status"].as_str(), ev["member"].is_null()), (Some("unknown"), true));
    c.post_json("/v1/cards/04A1B2C3/block", &json!({}), &[], 200);
    assert_eq!(
        c.post_json("/v1/swipe", &json!({"card": "04A1B2C3"}), &[], 200)["status"],
        "blocked"
    );
    assert_eq!(
        code(&c.post_json("/v1/swipe", &json!({"card": "!!"}), &[], 400)),
        "invalid_card"
    );
}

/// Runs `clients` threads committing sales with unique keys until told to stop; returns
/// every (key, tx_id) answered 2xx.
fn burst(url: &str, clients: usize, stop: Arc<Mutex<bool>>) -> Vec<thread::JoinHandle<Vec<(String, String)>>> {
    (0..clients)
        .map(|t| {
            let url = url.to_string();
            let stop = stop.clone();
            thread::spawn(move || {
                let c = Client::new(&url, Some(TOKEN));
                let mut ok = Vec::new();
                for i in 0.. {
                    if *stop.lock().unwrap() {
                        break;
                    }
                    let key = format!("t{t}-{i}");
                    match c.post(
                        "/v1/checkout/commit",
                        &sale(&format!("CARD{t:04}")).to_string(),
                        &[("Idempotency-Key", &key)],
                    ) {
                        Ok((200, body)) => {
                            let v: Value = serde_json::from_str(&body).unwrap();
                            ok.push((key, v["tx_id"].as_str().unwrap().to_string()));
                        }
                        Ok((s, body)) => panic!("unexpected {s}: {body}"),
                        Err(_) => break, // the daemon went away
                    }
                }
                ok
            })
        })
        .collect()
}

fn check_all_present(dir: &std::path::Path, receipts: &[(String, String)], clients: usize) {
    let d = Daemon::start(dir);
    let c = d.client();
    let mut seen = HashSet::new();
    for (key, tx) in receipts {
        let t: usize = key[1..key.find('-').unwrap()].parse().unwrap();
        assert!(t < clients);
        let r = c.post_json(
            "/v1/checkout/commit",
            &sale(&format!("CARD{t:04}")),
            &[("Idempotency-Key", key)],
            200,
        );
        assert_eq!(
            (r["tx_id"].as_str(), r["replayed"].as_bool()),
            (Some(tx.as_str()), Some(true)),
            "{key} lost"
        );
        assert!(seen.insert(tx.clone()), "tx {tx} acknowledged twice");
    }

    // The state the daemon came back with is the journal's: a rebuild from the journal
    // alone gives the same members and daily totals (a state batch half written at the
    // kill and then replayed would count its commits twice).
    let state = |c: &Client| {
        let cards: Vec<Value> = (0..clients)
            .map(|t| c.get_json(&format!("/v1/cards/CARD{t:04}"), 200))
            .collect();
        (cards, c.get_json("/v1/reports/daily", 200))
    };
    let before = state(&c);
    let mut d = d;
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let mut args = support::daemon::global_args(dir);
    args.push("rebuild".into());
    let out = support::loyaltyd_command().args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = Daemon::start(dir);
    assert_eq!(
        state(&d.client()),
        before,
        "the state differs from a rebuild of the journal"
    );
}

fn enrol_clients(c: &Client, clients: usize) {
    for t in 0..clients {
        c.post_json(
            "/v1/members",
            &json!({"card": format!("CARD{t:04}"), "name": "N", "phone": format!("1390000{t:04}")}),
            &[],
            201,
        );
    }
}

fn wait_for_commits(c: &Client, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = c.get("/metrics").unwrap();
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("loyaltyd_checkouts_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if n >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "commits did not start");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_during_a_burst_loses_nothing_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path());
    enrol_clients(&d.client(), 8);
    let stop = Arc::new(Mutex::new(false));
    let threads = burst(&d.url, 8, stop.clone());
    wait_for_commits(&d.client(), 50);
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(10));
    *stop.lock().unwrap() = true;
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    let receipts: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(receipts.len() >= 50);
    drop(d);
    check_all_present(dir.path(), &receipts, 8);
}

#[test]
fn kill_9_during_8_concurrent_clients_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path());
    enrol_clients(&d.client(), 8);
    let stop = Arc::new(Mutex::new(false));
    let threads = burst(&d.url, 8, stop.clone());
    wait_for_commits(&d.client(), 100);
    d.signal(libc::SIGKILL);
    d.wait_exit(Duration::from_secs(10));
    *stop.lock().unwrap() = true;
    let receipts: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(receipts.len() >= 100);
    drop(d);
    check_all_present(dir.path(), &receipts, 8);
}

#[test]
fn a_bad_ruleset_or_token_stops_start_up_plainly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.toml"), "version = 1\n").unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let mut args = support::daemon::global_args(dir.path());
    args.extend(["serve", "--listen", "127.0.0.1:0", "--reader", "none", "--token-file"].map(String::from));
    args.push(dir.path().join("token").display().to_string());
    let out = support::loyaltyd_command().args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules.toml"), "{err}");
    // A reader that cannot exist here is refused plainly, not with a panic.
    std::fs::copy(
        support::daemon::repo("config/rules.toml"),
        dir.path().join("rules.toml"),
    )
    .unwrap();
    let mut a2 = args.clone();
    let i = a2.iter().position(|a| a == "none").unwrap();
    a2[i] = "rdm6300:/nonexistent/tty".into();
    let out = support::loyaltyd_command().args(&a2).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/tty") && !err.contains("panicked"), "{err}");
}

#[test]
fn serve_runs_on_its_embedded_defaults_anywhere() {
    // No config file in reach: the embedded defaults, a POS token made in the data dir.
    if std::path::Path::new("/etc/loyaltyd/loyaltyd.toml").exists() {
        eprintln!("skipped: /etc/loyaltyd/loyaltyd.toml exists here and would be read");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = support::loyaltyd_command();
    cmd.current_dir(dir.path()).env_remove("LOYALTYD_CONFIG").args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--reader",
        "none",
    ]);
    let (child, url, _log) = support::daemon::spawn_logged(cmd, "listening on ");
    let _child = Guard(child);
    let token = std::fs::read_to_string(dir.path().join("data/pos.token")).unwrap();
    let c = Client::new(&url, Some(token.trim()));
    assert_eq!(c.get_json("/v1/health", 200)["terminal_id"], "T1");
    c.post_json(
        "/v1/members",
        &json!({"card": "04A1B2C3", "name": "Ann", "phone": "13800000001"}),
        &[],
        201,
    );
    assert_eq!(
        Client::new(&url, Some("wrong-token"))
            .get("/v1/cards/04A1B2C3")
            .unwrap()
            .0,
        401
    );
}

/// Kills the child when the test ends, however it ends.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Datagrams on a notify socket of our own until one holds `want` (deadline 10 s).
fn notifications_until(sock: &std::os::unix::net::UnixDatagram, want: &str, got: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !got.iter().any(|m| m.lines().any(|l| l == want)) {
        assert!(Instant::now() < deadline, "no {want} within 10 s; got {got:?}");
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn systemd_hears_start_up_readiness_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")];
    let mut d = Daemon::start_env(dir.path(), &[], &env);

    let mut got = Vec::new();
    notifications_until(&sock, "READY=1", &mut got);
    // Opening the journal and the store asked for more start time first.
    assert!(
        got[0].lines().any(|l| l == "EXTEND_TIMEOUT_USEC=30000000"),
        "first message: {got:?}"
    );
    // Then the watchdog pings, at half the 1 s interval, while the engine answers.
    let ready = got.len();
    let t0 = Instant::now();
    for _ in 0..2 {
        got.truncate(ready);
        notifications_until(&sock, "WATCHDOG=1", &mut got);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "two pings took {:?}",
        t0.elapsed()
    );

    d.signal(libc::SIGTERM);
    notifications_until(&sock, "STOPPING=1", &mut got);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
