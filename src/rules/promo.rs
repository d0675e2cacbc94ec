//! Step 2 of a checkout: each promotion's value over its own scope, and the single best
//! one (rules.md 0.2, "Promotions: kinds and scope").

use chrono::NaiveDateTime;

use crate::rules::ruleset::{Promotion, PromotionKind, Scope};
use crate::rules::{PricedLine, Ruleset};

const BP: i128 = 10_000;

/// A promotion's value on its base `base2_p`, capped at the base.
pub fn value(kind: &PromotionKind, base: i64) -> i64 {
    let base = base.max(0);
    let v: i128 = match *kind {
        PromotionKind::Threshold { min_minor, off_minor } if base >= min_minor => off_minor as i128,
        PromotionKind::Every {
            min_minor,
            step_minor,
            off_minor,
            max_off_minor,
        } if base >= min_minor => {
            let v = (base / step_minor) as i128 * off_minor as i128;
            max_off_minor.map_or(v, |max| v.min(max as i128))
        }
        PromotionKind::Percent { min_minor, off_bp } if base >= min_minor => base as i128 * off_bp as i128 / BP,
        _ => 0,
    };
    v.min(base as i128) as i64
}

/// The promotion of largest value among those open at `local` to `tier` (ties: the
/// smallest id), with its value; none when every value is 0. `weights[i]` is what is left
/// of line i's E part after the tier discount (0 outside E).
pub fn best<'r>(
    rules: &'r Ruleset,
    local: NaiveDateTime,
    tier: &str,
    lines: &[PricedLine],
    weights: &[i64],
) -> Option<(&'r Promotion, i64)> {
    // The base of every unscoped promotion is the same: sum it once.
    let base_all: i64 = weights.iter().sum();
    let mut best: Option<(&Promotion, i64)> = None;
    for p in &rules.promotions {
        if !p.window.open_at(local, tier) {
            continue;
        }
        let base = match &p.scope {
            Scope::All => base_all,
            scope => lines
                .iter()
                .zip(weights)
                .filter(|(l, _)| scope.covers(&l.line.sku, &l.line.category))
                .map(|(_, w)| w)
                .sum(),
        };
        let v = value(&p.kind, base);
        let better = match best {
            None => v > 0,
            Some((b, bv)) => v > bv || (v == bv && p.id < b.id),
        };
        if better {
            best = Some((p, v));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_each_kind() {
        let threshold = PromotionKind::Threshold {
            min_minor: 10000,
            off_minor: 1000,
        };
        assert_eq!(value(&threshold, 9999), 0);
        assert_eq!(value(&threshold, 10000), 1000);
        let small = PromotionKind::Threshold {
            min_minor: 0,
            off_minor: 1000,
        };
        assert_eq!(value(&small, 300), 300, "capped at the base");
        let every = PromotionKind::Every {
            min_minor: 0,
            step_minor: 10000,
            off_minor: 1000,
            max_off_minor: Some(5000),
        };
        // floor(base / 10000) full steps x 1000, at most 5000.
        assert_eq!(value(&every, 9999), 0);
        assert_eq!(value(&every, 19999), 1000);
        assert_eq!(value(&every, 24000), 2000);
        assert_eq!(value(&every, 56000), 5000);
        let every_min = PromotionKind::Every {
            min_minor: 30000,
            step_minor: 10000,
            off_minor: 1000,
            max_off_minor: None,
        };
        assert_eq!(value(&every_min, 29999), 0);
        assert_eq!(value(&every_min, 30000), 3000);
        assert_eq!(value(&every_min, 1_000_000), 100_000, "no cap without max_off_minor");
        let pct = PromotionKind::Percent {
            min_minor: 5000,
            off_bp: 1200,
        };
        // floor(5510 x 1200 / 10000) = floor(661.2) = 661
        assert_eq!(value(&pct, 5510), 661);
        assert_eq!(value(&pct, 4999), 0);
        let all = PromotionKind::Percent {
            min_minor: 0,
            off_bp: 10000,
        };
        assert_eq!(value(&all, 777), 777);
        assert_eq!(value(&all, 0), 0);
    }
}
