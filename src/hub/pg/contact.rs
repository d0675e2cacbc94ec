//! Each terminal stream's last contact on PostgreSQL (`terminal_contact`, see
//! `store::Contact`): one small upsert per accepted push or pull, outside the head lock,
//! so that every hub process on the database sees every contact.

use deadpool_postgres::GenericClient;

use super::pg_error;
use crate::error::Result;
use crate::hub::store::TerminalView;
use crate::model::Ts;
use crate::store::base;

/// Every terminal stream, with its last contact and the feed entries past its last
/// pull's cursor.
pub async fn terminals(db: &impl GenericClient, tz: &chrono_tz::Tz) -> Result<Vec<TerminalView>> {
    let st = db
        .prepare_cached(
            "SELECT t.terminal_id, t.epoch, t.acked_seq, t.records, t.duplicates, t.skipped, t.untrusted_clock, \
             c.pushed_at, c.pulled_at, c.pull_cursor \
             FROM terminals t LEFT JOIN terminal_contact c USING (terminal_id, epoch) \
             ORDER BY t.terminal_id, t.epoch",
        )
        .await
        .map_err(pg_error)?;
    let count = db
        .prepare_cached("SELECT count(*) FROM hub_kv WHERE key >= $1 AND key < $2")
        .await
        .map_err(pg_error)?;
    let rows = db.query(&st, &[]).await.map_err(pg_error)?;
    let behind = futures_util::future::try_join_all(rows.iter().map(|r| {
        let cursor = r.get::<_, Option<i64>>(9);
        let count = &count;
        async move {
            let Some(cursor) = cursor else { return Ok(None) };
            let (from, to) = base::feed_range(cursor as u64);
            let n: i64 = db.query_one(count, &[&from, &to]).await?.get(0);
            Ok::<_, tokio_postgres::Error>(Some(n as u64))
        }
    }))
    .await
    .map_err(pg_error)?;
    Ok(rows
        .iter()
        .zip(behind)
        .map(|(r, behind)| {
            let t = crate::store::HubTerminal {
                terminal_id: r.get(0),
                epoch: r.get::<_, i64>(1) as u64,
                acked: r.get::<_, i64>(2) as u64,
                records: r.get::<_, i64>(3) as u64,
                duplicates: r.get::<_, i64>(4) as u64,
                skipped: r.get::<_, i64>(5) as u64,
                untrusted_clock: r.get::<_, i64>(6) as u64,
            };
            let contact = crate::store::Contact {
                pushed_at: r.get(7),
                pulled_at: r.get(8),
                pull_cursor: r.get::<_, Option<i64>>(9).map(|c| c as u64),
            };
            TerminalView::new(t, Some(contact), behind, tz)
        })
        .collect())
}

/// Notes a contact of a stream: a push accepted at `pushed`, or a pull answered at
/// `pulled` with its cursor (an older pull noted late moves nothing, as `Contact::pulled`).
pub async fn note_contact(
    db: &impl GenericClient,
    terminal: &str,
    epoch: u64,
    pushed: Option<Ts>,
    pulled: Option<(Ts, u64)>,
) -> Result<()> {
    let st = db
        .prepare_cached(
            "INSERT INTO terminal_contact (terminal_id, epoch, pushed_at, pulled_at, pull_cursor) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (terminal_id, epoch) DO UPDATE SET \
             pushed_at = GREATEST(terminal_contact.pushed_at, EXCLUDED.pushed_at), \
             pull_cursor = CASE WHEN EXCLUDED.pulled_at IS NOT NULL AND (terminal_contact.pulled_at IS NULL \
                 OR EXCLUDED.pulled_at >= terminal_contact.pulled_at) \
                 THEN EXCLUDED.pull_cursor ELSE terminal_contact.pull_cursor END, \
             pulled_at = GREATEST(terminal_contact.pulled_at, EXCLUDED.pulled_at)",
        )
        .await
        .map_err(pg_error)?;
    let (pulled_at, cursor) = (pulled.map(|p| p.0), pulled.map(|p| p.1 as i64));
    db.execute(&st, &[&terminal, &(epoch as i64), &pushed, &pulled_at, &cursor])
        .await
        .map_err(pg_error)?;
    Ok(())
}
