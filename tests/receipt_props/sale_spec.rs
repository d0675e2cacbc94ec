//! The random sale: basket, member, coupon, redemption, PIN, group-buy units.

use super::*;

#[derive(Debug, Clone)]
pub enum RedeemChoice {
    None,
    Min,
    /// A share of the balance, in percent (up to 120 %).
    OfBalance(i64),
    /// As many as the quote says the sale may take, or one more.
    Max,
    MaxPlusOne,
    Huge,
}

#[derive(Debug, Clone)]
pub enum CouponChoice {
    None,
    /// A code the store does not know.
    Missing,
    Found {
        own: bool,
        /// None: a type the ruleset does not have.
        type_idx: Option<usize>,
        used: bool,
        /// 0: valid today, 1: issued tomorrow, 2: expired yesterday.
        dates: u8,
    },
}

#[derive(Debug, Clone)]
pub struct SaleSpec {
    pub instant: usize,
    pub lines: Vec<(usize, usize, i64, i64)>,
    pub tier: usize,
    /// (days ago, spend, points, visits, activities).
    pub days: Vec<(i32, i64, i64, i64, i64)>,
    /// (points, 0 never expires / 1 expired / 2 expires later).
    pub lots: Vec<(i64, u8)>,
    pub debt: i64,
    /// 0 none, 1 today, 2 this month but not today, 3 another month.
    pub birthday: u8,
    /// 0 not given, 1 given but the member has none, 2 right, 3 wrong.
    pub pin: u8,
    pub pin_locked: bool,
    pub redeem: RedeemChoice,
    pub coupon: CouponChoice,
    pub offline_redeemed: Option<i64>,
    pub expiry_applies: bool,
    /// Indices into the deals (modulo their count): the member's group-buy units, in order.
    pub units: Vec<usize>,
    /// A mask over the tiers reached before.
    pub reached: u8,
}

pub fn sale_spec() -> impl Strategy<Value = SaleSpec> {
    let qty = prop_oneof![12 => 1i64..5, 1 => 1i64..=MAX_QTY, 1 => Just(MAX_QTY)];
    let price = prop_oneof![1 => Just(0i64), 12 => 1i64..20_000, 1 => 0i64..=MAX_UNIT_PRICE, 1 => Just(MAX_UNIT_PRICE)];
    let line = (0..SKUS.len(), 0..CATEGORIES.len(), qty, price);
    let day = (0i32..800, 0i64..300_000, 0i64..5_000, 0i64..10, 0i64..5);
    let lot = (prop_oneof![10 => 0i64..100_000, 1 => 0i64..=MAX_POINTS_INPUT], 0u8..3);
    // Mostly requests the rules accept, so that most cases price a sale.
    let redeem = prop_oneof![
        12 => Just(RedeemChoice::None),
        2 => Just(RedeemChoice::Min),
        3 => (0i64..=120).prop_map(RedeemChoice::OfBalance),
        10 => Just(RedeemChoice::Max),
        1 => Just(RedeemChoice::MaxPlusOne),
        1 => Just(RedeemChoice::Huge),
    ];
    let coupon = prop_oneof![
        10 => Just(CouponChoice::None),
        1 => Just(CouponChoice::Missing),
        10 => (
            prop::bool::weighted(0.97),
            prop::option::weighted(0.97, 0usize..4),
            prop::bool::weighted(0.03),
            prop_oneof![30 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        )
            .prop_map(|(own, type_idx, used, dates)| CouponChoice::Found { own, type_idx, used, dates }),
    ];
    (
        (0..INSTANTS.len(), prop::collection::vec(line, 1..8)),
        (0usize..4, prop::collection::vec(day, 0..4)),
        (
            prop::collection::vec(lot, 0..3),
            prop_oneof![4 => Just(0i64), 1 => 0i64..1000],
        ),
        (
            0u8..4,
            prop_oneof![12 => Just(0u8), 2 => Just(1u8), 6 => Just(2u8), 1 => Just(3u8)],
            prop::bool::weighted(0.03),
        ),
        redeem,
        coupon,
        prop_oneof![3 => Just(None), 1 => (0i64..12_000).prop_map(Some)],
        prop::bool::weighted(0.9),
        prop::collection::vec(0usize..8, 0..5),
        0u8..16,
    )
        .prop_map(
            |(
                (instant, lines),
                (tier, days),
                (lots, debt),
                (birthday, pin, pin_locked),
                redeem,
                coupon,
                offline_redeemed,
                expiry_applies,
                units,
                reached,
            )| {
                SaleSpec {
                    instant,
                    lines,
                    tier,
                    days,
                    lots,
                    debt,
                    birthday,
                    pin,
                    pin_locked,
                    redeem,
                    coupon,
                    offline_redeemed,
                    expiry_applies,
                    units,
                    reached,
                }
            },
        )
}

/// The lines, fitted inside the model's bounds (a larger sale is refused before pricing).
pub fn basket(spec: &SaleSpec) -> Vec<Line> {
    let mut lines: Vec<Line> = spec
        .lines
        .iter()
        .map(|&(s, c, qty, unit_price)| Line {
            sku: SKUS[s].into(),
            category: CATEGORIES[c].into(),
            qty,
            unit_price,
        })
        .collect();
    while lines.iter().map(Line::amount).sum::<i64>() > MAX_SUBTOTAL {
        let big = (0..lines.len()).max_by_key(|&i| lines[i].amount()).unwrap();
        lines[big].qty = (lines[big].qty / 2).max(1);
    }
    validate_lines(&lines).expect("a basket within the bounds");
    lines
}

pub fn member_of(spec: &RulesSpec, sale: &SaleSpec, at: i64, local: NaiveDateTime) -> MemberState {
    let today = day_no(local.date());
    let hour = 3_600_000_000i64;
    let birthday = match sale.birthday {
        1 => Some((local.month(), local.day())),
        2 => Some((local.month(), if local.day() == 15 { 16 } else { 15 })),
        3 => Some((local.month() % 12 + 1, 10)),
        _ => None,
    };
    MemberState {
        member_id: "m1".into(),
        name: "Ann".into(),
        phone: "+8613800000000".into(),
        birthday: birthday.map(|(month, day)| Birthday {
            month: month as u8,
            day: day as u8,
        }),
        tier: TIER_NAMES[sale.tier % spec.tiers.len()].into(),
        lots: sale
            .lots
            .iter()
            .map(|&(points, expiry)| Lot {
                points,
                earned_at: at - 1000 * hour,
                expires_at: match expiry {
                    1 => Some(at - hour),
                    2 => Some(at + hour),
                    _ => None,
                },
            })
            .collect(),
        debt: sale.debt,
        days: sale
            .days
            .iter()
            .map(|&(ago, spend, points, visits, activities)| DayBucket {
                day: today - ago,
                spend,
                points,
                visits,
                activities,
            })
            .collect(),
        pin_failures: if sale.pin_locked { 5 } else { 0 },
        pin_failed_at: at - 1,
        active: true,
        ..MemberState::default()
    }
}
