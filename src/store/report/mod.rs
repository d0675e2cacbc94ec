//! What the reports read, kept as records apply so that a report never scans members
//! or the journal. Every key starts with a scope, the id of a terminal, so that the hub
//! keeps each shop's figures beside each other and sums them for the chain (a terminal
//! has its own scope, and those of the members it holds that other shops enrolled):
//!
//! - `e` + recorder + day: `ReportDay`, the day's sales, checkouts, refunds, new members
//!   and ledger figures (issued, clawed back, redeemed, expired) of the records that
//!   terminal made. A summary of N days reads N keys per scope.
//! - `J` + enroller + day: `SpanDay`, the checkouts of that terminal's members on that
//!   day and the spans between their checkouts that end on it, by which a window's
//!   active and repeat members are counted exactly from three keys per day (see
//!   `active`). Key `u` (member, day) holds a member's checkouts of a day, read only
//!   when a checkout arrives out of order. Scoped by the terminal that enrolled the
//!   member, which is what the hub's `?terminal=` narrows member figures to; a member
//!   has one enroller, so the scopes never share a member.
//! - `o` + enroller + enrolment month + month: the retention cohorts, counted: the
//!   members of the cohort with a checkout in that month (`COHORT_SIZE`: enrolled).
//!   Key `x` (member, month) marks a member's first checkout of a month, so that the
//!   count is of distinct members whatever order the records come in. Retention reads
//!   one key per cohort and month.
//! - `g` + recorder + day + campaign: `CampaignDay`, what a promotion, coupon type, earn
//!   campaign, group-buy deal or trigger did in the checkouts of that day.
//! - `h` + recorder + campaign + day + member: the members a campaign touched that day
//!   (exact distinct members of a window: one key per campaign, day and member).
//! - `Mreports`: `Totals` by enroller, the running sum of positive balances and members
//!   per tier, moved by the difference each step makes to each member it writes. The
//!   tier counted is the one stored on the member at its last change (a rolling window
//!   can lower a tier as days pass without any record; the report does not re-evaluate
//!   it). Members merged into another are not counted.
//!
//! The figures of `e`, `J` and `o` are kept twice: under their scope and under `CHAIN`
//! (`*`, which no terminal id can be), so that the chain's report reads one scope, not
//! one per terminal. A scope ends with a 0 byte (terminal ids hold none). Ledger figures count the
//! entries of records made here (or, on the hub, pushed by terminals); the hub's
//! snapshots a terminal pulls and merges of conflicting enrolments move balances but
//! are not issuance or redemption.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

mod active;

pub(super) use active::{
    bucket_of, bump, last_two, member_checkout_day_key, member_checkout_days_prefix, neighbours, span_bucket_key,
    span_day_key, spans_moved, Span, SpanBucket, SpanDay,
};

use super::base::{get, StateBase};
use super::{dec, MemberRec};
use crate::error::Result;
use crate::model::{day_date, DayNo};
use chrono::Datelike;

pub(super) const REPORT_DAY: u8 = b'e';
pub(super) const SPAN_DAY: u8 = b'J';
pub(super) const MEMBER_CHECKOUT_DAY: u8 = b'u';
/// The scope of the chain-wide copy of the `e`, `J` and `o` figures.
pub(super) const CHAIN: &str = "*";
pub(super) const COHORT: u8 = b'o';
pub(super) const CAMPAIGN_DAY: u8 = b'g';
pub(super) const CAMPAIGN_MEMBER: u8 = b'h';
pub(super) const MEMBER_MONTH: u8 = b'x';
/// The month under which a cohort's size is counted.
pub(super) const COHORT_SIZE: u32 = u32::MAX;
pub(super) const TOTALS: &[u8] = b"Mreports";

/// The figures of one local day, as one terminal recorded them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDay {
    pub checkouts: i64,
    /// Checkout totals, and refund amounts, of the day.
    pub total: i64,
    pub refunded_amount: i64,
    pub new_members: i64,
    pub points_issued: i64,
    pub points_clawed_back: i64,
    pub points_redeemed: i64,
    pub points_expired: i64,
}

impl ReportDay {
    pub(super) fn add(&mut self, o: &ReportDay) {
        self.checkouts += o.checkouts;
        self.total += o.total;
        self.refunded_amount += o.refunded_amount;
        self.new_members += o.new_members;
        self.points_issued += o.points_issued;
        self.points_clawed_back += o.points_clawed_back;
        self.points_redeemed += o.points_redeemed;
        self.points_expired += o.points_expired;
    }
}

/// What kind of thing a campaign row is (interface.md's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CampaignKind {
    Promotion,
    Coupon,
    Campaign,
    GroupBuy,
    Trigger,
}

impl CampaignKind {
    pub const ALL: [CampaignKind; 5] = [
        CampaignKind::Promotion,
        CampaignKind::Coupon,
        CampaignKind::Campaign,
        CampaignKind::GroupBuy,
        CampaignKind::Trigger,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CampaignKind::Promotion => "promotion",
            CampaignKind::Coupon => "coupon",
            CampaignKind::Campaign => "campaign",
            CampaignKind::GroupBuy => "group_buy",
            CampaignKind::Trigger => "trigger",
        }
    }

    fn byte(self) -> u8 {
        match self {
            CampaignKind::Promotion => b'p',
            CampaignKind::Coupon => b'c',
            CampaignKind::Campaign => b'm',
            CampaignKind::GroupBuy => b'g',
            CampaignKind::Trigger => b't',
        }
    }

    fn of_byte(b: u8) -> Option<CampaignKind> {
        CampaignKind::ALL.into_iter().find(|k| k.byte() == b)
    }
}

/// What one campaign did in the checkouts of a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignDay {
    pub uses: i64,
    pub discount: i64,
    pub bonus_points: i64,
    pub sales: i64,
}

/// A campaign's row over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    pub kind: CampaignKind,
    pub id: String,
    pub figures: CampaignDay,
    pub members: i64,
}

/// The "now" figures of one scope, kept running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub points_outstanding: i64,
    pub tiers: BTreeMap<String, i64>,
}

/// Totals by enrolling terminal.
pub type ScopedTotals = BTreeMap<String, Totals>;

/// Takes out what `before` counted and puts in what `after` counts.
pub(super) fn shift(totals: &mut ScopedTotals, before: Option<&Counted>, after: Option<&Counted>) {
    if let Some(b) = before {
        let t = totals.entry(b.scope.clone()).or_default();
        t.points_outstanding -= b.positive_balance;
        let n = t.tiers.entry(b.tier.clone()).or_default();
        *n -= 1;
        if *n == 0 {
            t.tiers.remove(&b.tier);
        }
    }
    if let Some(a) = after {
        let t = totals.entry(a.scope.clone()).or_default();
        t.points_outstanding += a.positive_balance;
        *t.tiers.entry(a.tier.clone()).or_default() += 1;
    }
}

/// What one member adds to the totals of its enroller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Counted {
    scope: String,
    positive_balance: i64,
    tier: String,
}

/// A member's share of the totals (none once merged into another).
pub(super) fn counted(m: &MemberRec) -> Option<Counted> {
    if m.state.merged_into.is_some() {
        return None;
    }
    Some(Counted {
        scope: m.state.enrolled_by.clone(),
        positive_balance: m.state.ledger_balance().max(0),
        tier: m.state.tier.clone(),
    })
}

/// Which terminals' figures a report reads: every one (the chain, or a terminal with
/// the members others enrolled), or one.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    One(&'a str),
}

impl Scope<'_> {
    /// The scope its figures are kept under (the chain's copy for `All`).
    fn key(&self) -> &str {
        match self {
            Scope::All => CHAIN,
            Scope::One(s) => s,
        }
    }
}

fn day_bytes(day: DayNo) -> [u8; 4] {
    ((day as u32) ^ 0x8000_0000).to_be_bytes()
}

fn day_of(b: &[u8]) -> DayNo {
    (u32::from_be_bytes(b.try_into().unwrap_or([0; 4])) ^ 0x8000_0000) as DayNo
}

fn scoped(prefix: u8, scope: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + scope.len() + 16);
    v.push(prefix);
    v.extend_from_slice(scope.as_bytes());
    v.push(0);
    v
}

/// A key's scope and what follows it.
pub(super) fn split_scope(key: &[u8]) -> (String, &[u8]) {
    let rest = &key[1.min(key.len())..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let after = rest.get(end + 1..).unwrap_or(&[]);
    (String::from_utf8_lossy(&rest[..end]).into_owned(), after)
}

pub(super) fn report_day_key(scope: &str, day: DayNo) -> Vec<u8> {
    let mut v = scoped(REPORT_DAY, scope);
    v.extend_from_slice(&day_bytes(day));
    v
}

/// Months since 0000-01 of a local day.
pub fn month_of(day: DayNo) -> u32 {
    let d = day_date(day);
    d.year() as u32 * 12 + d.month0()
}

pub(super) fn cohort_key(scope: &str, cohort: u32, month: u32) -> Vec<u8> {
    let mut v = scoped(COHORT, scope);
    v.extend_from_slice(&cohort.to_be_bytes());
    v.extend_from_slice(&month.to_be_bytes());
    v
}

pub(super) fn member_month_key(member_id: &str, month: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + member_id.len());
    v.push(MEMBER_MONTH);
    v.extend_from_slice(member_id.as_bytes());
    v.extend_from_slice(&month.to_be_bytes());
    v
}

pub(super) fn campaign_day_key(scope: &str, day: DayNo, kind: CampaignKind, id: &str) -> Vec<u8> {
    let mut v = scoped(CAMPAIGN_DAY, scope);
    v.extend_from_slice(&day_bytes(day));
    v.push(kind.byte());
    v.extend_from_slice(id.as_bytes());
    v
}

fn campaign_member_prefix(scope: &str, kind: CampaignKind, id: &str) -> Vec<u8> {
    let mut v = scoped(CAMPAIGN_MEMBER, scope);
    v.push(kind.byte());
    v.extend_from_slice(id.as_bytes());
    v.push(0);
    v
}

pub(super) fn campaign_member_key(scope: &str, kind: CampaignKind, id: &str, day: DayNo, member: &str) -> Vec<u8> {
    let mut v = campaign_member_prefix(scope, kind, id);
    v.extend_from_slice(&day_bytes(day));
    v.extend_from_slice(member.as_bytes());
    v
}

/// Decoding keys back for the dump: (scope, day, rest), (scope, month, member),
/// (scope, day, kind, id), (scope, kind, id, day, member).
pub(super) fn split_scope_day(key: &[u8]) -> (String, DayNo, &[u8]) {
    let (scope, rest) = split_scope(key);
    let day = day_of(rest.get(..4).unwrap_or(&[0; 4]));
    (scope, day, rest.get(4..).unwrap_or(&[]))
}

pub(super) fn split_cohort(key: &[u8]) -> (String, u32, u32) {
    let (scope, rest) = split_scope(key);
    let num = |r: Option<&[u8]>| u32::from_be_bytes(r.and_then(|b| b.try_into().ok()).unwrap_or([0; 4]));
    (scope, num(rest.get(..4)), num(rest.get(4..8)))
}

pub(super) fn split_member_month(key: &[u8]) -> (String, u32) {
    let rest = &key[1.min(key.len())..];
    let cut = rest.len().saturating_sub(4);
    let month = u32::from_be_bytes(rest[cut..].try_into().unwrap_or([0; 4]));
    (String::from_utf8_lossy(&rest[..cut]).into_owned(), month)
}

pub(super) fn split_campaign_day(key: &[u8]) -> (String, DayNo, &'static str, String) {
    let (scope, rest) = split_scope(key);
    let day = day_of(rest.get(..4).unwrap_or(&[0; 4]));
    let kind = rest
        .get(4)
        .and_then(|&b| CampaignKind::of_byte(b))
        .map_or("?", CampaignKind::name);
    (
        scope,
        day,
        kind,
        String::from_utf8_lossy(rest.get(5..).unwrap_or(&[])).into_owned(),
    )
}

pub(super) fn split_campaign_member(key: &[u8]) -> (String, String, DayNo, String) {
    let (scope, rest) = split_scope(key);
    let kind = rest
        .first()
        .and_then(|&b| CampaignKind::of_byte(b))
        .map_or("?", CampaignKind::name);
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let id = String::from_utf8_lossy(rest.get(1..end).unwrap_or(&[]));
    let tail = rest.get(end + 1..).unwrap_or(&[]);
    let day = day_of(tail.get(..4).unwrap_or(&[0; 4]));
    (
        scope,
        format!("{kind}:{id}"),
        day,
        String::from_utf8_lossy(tail.get(4..).unwrap_or(&[])).into_owned(),
    )
}

/// Cohorts by enrolment month: their size, and by month the members active in it.
pub type Cohorts = BTreeMap<u32, (i64, BTreeMap<u32, i64>)>;

/// The window figures a summary reads from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub day: ReportDay,
    pub active_members: i64,
    pub repeat_members: i64,
}

/// The key just past every key that starts with `prefix`.
fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    while let Some(last) = v.pop() {
        if last < 0xFF {
            v.push(last + 1);
            return v;
        }
    }
    vec![0xFF; prefix.len() + 1]
}

/// `f` of each key and value in `[lo, hi)`, in key order, from any base.
fn range<T>(
    base: &dyn StateBase,
    lo: &[u8],
    hi: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    base.range_rev(lo, hi, &mut |k, v| {
        out.push(f(k, v)?);
        Ok(true)
    })?;
    out.reverse();
    Ok(out)
}

/// The scopes that have keys under `prefix`: one seek per scope (each goes below the
/// scope after it), not a scan. The chain's own copy is not one of them.
fn scopes_of(base: &dyn StateBase, prefix: u8, scope: Scope) -> Result<Vec<String>> {
    if let Scope::One(s) = scope {
        return Ok(vec![s.to_string()]);
    }
    let mut out = Vec::new();
    let mut hi = after_prefix(&[prefix]);
    loop {
        let mut last = None;
        base.range_rev(&[prefix], &hi, &mut |k, _| {
            last = Some(split_scope(k).0);
            Ok(false)
        })?;
        let Some(s) = last else { break };
        // Every key of scope `s` is at or above `prefix s 0`.
        hi = scoped(prefix, &s);
        if s != CHAIN {
            out.push(s);
        }
    }
    out.reverse();
    Ok(out)
}

/// Sums of days `from..=to` and the members with checkouts in them.
pub fn window(base: &dyn StateBase, scope: Scope, from: DayNo, to: DayNo) -> Result<Window> {
    let mut w = Window::default();
    let s = scope.key();
    for r in range(base, &report_day_key(s, from), &report_day_key(s, to + 1), |_, v| {
        dec::<ReportDay>("report day", v)
    })? {
        w.day.add(&r);
    }
    (w.active_members, w.repeat_members) = active::count_window(
        s,
        from,
        to,
        |k| get(base, "span day", k),
        |k| get(base, "span bucket", k),
    )?;
    Ok(w)
}

/// The running totals of the members of `scope`.
pub fn totals(base: &dyn StateBase, scope: Scope) -> Result<Totals> {
    let all: ScopedTotals = get(base, "report totals", TOTALS)?.unwrap_or_default();
    let mut out = Totals::default();
    for (s, t) in all {
        if matches!(scope, Scope::One(one) if one != s) {
            continue;
        }
        out.points_outstanding += t.points_outstanding;
        for (tier, n) in t.tiers {
            *out.tiers.entry(tier).or_default() += n;
        }
    }
    Ok(out)
}

/// The cohorts enrolled in months `from..=to` (month numbers of `month_of`) of the
/// scope asked for.
pub fn cohorts(base: &dyn StateBase, scope: Scope, from: u32, to: u32) -> Result<Cohorts> {
    let mut out = Cohorts::new();
    let s = scope.key();
    let counts = range(base, &cohort_key(s, from, 0), &cohort_key(s, to + 1, 0), |k, v| {
        let (_, cohort, month) = split_cohort(k);
        Ok((cohort, month, dec::<i64>("cohort count", v)?))
    })?;
    for (cohort, month, n) in counts {
        let c = out.entry(cohort).or_default();
        match month {
            COHORT_SIZE => c.0 += n,
            m => *c.1.entry(m).or_default() += n,
        }
    }
    Ok(out)
}

/// Every campaign's figures over days `from..=to`, with its distinct members.
pub fn campaign_window(base: &dyn StateBase, scope: Scope, from: DayNo, to: DayNo) -> Result<Vec<CampaignRow>> {
    let mut sums: BTreeMap<(CampaignKind, String), (CampaignDay, Vec<String>)> = BTreeMap::new();
    for s in scopes_of(base, CAMPAIGN_DAY, scope)? {
        let (mut lo, mut hi) = (scoped(CAMPAIGN_DAY, &s), scoped(CAMPAIGN_DAY, &s));
        lo.extend_from_slice(&day_bytes(from));
        hi.extend_from_slice(&day_bytes(to + 1));
        let rows = range(base, &lo, &hi, |k, v| {
            let (_, rest) = split_scope(k);
            let kind = rest.get(4).and_then(|&b| CampaignKind::of_byte(b));
            let id = String::from_utf8_lossy(rest.get(5..).unwrap_or(&[])).into_owned();
            Ok((kind, id, dec::<CampaignDay>("campaign day", v)?))
        })?;
        for (kind, id, d) in rows {
            let Some(kind) = kind else { continue };
            let (sum, scopes) = sums.entry((kind, id)).or_default();
            sum.uses += d.uses;
            sum.discount += d.discount;
            sum.bonus_points += d.bonus_points;
            sum.sales += d.sales;
            if !scopes.contains(&s) {
                scopes.push(s.clone());
            }
        }
    }
    let mut out = Vec::with_capacity(sums.len());
    for ((kind, id), (figures, scopes)) in sums {
        let mut members = HashSet::new();
        for s in scopes {
            let p = campaign_member_prefix(&s, kind, &id);
            let (mut lo, mut hi) = (p.clone(), p);
            lo.extend_from_slice(&day_bytes(from));
            hi.extend_from_slice(&day_bytes(to + 1));
            for m in range(base, &lo, &hi, |k, _| Ok(split_campaign_member(k).3))? {
                members.insert(m);
            }
        }
        out.push(CampaignRow {
            kind,
            id,
            figures,
            members: members.len() as i64,
        });
    }
    Ok(out)
}
