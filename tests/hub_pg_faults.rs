//! The hub on PostgreSQL under faults: two hub processes on one database, each shop's
//! pushes landing on either; a hub killed with SIGKILL while a shop pushes its backlog;
//! the database restarted while one does; every database connection cut at once; and
//! the terminals retrying through all of it. Nothing lost, nothing applied twice, and
//! every balance the sum of what the terminals answered, the same at both hubs and both
//! shops.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use support::eventually;
use support::hub::{secret_file, Hub};
use support::pg::PgDb;
use support::shop::{hub_member, last_sync, Shop};
use support::tcp_cut::TcpCut;

/// One test at a time on the shared server: the first restarts it, which would end
/// another test's connections mid-way (a hub starting then stops with the server's
/// "terminating connection due to administrator command").
static SERVER: Mutex<()> = Mutex::new(());

fn server() -> std::sync::MutexGuard<'static, ()> {
    SERVER.lock().unwrap_or_else(|p| p.into_inner())
}

fn held(hub: &Hub, id: &str) -> (u64, u64, u64) {
    let all = hub.client().get_json("/v1/hub/terminals", 200);
    all.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["terminal_id"] == id)
        .fold((0, 0, 0), |(r, d, s), t| {
            (
                r + t["records"].as_u64().unwrap(),
                d + t["duplicates"].as_u64().unwrap(),
                s + t["skipped"].as_u64().unwrap(),
            )
        })
}

fn restart_database(dir: &str) {
    let script = support::daemon::repo("scripts/pg-test-server.sh");
    let st = std::process::Command::new("bash")
        .arg(script)
        .args(["restart", dir])
        .status()
        .unwrap();
    assert!(st.success(), "restarting the test database");
}

#[test]
fn two_hubs_one_database_through_kills_restarts_and_cuts_on_postgres() {
    let _server = server();
    let Some(db) = PgDb::create("twohubs") else { return };
    let pg_dir = std::env::var("LOYALTYD_TEST_PG_DIR").ok();
    if pg_dir.is_none() {
        eprintln!("*** LOYALTYD_TEST_PG_DIR is unset: the database restart is left out ***");
    }
    let root = tempfile::tempdir().unwrap();
    let cut = TcpCut::start(&db.addr());
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let terminals = [("T1", s1.as_path()), ("T2", s2.as_path())];
    let (dir_a, dir_b) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let extra = db.store_config_via(&cut.addr);
    let start = |dir: &Path| Hub::start_with(dir, &terminals, "127.0.0.1:0", &extra);
    let mut a = start(&dir_a);
    let b = start(&dir_b);
    let t1 = Shop::open(root.path(), "T1", &a, &s1);
    let t2 = Shop::open(root.path(), "T2", &b, &s2);

    let cards = ["0E000001", "0E000002", "0E000003", "0E000004"];
    let mut members = HashMap::new();
    for (i, card) in cards.iter().enumerate() {
        let shop = if i % 2 == 0 { &t1 } else { &t2 };
        members.insert(card.to_string(), shop.enrol(card, &format!("1390000010{i}")));
    }
    let mut made = HashMap::from([("T1", 2u64), ("T2", 2u64)]);
    for card in cards {
        for s in [&t1, &t2] {
            eventually(30, &format!("{} knows {card}", s.id), || {
                s.c().get(&format!("/v1/cards/{card}")).ok().filter(|r| r.0 == 200)
            });
        }
    }
    let mut expected: HashMap<String, i64> = cards.iter().map(|c| (c.to_string(), 0)).collect();
    let mut n = 0;
    let mut sales = |shop: &Shop, count: usize, made: &mut HashMap<&str, u64>| {
        for _ in 0..count {
            n += 1;
            let card = cards[n % cards.len()];
            let r = shop
                .commit(card, &format!("{}-{n}", shop.id), 1000 + 10 * n as i64, 0)
                .unwrap();
            *expected.get_mut(card).unwrap() += r["points_earned"].as_i64().unwrap();
            *made.get_mut(shop.id).unwrap() += 1;
        }
    };

    // Both hubs take pushes; then T1 moves to B and T2 to A, and back.
    sales(&t1, 10, &mut made);
    sales(&t2, 10, &mut made);
    t1.proxy.set_upstream(&b.addr());
    t2.proxy.set_upstream(&a.addr());
    sales(&t1, 10, &mut made);
    sales(&t2, 10, &mut made);

    // A backlog at T2 (offline), pushed to A, which is killed as the push begins.
    t2.proxy.down(true);
    sales(&t2, 40, &mut made);
    let pushes_before = t2.proxy.applied().len();
    t2.proxy.down(false);
    eventually(30, "T2 pushes to A", || {
        (t2.proxy.applied().len() > pushes_before).then_some(())
    });
    a.kill9();
    // T2 retries into B meanwhile; A comes back.
    t2.proxy.set_upstream(&b.addr());
    sales(&t2, 5, &mut made);
    a = start(&dir_a);
    t1.proxy.set_upstream(&a.addr());

    // The database restarts while T1 pushes a backlog.
    if let Some(dir) = &pg_dir {
        t1.proxy.down(true);
        sales(&t1, 40, &mut made);
        t1.proxy.down(false);
        restart_database(dir);
        sales(&t1, 5, &mut made);
    }

    // Every database connection of both hubs cut at once, twice, while both push.
    sales(&t1, 10, &mut made);
    sales(&t2, 10, &mut made);
    let mut cut_conns = cut.cut();
    sales(&t1, 5, &mut made);
    std::thread::sleep(Duration::from_millis(300));
    cut_conns += cut.cut();
    sales(&t2, 5, &mut made);
    assert!(cut_conns > 0, "connections were cut");

    let mark = last_sync(&t1).max(last_sync(&t2));
    t1.wait_synced(&mark);
    t2.wait_synced(&mark);
    for hub in [&a, &b] {
        for shop in ["T1", "T2"] {
            let (records, _, skipped) = held(hub, shop);
            assert_eq!(records, made[shop], "records of {shop} held, once each");
            assert_eq!(skipped, 0, "every record of {shop} applied");
        }
        for (card, id) in &members {
            assert_eq!(hub_member(hub, id)["balance"], expected[card], "balance of {card}");
        }
    }
    for s in [&t1, &t2] {
        for card in cards {
            let want = expected[card];
            eventually(30, &format!("{} shows {card} at {want}", s.id), || {
                (s.balance(card) == Some(want)).then_some(())
            });
        }
    }
    let rows = db.query("SELECT count(*), count(DISTINCT (terminal_id, epoch, seq)) FROM terminal_records");
    let total = (made["T1"] + made["T2"]).to_string();
    assert_eq!(rows, vec![vec![total.clone(), total]], "each record held once");
    // The projected ledger, written by both hubs through the faults: each member's
    // entries numbered without gaps and adding up to its balance.
    let off = db.query(
        "SELECT m.member_id, m.balance, l.sum, l.count, l.last FROM members m \
         LEFT JOIN (SELECT member_id, sum(points) AS sum, count(*) AS count, max(n) + 1 AS last \
         FROM ledger GROUP BY 1) l USING (member_id) \
         WHERE l.sum IS DISTINCT FROM m.balance OR l.count <> l.last",
    );
    assert!(off.is_empty(), "ledger rows that do not add up: {off:?}");
    let ledgers = db.query("SELECT count(DISTINCT member_id) FROM ledger");
    assert_eq!(
        ledgers,
        vec![vec![members.len().to_string()]],
        "every member has a ledger"
    );
    println!(
        "two hubs: T1 {:?} T2 {:?} (records, duplicates, skipped); {cut_conns} database connections cut",
        held(&a, "T1"),
        held(&a, "T2")
    );
}

/// Two hub processes on one database run the daily pass at once, both reading their
/// candidates before either writes (the head row is held meanwhile, so both writes
/// queue): the one that writes second decides again over what the first committed, and
/// the member gets one birthday coupon.
#[test]
fn two_hubs_passing_at_once_issue_a_coupon_once_on_postgres() {
    let _server = server();
    let Some(db) = PgDb::create("twopasses") else { return };
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let terminals = [("T1", s1.as_path())];
    let (dir_a, dir_b) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let start = |dir: &Path| Hub::start_with(dir, &terminals, "127.0.0.1:0", &db.store_config());
    let a = start(&dir_a);
    let t1 = Shop::open(root.path(), "T1", &a, &s1);
    let base = std::fs::read_to_string(support::daemon::repo("config/rules.toml")).unwrap();
    let v2 = base.replacen("version = 1", "version = 2", 1)
        + "\n[[triggers]]\nid = \"bday\"\non = \"birthday\"\ncoupon = \"welcome5\"\n";
    let (status, text) = a.client().post("/v1/hub/rulesets", &v2, &[]).unwrap();
    assert_eq!(status, 201, "{text}");
    // B starts with the published ruleset; its pass at start-up (nobody due yet) leaves
    // the trigger day marker.
    let b = start(&dir_b);
    eventually(30, "B's pass at start-up is done", || {
        let q = "SELECT count(*) FROM hub_kv WHERE key = convert_to('Mtriggerday', 'UTF8')";
        (db.query(q)[0][0] == "1").then_some(())
    });
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%m-%d")
        .to_string();
    let body = serde_json::json!({"card": "0E100001", "name": "Ann", "phone": "13900000160", "birthday": today});
    let id = t1.c().post_json("/v1/members", &body, &[], 201)["member_id"]
        .as_str()
        .unwrap()
        .to_string();
    t1.wait_synced(&last_sync(&t1));
    let run = |hub: &Hub| {
        let c = hub.client();
        move || {
            c.post_json("/v1/hub/triggers/run", &serde_json::json!({}), &[], 200)["coupons_issued"]
                .as_u64()
                .unwrap()
        }
    };
    let held = db.hold_head();
    let (ra, rb) = (std::thread::spawn(run(&a)), std::thread::spawn(run(&b)));
    eventually(30, "both passes wait for the head row", || {
        (db.lock_waiters() >= 2).then_some(())
    });
    drop(held);
    let issued = [ra.join().unwrap(), rb.join().unwrap()];
    assert_eq!(issued.iter().sum::<u64>(), 1, "A and B issued {issued:?}");
    assert_eq!((run(&a)(), run(&b)()), (0, 0), "once a year");
    let coupons = a.client().get_json(&format!("/v1/hub/members/{id}/coupons"), 200);
    assert_eq!(coupons["coupons"].as_array().unwrap().len(), 1, "{coupons}");
    assert_eq!(coupons["coupons"][0]["issued_by"], "trigger:bday", "{coupons}");
}

/// A database that cannot be reached at start-up: retries with backoff, each logged with
/// the URL (password hidden), then a clear error and a non-zero exit.
#[test]
fn an_unreachable_database_is_retried_then_named_in_the_error() {
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = root.path().join("hub.token");
    std::fs::write(&token, "hub-operator-token-0123\n").unwrap();
    let config = root.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nrules = {:?}\ntoken_file = {:?}\n\
             [store]\nkind = \"postgres\"\nurl = \"postgres://hub:s3cret@127.0.0.1:{port}/loyalty\"\n\
             connect_retry_secs = 2\n",
            root.path().join("hub").display().to_string(),
            support::daemon::repo("config/rules.toml").display().to_string(),
            token.display().to_string(),
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = support::loyaltyd_command()
        .arg("--config")
        .arg(&config)
        .args(["hub", "serve"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    let shown = format!("postgres://hub:***@127.0.0.1:{port}/loyalty");
    assert!(log.matches("retrying in").count() >= 2, "retries are logged: {log}");
    assert!(log.contains(&shown), "the URL is named: {log}");
    assert!(log.contains("cannot use PostgreSQL"), "{log}");
    assert!(!log.contains("s3cret"), "the password never shows: {log}");
    assert!(started.elapsed() < Duration::from_secs(30), "it gives up in time");
}
