//! What moves between a terminal and the hub: records pushed (hub), pulls (terminal),
//! acknowledgements, rulesets, and an operator's resolution of a conflict (hub).

use super::{apply_body, balance_of, content_hash, Changes, Nested, Origin};
use crate::error::{Error, Result};
use crate::model::{CardStatus, CouponState};
use crate::record::{Body, HubPullV3, Record, Remote};
use crate::state::convert;
use crate::store::apply::member::conflict_key;
use crate::store::apply::sale::member_coupon_key;
use crate::store::history::{self, LedgerKind, TxSummary};
use crate::store::{k, key, Acked, Conflict, FeedKind, MemberRec};

pub(super) fn apply(ch: &mut Changes, o: Origin, rec: &Record) -> Result<Option<String>> {
    match &rec.body {
        Body::HubPullV3(p) => apply_pull(ch, o, rec, p).map(|_| None),
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
        Body::ConflictResolve {
            conflict_id,
            keep,
            merge,
        } => resolve(ch, o, rec, conflict_id, keep, *merge).map(|_| Some(keep.clone())),
        other => Err(Error::internal(format!("not a sync record: {other:?}"))),
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
            index_before: own.index_before,
            totals_before: own.totals_before,
        })
    });
    let skipped = match applied {
        Ok(own) => {
            ch.absorb(own);
            false
        }
        Err(e) => {
            if !ch.store.tentative() {
                tracing::error!(
                    "hub: record {}/{:x}/{} could not be applied and is kept without effect: {e}",
                    r.terminal_id,
                    r.epoch,
                    r.seq
                );
            }
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
///
/// The hub's word decides who holds a card or phone: a snapshot's active cards, and
/// its phone where the hub finds the member by it, point to it here (so that of two
/// offline enrolments of one card the one the hub kept uses it at every terminal).
fn apply_pull(ch: &mut Changes, o: Origin, rec: &Record, p: &HubPullV3) -> Result<()> {
    let none = Origin {
        seq: o.seq,
        local: false,
        stream: None,
    };
    for snap in &p.members {
        let id = &snap.member_id;
        let stale_key = k(key::STALE, id.as_bytes());
        let local = ch.take_member(id)?;
        if let Some(l) = local.as_ref().filter(|l| l.local_seq > p.acked) {
            ch.put(stale_key, &());
            ch.members.insert(id.clone(), l.clone());
            continue;
        }
        let mut m = MemberRec::new(convert::member_of(snap));
        // This terminal's own bookkeeping stays: its last local change, where its
        // history pages end, its report figures (cohort, last checkout days); its
        // unacknowledged redemptions are all acknowledged.
        let before = match &local {
            Some(l) => {
                m.local_seq = l.local_seq;
                m.ledger_len = l.ledger_len;
                m.history_len = l.history_len;
                m.cohort = l.cohort;
                m.last_days = l.last_days.clone();
                if l.state.phone != snap.phone {
                    let old = k(key::PHONE, l.state.phone.as_bytes());
                    if ch.get::<String>("phone", &old)?.as_deref() == Some(id.as_str()) {
                        ch.remove(old);
                    }
                }
                balance_of(&l.state)
            }
            None => 0,
        };
        // What changed elsewhere (other shops, an operator) reaches this ledger as one
        // entry per pull, so that the ledger still adds up to the balance.
        let delta = balance_of(&m.state) - before;
        ch.ledger_at(
            &mut m,
            rec.at,
            Some("hub"),
            before,
            &[(LedgerKind::Adjust, delta, None, Some("hub"))],
        )?;
        for (card, status) in &m.state.cards {
            // A blocked card points here too if no one else holds it (a lookup
            // then says "blocked", not "unknown").
            if *status == CardStatus::Active || ch.read(&k(key::CARD, card.as_bytes()))?.is_none() {
                ch.put(k(key::CARD, card.as_bytes()), id);
            }
        }
        if snap.holds_phone && snap.merged_into.is_none() {
            ch.put(k(key::PHONE, snap.phone.as_bytes()), id);
        }
        ch.remove(stale_key);
        ch.put_member(m, none)?;
    }
    for (code, snap) in &p.coupons {
        let state: CouponState = snap.into();
        let ck = k(key::COUPON, code.as_bytes());
        let local: Option<CouponState> = ch.get("coupon", &ck)?;
        // A coupon used here stays used whatever an older hub view says.
        if local
            .as_ref()
            .is_some_and(|l| l.used_by.is_some() && state.used_by.is_none())
        {
            continue;
        }
        if let Some(l) = local.filter(|l| l.member_id != state.member_id) {
            ch.remove(member_coupon_key(&l.member_id, code));
        }
        ch.put(member_coupon_key(&state.member_id, code), &());
        ch.put(ck, &state);
    }
    for card in &p.blocked_cards {
        if let Some(owner) = ch.get::<String>("card", &k(key::CARD, card.as_bytes()))? {
            let mut m = ch.member(&owner)?;
            m.state.set_card(card, CardStatus::Blocked);
            ch.put_member(m, none)?;
        }
    }
    super::campaign::pulled_groups(ch, p.acked, &p.groups)?;
    if let Some(text) = &p.ruleset {
        ch.put(key::HUB_RULESET.to_vec(), text);
    }
    ch.put(key::CURSOR.to_vec(), &p.cursor);
    Ok(())
}

/// Hub: an operator's answer to a conflict. `keep` gets the card or phone; with
/// `merge`, every other member of the conflict moves into it (lots, debt, metric,
/// visits, tags, cards, coupons, history) and is left merged, with no balance.
fn resolve(ch: &mut Changes, o: Origin, rec: &Record, id: &str, keep: &str, merge: bool) -> Result<()> {
    let ck = conflict_key(id);
    let mut c: Conflict = ch
        .get("conflict", &ck)?
        .ok_or_else(|| Error::internal(format!("journal resolves unknown conflict {id}")))?;
    let mut kept = ch.member(keep)?;
    let value_key = match c.kind.as_str() {
        "card" => k(key::CARD, c.value.as_bytes()),
        _ => k(key::PHONE, c.value.as_bytes()),
    };
    ch.put(value_key, &keep.to_string());
    if c.kind == "card" {
        kept.state.set_card(&c.value, CardStatus::Active);
    }
    for other_id in c.members.iter().filter(|m| *m != keep) {
        let mut other = ch.member(other_id)?;
        if other.state.merged_into.is_some() {
            ch.members.insert(other_id.clone(), other);
            continue;
        }
        if c.kind == "card" {
            other.state.set_card(&c.value, CardStatus::Blocked);
            ch.feed(FeedKind::BlockedCard, &c.value, o)?;
        }
        if merge {
            merge_into(ch, o, rec, &mut kept, &mut other)?;
        } else if c.kind == "phone" {
            // The phone is the kept member's alone now; the other has none until an
            // edit gives it one.
            other.state.phone.clear();
        }
        ch.put_member(other, o)?;
    }
    ch.put_member(kept, o)?;
    c.resolved = true;
    ch.put(ck, &c);
    Ok(())
}

fn merge_into(ch: &mut Changes, o: Origin, rec: &Record, kept: &mut MemberRec, other: &mut MemberRec) -> Result<()> {
    let (kept_before, other_before) = (balance_of(&kept.state), balance_of(&other.state));
    kept.state.absorb(&mut other.state);
    let (kept_id, other_id) = (kept.state.member_id.clone(), other.state.member_id.clone());
    ch.ledger(
        kept,
        rec,
        kept_before,
        &[(
            LedgerKind::Adjust,
            other_before,
            None,
            Some(&format!("merged from {other_id}")),
        )],
    )?;
    ch.ledger(
        other,
        rec,
        other_before,
        &[(
            LedgerKind::Adjust,
            -other_before,
            None,
            Some(&format!("merged into {kept_id}")),
        )],
    )?;
    // Its cards are the kept member's now, as they were (the conflicting one stays
    // blocked: the kept member holds it already).
    for (card, status) in std::mem::take(&mut other.state.cards) {
        if kept.state.cards.iter().any(|(c, _)| *c == card) {
            continue;
        }
        ch.put(k(key::CARD, card.as_bytes()), &kept_id);
        kept.state.cards.push((card, status));
    }
    let phone = k(key::PHONE, other.state.phone.as_bytes());
    if ch.get::<String>("phone", &phone)?.as_deref() == Some(other_id.as_str()) {
        ch.put(phone, &kept_id);
    }
    // Its coupons.
    let mut prefix = k(key::MEMBER_COUPON, other_id.as_bytes());
    prefix.push(0);
    for qk in ch.keys_with_prefix(&prefix)? {
        let code = String::from_utf8_lossy(&qk[prefix.len()..]).into_owned();
        let coupon_key = k(key::COUPON, code.as_bytes());
        if let Some(mut cs) = ch.get::<CouponState>("coupon", &coupon_key)? {
            cs.member_id = kept_id.clone();
            ch.put(coupon_key, &cs);
            ch.feed(FeedKind::Coupon, &code, o)?;
        }
        ch.remove(qk);
        ch.put(member_coupon_key(&kept_id, &code), &());
    }
    // Its transactions join the kept member's, in time order (the merged member's id
    // still answers with its own).
    let theirs: Vec<TxSummary> = read_all(ch, history::HISTORY, &other_id, other.history_len)?;
    if !theirs.is_empty() {
        let mut all: Vec<TxSummary> = read_all(ch, history::HISTORY, &kept_id, kept.history_len)?;
        all.extend(theirs);
        all.sort_by_key(|t| t.at);
        for page in 0..kept.history_len.div_ceil(history::PAGE) {
            ch.remove(history::page_key(history::HISTORY, &kept_id, page));
        }
        kept.history_len = 0;
        for t in &all {
            ch.history(kept, t)?;
        }
    }
    Ok(())
}

/// Every entry of a member's ledger or history, oldest first.
fn read_all<T: serde::de::DeserializeOwned>(ch: &Changes, prefix: u8, member_id: &str, len: u64) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(len as usize);
    for page in 0..len.div_ceil(history::PAGE) {
        if let Some(bytes) = ch.read(&history::page_key(prefix, member_id, page))? {
            out.extend(history::decode_page::<T>(&bytes)?);
        }
    }
    Ok(out)
}
