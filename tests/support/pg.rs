//! PostgreSQL for the hub tests: a database of the test's own on the server that
//! LOYALTYD_TEST_PG names (`scripts/pg-test-server.sh`, started by .ci/run), dropped at
//! the end. Without the variable a test skips, loudly; under CI=true it fails instead.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct PgDb {
    /// The server's URL (its maintenance database).
    pub server: String,
    pub name: String,
    /// This database's URL.
    pub url: String,
}

/// The test server's URL, or None (the caller skips) when there is none here.
pub fn server(test: &str) -> Option<String> {
    match std::env::var("LOYALTYD_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: LOYALTYD_TEST_PG is unset under CI=true; .ci/run starts the test server"
            );
            eprintln!(
                "\n*** SKIPPED {test}: LOYALTYD_TEST_PG is unset (export LOYALTYD_TEST_PG=$(scripts/pg-test-server.sh start /tmp/pg)) ***\n"
            );
            None
        }
    }
}

/// Runs one SQL statement on `url` (its own connection and runtime).
pub fn sql(url: &str, statement: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(conn);
        let out = client.batch_execute(statement).await.map_err(|e| e.to_string());
        drop(client);
        let _ = driver.await;
        out
    })
}

/// The rows of a query, each column as text (NULL as "").
pub fn query(url: &str, q: &str) -> Vec<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        let driver = tokio::spawn(conn);
        let rows = client.simple_query(q).await.unwrap();
        drop(client);
        let _ = driver.await;
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).unwrap_or("").to_string()).collect())
                }
                _ => None,
            })
            .collect()
    })
}

/// A URL with its database replaced.
fn with_database(server: &str, name: &str) -> String {
    let (base, _) = server.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

impl PgDb {
    /// A fresh database, or None when the test is to skip.
    pub fn create(test: &str) -> Option<PgDb> {
        let server = server(test)?;
        let name = format!(
            "loyaltyd_{}_{}_{}",
            test.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect::<String>()
                .to_lowercase(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sql(&server, &format!("CREATE DATABASE {name}")).unwrap();
        let url = with_database(&server, &name);
        Some(PgDb { server, name, url })
    }

    /// The hub config's `[store]` table for this database.
    pub fn store_config(&self) -> String {
        format!("[store]\nkind = \"postgres\"\nurl = {:?}\npool_size = 8\n", self.url)
    }

    /// host:port of the server.
    pub fn addr(&self) -> String {
        let rest = self.url.split_once('@').map_or(self.url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap().to_string()
    }

    /// `store_config` with the hub connecting through `addr` (a proxy) instead.
    pub fn store_config_via(&self, addr: &str) -> String {
        self.store_config().replace(&self.addr(), addr)
    }

    pub fn query(&self, q: &str) -> Vec<Vec<String>> {
        query(&self.url, q)
    }

    /// Takes the hub's writer lock (the `hub_head` row, as a hub's write does) and holds
    /// it until the answer is dropped: every hub write meanwhile waits.
    pub fn hold_head(&self) -> HeadHeld {
        let url = self.url.clone();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                let driver = tokio::spawn(conn);
                client
                    .batch_execute("BEGIN; SELECT seq FROM hub_head WHERE id = 1 FOR UPDATE")
                    .await
                    .unwrap();
                held_tx.send(()).unwrap();
                // Until the holder is dropped (the sender goes away).
                let _ = tokio::task::spawn_blocking(move || release_rx.recv()).await;
                client.batch_execute("COMMIT").await.unwrap();
                drop(client);
                let _ = driver.await;
            })
        });
        held_rx.recv().expect("the head row taken");
        HeadHeld {
            release: Some(release),
            thread: Some(thread),
        }
    }

    /// How many sessions of this database wait for a lock now.
    pub fn lock_waiters(&self) -> usize {
        let q = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
        self.query(q)[0][0].parse().unwrap()
    }
}

/// The head row held by `PgDb::hold_head`; dropping it lets the writers go on.
pub struct HeadHeld {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HeadHeld {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Err(e) = sql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}
