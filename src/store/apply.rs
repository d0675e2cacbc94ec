//! `Store::apply`: journal records into the materialized state.
//!
//! The same code runs on a terminal and on the hub. The differences are small and come
//! from the record itself: a hub applies what terminals pushed inside `Remote` records
//! (idempotency keys namespaced by terminal, no offline-cap bookkeeping, conflicts
//! tolerated because the till already served the customer), and a terminal applies what
//! it pulled inside `HubPull` records. The hub also keeps a change feed of what it
//! changed, which terminals pull.

use super::{Changes as Writes, FastMap};
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::{
    dec, enc, feed_key, feed_pos_key, idem_bucket_key, k, key, Acked, Applied, Daily, FeedKind, HashPage, HubTerminal,
    Idem, MemberRec, Store, TxNote, TxState, VERSION,
};
use crate::error::{Error, Result};
use crate::model::{CardStatus, CouponState, DayNo};
use crate::record::{Body, HubPull, IdemKey, Record, Remote};
use crate::state::{self, convert};

/// Where a record came from, which decides the little that differs in applying it.
#[derive(Clone, Copy)]
struct Origin<'a> {
    /// The journal seq of the record being applied (on the hub: the hub's own seq).
    seq: u64,
    /// A record made here that goes upstream: it stamps the members it changes and
    /// counts against the offline redemption cap.
    local: bool,
    /// Hub: the terminal stream (id, install epoch) a pushed record came from.
    stream: Option<(&'a str, u64)>,
}

/// The changes of the records being applied, collected first and handed to the store
/// as one step.
struct Changes<'a> {
    store: &'a Store,
    /// The enclosing step, seen through (a pushed record on the hub is applied in a
    /// step of its own so that a failure can drop just its changes).
    base: Option<&'a Changes<'a>>,
    /// Values written so far, by key, so reads see earlier writes.
    cache: Writes,
    /// Members written so far, decoded: a member changed by many records of a step is
    /// decoded once and encoded once.
    members: FastMap<String, MemberRec>,
    /// Hub: entities changed, by seq, moved to the feed's head once the whole step is
    /// known (so that an entity changed many times in one step moves once).
    feed: Vec<(FeedKind, String, u64)>,
    /// Hub: terminal streams and record-hash pages touched, written once at the end.
    terminals: FastMap<Vec<u8>, HubTerminal>,
    pages: FastMap<Vec<u8>, HashPage>,
}

impl<'a> Changes<'a> {
    fn new(store: &'a Store, base: Option<&'a Changes<'a>>) -> Changes<'a> {
        Changes {
            store,
            base,
            cache: FastMap::default(),
            members: FastMap::default(),
            feed: Vec::new(),
            terminals: FastMap::default(),
            pages: FastMap::default(),
        }
    }

    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.cache.get(key) {
            return Ok(v.clone());
        }
        match self.base {
            Some(b) => b.read(key),
            None => self.store.raw(key),
        }
    }

    fn get<T: serde::de::DeserializeOwned>(&self, what: &str, key: &[u8]) -> Result<Option<T>> {
        if let Some(v) = self.cache.get(key) {
            return v.as_deref().map(|b| dec(what, b)).transpose();
        }
        match self.base {
            Some(b) => b.get(what, key),
            None => self.store.get(what, key),
        }
    }

    fn put<T: serde::Serialize>(&mut self, key: Vec<u8>, v: &T) {
        self.cache.insert(key, Some(enc(v)));
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.cache.insert(key, None);
    }

    fn find_member(&self, id: &str) -> Result<Option<MemberRec>> {
        if let Some(m) = self.members.get(id) {
            return Ok(Some(m.clone()));
        }
        match self.base {
            Some(b) => b.find_member(id),
            None => self.store.get("member", &k(key::MEMBER, id.as_bytes())),
        }
    }

    /// A member to change: taken out of this step's decoded members (`put_member`
    /// puts it back; a step that fails is dropped whole) or read.
    fn member(&mut self, id: &str) -> Result<MemberRec> {
        if let Some(m) = self.members.remove(id) {
            return Ok(m);
        }
        self.find_member(id)?
            .ok_or_else(|| Error::internal(format!("journal names member {id} that the state does not have")))
    }

    /// Writes a member, stamping local changes; on the hub also keeps the negative-balance
    /// index (the overspent report) exact and puts the member in the change feed.
    fn put_member(&mut self, mut m: MemberRec, o: Origin) -> Result<()> {
        m.state.check_invariants();
        if o.local {
            m.local_seq = o.seq;
        }
        if self.store.hub {
            let id = m.state.member_id.clone();
            let nk = k(key::NEGATIVE, id.as_bytes());
            let balance = m.state.ledger_balance();
            if balance < 0 {
                self.put(nk, &balance);
                m.listed_negative = true;
            } else if m.listed_negative {
                self.remove(nk);
                m.listed_negative = false;
            }
            self.feed(FeedKind::Member, &id, o)?;
        }
        self.members.insert(m.state.member_id.clone(), m);
        Ok(())
    }

    /// Hub: notes that an entity changed, for the change feed.
    fn feed(&mut self, kind: FeedKind, id: &str, o: Origin) -> Result<()> {
        if self.store.hub {
            self.feed.push((kind, id.to_string(), o.seq));
        }
        Ok(())
    }

    /// Takes in what a nested step changed.
    fn absorb(&mut self, own: Nested) {
        self.cache.extend(own.cache);
        self.members.extend(own.members);
        self.feed.extend(own.feed);
    }

    /// Ends the step: encodes what was kept decoded and moves every entity changed in
    /// this step to the head of the change feed (on the step's own changes, so an entry
    /// made earlier in the step is simply dropped rather than written and removed).
    fn finish(&mut self) -> Result<()> {
        for (id, m) in std::mem::take(&mut self.members) {
            self.put(k(key::MEMBER, id.as_bytes()), &m);
        }
        for (key, t) in std::mem::take(&mut self.terminals) {
            self.put(key, &t);
        }
        for (key, page) in std::mem::take(&mut self.pages) {
            self.put(key, &page);
        }
        for (kind, id, seq) in std::mem::take(&mut self.feed) {
            let pos = feed_pos_key(kind, &id);
            if let Some(old) = self.get::<u64>("feed position", &pos)? {
                if old == seq {
                    continue;
                }
                let old_key = feed_key(old, kind, &id);
                if matches!(self.cache.get(&old_key), Some(Some(_))) {
                    self.cache.remove(&old_key);
                } else {
                    self.remove(old_key);
                }
            }
            self.put(feed_key(seq, kind, &id), &());
            self.put(pos, &seq);
        }
        Ok(())
    }

    /// Remembers an idempotency key in its bucket (appended: the engine never commits
    /// a key twice): the request it came with, the record that answers it and the
    /// balance of the member it changed (if any) after it.
    fn remember_idem(&mut self, idem: &IdemKey, seq: u64, balance_after: i64, count_after: i64) -> Result<()> {
        let bk = idem_bucket_key(&idem.key);
        let mut bucket = match self.cache.remove(&bk) {
            Some(v) => v,
            None => self.read(&bk)?,
        }
        .unwrap_or_else(|| vec![VERSION]);
        let entry = Idem {
            key: idem.key.clone(),
            request: idem.request,
            seq,
            balance_after,
            count_after,
        };
        bucket = postcard::to_extend(&entry, bucket).expect("state always encodes");
        self.cache.insert(bk, Some(bucket));
        Ok(())
    }

    fn daily(&mut self, day: DayNo, f: impl FnOnce(&mut Daily)) -> Result<()> {
        let key = super::day_key(day);
        let mut d: Daily = self.get("daily totals", &key)?.unwrap_or_default();
        f(&mut d);
        self.put(key, &d);
        Ok(())
    }

    /// Hub: one terminal stream's figures, kept decoded until the step ends.
    fn terminal(&mut self, terminal: &str, epoch: u64) -> Result<&mut HubTerminal> {
        let tk = super::terminal_key(terminal, epoch);
        if !self.terminals.contains_key(&tk) {
            let t = self.get("terminal", &tk)?.unwrap_or(HubTerminal {
                terminal_id: terminal.to_string(),
                epoch,
                ..HubTerminal::default()
            });
            self.terminals.insert(tk.clone(), t);
        }
        Ok(self.terminals.get_mut(&tk).expect("just inserted"))
    }

    /// A stream page as this step sees it (hub).
    fn find_page(&self, pk: &[u8]) -> Result<Option<HashPage>> {
        if let Some(p) = self.pages.get(pk) {
            return Ok(Some(p.clone()));
        }
        match self.base {
            Some(b) => b.find_page(pk),
            None => self.get("record hashes", pk),
        }
    }

    fn identity(&self) -> Result<Option<(String, u64)>> {
        match self.store.identity.get() {
            Some(id) => Ok(Some(id.clone())),
            None => self.get("identity", key::IDENTITY),
        }
    }

    /// Checkout `tx_id`, read back from the journal record that holds it, with its note.
    /// A terminal finds its own checkouts by the seq their id names; the hub finds a
    /// terminal's through the page of `stream` (the stream of the record being applied:
    /// a terminal refunds only its own sales).
    fn tx(&self, tx_id: &str, stream: Option<(&str, u64)>) -> Result<Option<TxState>> {
        let Some((terminal, epoch32, seq)) = super::parse_tx_id(tx_id) else {
            return Ok(None);
        };
        let (held, own_seq) = match stream {
            Some((t, epoch)) => {
                if t != terminal || epoch as u32 != epoch32 {
                    return Ok(None);
                }
                let page = self.find_page(&super::record_page_key(t, epoch, seq))?;
                match page.and_then(|p| p.get(seq)) {
                    Some((_, held)) => (held, 0),
                    None => return Ok(None),
                }
            }
            None => {
                if !self
                    .identity()?
                    .is_some_and(|(t, e)| t == terminal && e as u32 == epoch32)
                {
                    return Ok(None);
                }
                if seq == 0 || seq > self.store.journal.last_seq() {
                    return Ok(None);
                }
                (seq, seq)
            }
        };
        let rec = self.store.journal_record(held)?;
        let Body::Checkout(c) = rec.body else {
            return Ok(None);
        };
        if c.tx_id != tx_id {
            return Ok(None);
        }
        let note: TxNote = self
            .get("transaction", &k(key::TX, tx_id.as_bytes()))?
            .unwrap_or_default();
        Ok(Some(TxState {
            rec: *c,
            seq: own_seq,
            at: rec.at,
            day: rec.day,
            taken: note.taken,
            refunded: note.refunded,
            refund_ids: note.refund_ids,
        }))
    }

    /// Hub: the page of record hashes that `seq` of a stream belongs to.
    fn hash_page(&mut self, terminal: &str, epoch: u64, seq: u64) -> Result<&mut HashPage> {
        let pk = super::record_page_key(terminal, epoch, seq);
        if !self.pages.contains_key(&pk) {
            let page = self.get("record hashes", &pk)?.unwrap_or_default();
            self.pages.insert(pk.clone(), page);
        }
        Ok(self.pages.get_mut(&pk).expect("just inserted"))
    }
}

/// What a nested step changed, handed back to its parent.
struct Nested {
    cache: Writes,
    members: FastMap<String, MemberRec>,
    feed: Vec<(FeedKind, String, u64)>,
}

impl Store {
    /// Applies record `seq` to the state, atomically with the new applied position.
    /// Records must come in journal order, each exactly once.
    pub fn apply(&self, seq: u64, rec: &Record) -> Result<()> {
        self.apply_all(seq, std::slice::from_ref(rec))
    }

    /// Applies records `first`, `first + 1`, ... as one step: readers see all of them
    /// or none, and sled gets them in one batch with the new applied position.
    pub fn apply_all(&self, first: u64, recs: &[Record]) -> Result<()> {
        let applied = self.applied.load(Ordering::Acquire);
        if first != applied + 1 {
            return Err(Error::internal(format!(
                "state store is at record {applied} and was given record {first}"
            )));
        }
        let mut ch = Changes::new(self, None);
        let mut pushable = self.pushable.load(Ordering::Acquire);
        for (i, rec) in recs.iter().enumerate() {
            let local = rec.body.is_pushable();
            let origin = Origin {
                seq: first + i as u64,
                local,
                stream: None,
            };
            apply_body(&mut ch, origin, rec)?;
            pushable += u64::from(local);
        }
        ch.finish()?;
        let last = first + recs.len() as u64 - 1;
        ch.put(key::APPLIED.to_vec(), &Applied { seq: last, pushable });
        self.shared.overlay.merge(ch.cache);
        self.pushable.store(pushable, Ordering::Release);
        self.applied.store(last, Ordering::Release);
        Ok(())
    }
}

/// A checkout made at this terminal, by id (for `Store::tx`).
pub(super) fn find_tx(store: &Store, tx_id: &str) -> Result<Option<TxState>> {
    Changes::new(store, None).tx(tx_id, None)
}

/// The hash under which the hub remembers a pushed record's content.
pub fn content_hash(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// Applies one record: loads what it changes, calls the pure transition of `state`,
/// writes the result; remembers its idempotency key.
fn apply_body(ch: &mut Changes, o: Origin, rec: &Record) -> Result<()> {
    let touched = apply_effect(ch, o, rec)?;
    // Idempotency is the terminal's business (the POS talks to it); the hub identifies
    // records by their own identity.
    if let (Some(idem), None) = (&rec.idem, o.stream) {
        let balance = match touched {
            Some(id) => ch.find_member(&id)?.map_or(0, |m| m.state.ledger_balance()),
            None => 0,
        };
        let count = match &rec.body {
            Body::RewardRedeem { sku, .. } => ch.get("reward", &k(key::REWARD, sku.as_bytes()))?.unwrap_or(0),
            _ => 0,
        };
        ch.remember_idem(idem, o.seq, balance, count)?;
    }
    Ok(())
}

/// The effect of one record; returns the member it changed, if one.
fn apply_effect(ch: &mut Changes, o: Origin, rec: &Record) -> Result<Option<String>> {
    let at = rec.at;
    let member = |id: &String| Ok(Some(id.clone()));
    match &rec.body {
        Body::Init { terminal_id, epoch } => {
            ch.put(key::IDENTITY.to_vec(), &(terminal_id.clone(), *epoch));
            Ok(None)
        }
        Body::MemberAdd {
            member_id, card, phone, ..
        } => {
            // On a terminal the engine refused duplicates before writing; on the hub two
            // offline shops may have enrolled the same card or phone. The first keeps it:
            // the later member's card is blocked until an operator sorts it out.
            let card_key = k(key::CARD, card.as_bytes());
            let card_taken = ch.read(&card_key)?.is_some();
            let status = if card_taken {
                CardStatus::Blocked
            } else {
                CardStatus::Active
            };
            let m = state::member::enrolled(&rec.body, status, at).expect("a MemberAdd record");
            if card_taken {
                tracing::warn!("member {member_id}: card {card} is already enrolled to another member; blocked");
            } else {
                ch.put(card_key, member_id);
            }
            let phone_key = k(key::PHONE, phone.as_bytes());
            if ch.read(&phone_key)?.is_none() {
                ch.put(phone_key, member_id);
            }
            ch.put_member(MemberRec::new(m), o)?;
            ch.daily(rec.day, |d| d.new_members += 1)?;
            member(member_id)
        }
        Body::CardBlock { card } => {
            let owner: String = ch
                .get("card", &k(key::CARD, card.as_bytes()))?
                .ok_or_else(|| Error::internal(format!("journal blocks unknown card {card}")))?;
            let mut m = ch.member(&owner)?;
            m.state.set_card(card, CardStatus::Blocked);
            ch.put_member(m, o)?;
            ch.feed(FeedKind::BlockedCard, card, o)?;
            Ok(Some(owner))
        }
        Body::CardReplace { old, new } => {
            let owner: String = ch
                .get("card", &k(key::CARD, old.as_bytes()))?
                .ok_or_else(|| Error::internal(format!("journal replaces unknown card {old}")))?;
            let mut m = ch.member(&owner)?;
            let new_key = k(key::CARD, new.as_bytes());
            let status = if ch.read(&new_key)?.is_some() {
                CardStatus::Blocked
            } else {
                ch.put(new_key, &owner);
                CardStatus::Active
            };
            m.state.replace_card(old, new, status);
            ch.put_member(m, o)?;
            ch.feed(FeedKind::BlockedCard, old, o)?;
            Ok(Some(owner))
        }
        Body::Checkout(c) => {
            let mut m = ch.member(&c.member_id)?;
            let taken = m.state.on_checkout(c, at, rec.day);
            if o.local && c.points_redeemed > 0 {
                let acked: Acked = ch.get("acknowledgement", key::ACKED)?.unwrap_or_default();
                m.note_offline_redemption(acked.seq, o.seq, c.points_redeemed);
            }
            if let Some((code, _)) = &c.coupon {
                let ck = k(key::COUPON, code.as_bytes());
                if let Some(mut cs) = ch.get::<CouponState>("coupon", &ck)? {
                    cs.used_by = Some(c.tx_id.clone());
                    ch.put(ck, &cs);
                    ch.feed(FeedKind::Coupon, code, o)?;
                }
            }
            if !taken.is_empty() {
                let note = TxNote {
                    taken,
                    ..TxNote::default()
                };
                ch.put(k(key::TX, c.tx_id.as_bytes()), &note);
            }
            ch.put_member(m, o)?;
            ch.daily(rec.day, |d| {
                d.checkouts += 1;
                d.subtotal += c.subtotal;
                d.discounts += c.subtotal - c.due;
                d.redeem_value += c.redeem_value;
                d.total += c.total;
                d.points_earned += c.points_earned;
                d.points_redeemed += c.points_redeemed;
                d.coupons_used += c.coupon.is_some() as i64;
            })?;
            member(&c.member_id)
        }
        Body::Refund(r) => {
            let mut tx = ch
                .tx(&r.tx_id, o.stream)?
                .ok_or_else(|| Error::internal(format!("journal refunds unknown transaction {}", r.tx_id)))?;
            let mut m = ch.member(&r.member_id)?;
            let p = &r.plan;
            let of = state::member::Refunded {
                taken: &tx.taken,
                returned_before: tx.refunded.points_returned,
                checkout_at: tx.at,
                checkout_day: tx.day,
                lot_expires_at: tx.rec.lot_expires_at,
            };
            m.state.on_refund(&of, p);
            // Points given back no longer count against the offline redemption cap.
            m.note_returned(tx.seq, p.points_returned);
            tx.refunded.add(tx.rec.lines.len(), &p.into());
            tx.refund_ids.push(r.refund_id.clone());
            let note = TxNote {
                taken: tx.taken,
                refunded: tx.refunded,
                refund_ids: tx.refund_ids,
            };
            ch.put(k(key::TX, r.tx_id.as_bytes()), &note);
            ch.put_member(m, o)?;
            ch.daily(rec.day, |d| {
                d.refunds += 1;
                d.refunded_amount += p.amount;
                d.points_clawed_back += p.points_clawed_back;
                d.points_returned += p.points_returned;
            })?;
            member(&r.member_id)
        }
        Body::CouponIssue {
            code,
            type_id,
            member_id,
            issued,
            valid_until,
        } => {
            let cs = CouponState {
                type_id: type_id.clone(),
                member_id: member_id.clone(),
                issued: *issued,
                valid_until: *valid_until,
                used_by: None,
            };
            ch.put(k(key::COUPON, code.as_bytes()), &cs);
            ch.feed(FeedKind::Coupon, code, o)?;
            ch.daily(rec.day, |d| d.coupons_issued += 1)?;
            member(member_id)
        }
        Body::RewardRedeem {
            member_id,
            sku,
            points,
            pin_verified,
            ..
        } => {
            let mut m = ch.member(member_id)?;
            m.state.on_reward(*points, *pin_verified);
            if o.local {
                let acked: Acked = ch.get("acknowledgement", key::ACKED)?.unwrap_or_default();
                m.note_offline_redemption(acked.seq, o.seq, *points);
            }
            ch.put_member(m, o)?;
            let rk = k(key::REWARD, sku.as_bytes());
            let used: i64 = ch.get("reward", &rk)?.unwrap_or(0);
            ch.put(rk, &(used + 1));
            ch.daily(rec.day, |d| {
                d.rewards_redeemed += 1;
                d.reward_points += points;
            })?;
            member(member_id)
        }
        Body::Expire { member_id } => {
            let mut m = ch.member(member_id)?;
            let gone = m.state.on_expire(at);
            ch.put_member(m, o)?;
            ch.daily(rec.day, |d| d.points_expired += gone)?;
            member(member_id)
        }
        Body::PinFail { member_id } => {
            let mut m = ch.member(member_id)?;
            m.state.on_pin_fail(at);
            ch.put_member(m, o)?;
            member(member_id)
        }
        Body::HubPull(p) => apply_pull(ch, o, p).map(|_| None),
        Body::Remote(r) => apply_remote(ch, o, r).map(|_| None),
        Body::Acked { upto, pushable } => {
            let acked = Acked {
                seq: *upto,
                pushable: *pushable,
            };
            ch.put(key::ACKED.to_vec(), &acked);
            Ok(None)
        }
        Body::Covered {
            terminal_id,
            epoch,
            upto,
            duplicates,
        } => {
            let t = ch.terminal(terminal_id, *epoch)?;
            t.acked = t.acked.max(*upto);
            t.duplicates += duplicates;
            Ok(None)
        }
        Body::RulesetPublish { text, version } => {
            ch.put(key::RULESET.to_vec(), &(text.clone(), *version));
            ch.feed(FeedKind::Ruleset, "", o)?;
            Ok(None)
        }
    }
}

/// Hub: a record a terminal pushed. It is stored once per identity whatever happens;
/// if it cannot be applied to the hub's state (which should not happen, as a terminal
/// pushes in order), its effects are skipped and counted, never the whole batch refused.
fn apply_remote(ch: &mut Changes, o: Origin, r: &Remote) -> Result<()> {
    let o = Origin {
        seq: o.seq,
        local: false,
        stream: Some((&r.terminal_id, r.epoch)),
    };
    let record = Record::decode(&r.payload);
    let applied = record.as_ref().map_err(Clone::clone).and_then(|record| {
        let mut own = Changes::new(ch.store, Some(&*ch));
        apply_body(&mut own, o, record).map(|_| Nested {
            cache: own.cache,
            members: own.members,
            feed: own.feed,
        })
    });
    let skipped = match applied {
        Ok(own) => {
            ch.absorb(own);
            false
        }
        Err(e) => {
            tracing::error!(
                "hub: record {}/{:x}/{} could not be applied and is kept without effect: {e}",
                r.terminal_id,
                r.epoch,
                r.seq
            );
            true
        }
    };
    let t = ch.terminal(&r.terminal_id, r.epoch)?;
    t.skipped += u64::from(skipped);
    t.records += 1;
    t.untrusted_clock += u64::from(record.is_ok_and(|r| !r.clock_trusted));
    ch.hash_page(&r.terminal_id, r.epoch, r.seq)?
        .insert(r.seq, content_hash(&r.payload), o.seq);
    Ok(())
}

/// Terminal: what a pull brought. A member snapshot replaces the local member only when
/// it covers every local change to that member (the hub had acknowledged them);
/// otherwise the member is marked stale and asked for again on the next pull. Blocks
/// apply at once, whatever else is pending.
fn apply_pull(ch: &mut Changes, o: Origin, p: &HubPull) -> Result<()> {
    let none = Origin {
        seq: o.seq,
        local: false,
        stream: None,
    };
    for snap in &p.members {
        let stale_key = k(key::STALE, snap.member_id.as_bytes());
        let local = ch.find_member(&snap.member_id)?;
        if local.as_ref().is_some_and(|l| l.local_seq > p.acked) {
            ch.put(stale_key, &());
            continue;
        }
        let m = convert::member_of(snap);
        // The hub's word on the member, with this terminal's own bookkeeping: its last
        // local change stays known, its unacknowledged redemptions are all acknowledged.
        let rec = MemberRec {
            local_seq: local.map_or(0, |l| l.local_seq),
            ..MemberRec::new(m)
        };
        for (card, _) in &rec.state.cards {
            ch.put(k(key::CARD, card.as_bytes()), &rec.state.member_id);
        }
        ch.put(k(key::PHONE, rec.state.phone.as_bytes()), &rec.state.member_id);
        ch.remove(stale_key);
        ch.put_member(rec, none)?;
    }
    for (code, snap) in &p.coupons {
        let state: CouponState = snap.into();
        let ck = k(key::COUPON, code.as_bytes());
        let local: Option<CouponState> = ch.get("coupon", &ck)?;
        // A coupon used here stays used whatever an older hub view says.
        if local.is_some_and(|l| l.used_by.is_some() && state.used_by.is_none()) {
            continue;
        }
        ch.put(ck, &state);
    }
    for card in &p.blocked_cards {
        if let Some(owner) = ch.get::<String>("card", &k(key::CARD, card.as_bytes()))? {
            let mut m = ch.member(&owner)?;
            m.state.set_card(card, CardStatus::Blocked);
            ch.put_member(m, none)?;
        }
    }
    if let Some(text) = &p.ruleset {
        ch.put(key::HUB_RULESET.to_vec(), text);
    }
    ch.put(key::CURSOR.to_vec(), &p.cursor);
    Ok(())
}
