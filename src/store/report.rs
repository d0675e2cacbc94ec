//! What the reports read, kept as records apply so that a report never scans members
//! or the journal:
//!
//! - `e` + day: `ReportDay`, the ledger figures of a local day (points issued, clawed
//!   back, redeemed, expired), beside the daily totals (`d` + day) that give sales,
//!   transactions and new members. A summary of N days reads 2N keys.
//! - `j` + day + member: that member's checkouts on that day. Active and repeat members
//!   of a window are the distinct members under the window's days (a range scan over
//!   the member-days of the window only: its cost follows the window's activity, not
//!   the member count).
//! - `o` + enrolment month + member: the retention cohorts; a cohort's `a_k` intersects
//!   it with the member-days of month k.
//! - `Mreports`: `Totals`, the running sum of positive balances and members per tier,
//!   moved by the difference each step makes to each member it writes. The tier counted
//!   is the one stored on the member at its last change (a rolling window can lower a
//!   tier as days pass without any record; the report does not re-evaluate it). Members
//!   merged into another are not counted.
//!
//! Ledger figures count the entries of records made here (or, on the hub, pushed by
//! terminals); the hub's snapshots a terminal pulls and merges of conflicting
//! enrolments move balances but are not issuance or redemption.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{day_key, dec, k, Daily, MemberRec, Store};
use crate::error::Result;
use crate::model::{day_date, DayNo};
use chrono::Datelike;

pub(super) const REPORT_DAY: u8 = b'e';
pub(super) const MEMBER_DAY: u8 = b'j';
pub(super) const COHORT: u8 = b'o';
pub(super) const TOTALS: &[u8] = b"Mreports";

/// Ledger figures of one local day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDay {
    pub points_issued: i64,
    pub points_clawed_back: i64,
    pub points_redeemed: i64,
    pub points_expired: i64,
}

/// The "now" figures, kept running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub points_outstanding: i64,
    pub tiers: BTreeMap<String, i64>,
}

impl Totals {
    /// Takes out what `before` counted and puts in what `after` counts.
    pub(super) fn shift(&mut self, before: Option<&Counted>, after: Option<&Counted>) {
        if let Some(b) = before {
            self.points_outstanding -= b.positive_balance;
            let n = self.tiers.entry(b.tier.clone()).or_default();
            *n -= 1;
            if *n == 0 {
                self.tiers.remove(&b.tier);
            }
        }
        if let Some(a) = after {
            self.points_outstanding += a.positive_balance;
            *self.tiers.entry(a.tier.clone()).or_default() += 1;
        }
    }
}

/// What one member adds to `Totals`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Counted {
    positive_balance: i64,
    tier: String,
}

/// A member's share of the totals (none once merged into another).
pub(super) fn counted(m: &MemberRec) -> Option<Counted> {
    if m.state.merged_into.is_some() {
        return None;
    }
    Some(Counted {
        positive_balance: m.state.ledger_balance().max(0),
        tier: m.state.tier.clone(),
    })
}

fn day_bytes(day: DayNo) -> [u8; 4] {
    ((day as u32) ^ 0x8000_0000).to_be_bytes()
}

pub(super) fn report_day_key(day: DayNo) -> Vec<u8> {
    k(REPORT_DAY, &day_bytes(day))
}

pub(super) fn member_day_key(day: DayNo, member_id: &str) -> Vec<u8> {
    let mut v = k(MEMBER_DAY, &day_bytes(day));
    v.extend_from_slice(member_id.as_bytes());
    v
}

/// Months since 0000-01 of a local day.
pub fn month_of(day: DayNo) -> u32 {
    let d = day_date(day);
    d.year() as u32 * 12 + d.month0()
}

pub(super) fn cohort_key(month: u32, member_id: &str) -> Vec<u8> {
    let mut v = k(COHORT, &month.to_be_bytes());
    v.extend_from_slice(member_id.as_bytes());
    v
}

/// Decoding keys back for the dump: (day, member) and (month, member).
pub(super) fn split_member_day(key: &[u8]) -> (DayNo, String) {
    let day = (u32::from_be_bytes(key[1..5].try_into().unwrap_or([0; 4])) ^ 0x8000_0000) as DayNo;
    (day, String::from_utf8_lossy(&key[5..]).into_owned())
}

pub(super) fn split_cohort(key: &[u8]) -> (u32, String) {
    let month = u32::from_be_bytes(key[1..5].try_into().unwrap_or([0; 4]));
    (month, String::from_utf8_lossy(&key[5..]).into_owned())
}

/// The window figures a summary reads from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub daily: Daily,
    pub ledger: ReportDay,
    pub active_members: i64,
    pub repeat_members: i64,
}

impl Store {
    fn range<T>(&self, from: Vec<u8>, to: Vec<u8>, mut f: impl FnMut(&[u8], &[u8]) -> Result<T>) -> Result<Vec<T>> {
        let db = &self.shared.db;
        self.checked(self.shared.overlay.settled(db, || {
            db.range(from..to)
                .map(|kv| {
                    let (k, v) = kv?;
                    f(&k, &v)
                })
                .collect()
        }))
    }

    /// Sums of days `from..=to` and the members with checkouts in them.
    pub fn report_window(&self, from: DayNo, to: DayNo) -> Result<Window> {
        let mut w = Window::default();
        for d in self.range(day_key(from), day_key(to + 1), |_, v| dec::<Daily>("daily totals", v))? {
            let s = &mut w.daily;
            s.checkouts += d.checkouts;
            s.total += d.total;
            s.refunded_amount += d.refunded_amount;
            s.new_members += d.new_members;
        }
        for r in self.range(report_day_key(from), report_day_key(to + 1), |_, v| {
            dec::<ReportDay>("report day", v)
        })? {
            let l = &mut w.ledger;
            l.points_issued += r.points_issued;
            l.points_clawed_back += r.points_clawed_back;
            l.points_redeemed += r.points_redeemed;
            l.points_expired += r.points_expired;
        }
        let mut per_member: HashMap<String, u32> = HashMap::new();
        let days = self.range(member_day_key(from, ""), member_day_key(to + 1, ""), |k, v| {
            Ok((split_member_day(k).1, dec::<u32>("member day", v)?))
        })?;
        for (id, n) in days {
            *per_member.entry(id).or_default() += n;
        }
        w.active_members = per_member.len() as i64;
        w.repeat_members = per_member.values().filter(|&&n| n >= 2).count() as i64;
        Ok(w)
    }

    pub fn report_totals(&self) -> Result<Totals> {
        Ok(self.get("report totals", TOTALS)?.unwrap_or_default())
    }

    /// Members enrolled in months `from..=to` (month numbers of `month_of`), by month.
    pub fn cohorts(&self, from: u32, to: u32) -> Result<BTreeMap<u32, HashSet<String>>> {
        let mut out: BTreeMap<u32, HashSet<String>> = BTreeMap::new();
        for (month, id) in self.range(cohort_key(from, ""), cohort_key(to + 1, ""), |k, _| Ok(split_cohort(k)))? {
            out.entry(month).or_default().insert(id);
        }
        Ok(out)
    }

    /// Members with a checkout in days `from..=to`.
    pub fn active_in(&self, from: DayNo, to: DayNo) -> Result<HashSet<String>> {
        Ok(self
            .range(member_day_key(from, ""), member_day_key(to + 1, ""), |k, _| {
                Ok(split_member_day(k).1)
            })?
            .into_iter()
            .collect())
    }
}
