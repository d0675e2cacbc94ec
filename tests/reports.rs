//! Reports end to end (interface.md 0.2 "Reports"): a terminal given a known sequence
//! of enrolments, checkouts, a redemption, a refund and an expiry on chosen dates
//! (offline, `--at`), then the summary and retention checked figure by figure against
//! values worked out by hand, as JSON and as CSV, before and after a rebuild.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use chrono::Datelike;
use serde_json::{json, Value};
use support::daemon::{code, global_args, rules_path, Client, Daemon};

/// Runs the binary offline on the test's data dir with `stdin`.
fn offline(dir: &Path, args: &[&str], stdin: &str) -> Value {
    offline_with(dir, global_args(dir), args, stdin)
}

/// `offline` with the config `dir/standalone.toml` if it exists (a shop without a hub).
fn offline_with(_dir: &Path, global: Vec<String>, args: &[&str], stdin: &str) -> Value {
    let mut cmd = support::loyaltyd_command();
    cmd.args(global).arg("--json").args(args);
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
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn enrol(dir: &Path, card: &str, phone: &str, at: &str) {
    offline(
        dir,
        &[
            "member", "add", "--card", card, "--name", "M", "--phone", phone, "--at", at,
        ],
        "",
    );
}

/// A grocery sale of one line of `price` (below every promotion, standard tier: one
/// point per 1.00).
fn sale(dir: &Path, card: &str, price: i64, at: &str, extra: &[&str]) -> Value {
    let line = format!("rice,grocery,1,{price}");
    let mut args = vec!["checkout", "--card", card, "--at", at, "--line", &line];
    args.extend_from_slice(extra);
    offline(dir, &args, "")
}

fn set_expiry_months(dir: &Path, months: u32) {
    let p = rules_path(dir);
    let text = std::fs::read_to_string(&p).unwrap();
    let start = text.find("months = ").unwrap();
    let end = start + text[start..].find(' ').unwrap() + 3;
    let end = end + text[end..].find(|c: char| !c.is_ascii_digit()).unwrap();
    let mut out = text.clone();
    out.replace_range(start..end, &format!("months = {months}"));
    std::fs::write(&p, out).unwrap();
}

/// The session of manager `mia`.
fn manager(c: &Client) -> Client {
    let v = c.with_token(None).post_json(
        "/v1/sessions",
        &json!({"staff_id": "mia", "password": "mia-secret-1"}),
        &[],
        200,
    );
    c.with_token(Some(v["token"].as_str().unwrap()))
}

/// Parses a CSV of plain fields (what the reports write) into rows.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The CSV summary must say what the JSON says, field by field.
fn summary_csv_matches(m: &Client, query: &str, json: &Value) {
    let (s, text) = m.get(&format!("/v1/reports/summary?{query}&format=csv")).unwrap();
    assert_eq!(s, 200, "{text}");
    let rows = csv_rows(&text);
    assert_eq!(rows.len(), 2, "a header and one row: {text}");
    let mut seen = 0;
    for (name, value) in rows[0].iter().zip(&rows[1]) {
        let want = match name.strip_prefix("tier_mix.") {
            Some(tier) => json["tier_mix"][tier].clone(),
            None => json[name.as_str()].clone(),
        };
        let got = match value.parse::<i64>() {
            Ok(n) if name != "from" && name != "to" => json!(n),
            _ => json!(value),
        };
        assert_eq!(got, want, "csv column {name}: {text}");
        seen += 1;
    }
    let json_fields = json.as_object().unwrap().len() - 1 + json["tier_mix"].as_object().unwrap().len();
    assert_eq!(seen, json_fields, "every JSON figure is a CSV column: {text}");
}

/// Months from `(y, m)` to the current local month (Asia/Shanghai, the ruleset's).
fn months_to_now(y: i32, m: u32) -> usize {
    let now = chrono::Utc::now() + chrono::Duration::hours(8);
    ((now.year() - y) * 12 + now.month() as i32 - m as i32) as usize
}

fn retention_want() -> Value {
    let series = |y: i32, m: u32, ones: &[usize]| -> Value {
        let n = months_to_now(y, m) + 1;
        let v: Vec<i64> = (0..n).map(|k| i64::from(ones.contains(&k))).collect();
        json!(v)
    };
    json!({"cohorts": [
        {"month": "2024-03", "members": 1, "active": series(2024, 3, &[0, 13])},
        {"month": "2025-01", "members": 2, "active": series(2025, 1, &[0, 1, 2])},
        {"month": "2025-05", "members": 1, "active": series(2025, 5, &[])},
    ]})
}

#[test]
fn the_summary_and_retention_say_what_the_sales_did() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
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
    // A: enrolled 2024-03, earns 50 that expire at the end of 2025-03.
    set_expiry_months(dir, 12);
    enrol(dir, "04AA0001", "13800000101", "2024-03-10T09:00:00+08:00");
    sale(dir, "04AA0001", 5000, "2024-03-10T10:00:00+08:00", &[]);
    // From here lots never expire (so that nothing expires when the daemon starts).
    set_expiry_months(dir, 0);
    enrol(dir, "04BB0002", "13800000102", "2025-01-05T09:00:00+08:00");
    enrol(dir, "04CC0003", "13800000103", "2025-01-05T10:00:00+08:00");
    sale(dir, "04BB0002", 4000, "2025-01-05T11:00:00+08:00", &[]);
    sale(dir, "04BB0002", 3000, "2025-01-20T11:00:00+08:00", &[]);
    let c1 = sale(dir, "04CC0003", 6000, "2025-02-03T11:00:00+08:00", &[]);
    offline(
        dir,
        &[
            "refund",
            "--tx",
            c1["tx_id"].as_str().unwrap(),
            "--at",
            "2025-02-04T11:00:00+08:00",
        ],
        "",
    );
    sale(dir, "04BB0002", 5000, "2025-03-01T11:00:00+08:00", &[]);
    // 100 points pay 1.00: 59.00 paid, 59 points earned.
    let b4 = sale(dir, "04BB0002", 6000, "2025-03-15T11:00:00+08:00", &["--redeem", "100"]);
    assert_eq!(
        (b4["total"].as_i64(), b4["points_earned"].as_i64()),
        (Some(5900), Some(59)),
        "{b4}"
    );
    // A's 2024 lot expires before this sale.
    sale(dir, "04AA0001", 2000, "2025-04-10T11:00:00+08:00", &[]);
    enrol(dir, "04DD0004", "13800000104", "2025-05-01T09:00:00+08:00");

    let d = Daemon::start(dir);
    let pos = d.client();
    let m = manager(&pos);
    let window = "from=2025-01-01&to=2025-04-30";
    let want = json!({
        "from": "2025-01-01", "to": "2025-04-30",
        // 40 + 30 + 60 + 50 + 59 + 20 paid, 60 refunded.
        "sales": 19900, "member_sales": 19900,
        "transactions": 6, "member_transactions": 6,
        "new_members": 2,
        // A, B, C bought; B four times.
        "active_members": 3, "repeat_members": 1, "repurchase_rate_bp": 3333,
        "points_issued": 40 + 30 + 60 + 50 + 59 + 20,
        "points_clawed_back": 60, "points_redeemed": 100, "points_expired": 50,
        // A 20, B 40 + 30 + 50 - 100 + 59 = 79, C 0, D 0; 100 points = 1.00.
        "points_outstanding": 99, "liability_minor": 99,
        "tier_mix": {"standard": 4},
    });
    let got = m.get_json(&format!("/v1/reports/summary?{window}"), 200);
    assert_eq!(got, want);
    summary_csv_matches(&m, window, &got);

    // One day: B's first sale and two enrolments.
    let day = m.get_json("/v1/reports/summary?from=2025-01-05&to=2025-01-05", 200);
    let figures = |v: &Value| {
        [
            "sales",
            "transactions",
            "new_members",
            "active_members",
            "repeat_members",
            "repurchase_rate_bp",
            "points_issued",
        ]
        .map(|f| v[f].as_i64().unwrap())
    };
    assert_eq!(figures(&day), [4000, 1, 2, 1, 0, 0, 40], "{day}");
    // The refund's day: the refund, and no sale.
    let refund_day = m.get_json("/v1/reports/summary?from=2025-02-04&to=2025-02-04", 200);
    assert_eq!(
        (
            refund_day["sales"].as_i64(),
            refund_day["points_clawed_back"].as_i64(),
            refund_day["transactions"].as_i64()
        ),
        (Some(-6000), Some(60), Some(0)),
        "{refund_day}"
    );

    let retention = "/v1/reports/retention?from=2024-01&to=2025-12";
    assert_eq!(m.get_json(retention, 200), retention_want());
    let (s, text) = m.get(&format!("{retention}&format=csv")).unwrap();
    assert_eq!(s, 200, "{text}");
    let rows = csv_rows(&text);
    assert_eq!(rows[0], ["month", "members", "k", "active"], "{text}");
    let mut from_csv: Vec<(String, i64, Vec<i64>)> = vec![];
    for r in &rows[1..] {
        let (members, k, a) = (
            r[1].parse().unwrap(),
            r[2].parse::<usize>().unwrap(),
            r[3].parse().unwrap(),
        );
        if from_csv.last().is_none_or(|c| c.0 != r[0]) {
            from_csv.push((r[0].clone(), members, vec![]));
        }
        let c = from_csv.last_mut().unwrap();
        assert_eq!(c.2.len(), k, "{text}");
        c.2.push(a);
    }
    let as_json: Vec<Value> = from_csv
        .into_iter()
        .map(|(month, members, active)| json!({"month": month, "members": members, "active": active}))
        .collect();
    assert_eq!(json!({ "cohorts": as_json }), retention_want());

    // Who may ask, and what is refused: 403 for a cashier, 400 for bad windows.
    let (s, text) = pos.get(&format!("/v1/reports/summary?{window}")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((s, code(&v)), (403, "forbidden"), "{text}");
    for bad in [
        "/v1/reports/summary?from=2025-04-30&to=2025-01-01",
        "/v1/reports/summary?from=2025-13-01&to=2025-12-31",
        "/v1/reports/summary?from=2025-01-01",
        "/v1/reports/summary?from=2010-01-01&to=2025-01-01",
        "/v1/reports/summary?from=2025-01-01&to=2025-01-02&format=xml",
        "/v1/reports/summary?from=2025-01-01&to=2025-01-02&colour=red",
        "/v1/reports/retention?from=2025-1&to=2025-02",
        "/v1/reports/retention?from=2025-03&to=2025-02",
        "/v1/reports/retention?from=2000-01&to=2025-02",
    ] {
        let (s, text) = m.get(bad).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{bad}: {e}: {text}"));
        assert_eq!((s, code(&v)), (400, "invalid_input"), "{bad}: {text}");
        assert!(
            !v["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{bad}: {text}"
        );
    }
    let mut d = d;
    d.signal(15);
    assert!(d.wait_exit(std::time::Duration::from_secs(30)).success());

    // A rebuild from the journal gives the same reports.
    offline(dir, &["rebuild"], "");
    let d = Daemon::start(dir);
    let m = manager(&d.client());
    assert_eq!(m.get_json(&format!("/v1/reports/summary?{window}"), 200), want);
    assert_eq!(m.get_json(retention, 200), retention_want());
}

/// What the campaigns report adds to the ruleset: a bonus campaign all month, a coupon
/// a member's first visit earns, a group-buy deal of two.
const CAMPAIGN_RULES: &str = r#"
[[campaigns]]
id = "bonus7"
starts = "2026-12-01T00:00:00"
ends = "2026-12-31T23:59:59"
bonus_points = 7

[[triggers]]
id = "first-visit"
on = "visit"
nth = 1
coupon = "welcome5"

[[group_buys]]
id = "duo"
sku = "set"
group_price_minor = 5000
size = 2
window_hours = 24
"#;

/// The repo's config without an upstream: a shop that decides its group buys itself.
fn standalone(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(support::daemon::repo("config/loyaltyd.toml")).unwrap();
    let start = text.find("\nupstream = ").unwrap() + 1;
    let end = start + text[start..].find('\n').unwrap();
    let p = dir.join("standalone.toml");
    std::fs::write(&p, format!("{}upstream = \"\"{}", &text[..start], &text[end..])).unwrap();
    support::daemon::global_args_with(dir, &p)
}

fn line_sale(dir: &Path, card: &str, line: &str, at: &str, extra: &[&str]) -> Value {
    let mut args = vec!["checkout", "--card", card, "--at", at, "--line", line];
    args.extend_from_slice(extra);
    offline_with(dir, standalone(dir), &args, "")
}

/// December 2026 (the shipped ruleset's weekend-x2 doubles points on its weekends; the
/// 5th and 6th are a Saturday and a Sunday), each campaign figure worked out by hand.
#[test]
fn the_campaigns_report_says_what_each_campaign_did() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
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
    let p = rules_path(dir);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("{text}\n{CAMPAIGN_RULES}")).unwrap();
    enrol(dir, "04AA0001", "13800000101", "2026-12-01T09:00:00+08:00");
    enrol(dir, "04BB0002", "13800000102", "2026-12-01T09:30:00+08:00");
    // Wednesday: 50 points and bonus7's 7; the first visit earns a welcome5 coupon.
    let a1 = sale(dir, "04AA0001", 5000, "2026-12-02T10:00:00+08:00", &[]);
    assert_eq!(a1["points_earned"].as_i64(), Some(57), "{a1}");
    let coupon = a1["coupons_issued"][0]["code"].as_str().unwrap().to_string();
    // A group of two forms; A buys its unit: 80.00 at 50.00, outside what earns.
    let g = offline_with(
        dir,
        standalone(dir),
        &[
            "group",
            "join",
            "--deal",
            "duo",
            "--card",
            "04AA0001",
            "--at",
            "2026-12-03T10:00:00+08:00",
        ],
        "",
    );
    let group = g["group_id"].as_str().unwrap().to_string();
    let formed = offline_with(
        dir,
        standalone(dir),
        &[
            "group",
            "join",
            "--deal",
            "duo",
            "--card",
            "04BB0002",
            "--group",
            &group,
            "--at",
            "2026-12-03T11:00:00+08:00",
        ],
        "",
    );
    assert_eq!(formed["state"], "formed", "{formed}");
    let a2 = line_sale(dir, "04AA0001", "set,food,1,8000", "2026-12-03T12:00:00+08:00", &[]);
    assert_eq!(
        (a2["total"].as_i64(), a2["points_earned"].as_i64()),
        (Some(5000), Some(7)),
        "{a2}"
    );
    // Saturday: 120.00, m100-10 takes 10.00, the coupon 5.00: 105.00 paid, 105 points
    // doubled (weekend-x2 adds 105) and bonus7's 7.
    let a3 = sale(
        dir,
        "04AA0001",
        12000,
        "2026-12-05T10:00:00+08:00",
        &["--coupon", &coupon],
    );
    assert_eq!(
        (a3["total"].as_i64(), a3["points_earned"].as_i64()),
        (Some(10500), Some(217)),
        "{a3}"
    );
    // Sunday, B: 100.00 less m100-10 (90 doubled, + 7), then 20.00 (20 doubled, + 7).
    let b1 = sale(dir, "04BB0002", 10000, "2026-12-06T10:00:00+08:00", &[]);
    assert_eq!(
        (b1["total"].as_i64(), b1["points_earned"].as_i64()),
        (Some(9000), Some(187)),
        "{b1}"
    );
    let b2 = sale(dir, "04BB0002", 2000, "2026-12-06T11:00:00+08:00", &[]);
    assert_eq!(b2["points_earned"].as_i64(), Some(47), "{b2}");

    let d = Daemon::start(dir);
    let m = manager(&d.client());
    let row = |id: &str, kind: &str, [uses, members, discount, bonus_points, sales]: [i64; 5]| {
        json!({"id": id, "kind": kind, "uses": uses, "members": members, "discount": discount,
               "bonus_points": bonus_points, "sales": sales})
    };
    let month = json!({"from": "2026-12-01", "to": "2026-12-31", "campaigns": [
        row("m100-10", "promotion", [2, 2, 2000, 0, 10500 + 9000]),
        row("welcome5", "coupon", [1, 1, 500, 0, 10500]),
        row("bonus7", "campaign", [5, 2, 0, 35, 5000 + 5000 + 10500 + 9000 + 2000]),
        row("weekend-x2", "campaign", [3, 2, 0, 105 + 90 + 20, 10500 + 9000 + 2000]),
        row("duo", "group_buy", [1, 1, 3000, 0, 5000]),
        row("first-visit", "trigger", [1, 1, 500, 0, 10500]),
    ]});
    let window = "/v1/reports/campaigns?from=2026-12-01&to=2026-12-31";
    assert_eq!(m.get_json(window, 200), month);
    let sunday = json!({"from": "2026-12-06", "to": "2026-12-06", "campaigns": [
        row("m100-10", "promotion", [1, 1, 1000, 0, 9000]),
        row("bonus7", "campaign", [2, 1, 0, 14, 11000]),
        row("weekend-x2", "campaign", [2, 1, 0, 110, 11000]),
    ]});
    assert_eq!(
        m.get_json("/v1/reports/campaigns?from=2026-12-06&to=2026-12-06", 200),
        sunday
    );
    assert_eq!(
        m.get_json("/v1/reports/campaigns?from=2026-11-01&to=2026-11-30", 200)["campaigns"],
        json!([])
    );
    // The CSV says what the JSON says, row by row.
    let (s, text) = m.get(&format!("{window}&format=csv")).unwrap();
    assert_eq!(s, 200, "{text}");
    let rows = csv_rows(&text);
    assert_eq!(
        rows[0],
        ["id", "kind", "uses", "members", "discount", "bonus_points", "sales"]
    );
    let from_csv: Vec<Value> = rows[1..]
        .iter()
        .map(|r| {
            let n = |i: usize| r[i].parse::<i64>().unwrap();
            row(&r[0], &r[1], [n(2), n(3), n(4), n(5), n(6)])
        })
        .collect();
    assert_eq!(json!(from_csv), month["campaigns"]);
    for bad in [
        "/v1/reports/campaigns?from=2026-12-31&to=2026-12-01",
        "/v1/reports/campaigns?from=2026-12-32&to=2026-12-31",
        "/v1/reports/campaigns?to=2026-12-31",
        "/v1/reports/campaigns?from=2000-01-01&to=2026-12-31",
        "/v1/reports/campaigns?from=2026-12-01&to=2026-12-31&terminal=T1",
    ] {
        let (s, text) = m.get(bad).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((s, code(&v)), (400, "invalid_input"), "{bad}: {text}");
    }
    let (s, _) = d.client().get(window).unwrap();
    assert_eq!(s, 403, "a cashier may not");
    audit_view_pages_and_filters(dir, &d, &m, &[&a1, &a2, &a3, &b1, &b2]);
    let mut d = d;
    d.signal(15);
    assert!(d.wait_exit(std::time::Duration::from_secs(30)).success());
    offline(dir, &["rebuild"], "");
    let d = Daemon::start(dir);
    let m = manager(&d.client());
    assert_eq!(m.get_json(window, 200), month, "a rebuild gives the same figures");
}

/// The audit view of the campaigns test's data: a staff account, two enrolments, two
/// group joins and five checkouts, all by `cli` (offline), then an adjustment by `mia`.
fn audit_view_pages_and_filters(dir: &Path, d: &Daemon, m: &Client, sales: &[&Value]) {
    // Paged 3 at a time, newest first (local day, then seq), each entry once.
    let mut all: Vec<Value> = vec![];
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = m.get_json(&format!("/v1/audit?limit=3{q}"), 200);
        all.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    actions.sort_unstable();
    let mut want = vec!["checkout"; 5];
    want.extend(["group.join", "group.join", "member.add", "member.add", "staff.add"]);
    assert_eq!(actions, want, "{all:?}");
    assert!(
        all.iter().all(|e| e["by"] == "cli" && e["terminal_id"] == "T1"),
        "{all:?}"
    );
    let staff_add = all.iter().find(|e| e["action"] == "staff.add").unwrap();
    assert_eq!(staff_add["subject"], "mia");
    // The enrolments, sales and joins at their --at dates, the staff account today.
    let order: Vec<(String, u64)> = all
        .iter()
        .map(|e| (e["at"].as_str().unwrap()[..10].to_string(), e["seq"].as_u64().unwrap()))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] > w[1]),
        "by local day, then seq: {order:?}"
    );
    // By action: the checkouts, with their transaction ids.
    let checkouts = m.get_json("/v1/audit?action=checkout", 200);
    let mut txs: Vec<&str> = checkouts["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    txs.reverse();
    let want: Vec<&str> = sales.iter().map(|s| s["tx_id"].as_str().unwrap()).collect();
    assert_eq!(txs, want);
    // By dates: the weekend's three.
    let weekend = m.get_json("/v1/audit?from=2026-12-05&to=2026-12-06", 200);
    assert_eq!(weekend["entries"].as_array().unwrap().len(), 3, "{weekend}");
    // mia has an account and has done nothing yet; then she adjusts points.
    assert_eq!(m.get_json("/v1/audit?staff=mia", 200)["entries"], json!([]));
    let member = sales[0]["member_id"].as_str().unwrap();
    m.post_json(
        &format!("/v1/members/{member}/points"),
        &json!({"points": 5, "reason": "goodwill"}),
        &[],
        200,
    );
    let mine = m.get_json("/v1/audit?staff=mia", 200);
    let e = &mine["entries"][0];
    assert_eq!(
        (e["action"].as_str(), e["by"].as_str(), e["subject"].as_str()),
        (Some("points.adjust"), Some("mia"), Some(member)),
        "{mine}"
    );
    assert_eq!(mine["entries"].as_array().unwrap().len(), 1);
    // The CLI through the daemon says the same.
    let cfg = dir.join("remote.toml");
    let base = std::fs::read_to_string(support::daemon::repo("config/loyaltyd.toml")).unwrap();
    let listen = d.url.trim_start_matches("http://");
    let token = format!("token_file = {:?}", dir.join("token").display().to_string());
    std::fs::write(
        &cfg,
        base.replace("listen = \"127.0.0.1:7430\"", &format!("listen = \"{listen}\""))
            .replace("token_file = \"config/pos.token\"", &token),
    )
    .unwrap();
    let mut cmd = support::loyaltyd_command();
    cmd.arg("--config")
        .arg(&cfg)
        .args(["--json", "--remote", "--as", "mia", "audit", "--action", "checkout"]);
    let out = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"mia-secret-1\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, checkouts);
    for bad in [
        "/v1/audit?staff=nobody",
        "/v1/audit?action=launch",
        "/v1/audit?from=2026-12-06&to=2026-12-05",
        "/v1/audit?from=2026-13-01",
        "/v1/audit?limit=0",
        "/v1/audit?limit=501",
        "/v1/audit?cursor=zz",
        "/v1/audit?terminal=T1",
    ] {
        let (s, text) = m.get(bad).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((s, code(&v)), (400, "invalid_input"), "{bad}: {text}");
    }
    let (s, _) = d.client().get("/v1/audit").unwrap();
    assert_eq!(s, 403, "a cashier may not");
}
