//! `Store::apply`: journal records into the materialized state.
//!
//! The same code runs on a terminal and on the hub. The differences are small and come
//! from the record itself: a hub applies what terminals pushed inside `Remote` records
//! (idempotency keys namespaced by terminal, no offline-cap bookkeeping, conflicts
//! tolerated because the till already served the customer), and a terminal applies what
//! it pulled inside `HubPull` records. The hub also keeps a change feed of what it
//! changed, which terminals pull.
//!
//! Each record kind loads what it changes, calls the pure transitions of `state`, and
//! writes the result (`sale`, `member`, `sync`); this module holds the step they write
//! into, and what every step keeps besides: the ledger and history pages, the search
//! indexes, idempotency keys.

mod campaign;
mod member;
mod sale;
mod sync;

pub(super) use member::{activity_key, conflict_key};

use super::{Changes as Writes, FastMap};
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::audit;
use super::base::{self, StateBase};
use super::history::{self, LedgerEntry, LedgerKind, TxSummary};
use super::report;
use super::search;
use super::{
    dec, enc, feed_key, feed_pos_key, idem_bucket_key, k, key, Applied, Daily, FeedKind, HashPage, HubTerminal, Idem,
    MemberRec, Store, TxNote, TxState, VERSION,
};
use crate::error::{Error, Result};
use crate::model::{DayNo, MemberState};
use crate::record::{Body, IdemKey, Record};

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
    store: &'a dyn StateBase,
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
    /// The search index keys each member changed in this step had before it.
    index_before: FastMap<String, search::IndexKeys>,
    /// What each member changed in this step counted in the report totals before it.
    totals_before: FastMap<String, Option<report::Counted>>,
    /// The terminal that made the record being applied: the scope of its report figures.
    scope: String,
}

impl<'a> Changes<'a> {
    fn new(store: &'a dyn StateBase, base: Option<&'a Changes<'a>>) -> Changes<'a> {
        Changes {
            store,
            base,
            cache: FastMap::default(),
            members: FastMap::default(),
            feed: Vec::new(),
            terminals: FastMap::default(),
            pages: FastMap::default(),
            index_before: FastMap::default(),
            totals_before: FastMap::default(),
            scope: String::new(),
        }
    }

    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.cache.get(key) {
            return Ok(v.clone());
        }
        match self.base {
            Some(b) => b.read(key),
            None => {
                let mut out = None;
                self.store.visit(key, &mut |b| {
                    out = Some(b.to_vec());
                    Ok(())
                })?;
                Ok(out)
            }
        }
    }

    fn get<T: serde::de::DeserializeOwned>(&self, what: &str, key: &[u8]) -> Result<Option<T>> {
        if let Some(v) = self.cache.get(key) {
            return v.as_deref().map(|b| dec(what, b)).transpose();
        }
        match self.base {
            Some(b) => b.get(what, key),
            None => base::get(self.store, what, key),
        }
    }

    fn put<T: serde::Serialize>(&mut self, key: Vec<u8>, v: &T) {
        self.cache.insert(key, Some(enc(v)));
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.cache.insert(key, None);
    }

    /// A member as it was before this step (the enclosing step's or the store's).
    fn find_stored_member(&self, id: &str) -> Result<Option<MemberRec>> {
        match self.base {
            Some(b) => b.find_member(id),
            None => base::get(self.store, "member", &k(key::MEMBER, id.as_bytes())),
        }
    }

    fn find_member(&self, id: &str) -> Result<Option<MemberRec>> {
        if let Some(m) = self.members.get(id) {
            return Ok(Some(m.clone()));
        }
        match self.base {
            Some(b) => b.find_member(id),
            None => base::get(self.store, "member", &k(key::MEMBER, id.as_bytes())),
        }
    }

    /// A member to change: taken out of this step's decoded members (`put_member`
    /// puts it back; a step that fails is dropped whole) or read.
    fn member(&mut self, id: &str) -> Result<MemberRec> {
        if let Some(m) = self.members.remove(id) {
            return Ok(m);
        }
        let m = self
            .find_member(id)?
            .ok_or_else(|| Error::internal(format!("journal names member {id} that the state does not have")))?;
        if !self.index_before.contains_key(id) {
            self.index_before.insert(id.to_string(), index_keys(&m.state));
        }
        self.totals_before
            .entry(id.to_string())
            .or_insert_with(|| report::counted(&m));
        Ok(m)
    }

    /// `member`, for a member that may not exist yet.
    fn take_member(&mut self, id: &str) -> Result<Option<MemberRec>> {
        if self.find_member(id)?.is_none() {
            self.index_before.entry(id.to_string()).or_default();
            self.totals_before.entry(id.to_string()).or_insert(None);
            return Ok(None);
        }
        self.member(id).map(Some)
    }

    /// The keys under `prefix` as this step sees them (sled's, with the step's own
    /// writes and removals), in key order.
    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut keys: std::collections::BTreeSet<Vec<u8>> = match self.base {
            Some(b) => b.keys_with_prefix(prefix)?.into_iter().collect(),
            None => self.store.keys_with_prefix(prefix)?.into_iter().collect(),
        };
        for (key, v) in self.cache.iter().filter(|(key, _)| key.starts_with(prefix)) {
            match v {
                Some(_) => keys.insert(key.clone()),
                None => keys.remove(key),
            };
        }
        Ok(keys.into_iter().collect())
    }

    /// The member a record's balance effects go to: on the hub, a member merged into
    /// another is followed to it (a terminal may sell to it before it hears of the merge).
    fn live_member(&mut self, id: &str, o: Origin) -> Result<MemberRec> {
        let mut m = self.member(id)?;
        for _ in 0..8 {
            match (&m.state.merged_into, o.stream) {
                (Some(into), Some(_)) => {
                    let into = into.clone();
                    self.members.insert(m.state.member_id.clone(), m);
                    m = self.member(&into)?;
                }
                _ => break,
            }
        }
        Ok(m)
    }

    /// Appends ledger entries to `m`'s ledger: `(kind, points, tx_id, reason)` each, the
    /// balance running from `before` (entries of 0 points are left out). The entries
    /// must account for the whole change of the balance.
    fn ledger(
        &mut self,
        m: &mut MemberRec,
        rec: &Record,
        before: i64,
        entries: &[(LedgerKind, i64, Option<&str>, Option<&str>)],
    ) -> Result<()> {
        // A merge moves points between members: neither issued nor redeemed.
        if !matches!(rec.body, Body::ConflictResolve { .. }) {
            self.report_ledger(rec.day, entries)?;
        }
        self.ledger_at(m, rec.at, rec.by.as_deref(), before, entries)
    }

    /// The report's ledger figures of `day`, by the kinds of `entries`.
    fn report_ledger(&mut self, day: DayNo, entries: &[(LedgerKind, i64, Option<&str>, Option<&str>)]) -> Result<()> {
        let mut add = report::ReportDay::default();
        for &(kind, points, _, _) in entries {
            match kind {
                LedgerKind::Earn | LedgerKind::Activity | LedgerKind::Gift => add.points_issued += points,
                LedgerKind::Adjust if points > 0 => add.points_issued += points,
                LedgerKind::Clawback => add.points_clawed_back -= points,
                LedgerKind::Redeem | LedgerKind::Reward => add.points_redeemed -= points,
                LedgerKind::Expire => add.points_expired -= points,
                LedgerKind::Adjust | LedgerKind::Return => {}
            }
        }
        if add == report::ReportDay::default() {
            return Ok(());
        }
        self.report_day(day, |d| d.add(&add))
    }

    /// The report figures of `day` that the record being applied moves, under the
    /// recording terminal's scope and the chain's.
    fn report_day(&mut self, day: DayNo, f: impl Fn(&mut report::ReportDay)) -> Result<()> {
        for scope in [self.scope.clone(), report::CHAIN.to_string()] {
            let key = report::report_day_key(&scope, day);
            let mut d: report::ReportDay = self.get("report day", &key)?.unwrap_or_default();
            f(&mut d);
            self.put(key, &d);
        }
        Ok(())
    }

    /// One more checkout of member `m` on `day` (active and repeat members: the spans
    /// of `report::active`), under the terminal that enrolled it and the chain; the
    /// first of its month counts the member active in that month in its cohort.
    fn report_checkout(&mut self, day: DayNo, m: &mut MemberRec) -> Result<()> {
        let scope = m.state.enrolled_by.clone();
        let id = m.state.member_id.clone();
        let day_key = report::member_checkout_day_key(&id, day);
        let n: u32 = self.get("member checkout day", &day_key)?.unwrap_or(0);
        let (before, after) = match m.last_days.last() {
            Some(&last) if last > day => self.checkout_neighbours(&id, day)?,
            _ => (m.last_days.clone(), vec![]),
        };
        self.put(day_key, &(n + 1));
        // With two or more later checkouts, the member's last two stay as they were.
        if after.len() < 2 {
            m.last_days = report::last_two(&before, day, &after);
        }
        let moves = report::spans_moved(&before, day, &after);
        for scope in [scope.as_str(), report::CHAIN] {
            self.span_day(scope, day, |d| d.checkouts += 1)?;
            for &(kind, a, b, delta) in &moves {
                let (bucket, len) = report::bucket_of(a, b);
                self.span_day(scope, b, |d| d.bump(kind, bucket, delta))?;
                let key = report::span_bucket_key(scope, b, kind, bucket);
                let mut exact: report::SpanBucket = self.get("span bucket", &key)?.unwrap_or_default();
                report::bump(&mut exact, len, delta);
                match exact.is_empty() {
                    true => self.remove(key),
                    false => self.put(key, &exact),
                }
            }
        }
        if let Some(cohort) = m.cohort {
            let month = report::month_of(day);
            let mk = report::member_month_key(&id, month);
            if self.read(&mk)?.is_none() {
                self.put(mk, &());
                self.report_cohort(&scope, cohort, month)?;
            }
        }
        Ok(())
    }

    /// A member's two checkouts at or before `day` and two after it, from its checkout
    /// days (a checkout that arrives after later ones: pushes from two shops).
    fn checkout_neighbours(&mut self, member_id: &str, day: DayNo) -> Result<(Vec<DayNo>, Vec<DayNo>)> {
        let days: Vec<DayNo> = self
            .keys_with_prefix(&report::member_checkout_days_prefix(member_id))?
            .iter()
            .map(|k| report::split_scope_day(k).1)
            .collect();
        // Two days on each side hold at least two checkouts each.
        let split = days.partition_point(|&d| d <= day);
        let near = &days[split.saturating_sub(2)..(split + 2).min(days.len())];
        let mut counted = Vec::with_capacity(near.len());
        for &d in near {
            let n: u32 = self
                .get("member checkout day", &report::member_checkout_day_key(member_id, d))?
                .unwrap_or(0);
            counted.push((d, n));
        }
        Ok(report::neighbours(&counted, day))
    }

    /// A `SpanDay` of `scope`, changed by `f`.
    fn span_day(&mut self, scope: &str, day: DayNo, f: impl FnOnce(&mut report::SpanDay)) -> Result<()> {
        let key = report::span_day_key(scope, day);
        let mut d: report::SpanDay = self.get("span day", &key)?.unwrap_or_default();
        f(&mut d);
        match d == report::SpanDay::default() {
            true => self.remove(key),
            false => self.put(key, &d),
        }
        Ok(())
    }

    /// One more member in cohort `cohort` of `scope` (and of the chain) active in
    /// `month` (or, with `report::COHORT_SIZE`, enrolled).
    fn report_cohort(&mut self, scope: &str, cohort: u32, month: u32) -> Result<()> {
        for scope in [scope, report::CHAIN] {
            let key = report::cohort_key(scope, cohort, month);
            let n: i64 = self.get("cohort count", &key)?.unwrap_or(0);
            self.put(key, &(n + 1));
        }
        Ok(())
    }

    /// What a campaign did in a checkout of `member_id` on `day`.
    fn report_campaign(
        &mut self,
        day: DayNo,
        member_id: &str,
        kind: report::CampaignKind,
        id: &str,
        add: report::CampaignDay,
    ) -> Result<()> {
        let key = report::campaign_day_key(&self.scope, day, kind, id);
        let mut d: report::CampaignDay = self.get("campaign day", &key)?.unwrap_or_default();
        d.uses += add.uses;
        d.discount += add.discount;
        d.bonus_points += add.bonus_points;
        d.sales += add.sales;
        self.put(key, &d);
        let mk = report::campaign_member_key(&self.scope, kind, id, day, member_id);
        if self.read(&mk)?.is_none() {
            self.put(mk, &());
        }
        Ok(())
    }

    /// `ledger` with the time and who acted given.
    fn ledger_at(
        &mut self,
        m: &mut MemberRec,
        at: crate::model::Ts,
        by: Option<&str>,
        before: i64,
        entries: &[(LedgerKind, i64, Option<&str>, Option<&str>)],
    ) -> Result<()> {
        let mut balance = before;
        for &(kind, points, tx_id, reason) in entries {
            if points == 0 {
                continue;
            }
            balance += points;
            let entry = LedgerEntry {
                at,
                kind,
                points,
                balance_after: balance,
                tx_id: tx_id.map(str::to_string),
                reason: reason.map(str::to_string),
                by: by.map(str::to_string),
            };
            let pk = history::page_key(history::LEDGER, &m.state.member_id, m.ledger_len / history::PAGE);
            let page = self.read(&pk)?;
            self.cache.insert(pk, Some(history::append(page, &entry)));
            m.ledger_len += 1;
        }
        debug_assert_eq!(
            balance,
            m.state.ledger_balance(),
            "member {}: the ledger entries do not account for the balance",
            m.state.member_id
        );
        Ok(())
    }

    /// Appends a checkout to `m`'s transactions.
    fn history(&mut self, m: &mut MemberRec, summary: &TxSummary) -> Result<()> {
        let pk = history::page_key(history::HISTORY, &m.state.member_id, m.history_len / history::PAGE);
        let page = self.read(&pk)?;
        self.cache.insert(pk, Some(history::append(page, summary)));
        m.history_len += 1;
        Ok(())
    }

    /// The terminal a record comes from: the stream's on the hub, this journal's here.
    fn terminal_of(&self, o: Origin) -> Result<String> {
        Ok(match o.stream {
            Some((t, _)) => t.to_string(),
            None => self.identity()?.map(|(t, _)| t).unwrap_or_default(),
        })
    }

    /// Writes a member, stamping local changes; on the hub also keeps the negative-balance
    /// index (the overspent report) exact and puts the member in the change feed.
    fn put_member(&mut self, mut m: MemberRec, o: Origin) -> Result<()> {
        m.state.check_invariants();
        if o.local {
            m.local_seq = o.seq;
        }
        if self.store.hub() {
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
        if self.store.hub() {
            self.feed.push((kind, id.to_string(), o.seq));
        }
        Ok(())
    }

    /// Takes in what a nested step changed.
    fn absorb(&mut self, own: Nested) {
        self.cache.extend(own.cache);
        self.members.extend(own.members);
        self.feed.extend(own.feed);
        for (id, keys) in own.index_before {
            self.index_before.entry(id).or_insert(keys);
        }
        for (id, before) in own.totals_before {
            self.totals_before.entry(id).or_insert(before);
        }
    }

    /// Ends the step: encodes what was kept decoded and moves every entity changed in
    /// this step to the head of the change feed (on the step's own changes, so an entry
    /// made earlier in the step is simply dropped rather than written and removed).
    fn finish(&mut self) -> Result<()> {
        let mut totals: Option<report::ScopedTotals> = None;
        for (id, m) in &self.members {
            let before = match self.totals_before.get(id) {
                Some(b) => b.clone(),
                None => self.find_stored_member(id)?.as_ref().and_then(report::counted),
            };
            let after = report::counted(m);
            if before != after {
                let t = match &mut totals {
                    Some(t) => t,
                    None => totals.insert(self.get("report totals", report::TOTALS)?.unwrap_or_default()),
                };
                report::shift(t, before.as_ref(), after.as_ref());
            }
        }
        self.totals_before.clear();
        if let Some(t) = totals {
            self.put(report::TOTALS.to_vec(), &t);
        }
        for (id, m) in std::mem::take(&mut self.members) {
            // The search and pass indexes follow the member: old keys out, new ones in.
            let before = self.index_before.remove(&id).unwrap_or_default();
            let after = index_keys(&m.state);
            for (key, _) in before.iter().filter(|b| !after.iter().any(|a| a.0 == b.0)) {
                self.remove(key.clone());
            }
            for (key, value) in after.iter().filter(|a| !before.contains(a)) {
                self.cache.insert(key.clone(), Some(value.clone()));
            }
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
        match self.store.identity()? {
            Some(id) => Ok(Some(id)),
            None => self.get("identity", key::IDENTITY),
        }
    }

    /// The journal record a transaction id (a checkout's, a refund's, a reward's) names,
    /// and its seq in this terminal's journal (0 on the hub). A terminal finds its own
    /// by the seq the id names; the hub finds a terminal's through the page of `stream`.
    fn record_of(&self, tx_id: &str, stream: Option<(&str, u64)>) -> Result<Option<(Record, u64)>> {
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
                if seq == 0 || seq > self.store.last_seq() {
                    return Ok(None);
                }
                (seq, seq)
            }
        };
        Ok(Some((self.store.journal_record(held)?, own_seq)))
    }

    /// Checkout `tx_id`, read back from the journal record that holds it, with its note.
    fn tx(&self, tx_id: &str, stream: Option<(&str, u64)>) -> Result<Option<TxState>> {
        let Some((rec, own_seq)) = self.record_of(tx_id, stream)? else {
            return Ok(None);
        };
        let Body::CheckoutV3(c) = rec.body else {
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
    index_before: FastMap<String, search::IndexKeys>,
    totals_before: FastMap<String, Option<report::Counted>>,
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
        let mut writes = step(self, first, recs)?;
        let pushable =
            self.pushable.load(Ordering::Acquire) + recs.iter().filter(|r| r.body.is_pushable()).count() as u64;
        let last = first + recs.len() as u64 - 1;
        writes.insert(key::APPLIED.to_vec(), Some(enc(&Applied { seq: last, pushable })));
        self.shared.overlay.merge(writes);
        self.pushable.store(pushable, Ordering::Release);
        self.applied.store(last, Ordering::Release);
        Ok(())
    }
}

/// Records `first`, `first + 1`, ... applied to what `base` holds, as one step: the
/// changes they make, not yet written anywhere.
pub(super) fn step(base: &dyn StateBase, first: u64, recs: &[Record]) -> Result<Writes> {
    let mut ch = Changes::new(base, None);
    for (i, rec) in recs.iter().enumerate() {
        let origin = Origin {
            seq: first + i as u64,
            local: rec.body.is_pushable(),
            stream: None,
        };
        apply_body(&mut ch, origin, rec)?;
    }
    ch.finish()?;
    Ok(ch.cache)
}

/// The index keys that follow a member's state: search and the daily pass.
fn index_keys(m: &MemberState) -> search::IndexKeys {
    let mut keys = search::keys_of(m);
    keys.extend(super::campaign::pass_keys_of(m));
    keys
}

/// A checkout made at this terminal, by id (for `Store::tx`).
pub(super) fn find_tx(store: &dyn StateBase, tx_id: &str) -> Result<Option<TxState>> {
    Changes::new(store, None).tx(tx_id, None)
}

/// The journal record a transaction id names: this terminal's, or with `stream` a
/// terminal stream's on the hub.
pub(super) fn find_record(store: &dyn StateBase, tx_id: &str, stream: Option<(&str, u64)>) -> Result<Option<Record>> {
    Ok(Changes::new(store, None).record_of(tx_id, stream)?.map(|r| r.0))
}

/// Hub: a checkout terminal stream `(terminal, epoch)` made, by id.
pub(super) fn find_remote_tx(
    store: &dyn StateBase,
    tx_id: &str,
    terminal: &str,
    epoch: u64,
) -> Result<Option<TxState>> {
    Changes::new(store, None).tx(tx_id, Some((terminal, epoch)))
}

/// The hash under which the hub remembers a pushed record's content.
pub fn content_hash(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// Applies one record: loads what it changes, calls the pure transition of `state`,
/// writes the result; remembers its idempotency key.
fn apply_body(ch: &mut Changes, o: Origin, rec: &Record) -> Result<()> {
    ch.scope = ch.terminal_of(o)?;
    let touched = apply_effect(ch, o, rec)?;
    if let Some((key, entry)) = audit::entry_of(rec, o.seq, &ch.scope) {
        for who in [&entry.by, &entry.requested_by].into_iter().flatten() {
            let ak = audit::actor_key(who);
            if ch.read(&ak)?.is_none() {
                ch.put(ak, &());
            }
        }
        ch.put(key, &entry);
    }
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
    match &rec.body {
        Body::Init { terminal_id, epoch } => {
            ch.put(key::IDENTITY.to_vec(), &(terminal_id.clone(), *epoch));
            // A journal 0.2 began (its records name who acted) has canonical phones from
            // its first member on: no upgrade record is needed.
            if rec.by.is_some() {
                ch.put(key::PHONES_CANONICAL.to_vec(), &true);
            }
            Ok(None)
        }
        Body::CheckoutV3(_)
        | Body::Refund(_)
        | Body::RewardRedeem { .. }
        | Body::Expire { .. }
        | Body::PinFail { .. } => sale::apply(ch, o, rec),
        Body::CouponIssueV2(c) => campaign::coupon_issue(ch, o, rec, c),
        Body::GroupJoin(j) => campaign::group_join(ch, o, rec, j),
        Body::TriggerPass { day } => {
            ch.put(key::TRIGGER_DAY.to_vec(), day);
            Ok(None)
        }
        Body::Checkout(_) | Body::CheckoutV2(_) | Body::CouponIssue { .. } | Body::HubPull(_) | Body::HubPullV2(_) => {
            Err(Error::internal(
                "an older version of a record reached apply (Record::decode reads it as the newest)",
            ))
        }
        Body::MemberAdd { .. }
        | Body::MemberAddV2(_)
        | Body::CardBlock { .. }
        | Body::CardReplace { .. }
        | Body::CardUnblock { .. }
        | Body::MemberEdit(_)
        | Body::MemberStatus { .. }
        | Body::PinSet { .. }
        | Body::PointsAdjust { .. }
        | Body::Activity { .. }
        | Body::StaffAdd { .. }
        | Body::StaffChange { .. }
        | Body::PhonesCanonical { .. }
        | Body::ImportChunk { .. }
        | Body::ImportCommit { .. } => member::apply(ch, o, rec),
        Body::HubPullV3(_)
        | Body::Remote(_)
        | Body::Acked { .. }
        | Body::Covered { .. }
        | Body::RulesetPublish { .. }
        | Body::ConflictResolve { .. } => sync::apply(ch, o, rec),
    }
}

/// The member a record names, for the ledger's running balance: its balance now.
fn balance_of(m: &MemberState) -> i64 {
    m.ledger_balance()
}
