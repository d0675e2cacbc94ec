//! The statements of the PostgreSQL hub: a step's writes (one pipelined batch), the feed,
//! the operators' listings.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::pg_error;
use crate::error::Result;
use crate::hub::store::TerminalView;
use crate::record::{Body, Record};
use crate::store::base::{self, Projected, Writes};
use crate::store::{content_hash, FeedKind};

/// Writes a step: the hub records `head + 1 ...`, the terminal records they hold, the
/// key/value changes, the new head and the projection, pipelined on one connection.
pub async fn commit(db: &impl GenericClient, head: u64, records: &[Record], writes: &Writes) -> Result<()> {
    let mut seqs = Vec::with_capacity(records.len());
    let mut encoded = Vec::with_capacity(records.len());
    let (mut t_ids, mut t_epochs, mut t_seqs, mut t_hashes, mut t_held) = (vec![], vec![], vec![], vec![], vec![]);
    for (i, rec) in records.iter().enumerate() {
        let seq = (head + 1 + i as u64) as i64;
        seqs.push(seq);
        encoded.push(rec.encode());
        if let Body::Remote(r) = &rec.body {
            t_ids.push(r.terminal_id.clone());
            t_epochs.push(r.epoch as i64);
            t_seqs.push(r.seq as i64);
            t_hashes.push(content_hash(&r.payload).to_vec());
            t_held.push(seq);
        }
    }
    let new_head = head as i64 + records.len() as i64;
    let (mut keys, mut values, mut removed) = (vec![], vec![], vec![]);
    let mut members = Members::default();
    let mut cards: HashMap<String, (String, String)> = HashMap::new();
    let mut terminals = Terminals::default();
    for (k, v) in writes {
        match v {
            Some(v) => {
                match base::project(k, v)? {
                    Some(Projected::Member(m)) => {
                        for (card, status) in &m.cards {
                            let status = format!("{status:?}").to_lowercase();
                            cards.insert(card.clone(), (m.member_id.clone(), status));
                        }
                        members.push(&m, new_head);
                    }
                    Some(Projected::Terminal(t)) => terminals.push(&t),
                    None => {}
                }
                keys.push(k.clone());
                values.push(v.clone());
            }
            None => removed.push(k.clone()),
        }
    }
    let (c_cards, c_members, c_status): (Vec<_>, Vec<_>, Vec<_>) =
        cards
            .into_iter()
            .map(|(c, (m, s))| (c, m, s))
            .fold((vec![], vec![], vec![]), |mut acc, (c, m, s)| {
                acc.0.push(c);
                acc.1.push(m);
                acc.2.push(s);
                acc
            });
    let journal = async {
        let st = db
            .prepare_cached("INSERT INTO hub_journal (seq, record) SELECT * FROM unnest($1::bigint[], $2::bytea[])")
            .await?;
        db.execute(&st, &[&seqs, &encoded]).await
    };
    let stream = async {
        if t_ids.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached(
                "INSERT INTO terminal_records (terminal_id, epoch, seq, content_hash, hub_seq) \
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bigint[])",
            )
            .await?;
        db.execute(&st, &[&t_ids, &t_epochs, &t_seqs, &t_hashes, &t_held]).await
    };
    let upserts = async {
        if keys.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached(
                "INSERT INTO hub_kv (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )
            .await?;
        db.execute(&st, &[&keys, &values]).await
    };
    let removals = async {
        if removed.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached("DELETE FROM hub_kv WHERE key = ANY($1::bytea[])")
            .await?;
        db.execute(&st, &[&removed]).await
    };
    let head_moved = async {
        let st = db.prepare_cached("UPDATE hub_head SET seq = $1 WHERE id = 1").await?;
        db.execute(&st, &[&new_head]).await
    };
    let member_rows = async {
        if members.id.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached(
                "INSERT INTO members (member_id, name, phone, tier, balance, active, merged_into, enrolled_by, \
                 visits, created_at, last_visit_at, hub_seq) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bool[], \
                 $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[]) \
                 ON CONFLICT (member_id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone, \
                 tier = EXCLUDED.tier, balance = EXCLUDED.balance, active = EXCLUDED.active, \
                 merged_into = EXCLUDED.merged_into, enrolled_by = EXCLUDED.enrolled_by, visits = EXCLUDED.visits, \
                 created_at = EXCLUDED.created_at, last_visit_at = EXCLUDED.last_visit_at, hub_seq = EXCLUDED.hub_seq",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 12] = [
            &members.id,
            &members.name,
            &members.phone,
            &members.tier,
            &members.balance,
            &members.active,
            &members.merged_into,
            &members.enrolled_by,
            &members.visits,
            &members.created_at,
            &members.last_visit_at,
            &members.hub_seq,
        ];
        db.execute(&st, &params).await
    };
    let card_rows = async {
        if c_cards.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached(
                "INSERT INTO cards (card, member_id, status) SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
                 ON CONFLICT (card) DO UPDATE SET member_id = EXCLUDED.member_id, status = EXCLUDED.status",
            )
            .await?;
        db.execute(&st, &[&c_cards, &c_members, &c_status]).await
    };
    let terminal_rows = async {
        if terminals.id.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached(
                "INSERT INTO terminals (terminal_id, epoch, acked_seq, records, duplicates, skipped, untrusted_clock) \
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
                 $6::bigint[], $7::bigint[]) \
                 ON CONFLICT (terminal_id, epoch) DO UPDATE SET acked_seq = EXCLUDED.acked_seq, \
                 records = EXCLUDED.records, duplicates = EXCLUDED.duplicates, skipped = EXCLUDED.skipped, \
                 untrusted_clock = EXCLUDED.untrusted_clock",
            )
            .await?;
        db.execute(
            &st,
            &[
                &terminals.id,
                &terminals.epoch,
                &terminals.acked,
                &terminals.records,
                &terminals.duplicates,
                &terminals.skipped,
                &terminals.untrusted,
            ],
        )
        .await
    };
    // The journal first: the terminal records refer to it (statements of one connection
    // run in the order sent, pipelined or not).
    futures_util::future::try_join4(
        journal,
        stream,
        futures_util::future::try_join3(upserts, removals, head_moved),
        futures_util::future::try_join3(member_rows, card_rows, terminal_rows),
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

#[derive(Default)]
struct Members {
    id: Vec<String>,
    name: Vec<String>,
    phone: Vec<String>,
    tier: Vec<String>,
    balance: Vec<i64>,
    active: Vec<bool>,
    merged_into: Vec<Option<String>>,
    enrolled_by: Vec<String>,
    visits: Vec<i64>,
    created_at: Vec<i64>,
    last_visit_at: Vec<Option<i64>>,
    hub_seq: Vec<i64>,
}

impl Members {
    fn push(&mut self, m: &crate::model::MemberState, seq: i64) {
        self.id.push(m.member_id.clone());
        self.name.push(m.name.clone());
        self.phone.push(m.phone.clone());
        self.tier.push(m.tier.clone());
        self.balance.push(m.ledger_balance());
        self.active.push(m.active);
        self.merged_into.push(m.merged_into.clone());
        self.enrolled_by.push(m.enrolled_by.clone());
        self.visits.push(m.visits as i64);
        self.created_at.push(m.created_at);
        self.last_visit_at.push(m.last_visit_at);
        self.hub_seq.push(seq);
    }
}

#[derive(Default)]
struct Terminals {
    id: Vec<String>,
    epoch: Vec<i64>,
    acked: Vec<i64>,
    records: Vec<i64>,
    duplicates: Vec<i64>,
    skipped: Vec<i64>,
    untrusted: Vec<i64>,
}

impl Terminals {
    fn push(&mut self, t: &crate::store::HubTerminal) {
        self.id.push(t.terminal_id.clone());
        self.epoch.push(t.epoch as i64);
        self.acked.push(t.acked as i64);
        self.records.push(t.records as i64);
        self.duplicates.push(t.duplicates as i64);
        self.skipped.push(t.skipped as i64);
        self.untrusted.push(t.untrusted_clock as i64);
    }
}

/// Feed entries in `[from, to)`, in order: `limit` of them and then the rest of the last
/// seq, so that a cursor never stops inside one seq.
pub async fn feed(
    db: &impl GenericClient,
    from: &[u8],
    to: &[u8],
    limit: usize,
) -> Result<Vec<(u64, FeedKind, String)>> {
    let st = db
        .prepare_cached("SELECT key FROM hub_kv WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3")
        .await
        .map_err(pg_error)?;
    let rows = db.query(&st, &[&from, &to, &(limit as i64)]).await.map_err(pg_error)?;
    let mut out: Vec<_> = rows
        .iter()
        .filter_map(|r| base::parse_feed_key(r.get::<_, &[u8]>(0)))
        .collect();
    if rows.len() >= limit {
        if let Some(&(last, _, _)) = out.last() {
            let (rest_from, _) = base::feed_range(last - 1);
            let (rest_to, _) = base::feed_range(last);
            let rest = db
                .query(
                    "SELECT key FROM hub_kv WHERE key >= $1 AND key < $2 ORDER BY key",
                    &[&rest_from, &rest_to],
                )
                .await
                .map_err(pg_error)?;
            out.retain(|e| e.0 != last);
            out.extend(rest.iter().filter_map(|r| base::parse_feed_key(r.get::<_, &[u8]>(0))));
        }
    }
    Ok(out)
}

pub async fn terminals(db: &impl GenericClient) -> Result<Vec<TerminalView>> {
    let st = db
        .prepare_cached(
            "SELECT terminal_id, epoch, acked_seq, records, duplicates, skipped, untrusted_clock FROM terminals \
             ORDER BY terminal_id, epoch",
        )
        .await
        .map_err(pg_error)?;
    let rows = db.query(&st, &[]).await.map_err(pg_error)?;
    Ok(rows
        .iter()
        .map(|r| TerminalView {
            terminal_id: r.get(0),
            epoch: format!("{:016x}", r.get::<_, i64>(1) as u64),
            acked_seq: r.get::<_, i64>(2) as u64,
            records: r.get::<_, i64>(3) as u64,
            duplicates: r.get::<_, i64>(4) as u64,
            skipped: r.get::<_, i64>(5) as u64,
            untrusted_clock: r.get::<_, i64>(6) as u64,
        })
        .collect())
}

/// Members with a negative balance: the overspent index, by member id.
pub async fn negative(db: &impl GenericClient) -> Result<Vec<(String, i64)>> {
    let st = db
        .prepare_cached("SELECT key, value FROM hub_kv WHERE key >= $1 AND key < $2 ORDER BY key")
        .await
        .map_err(pg_error)?;
    let end = vec![base::NEGATIVE[0] + 1];
    let rows = db.query(&st, &[&base::NEGATIVE, &end]).await.map_err(pg_error)?;
    rows.iter()
        .map(|r| base::decode_negative(r.get::<_, &[u8]>(0), r.get::<_, &[u8]>(1)))
        .collect()
}
