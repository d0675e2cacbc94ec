//! The model of rules.md, written from its text: what a sale must come to, or the refusals
//! whose conditions hold.

use super::*;

/// floor(x * w_i / W) for each line, as rules.md "Allocation" starts.
pub fn floors(x: i64, weights: &[i64]) -> Vec<i64> {
    let total: i128 = weights.iter().map(|&w| w as i128).sum();
    weights
        .iter()
        .map(|&w| {
            if total == 0 {
                0
            } else {
                (x as i128 * w as i128 / total) as i64
            }
        })
        .collect()
}

/// Checks that `shares` is rules.md's allocation of `x` over `weights`: each the floor or one
/// more, the extra units to the largest fractional parts (ties to the earlier line), summing
/// to `x`, none above its weight.
pub fn check_allocation(what: &str, x: i64, weights: &[i64], shares: &[i64]) -> Result<(), TestCaseError> {
    let total: i128 = weights.iter().map(|&w| w as i128).sum();
    prop_assert_eq!(shares.iter().sum::<i64>(), x, "{} sums to its amount", what);
    let base = floors(x, weights);
    let frac = |i: usize| {
        if total == 0 {
            0
        } else {
            x as i128 * weights[i] as i128 % total
        }
    };
    for i in 0..weights.len() {
        let extra = shares[i] - base[i];
        prop_assert!(
            extra == 0 || extra == 1,
            "{}: line {} gets {} of floor {}",
            what,
            i,
            shares[i],
            base[i]
        );
        prop_assert!(
            shares[i] <= weights[i],
            "{}: line {} gets more than its weight",
            what,
            i
        );
        // A line with an extra unit outranks every line without one.
        if extra == 1 {
            for j in 0..weights.len() {
                if shares[j] == base[j] {
                    prop_assert!(
                        frac(i) > frac(j) || (frac(i) == frac(j) && i < j),
                        "{}: line {} got the extra unit before line {}",
                        what,
                        i,
                        j
                    );
                }
            }
        }
    }
    Ok(())
}

/// What the model expects: the refusals whose conditions hold, and the figures otherwise.
#[derive(Debug, Default)]
pub struct Expected {
    pub refusals: Vec<Code>,
    pub group_units: Vec<i64>,
    pub d0: Vec<i64>,
    /// (unit, line, off) of each group-buy unit used.
    pub uses: Vec<(usize, usize, i64)>,
    pub d1: Vec<i64>,
    /// The E part after d1 of each line (the promotion's weights, before scoping).
    pub w2: Vec<i64>,
    pub promotion: Option<(String, i64, usize)>,
    pub coupon_value: i64,
    pub due: i64,
    pub redeem_value: i64,
    pub total: i64,
    pub base: i64,
    pub points: i64,
    pub max_redeem: i64,
}

pub struct Case<'a> {
    pub spec: &'a RulesSpec,
    pub rules: &'a Ruleset,
    pub sale: &'a SaleSpec,
    pub lines: &'a [Line],
    pub member: &'a MemberState,
    pub units: &'a [GroupBuyUnit],
    pub coupon: Option<(&'a str, Option<&'a CouponView>)>,
    pub at: i64,
    pub local: NaiveDateTime,
    pub day: DayNo,
    pub redeem_points: i64,
}

impl Case<'_> {
    /// rules.md steps 0 to 8 as the text says, with the promotions' and campaigns' windows
    /// decided by the spec that wrote them. `d2` and `d3` are the allocations the pricing made
    /// (checked separately), since what follows depends only on their sums.
    pub fn model(&self, tier_idx: usize) -> Expected {
        let s = self.spec;
        let lines = self.lines;
        let n = lines.len();
        let mut x = Expected {
            group_units: vec![0; n],
            d0: vec![0; n],
            ..Expected::default()
        };
        let eligible: Vec<bool> = lines.iter().map(|l| !s.is_excluded(&l.category)).collect();
        let subtotal: i64 = lines.iter().map(Line::amount).sum();

        // 0. Each unit, in order, takes one unit of the first line of its sku that is
        // eligible, has a unit left and costs more than the group price.
        for (u, unit) in self.units.iter().enumerate() {
            let found = (0..n).find(|&i| {
                eligible[i]
                    && lines[i].sku == unit.sku
                    && x.group_units[i] < lines[i].qty
                    && lines[i].unit_price > unit.group_price_minor
            });
            if let Some(i) = found {
                let off = lines[i].unit_price - unit.group_price_minor;
                x.group_units[i] += 1;
                x.d0[i] += off;
                x.uses.push((u, i, off));
            }
        }
        let gross_e: Vec<i64> = (0..n)
            .map(|i| match eligible[i] {
                true => (lines[i].qty - x.group_units[i]) * lines[i].unit_price,
                false => 0,
            })
            .collect();

        // 1. Tier discount.
        let tier = &s.tiers[tier_idx];
        x.d1 = gross_e
            .iter()
            .map(|&g| (g as i128 * tier.discount_bp as i128 / BP) as i64)
            .collect();
        x.w2 = (0..n).map(|i| gross_e[i] - x.d1[i]).collect();

        // 2. The best promotion over its own scope.
        for (k, p) in s.promotions.iter().enumerate() {
            if !p.window.open(self.local, tier_idx, s.tiers.len()) {
                continue;
            }
            let base: i64 = (0..n).filter(|&i| p.scope.covers(&lines[i])).map(|i| x.w2[i]).sum();
            let value: i128 = match p.kind {
                Kind::Threshold { min, off } if base >= min => off as i128,
                Kind::Every { min, step, off, cap } if base >= min.unwrap_or(0) => {
                    let v = (base / step) as i128 * off as i128;
                    cap.map_or(v, |c| v.min(c as i128))
                }
                Kind::Percent { min, off_bp } if base >= min => base as i128 * off_bp as i128 / BP,
                _ => 0,
            };
            let value = value.min(base as i128) as i64;
            let id = s.promo_id(k);
            let better = match &x.promotion {
                None => value > 0,
                Some((best_id, best, _)) => value > *best || (value == *best && id < *best_id),
            };
            if better {
                x.promotion = Some((id, value, k));
            }
        }
        let promo_off = x.promotion.as_ref().map_or(0, |p| p.1);
        let base3: i64 = x.w2.iter().sum::<i64>() - promo_off;

        // 3. Coupon.
        let refuse = |code: Code, x: &mut Expected| {
            if !x.refusals.contains(&code) {
                x.refusals.push(code);
            }
        };
        if let Some((_, found)) = self.coupon {
            match found {
                None => refuse(Code::CouponInvalid, &mut x),
                Some(c) => {
                    let ty = self.rules.coupon_type(&c.type_id).map(|_| {
                        let i: usize = c.type_id[1..].parse().unwrap();
                        &s.coupons[i]
                    });
                    if c.member_id != self.member.member_id || ty.is_none() {
                        refuse(Code::CouponInvalid, &mut x);
                    }
                    if c.used {
                        refuse(Code::CouponUsed, &mut x);
                    }
                    if self.day < c.issued || self.day > c.valid_until {
                        refuse(Code::CouponExpired, &mut x);
                    }
                    if let Some(ty) = ty {
                        if base3 < ty.min_minor {
                            refuse(Code::CouponMinSpend, &mut x);
                        }
                        x.coupon_value = match ty.value {
                            CouponValueSpec::OffMinor(v) => v,
                            CouponValueSpec::OffBp(bp) => (base3 as i128 * bp as i128 / BP) as i64,
                        }
                        .min(base3);
                    }
                }
            }
            if !x.refusals.is_empty() {
                x.coupon_value = 0;
            }
        }

        // 4. Due.
        x.due = subtotal - x.d0.iter().sum::<i64>() - x.d1.iter().sum::<i64>() - promo_off - x.coupon_value;

        // 5. Redemption.
        let red = &s.redeem;
        let r = self.redeem_points;
        let alive = |l: &Lot| !self.sale.expiry_applies || l.expires_at.is_none_or(|e| self.at < e);
        let balance = self
            .member
            .lots
            .iter()
            .filter(|l| alive(l))
            .map(|l| l.points)
            .sum::<i64>()
            - self.member.debt;
        let share_cap = (x.due as i128 * red.max_share_bp as i128 / BP) as i64;
        let value_of = |p: i64| p as i128 * red.unit_minor as i128 / red.points_per_unit as i128;
        let cap_left = self
            .sale
            .offline_redeemed
            .map_or(i64::MAX, |d| (red.offline_cap_points - d).max(0));
        // The largest r worth at most the share cap, by search (the pricing uses a formula).
        let (mut lo, mut hi) = (0i64, 1i64 << 62);
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2;
            if value_of(mid) <= share_cap as i128 {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        x.max_redeem = lo.min(balance).min(cap_left).max(0);
        if x.max_redeem < red.min_points {
            x.max_redeem = 0;
        }
        let needed = red.pin_required_from > 0 && r >= red.pin_required_from;
        let checked = (r > 0 && needed) || self.sale.pin != 0;
        if r > 0 {
            if r < red.min_points {
                refuse(Code::BelowMinRedeem, &mut x);
            }
            if r > balance {
                refuse(Code::InsufficientPoints, &mut x);
            }
            if value_of(r) > share_cap as i128 {
                refuse(Code::RedeemExceedsShare, &mut x);
            }
            if let Some(done) = self.sale.offline_redeemed {
                if done + r > red.offline_cap_points {
                    refuse(Code::OfflineCapExceeded, &mut x);
                }
            }
        }
        if checked {
            if self.sale.pin_locked {
                refuse(Code::PinLocked, &mut x);
            } else if self.sale.pin == 3 {
                refuse(Code::PinInvalid, &mut x);
            } else if r > 0 && needed && self.sale.pin < 2 {
                refuse(Code::PinRequired, &mut x);
            }
        }
        x.redeem_value = if r > 0 { value_of(r) as i64 } else { 0 };

        // 6 and 7.
        x.total = x.due - x.redeem_value;
        let net_e = base3 - x.coupon_value;
        x.base = match x.due {
            0 => 0,
            due => net_e - (x.redeem_value as i128 * net_e as i128 / due as i128) as i64,
        };

        // 8. Earn.
        let e = &s.earn;
        let brackets: Vec<(i64, i64)> = match &e.brackets {
            None => vec![(0, 10_000)],
            Some(b) => {
                let mut from = 0;
                b.iter()
                    .enumerate()
                    .map(|(k, &(step, mult))| {
                        if k > 0 {
                            from += step;
                        }
                        (from, mult)
                    })
                    .collect()
            }
        };
        let mut b: i128 = 0;
        for (k, &(from, mult)) in brackets.iter().enumerate() {
            let width = brackets.get(k + 1).map(|next| next.0 - from);
            let seg = (x.base - from).max(0);
            let seg = width.map_or(seg, |w| seg.min(w));
            b += seg as i128 * mult as i128;
        }
        let open: Vec<&CampaignSpec> = s
            .campaigns
            .iter()
            .filter(|c| c.window.open(self.local, tier_idx, s.tiers.len()))
            .collect();
        let m_camp = open
            .iter()
            .map(|c| c.multiplier_bp.unwrap_or(10_000))
            .max()
            .unwrap_or(10_000);
        let m_bday = match s.birthday {
            Some((mult, month)) if self.sale.birthday == 1 || (month && self.sale.birthday == 2) => mult,
            _ => 10_000,
        };
        let num = [e.points_per_unit, tier.multiplier_bp, m_camp, m_bday]
            .iter()
            .try_fold(b, |acc, &m| acc.checked_mul(m as i128));
        let den = e.unit_minor as i128 * BP.pow(4);
        let points = num.map(|num| {
            let mut p = num / den + open.iter().map(|c| c.bonus_points as i128).sum::<i128>();
            if e.visit_bonus_points > 0 && x.total >= e.visit_bonus_min_minor {
                p += e.visit_bonus_points as i128;
            }
            if e.max_points_per_tx > 0 {
                p = p.min(e.max_points_per_tx as i128);
            }
            p
        });
        match points {
            Some(p) if p <= MAX_POINTS_INPUT as i128 => x.points = p as i64,
            _ => refuse(Code::InvalidInput, &mut x),
        }
        x
    }
}
