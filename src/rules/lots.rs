//! Point lots: expiry dates, first-expiring-first redemption, give-back and clawback.
//!
//! Lots hold positive points only and stay sorted by expiry (never-expiring last; ties by
//! earning time). A clawback larger than what the lots hold becomes `debt`, which any
//! later credit repays before it forms a lot, so `balance = sum(lots) - debt` always.

use chrono::{Datelike, NaiveDate};

use crate::model::{Lot, Taken, Ts};
use crate::rules::{local_date, start_of_day, Ruleset};

/// When points earned at `at` expire: the first instant of the local month after the
/// month `months` months after the month of `at`. `None` when points never expire.
pub fn expires_at(rules: &Ruleset, at: Ts) -> Option<Ts> {
    let months = rules.expiry.months;
    if months == 0 {
        return None;
    }
    let d = local_date(rules, at);
    // Months counted from year 0: add `months` + 1 to reach the month after.
    let idx = d.year() as i64 * 12 + d.month0() as i64 + months as i64 + 1;
    let first = NaiveDate::from_ymd_opt((idx / 12) as i32, (idx % 12) as u32 + 1, 1)?;
    Some(start_of_day(&rules.timezone, first))
}

fn sort_key(expires_at: Option<Ts>, earned_at: Ts) -> (bool, Ts, Ts) {
    (expires_at.is_none(), expires_at.unwrap_or(0), earned_at)
}

/// Adds points with an expiry, repaying debt first; merges with a lot of the same
/// expiry and earning time (a give-back to its original lot).
pub fn credit(lots: &mut Vec<Lot>, debt: &mut i64, points: i64, earned_at: Ts, expires_at: Option<Ts>) {
    let repay = points.min(*debt).max(0);
    *debt -= repay;
    let points = points - repay;
    if points <= 0 {
        return;
    }
    let key = sort_key(expires_at, earned_at);
    match lots.binary_search_by(|l| sort_key(l.expires_at, l.earned_at).cmp(&key)) {
        Ok(i) => lots[i].points += points,
        Err(i) => lots.insert(
            i,
            Lot {
                points,
                earned_at,
                expires_at,
            },
        ),
    }
}

/// Takes `points` from the first-expiring lots and says what it took from which.
/// The caller has checked the balance; if lots run short the rest becomes debt.
pub fn take(lots: &mut Vec<Lot>, debt: &mut i64, points: i64) -> Vec<Taken> {
    let mut left = points;
    let mut taken = Vec::new();
    while left > 0 && !lots.is_empty() {
        let lot = &mut lots[0];
        let n = left.min(lot.points);
        taken.push(Taken {
            points: n,
            earned_at: lot.earned_at,
            expires_at: lot.expires_at,
        });
        lot.points -= n;
        left -= n;
        if lot.points == 0 {
            lots.remove(0);
        }
    }
    *debt += left;
    taken
}

/// Gives `points` of a redemption back, latest-taken part first, each to a lot with its
/// original expiry. `already` points of it were given back by earlier refunds (from the
/// latest-taken parts too), so a refund in steps ends exactly where a full one does.
pub fn give_back(lots: &mut Vec<Lot>, debt: &mut i64, taken: &[Taken], already: i64, points: i64) {
    let (mut skip, mut left) = (already.max(0), points);
    for t in taken.iter().rev() {
        if left == 0 {
            break;
        }
        let avail = t.points - skip.min(t.points);
        skip -= t.points - avail;
        let n = left.min(avail);
        if n > 0 {
            credit(lots, debt, n, t.earned_at, t.expires_at);
            left -= n;
        }
    }
    // More than was taken cannot be asked for by refund arithmetic; keep it anyway.
    if left > 0 {
        credit(lots, debt, left, taken.last().map_or(0, |t| t.earned_at), None);
    }
}

/// Claws back points earned by a checkout: from that checkout's own lot first, then from
/// the first-expiring lots; what the lots cannot cover becomes debt.
pub fn clawback(lots: &mut Vec<Lot>, debt: &mut i64, points: i64, own_earned_at: Ts, own_expires_at: Option<Ts>) {
    let mut left = points;
    if let Some(i) = lots
        .iter()
        .position(|l| l.earned_at == own_earned_at && l.expires_at == own_expires_at)
    {
        let n = left.min(lots[i].points);
        lots[i].points -= n;
        left -= n;
        if lots[i].points == 0 {
            lots.remove(i);
        }
    }
    take(lots, debt, left);
}

/// Removes lots gone at `at`; returns the points that expired.
pub fn expire(lots: &mut Vec<Lot>, at: Ts) -> i64 {
    let before: i64 = lots.iter().map(|l| l.points).sum();
    lots.retain(|l| l.alive_at(at));
    before - lots.iter().map(|l| l.points).sum::<i64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_instant, ts_to};
    use crate::rules::testing::example;
    use proptest::prelude::*;

    #[test]
    fn expiry_is_month_end_local() {
        let rules = example();
        let at = parse_instant("2026-03-15T12:00:00+08:00").unwrap();
        let exp = expires_at(&rules, at).unwrap();
        assert_eq!(ts_to(exp).to_rfc3339(), "2027-03-31T16:00:00+00:00");
        // 23:30 UTC on Jan 31 is already February 1 in Shanghai.
        let at = parse_instant("2026-01-31T23:30:00Z").unwrap();
        assert_eq!(
            ts_to(expires_at(&rules, at).unwrap()).to_rfc3339(),
            "2027-02-28T16:00:00+00:00"
        );
    }

    #[test]
    fn redemption_takes_first_expiring_and_gives_back() {
        let (mut lots, mut debt) = (Vec::new(), 0);
        credit(&mut lots, &mut debt, 100, 5, None);
        credit(&mut lots, &mut debt, 50, 3, Some(900));
        credit(&mut lots, &mut debt, 70, 1, Some(500));
        assert_eq!(lots.iter().map(|l| l.points).collect::<Vec<_>>(), [70, 50, 100]);
        let taken = take(&mut lots, &mut debt, 100);
        assert_eq!(
            taken.iter().map(|t| (t.points, t.expires_at)).collect::<Vec<_>>(),
            [(70, Some(500)), (30, Some(900))]
        );
        give_back(&mut lots, &mut debt, &taken, 0, 40);
        assert_eq!(
            lots,
            vec![
                Lot {
                    points: 10,
                    earned_at: 1,
                    expires_at: Some(500)
                },
                Lot {
                    points: 50,
                    earned_at: 3,
                    expires_at: Some(900)
                },
                Lot {
                    points: 100,
                    earned_at: 5,
                    expires_at: None
                },
            ]
        );
    }

    #[test]
    fn give_back_in_steps_ends_where_one_give_back_does() {
        let (mut lots, mut debt) = (Vec::new(), 0);
        credit(&mut lots, &mut debt, 1, 1, Some(500));
        credit(&mut lots, &mut debt, 432, 2, Some(500));
        let before = lots.clone();
        let taken = take(&mut lots, &mut debt, 100);
        assert_eq!(taken.iter().map(|t| t.points).collect::<Vec<_>>(), [1, 99]);
        let mut whole = lots.clone();
        give_back(&mut whole, &mut debt, &taken, 0, 100);
        assert_eq!(whole, before);
        give_back(&mut lots, &mut debt, &taken, 0, 60);
        give_back(&mut lots, &mut debt, &taken, 60, 39);
        give_back(&mut lots, &mut debt, &taken, 99, 1);
        assert_eq!(lots, before, "the first-taken point returns to its own lot last");
    }

    #[test]
    fn clawback_beyond_balance_is_debt_repaid_first() {
        let (mut lots, mut debt) = (Vec::new(), 0);
        credit(&mut lots, &mut debt, 30, 1, None);
        clawback(&mut lots, &mut debt, 100, 9, Some(5));
        assert!(lots.is_empty());
        assert_eq!(debt, 70);
        credit(&mut lots, &mut debt, 50, 2, None);
        assert_eq!(debt, 20);
        credit(&mut lots, &mut debt, 50, 3, None);
        assert_eq!((debt, lots.len(), lots[0].points), (0, 1, 30));
    }

    proptest! {
        #[test]
        fn balance_is_sum_of_lots_and_takes_are_first_expiring(
            ops in prop::collection::vec((0u8..4, 1i64..500, 0i64..20, prop::option::of(0i64..20)), 1..60)
        ) {
            let (mut lots, mut debt) = (Vec::<Lot>::new(), 0i64);
            let mut expected = 0i64;
            for (op, n, earned, exp) in ops {
                match op {
                    0 | 1 => { credit(&mut lots, &mut debt, n, earned, exp); expected += n; }
                    2 => {
                        let bal: i64 = lots.iter().map(|l| l.points).sum::<i64>() - debt;
                        if n <= bal {
                            let first = lots.first().cloned();
                            let taken = take(&mut lots, &mut debt, n);
                            expected -= n;
                            prop_assert_eq!(taken.iter().map(|t| t.points).sum::<i64>(), n);
                            if let Some(f) = first {
                                prop_assert_eq!((taken[0].expires_at, taken[0].earned_at), (f.expires_at, f.earned_at));
                            }
                            // Every lot left expires no earlier than the last one taken from.
                            let last = taken.last().unwrap();
                            for l in &lots {
                                prop_assert!(sort_key(l.expires_at, l.earned_at) >= sort_key(last.expires_at, last.earned_at));
                            }
                        }
                    }
                    _ => { clawback(&mut lots, &mut debt, n, earned, exp); expected -= n; }
                }
                prop_assert_eq!(lots.iter().map(|l| l.points).sum::<i64>() - debt, expected);
                prop_assert!(debt == 0 || lots.is_empty());
                prop_assert!(lots.iter().all(|l| l.points > 0));
            }
        }
    }
}
