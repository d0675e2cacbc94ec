//! Triggers: coupons a member earns by behaviour (rules.md 0.2, "Triggers").
//!
//! Each trigger issues its coupon at most once per occurrence. The caller keeps the
//! `(trigger id, Occurrence)` pairs that fired and answers `fired` with them; these
//! functions only say what is due. Enrolment, visits and tier changes fire in the commit
//! that causes them; birthdays and inactivity in the daily pass (on the hub for the members
//! it holds).

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::model::{day_no, Birthday, DayNo};
use crate::rules::ruleset::{BirthdayScope, Trigger, TriggerOn};
use crate::rules::{birthday_matches, tier, Priced, Ruleset};

/// Which occurrence of its event a trigger fired for: the key of "at most once".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Occurrence {
    Enrol,
    /// The calendar year of the birthday (local dates).
    Birthday {
        year: i32,
    },
    /// The member's nth visit.
    Visit {
        nth: i64,
    },
    /// The spell without visits that began after this local day: the last visit's day, or
    /// the enrolment day for a member who never visited. A visit starts a new spell.
    Inactive {
        since: DayNo,
    },
    TierUp {
        tier: String,
    },
}

/// A trigger that is due, and the occurrence to record with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing<'r> {
    pub trigger: &'r Trigger,
    pub occurrence: Occurrence,
}

impl Firing<'_> {
    /// The coupon type to issue.
    pub fn coupon(&self) -> &str {
        &self.trigger.coupon
    }

    /// `issued_by` of the coupon (interface.md).
    pub fn issued_by(&self) -> String {
        format!("trigger:{}", self.trigger.id)
    }
}

/// Every enrol trigger fires at enrolment.
pub fn at_enrolment(rules: &Ruleset) -> Vec<Firing<'_>> {
    rules
        .triggers
        .iter()
        .filter(|t| t.on == TriggerOn::Enrol)
        .map(|trigger| Firing {
            trigger,
            occurrence: Occurrence::Enrol,
        })
        .collect()
}

/// The triggers a priced checkout fires. `visits_before` counts the member's visits
/// (checkouts with total > 0) ever, before this one; `tiers_reached` the tiers reached
/// before it (as `CampaignFacts::tiers_reached`).
///
/// A visit trigger fires on exactly the nth visit: a trigger added when the member is past
/// its nth visit does not fire late. A tier_up trigger fires for its tier when the checkout
/// passes it (`tier_before` excluded, `tier_after` included, so a jump over several tiers
/// fires each), unless the member had reached that tier before.
pub fn at_checkout<'r>(
    rules: &'r Ruleset,
    priced: &Priced,
    visits_before: i64,
    tiers_reached: &[String],
    fired: impl Fn(&str, &Occurrence) -> bool,
) -> Vec<Firing<'r>> {
    let before = tier::index_of(rules, &priced.tier_before);
    let after = tier::index_of(rules, &priced.tier_after);
    let mut due = Vec::new();
    for trigger in &rules.triggers {
        let occurrence = match trigger.on {
            TriggerOn::Visit { nth } if priced.visit && visits_before + 1 == nth => Occurrence::Visit { nth },
            TriggerOn::TierUp { tier } if before < tier && tier <= after => {
                let name = &rules.tiers[tier].name;
                if tiers_reached.iter().any(|r| r == name) {
                    continue;
                }
                Occurrence::TierUp { tier: name.clone() }
            }
            _ => continue,
        };
        if !fired(&trigger.id, &occurrence) {
            due.push(Firing { trigger, occurrence });
        }
    }
    due
}

/// What the daily pass needs to know of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyFacts {
    pub birthday: Option<Birthday>,
    /// The local day of enrolment.
    pub enrolled: DayNo,
    /// The local day of the last visit (checkout with total > 0), if any.
    pub last_visit: Option<DayNo>,
}

/// The triggers the daily pass fires for a member on a local date.
///
/// Birthday: on the birthday (scope day; a 02-29 birthday falls on 02-28 in other years) or
/// on any day of the birthday month (scope month), per `[birthday]` (day when the section is
/// absent), once per calendar year. A pass that did not run on the day itself does not make
/// it up with scope day: the caller runs the pass for each date it missed.
///
/// Inactive: once the member has gone `days` local days without a visit (the day of the
/// last visit, or of enrolment, is day 0), once per spell.
pub fn daily<'r>(
    rules: &'r Ruleset,
    member: DailyFacts,
    date: NaiveDate,
    fired: impl Fn(&str, &Occurrence) -> bool,
) -> Vec<Firing<'r>> {
    let scope = rules.birthday.as_ref().map_or(BirthdayScope::Day, |b| b.scope);
    let today = day_no(date);
    let since = member.last_visit.unwrap_or(member.enrolled);
    let mut due = Vec::new();
    for trigger in &rules.triggers {
        let occurrence = match trigger.on {
            TriggerOn::Birthday if member.birthday.is_some_and(|b| birthday_matches(scope, b, date)) => {
                Occurrence::Birthday { year: date.year() }
            }
            TriggerOn::Inactive { days } if (today - since) as i64 >= days => Occurrence::Inactive { since },
            _ => continue,
        };
        if !fired(&trigger.id, &occurrence) {
            due.push(Firing { trigger, occurrence });
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::model::parse_date;
    use crate::rules::ruleset::BirthdayScope;
    use crate::rules::testing::{campaigns, example_with};

    fn ids(f: &[Firing]) -> Vec<(String, Occurrence)> {
        f.iter().map(|f| (f.trigger.id.clone(), f.occurrence.clone())).collect()
    }

    fn one(id: &str, occurrence: Occurrence) -> Vec<(String, Occurrence)> {
        vec![(id.to_string(), occurrence)]
    }

    fn never(_: &str, _: &Occurrence) -> bool {
        false
    }

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    /// A priced checkout as far as triggers look at it.
    fn checkout(visit: bool, before: &str, after: &str) -> Priced {
        let rules = crate::rules::testing::example();
        let m = crate::model::MemberState {
            member_id: "m".into(),
            name: "n".into(),
            phone: "1".into(),
            birthday: None,
            pin_hash: None,
            cards: vec![],
            created_at: 0,
            tier: "standard".into(),
            lots: vec![],
            debt: 0,
            days: vec![],
            pin_failures: 0,
            pin_failed_at: 0,
            ..Default::default()
        };
        let lines = [crate::model::Line {
            sku: "a".into(),
            category: "b".into(),
            qty: 1,
            unit_price: visit as i64 * 100,
        }];
        let req = crate::rules::Request {
            member: &m,
            lines: &lines,
            coupon: None,
            redeem_points: 0,
            at: 0,
            expiry_applies: true,
            offline_redeemed: None,
            pin_given: false,
            facts: Default::default(),
        };
        let mut p = crate::rules::price(&rules, &req, &mut || crate::rules::PinCheck::NotGiven).unwrap();
        assert_eq!(p.visit, visit);
        p.tier_before = before.into();
        p.tier_after = after.into();
        p
    }

    #[test]
    fn enrolment_fires_every_enrol_trigger() {
        let rules = campaigns();
        let f = at_enrolment(&rules);
        assert_eq!(ids(&f), one("welcome", Occurrence::Enrol));
        assert_eq!(
            (f[0].coupon(), f[0].issued_by().as_str()),
            ("welcome5", "trigger:welcome")
        );
        assert!(at_enrolment(&crate::rules::testing::example()).is_empty());
    }

    #[test]
    fn the_nth_visit_once() {
        let rules = campaigns();
        let tenth = one("tenth-visit", Occurrence::Visit { nth: 10 });
        assert_eq!(
            ids(&at_checkout(
                &rules,
                &checkout(true, "standard", "standard"),
                9,
                &[],
                never
            )),
            tenth
        );
        // Not the 9th or 11th, not a checkout with nothing to pay.
        for before in [8, 10] {
            assert!(at_checkout(&rules, &checkout(true, "standard", "standard"), before, &[], never).is_empty());
        }
        assert!(at_checkout(&rules, &checkout(false, "standard", "standard"), 9, &[], never).is_empty());
        // Fired before (the 10th visit refunded, then another 10th): not again.
        let fired = |id: &str, o: &Occurrence| id == "tenth-visit" && *o == Occurrence::Visit { nth: 10 };
        assert!(at_checkout(&rules, &checkout(true, "standard", "standard"), 9, &[], fired).is_empty());
    }

    #[test]
    fn tier_up_for_every_tier_passed_once_ever() {
        let rules = example_with(
            "[[triggers]]\nid = \"to-gold\"\non = \"tier_up\"\ntier = \"gold\"\ncoupon = \"welcome5\"\n\
             [[triggers]]\nid = \"to-silver\"\non = \"tier_up\"\ntier = \"silver\"\ncoupon = \"welcome5\"\n",
        );
        let up = |before, after, reached: &[String]| {
            let p = checkout(false, before, after);
            at_checkout(&rules, &p, 0, reached, never)
                .iter()
                .map(|f| f.trigger.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(up("standard", "gold", &[]), ["to-gold", "to-silver"]);
        assert_eq!(up("silver", "gold", &[]), ["to-gold"]);
        assert_eq!(up("standard", "silver", &[]), ["to-silver"]);
        assert!(up("gold", "gold", &[]).is_empty());
        assert!(up("gold", "silver", &[]).is_empty());
        // Reached before (a downgrade, then up again): nothing.
        assert!(up("silver", "gold", &["gold".into()]).is_empty());
        let p = checkout(false, "standard", "silver");
        let f = at_checkout(&rules, &p, 0, &[], never);
        assert_eq!(f[0].occurrence, Occurrence::TierUp { tier: "silver".into() });
        let fired = |_: &str, o: &Occurrence| matches!(o, Occurrence::TierUp { .. });
        assert!(at_checkout(&rules, &p, 0, &[], fired).is_empty());
    }

    fn facts(birthday: Option<&str>, enrolled: &str, last_visit: Option<&str>) -> DailyFacts {
        DailyFacts {
            birthday: birthday.map(|b| Birthday::parse(b).unwrap()),
            enrolled: day_no(d(enrolled)),
            last_visit: last_visit.map(|v| day_no(d(v))),
        }
    }

    #[test]
    fn birthdays_once_a_year_in_the_scope_of_birthday() {
        let mut rules = campaigns();
        let m = facts(Some("03-15"), "2026-01-01", Some("2026-03-14"));
        // Only the birthday trigger (a year later the member is also inactive).
        let bday = |rules: &Ruleset, date: &str, fired: &dyn Fn(&str, &Occurrence) -> bool| {
            let mut f = ids(&daily(rules, m, d(date), fired));
            f.retain(|(id, _)| id == "happy-birthday");
            f
        };
        assert_eq!(
            bday(&rules, "2026-03-15", &never),
            one("happy-birthday", Occurrence::Birthday { year: 2026 })
        );
        assert!(bday(&rules, "2026-03-16", &never).is_empty(), "scope day");
        // Once per calendar year: fired in 2026, due again in 2027.
        let fired_2026 = |_: &str, o: &Occurrence| *o == Occurrence::Birthday { year: 2026 };
        assert!(bday(&rules, "2026-03-15", &fired_2026).is_empty());
        assert_eq!(bday(&rules, "2027-03-15", &fired_2026).len(), 1);
        // Scope month: any day of March, once.
        rules.birthday.as_mut().unwrap().scope = BirthdayScope::Month;
        assert_eq!(bday(&rules, "2026-03-31", &never).len(), 1);
        assert!(bday(&rules, "2026-04-01", &never).is_empty());
        assert!(bday(&rules, "2026-03-02", &fired_2026).is_empty());
        // Without [birthday], scope day; a 02-29 birthday falls on 02-28 in other years.
        rules.birthday = None;
        let leap = facts(Some("02-29"), "2026-01-01", Some("2026-02-27"));
        let on = |date: &str| {
            let f = daily(&rules, leap, d(date), never);
            f.iter().filter(|f| f.trigger.on == TriggerOn::Birthday).count()
        };
        assert_eq!(
            (on("2027-02-28"), on("2027-03-01"), on("2028-02-28"), on("2028-02-29")),
            (1, 0, 0, 1)
        );
        // No birthday known: never.
        assert!(daily(
            &rules,
            facts(None, "2026-01-01", Some("2026-03-14")),
            d("2026-03-15"),
            never
        )
        .is_empty());
    }

    #[test]
    fn inactivity_once_per_spell() {
        let rules = campaigns();
        let miss = |m: DailyFacts, date: &str, fired: &dyn Fn(&str, &Occurrence) -> bool| {
            ids(&daily(&rules, m, d(date), fired))
        };
        // Last visit 2026-01-01: 60 days without one on 2026-03-02 (Jan 2 .. Mar 2).
        let m = facts(None, "2025-06-01", Some("2026-01-01"));
        assert!(miss(m, "2026-03-01", &never).is_empty());
        let since = day_no(d("2026-01-01"));
        assert_eq!(
            miss(m, "2026-03-02", &never),
            one("miss-you", Occurrence::Inactive { since })
        );
        // A pass that missed the day still fires later in the same spell, once.
        let mut fired = HashSet::new();
        for f in daily(&rules, m, d("2026-03-20"), never) {
            fired.insert((f.trigger.id.clone(), f.occurrence));
        }
        let seen = |id: &str, o: &Occurrence| fired.contains(&(id.to_string(), o.clone()));
        assert!(miss(m, "2026-04-30", &seen).is_empty());
        // A visit starts a new spell.
        let m = facts(None, "2025-06-01", Some("2026-04-01"));
        assert!(miss(m, "2026-05-30", &seen).is_empty(), "59 days");
        assert_eq!(miss(m, "2026-05-31", &seen).len(), 1);
        // Never visited: the spell runs from enrolment.
        let m = facts(None, "2026-01-10", None);
        let since = day_no(d("2026-01-10"));
        assert_eq!(
            miss(m, "2026-03-11", &never),
            one("miss-you", Occurrence::Inactive { since })
        );
    }
}
