//! Activities: points for taking part, outside any sale (rules.md 0.2, "Activities").
//!
//! A grant is one lot with the expiry of earned points (`lots::expires_at` of the grant's
//! instant), one count in the member's day bucket of its local date
//! (`tier::record_activities`), and a ledger entry of kind `activity`.

use crate::rules::ruleset::Activity;

/// The member's grants of one activity so far, counted by the caller: on the local date of
/// the new grant, and ever. Grants of other activities do not count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Granted {
    pub today: i64,
    pub total: i64,
}

/// May one more grant of `activity` be given? The daily limit is checked first.
pub fn check(activity: &Activity, granted: Granted) -> Result<(), LimitReached> {
    if activity.max_per_day > 0 && granted.today >= activity.max_per_day {
        return Err(LimitReached {
            activity: activity.id.clone(),
            per_day: true,
            max: activity.max_per_day,
        });
    }
    if activity.max_total > 0 && granted.total >= activity.max_total {
        return Err(LimitReached {
            activity: activity.id.clone(),
            per_day: false,
            max: activity.max_total,
        });
    }
    Ok(())
}

/// A grant past an activity's limit (`activity_limit` in interface.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("activity {activity} may be granted at most {max} times{}", if *per_day { " a day" } else { "" })]
pub struct LimitReached {
    pub activity: String,
    /// The daily limit (else the total one).
    pub per_day: bool,
    pub max: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkin(max_per_day: i64, max_total: i64) -> Activity {
        Activity {
            id: "checkin".into(),
            points: 10,
            max_per_day,
            max_total,
        }
    }

    #[test]
    fn limits_per_day_and_in_total() {
        let g = |today, total| Granted { today, total };
        let a = checkin(1, 0);
        assert!(check(&a, g(0, 500)).is_ok(), "no total limit");
        let e = check(&a, g(1, 1)).unwrap_err();
        assert!(e.per_day && e.max == 1);
        assert_eq!(e.to_string(), "activity checkin may be granted at most 1 times a day");
        let a = checkin(0, 3);
        assert!(check(&a, g(40, 2)).is_ok(), "no daily limit");
        let e = check(&a, g(0, 3)).unwrap_err();
        assert!(!e.per_day && e.max == 3);
        assert_eq!(check(&checkin(0, 0), g(1000, 1000)), Ok(()));
        // Both limits: the daily one is named first.
        let a = checkin(2, 5);
        assert!(check(&a, g(1, 4)).is_ok());
        assert!(check(&a, g(2, 5)).unwrap_err().per_day);
        assert!(!check(&a, g(0, 5)).unwrap_err().per_day);
    }
}
