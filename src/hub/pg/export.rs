//! `loyaltyd hub export --to postgres://...`: an embedded hub's journal replayed into an
//! empty PostgreSQL hub, record for record at the same hub seqs, through the same
//! `apply`: the database ends with the same state (members, groups, feed, reports) and
//! the projection built as it goes; then each terminal stream's last contact.

use std::time::Instant;

use super::{contact, head, make_pool, migrate, pg_error, redacted, target, tentative, tls_refusal, write};
use crate::config::HubConfig;
use crate::error::{Error, Result};
use crate::hub::{HubStore, SledHub};
use crate::record::Record;
use crate::service::StartError;
use crate::store::base;

/// Records replayed per transaction.
const BATCH: u64 = 512;

/// Replays the hub of `cfg` (stopped: its data dir is opened) into `to`; returns the
/// records moved.
pub fn export(cfg: &HubConfig, to: &str) -> std::result::Result<u64, StartError> {
    let shown = redacted(to);
    let hub = SledHub::open(cfg)?;
    let journal = hub.engine().journal();
    let last = journal.last_seq();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::System(e.to_string()))?;
    let started = Instant::now();
    let moved = rt.block_on(async {
        let t = target(cfg, to).map_err(|e| StartError::Config(format!("--to {shown}: {e}")))?;
        let pool = make_pool(&t, 1).map_err(|e| StartError::Config(format!("--to {shown}: {e}")))?;
        let mut client = pool.get().await.map_err(|e| {
            tls_refusal(&t, &shown, &e)
                .unwrap_or_else(|| StartError::System(format!("cannot reach PostgreSQL at {shown}: {e}")))
        })?;
        migrate::migrate(&mut client)
            .await
            .map_err(|e| StartError::System(format!("migrating PostgreSQL at {shown}: {e}")))?;
        let mut first = 1;
        while first <= last {
            let upto = (first + BATCH - 1).min(last);
            let mut records = Vec::with_capacity((upto - first + 1) as usize);
            for seq in first..=upto {
                let payload = journal.read(seq).map_err(|e| StartError::Engine(e.into()))?;
                records.push(Record::decode(&payload).map_err(StartError::Engine)?);
            }
            replay(&mut client, first, &records)
                .await
                .map_err(|e| StartError::System(format!("exporting to {shown}: {}", e.message)))?;
            first = upto + 1;
        }
        // The streams' last contacts too (the feed's seqs are the same, so are cursors).
        let contacts = hub.engine().store().contacts().map_err(StartError::Engine)?;
        for ((terminal, epoch), c) in contacts {
            let pulled = c.pulled_at.zip(c.pull_cursor);
            contact::note_contact(&client, &terminal, epoch, c.pushed_at, pulled)
                .await
                .map_err(|e| StartError::System(format!("exporting to {shown}: {}", e.message)))?;
        }
        Ok::<_, StartError>(last)
    })?;
    hub.close().map_err(StartError::Engine)?;
    tracing::info!(
        "exported {moved} hub records to {shown} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(moved)
}

/// Applies hub records `first...` in one transaction, into a database whose head is
/// just before them (an export never lands on a database that holds another hub).
async fn replay(client: &mut deadpool_postgres::Client, first: u64, records: &[Record]) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let at = head(&tx, true).await?;
    if at + 1 != first {
        return Err(Error::invalid(format!(
            "the database already holds a hub (at record {at}); export into an empty database"
        )));
    }
    let mut fetched = tentative::Fetched::default();
    let writes = tentative::run(&tx, &mut fetched, at, |b| base::apply_step(b, first, records)).await?;
    write::commit(&tx, at, records, &writes).await?;
    tx.commit().await.map_err(pg_error)
}
