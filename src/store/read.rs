//! Reading the state: members and what finds them, transactions, history, coupons,
//! staff, sync bookkeeping, the hub's views.

use std::sync::atomic::Ordering;

use super::day_key;
use super::history::{self, LedgerEntry, Page, TxSummary};
use super::search::{self, Query};
use super::{
    apply, dec, idem_bucket_key, idem_find, k, key, record_page_key, terminal_key, Acked, ActivityCount, Applied,
    Conflict, Daily, FeedKind, HashPage, HubTerminal, Idem, MemberRec, StaffState, Store, TxState,
};
use crate::error::Result;
use crate::model::{CouponState, DayNo, MemberState};
use crate::record::{Body, Record};

impl Store {
    pub fn applied(&self) -> Result<Applied> {
        Ok(Applied {
            seq: self.applied.load(Ordering::Acquire),
            pushable: self.pushable.load(Ordering::Acquire),
        })
    }

    /// The terminal id and install epoch of the journal this store reflects.
    pub fn identity(&self) -> Result<Option<(String, u64)>> {
        if let Some(id) = self.identity.get() {
            return Ok(Some(id.clone()));
        }
        let id: Option<(String, u64)> = self.get("identity", key::IDENTITY)?;
        if let Some(id) = &id {
            let _ = self.identity.set(id.clone());
        }
        Ok(id)
    }

    pub fn member(&self, member_id: &str) -> Result<Option<MemberState>> {
        Ok(self.member_rec(member_id)?.map(|m| m.state))
    }

    pub(super) fn member_rec(&self, member_id: &str) -> Result<Option<MemberRec>> {
        self.get("member", &k(key::MEMBER, member_id.as_bytes()))
    }

    /// Terminal: the points redeemed here for a member that the hub has not
    /// acknowledged yet (what the offline cap counts).
    pub fn offline_redeemed(&self, member_id: &str) -> Result<i64> {
        Ok(self.member_and_offline(member_id)?.map_or(0, |(_, n)| n))
    }

    /// A member and, read with it in one decode, `offline_redeemed`.
    pub fn member_and_offline(&self, member_id: &str) -> Result<Option<(MemberState, i64)>> {
        let acked = self.acked()?.seq;
        Ok(self.member_rec(member_id)?.map(|m| {
            let unacked = m
                .unacked_redeem
                .iter()
                .filter(|(seq, _)| *seq > acked)
                .map(|(_, points)| points)
                .sum();
            (m.state, unacked)
        }))
    }

    /// The member id a card belongs to (blocked cards included).
    pub fn card_owner(&self, card: &str) -> Result<Option<String>> {
        self.get("card", &k(key::CARD, card.as_bytes()))
    }

    pub fn phone_owner(&self, phone: &str) -> Result<Option<String>> {
        self.get("phone", &k(key::PHONE, phone.as_bytes()))
    }

    /// A checkout made at this terminal, by id.
    pub fn tx(&self, tx_id: &str) -> Result<Option<TxState>> {
        apply::find_tx(self, tx_id)
    }

    /// What an idempotency key was used for.
    pub fn idem(&self, idem_key: &str) -> Result<Option<Idem>> {
        self.checked(
            self.shared
                .overlay
                .get_with(&self.shared.db, &idem_bucket_key(idem_key), |v| match v {
                    Some(bucket) => idem_find(bucket, idem_key),
                    None => Ok(None),
                }),
        )
    }

    /// Journal record `seq`, decoded; a record a terminal pushed to the hub is unwrapped.
    pub(super) fn journal_record(&self, seq: u64) -> Result<Record> {
        let payload = self.journal.read(seq)?;
        let rec = Record::decode(&payload)?;
        match rec.body {
            Body::Remote(r) => Record::decode(&r.payload),
            _ => Ok(rec),
        }
    }

    pub fn coupon(&self, code: &str) -> Result<Option<CouponState>> {
        self.get("coupon", &k(key::COUPON, code.as_bytes()))
    }

    /// How many of a reward this terminal has handed out.
    pub fn reward_used(&self, sku: &str) -> Result<i64> {
        Ok(self.get("reward", &k(key::REWARD, sku.as_bytes()))?.unwrap_or(0))
    }

    pub fn daily(&self, day: DayNo) -> Result<Daily> {
        Ok(self.get("daily totals", &day_key(day))?.unwrap_or_default())
    }

    /// Every member id, for the daily expiry pass.
    pub fn member_ids(&self) -> Result<Vec<String>> {
        self.scan(&[key::MEMBER], |k, _| Ok(String::from_utf8_lossy(&k[1..]).into_owned()))
    }

    /// Terminal: what the hub has acknowledged.
    pub fn acked(&self) -> Result<Acked> {
        Ok(self.get("acknowledgement", key::ACKED)?.unwrap_or_default())
    }

    /// Terminal: records that go upstream and the hub has not acknowledged yet.
    pub fn outbox_len(&self) -> Result<u64> {
        Ok(self
            .pushable
            .load(Ordering::Acquire)
            .saturating_sub(self.acked()?.pushable))
    }

    /// Terminal: the pull cursor of the last pull applied.
    pub fn cursor(&self) -> Result<u64> {
        Ok(self.get("cursor", key::CURSOR)?.unwrap_or(0))
    }

    /// Terminal: members to ask the hub for again.
    pub fn stale_members(&self) -> Result<Vec<String>> {
        self.scan(&[key::STALE], |k, _| Ok(String::from_utf8_lossy(&k[1..]).into_owned()))
    }

    /// Terminal: the last ruleset text the hub sent.
    pub fn hub_ruleset(&self) -> Result<Option<String>> {
        self.get("hub ruleset", key::HUB_RULESET)
    }

    /// Hub: the published ruleset.
    pub fn published_ruleset(&self) -> Result<Option<(String, u32)>> {
        self.get("published ruleset", key::RULESET)
    }

    /// Hub: the content hash of a stored pushed record.
    pub fn record_hash(&self, terminal: &str, epoch: u64, seq: u64) -> Result<Option<[u8; 32]>> {
        let page: Option<HashPage> = self.get("record hashes", &record_page_key(terminal, epoch, seq))?;
        Ok(page.and_then(|p| p.get(seq)).map(|(hash, _)| hash))
    }

    /// Hub: one terminal stream's figures.
    pub fn hub_terminal(&self, terminal: &str, epoch: u64) -> Result<Option<HubTerminal>> {
        self.get("terminal", &terminal_key(terminal, epoch))
    }

    /// Hub: every terminal stream.
    pub fn hub_terminals(&self) -> Result<Vec<HubTerminal>> {
        self.scan(&[key::TERMINAL], |_, v| dec("terminal", &v))
    }

    /// Hub: members with a negative balance, with that balance.
    pub fn negative_members(&self) -> Result<Vec<(String, i64)>> {
        self.scan(&[key::NEGATIVE], |k, v| {
            Ok((String::from_utf8_lossy(&k[1..]).into_owned(), dec("balance", &v)?))
        })
    }

    /// Hub: change-feed entries after `cursor`, in order, as (seq, kind, id). Stops at
    /// `limit` entries, but never inside one seq, so that a cursor resumes exactly.
    pub fn feed_after(&self, cursor: u64, limit: usize) -> Result<Vec<(u64, FeedKind, String)>> {
        let from = k(key::FEED, &(cursor.saturating_add(1)).to_be_bytes());
        let db = &self.shared.db;
        self.checked(self.shared.overlay.settled(db, || {
            let mut out: Vec<(u64, FeedKind, String)> = Vec::new();
            for kv in db.range(from..vec![key::FEED + 1]) {
                let (k, _) = kv?;
                let seq = u64::from_be_bytes(k[1..9].try_into().expect("feed keys hold a seq"));
                if out.len() >= limit && out.last().is_some_and(|l| l.0 != seq) {
                    break;
                }
                let Some(kind) = FeedKind::of(k[9]) else { continue };
                out.push((seq, kind, String::from_utf8_lossy(&k[10..]).into_owned()));
            }
            Ok(out)
        }))
    }

    /// Hub: how many change-feed entries there are after `cursor`.
    pub fn feed_len_after(&self, cursor: u64) -> Result<u64> {
        let from = k(key::FEED, &(cursor.saturating_add(1)).to_be_bytes());
        let db = &self.shared.db;
        self.checked(self.shared.overlay.settled(db, || {
            let mut n = 0;
            for k in db.range(from..vec![key::FEED + 1]).keys() {
                k?;
                n += 1;
            }
            Ok(n)
        }))
    }

    /// The keys under `prefix`, in key order.
    pub(super) fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.scan(prefix, |k, _| Ok(k.to_vec()))
    }

    /// The member a canonical phone finds (a merged member is found by nothing).
    pub fn member_by_phone(&self, phone: &str) -> Result<Option<MemberState>> {
        let Some(id) = self.phone_owner(phone)? else {
            return Ok(None);
        };
        Ok(self
            .member(&id)?
            .filter(|m| m.merged_into.is_none() && m.phone == phone))
    }

    /// Members a text finds (see `search`), in member id order after `after`, at most
    /// `limit`; and the cursor of the next page (the last id given) if there is more.
    pub fn search(&self, text: &str, after: Option<&str>, limit: usize) -> Result<(Vec<MemberState>, Option<String>)> {
        let q = Query::new(text);
        let want = limit + 1;
        let mut ids: std::collections::BTreeSet<Vec<u8>> = Default::default();
        if let Some((ordered, level, name)) = &q.name {
            let few = self.ordered_ids(ordered, after, want)?;
            ids.extend(match few {
                Some(few) => few,
                None => self.index_ids(level, after, want, |_, v| v.starts_with(name.as_bytes()))?,
            });
        }
        if let Some((prefix, digits)) = &q.phone {
            ids.extend(self.index_ids(prefix, after, want, |_, v| v.ends_with(digits.as_bytes()))?);
        }
        if let Some((ordered, level, card)) = &q.card {
            let few = self.ordered_ids(ordered, after, want)?;
            ids.extend(match few {
                Some(few) => few,
                None => self.index_ids(level, after, want, |k, _| {
                    search::id_at_end(k).starts_with(card.as_bytes())
                })?,
            });
        }
        let mut members = Vec::with_capacity(limit);
        let mut more = false;
        for id in ids {
            if members.len() == limit {
                more = true;
                break;
            }
            if let Some(m) = self.member(&String::from_utf8_lossy(&id))? {
                members.push(m);
            }
        }
        let next = more
            .then(|| members.last().map(|m: &MemberState| m.member_id.clone()))
            .flatten();
        Ok((members, next))
    }

    /// The first `want` member ids after `after`, in member id order, of the ordered
    /// index keys under `prefix` (names or cards starting with it), when at most
    /// `search::ORDERED_READ` keys are there; `None` when more are (the level index is
    /// then the quicker way).
    fn ordered_ids(&self, prefix: &[u8], after: Option<&str>, want: usize) -> Result<Option<Vec<Vec<u8>>>> {
        let db = &self.shared.db;
        let keys = self.checked(self.shared.overlay.settled(db, || {
            let mut keys = Vec::new();
            for kv in db.scan_prefix(prefix).keys() {
                keys.push(kv?);
                if keys.len() > search::ORDERED_READ {
                    break;
                }
            }
            Ok(keys)
        }))?;
        if keys.len() > search::ORDERED_READ {
            return Ok(None);
        }
        let mut ids: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| search::id_at_end(k))
            .filter(|id| after.is_none_or(|a| *id > a.as_bytes()))
            .map(<[u8]>::to_vec)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(want);
        Ok(Some(ids))
    }

    /// The first `want` distinct member ids after `after` in the index keys under
    /// `prefix` whose key and value pass `keep`.
    fn index_ids(
        &self,
        prefix: &[u8],
        after: Option<&str>,
        want: usize,
        keep: impl Fn(&[u8], &[u8]) -> bool,
    ) -> Result<Vec<Vec<u8>>> {
        let db = &self.shared.db;
        let mut from = prefix.to_vec();
        if let Some(after) = after {
            // Past every key of `after` (its id then 0 and a card, or nothing).
            from.extend_from_slice(after.as_bytes());
            from.push(1);
        }
        let end = {
            let mut e = prefix.to_vec();
            *e.last_mut().expect("index prefixes end in 0") = 1;
            e
        };
        self.checked(self.shared.overlay.settled(db, || {
            let mut out: Vec<Vec<u8>> = Vec::new();
            for kv in db.range(from..end) {
                let (key, value) = kv?;
                if !keep(&key, &value) {
                    continue;
                }
                let id = search::id_in(&key, prefix.len());
                if out.last().is_some_and(|l| l.as_slice() == id) {
                    continue;
                }
                out.push(id.to_vec());
                if out.len() == want {
                    break;
                }
            }
            Ok(out)
        }))
    }

    /// Members in member id order after `after`, at most `limit` (an export's pages).
    pub fn members_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<MemberState>> {
        let db = &self.shared.db;
        let from = match after {
            Some(a) => {
                let mut f = k(key::MEMBER, a.as_bytes());
                f.push(0);
                f
            }
            None => vec![key::MEMBER],
        };
        self.checked(self.shared.overlay.settled(db, || {
            db.range(from..vec![key::MEMBER + 1])
                .take(limit)
                .map(|kv| {
                    let (_, v) = kv?;
                    dec::<MemberRec>("member", &v).map(|m| m.state)
                })
                .collect()
        }))
    }

    /// A member's points ledger, newest first: at most `limit` entries before the
    /// entry numbered `before` (all when None), each with its number; and the cursor
    /// of the next page.
    pub fn ledger(&self, member_id: &str, before: Option<u64>, limit: usize) -> Result<Page<LedgerEntry>> {
        let len = self.member_rec(member_id)?.map_or(0, |m| m.ledger_len);
        self.pages(history::LEDGER, member_id, len, before, limit)
    }

    /// A member's transactions, newest first (paged like `ledger`).
    pub fn transactions(&self, member_id: &str, before: Option<u64>, limit: usize) -> Result<Page<TxSummary>> {
        let len = self.member_rec(member_id)?.map_or(0, |m| m.history_len);
        self.pages(history::HISTORY, member_id, len, before, limit)
    }

    fn pages<T: serde::de::DeserializeOwned>(
        &self,
        prefix: u8,
        member_id: &str,
        len: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page<T>> {
        history::newest_first(len, before, limit, |page| {
            match self.raw(&history::page_key(prefix, member_id, page))? {
                Some(bytes) => history::decode_page(&bytes),
                None => Ok(vec![]),
            }
        })
    }

    /// A member's coupons, by code.
    pub fn member_coupons(&self, member_id: &str) -> Result<Vec<(String, CouponState)>> {
        let mut prefix = k(key::MEMBER_COUPON, member_id.as_bytes());
        prefix.push(0);
        let mut out = Vec::new();
        for key in self.keys_with_prefix(&prefix)? {
            let code = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Some(c) = self.coupon(&code)? {
                out.push((code, c));
            }
        }
        Ok(out)
    }

    /// How often an activity was granted to a member.
    pub fn activity_count(&self, member_id: &str, activity_id: &str) -> Result<ActivityCount> {
        Ok(self
            .get("activity count", &apply::activity_key(member_id, activity_id))?
            .unwrap_or_default())
    }

    pub fn staff(&self, staff_id: &str) -> Result<Option<StaffState>> {
        self.get("staff", &k(key::STAFF, staff_id.as_bytes()))
    }

    pub fn staff_list(&self) -> Result<Vec<StaffState>> {
        self.scan(&[key::STAFF], |_, v| dec("staff", &v))
    }

    /// Hub: conflicts, resolved ones included, by id.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        self.scan(&[key::CONFLICT], |_, v| dec("conflict", &v))
    }

    pub fn conflict(&self, id: &str) -> Result<Option<Conflict>> {
        self.get("conflict", &apply::conflict_key(id))
    }

    /// The phones are canonical (the 0.2 upgrade ran, or the store began in 0.2).
    pub fn phones_canonical(&self) -> Result<bool> {
        Ok(self.get("phones marker", key::PHONES_CANONICAL)?.unwrap_or(false))
    }

    /// Hub: a checkout any terminal made, by id.
    pub fn hub_tx(&self, tx_id: &str) -> Result<Option<TxState>> {
        super::base::hub_tx(self, tx_id)
    }

    /// The journal record a transaction id names (checkout, refund, reward): this
    /// terminal's own, or on the hub any terminal's.
    pub fn tx_record(&self, tx_id: &str) -> Result<Option<Record>> {
        super::base::tx_record(self, tx_id)
    }
}
