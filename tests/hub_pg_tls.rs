//! The hub's connection to PostgreSQL over TLS: `sslmode=verify-full` with `[store]
//! ca_file` against the test server's certificate (scripts/pg-test-server.sh makes one
//! with scripts/make-hub-cert.sh), a certificate of another CA refused at start-up, and
//! `sslmode=require` against a server that offers no TLS refused too.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::eventually;
use support::hub::{secret_file, Hub};
use support::pg::PgDb;
use support::shop::Shop;

/// The test server's CA (LOYALTYD_TEST_PG_DIR/tls/ca.pem), or None (the test skips;
/// under CI=true it fails).
fn server_ca() -> Option<PathBuf> {
    let ca = std::env::var("LOYALTYD_TEST_PG_DIR")
        .ok()
        .map(|d| Path::new(&d).join("tls/ca.pem"));
    match ca {
        Some(ca) if ca.exists() => Some(ca),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "LOYALTYD_TEST_PG_DIR/tls/ca.pem is missing under CI=true; .ci/run starts the test server with TLS"
            );
            eprintln!("\n*** SKIPPED: no LOYALTYD_TEST_PG_DIR/tls/ca.pem (scripts/pg-test-server.sh makes it with openssl) ***\n");
            None
        }
    }
}

fn store(url: &str, ca: Option<&Path>) -> String {
    let mut s = format!("[store]\nkind = \"postgres\"\nurl = {url:?}\npool_size = 4\nconnect_retry_secs = 30\n");
    if let Some(ca) = ca {
        s.push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
    }
    s
}

/// `hub serve` with `store` as its `[store]`, expected to exit: its output.
fn serve_fails(root: &Path, store: &str) -> Output {
    let token = root.join("hub.token");
    std::fs::write(&token, "hub-operator-token-0123\n").unwrap();
    let config = root.join("hub.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nrules = {:?}\ntoken_file = {:?}\n{store}",
        root.join("hub").display().to_string(),
        support::daemon::repo("config/rules.toml").display().to_string(),
        token.display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    let out = support::loyaltyd_command()
        .arg("--config")
        .arg(&config)
        .args(["hub", "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn verify_full_with_the_ca_file_connects_and_serves_a_push_on_postgres() {
    let Some(db) = PgDb::create("tlsfull") else { return };
    let Some(ca) = server_ca() else { return };
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let hub_dir = root.path().join("hub-a");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let url = format!("{}?sslmode=verify-full", db.url);
    let hub = Hub::start_with(
        &hub_dir,
        &[("T1", s1.as_path())],
        "127.0.0.1:0",
        &store(&url, Some(&ca)),
    );
    let shop = Shop::open(root.path(), "T1", &hub, &s1);
    let member = shop.enrol("0E00A001", "13900000301");
    eventually(30, "the hub holds the pushed member", || {
        hub.client()
            .get(&format!("/v1/hub/members/{member}"))
            .ok()
            .filter(|r| r.0 == 200)
    });
    // The hub's sessions are encrypted (this test's own session is not: NoTls).
    let q = "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE datname = current_database() AND ssl";
    let encrypted: u32 = db.query(q)[0][0].parse().unwrap();
    assert!(encrypted > 0, "the hub's connections use TLS");
}

#[test]
fn a_certificate_of_another_ca_is_refused_at_start_up_on_postgres() {
    let Some(db) = PgDb::create("tlswrongca") else { return };
    if server_ca().is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let other = root.path().join("other-ca");
    let made = Command::new("bash")
        .arg(support::daemon::repo("scripts/make-hub-cert.sh"))
        .arg(&other)
        .arg("127.0.0.1")
        .output()
        .expect("bash and openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let url = db.url.replacen("://loyaltyd@", "://loyaltyd:s3cret@", 1) + "?sslmode=verify-full";
    let started = Instant::now();
    let out = serve_fails(root.path(), &store(&url, Some(&other.join("ca.pem"))));
    let log = String::from_utf8_lossy(&out.stderr);
    let shown = url.replace("s3cret", "***");
    assert!(log.contains(&shown), "the database is named: {log}");
    assert!(
        log.contains("TLS connection was refused (sslmode=verify-full)"),
        "{log}"
    );
    // The other CA has the same name (make-hub-cert.sh), so its signature is what fails.
    assert!(log.contains("invalid peer certificate"), "why: {log}");
    assert!(!log.contains("s3cret"), "the password never shows: {log}");
    assert!(
        !log.contains("retrying in"),
        "a refused certificate is not retried: {log}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "it gives up at once");
}

/// A server without TLS: answers the client's TLS request with 'N', as PostgreSQL
/// with ssl=off does, then closes.
fn server_without_tls() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut request = [0u8; 8];
            if conn.read_exact(&mut request).is_ok() {
                let _ = conn.write_all(b"N");
            }
        }
    });
    addr
}

#[test]
fn require_against_a_server_without_tls_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let addr = server_without_tls();
    let url = format!("postgres://hub:s3cret@{addr}/loyalty?sslmode=require");
    let out = serve_fails(root.path(), &store(&url, None));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!("postgres://hub:***@{addr}/loyalty")),
        "the database is named: {log}"
    );
    assert!(log.contains("TLS connection was refused (sslmode=require)"), "{log}");
    assert!(log.contains("server does not support TLS"), "why: {log}");
    assert!(!log.contains("s3cret") && !log.contains("retrying in"), "{log}");
}
