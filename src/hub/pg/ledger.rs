//! The projection of members' points ledgers (`ledger`) and of checkouts' refunds (the
//! refund columns of `transactions`), from the ledger page and transaction note keys a
//! step writes.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::pg_error;
use crate::error::Result;
use crate::store::base::{self, Projected, TxRefunds};
use crate::store::LedgerEntry;

/// Entries per ledger page (`store::history`): a page's rows are `first .. first + PAGE`.
const PAGE: i64 = 32;

/// The ledger pages a step wrote: each page's entries as rows, and each page's extent.
#[derive(Default)]
pub struct Ledger {
    member: Vec<String>,
    n: Vec<i64>,
    at: Vec<i64>,
    kind: Vec<&'static str>,
    points: Vec<i64>,
    balance_after: Vec<i64>,
    tx_id: Vec<Option<String>>,
    reason: Vec<Option<String>>,
    by: Vec<Option<String>>,
    page_member: Vec<String>,
    page_first: Vec<i64>,
    page_len: Vec<i64>,
}

impl Ledger {
    /// A page written: its entries, numbered from `first`.
    pub fn page(&mut self, member: String, first: u64, entries: Vec<LedgerEntry>) {
        let first = first as i64;
        self.page_len.push(entries.len() as i64);
        for (i, e) in entries.into_iter().enumerate() {
            self.member.push(member.clone());
            self.n.push(first + i as i64);
            self.at.push(e.at);
            self.kind.push(e.kind.as_str());
            self.points.push(e.points);
            self.balance_after.push(e.balance_after);
            self.tx_id.push(e.tx_id);
            self.reason.push(e.reason);
            self.by.push(e.by);
        }
        self.page_member.push(member);
        self.page_first.push(first);
    }

    /// A page removed: none of its rows stay.
    pub fn removed(&mut self, member: String, first: u64) {
        self.page_member.push(member);
        self.page_first.push(first as i64);
        self.page_len.push(0);
    }

    /// Upserts the pages' entries and drops rows past each page's end (a page rewritten
    /// shorter or removed); the two touch different rows, so they may run in any order.
    pub async fn write(&self, db: &impl GenericClient) -> std::result::Result<u64, tokio_postgres::Error> {
        if self.page_member.is_empty() {
            return Ok(0);
        }
        let upsert = async {
            if self.member.is_empty() {
                return Ok(0);
            }
            // Instants are µs since the epoch: made a timestamptz exactly, in SQL. A page
            // written again holds the entries it had: those rows are left as they are.
            let st = db
                .prepare_cached(
                    "INSERT INTO ledger (member_id, n, at, kind, points, balance_after, tx_id, reason, by) \
                     SELECT m, n, timestamptz 'epoch' + at * interval '1 microsecond', kind, points, balance_after, \
                     tx_id, reason, by_ FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], \
                     $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[]) \
                     AS u(m, n, at, kind, points, balance_after, tx_id, reason, by_) \
                     ON CONFLICT (member_id, n) DO UPDATE SET at = EXCLUDED.at, kind = EXCLUDED.kind, \
                     points = EXCLUDED.points, balance_after = EXCLUDED.balance_after, tx_id = EXCLUDED.tx_id, \
                     reason = EXCLUDED.reason, by = EXCLUDED.by \
                     WHERE (ledger.at, ledger.kind, ledger.points, ledger.balance_after, ledger.tx_id, \
                     ledger.reason, ledger.by) IS DISTINCT FROM (EXCLUDED.at, EXCLUDED.kind, EXCLUDED.points, \
                     EXCLUDED.balance_after, EXCLUDED.tx_id, EXCLUDED.reason, EXCLUDED.by)",
                )
                .await?;
            let params: [&(dyn ToSql + Sync); 9] = [
                &self.member,
                &self.n,
                &self.at,
                &self.kind,
                &self.points,
                &self.balance_after,
                &self.tx_id,
                &self.reason,
                &self.by,
            ];
            db.execute(&st, &params).await
        };
        let trim = async {
            let st = db
                .prepare_cached(
                    "DELETE FROM ledger l USING unnest($1::text[], $2::bigint[], $3::bigint[]) AS p(m, first, len) \
                     WHERE l.member_id = p.m AND l.n >= p.first + p.len AND l.n < p.first + $4",
                )
                .await?;
            db.execute(&st, &[&self.page_member, &self.page_first, &self.page_len, &PAGE])
                .await
        };
        let (n, _) = futures_util::future::try_join(upsert, trim).await?;
        Ok(n)
    }
}

/// The checkouts whose refunds a step changed.
#[derive(Default)]
pub struct Refunds {
    tx: Vec<String>,
    refunds: Vec<i32>,
    amount: Vec<i64>,
    returned: Vec<i64>,
    clawed_back: Vec<i64>,
}

impl Refunds {
    pub fn push(&mut self, tx_id: String, r: &TxRefunds) {
        self.tx.push(tx_id);
        self.refunds.push(r.refunds);
        self.amount.push(r.amount);
        self.returned.push(r.points_returned);
        self.clawed_back.push(r.points_clawed_back);
    }

    /// Sets the refund columns of the checkouts. Run after the step's other statements:
    /// a checkout refunded in the step that brings it is inserted by one of them.
    pub async fn update(&self, db: &impl GenericClient) -> std::result::Result<u64, tokio_postgres::Error> {
        if self.tx.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached(
                "UPDATE transactions t SET refunds = u.refunds, refunded_amount = u.amount, \
                 points_returned = u.returned, points_clawed_back = u.clawed_back \
                 FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[]) \
                 AS u(tx_id, refunds, amount, returned, clawed_back) WHERE t.tx_id = u.tx_id",
            )
            .await?;
        db.execute(
            &st,
            &[&self.tx, &self.refunds, &self.amount, &self.returned, &self.clawed_back],
        )
        .await
    }
}

/// Keys read per round of `backfill`.
const FILL_CHUNK: i64 = 512;

/// Fills `ledger` and the refund columns from every ledger page and transaction note
/// `hub_kv` holds, a chunk of keys at a time (migration 4 on a hub with history).
pub async fn backfill(db: &impl GenericClient) -> Result<()> {
    let st = db
        .prepare_cached("SELECT key, value FROM hub_kv WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3")
        .await
        .map_err(pg_error)?;
    for prefix in [base::LEDGER_PAGES, base::TX_NOTES] {
        let (mut from, end) = (prefix.to_vec(), vec![prefix[0] + 1]);
        loop {
            let rows = db.query(&st, &[&from, &end, &FILL_CHUNK]).await.map_err(pg_error)?;
            let (mut ledger, mut refunds) = (Ledger::default(), Refunds::default());
            for row in &rows {
                match base::project(row.get(0), row.get(1))? {
                    Some(Projected::Ledger(member, first, entries)) => ledger.page(member, first, entries),
                    Some(Projected::Refunds(tx, r)) => refunds.push(tx, &r),
                    _ => {}
                }
            }
            ledger.write(db).await.map_err(pg_error)?;
            refunds.update(db).await.map_err(pg_error)?;
            match rows.last() {
                Some(last) if rows.len() as i64 == FILL_CHUNK => {
                    from = last.get::<_, Vec<u8>>(0);
                    from.push(0);
                }
                _ => break,
            }
        }
    }
    Ok(())
}
