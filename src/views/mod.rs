//! The JSON shapes of interface.md, built from stored state.
//!
//! Names here are a contract with POS integrations and scripts: add fields, rename none.

pub mod campaign;
pub mod history;
pub mod schema;

use serde::Serialize;
use utoipa::openapi::schema::Object;
use utoipa::ToSchema;

use crate::model::{self, fmt_instant, CardStatus, DayNo, MemberState, Ts};
use crate::record;
use crate::rules::{tier, Ruleset};
use crate::store::Daily;

const MEMBER_ACTIVE: &str = "active";
const MEMBER_INACTIVE: &str = "inactive";
const MEMBER_MERGED: &str = "merged";
const DISCOUNT_TIER: &str = "tier";
const DISCOUNT_PROMOTION: &str = "promotion";
const DISCOUNT_COUPON: &str = "coupon";
const DISCOUNT_GROUP_BUY: &str = "group_buy";

fn card_status_schema() -> Object {
    schema::string_enum([CardStatus::Active, CardStatus::Blocked].map(CardStatus::as_str))
}

fn member_status_schema() -> Object {
    schema::string_enum([MEMBER_ACTIVE, MEMBER_INACTIVE, MEMBER_MERGED])
}

fn discount_kind_schema() -> Object {
    schema::string_enum([DISCOUNT_GROUP_BUY, DISCOUNT_TIER, DISCOUNT_PROMOTION, DISCOUNT_COUPON])
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Card)]
pub struct CardView {
    pub card: String,
    #[schema(schema_with = card_status_schema)]
    pub status: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Lot)]
pub struct LotView {
    pub points: i64,
    #[schema(format = DateTime)]
    pub earned_at: String,
    #[schema(format = DateTime, required = true)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Member)]
pub struct MemberView {
    pub member_id: String,
    pub name: String,
    /// Canonical, with its country code (`+8613800000001`); null for a member whose phone
    /// an operator gave to another (a conflict resolved).
    #[schema(examples("+8613800000001"), required = true)]
    pub phone: Option<String>,
    #[schema(pattern = "^[0-9]{2}-[0-9]{2}$", required = true)]
    pub birthday: Option<String>,
    pub cards: Vec<CardView>,
    pub tier: String,
    pub qualifying: i64,
    pub balance: i64,
    pub lots: Vec<LotView>,
    /// `active`, `inactive`, or `merged` (then `merged_into` names the member).
    #[schema(schema_with = member_status_schema)]
    pub status: &'static str,
    pub tags: Vec<String>,
    #[schema(format = DateTime)]
    pub enrolled_at: String,
    /// The terminal that enrolled the member ("" for members enrolled before 0.2).
    pub enrolled_by: String,
    pub visits: u64,
    #[schema(format = DateTime, required = true)]
    pub last_visit_at: Option<String>,
    /// The member this one was merged into; only on a merged member.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub merged_into: Option<String>,
}

impl MemberView {
    /// The member as seen at `at`. Lots already gone at `at` are left out when expiry
    /// applies (trusted clock); a debt shows as one negative lot so that the lots always
    /// add up to the balance.
    pub fn new(rules: &Ruleset, m: &MemberState, at: Ts, expiry_applies: bool) -> MemberView {
        let day = crate::model::day_no(crate::rules::local_date(rules, at));
        let tz = &rules.timezone;
        let mut lots: Vec<LotView> = m
            .lots
            .iter()
            .filter(|l| !expiry_applies || l.alive_at(at))
            .map(|l| LotView {
                points: l.points,
                earned_at: fmt_instant(l.earned_at, tz),
                expires_at: l.expires_at.map(|e| fmt_instant(e, tz)),
            })
            .collect();
        if m.debt > 0 {
            lots.push(LotView {
                points: -m.debt,
                earned_at: fmt_instant(m.created_at, tz),
                expires_at: None,
            });
        }
        MemberView {
            member_id: m.member_id.clone(),
            name: m.name.clone(),
            phone: (!m.phone.is_empty()).then(|| crate::identity::display_phone(&m.phone)),
            birthday: m.birthday.map(|b| b.to_string()),
            cards: m
                .cards
                .iter()
                .map(|(c, s)| CardView {
                    card: c.clone(),
                    status: s.as_str(),
                })
                .collect(),
            tier: rules.tiers[tier::current(rules, m, day)].name.clone(),
            qualifying: tier::metric(rules, &m.days, day),
            balance: m.balance_at(at, expiry_applies),
            lots,
            status: match (&m.merged_into, m.active) {
                (Some(_), _) => MEMBER_MERGED,
                (None, true) => MEMBER_ACTIVE,
                (None, false) => MEMBER_INACTIVE,
            },
            tags: m.tags.clone(),
            enrolled_at: fmt_instant(m.created_at, tz),
            enrolled_by: m.enrolled_by.clone(),
            visits: m.visits,
            last_visit_at: m.last_visit_at.map(|t| fmt_instant(t, tz)),
            merged_into: m.merged_into.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = PricedLine)]
pub struct LineView {
    pub sku: String,
    pub category: String,
    pub qty: i64,
    pub unit_price: i64,
    pub net: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Discount)]
pub struct DiscountView {
    #[schema(schema_with = discount_kind_schema)]
    pub kind: &'static str,
    pub id: String,
    pub amount: i64,
}

/// A receipt; a quote has the same fields without `tx_id`, plus `max_redeem_points`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct Receipt {
    /// On a checkout, never on a quote.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tx_id: Option<String>,
    pub member_id: String,
    pub card: String,
    #[schema(format = DateTime)]
    pub at: String,
    pub lines: Vec<LineView>,
    pub subtotal: i64,
    pub discounts: Vec<DiscountView>,
    pub due: i64,
    pub points_redeemed: i64,
    pub redeem_value: i64,
    pub total: i64,
    pub points_earned: i64,
    pub balance: i64,
    pub tier_before: String,
    pub tier: String,
    pub replayed: bool,
    /// On a quote, never on a checkout.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub max_redeem_points: Option<i64>,
    /// Coupons this checkout issued (tier gifts, triggers); empty otherwise.
    pub coupons_issued: Vec<CouponView>,
    /// Points the tiers this checkout reached gave (a lot of their own, not earned);
    /// absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub gifts: Vec<GiftView>,
}

/// The receipt's discounts in the order they apply: group-buy units (one entry per deal),
/// the tier, the promotion, the coupon; only those that took something off.
pub fn discounts(
    group_buys: &[record::GroupBuyUsed],
    tier_name: &str,
    tier_discount: i64,
    promotion: &Option<(String, i64)>,
    coupon: &Option<(String, i64)>,
) -> Vec<DiscountView> {
    let mut out: Vec<DiscountView> = Vec::new();
    for g in group_buys.iter().filter(|g| g.off > 0) {
        match out.iter_mut().find(|d| d.id == g.deal) {
            Some(d) => d.amount += g.off,
            None => out.push(DiscountView {
                kind: DISCOUNT_GROUP_BUY,
                id: g.deal.clone(),
                amount: g.off,
            }),
        }
    }
    if tier_discount > 0 {
        out.push(DiscountView {
            kind: DISCOUNT_TIER,
            id: tier_name.to_string(),
            amount: tier_discount,
        });
    }
    for (kind, d) in [(DISCOUNT_PROMOTION, promotion), (DISCOUNT_COUPON, coupon)] {
        if let Some((id, amount)) = d {
            if *amount > 0 {
                out.push(DiscountView {
                    kind,
                    id: id.clone(),
                    amount: *amount,
                });
            }
        }
    }
    out
}

pub fn lines(lines: &[record::PricedLineV2]) -> Vec<LineView> {
    lines
        .iter()
        .map(|l| LineView {
            sku: l.line.sku.clone(),
            category: l.line.category.clone(),
            qty: l.line.qty,
            unit_price: l.line.unit_price,
            net: l.net(),
        })
        .collect()
}

impl Receipt {
    /// The receipt of checkout `c` made at `at`, with the member's balance after it.
    pub fn of_checkout(rules: &Ruleset, c: &record::CheckoutV3, at: Ts, balance: i64, replayed: bool) -> Receipt {
        Receipt {
            tx_id: Some(c.tx_id.clone()),
            member_id: c.member_id.clone(),
            card: c.card.clone(),
            at: fmt_instant(at, &rules.timezone),
            lines: lines(&c.lines),
            subtotal: c.subtotal,
            discounts: discounts(&c.group_buys, &c.tier_before, c.tier_discount, &c.promotion, &c.coupon),
            due: c.due,
            points_redeemed: c.points_redeemed,
            redeem_value: c.redeem_value,
            total: c.total,
            points_earned: c.points_earned,
            balance,
            tier_before: c.tier_before.clone(),
            tier: c.tier_after.clone(),
            replayed,
            max_redeem_points: None,
            coupons_issued: c
                .coupons_issued
                .iter()
                .map(|i| CouponView {
                    code: i.code.clone(),
                    type_id: i.type_id.clone(),
                    valid_until: model::day_date(i.valid_until).to_string(),
                })
                .collect(),
            gifts: c
                .gifts
                .iter()
                .map(|g| GiftView {
                    tier: g.tier.clone(),
                    points: g.points,
                })
                .collect(),
        }
    }
}

/// A tier's gift of points in a receipt (its coupon is in `coupons_issued`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Gift)]
pub struct GiftView {
    pub tier: String,
    pub points: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Refund)]
pub struct RefundView {
    pub refund_id: String,
    pub tx_id: String,
    pub amount: i64,
    pub points_clawed_back: i64,
    pub points_returned: i64,
    pub balance: i64,
    pub tier: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Coupon)]
pub struct CouponView {
    pub code: String,
    #[serde(rename = "type")]
    pub type_id: String,
    #[schema(format = Date)]
    pub valid_until: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = RewardRedemption)]
pub struct RewardView {
    pub redemption_id: String,
    pub member_id: String,
    pub sku: String,
    pub points: i64,
    pub balance: i64,
    pub stock_left: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = DailyReport)]
pub struct DailyView {
    #[schema(format = Date)]
    pub date: String,
    pub currency: String,
    #[serde(flatten)]
    pub totals: Daily,
}

impl DailyView {
    pub fn new(rules: &Ruleset, day: DayNo, totals: Daily) -> DailyView {
        DailyView {
            date: crate::model::day_date(day).to_string(),
            currency: rules.currency.clone(),
            totals,
        }
    }
}

/// Minor units as a human amount ("153.90 CNY"); currencies without minor units print
/// whole. Only for human output: JSON carries the integer.
pub fn money(minor: i64, currency: &str) -> String {
    const WHOLE: [&str; 6] = ["JPY", "KRW", "VND", "CLP", "ISK", "UGX"];
    if WHOLE.contains(&currency) {
        return format!("{minor} {currency}");
    }
    let sign = if minor < 0 { "-" } else { "" };
    let a = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", a / 100, a % 100)
}
