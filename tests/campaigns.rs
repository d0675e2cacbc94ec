//! Campaigns end to end against the real binary: coupons triggers and tier gifts issue
//! (once, in the receipt, in the ledger, through replays and restarts), coupons bought
//! with points, group buys on a standalone terminal and across a chain (the hub forms
//! groups; joins past the size made offline are told `group_full`), the daily trigger
//! pass (on a standalone terminal, and on the hub for a chain: one coupon, not one per shop).

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::daemon::{code, Client, Daemon};
use support::eventually;
use support::hub::{secret_file, Hub};
use support::shop::{last_sync, Shop};

const RULES: &str = r#"
version = 7
currency = "CNY"
timezone = "Asia/Shanghai"
excluded_categories = ["tobacco"]

[earn]
unit_minor = 100
points_per_unit = 1

[[tiers]]
name = "standard"
qualify = 0
discount_bp = 0
multiplier_bp = 10000

[[tiers]]
name = "silver"
qualify = 20000
discount_bp = 300
multiplier_bp = 10000
gift_points = 100
gift_coupon = "silver5"

[tier_policy]
metric = "spend"
window_days = 365
downgrade = "never"

[redeem]
points_per_unit = 100
unit_minor = 100
min_points = 100
max_share_bp = 5000
pin_required_from = 0
offline_cap_points = 2000

[expiry]
months = 0

[[coupon_types]]
id = "welcome5"
off_minor = 500
min_minor = 3000
valid_days = 30

[[coupon_types]]
id = "silver5"
off_minor = 500
min_minor = 0
valid_days = 30

[[coupon_types]]
id = "buy10"
off_minor = 1000
min_minor = 0
valid_days = 30
exchange_points = 300

[[triggers]]
id = "welcome"
on = "enrol"
coupon = "welcome5"

[[triggers]]
id = "second-visit"
on = "visit"
nth = 2
coupon = "welcome5"

[[triggers]]
id = "silver-up"
on = "tier_up"
tier = "silver"
coupon = "welcome5"

[[triggers]]
id = "bday"
on = "birthday"
coupon = "welcome5"

[[group_buys]]
id = "hotpot2"
sku = "hotpot-set"
group_price_minor = 9900
size = 2
window_hours = 24
"#;

/// The local date in Shanghai now, as MM-DD (a birthday that is today).
fn today_mm_dd() -> String {
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    now.format("%m-%d").to_string()
}

fn standalone(dir: &Path) -> Daemon {
    std::fs::write(dir.join("rules.toml"), RULES).unwrap();
    Daemon::start_with(dir, &["--upstream", ""])
}

fn enrol(c: &Client, card: &str, phone: &str, birthday: Option<&str>) -> String {
    let mut body = json!({"card": card, "name": "Ann", "phone": phone});
    if let Some(b) = birthday {
        body["birthday"] = json!(b);
    }
    c.post_json("/v1/members", &body, &[], 201)["member_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn checkout(c: &Client, card: &str, key: &str, lines: Value) -> Value {
    let body = json!({"card": card, "lines": lines});
    c.post_json("/v1/checkout/commit", &body, &[("Idempotency-Key", key)], 200)
}

fn line(sku: &str, qty: i64, unit_price: i64) -> Value {
    json!({"sku": sku, "category": "food", "qty": qty, "unit_price": unit_price})
}

fn coupons(c: &Client, id: &str) -> Vec<Value> {
    c.get_json(&format!("/v1/members/{id}/coupons"), 200)["coupons"]
        .as_array()
        .unwrap()
        .clone()
}

fn issuers(coupons: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = coupons
        .iter()
        .map(|c| c["issued_by"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn ledger(c: &Client, id: &str) -> Vec<Value> {
    c.get_json(&format!("/v1/members/{id}/points?limit=100"), 200)["entries"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn triggers_and_tier_gifts_issue_once_and_show_in_the_receipt_the_ledger_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = standalone(dir.path());
    let c = d.client();
    let id = enrol(&c, "0C100001", "13900000101", None);
    // Enrolment: the welcome trigger.
    assert_eq!(issuers(&coupons(&c, &id)), vec!["trigger:welcome"]);

    // First visit: nothing due.
    let r1 = checkout(&c, "0C100001", "v1", json!([line("rice", 1, 5000)]));
    assert_eq!(r1["coupons_issued"], json!([]), "{r1}");
    // Second visit lifts the member to silver (5000 + 16000 >= 20000): the visit
    // trigger, the tier_up trigger and the tier's gift coupon, and its 100 points.
    let r2 = checkout(&c, "0C100001", "v2", json!([line("wine", 1, 16000)]));
    let issued: Vec<&str> = r2["coupons_issued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(issued, vec!["silver5", "welcome5", "welcome5"], "{r2}");
    assert_eq!(r2["gifts"], json!([{"tier": "silver", "points": 100}]), "{r2}");
    assert_eq!(r2["tier"], "silver");
    let earned = r1["points_earned"].as_i64().unwrap() + r2["points_earned"].as_i64().unwrap();
    assert_eq!(
        r2["balance"].as_i64(),
        Some(earned + 100),
        "gift points are not earned points"
    );
    let codes: Vec<&str> = r2["coupons_issued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(codes.iter().all(|c| c.len() == 10), "{codes:?}");

    // A retry answers the same receipt, the same coupons; nothing is issued twice.
    let again = checkout(&c, "0C100001", "v2", json!([line("wine", 1, 16000)]));
    assert_eq!(again["replayed"], true);
    assert_eq!(again["coupons_issued"], r2["coupons_issued"]);
    let held = coupons(&c, &id);
    assert_eq!(
        issuers(&held),
        vec![
            "gift:silver",
            "trigger:second-visit",
            "trigger:silver-up",
            "trigger:welcome"
        ]
    );
    let kinds: Vec<String> = ledger(&c, &id)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["gift", "earn", "earn"], "newest first");
    let sum: i64 = ledger(&c, &id).iter().map(|e| e["points"].as_i64().unwrap()).sum();
    assert_eq!(Some(sum), r2["balance"].as_i64());

    // Later visits at silver: no gift, no tier_up, no second-visit again.
    let r3 = checkout(&c, "0C100001", "v3", json!([line("rice", 1, 5000)]));
    assert_eq!(r3["coupons_issued"], json!([]), "{r3}");
    assert!(r3.get("gifts").is_none(), "{r3}");

    // kill -9 and back: the same coupons and ledger, replayed from the journal.
    drop(d);
    let d = Daemon::start_with(dir.path(), &["--upstream", ""]);
    let c = d.client();
    assert_eq!(coupons(&c, &id), held);
    let again = checkout(&c, "0C100001", "v2", json!([line("wine", 1, 16000)]));
    assert_eq!(
        again["coupons_issued"], r2["coupons_issued"],
        "replayed after a restart"
    );
    // A quote says what a sale would issue, without codes.
    let other = enrol(&c, "0C100002", "13900000102", None);
    let q = c.post_json(
        "/v1/checkout/quote",
        &json!({"card": "0C100002", "lines": [line("wine", 1, 30000)]}),
        &[],
        200,
    );
    let types: Vec<(&str, &str)> = q["coupons_issued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["code"].as_str().unwrap()))
        .collect();
    assert_eq!(types, vec![("silver5", ""), ("welcome5", "")], "{q}");
    assert_eq!(
        issuers(&coupons(&c, &other)),
        vec!["trigger:welcome"],
        "a quote issues nothing"
    );
}

#[test]
fn a_coupon_bought_with_points_costs_its_points_and_is_then_used_like_any() {
    let dir = tempfile::tempdir().unwrap();
    let d = standalone(dir.path());
    let c = d.client();
    let id = enrol(&c, "0C200001", "13900000201", None);
    let path = format!("/v1/members/{id}/coupons");
    // Too few points, a type that cannot be bought, a type that does not exist.
    let e = c.post_json(&path, &json!({"type": "buy10"}), &[], 422);
    assert_eq!(code(&e), "insufficient_points", "{e}");
    let e = c.post_json(&path, &json!({"type": "welcome5"}), &[], 422);
    assert_eq!(code(&e), "coupon_not_exchangeable", "{e}");
    let e = c.post_json(&path, &json!({"type": "nope"}), &[], 422);
    assert_eq!(code(&e), "coupon_invalid", "{e}");
    let e = c.post_json("/v1/members/m-nobody/coupons", &json!({"type": "buy10"}), &[], 404);
    assert_eq!(code(&e), "unknown_member", "{e}");

    let r = checkout(&c, "0C200001", "e1", json!([line("rice", 1, 50000)]));
    let balance = r["balance"].as_i64().unwrap();
    assert!(balance >= 300, "{r}");
    let k = [("Idempotency-Key", "buy-1")];
    let bought = c.post_json(&path, &json!({"type": "buy10"}), &k, 200);
    assert_eq!(
        (bought["type"].as_str(), bought["issued_by"].as_str()),
        (Some("buy10"), Some("exchange"))
    );
    assert_eq!(bought["state"], "unused");
    // The same key buys nothing more.
    assert_eq!(
        c.post_json(&path, &json!({"type": "buy10"}), &k, 200)["code"],
        bought["code"]
    );
    let entries = ledger(&c, &id);
    assert_eq!(
        (
            entries[0]["kind"].as_str(),
            entries[0]["points"].as_i64(),
            entries[0]["balance_after"].as_i64()
        ),
        (Some("redeem"), Some(-300), Some(balance - 300))
    );
    // It pays like any coupon.
    let body = json!({"card": "0C200001", "lines": [line("rice", 1, 2000)], "coupon": bought["code"]});
    let paid = c.post_json("/v1/checkout/commit", &body, &[("Idempotency-Key", "use-1")], 200);
    // (50000 made the member silver: 3 % off first, then the coupon's 1000.)
    let off: Vec<(&str, i64)> = paid["discounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["amount"].as_i64().unwrap()))
        .collect();
    assert_eq!(off, vec![("tier", 60), ("coupon", 1000)], "{paid}");
    assert_eq!(paid["total"], 2000 - 60 - 1000, "{paid}");
    let after = coupons(&c, &id);
    let used = after.iter().find(|x| x["code"] == bought["code"]).unwrap();
    assert_eq!(used["state"], "used");
}

#[test]
fn a_group_buy_forms_at_its_size_gives_one_unit_at_the_group_price_once_and_refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let d = standalone(dir.path());
    let c = d.client();
    for (card, phone) in [
        ("0C300001", "13900000301"),
        ("0C300002", "13900000302"),
        ("0C300003", "13900000303"),
    ] {
        enrol(&c, card, phone, None);
    }
    let opened = c.post_json("/v1/group-buys/hotpot2/join", &json!({"card": "0C300001"}), &[], 200);
    assert_eq!(
        (
            opened["state"].as_str(),
            opened["joined"].as_u64(),
            opened["size"].as_u64()
        ),
        (Some("open"), Some(1), Some(2))
    );
    let gid = opened["group_id"].as_str().unwrap().to_string();
    // Before the group forms, the set costs its full price.
    let early = checkout(&c, "0C300001", "early", json!([line("hotpot-set", 1, 12800)]));
    assert_eq!(early["total"], 12800, "{early}");

    let e = c.post_json(
        "/v1/group-buys/hotpot2/join",
        &json!({"card": "0C300001", "group_id": gid}),
        &[],
        422,
    );
    assert_eq!(code(&e), "already_joined", "{e}");
    let formed = c.post_json(
        "/v1/group-buys/hotpot2/join",
        &json!({"card": "0C300002", "group_id": gid}),
        &[],
        200,
    );
    assert_eq!(
        (formed["state"].as_str(), formed["joined"].as_u64()),
        (Some("formed"), Some(2))
    );
    let e = c.post_json(
        "/v1/group-buys/hotpot2/join",
        &json!({"card": "0C300003", "group_id": gid}),
        &[],
        422,
    );
    assert_eq!(code(&e), "group_full", "{e}");
    let e = c.post_json("/v1/group-buys/nodeal/join", &json!({"card": "0C300003"}), &[], 422);
    assert_eq!(code(&e), "deal_inactive", "{e}");
    let e = c.post_json(
        "/v1/group-buys/hotpot2/join",
        &json!({"card": "0C300003", "group_id": "G-nope"}),
        &[],
        422,
    );
    assert_eq!(code(&e), "group_closed", "{e}");

    // One unit at 9900 (2900 off, outside the tier discount and earning), the other at 12800.
    let r = checkout(
        &c,
        "0C300002",
        "g1",
        json!([line("hotpot-set", 2, 12800), line("rice", 1, 1000)]),
    );
    assert_eq!(
        r["discounts"],
        json!([{"kind": "group_buy", "id": "hotpot2", "amount": 2900}]),
        "{r}"
    );
    assert_eq!(r["total"], 2 * 12800 + 1000 - 2900);
    assert_eq!(r["points_earned"], (12800 + 1000) / 100, "the group unit earns nothing");
    // Once per member per group.
    let r = checkout(&c, "0C300002", "g2", json!([line("hotpot-set", 1, 12800)]));
    assert_eq!(r["discounts"], json!([]), "{r}");
    let groups = c.get_json("/v1/group-buys/hotpot2", 200);
    assert_eq!(groups["deal"], "hotpot2");
    assert_eq!(groups["groups"][0]["group_id"], gid);
    assert_eq!(
        c.get_json(&format!("/v1/group-buys/groups/{gid}"), 200)["state"],
        "formed"
    );
    let (s, _) = c.get("/v1/group-buys/groups/G-nope").unwrap();
    assert_eq!(s, 404);
    // And after a restart, the same.
    drop(d);
    let d = Daemon::start_with(dir.path(), &["--upstream", ""]);
    let c = d.client();
    assert_eq!(
        c.get_json(&format!("/v1/group-buys/groups/{gid}"), 200)["state"],
        "formed"
    );
    let r = checkout(&c, "0C300001", "g3", json!([line("hotpot-set", 1, 12800)]));
    assert_eq!(r["total"], 9900, "the first member's unit is still there: {r}");
}

#[test]
fn the_daily_pass_gives_a_birthday_coupon_once_on_a_standalone_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ["--upstream", "", "--clock", "trusted"];
    std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
    // A standalone shop's config (no hub), for the daemon and the offline commands alike.
    let shipped = std::fs::read_to_string(support::daemon::repo("config/loyaltyd.toml")).unwrap();
    let cfg = dir.path().join("standalone.toml");
    std::fs::write(
        &cfg,
        shipped.replace("upstream = \"http://127.0.0.1:7440\"", "upstream = \"\""),
    )
    .unwrap();
    let start = || Daemon::start_config(dir.path(), &cfg, &serve, &[]);
    let d = start();
    let id = enrol(&d.client(), "0C400001", "13900000401", Some(&today_mm_dd()));
    drop(d);
    // The pass runs at start (and hourly): the birthday coupon comes once.
    let d = start();
    eventually(30, "the birthday coupon", || {
        (issuers(&coupons(&d.client(), &id)) == vec!["trigger:bday", "trigger:welcome"]).then_some(())
    });
    drop(d);
    // Offline, `triggers run` runs the pass now (`--at` is the operator's word on time).
    let now = chrono::Utc::now().to_rfc3339();
    let cli = |args: &[&str]| {
        let out = support::loyaltyd_command()
            .args(support::daemon::global_args_with(dir.path(), &cfg))
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let issued = |v: Value| v["coupons_issued"].as_u64().unwrap();
    assert_eq!(issued(cli(&["triggers", "run", "--at", &now])), 0, "once a year");
    let bday = today_mm_dd();
    let other = [
        "member",
        "add",
        "--card",
        "0C400002",
        "--name",
        "Bo",
        "--phone",
        "13900000402",
        "--birthday",
        &bday,
    ];
    let other_id = cli(&other)["member_id"].as_str().unwrap().to_string();
    assert_eq!(
        issued(cli(&["triggers", "run", "--at", &now])),
        1,
        "a member who arrived since"
    );
    assert_eq!(issued(cli(&["triggers", "run", "--at", &now])), 0);
    let d = start();
    assert_eq!(coupons(&d.client(), &id).len(), 2);
    assert_eq!(
        issuers(&coupons(&d.client(), &other_id)),
        vec!["trigger:bday", "trigger:welcome"]
    );
}

#[test]
fn on_a_chain_the_hub_forms_groups_and_runs_the_daily_pass_once_for_every_shop() {
    let root = tempfile::tempdir().unwrap();
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let hub_rules = root.path().join("hub-rules.toml");
    std::fs::write(&hub_rules, RULES).unwrap();
    let hub = Hub::start_rules(root.path(), &[("T1", s1.as_path()), ("T2", s2.as_path())], &hub_rules);
    for t in ["T1", "T2"] {
        let d = root.path().join(t);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("rules.toml"), RULES).unwrap();
    }
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let t2 = Shop::open(root.path(), "T2", &hub, &s2);
    let cards = ["0C500001", "0C500002", "0C500003"];
    for (i, card) in cards.iter().enumerate() {
        enrol(&t1.c(), card, &format!("1390000050{i}"), None);
    }
    let bday = enrol(&t1.c(), "0C500009", "13900000509", Some(&today_mm_dd()));
    let opened = t1
        .c()
        .post_json("/v1/group-buys/hotpot2/join", &json!({"card": cards[0]}), &[], 200);
    let gid = opened["group_id"].as_str().unwrap().to_string();
    // T2 learns the group (and the members) from the hub.
    eventually(30, "T2 knows the group", || {
        let (s, _) = t2.c().get(&format!("/v1/group-buys/groups/{gid}")).unwrap();
        (s == 200 && t2.balance(cards[2]).is_some()).then_some(())
    });

    // Both shops offline; each lets one more member join the group of size 2.
    t1.proxy.down(true);
    t2.proxy.down(true);
    let j1 = t1.c().post_json(
        "/v1/group-buys/hotpot2/join",
        &json!({"card": cards[1], "group_id": gid}),
        &[],
        200,
    );
    let j2 = t2.c().post_json(
        "/v1/group-buys/hotpot2/join",
        &json!({"card": cards[2], "group_id": gid}),
        &[],
        200,
    );
    // Meanwhile each till says: open, full as far as it knows; the hub decides.
    for j in [&j1, &j2] {
        assert_eq!(
            (j["state"].as_str(), j["joined"].as_u64()),
            (Some("open"), Some(2)),
            "{j}"
        );
    }
    // T1's join reaches the hub first: the group forms with it; T2's is refused.
    let mark = last_sync(&t1);
    t1.proxy.down(false);
    t1.wait_synced(&mark);
    let mark = last_sync(&t2);
    t2.proxy.down(false);
    t2.wait_synced(&mark);
    let at_hub = hub.client().get_json(&format!("/v1/hub/group-buys/groups/{gid}"), 200);
    assert_eq!(
        (at_hub["state"].as_str(), at_hub["joined"].as_u64()),
        (Some("formed"), Some(2)),
        "{at_hub}"
    );
    for shop in [&t1, &t2] {
        eventually(30, &format!("{} sees the group formed", shop.id), || {
            let g = shop.c().get_json(&format!("/v1/group-buys/groups/{gid}"), 200);
            (g["state"] == "formed" && g["joined"] == 2).then_some(())
        });
    }
    let e = t2.c().post_json(
        "/v1/group-buys/hotpot2/join",
        &json!({"card": cards[2], "group_id": gid}),
        &[],
        422,
    );
    assert_eq!(code(&e), "group_full", "the refused member is told: {e}");
    // The member who got in uses the unit at the other shop; the refused one pays in full.
    let r = checkout(&t2.c(), cards[1], "u1", json!([line("hotpot-set", 1, 12800)]));
    assert_eq!(r["total"], 9900, "{r}");
    let r = checkout(&t2.c(), cards[2], "u2", json!([line("hotpot-set", 1, 12800)]));
    assert_eq!(r["total"], 12800, "{r}");

    // The daily pass runs on the hub: one birthday coupon, which reaches both shops.
    let run = hub.client().post_json("/v1/hub/triggers/run", &json!({}), &[], 200);
    assert!(run["coupons_issued"].as_u64().is_some(), "{run}");
    for shop in [&t1, &t2] {
        eventually(30, &format!("{} holds the birthday coupon", shop.id), || {
            let held = issuers(&coupons(&shop.c(), &bday));
            (held == vec!["trigger:bday", "trigger:welcome"]).then_some(())
        });
    }
    let again = hub.client().post_json("/v1/hub/triggers/run", &json!({}), &[], 200);
    assert_eq!(again["coupons_issued"], 0, "once a year");
}
