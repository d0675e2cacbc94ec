//! Schema migrations: SQL files compiled in, applied in order at start-up (and by `hub
//! migrate`) in one transaction, each recorded in `schema_migrations`. Hub processes
//! starting together take an advisory lock, so one applies and the others see it done.
//! A migration that adds to the projection fills it from the state already kept.

use deadpool_postgres::Client;

/// (version, name, SQL), in order. A released file is never edited: a change is a new file.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "hub", include_str!("migrations/0001_hub.sql")),
    (2, "projection", include_str!("migrations/0002_projection.sql")),
    (3, "contact", include_str!("migrations/0003_contact.sql")),
    (4, "ledger", include_str!("migrations/0004_ledger.sql")),
];

/// The advisory lock key of migrations (any constant the hub alone uses).
const MIGRATION_LOCK: i64 = 0x6c6f_7961_6c74_7964;

/// Applies the migrations the database lacks; returns the versions applied now. A
/// database that a newer hub migrated is refused (this one would misread it).
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, String> {
    run(client).await.map_err(|e| match e {
        Refused::Db(e) => super::describe(&e),
        Refused::Fill(e) => format!("filling the projection: {}", e.message),
        Refused::Newer(v) => format!(
            "the database has schema version {v}, newer than this hub's {}: run the newer loyaltyd",
            latest()
        ),
    })
}

enum Refused {
    Db(tokio_postgres::Error),
    Fill(crate::error::Error),
    Newer(i32),
}

impl From<tokio_postgres::Error> for Refused {
    fn from(e: tokio_postgres::Error) -> Refused {
        Refused::Db(e)
    }
}

async fn run(client: &mut Client) -> Result<Vec<i32>, Refused> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Some(&newer) = done.iter().filter(|v| **v > latest()).max() {
        return Err(Refused::Newer(newer));
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        if *version == 4 {
            // The ledger and refunds of a hub that ran before them.
            super::ledger::backfill(&tx).await.map_err(Refused::Fill)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        applied.push(*version);
    }
    tx.commit().await?;
    Ok(applied)
}

/// The newest version this build knows: a database past it was migrated by a newer hub.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}
