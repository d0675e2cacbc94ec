//! Members, their cards, their points outside a sale; staff accounts; imports.

use super::{balance_of, Changes, Origin};
use crate::error::{Error, Result};
use crate::model::{CardStatus, DayNo, MemberState};
use crate::record::{Body, Imported, Record};
use crate::state;
use crate::store::history::LedgerKind;
use crate::store::{k, key, ActivityCount, Conflict, FeedKind, MemberRec, StaffState};

fn import_chunk_key(import_id: u64, chunk: u32) -> Vec<u8> {
    let mut v = k(key::IMPORT, &import_id.to_be_bytes());
    v.extend_from_slice(&chunk.to_be_bytes());
    v
}

pub(in crate::store) fn activity_key(member_id: &str, activity_id: &str) -> Vec<u8> {
    let mut v = k(key::ACTIVITY, member_id.as_bytes());
    v.push(0);
    v.extend_from_slice(activity_id.as_bytes());
    v
}

pub(in crate::store) fn conflict_key(id: &str) -> Vec<u8> {
    k(key::CONFLICT, id.as_bytes())
}

/// Hub: two enrolments of one card or phone. The first (hub order) keeps it; the
/// conflict is listed until an operator resolves it.
fn note_conflict(ch: &mut Changes, kind: &str, value: &str, holder: &str, newcomer: &str, at: i64) -> Result<()> {
    let id = format!("{kind}-{value}");
    let ck = conflict_key(&id);
    let mut c: Conflict = ch.get("conflict", &ck)?.unwrap_or_else(|| Conflict {
        id: id.clone(),
        kind: kind.to_string(),
        value: value.to_string(),
        members: vec![holder.to_string()],
        detected_at: at,
        resolved: false,
    });
    if !c.members.iter().any(|m| m == newcomer) {
        c.members.push(newcomer.to_string());
    }
    c.resolved = false;
    tracing::warn!(
        "hub: {kind} {value} enrolled to {} members: {:?}",
        c.members.len(),
        c.members
    );
    ch.put(ck, &c);
    Ok(())
}

/// A new member (an enrolment or an import): the card and phone are theirs unless
/// someone holds them already (possible only on the hub: two offline shops), which is
/// then a conflict.
fn enrol(ch: &mut Changes, o: Origin, rec: &Record, mut m: MemberState, card: &str) -> Result<String> {
    let id = m.member_id.clone();
    let card_key = k(key::CARD, card.as_bytes());
    if let Some(holder) = ch.get::<String>("card", &card_key)? {
        m.cards[0].1 = CardStatus::Blocked;
        note_conflict(ch, "card", card, &holder, &id, rec.at)?;
    } else {
        ch.put(card_key, &id);
    }
    let phone_key = k(key::PHONE, m.phone.as_bytes());
    match ch.get::<String>("phone", &phone_key)? {
        Some(holder) if holder != id => note_conflict(ch, "phone", &m.phone.clone(), &holder, &id, rec.at)?,
        _ => ch.put(phone_key, &id),
    }
    let before = 0;
    let points = balance_of(&m);
    let mut rec_m = MemberRec::new(m);
    ch.index_before.entry(id.clone()).or_default();
    ch.totals_before.entry(id.clone()).or_insert(None);
    let cohort = crate::store::report::month_of(rec.day);
    rec_m.cohort = Some(cohort);
    ch.report_cohort(&rec_m.state.enrolled_by, cohort, crate::store::report::COHORT_SIZE)?;
    ch.report_day(rec.day, |d| d.new_members += 1)?;
    ch.ledger(
        &mut rec_m,
        rec,
        before,
        &[(LedgerKind::Adjust, points, None, Some("import"))],
    )?;
    ch.put_member(rec_m, o)?;
    ch.daily(rec.day, |d| d.new_members += 1)?;
    Ok(id)
}

pub(super) fn apply(ch: &mut Changes, o: Origin, rec: &Record) -> Result<Option<String>> {
    let at = rec.at;
    match &rec.body {
        Body::MemberAddV2(add) => {
            let terminal = ch.terminal_of(o)?;
            let m =
                state::member::enrolled(&rec.body, CardStatus::Active, at, &terminal).expect("a MemberAddV2 record");
            enrol(ch, o, rec, m, &add.card).map(Some)
        }
        Body::CardBlock { card } => {
            let owner = card_owner(ch, card)?;
            let mut m = ch.member(&owner)?;
            m.state.set_card(card, CardStatus::Blocked);
            ch.put_member(m, o)?;
            ch.feed(FeedKind::BlockedCard, card, o)?;
            Ok(Some(owner))
        }
        Body::CardReplace { old, new } => {
            let owner = card_owner(ch, old)?;
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
        Body::CardUnblock { card } => {
            let owner = card_owner(ch, card)?;
            let mut m = ch.member(&owner)?;
            m.state.set_card(card, CardStatus::Active);
            ch.put_member(m, o)?;
            Ok(Some(owner))
        }
        Body::MemberEdit(e) => {
            let mut m = ch.member(&e.member_id)?;
            if let Some(phone) = &e.phone {
                let old = k(key::PHONE, m.state.phone.as_bytes());
                if ch.get::<String>("phone", &old)?.as_deref() == Some(e.member_id.as_str()) {
                    ch.remove(old);
                }
                let new = k(key::PHONE, phone.as_bytes());
                if ch.read(&new)?.is_none() {
                    ch.put(new, &e.member_id);
                }
            }
            m.state.on_edit(e);
            ch.put_member(m, o)?;
            Ok(Some(e.member_id.clone()))
        }
        Body::MemberStatus { member_id, active } => {
            let mut m = ch.member(member_id)?;
            m.state.active = *active;
            ch.put_member(m, o)?;
            Ok(Some(member_id.clone()))
        }
        Body::PinSet {
            member_id,
            pin_hash,
            reset,
        } => {
            let mut m = ch.member(member_id)?;
            m.state.on_pin_set(pin_hash, *reset);
            ch.put_member(m, o)?;
            Ok(Some(member_id.clone()))
        }
        Body::PointsAdjust {
            member_id,
            points,
            reason,
            lot_expires_at,
        } => {
            let mut m = ch.live_member(member_id, o)?;
            let before = balance_of(&m.state);
            if *points > 0 {
                m.state.credit(*points, at, *lot_expires_at);
            } else {
                m.state.debit(-points);
            }
            ch.ledger(
                &mut m,
                rec,
                before,
                &[(LedgerKind::Adjust, *points, None, Some(reason))],
            )?;
            let id = m.state.member_id.clone();
            ch.put_member(m, o)?;
            Ok(Some(id))
        }
        Body::Activity {
            member_id,
            activity_id,
            points,
            lot_expires_at,
        } => {
            let mut m = ch.live_member(member_id, o)?;
            let before = balance_of(&m.state);
            m.state.on_activity(*points, at, rec.day, *lot_expires_at);
            ch.ledger(
                &mut m,
                rec,
                before,
                &[(LedgerKind::Activity, *points, None, Some(activity_id))],
            )?;
            let id = m.state.member_id.clone();
            count_activity(ch, &id, activity_id, rec.day)?;
            ch.put_member(m, o)?;
            Ok(Some(id))
        }
        Body::StaffAdd {
            staff_id,
            name,
            role,
            password_hash,
        } => {
            let s = StaffState {
                staff_id: staff_id.clone(),
                name: name.clone(),
                role: role.clone(),
                password_hash: password_hash.clone(),
                disabled: false,
            };
            ch.put(k(key::STAFF, staff_id.as_bytes()), &s);
            Ok(None)
        }
        Body::StaffChange {
            staff_id,
            role,
            password_hash,
            disabled,
        } => {
            let sk = k(key::STAFF, staff_id.as_bytes());
            let mut s: StaffState = ch
                .get("staff", &sk)?
                .ok_or_else(|| Error::internal(format!("journal changes unknown staff {staff_id}")))?;
            if let Some(r) = role {
                s.role = r.clone();
            }
            if let Some(h) = password_hash {
                s.password_hash = h.clone();
            }
            if let Some(d) = disabled {
                s.disabled = *d;
            }
            ch.put(sk, &s);
            Ok(None)
        }
        Body::PhonesCanonical { phones } => {
            for (member_id, phone) in phones {
                // The hub may not hold every member a terminal upgraded (nor the other way).
                if ch.find_member(member_id)?.is_none() {
                    continue;
                }
                let mut m = ch.member(member_id)?;
                let old = k(key::PHONE, m.state.phone.as_bytes());
                if ch.get::<String>("phone", &old)?.as_deref() == Some(member_id.as_str()) {
                    ch.remove(old);
                }
                let new = k(key::PHONE, phone.as_bytes());
                if ch.read(&new)?.is_none() {
                    ch.put(new, member_id);
                }
                m.state.phone = phone.clone();
                ch.put_member(m, o)?;
            }
            if o.stream.is_none() {
                ch.put(key::PHONES_CANONICAL.to_vec(), &true);
            }
            Ok(None)
        }
        Body::ImportChunk { import_id, members } => {
            let chunk = next_chunk(ch, *import_id)?;
            ch.put(import_chunk_key(*import_id, chunk), members);
            Ok(None)
        }
        Body::ImportCommit { import_id, chunks } => {
            let terminal = ch.terminal_of(o)?;
            for chunk in 0..*chunks {
                let ck = import_chunk_key(*import_id, chunk);
                let members: Vec<Imported> = ch
                    .get("import", &ck)?
                    .ok_or_else(|| Error::internal(format!("import {import_id:x} lacks its chunk {chunk}")))?;
                ch.remove(ck);
                for i in &members {
                    let m = state::member::imported(i, at, &terminal);
                    enrol(ch, o, rec, m, &i.card)?;
                }
            }
            Ok(None)
        }
        Body::MemberAdd { .. } => Err(Error::internal("a 0.1 enrolment is read as MemberAddV2")),
        other => Err(Error::internal(format!("not a member record: {other:?}"))),
    }
}

fn card_owner(ch: &Changes, card: &str) -> Result<String> {
    ch.get("card", &k(key::CARD, card.as_bytes()))?
        .ok_or_else(|| Error::internal(format!("journal names unknown card {card}")))
}

/// The next chunk number of an import being staged (chunks are staged in order).
fn next_chunk(ch: &Changes, import_id: u64) -> Result<u32> {
    let mut n = 0;
    while ch.read(&import_chunk_key(import_id, n))?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// One more grant of `activity_id` to a member (for its limits).
fn count_activity(ch: &mut Changes, member_id: &str, activity_id: &str, day: DayNo) -> Result<()> {
    let key = activity_key(member_id, activity_id);
    let mut c: ActivityCount = ch.get("activity count", &key)?.unwrap_or_default();
    if c.day != day {
        c.day = day;
        c.today = 0;
    }
    c.today += 1;
    c.total += 1;
    ch.put(key, &c);
    Ok(())
}
