//! The hub's reports with a real hub and two real terminals pushing to it: the chain's
//! figures, and with `?terminal=` one shop's (sales and ledger figures of what it
//! recorded, member figures of the members it enrolled), the campaigns report and the
//! audit view across the chain, and what the hub refuses.

mod support;

use serde_json::{json, Value};
use support::daemon::code;
use support::eventually;
use support::shop::{chain, last_sync, Shop};

fn sale(shop: &Shop, card: &str, key: &str, price: i64) -> Value {
    shop.commit(card, key, price, 0)
        .unwrap_or_else(|e| panic!("{}: sale {key} refused: {e}", shop.id))
}

fn n(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn the_hub_reports_the_chain_and_each_shop() {
    let root = tempfile::tempdir().unwrap();
    let (hub, t1, t2) = chain(root.path());
    // A enrols at T1 and buys at both shops; B enrols at T2 and buys there.
    let a = t1.enrol("0E0000A1", "13900000011");
    let b = t2.enrol("0E0000B2", "13900000012");
    let a1 = sale(&t1, "0E0000A1", "a1", 5000);
    // 120.00 reaches m100-10 (10.00 off).
    let a2 = sale(&t1, "0E0000A1", "a2", 12000);
    assert_eq!(n(&a2, "total"), 11000, "{a2}");
    let b1 = sale(&t2, "0E0000B2", "b1", 2000);
    t1.wait_synced(&last_sync(&t1));
    eventually(60, "T2 knows A", || t2.balance("0E0000A1").map(|_| ()));
    let a3 = sale(&t2, "0E0000A1", "a3", 3000);
    t2.wait_synced(&last_sync(&t2));
    t1.wait_synced(&last_sync(&t1));

    // Yesterday to tomorrow in the shops' zone: today whatever the hour.
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let window = format!(
        "from={}&to={}",
        today - chrono::Duration::days(1),
        today + chrono::Duration::days(1)
    );
    let h = hub.client();
    let chain_s = h.get_json(&format!("/v1/hub/reports/summary?{window}"), 200);
    let t1_s = h.get_json(&format!("/v1/hub/reports/summary?{window}&terminal=T1"), 200);
    let t2_s = h.get_json(&format!("/v1/hub/reports/summary?{window}&terminal=T2"), 200);
    let pts = |r: &[&Value]| r.iter().map(|v| n(v, "points_earned")).sum::<i64>();
    let balance = |shop: &Shop, card: &str| shop.balance(card).unwrap();
    let (bal_a, bal_b) = (balance(&t2, "0E0000A1"), balance(&t2, "0E0000B2"));
    assert_eq!(bal_a, pts(&[&a1, &a2, &a3]));
    let figures = |v: &Value| {
        [
            "sales",
            "transactions",
            "new_members",
            "active_members",
            "repeat_members",
            "repurchase_rate_bp",
            "points_issued",
            "points_outstanding",
        ]
        .map(|k| n(v, k))
    };
    // The chain: 4 sales, A twice at T1 and once at T2 (a repeat), B once.
    assert_eq!(
        figures(&chain_s),
        [
            5000 + 11000 + 2000 + 3000,
            4,
            2,
            2,
            1,
            5000,
            pts(&[&a1, &a2, &b1, &a3]),
            bal_a + bal_b
        ],
        "{chain_s}"
    );
    // T1: what it recorded (A's two sales); its members: A, who bought three times.
    assert_eq!(
        figures(&t1_s),
        [16000, 2, 1, 1, 1, 10000, pts(&[&a1, &a2]), bal_a],
        "{t1_s}"
    );
    // T2: B's sale and A's there; its members: B alone, once.
    assert_eq!(figures(&t2_s), [5000, 2, 1, 1, 0, 0, pts(&[&b1, &a3]), bal_b], "{t2_s}");
    assert_eq!(t1_s["tier_mix"], json!({"standard": 1}));
    assert_eq!(chain_s["tier_mix"], json!({"standard": 2}));

    // Retention: this month's cohort, two at the chain, one at each shop.
    let month = today.format("%Y-%m").to_string();
    let cohorts =
        |q: &str| h.get_json(&format!("/v1/hub/reports/retention?from={month}&to={month}{q}"), 200)["cohorts"].clone();
    assert_eq!(cohorts(""), json!([{"month": month, "members": 2, "active": [2]}]));
    assert_eq!(
        cohorts("&terminal=T1"),
        json!([{"month": month, "members": 1, "active": [1]}])
    );
    assert_eq!(
        cohorts("&terminal=T2"),
        json!([{"month": month, "members": 1, "active": [1]}])
    );

    // Campaigns: m100-10 at T1 (and whatever earn campaign runs today, at both).
    let promos = |q: &str| -> Vec<Value> {
        h.get_json(&format!("/v1/hub/reports/campaigns?{window}{q}"), 200)["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "promotion")
            .cloned()
            .collect()
    };
    let m100 = json!({"id": "m100-10", "kind": "promotion", "uses": 1, "members": 1, "discount": 1000,
                      "bonus_points": 0, "sales": 11000});
    assert_eq!(promos(""), std::slice::from_ref(&m100));
    assert_eq!(promos("&terminal=T1"), [m100]);
    assert_eq!(promos("&terminal=T2"), Vec::<Value>::new());
    let (s, csv) = h
        .get(&format!("/v1/hub/reports/campaigns?{window}&format=csv"))
        .unwrap();
    assert_eq!(s, 200);
    assert!(csv.contains("m100-10,promotion,1,1,1000,0,11000\n"), "{csv}");

    // The audit view: every shop's checkouts, by the POS token, with their terminal.
    let audit = |q: &str| h.get_json(&format!("/v1/hub/audit?action=checkout{q}"), 200)["entries"].clone();
    let subjects = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["by"], "pos", "{e}");
                (
                    e["terminal_id"].as_str().unwrap().into(),
                    e["subject"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let mut all = subjects(&audit(""));
    all.sort();
    let tx = |v: &Value| v["tx_id"].as_str().unwrap().to_string();
    let mut want = vec![
        ("T1".to_string(), tx(&a1)),
        ("T1".to_string(), tx(&a2)),
        ("T2".to_string(), tx(&b1)),
        ("T2".to_string(), tx(&a3)),
    ];
    want.sort();
    assert_eq!(all, want);
    assert_eq!(subjects(&audit("&terminal=T2")).len(), 2);
    let enrolled = h.get_json("/v1/hub/audit?action=member.add", 200)["entries"].clone();
    let mut ids: Vec<&str> = enrolled
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut members = vec![a.as_str(), b.as_str()];
    members.sort_unstable();
    assert_eq!(ids, members);

    // Refused: an unknown terminal, bad windows, an unknown staff id; no token.
    for bad in [
        format!("/v1/hub/reports/summary?{window}&terminal=T9"),
        format!("/v1/hub/reports/retention?from={month}&to={month}&terminal=T9"),
        format!("/v1/hub/reports/campaigns?{window}&terminal=T9"),
        "/v1/hub/reports/summary?from=2026-02-30&to=2026-03-01".to_string(),
        "/v1/hub/reports/summary?from=2026-03-02&to=2026-03-01".to_string(),
        "/v1/hub/reports/summary?from=2000-01-01&to=2026-03-01".to_string(),
        "/v1/hub/reports/retention?from=2000-01&to=2026-03".to_string(),
        "/v1/hub/audit?terminal=T9".to_string(),
        "/v1/hub/audit?staff=nobody".to_string(),
        "/v1/hub/audit?from=2026-03-02&to=2026-03-01".to_string(),
    ] {
        let (s, text) = h.get(&bad).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((s, code(&v)), (400, "invalid_input"), "{bad}: {text}");
    }
    let (s, _) = h
        .with_token(None)
        .get(&format!("/v1/hub/reports/summary?{window}"))
        .unwrap();
    assert_eq!(s, 401);
}
