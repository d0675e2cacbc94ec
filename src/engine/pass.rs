//! The daily trigger pass (birthdays, inactivity) as functions over any [`StateBase`]:
//! the dates a pass covers, the members that may have something due, what is due, and
//! the coupon records a batch of members gets. The embedded engine and the hub on
//! PostgreSQL run these same functions; each decides a batch again inside its write
//! (under the writer lock, or the head-row lock), so that two passes at once never issue
//! one occurrence twice: the second sees the first's coupon and its `Y` entry.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use crate::error::{Error, Result};
use crate::model::{self, day_no, DayNo, MemberState};
use crate::record::{self, Body};
use crate::rules::ruleset::{BirthdayScope, TriggerOn};
use crate::rules::{self, local_date, triggers, Ruleset};
use crate::store::base::{self, StateBase};
use crate::store::campaign as reads;

/// Members the daily pass decides in one write: the writer lock (or the head-row lock)
/// is held for one batch's records only, so that checkouts and pushes wait at most that.
pub const PASS_BATCH: usize = 16;
/// Days the daily pass makes up after a node was off (a scope-day birthday falls on
/// its day only).
pub const PASS_CATCH_UP_DAYS: i32 = 31;

/// Whether the ruleset has a trigger the daily pass decides.
pub fn has_daily(rules: &Ruleset) -> bool {
    rules.triggers.iter().any(|t| t.is_daily())
}

/// Where a pass at local date `today` stands: the dates it covers, oldest first, and the
/// last date whose inactivity crossings were looked at before.
pub struct Plan {
    pub dates: Vec<NaiveDate>,
    pub covered: Option<DayNo>,
}

/// From the day after the last pass (today again when it ran today: members who arrived
/// since are seen), at most `PASS_CATCH_UP_DAYS` back.
pub fn plan(b: &dyn StateBase, today: NaiveDate) -> Result<Plan> {
    let last = reads::trigger_day(b)?;
    let first = match last {
        Some(last) => model::day_date(last + 1)
            .min(today)
            .max(today - chrono::Days::new(PASS_CATCH_UP_DAYS as u64)),
        None => today,
    };
    let mut dates = Vec::new();
    let mut date = first;
    while date <= today {
        dates.push(date);
        date = date.succ_opt().expect("a next day");
    }
    Ok(Plan {
        dates,
        // Today's crossings again when the pass already ran today.
        covered: last.map(|d| d.min(day_no(today) - 1)),
    })
}

/// The daily triggers due for member `m` on `date`, given the occurrences already
/// fired for it.
pub fn due_for<'r>(
    rules: &'r Ruleset,
    m: &MemberState,
    fired: &[(String, triggers::Occurrence)],
    date: NaiveDate,
) -> Vec<triggers::Firing<'r>> {
    if m.merged_into.is_some() || !m.active {
        return vec![];
    }
    let facts = triggers::DailyFacts {
        birthday: m.birthday,
        enrolled: day_no(local_date(rules, m.created_at)),
        last_visit: m.last_visit_at.map(|t| day_no(local_date(rules, t))),
    };
    triggers::daily(rules, facts, date, |t, o| {
        fired.iter().any(|(ft, fo)| ft == t && fo == o)
    })
}

/// The triggers due for `member_id` on `date`, as `b` holds it.
pub fn daily_due<'r>(
    b: &dyn StateBase,
    rules: &'r Ruleset,
    member_id: &str,
    date: NaiveDate,
) -> Result<Vec<triggers::Firing<'r>>> {
    // Both read before either is looked at: one round, not two, over a fetching base.
    let fired = reads::fired(b, member_id)?;
    let Some(m) = base::member(b, member_id)? else {
        return Ok(vec![]);
    };
    let fired: Vec<(String, triggers::Occurrence)> = fired.iter().map(|(t, o)| (t.clone(), o.into())).collect();
    Ok(due_for(rules, &m, &fired, date))
}

/// The members the daily triggers may be due for on `date`, from the pass index: the
/// date's birthdays, and the members whose inactivity crossed a trigger's threshold
/// after `covered` (every inactive one when the pass never ran). A day of margin on
/// each side of the instants: the pure rules decide, not the index.
pub fn candidates(
    b: &dyn StateBase,
    rules: &Ruleset,
    date: NaiveDate,
    covered: Option<DayNo>,
) -> Result<BTreeSet<String>> {
    use chrono::Datelike;
    let mut out = BTreeSet::new();
    if rules.triggers.iter().any(|t| t.on == TriggerOn::Birthday) {
        let (month, day) = (date.month() as u8, date.day() as u8);
        match rules.birthday.as_ref().map_or(BirthdayScope::Day, |b| b.scope) {
            BirthdayScope::Month => out.extend(reads::birthday_members(b, month, None)?),
            BirthdayScope::Day => {
                out.extend(reads::birthday_members(b, month, Some(day))?);
                if (month, day) == (2, 28) {
                    // Kept on 02-28 in other years.
                    out.extend(reads::birthday_members(b, 2, Some(29))?);
                }
            }
        }
    }
    let start = |d: DayNo| rules::start_of_day(&rules.timezone, model::day_date(d));
    for t in &rules.triggers {
        let TriggerOn::Inactive { days } = t.on else { continue };
        // Due once the day inactivity counts from is at most `crossed`.
        let crossed = day_no(date) - days as DayNo;
        let from = covered.map_or(model::Ts::MIN, |c| start(c - days as DayNo));
        out.extend(reads::inactive_since(b, from, start(crossed + 2))?);
    }
    Ok(out)
}

/// The candidates of `date` with something due, in member id order (read without a
/// lock: most have nothing due; those that do are decided again in the write).
pub fn due_members(b: &dyn StateBase, rules: &Ruleset, date: NaiveDate, covered: Option<DayNo>) -> Result<Vec<String>> {
    let ids: Vec<String> = candidates(b, rules, date, covered)?.into_iter().collect();
    due_among(b, rules, &ids, date)
}

/// Those of `ids` with something due on `date`.
pub fn due_among(b: &dyn StateBase, rules: &Ruleset, ids: &[String], date: NaiveDate) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for id in ids {
        if !daily_due(b, rules, id, date)?.is_empty() {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// Coupon codes drawn at random, handed out in the same order each time a step runs
/// again from `restart` (a step over a fetching base runs more than once, and must ask
/// for the same codes each time to settle).
#[derive(Default)]
pub struct Draws {
    codes: Vec<String>,
    next: usize,
}

impl Draws {
    pub fn restart(&mut self) {
        self.next = 0;
    }

    fn draw(&mut self) -> String {
        if self.next == self.codes.len() {
            self.codes.push(super::rewards::random_code(10));
        }
        self.next += 1;
        self.codes[self.next - 1].clone()
    }
}

/// A coupon code no coupon in `b` has, nor any of `taken` (codes this change gives).
pub fn fresh_code(b: &dyn StateBase, taken: &[&str], draws: &mut Draws) -> Result<String> {
    loop {
        let code = draws.draw();
        if !taken.contains(&code.as_str()) && base::coupon(b, &code)?.is_none() {
            return Ok(code);
        }
    }
}

/// The coupon a trigger `firing` issues to `member_id` on local day `day`, as a record;
/// `keep_occurrence` for the daily triggers, which remember each occurrence (`Y`).
#[allow(clippy::too_many_arguments)]
pub fn trigger_coupon(
    b: &dyn StateBase,
    rules: &Ruleset,
    member_id: &str,
    firing: &triggers::Firing,
    day: DayNo,
    taken: &[&str],
    keep_occurrence: bool,
    draws: &mut Draws,
) -> Result<record::CouponIssueV2> {
    let ty = rules.coupon_type(firing.coupon()).ok_or_else(|| {
        Error::internal(format!(
            "trigger {} names unknown coupon type {}",
            firing.trigger.id,
            firing.coupon()
        ))
    })?;
    Ok(record::CouponIssueV2 {
        code: fresh_code(b, taken, draws)?,
        type_id: ty.id.clone(),
        member_id: member_id.to_string(),
        issued: day,
        valid_until: ty.valid_until(day),
        issued_by: firing.issued_by(),
        points: 0,
        occurrence: keep_occurrence.then(|| (firing.trigger.id.clone(), (&firing.occurrence).into())),
        pin_verified: false,
    })
}

/// The coupons due on `date` for the members of `batch`, decided over `b` (inside the
/// write that issues them), as records.
pub fn batch_coupons(
    b: &dyn StateBase,
    rules: &Ruleset,
    batch: &[String],
    date: NaiveDate,
    draws: &mut Draws,
) -> Result<Vec<Body>> {
    let mut out: Vec<record::CouponIssueV2> = Vec::new();
    for id in batch {
        for f in daily_due(b, rules, id, date)? {
            let taken: Vec<&str> = out.iter().map(|c| c.code.as_str()).collect();
            let c = trigger_coupon(b, rules, id, &f, day_no(date), &taken, true, draws)?;
            out.push(c);
        }
    }
    Ok(out.into_iter().map(|c| Body::CouponIssueV2(Box::new(c))).collect())
}

/// How long from `now` until shortly (5 minutes) after the next local midnight, but at
/// most `every`: the pass also runs through the day, so that members who arrive after
/// a pass are seen on the same day.
pub fn until_next_pass(rules: &Ruleset, now: model::Ts, every: std::time::Duration) -> std::time::Duration {
    let tomorrow = local_date(rules, now).succ_opt().expect("a next day");
    let next = rules::start_of_day(&rules.timezone, tomorrow) + 5 * 60 * 1_000_000;
    std::time::Duration::from_micros((next - now).max(1_000_000) as u64).min(every)
}

#[cfg(test)]
mod tests {
    use super::Draws;

    #[test]
    fn draws_give_the_same_codes_again_after_a_restart() {
        let mut d = Draws::default();
        let first: Vec<String> = (0..3).map(|_| d.draw()).collect();
        d.restart();
        let again: Vec<String> = (0..4).map(|_| d.draw()).collect();
        assert_eq!(again[..3], first[..]);
        assert!(!first.contains(&again[3]), "a fourth code is a new one");
    }
}
