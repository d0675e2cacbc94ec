//! Record types of 0.2's campaigns: checkouts with group-buy units, tier gifts and the
//! coupons they issue; coupons with who issued them and what they cost; group-buy joins;
//! the daily trigger pass; pulls that carry groups. Frozen like everything in `record`
//! (see the module docs there).

use serde::{Deserialize, Serialize};

use super::{HubPullV2, Line, MemberSnapshotV2};
use crate::model::{DayNo, Ts};

/// A line of a 0.2 checkout: `group_units` units at a group price (their discount `d0`,
/// outside the tier discount, promotions, coupons and earning), the rest as in 0.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLineV2 {
    pub line: Line,
    pub eligible: bool,
    pub d0: i64,
    pub group_units: i64,
    pub d1: i64,
    pub d2: i64,
    pub d3: i64,
}

impl PricedLineV2 {
    /// What the line came to after its discounts.
    pub fn net(&self) -> i64 {
        self.line.qty * self.line.unit_price - self.d0 - self.d1 - self.d2 - self.d3
    }
}

/// A group-buy unit a checkout used: the deal, the group it came from, the line, how much off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupBuyUsed {
    pub deal: String,
    pub group_id: String,
    pub line: u32,
    pub off: i64,
}

/// A tier's gift of points that a checkout gave (its coupon, if any, is in
/// `coupons_issued`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierGiftV1 {
    pub tier: String,
    pub points: i64,
}

/// A coupon a change issued along with itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCoupon {
    pub code: String,
    pub type_id: String,
    pub issued: DayNo,
    pub valid_until: DayNo,
    /// `trigger:<id>` or `gift:<tier>`.
    pub issued_by: String,
}

/// A committed checkout (0.2): 0.1's, with group-buy units, tier gifts and the coupons
/// the checkout issued. `Checkout` is read as this with none of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutV2 {
    pub tx_id: String,
    pub member_id: String,
    pub card: String,
    pub lines: Vec<PricedLineV2>,
    pub subtotal: i64,
    pub group_buy_discount: i64,
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
    pub visit: bool,
    pub pin_verified: bool,
    pub ruleset_version: u32,
    pub group_buys: Vec<GroupBuyUsed>,
    pub gifts: Vec<TierGiftV1>,
    /// The gifts' points: one lot of their own, expiring as `lot_expires_at`.
    pub gift_points: i64,
    pub coupons_issued: Vec<IssuedCoupon>,
    /// Tiers the member reached for the first time in this checkout, every tier passed
    /// included (gifts and tier_up triggers are once per tier, ever).
    pub tiers_reached: Vec<String>,
}

/// A committed checkout (0.2 reports): `CheckoutV2`'s, with the points each earn campaign
/// added, which the record did not hold and a replay cannot know without the ruleset.
/// `CheckoutV2` (and so `Checkout`) is read as this with none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutV3 {
    pub tx_id: String,
    pub member_id: String,
    pub card: String,
    pub lines: Vec<PricedLineV2>,
    pub subtotal: i64,
    pub group_buy_discount: i64,
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
    pub visit: bool,
    pub pin_verified: bool,
    pub ruleset_version: u32,
    pub group_buys: Vec<GroupBuyUsed>,
    pub gifts: Vec<TierGiftV1>,
    /// The gifts' points: one lot of their own, expiring as `lot_expires_at`.
    pub gift_points: i64,
    pub coupons_issued: Vec<IssuedCoupon>,
    /// Tiers the member reached for the first time in this checkout, every tier passed
    /// included (gifts and tier_up triggers are once per tier, ever).
    pub tiers_reached: Vec<String>,
    /// The earn campaigns in effect and the points each added above the base rate
    /// (rules.md step 8 without it; the cap taken from the last ones first).
    pub campaigns: Vec<CampaignEarn>,
}

/// An earn campaign in effect in a checkout and the points it added above the base rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignEarn {
    pub id: String,
    pub points: i64,
}

/// Which occurrence of its event a trigger fired for (rules::triggers::Occurrence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Occurrence {
    Enrol,
    Birthday { year: i32 },
    Visit { nth: i64 },
    Inactive { since: DayNo },
    TierUp { tier: String },
}

/// A coupon issued to a member (0.2): by hand (`manual`), by a trigger (`trigger:<id>`,
/// with the occurrence it fired for), or bought with points (`exchange`, `points` > 0).
/// `CouponIssue` is read as this: manual and free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponIssueV2 {
    pub code: String,
    pub type_id: String,
    pub member_id: String,
    pub issued: DayNo,
    pub valid_until: DayNo,
    pub issued_by: String,
    pub points: i64,
    pub occurrence: Option<(String, Occurrence)>,
    pub pin_verified: bool,
}

/// A member joined a group of a group-buy deal (opening it when `opens`). The deal's
/// terms are in the record, so that applying it needs no ruleset. `decides`: this
/// terminal decides formation itself (no hub); otherwise the hub does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupJoin {
    pub deal: String,
    pub group_id: String,
    pub member_id: String,
    pub opens: bool,
    pub sku: String,
    pub group_price_minor: i64,
    pub size: u32,
    pub expires_at: Ts,
    pub decides: bool,
}

/// A group as the hub decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub group_id: String,
    pub deal: String,
    pub sku: String,
    pub group_price_minor: i64,
    pub size: u32,
    pub opened_at: Ts,
    pub expires_at: Ts,
    /// Members in, in the hub's order (at most `size`).
    pub members: Vec<String>,
    /// Joins the hub refused because the group was full or closed.
    pub refused: Vec<String>,
    pub formed_at: Option<Ts>,
    /// Members who have used their unit, and in which transaction.
    pub used: Vec<(String, String)>,
}

/// Terminal: what one pull brought (0.2 with groups). `HubPullV2` is read as this with none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubPullV3 {
    pub cursor: u64,
    pub acked: u64,
    pub members: Vec<MemberSnapshotV2>,
    pub coupons: Vec<(String, CouponSnapshotV2)>,
    pub blocked_cards: Vec<String>,
    pub ruleset: Option<String>,
    pub groups: Vec<GroupSnapshot>,
}

/// A coupon as the hub knows it (0.2): and who issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponSnapshotV2 {
    pub type_id: String,
    pub member_id: String,
    pub issued: DayNo,
    pub valid_until: DayNo,
    pub used_by: Option<String>,
    pub issued_by: String,
}

impl From<HubPullV2> for HubPullV3 {
    fn from(p: HubPullV2) -> HubPullV3 {
        HubPullV3 {
            cursor: p.cursor,
            acked: p.acked,
            members: p.members,
            coupons: p
                .coupons
                .into_iter()
                .map(|(code, c)| {
                    let c = CouponSnapshotV2 {
                        type_id: c.type_id,
                        member_id: c.member_id,
                        issued: c.issued,
                        valid_until: c.valid_until,
                        used_by: c.used_by,
                        issued_by: "manual".to_string(),
                    };
                    (code, c)
                })
                .collect(),
            blocked_cards: p.blocked_cards,
            ruleset: p.ruleset,
            groups: vec![],
        }
    }
}

impl From<super::Checkout> for CheckoutV2 {
    fn from(c: super::Checkout) -> CheckoutV2 {
        CheckoutV2 {
            tx_id: c.tx_id,
            member_id: c.member_id,
            card: c.card,
            lines: c
                .lines
                .into_iter()
                .map(|l| PricedLineV2 {
                    line: l.line,
                    eligible: l.eligible,
                    d0: 0,
                    group_units: 0,
                    d1: l.d1,
                    d2: l.d2,
                    d3: l.d3,
                })
                .collect(),
            subtotal: c.subtotal,
            group_buy_discount: 0,
            tier_discount: c.tier_discount,
            promotion: c.promotion,
            coupon: c.coupon,
            due: c.due,
            points_redeemed: c.points_redeemed,
            redeem_value: c.redeem_value,
            total: c.total,
            base: c.base,
            points_earned: c.points_earned,
            lot_expires_at: c.lot_expires_at,
            tier_before: c.tier_before,
            tier_after: c.tier_after.clone(),
            visit: c.visit,
            pin_verified: c.pin_verified,
            ruleset_version: c.ruleset_version,
            group_buys: vec![],
            gifts: vec![],
            gift_points: 0,
            coupons_issued: vec![],
            tiers_reached: vec![c.tier_after],
        }
    }
}

impl From<CheckoutV2> for CheckoutV3 {
    fn from(c: CheckoutV2) -> CheckoutV3 {
        CheckoutV3 {
            tx_id: c.tx_id,
            member_id: c.member_id,
            card: c.card,
            lines: c.lines,
            subtotal: c.subtotal,
            group_buy_discount: c.group_buy_discount,
            tier_discount: c.tier_discount,
            promotion: c.promotion,
            coupon: c.coupon,
            due: c.due,
            points_redeemed: c.points_redeemed,
            redeem_value: c.redeem_value,
            total: c.total,
            base: c.base,
            points_earned: c.points_earned,
            lot_expires_at: c.lot_expires_at,
            tier_before: c.tier_before,
            tier_after: c.tier_after,
            visit: c.visit,
            pin_verified: c.pin_verified,
            ruleset_version: c.ruleset_version,
            group_buys: c.group_buys,
            gifts: c.gifts,
            gift_points: c.gift_points,
            coupons_issued: c.coupons_issued,
            tiers_reached: c.tiers_reached,
            campaigns: vec![],
        }
    }
}
