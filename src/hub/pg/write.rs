//! The statements of the PostgreSQL hub: a step's writes (one pipelined batch), the feed,
//! the operators' listings.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::ledger::{Ledger, Refunds};
use super::pg_error;
use crate::error::Result;
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
    let mut coupons = Coupons::default();
    let mut groups = Groups::default();
    let mut sales = Sales::default();
    let mut ledger = Ledger::default();
    let mut refunds = Refunds::default();
    for (i, rec) in records.iter().enumerate() {
        if let Body::Remote(r) = &rec.body {
            // A record that does not decode was refused before it got here.
            if let Ok(inner) = Record::decode(&r.payload) {
                if let Body::CheckoutV3(c) = &inner.body {
                    sales.push(&r.terminal_id, &inner, c, head as i64 + 1 + i as i64);
                }
            }
        }
    }
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
                    Some(Projected::Coupon(code, c)) => coupons.push(code, &c),
                    Some(Projected::Group(g)) => groups.push(&g),
                    Some(Projected::Ledger(member, first, entries)) => ledger.page(member, first, entries),
                    Some(Projected::Refunds(tx, r)) => refunds.push(tx, &r),
                    None => {}
                }
                keys.push(k.clone());
                values.push(v.clone());
            }
            None => {
                if let Some((member, first)) = base::ledger_page_of(k) {
                    ledger.removed(member, first);
                }
                removed.push(k.clone())
            }
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
    // The foreign keys of one step's rows are checked at commit (DEFERRABLE), so the
    // statements may go in any order.
    futures_util::future::try_join5(
        journal,
        stream,
        futures_util::future::try_join3(upserts, removals, head_moved),
        futures_util::future::try_join3(member_rows, card_rows, terminal_rows),
        futures_util::future::try_join4(
            sales.insert(db),
            coupons.upsert(db),
            groups.upsert(db),
            ledger.write(db),
        ),
    )
    .await
    .map_err(pg_error)?;
    refunds.update(db).await.map_err(pg_error)?;
    Ok(())
}

/// Checkouts and their lines, for `transactions` and `lines`.
#[derive(Default)]
struct Sales {
    tx: Vec<String>,
    terminal: Vec<String>,
    member: Vec<String>,
    card: Vec<String>,
    at: Vec<i64>,
    day: Vec<i32>,
    subtotal: Vec<i64>,
    total: Vec<i64>,
    earned: Vec<i64>,
    redeemed: Vec<i64>,
    seq: Vec<i64>,
    line_tx: Vec<String>,
    line_n: Vec<i32>,
    sku: Vec<String>,
    category: Vec<String>,
    qty: Vec<i64>,
    unit_price: Vec<i64>,
    net: Vec<i64>,
}

impl Sales {
    fn push(&mut self, terminal: &str, rec: &Record, c: &crate::record::CheckoutV3, seq: i64) {
        self.tx.push(c.tx_id.clone());
        self.terminal.push(terminal.to_string());
        self.member.push(c.member_id.clone());
        self.card.push(c.card.clone());
        self.at.push(rec.at);
        self.day.push(rec.day);
        self.subtotal.push(c.subtotal);
        self.total.push(c.total);
        self.earned.push(c.points_earned);
        self.redeemed.push(c.points_redeemed);
        self.seq.push(seq);
        for (n, l) in c.lines.iter().enumerate() {
            self.line_tx.push(c.tx_id.clone());
            self.line_n.push(n as i32);
            self.sku.push(l.line.sku.clone());
            self.category.push(l.line.category.clone());
            self.qty.push(l.line.qty);
            self.unit_price.push(l.line.unit_price);
            self.net.push(l.net());
        }
    }

    async fn insert(&self, db: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
        if self.tx.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached(
                "INSERT INTO transactions (tx_id, terminal_id, member_id, card, at, day, subtotal, total, \
                 points_earned, points_redeemed, hub_seq) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::int[], \
                 $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 11] = [
            &self.tx,
            &self.terminal,
            &self.member,
            &self.card,
            &self.at,
            &self.day,
            &self.subtotal,
            &self.total,
            &self.earned,
            &self.redeemed,
            &self.seq,
        ];
        let n = db.execute(&st, &params).await?;
        let st = db
            .prepare_cached(
                "INSERT INTO lines (tx_id, n, sku, category, qty, unit_price, net) \
                 SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], \
                 $7::bigint[])",
            )
            .await?;
        db.execute(
            &st,
            &[
                &self.line_tx,
                &self.line_n,
                &self.sku,
                &self.category,
                &self.qty,
                &self.unit_price,
                &self.net,
            ],
        )
        .await?;
        Ok(n)
    }
}

#[derive(Default)]
struct Coupons {
    code: Vec<String>,
    type_id: Vec<String>,
    member: Vec<String>,
    issued: Vec<i32>,
    valid_until: Vec<i32>,
    used_by: Vec<Option<String>>,
    issued_by: Vec<String>,
}

impl Coupons {
    fn push(&mut self, code: String, c: &crate::model::CouponState) {
        self.code.push(code);
        self.type_id.push(c.type_id.clone());
        self.member.push(c.member_id.clone());
        self.issued.push(c.issued);
        self.valid_until.push(c.valid_until);
        self.used_by.push(c.used_by.clone());
        self.issued_by.push(c.issued_by.clone());
    }

    async fn upsert(&self, db: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
        if self.code.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached(
                "INSERT INTO coupons (code, type_id, member_id, issued, valid_until, used_by, issued_by) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], \
                 $7::text[]) \
                 ON CONFLICT (code) DO UPDATE SET type_id = EXCLUDED.type_id, member_id = EXCLUDED.member_id, \
                 issued = EXCLUDED.issued, valid_until = EXCLUDED.valid_until, used_by = EXCLUDED.used_by, \
                 issued_by = EXCLUDED.issued_by",
            )
            .await?;
        db.execute(
            &st,
            &[
                &self.code,
                &self.type_id,
                &self.member,
                &self.issued,
                &self.valid_until,
                &self.used_by,
                &self.issued_by,
            ],
        )
        .await
    }
}

#[derive(Default)]
struct Groups {
    id: Vec<String>,
    deal: Vec<String>,
    sku: Vec<String>,
    price: Vec<i64>,
    size: Vec<i32>,
    joined: Vec<i32>,
    opened_at: Vec<i64>,
    expires_at: Vec<i64>,
    formed_at: Vec<Option<i64>>,
}

impl Groups {
    fn push(&mut self, g: &crate::store::GroupState) {
        self.id.push(g.group_id.clone());
        self.deal.push(g.deal.clone());
        self.sku.push(g.sku.clone());
        self.price.push(g.group_price_minor);
        self.size.push(g.size as i32);
        self.joined.push(g.members.len() as i32);
        self.opened_at.push(g.opened_at);
        self.expires_at.push(g.expires_at);
        self.formed_at.push(g.formed_at);
    }

    async fn upsert(&self, db: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
        if self.id.is_empty() {
            return Ok(0);
        }
        let st = db
            .prepare_cached(
                "INSERT INTO groups (group_id, deal, sku, group_price, size, joined, opened_at, expires_at, formed_at) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::int[], \
                 $7::bigint[], $8::bigint[], $9::bigint[]) \
                 ON CONFLICT (group_id) DO UPDATE SET joined = EXCLUDED.joined, formed_at = EXCLUDED.formed_at, \
                 expires_at = EXCLUDED.expires_at",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 9] = [
            &self.id,
            &self.deal,
            &self.sku,
            &self.price,
            &self.size,
            &self.joined,
            &self.opened_at,
            &self.expires_at,
            &self.formed_at,
        ];
        db.execute(&st, &params).await
    }
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

/// The first `want` distinct member ids of a search's index range (as `Store::search`),
/// read a page of keys at a time.
pub async fn index_ids(db: &impl GenericClient, scan: &base::IndexScan, want: usize) -> Result<Vec<Vec<u8>>> {
    let st = db
        .prepare_cached("SELECT key, value FROM hub_kv WHERE key >= $1 AND key < $2 ORDER BY key LIMIT 256")
        .await
        .map_err(pg_error)?;
    let mut from = scan.from.clone();
    let mut out: Vec<Vec<u8>> = Vec::new();
    loop {
        let rows = db.query(&st, &[&from, &scan.end]).await.map_err(pg_error)?;
        for row in &rows {
            let (k, v): (&[u8], &[u8]) = (row.get(0), row.get(1));
            if !scan.keep(k, v) {
                continue;
            }
            let id = scan.id(k);
            if out.last().is_some_and(|l| l.as_slice() == id) {
                continue;
            }
            out.push(id.to_vec());
            if out.len() == want {
                return Ok(out);
            }
        }
        match rows.last() {
            Some(last) if rows.len() == 256 => {
                from = last.get::<_, Vec<u8>>(0);
                from.push(0);
            }
            _ => return Ok(out),
        }
    }
}
