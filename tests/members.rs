//! Members at the till, end to end against the real daemon: phones in any spelling,
//! virtual cards, lookup and search with paging, edits, status, PINs, card unblock,
//! history and the points ledger, adjustments and activities, staff, roles and approval,
//! reprints (interface.md 0.2).

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::{json, Value};
use support::daemon::{code, global_args, rules_path, Client, Daemon};

fn enrol(c: &Client, body: Value) -> Value {
    c.post_json("/v1/members", &body, &[], 201)
}

fn ann(c: &Client) -> Value {
    enrol(
        c,
        json!({"card": "04A1B2C3", "name": "Ann Lee", "phone": "+86 138-0000-0001", "pin": "1234"}),
    )
}

fn sale(card: &str, price: i64) -> Value {
    json!({"card": card, "lines": [{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": price}]})
}

fn commit(c: &Client, card: &str, price: i64, key: &str) -> Value {
    c.post_json(
        "/v1/checkout/commit",
        &sale(card, price),
        &[("Idempotency-Key", key)],
        200,
    )
}

/// A request that must be refused with `status` and `code` and change nothing (the
/// journal holds as many records after it as before).
fn refused(c: &Client, method: &str, path: &str, body: &Value, status: u16, want: &str) -> Value {
    let before = records(c);
    let (s, text) = c.request(method, path, &body.to_string()).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
    assert_eq!((s, code(&v)), (status, want), "{method} {path} {body}: {text}");
    assert!(!v["error"]["message"].as_str().unwrap_or("").is_empty(), "{text}");
    assert_eq!(records(c), before, "{method} {path} was refused but wrote a record");
    v
}

fn records(c: &Client) -> u64 {
    c.get_json("/v1/health", 200)["journal_records"].as_u64().unwrap()
}

/// Runs the binary offline on the test's data dir with `stdin`.
fn offline(dir: &Path, args: &[&str], stdin: &str) -> Value {
    let mut cmd = support::loyaltyd_command();
    cmd.args(global_args(dir)).arg("--json").args(args);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap()
}

/// A session token of a staff member.
fn login(c: &Client, staff: &str, password: &str) -> Client {
    let v = c.with_token(None).post_json(
        "/v1/sessions",
        &json!({"staff_id": staff, "password": password}),
        &[],
        200,
    );
    assert!(v["expires_at"].as_str().is_some(), "{v}");
    c.with_token(Some(v["token"].as_str().unwrap()))
}

/// A data dir with a manager and an owner account, then the daemon on it.
fn with_staff(dir: &Path, extra_config: &str) -> (Daemon, Client) {
    offline(
        dir,
        &[
            "staff",
            "add",
            "--id",
            "mia",
            "--name",
            "Mia",
            "--role",
            "manager",
            "--password-stdin",
        ],
        "mia-secret-1\n",
    );
    offline(
        dir,
        &[
            "staff",
            "add",
            "--id",
            "olu",
            "--name",
            "Olu",
            "--role",
            "owner",
            "--password-stdin",
        ],
        "olu-secret-1\n",
    );
    let d = if extra_config.is_empty() {
        Daemon::start(dir)
    } else {
        let cfg = dir.join("loyaltyd.toml");
        let base = std::fs::read_to_string(support::daemon::repo("config/loyaltyd.toml")).unwrap();
        std::fs::write(&cfg, base.replace("[api]\n", &format!("[api]\n{extra_config}\n"))).unwrap();
        Daemon::start_config(dir, &cfg, &[], &[])
    };
    let c = d.client();
    (d, c)
}

#[test]
fn every_spelling_of_a_phone_finds_one_member_and_takes_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    let m = ann(&c);
    assert_eq!(m["phone"], "+8613800000001");
    assert_eq!(m["status"], "active");
    assert_eq!(m["visits"], 0);
    assert_eq!(m["last_visit_at"], Value::Null);
    for spelling in ["13800000001", "0086 13800000001", "86 13800000001", "+86 138 0000 0001"] {
        let q = support::daemon::url_encode(spelling);
        let found = c.get_json(&format!("/v1/members?phone={q}"), 200);
        assert_eq!(found["members"].as_array().unwrap().len(), 1, "{spelling}: {found}");
        assert_eq!(found["members"][0]["member_id"], m["member_id"]);
        assert_eq!(found["next"], Value::Null);
    }
    let none = c.get_json("/v1/members?phone=13800000002", 200);
    assert_eq!(none["members"], json!([]));
    refused(
        &c,
        "POST",
        "/v1/members",
        &json!({"card": "04A1B2C4", "name": "Other", "phone": "0086-138-0000-0001"}),
        409,
        "phone_taken",
    );
    refused(&c, "GET", "/v1/members?phone=12ab", &json!(null), 400, "invalid_input");
    refused(&c, "GET", "/v1/members/m-nobody", &json!(null), 404, "unknown_member");
}

#[test]
fn a_member_without_a_card_gets_a_virtual_one_that_sells_like_any_card() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    let m = enrol(&c, json!({"name": "王芳", "phone": "13900000002"}));
    let card = m["cards"][0]["card"].as_str().unwrap().to_string();
    assert_eq!(card.len(), 12, "{card}");
    assert!(card.bytes().all(|b| b.is_ascii_digit()), "{card}");
    assert!(loyaltyd::identity::luhn_ok(&card), "{card} fails its Luhn check");
    let r = commit(&c, &card, 5000, "v-1");
    assert_eq!(r["member_id"], m["member_id"]);
    let again = c.get_json(&format!("/v1/members/{}", m["member_id"].as_str().unwrap()), 200);
    assert_eq!(again["visits"], 1);
    assert_eq!(again["last_visit_at"], r["at"]);
}

#[test]
fn search_finds_by_name_prefix_phone_suffix_and_card_prefix_in_stable_pages() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    let names = ["Zhang Wei", "zhang li", "Zhao Min", "张伟", "张丽", "Ann"];
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let m = enrol(
            &c,
            json!({"card": format!("0C00{i:04}"), "name": name, "phone": format!("1380000{:04}", 1000 + i)}),
        );
        ids.push(m["member_id"].as_str().unwrap().to_string());
    }
    let ids_of = |v: &Value| -> Vec<String> {
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["member_id"].as_str().unwrap().to_string())
            .collect()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // A name prefix, any case, any script.
    let zh = c.get_json("/v1/members?q=ZHANG", 200);
    assert_eq!(ids_of(&zh), sorted(vec![ids[0].clone(), ids[1].clone()]));
    let zhang_w = c.get_json("/v1/members?q=zhang%20w", 200);
    assert_eq!(ids_of(&zhang_w), vec![ids[0].clone()]);
    let cn = c.get_json(&format!("/v1/members?q={}", support::daemon::url_encode("张")), 200);
    assert_eq!(ids_of(&cn), sorted(vec![ids[3].clone(), ids[4].clone()]));
    // A phone suffix of 4 digits (尾号) and more.
    assert_eq!(ids_of(&c.get_json("/v1/members?q=1002", 200)), vec![ids[2].clone()]);
    assert_eq!(ids_of(&c.get_json("/v1/members?q=01002", 200)), vec![ids[2].clone()]);
    // A card prefix.
    let cards = c.get_json("/v1/members?q=0C00", 200);
    assert_eq!(ids_of(&cards), sorted(ids.clone()));
    // Pages of 2 in member id order, resumed by cursor, while members are added.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut added = 0;
    loop {
        let q = match &after {
            Some(a) => format!("/v1/members?q=0C00&limit=2&after={a}"),
            None => "/v1/members?q=0C00&limit=2".to_string(),
        };
        let page = c.get_json(&q, 200);
        let got = ids_of(&page);
        assert!(got.len() <= 2, "{page}");
        seen.extend(got);
        if added < 2 {
            enrol(
                &c,
                json!({"card": format!("0C01{added:04}"), "name": "Late", "phone": format!("1390000{added:04}")}),
            );
            added += 1;
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen, "no member twice across pages");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "member id order: {seen:?}");
    for id in &ids {
        assert!(
            seen.contains(id),
            "member {id} existed before paging began and was skipped"
        );
    }
    refused(
        &c,
        "GET",
        "/v1/members?q=zh&limit=0",
        &json!(null),
        400,
        "invalid_input",
    );
    refused(
        &c,
        "GET",
        "/v1/members?q=zh&limit=101",
        &json!(null),
        400,
        "invalid_input",
    );
    refused(&c, "GET", "/v1/members", &json!(null), 400, "invalid_input");
}

#[test]
fn a_member_is_fixed_at_the_till_and_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let c = d.client();
    let m = ann(&c);
    let id = m["member_id"].as_str().unwrap();
    enrol(&c, json!({"card": "04B0B0B0", "name": "Bob", "phone": "13800000002"}));
    let path = format!("/v1/members/{id}");
    let fixed = {
        let (s, text) = c
            .request(
                "PATCH",
                &path,
                &json!({"name": "Ann Li", "phone": "138 0000 0009", "birthday": "03-14", "tags": ["vip", "wine"]})
                    .to_string(),
            )
            .unwrap();
        assert_eq!(s, 200, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()
    };
    assert_eq!(fixed["name"], "Ann Li");
    assert_eq!(fixed["phone"], "+8613800000009");
    assert_eq!(fixed["birthday"], "03-14");
    assert_eq!(fixed["tags"], json!(["vip", "wine"]));
    // The old phone is free again; the new one finds her.
    assert_eq!(c.get_json("/v1/members?phone=13800000001", 200)["members"], json!([]));
    assert_eq!(
        c.get_json("/v1/members?phone=13800000009", 200)["members"][0]["member_id"],
        id
    );
    // null clears the birthday.
    let (s, text) = c.request("PATCH", &path, r#"{"birthday": null}"#).unwrap();
    assert_eq!(s, 200, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["birthday"], Value::Null);
    refused(&c, "PATCH", &path, &json!({"phone": "13800000002"}), 409, "phone_taken");
    refused(&c, "PATCH", &path, &json!({"name": "Ann\u{7}"}), 400, "invalid_input");
    refused(&c, "PATCH", &path, &json!({"tags": ["a;b"]}), 400, "invalid_input");
    refused(&c, "PATCH", &path, &json!({"nickname": "x"}), 400, "invalid_input");
    refused(
        &c,
        "PATCH",
        "/v1/members/m-nobody",
        &json!({"name": "X"}),
        404,
        "unknown_member",
    );
    // The same key with the same edit answers again; with another edit it conflicts.
    let k = [("Idempotency-Key", "edit-1")];
    let body = json!({"tags": ["regular"]});
    let (s1, _) = c
        .post(&format!("{path}/status"), r#"{"status": "active"}"#, &[])
        .unwrap();
    assert_eq!(s1, 403, "a cashier does not change a status");
    let first = patch_keyed(&c, &path, &body, &k);
    assert_eq!(patch_keyed(&c, &path, &body, &k), first);
    let (s, text) = c
        .request_with("PATCH", &path, &json!({"tags": ["other"]}).to_string(), &k)
        .unwrap();
    assert_eq!(
        (s, code(&serde_json::from_str(&text).unwrap())),
        (409, "idempotency_conflict")
    );
}

fn patch_keyed(c: &Client, path: &str, body: &Value, headers: &[(&str, &str)]) -> Value {
    let (s, text) = c.request_with("PATCH", path, &body.to_string(), headers).unwrap();
    assert_eq!(s, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn roles_decide_who_may_do_what_and_a_manager_can_approve_at_the_till() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, pos) = with_staff(dir.path(), "cashier_refund_limit_minor = 3000");
    let m = ann(&pos);
    let id = m["member_id"].as_str().unwrap().to_string();
    let r = commit(&pos, "04A1B2C3", 10_000, "r-1");
    let tx = r["tx_id"].as_str().unwrap();
    // The POS (a cashier by default) may not refund over the shop's limit, adjust
    // points, change a status, reset a PIN or unblock a card.
    refused(&pos, "POST", "/v1/refunds", &json!({"tx_id": tx}), 403, "forbidden");
    refused(
        &pos,
        "POST",
        &format!("/v1/members/{id}/points"),
        &json!({"points": 5, "reason": "x"}),
        403,
        "forbidden",
    );
    refused(
        &pos,
        "POST",
        &format!("/v1/members/{id}/status"),
        &json!({"status": "inactive"}),
        403,
        "forbidden",
    );
    refused(
        &pos,
        "POST",
        &format!("/v1/members/{id}/pin"),
        &json!({"new_pin": "9999"}),
        403,
        "forbidden",
    );
    refused(&pos, "GET", "/v1/staff", &json!(null), 403, "forbidden");
    // A refund under the limit is the cashier's.
    let part = pos.post_json("/v1/refunds", &json!({"tx_id": tx, "lines": []}), &[], 403);
    assert_eq!(code(&part), "forbidden", "the whole sale is over the limit");
    // With the manager's approval in the body the refund goes, in the manager's name.
    let wrong = refused(
        &pos,
        "POST",
        "/v1/refunds",
        &json!({"tx_id": tx, "approval": {"staff_id": "mia", "password": "nope-nope"}}),
        401,
        "unauthorized",
    );
    assert!(wrong["error"]["message"].as_str().unwrap().contains("password"));
    let refund = pos.post_json(
        "/v1/refunds",
        &json!({"tx_id": tx, "approval": {"staff_id": "mia", "password": "mia-secret-1"}}),
        &[],
        200,
    );
    assert_eq!(refund["amount"], r["total"]);
    let ledger = pos.get_json(&format!("/v1/members/{id}/points"), 200);
    assert_eq!(ledger["entries"][0]["kind"], "clawback");
    assert_eq!(ledger["entries"][0]["by"], "mia", "the approver acted");
    let receipt = pos.get_json(&format!("/v1/transactions/{tx}"), 200);
    assert_eq!(receipt["by"], "pos");
    assert_eq!(receipt["refunds"][0]["by"], "mia");
    // A manager's session does what a manager may.
    let mia = login(&pos, "mia", "mia-secret-1");
    let entry = mia.post_json(
        &format!("/v1/members/{id}/points"),
        &json!({"points": 40, "reason": "goodwill"}),
        &[],
        200,
    );
    assert_eq!(
        (entry["kind"].as_str(), entry["points"].as_i64(), entry["by"].as_str()),
        (Some("adjust"), Some(40), Some("mia"))
    );
    refused(
        &mia,
        "POST",
        &format!("/v1/members/{id}/points"),
        &json!({"points": -1000, "reason": "too much"}),
        422,
        "insufficient_points",
    );
    refused(
        &mia,
        "POST",
        &format!("/v1/members/{id}/points"),
        &json!({"points": 0, "reason": "x"}),
        400,
        "invalid_input",
    );
    refused(
        &mia,
        "POST",
        &format!("/v1/members/{id}/points"),
        &json!({"points": 5, "reason": ""}),
        400,
        "invalid_input",
    );
    refused(&mia, "GET", "/v1/staff", &json!(null), 403, "forbidden");
    // An owner manages staff; a disabled account opens no session.
    let olu = login(&pos, "olu", "olu-secret-1");
    let added = olu.post_json(
        "/v1/staff",
        &json!({"staff_id": "cai", "name": "Cai", "role": "cashier", "password": "cai-secret-1"}),
        &[],
        201,
    );
    assert_eq!(added["role"], "cashier");
    refused(
        &olu,
        "POST",
        "/v1/staff",
        &json!({"staff_id": "dan", "name": "Dan", "role": "cashier", "password": "short"}),
        400,
        "invalid_input",
    );
    let cai = login(&pos, "cai", "cai-secret-1");
    olu.post_json("/v1/staff/cai/disable", &json!({}), &[], 200);
    let (s, _) = cai.get("/v1/members?q=ann").unwrap();
    assert_eq!(s, 401, "disabling ends the account's sessions");
    let (s, _) = pos
        .with_token(None)
        .post(
            "/v1/sessions",
            r#"{"staff_id": "cai", "password": "cai-secret-1"}"#,
            &[],
        )
        .unwrap();
    assert_eq!(s, 401);
    let list = olu.get_json("/v1/staff", 200);
    assert_eq!(list["staff"].as_array().unwrap().len(), 3);
    assert!(
        !list.to_string().contains("argon2"),
        "no hash leaves the daemon: {list}"
    );
    // Logging out ends the session.
    let (s, _) = mia.request("DELETE", "/v1/sessions/current", "").unwrap();
    assert_eq!(s, 204);
    let (s, _) = mia.get("/v1/members?q=ann").unwrap();
    assert_eq!(s, 401);
}

#[test]
fn five_wrong_passwords_lock_a_staff_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, pos) = with_staff(dir.path(), "");
    let anon = pos.with_token(None);
    for i in 0..4 {
        let (s, text) = anon
            .post(
                "/v1/sessions",
                r#"{"staff_id": "mia", "password": "wrong-password"}"#,
                &[],
            )
            .unwrap();
        assert_eq!(s, 401, "attempt {i}: {text}");
    }
    let (s, text) = anon
        .post(
            "/v1/sessions",
            r#"{"staff_id": "mia", "password": "wrong-password"}"#,
            &[],
        )
        .unwrap();
    assert_eq!(
        (s, code(&serde_json::from_str(&text).unwrap())),
        (423, "staff_locked"),
        "{text}"
    );
    // Locked: the right password too, and an approval in its name.
    let (s, _) = anon
        .post(
            "/v1/sessions",
            r#"{"staff_id": "mia", "password": "mia-secret-1"}"#,
            &[],
        )
        .unwrap();
    assert_eq!(s, 423);
    // Another staff id is not locked.
    login(&pos, "olu", "olu-secret-1");
}

#[test]
fn status_pin_and_unblock() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, pos) = with_staff(dir.path(), "");
    let mia = login(&pos, "mia", "mia-secret-1");
    let m = ann(&pos);
    let id = m["member_id"].as_str().unwrap().to_string();
    commit(&pos, "04A1B2C3", 10_000, "s-1");
    // Inactive: the card is refused at checkout, history stays.
    let off = mia.post_json(
        &format!("/v1/members/{id}/status"),
        &json!({"status": "inactive"}),
        &[],
        200,
    );
    assert_eq!(off["status"], "inactive");
    let before = records(&pos);
    let (s, text) = pos
        .post(
            "/v1/checkout/commit",
            &sale("04A1B2C3", 1000).to_string(),
            &[("Idempotency-Key", "s-2")],
        )
        .unwrap();
    assert_eq!(
        (s, code(&serde_json::from_str(&text).unwrap())),
        (422, "member_inactive"),
        "{text}"
    );
    assert_eq!(records(&pos), before);
    assert_eq!(
        pos.get_json(&format!("/v1/members/{id}/transactions"), 200)["transactions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    mia.post_json(
        &format!("/v1/members/{id}/status"),
        &json!({"status": "active"}),
        &[],
        200,
    );
    refused(
        &mia,
        "POST",
        &format!("/v1/members/{id}/status"),
        &json!({"status": "gone"}),
        400,
        "invalid_input",
    );
    // A PIN change needs the old PIN; a wrong one counts towards the lock.
    refused(
        &pos,
        "POST",
        &format!("/v1/members/{id}/pin"),
        &json!({"new_pin": "12"}),
        400,
        "invalid_input",
    );
    let (s, text) = pos
        .post(
            &format!("/v1/members/{id}/pin"),
            r#"{"old_pin": "0000", "new_pin": "5678"}"#,
            &[],
        )
        .unwrap();
    assert_eq!(
        (s, code(&serde_json::from_str(&text).unwrap())),
        (422, "pin_invalid"),
        "{text}"
    );
    pos.post_json(
        &format!("/v1/members/{id}/pin"),
        &json!({"old_pin": "1234", "new_pin": "5678"}),
        &[],
        200,
    );
    let quote = json!({"card": "04A1B2C3", "lines": [{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": 100}], "redeem_points": 0, "pin": "5678"});
    pos.post_json("/v1/checkout/quote", &quote, &[], 200);
    // Five wrong PINs lock it; a manager's reset lifts the lock.
    for _ in 0..5 {
        let (s, _) = pos
            .post(
                &format!("/v1/members/{id}/pin"),
                r#"{"old_pin": "0000", "new_pin": "1111"}"#,
                &[],
            )
            .unwrap();
        assert!(s == 422, "{s}");
    }
    let (s, text) = pos
        .post(
            &format!("/v1/members/{id}/pin"),
            r#"{"old_pin": "5678", "new_pin": "1111"}"#,
            &[],
        )
        .unwrap();
    assert_eq!(code(&serde_json::from_str(&text).unwrap()), "pin_locked", "{s} {text}");
    mia.post_json(&format!("/v1/members/{id}/pin"), &json!({"new_pin": "2468"}), &[], 200);
    let quote = json!({"card": "04A1B2C3", "lines": [{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": 100}], "pin": "2468"});
    pos.post_json("/v1/checkout/quote", &quote, &[], 200);
    // Unblock: a manager's; refused while a replacement card is active.
    pos.post_json("/v1/cards/04A1B2C3/block", &json!({}), &[], 200);
    refused(&pos, "POST", "/v1/cards/04A1B2C3/unblock", &json!({}), 403, "forbidden");
    let back = mia.post_json("/v1/cards/04A1B2C3/unblock", &json!({}), &[], 200);
    assert_eq!(back["cards"][0]["status"], "active");
    pos.post_json("/v1/cards/04A1B2C3/replace", &json!({"new_card": "04A1B2C4"}), &[], 200);
    refused(
        &mia,
        "POST",
        "/v1/cards/04A1B2C3/unblock",
        &json!({}),
        400,
        "invalid_input",
    );
    refused(
        &mia,
        "POST",
        "/v1/cards/0FFFFFFF/unblock",
        &json!({}),
        404,
        "unknown_card",
    );
}

#[test]
fn history_and_the_ledger_page_newest_first_and_add_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        rules_path(dir.path()),
        std::fs::read_to_string(support::daemon::repo("config/rules.toml")).unwrap()
            + "\n[[activities]]\nid = \"checkin\"\npoints = 10\nmax_per_day = 1\n\n[[activities]]\nid = \"profile\"\npoints = 50\nmax_total = 1\n",
    )
    .unwrap();
    let (_d, pos) = with_staff(dir.path(), "");
    let mia = login(&pos, "mia", "mia-secret-1");
    let m = ann(&pos);
    let id = m["member_id"].as_str().unwrap().to_string();
    let mut txs = Vec::new();
    for i in 0..25 {
        txs.push(
            commit(&pos, "04A1B2C3", 2_000 + i * 100, &format!("h-{i}"))["tx_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    pos.post_json("/v1/refunds", &json!({"tx_id": txs[3]}), &[], 200);
    mia.post_json(
        &format!("/v1/members/{id}/points"),
        &json!({"points": 7, "reason": "birthday cake"}),
        &[],
        200,
    );
    let a = pos.post_json(
        &format!("/v1/members/{id}/activities"),
        &json!({"activity": "checkin"}),
        &[],
        200,
    );
    assert_eq!(
        (a["kind"].as_str(), a["points"].as_i64(), a["reason"].as_str()),
        (Some("activity"), Some(10), Some("checkin"))
    );
    refused(
        &pos,
        "POST",
        &format!("/v1/members/{id}/activities"),
        &json!({"activity": "checkin"}),
        422,
        "activity_limit",
    );
    pos.post_json(
        &format!("/v1/members/{id}/activities"),
        &json!({"activity": "profile"}),
        &[],
        200,
    );
    refused(
        &pos,
        "POST",
        &format!("/v1/members/{id}/activities"),
        &json!({"activity": "profile"}),
        422,
        "activity_limit",
    );
    refused(
        &pos,
        "POST",
        &format!("/v1/members/{id}/activities"),
        &json!({"activity": "dance"}),
        400,
        "invalid_input",
    );
    // Transactions: newest first, pages of 10, the refunded one says so.
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let page = pos.get_json(&format!("/v1/members/{id}/transactions?limit=10{q}"), 200);
        all.extend(page["transactions"].as_array().unwrap().clone());
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let got: Vec<String> = all.iter().map(|t| t["tx_id"].as_str().unwrap().to_string()).collect();
    let mut want = txs.clone();
    want.reverse();
    assert_eq!(got, want);
    let refunded = all.iter().find(|t| t["tx_id"] == txs[3].as_str()).unwrap();
    assert_eq!(refunded["refunded"], refunded["total"]);
    assert_eq!(all[0]["terminal_id"], "T1");
    // The ledger adds up to the balance, and its newest entry shows it.
    let member = pos.get_json(&format!("/v1/members/{id}"), 200);
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let page = pos.get_json(&format!("/v1/members/{id}/points?limit=7{q}"), 200);
        entries.extend(page["entries"].as_array().unwrap().clone());
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let sum: i64 = entries.iter().map(|e| e["points"].as_i64().unwrap()).sum();
    assert_eq!(sum, member["balance"].as_i64().unwrap());
    assert_eq!(entries[0]["balance_after"], member["balance"]);
    let kinds: std::collections::BTreeSet<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["activity", "adjust", "clawback", "earn"].into_iter().collect());
    for w in entries.windows(2) {
        assert_eq!(
            w[0]["balance_after"].as_i64().unwrap() - w[0]["points"].as_i64().unwrap(),
            w[1]["balance_after"].as_i64().unwrap(),
            "each entry starts where the one before ended"
        );
    }
    // The reprint.
    let reprint = pos.get_json(&format!("/v1/transactions/{}", txs[3]), 200);
    assert_eq!(reprint["tx_id"], txs[3].as_str());
    assert_eq!(reprint["refunds"].as_array().unwrap().len(), 1);
    assert_eq!(reprint["refunds"][0]["amount"], reprint["total"]);
    refused(
        &pos,
        "GET",
        "/v1/transactions/T1-00000000-0000000099",
        &json!(null),
        404,
        "unknown_transaction",
    );
    refused(
        &pos,
        "GET",
        "/v1/members/m-nobody/points",
        &json!(null),
        404,
        "unknown_member",
    );
    refused(
        &pos,
        "GET",
        &format!("/v1/members/{id}/points?after=x"),
        &json!(null),
        400,
        "invalid_input",
    );
    // Coupons of a member.
    pos.post_json(
        "/v1/coupons",
        &json!({"card": "04A1B2C3", "type": "welcome5"}),
        &[],
        200,
    );
    let coupons = pos.get_json(&format!("/v1/members/{id}/coupons"), 200);
    assert_eq!(coupons["coupons"][0]["state"], "unused");
    assert_eq!(coupons["coupons"][0]["type"], "welcome5");
}
