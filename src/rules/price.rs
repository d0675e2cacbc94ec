//! Pricing of a checkout, rules.md steps 1 to 10, with the group-buy units, promotion
//! kinds and scopes, and tier gifts of rules.md 0.2.

use crate::error::{Code, Error, Result};
use crate::model::{day_no, DayNo, Line, MemberState, Ts};
use crate::rules::alloc::allocate;
use crate::rules::ruleset::CouponValue;
use crate::rules::{local, lots, promo, tier, Ruleset};

const BP: i128 = 10_000;

/// The most points one sale may earn (the bound on points a request may name, too).
pub const MAX_POINTS_EARNED: i64 = crate::model::MAX_POINTS_INPUT;

/// A coupon as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponView {
    pub code: String,
    pub type_id: String,
    pub member_id: String,
    pub issued: DayNo,
    pub valid_until: DayNo,
    pub used: bool,
}

impl CouponView {
    pub fn of(code: &str, c: &crate::model::CouponState) -> CouponView {
        CouponView {
            code: code.to_string(),
            type_id: c.type_id.clone(),
            member_id: c.member_id.clone(),
            issued: c.issued,
            valid_until: c.valid_until,
            used: c.used_by.is_some(),
        }
    }
}

/// The outcome of checking a PIN, which is slow (argon2) and so asked for only when
/// the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    NotGiven,
    NoPinSet,
    Right,
    Wrong,
}

/// Everything a checkout is priced from.
pub struct Request<'a> {
    pub member: &'a MemberState,
    pub lines: &'a [Line],
    /// The code asked for and the coupon the store found under it, if any.
    pub coupon: Option<(&'a str, Option<&'a CouponView>)>,
    pub redeem_points: i64,
    pub at: Ts,
    /// Whether lots expire at `at` (false while the clock is untrusted).
    pub expiry_applies: bool,
    /// With the offline redemption cap (a terminal with an upstream): the points this
    /// terminal redeemed for the member that the hub has not acknowledged yet.
    pub offline_redeemed: Option<i64>,
    /// A PIN came with the request (it is then checked, needed or not).
    pub pin_given: bool,
    /// What 0.2's campaigns need to know that `MemberState` does not hold.
    pub facts: CampaignFacts<'a>,
}

/// The member's campaign history that pricing reads, kept by the engine.
/// `CampaignFacts::default()` (no group-buy unit, no tier reached before) prices as 0.1 did,
/// except that the gifts of tiers a checkout passes are then all due.
#[derive(Debug, Clone, Copy, Default)]
pub struct CampaignFacts<'a> {
    /// Group-buy units the member may use now (from formed groups, not used yet). Each one
    /// is tried in order; `Priced::group_buys` says which were used.
    pub group_buy_units: &'a [GroupBuyUnit],
    /// Every tier the member has reached before this checkout (with or without a gift).
    pub tiers_reached: &'a [String],
}

/// One unit of a deal's sku at the group price, which a member of a formed group may buy once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupBuyUnit {
    pub deal: String,
    pub sku: String,
    pub group_price_minor: i64,
}

/// A group-buy unit this checkout used: on which line, for how much off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBuyUse {
    pub deal: String,
    /// Index into `CampaignFacts::group_buy_units`.
    pub unit: usize,
    /// Index into the lines.
    pub line: usize,
    /// `unit_price - group_price_minor`, always above 0.
    pub off: i64,
}

/// A tier's gift that a checkout makes due (ledger kind `gift`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierGift {
    pub tier: String,
    /// 0 when the tier gives only a coupon.
    pub points: i64,
    /// A coupon type to issue.
    pub coupon: Option<String>,
}

/// A line of the sale and what each step took off it. A line with group-buy units is two:
/// `group_units` units at the group price outside E (their discount is `d0`), and the other
/// `qty - group_units` units inside E when the category is eligible, which alone take
/// `d1`, `d2` and `d3` and count for the earn base.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PricedLine {
    pub line: Line,
    /// Not in an excluded category.
    pub eligible: bool,
    /// Group-buy discount (applied before the tier discount).
    #[serde(default)]
    pub d0: i64,
    /// Units priced at a group price, outside E (0 for all but group-buy lines).
    #[serde(default)]
    pub group_units: i64,
    pub d1: i64,
    pub d2: i64,
    pub d3: i64,
}

impl PricedLine {
    /// A line before any step took something off it.
    pub fn new(line: Line, eligible: bool) -> PricedLine {
        PricedLine {
            line,
            eligible,
            d0: 0,
            group_units: 0,
            d1: 0,
            d2: 0,
            d3: 0,
        }
    }
    pub fn gross(&self) -> i64 {
        self.line.amount()
    }
    /// What the line comes to after every discount.
    pub fn net(&self) -> i64 {
        self.gross() - self.d0 - self.d1 - self.d2 - self.d3
    }
    /// The gross amount of the units in E: `line_i` of rules.md for the line's E part.
    pub fn gross_e(&self) -> i64 {
        match self.eligible {
            true => (self.line.qty - self.group_units) * self.line.unit_price,
            false => 0,
        }
    }
    /// What is left of the E part after the discounts so far (the allocation weight).
    pub fn net_e(&self) -> i64 {
        match self.eligible {
            true => self.gross_e() - self.d1 - self.d2 - self.d3,
            false => 0,
        }
    }
}

/// A priced checkout: the receipt's arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub lines: Vec<PricedLine>,
    pub subtotal: i64,
    /// The sum of `d0`: every group-buy unit's discount (kind `group_buy`, per `group_buys`).
    pub group_buy_discount: i64,
    pub group_buys: Vec<GroupBuyUse>,
    pub tier_discount: i64,
    pub promotion: Option<(String, i64)>,
    pub coupon: Option<(String, i64)>,
    pub due: i64,
    pub points_redeemed: i64,
    pub redeem_value: i64,
    pub total: i64,
    pub base: i64,
    pub points_earned: i64,
    pub lot_expires_at: Option<Ts>,
    pub tier_before: String,
    pub tier_after: String,
    /// The most points this sale could take (0 when even `min_points` cannot be used).
    pub max_redeem_points: i64,
    pub visit: bool,
    pub day: DayNo,
    /// The PIN was checked and right: a successful commit clears failed tries.
    pub pin_verified: bool,
    /// Gifts of the tiers this checkout passes that the member had not reached before.
    pub gifts: Vec<TierGift>,
    /// Their points: a lot of their own (ledger kind `gift`, expiring as `lot_expires_at`),
    /// never part of `points_earned`, its cap or the tier metric.
    pub gift_points: i64,
    /// The earn campaigns in effect and the points each added above the base rate.
    pub campaign_points: Vec<(String, i64)>,
}

/// Prices a checkout. `check_pin` is called only when the redemption needs a PIN.
pub fn price(rules: &Ruleset, req: &Request, check_pin: &mut dyn FnMut() -> PinCheck) -> Result<Priced> {
    let at_local = local(rules, req.at);
    let day = day_no(at_local.date());
    let member = req.member;
    let tier_idx = tier::current(rules, member, day);
    let tier = &rules.tiers[tier_idx];

    let mut lines: Vec<PricedLine> = req
        .lines
        .iter()
        .map(|l| PricedLine::new(l.clone(), !rules.is_excluded(&l.category)))
        .collect();
    let subtotal: i64 = lines.iter().map(PricedLine::gross).sum();

    // 0. Group-buy units: one unit each, before the tier discount, taken out of E.
    let group_buys = take_group_units(&mut lines, req.facts.group_buy_units)?;
    let group_buy_discount: i64 = group_buys.iter().map(|g| g.off).sum();

    // 1. Tier discount, per eligible line (its E part).
    for l in lines.iter_mut() {
        l.d1 = (l.gross_e() as i128 * tier.discount_bp as i128 / BP) as i64;
    }
    let tier_discount: i64 = lines.iter().map(|l| l.d1).sum();

    // 2. The single best promotion open at `at` to this tier, over its own scope.
    let mut weights: Vec<i64> = lines.iter().map(PricedLine::net_e).collect();
    let promotion = promo::best(rules, at_local, &tier.name, &lines, &weights).map(|(p, off)| {
        for (w, l) in weights.iter_mut().zip(&lines) {
            if !p.scope.covers(&l.line.sku, &l.line.category) {
                *w = 0;
            }
        }
        for (l, s) in lines.iter_mut().zip(allocate(off, &weights)) {
            l.d2 = s;
        }
        (p.id.clone(), off)
    });

    // 3. Coupon.
    let weights: Vec<i64> = lines.iter().map(PricedLine::net_e).collect();
    let base3: i64 = weights.iter().sum();
    let coupon = match req.coupon {
        None => None,
        Some((code, found)) => {
            let c = found.ok_or_else(|| Error::new(Code::CouponInvalid, format!("no coupon {code}")))?;
            if c.member_id != member.member_id {
                return Err(Error::new(
                    Code::CouponInvalid,
                    format!("coupon {code} belongs to another member"),
                ));
            }
            let ty = rules.coupon_type(&c.type_id).ok_or_else(|| {
                Error::new(
                    Code::CouponInvalid,
                    format!("coupon {code} is of type {} which the rules no longer offer", c.type_id),
                )
            })?;
            if c.used {
                return Err(Error::new(Code::CouponUsed, format!("coupon {code} has been used")));
            }
            if day < c.issued || day > c.valid_until {
                return Err(Error::new(
                    Code::CouponExpired,
                    format!("coupon {code} is not valid on this date"),
                ));
            }
            if base3 < ty.min_minor {
                return Err(Error::new(
                    Code::CouponMinSpend,
                    format!(
                        "coupon {code} needs {} of eligible spend, this sale has {base3}",
                        ty.min_minor
                    ),
                ));
            }
            let value = match ty.value {
                CouponValue::OffMinor(v) => v,
                CouponValue::OffBp(bp) => (base3 as i128 * bp as i128 / BP) as i64,
            }
            .min(base3);
            for (l, s) in lines.iter_mut().zip(allocate(value, &weights)) {
                l.d3 = s;
            }
            Some((c.code.clone(), value))
        }
    };

    // 4. Due.
    let due: i64 = lines.iter().map(PricedLine::net).sum();

    // 5. Redemption: refused, never clamped.
    let r = req.redeem_points;
    let balance = member.balance_at(req.at, req.expiry_applies);
    let red = &rules.redeem;
    let share_cap = (due as i128 * red.max_share_bp as i128 / BP) as i64;
    // In i128 until compared with the share cap: r points may be worth more than an i64.
    let value_of = |p: i64| p as i128 * red.unit_minor as i128 / red.points_per_unit as i128;
    let cap_left = req
        .offline_redeemed
        .map_or(i64::MAX, |done| (red.offline_cap_points - done).max(0));
    // Largest r whose value fits the share cap: floor(((C + 1) * ppu - 1) / unit_minor), which
    // leaves i64 when a point is worth very little (any positive rate is a valid ruleset).
    let by_share = (((share_cap as i128 + 1) * red.points_per_unit as i128 - 1) / red.unit_minor as i128)
        .min(i64::MAX as i128) as i64;
    let mut max_redeem_points = by_share.min(balance).min(cap_left).max(0);
    if max_redeem_points < red.min_points {
        max_redeem_points = 0;
    }
    let mut pin_verified = false;
    let v = if r == 0 {
        0
    } else {
        if r < 0 {
            return Err(Error::invalid("redeem_points must not be negative"));
        }
        if r < red.min_points {
            return Err(Error::new(
                Code::BelowMinRedeem,
                format!("at least {} points must be redeemed", red.min_points),
            ));
        }
        if r > balance {
            return Err(Error::new(
                Code::InsufficientPoints,
                format!("balance is {balance} points, {r} asked"),
            ));
        }
        let v = value_of(r);
        if v > share_cap as i128 {
            return Err(Error::new(
                Code::RedeemExceedsShare,
                format!("points may pay at most {share_cap} of {due}; {r} points are worth {v}"),
            ));
        }
        pin_verified = authorise_redemption(rules, member, r, req.at, req.pin_given, check_pin, req.offline_redeemed)?;
        v as i64
    };
    if r == 0 && req.pin_given {
        // A PIN given is a PIN checked (it counts towards the lock when wrong).
        pin_verified = authorise_redemption(rules, member, 0, req.at, true, check_pin, None)?;
    }

    // 6. Total, 7. earn base.
    let total = due - v;
    let net_e: i64 = lines.iter().map(PricedLine::net_e).sum();
    let base = if due == 0 {
        0
    } else {
        net_e - (v as i128 * net_e as i128 / due as i128) as i64
    };

    // 8. Earn: stepped brackets, then the multipliers, then bonuses and the cap.
    let earn = &rules.earn;
    let mut b: i128 = 0;
    for (k, br) in earn.brackets.iter().enumerate() {
        let upper = earn.brackets.get(k + 1).map(|n| n.from_minor);
        let seg = (base - br.from_minor).max(0);
        let seg = upper.map_or(seg, |u| seg.min(u - br.from_minor));
        b += seg as i128 * br.multiplier_bp as i128;
    }
    let campaigns: Vec<_> = rules
        .campaigns
        .iter()
        .filter(|c| c.window.open_at(at_local, &tier.name))
        .collect();
    let m_camp = campaigns.iter().map(|c| c.multiplier_bp).max().unwrap_or(10_000);
    let m_bday = match (&rules.birthday, member.birthday) {
        (Some(bd), Some(mb)) if crate::rules::birthday_matches(bd.scope, mb, at_local.date()) => bd.multiplier_bp,
        _ => 10_000,
    };
    let too_large = || Error::invalid("the sale is too large to price");
    let num = [earn.points_per_unit, tier.multiplier_bp, m_camp, m_bday]
        .iter()
        .try_fold(b, |acc, &m| acc.checked_mul(m as i128))
        .ok_or_else(too_large)?;
    let den = earn.unit_minor as i128 * BP * BP * BP * BP;
    // Bonuses are summed in i128 (the ruleset bounds each, not their sum) and the cap
    // applies before the result must fit.
    let mut points = num / den + campaigns.iter().map(|c| c.bonus_points as i128).sum::<i128>();
    if earn.visit_bonus_points > 0 && total >= earn.visit_bonus_min_minor {
        points += earn.visit_bonus_points as i128;
    }
    if earn.max_points_per_tx > 0 {
        points = points.min(earn.max_points_per_tx as i128);
    }
    // The same sale without any campaign, for what each campaign added.
    let campaign_points = [earn.points_per_unit, tier.multiplier_bp, 10_000, m_bday]
        .iter()
        .try_fold(b, |acc, &m| acc.checked_mul(m as i128))
        .filter(|_| !campaigns.is_empty())
        .map(|num0| {
            let mut without = num0 / den;
            if earn.visit_bonus_points > 0 && total >= earn.visit_bonus_min_minor {
                without += earn.visit_bonus_points as i128;
            }
            if earn.max_points_per_tx > 0 {
                without = without.min(earn.max_points_per_tx as i128);
            }
            let multiplier_part = num / den - num0 / den;
            campaign_points(&campaigns, m_camp, multiplier_part, points - without)
        })
        .unwrap_or_default();
    // Balances and tier metrics add up the points of many sales: one sale earning close
    // to i64::MAX would overflow them.
    let points = i64::try_from(points)
        .ok()
        .filter(|&p| p <= MAX_POINTS_EARNED)
        .ok_or_else(too_large)?;

    // 9. The lot, 10. the tier after.
    let lot_expires_at = lots::expires_at(rules, req.at);
    let visit = total > 0;
    let tier_after = tier::after(rules, member, day, (base, points, visit as i64));
    let gifts: Vec<TierGift> = tier::gifts_due(rules, tier_idx, tier_after, req.facts.tiers_reached)
        .map(|t| TierGift {
            tier: t.name.clone(),
            points: t.gift_points,
            coupon: t.gift_coupon.clone(),
        })
        .collect();
    let gift_points = gifts.iter().map(|g| g.points).sum();

    debug_assert_eq!(
        subtotal
            - group_buy_discount
            - tier_discount
            - promotion.as_ref().map_or(0, |p| p.1)
            - coupon.as_ref().map_or(0, |c| c.1),
        due
    );

    Ok(Priced {
        lines,
        subtotal,
        group_buy_discount,
        group_buys,
        tier_discount,
        promotion,
        coupon,
        due,
        points_redeemed: r,
        redeem_value: v,
        total,
        base,
        points_earned: points,
        lot_expires_at,
        tier_before: tier.name.clone(),
        tier_after: rules.tiers[tier_after].name.clone(),
        max_redeem_points,
        visit,
        day,
        pin_verified,
        gifts,
        gift_points,
        campaign_points,
    })
}

/// What each earn campaign in effect added above the base rate (the points without any
/// campaign): the one whose multiplier applied (largest, first in the ruleset on a tie)
/// its multiplier's part and its bonus, each other its bonus. When the cap took some of
/// the campaigns' points, the last ones give them up first, so the parts add up to the
/// difference the campaigns made.
fn campaign_points(
    campaigns: &[&crate::rules::ruleset::Campaign],
    m_camp: i64,
    multiplier_part: i128,
    made: i128,
) -> Vec<(String, i64)> {
    let multiplier = campaigns
        .iter()
        .position(|c| c.multiplier_bp == m_camp && m_camp != 10_000);
    let mut out: Vec<(String, i128)> = campaigns
        .iter()
        .enumerate()
        .filter(|&(i, c)| Some(i) == multiplier || c.bonus_points != 0)
        .map(|(i, c)| {
            let mult = if Some(i) == multiplier { multiplier_part } else { 0 };
            (c.id.clone(), mult + c.bonus_points as i128)
        })
        .collect();
    let mut excess = out.iter().map(|e| e.1).sum::<i128>() - made;
    for e in out.iter_mut().rev() {
        if excess <= 0 {
            break;
        }
        let give = e.1.clamp(0, excess);
        e.1 -= give;
        excess -= give;
    }
    out.into_iter()
        .map(|(id, p)| (id, i64::try_from(p).unwrap_or(0)))
        .collect()
}

/// Step 0 (rules.md 0.2, "Group buys"): each unit, in order, takes one unit of the first line
/// of its sku that is eligible, has a unit left and costs more than the group price. Lines
/// of an excluded category take no group-buy unit, like every other member discount (a
/// deal's sku is the shop's choice, its category is the POS's, so this cannot be refused at
/// load). A unit that finds no such line is not used.
fn take_group_units(lines: &mut [PricedLine], units: &[GroupBuyUnit]) -> Result<Vec<GroupBuyUse>> {
    let mut used = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        if unit.group_price_minor < 0 {
            return Err(Error::invalid(format!(
                "group-buy unit of {} has a negative price",
                unit.deal
            )));
        }
        let found = lines.iter().position(|l| {
            l.eligible
                && l.line.sku == unit.sku
                && l.group_units < l.line.qty
                && l.line.unit_price > unit.group_price_minor
        });
        if let Some(i) = found {
            let off = lines[i].line.unit_price - unit.group_price_minor;
            lines[i].group_units += 1;
            lines[i].d0 += off;
            used.push(GroupBuyUse {
                deal: unit.deal.clone(),
                unit: u,
                line: i,
                off,
            });
        }
    }
    Ok(used)
}

/// May `points` be redeemed for `member` at `at`? The one check of the PIN and the
/// offline cap, for checkouts and rewards alike. A PIN is checked when the redemption
/// needs one (`pin_required_from`) or when one was given: a wrong PIN is always
/// refused (and the caller records it towards the lock), and while the member is
/// locked nothing that checks a PIN goes through. `offline_redeemed` is the points
/// this terminal redeemed for the member that the hub has not acknowledged, when the
/// cap applies. Returns whether a PIN was checked and right.
pub fn authorise_redemption(
    rules: &Ruleset,
    member: &MemberState,
    points: i64,
    at: Ts,
    pin_given: bool,
    check_pin: &mut dyn FnMut() -> PinCheck,
    offline_redeemed: Option<i64>,
) -> Result<bool> {
    let red = &rules.redeem;
    let needed = red.pin_required_from > 0 && points >= red.pin_required_from;
    let mut verified = false;
    if needed || pin_given {
        if member.pin_locked_at(at) {
            return Err(Error::new(
                Code::PinLocked,
                "too many wrong PINs; redemption is locked for 15 minutes",
            ));
        }
        match check_pin() {
            PinCheck::Right => verified = true,
            PinCheck::Wrong => return Err(Error::new(Code::PinInvalid, "wrong PIN")),
            PinCheck::NotGiven | PinCheck::NoPinSet if !needed => {}
            PinCheck::NotGiven => {
                return Err(Error::new(
                    Code::PinRequired,
                    format!("redeeming {points} points needs the member's PIN"),
                ))
            }
            PinCheck::NoPinSet => {
                return Err(Error::new(
                    Code::PinRequired,
                    format!("redeeming {points} points needs a PIN and this member has none set"),
                ))
            }
        }
    }
    if let Some(done) = offline_redeemed {
        if done + points > red.offline_cap_points {
            let left = (red.offline_cap_points - done).max(0);
            return Err(Error::new(
                Code::OfflineCapExceeded,
                format!("only {left} more points may be redeemed for this member until the hub confirms earlier ones"),
            ));
        }
    }
    Ok(verified)
}

#[cfg(test)]
mod campaign_tests;
#[cfg(test)]
mod tests;
