//! Refund arithmetic (rules.md, "Refunds").
//!
//! A refund takes the fraction `refunded_net / sum(net_i)` of what the checkout paid,
//! earned and redeemed. The refund that takes the last of a checkout reverses exactly
//! what remains, so partial refunds never add up to more than the checkout and a full
//! refund is an exact reversal.

use serde::{Deserialize, Serialize};

use crate::error::{Code, Error, Result};
use crate::rules::PricedLine;

/// What has been refunded of one checkout so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refunded {
    pub qty: Vec<i64>,
    pub amount: i64,
    pub points_clawed_back: i64,
    pub points_returned: i64,
    pub base: i64,
    pub points_metric: i64,
    pub visit: bool,
}

/// The checkout figures a refund is a fraction of.
#[derive(Debug, Clone, Copy)]
pub struct Paid {
    pub total: i64,
    pub points_earned: i64,
    pub points_redeemed: i64,
    pub base: i64,
    pub visit: bool,
}

/// One refund, ready to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPlan {
    /// (index of the checkout line, quantity refunded now)
    pub lines: Vec<(u32, i64)>,
    pub amount: i64,
    pub points_clawed_back: i64,
    pub points_returned: i64,
    /// Earn base leaving the tier metric (spend), and earned points leaving it (points).
    pub base: i64,
    pub points_metric: i64,
    /// The visit leaves the metric (the last refund of a checkout that counted one).
    pub visit: bool,
    pub last: bool,
}

/// Plans a refund of `(sku, qty)` requests, or of everything left when `asked` is empty.
pub fn plan(lines: &[PricedLine], paid: Paid, done: &Refunded, asked: &[(String, i64)]) -> Result<RefundPlan> {
    let left = |i: usize| lines[i].line.qty - done.qty.get(i).copied().unwrap_or(0);
    let mut now = vec![0i64; lines.len()];
    if asked.is_empty() {
        for (i, n) in now.iter_mut().enumerate() {
            *n = left(i);
        }
    } else {
        for (sku, qty) in asked {
            let mut want = *qty;
            let mut found = false;
            // A sku on several lines is refunded from the earliest line with quantity left.
            for i in (0..lines.len()).filter(|&i| &lines[i].line.sku == sku) {
                found = true;
                let n = want.min(left(i) - now[i]);
                now[i] += n;
                want -= n;
            }
            if !found {
                return Err(Error::invalid(format!("the sale has no line with sku {sku}")));
            }
            if want > 0 {
                return Err(Error::new(
                    Code::RefundExceeds,
                    format!("{qty} of {sku} asked, less is left to refund"),
                ));
            }
        }
    }
    if now.iter().all(|&n| n == 0) {
        return Err(Error::new(
            Code::RefundExceeds,
            "nothing is left to refund on this sale",
        ));
    }
    let last = (0..lines.len()).all(|i| left(i) == now[i]);
    let sum_net: i128 = lines.iter().map(|l| l.net() as i128).sum();
    let refunded_net: i128 = lines
        .iter()
        .zip(&now)
        .map(|(l, &q)| l.net() as i128 * q as i128 / l.line.qty as i128)
        .sum();
    let part = |whole: i64, already: i64| -> i64 {
        if last {
            whole - already
        } else if sum_net == 0 {
            0
        } else {
            ((whole as i128 * refunded_net / sum_net) as i64).min(whole - already)
        }
    };
    Ok(RefundPlan {
        lines: now
            .iter()
            .enumerate()
            .filter(|(_, &q)| q > 0)
            .map(|(i, &q)| (i as u32, q))
            .collect(),
        amount: part(paid.total, done.amount),
        points_clawed_back: part(paid.points_earned, done.points_clawed_back),
        points_returned: part(paid.points_redeemed, done.points_returned),
        base: part(paid.base, done.base),
        points_metric: part(paid.points_earned, done.points_metric),
        visit: last && paid.visit && !done.visit,
        last,
    })
}

impl Refunded {
    pub fn add(&mut self, n_lines: usize, plan: &RefundPlan) {
        self.qty.resize(n_lines, 0);
        for &(i, q) in &plan.lines {
            self.qty[i as usize] += q;
        }
        self.amount += plan.amount;
        self.points_clawed_back += plan.points_clawed_back;
        self.points_returned += plan.points_returned;
        self.base += plan.base;
        self.points_metric += plan.points_metric;
        self.visit |= plan.visit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Line;
    use proptest::prelude::*;

    fn pl(sku: &str, qty: i64, unit: i64, d: i64) -> PricedLine {
        let mut l = PricedLine::new(
            Line {
                sku: sku.into(),
                category: "c".into(),
                qty,
                unit_price: unit,
            },
            true,
        );
        l.d1 = d;
        l
    }

    #[test]
    fn partial_then_rest_is_exact() {
        let lines = vec![pl("a", 3, 1000, 100), pl("b", 1, 500, 0)];
        let paid = Paid {
            total: 3100,
            points_earned: 31,
            points_redeemed: 300,
            base: 3100,
            visit: true,
        };
        let mut done = Refunded::default();
        let p1 = plan(&lines, paid, &done, &[("a".into(), 1)]).unwrap();
        // net a = 2900, 1 of 3 -> 966; sum net 3400; 3100 * 966 / 3400 = 880.76
        assert_eq!(
            (p1.amount, p1.points_clawed_back, p1.points_returned, p1.last),
            (880, 8, 85, false)
        );
        done.add(2, &p1);
        let p2 = plan(&lines, paid, &done, &[]).unwrap();
        assert!(p2.last && p2.visit);
        assert_eq!(
            (p1.amount + p2.amount, p1.points_clawed_back + p2.points_clawed_back),
            (3100, 31)
        );
        done.add(2, &p2);
        assert_eq!(plan(&lines, paid, &done, &[]).unwrap_err().code, Code::RefundExceeds);
        assert_eq!(
            plan(&lines, paid, &done, &[("a".into(), 1)]).unwrap_err().code,
            Code::RefundExceeds
        );
    }

    #[test]
    fn refusals() {
        let lines = vec![pl("a", 2, 1000, 0)];
        let paid = Paid {
            total: 2000,
            points_earned: 20,
            points_redeemed: 0,
            base: 2000,
            visit: true,
        };
        let done = Refunded::default();
        assert_eq!(
            plan(&lines, paid, &done, &[("a".into(), 3)]).unwrap_err().code,
            Code::RefundExceeds
        );
        assert_eq!(
            plan(&lines, paid, &done, &[("zz".into(), 1)]).unwrap_err().code,
            Code::InvalidInput
        );
    }

    proptest! {
        #[test]
        fn refunds_never_exceed_and_sum_exactly(
            qtys in prop::collection::vec(1i64..6, 1..5),
            steps in prop::collection::vec((0usize..5, 1i64..4), 0..8),
            total in 0i64..100_000, earned in 0i64..5000, redeemed in 0i64..5000,
        ) {
            let lines: Vec<_> = qtys.iter().enumerate().map(|(i, &q)| pl(&format!("s{i}"), q, 997 + i as i64, 13)).collect();
            let paid = Paid { total, points_earned: earned, points_redeemed: redeemed, base: total, visit: total > 0 };
            let mut done = Refunded::default();
            for (i, q) in steps {
                let sku = format!("s{}", i % lines.len());
                if let Ok(p) = plan(&lines, paid, &done, &[(sku, q)]) {
                    prop_assert!(p.amount >= 0 && p.points_clawed_back >= 0 && p.points_returned >= 0);
                    done.add(lines.len(), &p);
                    prop_assert!(done.amount <= total && done.points_clawed_back <= earned && done.points_returned <= redeemed);
                }
            }
            if let Ok(p) = plan(&lines, paid, &done, &[]) {
                done.add(lines.len(), &p);
            }
            prop_assert_eq!((done.amount, done.points_clawed_back, done.points_returned, done.base), (total, earned, redeemed, total));
        }
    }
}
