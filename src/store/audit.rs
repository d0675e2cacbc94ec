//! The audit index: who did what, when, at which terminal, one key per record that is
//! an action (`l` + local day + seq), written as the record applies, so the audit view
//! pages it newest first without reading the journal. `y` + staff id notes every actor
//! seen, so that a filter by an unknown staff id can be told apart from one with no
//! entries in the window.

use serde::{Deserialize, Serialize};

use super::base::StateBase;
use super::{dec, k};
use crate::error::{Error, Result};
use crate::model::{DayNo, Ts};
use crate::record::{Body, Record};

pub(super) const AUDIT: u8 = b'l';
pub(super) const ACTOR: u8 = b'y';

/// The actions the audit view names, stable (interface: add, never rename).
pub const ACTIONS: &[&str] = &[
    "member.add",
    "member.edit",
    "member.status",
    "member.import",
    "card.block",
    "card.replace",
    "card.unblock",
    "pin.set",
    "pin.reset",
    "pin.fail",
    "checkout",
    "refund",
    "coupon.issue",
    "coupon.exchange",
    "reward.redeem",
    "points.adjust",
    "points.activity",
    "points.expire",
    "group.join",
    "staff.add",
    "staff.change",
    "ruleset.publish",
    "conflict.resolve",
];

/// One entry of the audit view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The seq of the record in this node's journal (on the hub: of the hub's record
    /// that holds the terminal's).
    pub seq: u64,
    pub at: Ts,
    pub action: String,
    /// Who acted (`pos`, `cli`, `operator`, a staff id; none in records before 0.2
    /// and in the daemon's own, such as the expiry pass), and who asked when a
    /// manager approved.
    pub by: Option<String>,
    pub requested_by: Option<String>,
    pub terminal_id: String,
    /// What it acted on: a member, card, transaction, coupon, staff id, conflict.
    pub subject: Option<String>,
}

/// The action a record is and what it acted on; None for bookkeeping (sync, the
/// journal's start, the daily pass's mark, an import's chunks before its commit).
pub(super) fn action_of(body: &Body) -> Option<(&'static str, Option<String>)> {
    let s = |v: &str| Some(v.to_string());
    Some(match body {
        Body::MemberAddV2(a) => ("member.add", s(&a.member_id)),
        Body::MemberEdit(e) => ("member.edit", s(&e.member_id)),
        Body::MemberStatus { member_id, .. } => ("member.status", s(member_id)),
        Body::ImportCommit { import_id, .. } => ("member.import", Some(import_id.to_string())),
        Body::CardBlock { card } => ("card.block", s(card)),
        Body::CardReplace { old, .. } => ("card.replace", s(old)),
        Body::CardUnblock { card } => ("card.unblock", s(card)),
        Body::PinSet {
            member_id,
            reset: false,
            ..
        } => ("pin.set", s(member_id)),
        Body::PinSet { member_id, .. } => ("pin.reset", s(member_id)),
        Body::PinFail { member_id } => ("pin.fail", s(member_id)),
        Body::CheckoutV3(c) => ("checkout", s(&c.tx_id)),
        Body::Refund(r) => ("refund", s(&r.refund_id)),
        Body::CouponIssueV2(c) if c.points > 0 => ("coupon.exchange", s(&c.code)),
        Body::CouponIssueV2(c) => ("coupon.issue", s(&c.code)),
        Body::RewardRedeem { redemption_id, .. } => ("reward.redeem", s(redemption_id)),
        Body::PointsAdjust { member_id, .. } => ("points.adjust", s(member_id)),
        Body::Activity { member_id, .. } => ("points.activity", s(member_id)),
        Body::Expire { member_id } => ("points.expire", s(member_id)),
        Body::GroupJoin(j) => ("group.join", s(&j.group_id)),
        Body::StaffAdd { staff_id, .. } => ("staff.add", s(staff_id)),
        Body::StaffChange { staff_id, .. } => ("staff.change", s(staff_id)),
        Body::RulesetPublish { version, .. } => ("ruleset.publish", Some(version.to_string())),
        Body::ConflictResolve { conflict_id, .. } => ("conflict.resolve", s(conflict_id)),
        Body::Init { .. }
        | Body::Checkout(_)
        | Body::CheckoutV2(_)
        | Body::CouponIssue { .. }
        | Body::MemberAdd { .. }
        | Body::HubPull(_)
        | Body::HubPullV2(_)
        | Body::HubPullV3(_)
        | Body::Remote(_)
        | Body::Covered { .. }
        | Body::Acked { .. }
        | Body::PhonesCanonical { .. }
        | Body::ImportChunk { .. }
        | Body::TriggerPass { .. } => return None,
    })
}

fn day_bytes(day: DayNo) -> [u8; 4] {
    ((day as u32) ^ 0x8000_0000).to_be_bytes()
}

pub(super) fn audit_key(day: DayNo, seq: u64) -> Vec<u8> {
    let mut v = k(AUDIT, &day_bytes(day));
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

pub(super) fn actor_key(staff_id: &str) -> Vec<u8> {
    k(ACTOR, staff_id.as_bytes())
}

/// The entry of record `rec` (seq `seq`, made at `terminal`), if it is an action.
pub(super) fn entry_of(rec: &Record, seq: u64, terminal: &str) -> Option<(Vec<u8>, AuditEntry)> {
    let (action, subject) = action_of(&rec.body)?;
    Some((
        audit_key(rec.day, seq),
        AuditEntry {
            seq,
            at: rec.at,
            action: action.to_string(),
            by: rec.by.clone(),
            requested_by: rec.requested_by.clone(),
            terminal_id: terminal.to_string(),
            subject,
        },
    ))
}

/// What the audit view asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from: Option<DayNo>,
    pub to: Option<DayNo>,
    pub staff: Option<String>,
    pub action: Option<String>,
    pub terminal: Option<String>,
}

impl AuditFilter {
    fn admits(&self, e: &AuditEntry) -> bool {
        let by_or_asker = |s: &String| e.by.as_ref() == Some(s) || e.requested_by.as_ref() == Some(s);
        self.staff.as_ref().is_none_or(by_or_asker)
            && self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.terminal.as_ref().is_none_or(|t| *t == e.terminal_id)
    }
}

/// A page of the audit view and where the next one starts (an opaque cursor).
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: Option<String>,
}

/// The most index entries one page looks at: a filter that matches little returns a
/// short page (or none) with a cursor to go on from, rather than read the whole index.
pub const AUDIT_SCAN: usize = 20_000;

pub fn parse_cursor(c: &str) -> Result<Vec<u8>> {
    let bad = || Error::invalid(format!("cursor {c:?} is not one this view gave"));
    if c.len() != 24 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut key = vec![AUDIT];
    for i in (0..24).step_by(2) {
        key.push(u8::from_str_radix(&c[i..i + 2], 16).map_err(|_| bad())?);
    }
    Ok(key)
}

fn cursor_of(key: &[u8]) -> String {
    key[1..].iter().map(|b| format!("{b:02x}")).collect()
}

/// Entries newest first (by local day, then seq), before `cursor` if given: the same
/// page over any store.
pub fn page(base: &dyn StateBase, f: &AuditFilter, cursor: Option<&str>, limit: usize) -> Result<AuditPage> {
    let lo = match f.from {
        Some(d) => k(AUDIT, &day_bytes(d)),
        None => vec![AUDIT],
    };
    let mut hi = match f.to {
        Some(d) => k(AUDIT, &day_bytes(d + 1)),
        None => vec![AUDIT + 1],
    };
    if let Some(c) = cursor {
        hi = hi.min(parse_cursor(c)?);
    }
    let mut page = AuditPage::default();
    let mut scanned = 0;
    base.range_rev(&lo, &hi, &mut |key, v| {
        let e: AuditEntry = dec("audit entry", v)?;
        scanned += 1;
        if f.admits(&e) {
            page.entries.push(e);
        }
        if page.entries.len() == limit || scanned == AUDIT_SCAN {
            page.next = Some(cursor_of(key));
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(page)
}

/// Whether `staff_id` has acted in a record applied to `base`.
pub fn actor_seen(base: &dyn StateBase, staff_id: &str) -> Result<bool> {
    base.visit(&actor_key(staff_id), &mut |_| Ok(()))
}
