//! Tiers: the metric over the rolling window and the tier it gives (rules.md step 10), and
//! the gifts of the tiers a checkout passes (rules.md 0.2, "Tier gifts").

use crate::model::{DayBucket, DayNo, MemberState, HISTORY_DAYS};
use crate::rules::ruleset::{Downgrade, Score, Tier, TierMetric};
use crate::rules::Ruleset;

/// What the window holds, summed before any metric is taken: the score floors each of
/// its terms once, over the window's sums, never per day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub spend: i64,
    pub points: i64,
    pub visits: i64,
    pub activities: i64,
}

/// The sums of the local dates `(day - window_days, day]`.
pub fn window_totals(rules: &Ruleset, days: &[DayBucket], day: DayNo) -> Totals {
    let from = day - rules.tier_policy.window_days as DayNo;
    let mut t = Totals::default();
    for b in days.iter().filter(|b| b.day > from && b.day <= day) {
        t.spend += b.spend;
        t.points += b.points;
        t.visits += b.visits;
        t.activities += b.activities;
    }
    t
}

/// The growth score: `floor(floor(spend / spend_unit_minor) * spend_bp / 10000) +
/// floor(visits * visit_points * visits_bp / 10000) + floor(activities * activity_points *
/// activity_bp / 10000)`, each term floored on its own (rules.md 0.2).
pub fn score(s: &Score, t: Totals) -> i64 {
    const BP: i128 = 10_000;
    let spend_units = (t.spend as i128).div_euclid(s.spend_unit_minor as i128);
    let spend = (spend_units * s.spend_bp as i128).div_euclid(BP);
    let visits = (t.visits as i128 * s.visit_points as i128 * s.visits_bp as i128).div_euclid(BP);
    let activities = (t.activities as i128 * s.activity_points as i128 * s.activity_bp as i128).div_euclid(BP);
    // Validation bounds every factor, so only an absurd history could leave i64.
    (spend + visits + activities).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// The tier metric of window sums.
pub fn metric_of(rules: &Ruleset, t: Totals) -> i64 {
    match &rules.tier_policy.metric {
        TierMetric::Spend => t.spend,
        TierMetric::Points => t.points,
        TierMetric::Visits => t.visits,
        TierMetric::Score(s) => score(s, t),
    }
}

/// The tier metric over the local dates `(day - window_days, day]`.
pub fn metric(rules: &Ruleset, days: &[DayBucket], day: DayNo) -> i64 {
    metric_of(rules, window_totals(rules, days, day))
}

/// Index of the highest tier whose threshold the metric reaches.
pub fn index_for(rules: &Ruleset, metric: i64) -> usize {
    rules.tiers.iter().rposition(|t| t.qualify <= metric).unwrap_or(0)
}

/// Index of a tier by name; a tier the ruleset no longer has counts as the lowest.
pub fn index_of(rules: &Ruleset, name: &str) -> usize {
    rules.tiers.iter().position(|t| t.name == name).unwrap_or(0)
}

/// The member's tier at a local date, before any checkout not yet in `days`.
pub fn current(rules: &Ruleset, member: &MemberState, day: DayNo) -> usize {
    let by_window = index_for(rules, metric(rules, &member.days, day));
    match rules.tier_policy.downgrade {
        Downgrade::Rolling => by_window,
        Downgrade::Never => by_window.max(index_of(rules, &member.tier)),
    }
}

/// The tier after adding a checkout's contribution (`spend`, `points`, `visits`) on `day`.
/// Activity grants of the day are already in `member.days` and count here, so a grant
/// moves the score of the next checkout, never a tier by itself.
pub fn after(rules: &Ruleset, member: &MemberState, day: DayNo, add: (i64, i64, i64)) -> usize {
    let mut t = window_totals(rules, &member.days, day);
    t.spend += add.0;
    t.points += add.1;
    t.visits += add.2;
    let by_window = index_for(rules, metric_of(rules, t));
    match rules.tier_policy.downgrade {
        Downgrade::Rolling => by_window,
        Downgrade::Never => by_window.max(current(rules, member, day)),
    }
}

/// Adds (or, negative, removes) a checkout's contribution on a day and forgets days too
/// old to matter for any window.
pub fn record(days: &mut Vec<DayBucket>, day: DayNo, spend: i64, points: i64, visits: i64) {
    add(
        days,
        day,
        Totals {
            spend,
            points,
            visits,
            activities: 0,
        },
    );
}

/// Adds `grants` activity grants (negative: removes them) on a local day.
pub fn record_activities(days: &mut Vec<DayBucket>, day: DayNo, grants: i64) {
    add(
        days,
        day,
        Totals {
            activities: grants,
            ..Totals::default()
        },
    );
}

fn add(days: &mut Vec<DayBucket>, day: DayNo, t: Totals) {
    match days.binary_search_by_key(&day, |b| b.day) {
        Ok(i) => {
            let b = &mut days[i];
            b.spend += t.spend;
            b.points += t.points;
            b.visits += t.visits;
            b.activities += t.activities;
        }
        Err(i) => days.insert(
            i,
            DayBucket {
                day,
                spend: t.spend,
                points: t.points,
                visits: t.visits,
                activities: t.activities,
            },
        ),
    }
    let newest = days.last().map_or(day, |b| b.day);
    // A fully refunded day leaves no trace, so a full refund restores the member exactly.
    days.retain(|b| b.day > newest - HISTORY_DAYS && (b.spend, b.points, b.visits, b.activities) != (0, 0, 0, 0));
}

/// The gifts due when a checkout takes the member from tier `before` to tier `after`
/// (indices): every tier passed, `before` excluded, `after` included, that carries a gift
/// and that the member has not reached before. `reached` names the tiers the member had
/// reached before this checkout, at any time and whatever their gifts were then ("the first
/// time the member reaches that tier"): a tier reached again after a downgrade gives nothing.
pub fn gifts_due<'r, 's>(
    rules: &'r Ruleset,
    before: usize,
    after: usize,
    reached: &'s [String],
) -> impl Iterator<Item = &'r Tier> + use<'r, 's> {
    let passed = rules.tiers.get(before + 1..=after).unwrap_or(&[]);
    passed
        .iter()
        .filter(move |t| t.has_gift() && !reached.iter().any(|r| r == &t.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{example, example_with};

    fn member(days: Vec<DayBucket>, tier: &str) -> MemberState {
        MemberState {
            member_id: "m".into(),
            name: "n".into(),
            phone: "1".into(),
            birthday: None,
            pin_hash: None,
            cards: vec![],
            created_at: 0,
            tier: tier.into(),
            lots: vec![],
            debt: 0,
            days,
            pin_failures: 0,
            pin_failed_at: 0,
            ..Default::default()
        }
    }

    fn bucket(day: DayNo, spend: i64) -> DayBucket {
        DayBucket {
            day,
            spend,
            points: spend / 100,
            visits: 1,
            activities: 0,
        }
    }

    #[test]
    fn window_and_policies() {
        let rules = example();
        let m = member(vec![bucket(100, 60000), bucket(400, 50000)], "standard");
        // Day 464 still sees day 100 (464 - 365 = 99 < 100); day 465 does not.
        assert_eq!(metric(&rules, &m.days, 464), 110000);
        assert_eq!(metric(&rules, &m.days, 465), 50000);
        assert_eq!(current(&rules, &m, 464), 1);
        let rolling = example_with("").clone();
        let mut rolling = rolling;
        rolling.tier_policy.downgrade = Downgrade::Rolling;
        assert_eq!(current(&rolling, &m, 465), 0);
        // Never: the stored tier holds even when the window no longer gives it.
        let m = member(vec![bucket(400, 50000)], "silver");
        assert_eq!(current(&rules, &m, 465), 1);
        assert_eq!(current(&rolling, &m, 465), 0);
        assert_eq!(after(&rules, &m, 465, (500000, 0, 1)), 2);
    }

    #[test]
    fn other_metrics() {
        let mut rules = example();
        rules.tier_policy.metric = TierMetric::Visits;
        let m = member(vec![bucket(10, 1), bucket(11, 1)], "standard");
        assert_eq!(metric(&rules, &m.days, 11), 2);
        rules.tier_policy.metric = TierMetric::Points;
        let m = member(vec![bucket(10, 12345)], "standard");
        assert_eq!(metric(&rules, &m.days, 11), 123);
    }

    #[test]
    fn record_merges_and_prunes() {
        let mut days = vec![];
        record(&mut days, 5, 100, 1, 1);
        record(&mut days, 5, -40, 0, 0);
        record(&mut days, 3, 7, 0, 1);
        assert_eq!(
            days.iter().map(|b| (b.day, b.spend)).collect::<Vec<_>>(),
            [(3, 7), (5, 60)]
        );
        record(&mut days, 4 + HISTORY_DAYS, 1, 0, 0);
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].day, 5);
    }

    fn day(day: DayNo, spend: i64, visits: i64, activities: i64) -> DayBucket {
        DayBucket {
            day,
            spend,
            points: 0,
            visits,
            activities,
        }
    }

    fn score_rules(s: Score) -> Ruleset {
        let mut rules = example();
        rules.tier_policy.metric = TierMetric::Score(s);
        rules
    }

    /// The weights of rules.md and of the shipped config's example.
    const SHIPPED_SCORE: Score = Score {
        spend_unit_minor: 100,
        spend_bp: 6000,
        visit_points: 100,
        visits_bp: 3000,
        activity_points: 100,
        activity_bp: 1000,
    };

    #[test]
    fn score_floors_each_term_on_its_own() {
        // The shipped config's worked example: 123399 spent, 7 visits, 3 grants in the window.
        // floor(floor(123399 / 100) x 6000 / 10000) = floor(1233 x 0.6) = floor(739.8) = 739
        // + floor(7 x 100 x 3000 / 10000) = 210 + floor(3 x 100 x 1000 / 10000) = 30 = 979
        let rules = score_rules(SHIPPED_SCORE);
        let days = vec![day(10, 100000, 4, 1), day(12, 23399, 3, 2)];
        assert_eq!(metric(&rules, &days, 12), 979);
        // Weights that leave a fraction in every term:
        // floor(1233 x 6000 / 10000) = 739 (floor(1233.99 x 0.6) would be 740)
        // + floor(7 x 15 x 3333 / 10000) = floor(34.9965) = 34
        // + floor(3 x 7 x 1111 / 10000) = floor(2.3331) = 2
        // = 775, where flooring the sum 740.394 + 34.9965 + 2.3331 would give 777.
        let odd = Score {
            spend_unit_minor: 100,
            spend_bp: 6000,
            visit_points: 15,
            visits_bp: 3333,
            activity_points: 7,
            activity_bp: 1111,
        };
        assert_eq!(metric(&score_rules(odd), &days, 12), 775);
        // The floors apply to the window's sums, not day by day: 7 visits of 15 x 3333 on
        // seven separate days still give 34, not 7 x floor(4.9995) = 28.
        let spread: Vec<_> = (1..=7).map(|d| day(d, 0, 1, 0)).collect();
        assert_eq!(metric(&score_rules(odd), &spread, 7), 34);
        // Each term alone.
        assert_eq!(
            score(
                &odd,
                Totals {
                    spend: 199,
                    ..Totals::default()
                }
            ),
            0,
            "floor(199 / 100) = 1, floor(1 x 0.6) = 0"
        );
    }

    #[test]
    fn score_tiers_with_both_downgrade_policies() {
        // Qualify against the score: silver at 100000, gold at 500000 (score points).
        let mut rules = score_rules(Score {
            spend_unit_minor: 1,
            spend_bp: 10000,
            visit_points: 1000,
            visits_bp: 10000,
            activity_points: 10000,
            activity_bp: 10000,
        });
        let m = member(vec![day(100, 60000, 10, 3)], "standard");
        // 60000 + 10 x 1000 + 3 x 10000 = 100000: silver.
        assert_eq!(metric(&rules, &m.days, 100), 100000);
        assert_eq!(current(&rules, &m, 100), 1);
        // A checkout adds spend and a visit: 100000 + 399000 + 1000 = 500000, gold.
        assert_eq!(after(&rules, &m, 101, (399000, 0, 1)), 2);
        // The day leaves the window on day 465: never keeps silver, rolling drops it.
        let m = member(vec![day(100, 60000, 10, 3)], "silver");
        assert_eq!(current(&rules, &m, 465), 1);
        rules.tier_policy.downgrade = Downgrade::Rolling;
        assert_eq!(current(&rules, &m, 464), 1);
        assert_eq!(current(&rules, &m, 465), 0);
        // Activity grants alone move the score of the next checkout, not a tier by itself:
        // the stored tier is what a checkout decided.
        let mut m = member(vec![day(100, 60000, 10, 2)], "standard");
        rules.tier_policy.downgrade = Downgrade::Never;
        assert_eq!(current(&rules, &m, 100), 0, "90000");
        record_activities(&mut m.days, 100, 1);
        assert_eq!(m.tier, "standard");
        assert_eq!(after(&rules, &m, 100, (0, 0, 0)), 1, "the next checkout sees 100000");
    }

    #[test]
    fn activities_are_recorded_and_pruned_like_the_rest() {
        let mut days = vec![];
        record_activities(&mut days, 5, 2);
        record(&mut days, 5, 100, 1, 1);
        assert_eq!(
            days,
            [DayBucket {
                day: 5,
                spend: 100,
                points: 1,
                visits: 1,
                activities: 2
            }]
        );
        record(&mut days, 5, -100, -1, -1);
        assert_eq!(days.len(), 1, "the grants keep the day");
        record_activities(&mut days, 5, -2);
        assert!(days.is_empty());
    }

    #[test]
    fn activities_are_kept_with_the_stored_member() {
        // The store keeps `MemberState` as postcard (store layout 4 added the count).
        let b = DayBucket {
            day: 20000,
            spend: 123,
            points: 4,
            visits: 1,
            activities: 9,
        };
        let bytes = postcard::to_allocvec(&b).unwrap();
        assert_eq!(
            bytes,
            postcard::to_allocvec(&(20000i32, 123i64, 4i64, 1i64, 9i64)).unwrap()
        );
        let back: DayBucket = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn gifts_of_every_tier_passed_once() {
        let rules = crate::rules::testing::campaigns();
        let names = |g: Vec<&Tier>| g.into_iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(gifts_due(&rules, 0, 2, &[]).collect()), ["silver", "gold"]);
        assert_eq!(names(gifts_due(&rules, 0, 1, &[]).collect()), ["silver"]);
        assert_eq!(names(gifts_due(&rules, 1, 2, &[]).collect()), ["gold"]);
        // Reached before (a downgrade and a new upgrade): nothing again.
        assert!(gifts_due(&rules, 1, 2, &["gold".into()]).next().is_none());
        assert_eq!(names(gifts_due(&rules, 0, 2, &["silver".into()]).collect()), ["gold"]);
        // No move, or a move down: nothing.
        assert!(gifts_due(&rules, 2, 2, &[]).next().is_none());
        assert!(gifts_due(&rules, 2, 0, &[]).next().is_none());
        // Tiers without a gift are passed silently.
        assert!(gifts_due(&example(), 0, 2, &[]).next().is_none());
    }
}
