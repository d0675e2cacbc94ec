//! Tiers: the metric over the rolling window and the tier it gives (rules.md step 10).

use crate::model::{DayBucket, DayNo, MemberState, HISTORY_DAYS};
use crate::rules::ruleset::{Downgrade, TierMetric};
use crate::rules::Ruleset;

/// The tier metric over the local dates `(day - window_days, day]`.
pub fn metric(rules: &Ruleset, days: &[DayBucket], day: DayNo) -> i64 {
    let from = day - rules.tier_policy.window_days as DayNo;
    days.iter()
        .filter(|b| b.day > from && b.day <= day)
        .map(|b| match rules.tier_policy.metric {
            TierMetric::Spend => b.spend,
            TierMetric::Points => b.points,
            TierMetric::Visits => b.visits,
        })
        .sum()
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
pub fn after(rules: &Ruleset, member: &MemberState, day: DayNo, add: (i64, i64, i64)) -> usize {
    let extra = match rules.tier_policy.metric {
        TierMetric::Spend => add.0,
        TierMetric::Points => add.1,
        TierMetric::Visits => add.2,
    };
    let by_window = index_for(rules, metric(rules, &member.days, day) + extra);
    match rules.tier_policy.downgrade {
        Downgrade::Rolling => by_window,
        Downgrade::Never => by_window.max(current(rules, member, day)),
    }
}

/// Adds (or, negative, removes) a contribution on a day and forgets days too old to
/// matter for any window.
pub fn record(days: &mut Vec<DayBucket>, day: DayNo, spend: i64, points: i64, visits: i64) {
    match days.binary_search_by_key(&day, |b| b.day) {
        Ok(i) => {
            let b = &mut days[i];
            b.spend += spend;
            b.points += points;
            b.visits += visits;
        }
        Err(i) => days.insert(
            i,
            DayBucket {
                day,
                spend,
                points,
                visits,
            },
        ),
    }
    let newest = days.last().map_or(day, |b| b.day);
    // A fully refunded day leaves no trace, so a full refund restores the member exactly.
    days.retain(|b| b.day > newest - HISTORY_DAYS && (b.spend, b.points, b.visits) != (0, 0, 0));
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
        }
    }

    fn bucket(day: DayNo, spend: i64) -> DayBucket {
        DayBucket {
            day,
            spend,
            points: spend / 100,
            visits: 1,
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
}
