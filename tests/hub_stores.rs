//! One set of hub tests run against both stores: the embedded one and PostgreSQL
//! (`[store] kind = "postgres"`). Each test runs twice, `_embedded` and `_on_postgres`;
//! the PostgreSQL run gets a database of its own (support/pg.rs) and skips loudly when
//! LOYALTYD_TEST_PG is unset (under CI=true it fails instead).

mod support;

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;
use support::daemon::code;
use support::eventually;
use support::hub::{secret_file, Hub};
use support::pg::PgDb;
use support::proxy::Fault;
use support::shop::{hub_member, last_sync, Shop};

/// Where the hub under test keeps its state.
enum Kind {
    Embedded,
    Postgres(PgDb),
}

impl Kind {
    fn extra(&self) -> String {
        match self {
            Kind::Embedded => String::new(),
            Kind::Postgres(db) => db.store_config(),
        }
    }
}

fn start(root: &Path, kind: &Kind, terminals: &[(&str, &Path)]) -> Hub {
    Hub::start_with(root, terminals, "127.0.0.1:0", &kind.extra())
}

/// Runs `test` on the embedded store.
fn embedded(test: impl FnOnce(Kind)) {
    test(Kind::Embedded)
}

/// Runs `test` on a database of its own, unless the test is to skip.
fn postgres(name: &str, test: impl FnOnce(Kind)) {
    if let Some(db) = PgDb::create(name) {
        test(Kind::Postgres(db))
    }
}

/// The hub's figures of a terminal, summed over its install epochs: (records, duplicates).
fn hub_terminal(hub: &Hub, id: &str) -> (u64, u64) {
    let all = hub.client().get_json("/v1/hub/terminals", 200);
    all.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["terminal_id"] == id)
        .fold((0, 0), |(r, d), t| {
            (
                r + t["records"].as_u64().unwrap(),
                d + t["duplicates"].as_u64().unwrap(),
            )
        })
}

/// Records through a faulty link and a hub killed and restarted: every record held
/// once, every balance the sum of what the terminals answered, at the hub and at both
/// terminals (which learn the other's sales by pulling).
fn records_arrive_once_through_faults(kind: Kind) {
    let root = tempfile::tempdir().unwrap();
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let terminals = [("T1", s1.as_path()), ("T2", s2.as_path())];
    let mut hub = start(root.path(), &kind, &terminals);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let t2 = Shop::open(root.path(), "T2", &hub, &s2);
    let cards = ["0A000001", "0A000002", "0A000003"];
    let mut members = HashMap::new();
    for (i, card) in cards.iter().enumerate() {
        members.insert(card.to_string(), t1.enrol(card, &format!("1390000000{i}")));
    }
    let mut made = HashMap::from([("T1", cards.len() as u64), ("T2", 0u64)]);
    for card in cards {
        eventually(30, &format!("T2 knows {card}"), || {
            t2.c().get(&format!("/v1/cards/{card}")).ok().filter(|r| r.0 == 200)
        });
    }
    let mut expected: HashMap<String, i64> = cards.iter().map(|c| (c.to_string(), 0)).collect();
    let mut sale = |shop: &Shop, n: usize, made: &mut HashMap<&str, u64>| {
        let card = cards[n % cards.len()];
        let r = shop
            .commit(card, &format!("{}-{n}", shop.id), 1000 + 100 * n as i64, 0)
            .unwrap();
        *expected.get_mut(card).unwrap() += r["points_earned"].as_i64().unwrap();
        *made.get_mut(shop.id).unwrap() += 1;
    };
    let faults = [
        Fault::CutResponse,
        Fault::Duplicate,
        Fault::CutRequest,
        Fault::Drop,
        Fault::Duplicate,
    ];
    t1.proxy.queue(&faults);
    t2.proxy.queue(&faults[1..]);
    for n in 0..8 {
        sale(&t1, n, &mut made);
        sale(&t2, n, &mut made);
    }
    // Every request of T1 sent twice until its sales are acknowledged: its pushes arrive
    // again after they were stored.
    t1.proxy.set_default(Fault::Duplicate);
    sale(&t1, 100, &mut made);
    t1.wait_synced(&last_sync(&t1));
    t1.proxy.set_default(Fault::Pass);
    hub.kill9();
    for n in 8..12 {
        sale(&t1, n, &mut made);
        sale(&t2, n, &mut made);
    }
    hub = start(root.path(), &kind, &terminals);
    t1.proxy.set_upstream(&hub.addr());
    t2.proxy.set_upstream(&hub.addr());
    eventually(60, "every injected fault was used", || {
        (t1.proxy.queued() == 0 && t2.proxy.queued() == 0).then_some(())
    });
    let mark = last_sync(&t1).max(last_sync(&t2));
    t1.wait_synced(&mark);
    t2.wait_synced(&mark);
    for shop in [&t1, &t2] {
        assert_eq!(
            hub_terminal(&hub, shop.id).0,
            made[shop.id],
            "records of {} held",
            shop.id
        );
    }
    let dups = hub_terminal(&hub, "T1").1 + hub_terminal(&hub, "T2").1;
    let resent: Vec<_> = [&t1, &t2]
        .iter()
        .flat_map(|s| s.proxy.applied())
        .filter(|(path, f)| path.contains("push") && matches!(f, Fault::Duplicate | Fault::CutResponse))
        .collect();
    println!("pushes resent by the link: {resent:?}; duplicates counted: {dups}");
    assert!(!resent.is_empty(), "the link resent some push");
    assert!(dups > 0, "the pushes the link resent were counted as duplicates");
    for (card, id) in &members {
        let want = expected[card];
        assert_eq!(hub_member(&hub, id)["balance"], want, "hub balance of {card}");
        for s in [&t1, &t2] {
            eventually(30, &format!("{} shows {card} at {want}", s.id), || {
                (s.balance(card) == Some(want)).then_some(())
            });
        }
    }
    if let Kind::Postgres(db) = &kind {
        // The projection reporting tools read agrees with the hub's answers.
        for (card, id) in &members {
            let rows = db.query(&format!("SELECT balance FROM members WHERE member_id = '{id}'"));
            assert_eq!(rows, vec![vec![expected[card].to_string()]], "members row of {card}");
            let rows = db.query(&format!("SELECT member_id, status FROM cards WHERE card = '{card}'"));
            assert_eq!(rows, vec![vec![id.clone(), "active".to_string()]]);
            assert_ledger_projected(db, &hub, id);
        }
        let sales =
            db.query("SELECT terminal_id, count(*), sum(points_earned) FROM transactions GROUP BY 1 ORDER BY 1");
        let sold = |t: &str| (made[t] - if t == "T1" { cards.len() as u64 } else { 0 }).to_string();
        assert_eq!(
            sales.iter().map(|r| (r[0].clone(), r[1].clone())).collect::<Vec<_>>(),
            vec![("T1".to_string(), sold("T1")), ("T2".to_string(), sold("T2"))]
        );
        let earned: i64 = sales.iter().map(|r| r[2].parse::<i64>().unwrap()).sum();
        assert_eq!(
            earned,
            expected.values().sum::<i64>(),
            "the projected checkouts add up to the balances"
        );
        let lines = db.query("SELECT count(*), sum(qty * unit_price) = sum(net) FROM lines");
        assert_eq!(
            lines[0][0],
            (made["T1"] + made["T2"] - cards.len() as u64).to_string(),
            "one line a sale"
        );
        let held = db.query("SELECT terminal_id, count(*) FROM terminal_records GROUP BY 1 ORDER BY 1");
        assert_eq!(
            held,
            vec![
                vec!["T1".to_string(), made["T1"].to_string()],
                vec!["T2".to_string(), made["T2"].to_string()]
            ]
        );
    }
}

#[test]
fn records_arrive_once_through_faults_embedded() {
    embedded(records_arrive_once_through_faults)
}

#[test]
fn records_arrive_once_through_faults_on_postgres() {
    postgres("records_arrive_once", records_arrive_once_through_faults)
}

/// Offline double spending at two shops: the hub takes both, the member goes negative,
/// the overspent report names them, and the hub's balance reaches both terminals.
fn overspent_members_are_reported(kind: Kind) {
    let root = tempfile::tempdir().unwrap();
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let hub = start(root.path(), &kind, &[("T1", s1.as_path()), ("T2", s2.as_path())]);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let t2 = Shop::open(root.path(), "T2", &hub, &s2);
    let card = "0B000001";
    let id = t1.enrol(card, "13900000001");
    let earned = t1.commit(card, "big", 300_000, 0).unwrap()["points_earned"]
        .as_i64()
        .unwrap();
    let cap = 2000;
    eventually(30, "T2 sees the points", || {
        (t2.balance(card) == Some(earned)).then_some(())
    });
    t1.proxy.down(true);
    t2.proxy.down(true);
    let r1 = t1.commit(card, "r1", 10_000, cap).unwrap();
    let r2 = t2.commit(card, "r2", 10_000, cap).unwrap();
    t1.proxy.down(false);
    t2.proxy.down(false);
    let mark = last_sync(&t1).max(last_sync(&t2));
    t1.wait_synced(&mark);
    t2.wait_synced(&mark);
    let want = earned + r1["points_earned"].as_i64().unwrap() + r2["points_earned"].as_i64().unwrap() - 2 * cap;
    assert!(want < 0, "{want}");
    assert_eq!(hub_member(&hub, &id)["balance"], want);
    let report = hub.client().get_json("/v1/hub/reports/overspent", 200);
    assert_eq!(report, json!([{"member_id": id, "balance": want}]));
    for s in [&t1, &t2] {
        eventually(30, &format!("{} shows the hub's balance", s.id), || {
            (s.balance(card) == Some(want)).then_some(())
        });
    }
    let e = t1.commit(card, "r4", 10_000, 100).unwrap_err();
    assert_eq!(code(&e), "insufficient_points", "{e}");
}

#[test]
fn overspent_members_are_reported_embedded() {
    embedded(overspent_members_are_reported)
}

#[test]
fn overspent_members_are_reported_on_postgres() {
    postgres("overspent", overspent_members_are_reported)
}

/// A ruleset an operator publishes and a card blocked at one shop reach every terminal;
/// a ruleset not newer than the published one is refused.
fn a_published_ruleset_and_a_blocked_card_reach_terminals(kind: Kind) {
    let root = tempfile::tempdir().unwrap();
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let hub = start(root.path(), &kind, &[("T1", s1.as_path()), ("T2", s2.as_path())]);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let t2 = Shop::open(root.path(), "T2", &hub, &s2);
    let card = "0C000001";
    t1.enrol(card, "13900000002");
    eventually(30, "T2 knows the card", || {
        t2.c().get(&format!("/v1/cards/{card}")).ok().filter(|r| r.0 == 200)
    });
    let sale = json!({"card": card, "lines": [{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": 5000}]});
    let quote = |s: &Shop| {
        s.c().post_json("/v1/checkout/quote", &sale, &[], 200)["points_earned"]
            .as_i64()
            .unwrap()
    };
    let before = quote(&t2);
    let base = std::fs::read_to_string(support::daemon::repo("config/rules.toml")).unwrap();
    let v2 = base
        .replacen("version = 1", "version = 2", 1)
        .replacen("points_per_unit = 1 ", "points_per_unit = 2 ", 1);
    assert_ne!(v2, base);
    let post = |body: &str| hub.client().post("/v1/hub/rulesets", body, &[]).unwrap();
    let (status, body) = post(&v2);
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(&v2);
    assert_eq!(
        (status, code(&serde_json::from_str(&body).unwrap())),
        (400, "invalid_input")
    );
    for s in [&t1, &t2] {
        eventually(30, &format!("{} prices with version 2", s.id), || {
            (quote(s) == 2 * before).then_some(())
        });
    }
    t1.c()
        .post_json(&format!("/v1/cards/{card}/block"), &json!({}), &[], 200);
    eventually(30, "T2 refuses the blocked card", || {
        let (status, text) = t2.c().post("/v1/checkout/quote", &sale.to_string(), &[]).unwrap();
        (status == 422 && text.contains("card_blocked")).then_some(())
    });
}

#[test]
fn a_published_ruleset_and_a_blocked_card_reach_terminals_embedded() {
    embedded(a_published_ruleset_and_a_blocked_card_reach_terminals)
}

#[test]
fn a_published_ruleset_and_a_blocked_card_reach_terminals_on_postgres() {
    postgres("ruleset", a_published_ruleset_and_a_blocked_card_reach_terminals)
}

/// `hub migrate` applies the migrations once, records them, and then has nothing to do;
/// the hub starts on the migrated database.
#[test]
fn hub_migrate_applies_each_migration_once_on_postgres() {
    let Some(db) = PgDb::create("migrate") else { return };
    let root = tempfile::tempdir().unwrap();
    let hub = Hub::start_with(root.path(), &[], "127.0.0.1:0", &db.store_config());
    drop(hub);
    let config = root.path().join("hub.toml");
    let migrate = || {
        let out = support::loyaltyd_command()
            .arg("--config")
            .arg(&config)
            .args(["--json", "hub", "migrate"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(migrate()["applied"], json!([]), "the hub applied them at start-up");
    db.query("DROP TABLE lines, transactions, coupons, groups");
    db.query("DELETE FROM schema_migrations WHERE version = 2");
    assert_eq!(migrate()["applied"], json!([2]), "only the migration missing");
    assert_eq!(
        db.query("SELECT version, name FROM schema_migrations ORDER BY version"),
        vec![
            vec!["1".to_string(), "hub".to_string()],
            vec!["2".to_string(), "projection".to_string()],
            vec!["3".to_string(), "contact".to_string()],
            vec!["4".to_string(), "ledger".to_string()]
        ]
    );
    assert_eq!(migrate()["applied"], json!([]));
}

/// What operators read of a member on either store: found by phone, its points ledger
/// and transactions, its coupons, and the plain refusals for what does not exist.
fn operators_find_members_and_their_coupons(kind: Kind) {
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let hub = start(root.path(), &kind, &[("T1", s1.as_path())]);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let card = "0D000001";
    let id = t1.enrol(card, "13900000040");
    t1.commit(card, "big", 300_000, 0).unwrap();
    t1.wait_synced(&last_sync(&t1));
    let hc = hub.client();
    let found = hc.get_json("/v1/hub/members?phone=13900000040", 200);
    assert_eq!(found["members"][0]["member_id"], json!(id), "{found}");
    let second = t1.enrol("0D000011", "13900000041");
    t1.wait_synced(&last_sync(&t1));
    for q in ["Mem", "0040", "0D000001"] {
        let found = hc.get_json(&format!("/v1/hub/members?q={q}"), 200);
        let ids: Vec<_> = found["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["member_id"].clone())
            .collect();
        let mut want = vec![json!(id)];
        if q == "Mem" {
            want.push(json!(second));
            want.sort_by_key(|v| v.as_str().unwrap().to_string());
        }
        assert_eq!(ids, want, "q={q}: {found}");
    }
    let page = hc.get_json("/v1/hub/members?q=Mem&limit=1", 200);
    let next = page["next"].as_str().expect("a second page").to_string();
    let rest = hc.get_json(&format!("/v1/hub/members?q=Mem&limit=1&after={next}"), 200);
    assert_eq!(rest["members"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["next"], json!(null), "{rest}");
    assert_ne!(rest["members"][0]["member_id"], page["members"][0]["member_id"]);
    let none = hc.get_json("/v1/hub/members?phone=13900000049", 200);
    assert_eq!(none["members"], json!([]), "{none}");
    let coupons = hc.get_json(&format!("/v1/hub/members/{id}/coupons"), 200);
    assert_eq!(coupons["coupons"], json!([]), "{coupons}");
    let balance = hub_member(&hub, &id)["balance"].as_i64().unwrap();
    let ledger = hc.get_json(&format!("/v1/hub/members/{id}/points"), 200);
    let entries = ledger["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{ledger}");
    assert_eq!(
        (entries[0]["kind"].as_str(), entries[0]["balance_after"].as_i64()),
        (Some("earn"), Some(balance))
    );
    let txs = hc.get_json(&format!("/v1/hub/members/{id}/transactions"), 200);
    let txs = txs["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 1, "{txs:?}");
    assert!(txs[0]["tx_id"].as_str().unwrap().starts_with("T1-"), "{txs:?}");
    let e = hc.get_json(&format!("/v1/hub/members/{id}/points?limit=0"), 400);
    assert_eq!(code(&e), "invalid_input", "{e}");
    let e = hc.get_json("/v1/hub/members/m-nobody/points", 404);
    assert_eq!(code(&e), "unknown_member", "{e}");
    let e = hc.get_json("/v1/hub/members/m-nobody/coupons", 404);
    assert_eq!(code(&e), "unknown_member", "{e}");
    let e = hc.get_json("/v1/hub/group-buys/groups/g-nothing", 404);
    assert_eq!(code(&e), "not_found", "{e}");
}

#[test]
fn operators_find_members_and_their_coupons_embedded() {
    embedded(operators_find_members_and_their_coupons)
}

#[test]
fn operators_find_members_and_their_coupons_on_postgres() {
    postgres("operators", operators_find_members_and_their_coupons)
}

/// `hub export --to`: an embedded hub's data moved into PostgreSQL; the hub started on
/// it answers every member, the terminals and the overspent report as the embedded hub
/// did, and its terminals go on syncing. A second export into it is refused.
#[test]
fn an_embedded_hub_exported_answers_the_same_on_postgres() {
    let Some(db) = PgDb::create("export") else { return };
    let root = tempfile::tempdir().unwrap();
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let terminals = [("T1", s1.as_path()), ("T2", s2.as_path())];
    let hub = Hub::start(root.path(), &terminals);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let t2 = Shop::open(root.path(), "T2", &hub, &s2);
    let cards = ["0F000001", "0F000002", "0F000003", "0F000004"];
    let ids: Vec<String> = cards
        .iter()
        .enumerate()
        .map(|(i, c)| t1.enrol(c, &format!("1390000020{i}")))
        .collect();
    for card in cards {
        eventually(30, &format!("T2 knows {card}"), || {
            t2.c().get(&format!("/v1/cards/{card}")).ok().filter(|r| r.0 == 200)
        });
    }
    for n in 0..12 {
        let shop = if n % 2 == 0 { &t1 } else { &t2 };
        shop.commit(cards[n % 3], &format!("x-{n}"), 20_000 + 1000 * n as i64, 0)
            .unwrap();
    }
    // An offline double spend, so that the overspent report has someone in it.
    t1.commit(cards[3], "big", 300_000, 0).unwrap();
    t1.wait_synced(&last_sync(&t1));
    t2.wait_synced(&last_sync(&t2));
    eventually(30, "T2 sees the big sale", || {
        (t2.balance(cards[3]) == t1.balance(cards[3])).then_some(())
    });
    t1.proxy.down(true);
    t2.proxy.down(true);
    t1.commit(cards[3], "r1", 10_000, 2000).unwrap();
    t2.commit(cards[3], "r2", 10_000, 2000).unwrap();
    t1.proxy.down(false);
    t2.proxy.down(false);
    let mark = last_sync(&t1).max(last_sync(&t2));
    t1.wait_synced(&mark);
    t2.wait_synced(&mark);
    // Yesterday to tomorrow in the shops' zone (today whatever the hour), and this month.
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let window = format!(
        "from={}&to={}",
        today - chrono::Duration::days(1),
        today + chrono::Duration::days(1)
    );
    let month = today.format("%Y-%m").to_string();
    let answers = |hub: &Hub| {
        let c = hub.client();
        let members: Vec<_> = ids
            .iter()
            .map(|id| c.get_json(&format!("/v1/hub/members/{id}"), 200))
            .collect();
        let reports: Vec<_> = ["", "&terminal=T1", "&terminal=T2"]
            .iter()
            .flat_map(|q| {
                [
                    c.get_json(&format!("/v1/hub/reports/summary?{window}{q}"), 200),
                    c.get_json(&format!("/v1/hub/reports/retention?from={month}&to={month}{q}"), 200),
                    c.get_json(&format!("/v1/hub/reports/campaigns?{window}{q}"), 200),
                ]
            })
            .collect();
        (
            members,
            c.get_json("/v1/hub/terminals", 200),
            c.get_json("/v1/hub/reports/overspent", 200),
            reports,
        )
    };
    let before = answers(&hub);
    drop(hub);

    let export = |expect_ok: bool| {
        let out = support::loyaltyd_command()
            .arg("--config")
            .arg(root.path().join("hub.toml"))
            .args(["--json", "hub", "export", "--to", db.url.as_str()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let out = export(true);
    let moved: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(moved["records"].as_u64().unwrap() > 20, "{moved}");
    let again = export(false);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds a hub"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let pg_root = root.path().join("pg");
    std::fs::create_dir_all(&pg_root).unwrap();
    let pg_hub = Hub::start_with(&pg_root, &terminals, "127.0.0.1:0", &db.store_config());
    let after = answers(&pg_hub);
    assert_eq!(after.0, before.0, "every member the same");
    // Contact is what each terminal did last, kept beside the state and not journaled:
    // a pull may land between the reading above and the hub's stop, and the stop (a
    // kill) may lose the latest note. The export carries one.
    let (streams_after, streams_before) = (without_contact(&after.1), without_contact(&before.1));
    assert_eq!(streams_after, streams_before, "the terminal streams the same");
    for t in after.1.as_array().unwrap() {
        assert!(t["last_contact"].is_string(), "contact carried: {t}");
    }
    assert_eq!(after.2, before.2, "the overspent report the same");
    assert_eq!(
        after.3, before.3,
        "the summary, retention and campaigns the same, chain and shops"
    );
    assert_eq!(
        before.3[0]["transactions"], 15,
        "the summary counts every checkout: {}",
        before.3[0]
    );
    assert_eq!(before.3[0]["active_members"], 4, "{}", before.3[0]);
    assert!(
        !after.2.as_array().unwrap().is_empty(),
        "someone overspent: {}",
        after.2
    );
    let rows = db.query("SELECT count(*) FROM members");
    assert_eq!(
        rows,
        vec![vec![ids.len().to_string()]],
        "the projection holds every member"
    );
    for id in &ids {
        assert_ledger_projected(&db, &pg_hub, id);
    }

    // The shops go on with the exported hub.
    t1.proxy.set_upstream(&pg_hub.addr());
    t2.proxy.set_upstream(&pg_hub.addr());
    let r = t2.commit(cards[1], "after", 5000, 0).unwrap();
    t2.wait_synced(&last_sync(&t2));
    let want = before.0[1]["balance"].as_i64().unwrap() + r["points_earned"].as_i64().unwrap();
    assert_eq!(hub_member(&pg_hub, &ids[1])["balance"], want);
}

/// The `ledger` rows of member `id` are its ledger as the hub answers it, entry for entry
/// (paged through, newest first), and add up to the `members` row's balance.
fn assert_ledger_projected(db: &PgDb, hub: &Hub, id: &str) {
    let (mut answered, mut cursor) = (vec![], String::new());
    loop {
        let page = hub
            .client()
            .get_json(&format!("/v1/hub/members/{id}/points?limit=5{cursor}"), 200);
        for e in page["entries"].as_array().unwrap() {
            let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
            let text = |f: &str| e[f].as_str().unwrap_or("").to_string();
            answered.push(vec![
                at.timestamp_micros().to_string(),
                text("kind"),
                e["points"].to_string(),
                e["balance_after"].to_string(),
                text("tx_id"),
                text("reason"),
                text("by"),
            ]);
        }
        match page["next"].as_str() {
            Some(n) => cursor = format!("&after={n}"),
            None => break,
        }
    }
    let rows = db.query(&format!(
        "SELECT (extract(epoch FROM at) * 1000000)::bigint, kind, points, balance_after, tx_id, reason, by \
         FROM ledger WHERE member_id = '{id}' ORDER BY n DESC"
    ));
    assert!(!rows.is_empty(), "{id} has a ledger");
    assert_eq!(rows, answered, "the ledger rows of {id} are its ledger");
    let sums = db.query(&format!(
        "SELECT (SELECT sum(points) FROM ledger WHERE member_id = '{id}'), \
         (SELECT count(*) = max(n) + 1 FROM ledger WHERE member_id = '{id}'), \
         (SELECT balance FROM members WHERE member_id = '{id}')"
    ));
    assert_eq!(sums[0][0], sums[0][2], "{id}: the ledger adds up to the balance");
    assert_eq!(sums[0][1], "t", "{id}: entries numbered from 0 without gaps");
}

/// The hub's terminals view without what changes at each contact.
fn without_contact(streams: &serde_json::Value) -> serde_json::Value {
    let mut v = streams.clone();
    for t in v.as_array_mut().unwrap() {
        let t = t.as_object_mut().unwrap();
        t.remove("last_contact");
        t.remove("records_behind");
    }
    v
}

/// A database migrated by a newer hub is refused at start-up, saying so (not retried).
#[test]
fn a_database_of_a_newer_schema_is_refused_on_postgres() {
    let Some(db) = PgDb::create("newer") else { return };
    let root = tempfile::tempdir().unwrap();
    drop(Hub::start_with(root.path(), &[], "127.0.0.1:0", &db.store_config()));
    db.query("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')");
    let out = support::loyaltyd_command()
        .arg("--config")
        .arg(root.path().join("hub.toml"))
        .args(["hub", "serve"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("schema version 999, newer than this hub's 4"), "{log}");
    assert!(!log.contains("retrying"), "{log}");
}

/// A refund reaches the hub, which finds the checkout it refunds inside the record it
/// stored (on PostgreSQL, read back from `hub_journal`): the balance is restored, the
/// member's transactions show the refunded amount, the checkout is found again by id
/// with its refund, and the audit view lists what the shop did.
fn a_refund_finds_its_checkout_at_the_hub(kind: Kind) {
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let hub = start(root.path(), &kind, &[("T1", s1.as_path())]);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let card = "0D000002";
    let id = t1.enrol(card, "13900000003");
    let earned = t1.commit(card, "earn", 300_000, 0).unwrap()["points_earned"]
        .as_i64()
        .unwrap();
    let sale = t1.commit(card, "spend", 20_000, 500).unwrap();
    t1.wait_synced(&last_sync(&t1));
    let tx = sale["tx_id"].as_str().unwrap();
    let refund = t1.c().post_json("/v1/refunds", &json!({ "tx_id": tx }), &[], 200);
    assert_eq!(refund["balance"], earned, "{refund}");
    t1.wait_synced(&last_sync(&t1));
    assert_eq!(hub_member(&hub, &id)["balance"], earned);
    let txs = hub
        .client()
        .get_json(&format!("/v1/hub/members/{id}/transactions"), 200);
    let refunded: Vec<_> = txs["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["tx_id"] == tx)
        .map(|t| (t["refunded"].clone(), t["total"].clone()))
        .collect();
    assert_eq!(refunded.len(), 1, "{txs}");
    assert_eq!(refunded[0].0, refunded[0].1, "refunded whole: {txs}");
    assert!(refunded[0].0.as_i64().unwrap() > 0, "{txs}");
    let held = hub_terminal(&hub, "T1");
    assert_eq!(held.0, 4, "enrolment, two checkouts, a refund");

    // The checkout found again by id, with its refund, as the terminal shows it.
    let c = hub.client();
    let at_hub = c.get_json(&format!("/v1/hub/transactions/{tx}"), 200);
    let at_shop = t1.c().get_json(&format!("/v1/transactions/{tx}"), 200);
    assert_eq!(at_hub["terminal_id"], "T1", "{at_hub}");
    for field in ["tx_id", "member_id", "total", "points_earned", "points_redeemed", "by"] {
        assert_eq!(at_hub[field], at_shop[field], "{field}: {at_hub} / {at_shop}");
    }
    assert_eq!(at_hub["refunds"].as_array().map(Vec::len), Some(1), "{at_hub}");
    assert_eq!(at_hub["refunds"][0]["refund_id"], refund["refund_id"], "{at_hub}");
    assert_eq!(at_hub["refunds"][0]["balance"], earned, "{at_hub}");
    assert_eq!(at_hub["refunds"], at_shop["refunds"], "the refund the same");
    if let Kind::Postgres(db) = &kind {
        assert_refund_projected(db, &hub, &id, tx);
    }
    let (s, text) = c.get("/v1/hub/transactions/T1-00000000-0000000009").unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((s, code(&v)), (404, "unknown_transaction"), "{text}");

    // The audit view: the shop's actions newest first, filtered, paged with a cursor.
    let entries = |q: &str| c.get_json(&format!("/v1/hub/audit?{q}"), 200);
    let checkouts = entries("action=checkout");
    let subjects: Vec<_> = checkouts["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["subject"].clone(), e["terminal_id"].clone(), e["by"].clone()))
        .collect();
    let earn_tx = txs["transactions"][1]["tx_id"].clone();
    assert_eq!(
        subjects,
        vec![
            (json!(tx), json!("T1"), json!("pos")),
            (earn_tx, json!("T1"), json!("pos"))
        ],
        "{checkouts}"
    );
    assert_eq!(checkouts["next"], serde_json::Value::Null);
    let refunds = entries("action=refund&terminal=T1");
    assert_eq!(refunds["entries"][0]["subject"], refund["refund_id"], "{refunds}");
    let all = entries("limit=500")["entries"].clone();
    assert!(all.as_array().unwrap().len() >= 4, "{all}");
    let (mut paged, mut cursor) = (vec![], String::new());
    loop {
        let page = entries(&format!("limit=1{cursor}"));
        paged.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => break,
        }
    }
    assert_eq!(json!(paged), all, "pages of one add up to the whole view");
    assert_eq!(
        entries("staff=pos")["entries"],
        all,
        "every action here was the POS token's"
    );
    for bad in ["staff=nobody", "terminal=T9", "action=nothing", "cursor=zz", "limit=0"] {
        let (s, text) = c.get(&format!("/v1/hub/audit?{bad}")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!((s, code(&v)), (400, "invalid_input"), "{bad}: {text}");
    }
    if let Kind::Postgres(db) = &kind {
        // A hub of before migration 4 (no ledger, no refund columns) migrated: the
        // migration fills them from the state the hub kept.
        drop(t1);
        drop(hub);
        db.query(
            "DROP TABLE ledger; ALTER TABLE transactions DROP COLUMN refunds, DROP COLUMN refunded_amount, \
             DROP COLUMN points_returned, DROP COLUMN points_clawed_back; \
             DELETE FROM schema_migrations WHERE version = 4",
        );
        let out = support::loyaltyd_command()
            .arg("--config")
            .arg(root.path().join("hub.toml"))
            .args(["--json", "hub", "migrate"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let applied: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(applied["applied"], json!([4]));
        let hub = start(root.path(), &kind, &[("T1", s1.as_path())]);
        assert_refund_projected(db, &hub, &id, tx);
    }
}

/// The projection shows the refund of `tx` (the only one, whole) on the checkout and in
/// the ledger of member `id`.
fn assert_refund_projected(db: &PgDb, hub: &Hub, id: &str, tx: &str) {
    let rows = db.query(&format!(
        "SELECT refunds, refunded_amount, total, points_returned - points_clawed_back, \
         points_redeemed - points_earned FROM transactions WHERE tx_id = '{tx}'"
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!((r[0].as_str(), &r[1]), ("1", &r[2]), "refunded whole: {r:?}");
    assert_eq!(r[3], r[4], "the points the sale moved are moved back: {r:?}");
    let untouched = db.query(&format!(
        "SELECT count(*) FROM transactions WHERE tx_id <> '{tx}' AND refunds = 0 AND refunded_amount = 0"
    ));
    assert_eq!(untouched, vec![vec!["1".to_string()]], "the other checkout unrefunded");
    let kinds = db.query(&format!(
        "SELECT kind FROM ledger WHERE tx_id = '{tx}' AND kind IN ('return', 'clawback') ORDER BY n"
    ));
    assert!(!kinds.is_empty(), "the refund's ledger entries: {kinds:?}");
    assert_ledger_projected(db, hub, id);
}

#[test]
fn a_refund_finds_its_checkout_at_the_hub_embedded() {
    embedded(a_refund_finds_its_checkout_at_the_hub)
}

#[test]
fn a_refund_finds_its_checkout_at_the_hub_on_postgres() {
    postgres("refund", a_refund_finds_its_checkout_at_the_hub)
}

/// One card enrolled at two offline shops: the hub lists the conflict, the first
/// enrolment keeps the card everywhere, and an operator's merge moves the other member's
/// points into it, on either store.
fn a_card_enrolled_twice_is_a_conflict_an_operator_merges(kind: Kind) {
    let root = tempfile::tempdir().unwrap();
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let hub = start(root.path(), &kind, &[("T1", s1.as_path()), ("T2", s2.as_path())]);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let t2 = Shop::open(root.path(), "T2", &hub, &s2);
    let card = "0E000009";
    t1.proxy.down(true);
    t2.proxy.down(true);
    let first = t1.enrol(card, "13900000091");
    let second = t2.enrol(card, "13900000092");
    let at_t1 = t1.commit(card, "s1", 10_000, 0).unwrap()["points_earned"]
        .as_i64()
        .unwrap();
    let at_t2 = t2.commit(card, "s2", 20_000, 0).unwrap()["points_earned"]
        .as_i64()
        .unwrap();
    for shop in [&t1, &t2] {
        let mark = last_sync(shop);
        shop.proxy.down(false);
        shop.wait_synced(&mark);
    }
    let listed = hub.client().get_json("/v1/hub/conflicts", 200)["conflicts"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["members"], json!([first, second]));
    let resolve = format!("/v1/hub/conflicts/{}/resolve", listed[0]["id"].as_str().unwrap());
    let e = hub
        .client()
        .post_json(&resolve, &json!({"keep": "m-nobody", "merge": true}), &[], 400);
    assert_eq!(code(&e), "invalid_input", "{e}");
    let e = hub.client().post_json(
        "/v1/hub/conflicts/c-nope/resolve",
        &json!({"keep": first, "merge": true}),
        &[],
        404,
    );
    assert_eq!(code(&e), "not_found", "{e}");
    hub.client()
        .post_json(&resolve, &json!({"keep": first, "merge": true}), &[], 200);
    assert_eq!(hub.client().get_json("/v1/hub/conflicts", 200)["conflicts"], json!([]));
    let merged = hub_member(&hub, &second);
    assert_eq!(
        (merged["status"].as_str(), merged["balance"].as_i64()),
        (Some("merged"), Some(0)),
        "{merged}"
    );
    assert_eq!(hub_member(&hub, &first)["balance"], at_t1 + at_t2);
    let e = hub
        .client()
        .post_json(&resolve, &json!({"keep": first, "merge": true}), &[], 400);
    assert_eq!(code(&e), "invalid_input", "resolved already: {e}");
    for shop in [&t1, &t2] {
        eventually(30, &format!("{} shows the merged balance", shop.id), || {
            (shop.balance(card) == Some(at_t1 + at_t2)).then_some(())
        });
    }
    if let Kind::Postgres(db) = &kind {
        // The points moved show in both members' projected ledgers.
        assert_ledger_projected(db, &hub, &first);
        assert_ledger_projected(db, &hub, &second);
    }
}

#[test]
fn a_card_enrolled_twice_is_a_conflict_an_operator_merges_embedded() {
    embedded(a_card_enrolled_twice_is_a_conflict_an_operator_merges)
}

#[test]
fn a_card_enrolled_twice_is_a_conflict_an_operator_merges_on_postgres() {
    postgres("conflict", a_card_enrolled_twice_is_a_conflict_an_operator_merges)
}

/// The terminals view knows each stream's last contact and how much of the feed it has
/// not pulled: a terminal that pulls is caught up; one stopped while others change falls
/// behind by what changed, and its last contact stays where it stopped.
fn terminals_show_last_contact_and_what_is_not_pulled(kind: Kind) {
    let root = tempfile::tempdir().unwrap();
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let hub = start(root.path(), &kind, &[("T1", s1.as_path()), ("T2", s2.as_path())]);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let t2 = Shop::open(root.path(), "T2", &hub, &s2);
    let stream = |id: &str| {
        let all = hub.client().get_json("/v1/hub/terminals", 200);
        let mine: Vec<_> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["terminal_id"] == id)
            .cloned()
            .collect();
        assert_eq!(mine.len(), 1, "{all}");
        mine[0].clone()
    };
    let cards = ["0E000001", "0E000002"];
    for (i, card) in cards.iter().enumerate() {
        t1.enrol(card, &format!("1390000040{i}"));
    }
    for card in cards {
        eventually(30, &format!("T2 knows {card}"), || {
            t2.c().get(&format!("/v1/cards/{card}")).ok().filter(|r| r.0 == 200)
        });
    }
    t2.commit(cards[0], "t2-sale", 1000, 0).unwrap();
    t2.wait_synced(&last_sync(&t2));
    // Both pull every round: each is caught up with the feed soon.
    for id in ["T1", "T2"] {
        eventually(30, &format!("{id} caught up"), || {
            let t = stream(id);
            (t["records_behind"] == 0).then_some(t)
        });
        let t = stream(id);
        let at = t["last_contact"].as_str().unwrap_or_else(|| panic!("{t}"));
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{t}");
    }
    // T2 away: T1's new members are two feed entries T2 has not pulled.
    t2.proxy.down(true);
    let away = stream("T2")["last_contact"].clone();
    for (i, card) in ["0E000003", "0E000004"].iter().enumerate() {
        t1.enrol(card, &format!("1390000041{i}"));
    }
    t1.wait_synced(&last_sync(&t1));
    eventually(30, "T2 is behind by what T1 enrolled", || {
        (stream("T2")["records_behind"] == 2).then_some(())
    });
    assert_eq!(stream("T2")["last_contact"], away, "no contact while away");
    eventually(30, "T1 caught up", || {
        (stream("T1")["records_behind"] == 0).then_some(())
    });
    // Back: it pulls what it missed.
    t2.proxy.down(false);
    eventually(30, "T2 caught up again", || {
        (stream("T2")["records_behind"] == 0).then_some(())
    });
    assert_ne!(stream("T2")["last_contact"], away, "in contact again");
}

#[test]
fn terminals_show_last_contact_and_what_is_not_pulled_embedded() {
    embedded(terminals_show_last_contact_and_what_is_not_pulled)
}

#[test]
fn terminals_show_last_contact_and_what_is_not_pulled_on_postgres() {
    postgres("contact", terminals_show_last_contact_and_what_is_not_pulled)
}

/// The daily pass on either store: a member whose birthday is today gets the birthday
/// trigger's coupon once, from two passes run at once and a third after them, and the
/// coupon reaches the terminal; a member without a birthday gets nothing.
fn a_birthday_coupon_is_issued_once_and_reaches_the_terminal(kind: Kind) {
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let hub = start(root.path(), &kind, &[("T1", s1.as_path())]);
    let t1 = Shop::open(root.path(), "T1", &hub, &s1);
    let hc = hub.client();
    let run = || {
        hc.post_json("/v1/hub/triggers/run", &json!({}), &[], 200)["coupons_issued"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(run(), 0, "the shipped rules have no daily trigger");
    // The hub's timezone (Asia/Shanghai) decides what today is.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%m-%d")
        .to_string();
    let body = json!({"card": "0E000001", "name": "Ann", "phone": "13900000060", "birthday": today});
    let id = t1.c().post_json("/v1/members", &body, &[], 201)["member_id"]
        .as_str()
        .unwrap()
        .to_string();
    let plain = t1.enrol("0E000002", "13900000061");
    t1.wait_synced(&last_sync(&t1));
    let base = std::fs::read_to_string(support::daemon::repo("config/rules.toml")).unwrap();
    let v2 = base.replacen("version = 1", "version = 2", 1)
        + "\n[[triggers]]\nid = \"bday\"\non = \"birthday\"\ncoupon = \"welcome5\"\n";
    let (status, text) = hc.post("/v1/hub/rulesets", &v2, &[]).unwrap();
    assert_eq!(status, 201, "{text}");
    let together: Vec<u64> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2).map(|_| s.spawn(run)).collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(together.iter().sum::<u64>(), 1, "two passes at once: {together:?}");
    assert_eq!(run(), 0, "once a year");
    let issuers = |coupons: &serde_json::Value| -> Vec<String> {
        coupons["coupons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["issued_by"].as_str().unwrap().to_string())
            .collect()
    };
    let at_hub = hc.get_json(&format!("/v1/hub/members/{id}/coupons"), 200);
    assert_eq!(issuers(&at_hub), vec!["trigger:bday"], "{at_hub}");
    let none = hc.get_json(&format!("/v1/hub/members/{plain}/coupons"), 200);
    assert_eq!(issuers(&none), Vec::<String>::new(), "{none}");
    let coupon_code = at_hub["coupons"][0]["code"].clone();
    if let Kind::Postgres(db) = &kind {
        let rows = db.query("SELECT code, member_id, issued_by FROM coupons");
        let want = vec![
            coupon_code.as_str().unwrap().to_string(),
            id.clone(),
            "trigger:bday".into(),
        ];
        assert_eq!(rows, vec![want], "the projection has the coupon");
    }
    eventually(30, "T1 holds the birthday coupon", || {
        let held = t1.c().get_json(&format!("/v1/members/{id}/coupons"), 200);
        (held["coupons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == coupon_code))
        .then_some(())
    });
}

#[test]
fn a_birthday_coupon_is_issued_once_and_reaches_the_terminal_embedded() {
    embedded(a_birthday_coupon_is_issued_once_and_reaches_the_terminal)
}

#[test]
fn a_birthday_coupon_is_issued_once_and_reaches_the_terminal_on_postgres() {
    postgres("triggers", a_birthday_coupon_is_issued_once_and_reaches_the_terminal)
}
