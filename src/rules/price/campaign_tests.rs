//! Pricing with rules.md 0.2: promotion kinds and scopes, tier gifts, group-buy units.
//! The worked examples are those of the shipped config's comments, computed by hand there
//! and repeated here; `campaigns()` is that config with its examples switched on.

use proptest::prelude::*;

use super::*;
use crate::model::{parse_instant, Lot, MemberState};
use crate::rules::ruleset::{Promotion, PromotionKind, Scope, Window};
use crate::rules::testing::{campaigns, example, example_with};

fn member(tier: &str) -> MemberState {
    MemberState {
        member_id: "m1".into(),
        name: "Ann".into(),
        phone: "1".into(),
        birthday: None,
        pin_hash: None,
        cards: vec![],
        created_at: 0,
        tier: tier.into(),
        lots: vec![],
        debt: 0,
        days: vec![],
        pin_failures: 0,
        pin_failed_at: 0,
        ..Default::default()
    }
}

fn line(sku: &str, category: &str, qty: i64, unit_price: i64) -> Line {
    Line {
        sku: sku.into(),
        category: category.into(),
        qty,
        unit_price,
    }
}

fn run(rules: &Ruleset, m: &MemberState, lines: &[Line], at: &str, facts: CampaignFacts) -> Result<Priced> {
    let req = Request {
        member: m,
        lines,
        coupon: None,
        redeem_points: 0,
        at: parse_instant(at).unwrap(),
        expiry_applies: true,
        offline_redeemed: None,
        pin_given: false,
        facts,
    };
    price(rules, &req, &mut || PinCheck::NotGiven)
}

fn sale(rules: &Ruleset, tier: &str, lines: &[Line], at: &str) -> Priced {
    run(rules, &member(tier), lines, at, CampaignFacts::default()).unwrap()
}

const NOV_24: &str = "2026-11-24T10:00:00+08:00"; // a Tuesday, before every100-10
const DEC_08: &str = "2026-12-08T10:00:00+08:00"; // a Tuesday inside every100-10, no weekend x2

fn col(p: &Priced, f: fn(&PricedLine) -> i64) -> Vec<i64> {
    p.lines.iter().map(f).collect()
}

#[test]
fn worked_example_1_is_unchanged_with_the_examples_on() {
    // m100-10: 12890 >= 10000 -> 1000; staples-15: rice 6900 < 8000 -> 0; fresh-12pct: no
    // produce -> 0; every100-10 starts in December.
    let lines = [
        line("rice", "grocery", 2, 3450),
        line("cigarettes", "tobacco", 1, 2500),
        line("oil", "grocery", 1, 5990),
    ];
    let p = sale(&campaigns(), "standard", &lines, NOV_24);
    assert_eq!(p.promotion, Some(("m100-10".into(), 1000)));
    assert_eq!(col(&p, |l| l.d2), [535, 0, 465]);
    assert_eq!((p.due, p.total, p.base, p.points_earned), (14390, 14390, 11890, 118));
    assert_eq!((p.group_buy_discount, p.gift_points), (0, 0));
    assert!(p.group_buys.is_empty() && p.gifts.is_empty());
}

#[test]
fn every_kind_takes_off_per_full_step_up_to_its_cap() {
    let rules = campaigns();
    // Base 24000: floor(24000 / 10000) x 1000 = 2000 beats m100-10's 1000.
    // 2000 x 15800 / 24000 = 1316.67 and 2000 x 8200 / 24000 = 683.33: floors 1316 + 683 =
    // 1999, the left-over unit to the larger remainder (16000 against 8000): 1317 / 683.
    let lines = [line("wok", "kitchen", 1, 15800), line("tea", "grocery", 2, 4100)];
    let p = sale(&rules, "standard", &lines, DEC_08);
    assert_eq!(p.promotion, Some(("every100-10".into(), 2000)));
    assert_eq!(col(&p, |l| l.d2), [1317, 683]);
    // 22000 x 1 x 10000^3 / (100 x 10000^4) = 220
    assert_eq!((p.due, p.total, p.base, p.points_earned), (22000, 22000, 22000, 220));
    // Six full steps are 6000, capped at max_off_minor 5000. Base 56000:
    // B = 50000 x 10000 + 6000 x 12000 = 572000000, points 572000000 / 10^6 = 572.
    let p = sale(&rules, "standard", &[line("tv", "electronics", 1, 61000)], DEC_08);
    assert_eq!(p.promotion, Some(("every100-10".into(), 5000)));
    assert_eq!((p.due, p.base, p.points_earned), (56000, 56000, 572));
    // Below one full step it is worth 0 and m100-10 has nothing either: none.
    let p = sale(&rules, "standard", &[line("tea", "grocery", 1, 9999)], DEC_08);
    assert_eq!(p.promotion, None);
}

#[test]
fn percent_kind_over_a_category_scope() {
    // fresh-12pct: produce 3750 + 1760 = 5510 >= 5000, floor(5510 x 1200 / 10000) =
    // floor(661.2) = 661; m100-10: 8010 < 10000 -> 0. Over produce only:
    // 661 x 3750 / 5510 = 449.86 (remainder 4760), 661 x 1760 / 5510 = 211.14 (750):
    // 449 + 211 = 660, the left-over unit to apples: 450 / 211; bread gets nothing.
    let lines = [
        line("apples", "produce", 3, 1250),
        line("cabbage", "produce", 2, 880),
        line("bread", "bakery", 1, 2500),
    ];
    let p = sale(&campaigns(), "standard", &lines, NOV_24);
    assert_eq!(p.promotion, Some(("fresh-12pct".into(), 661)));
    assert_eq!(col(&p, |l| l.d2), [450, 211, 0]);
    // 8010 - 661 = 7349; floor(7349 / 100) = 73 points.
    assert_eq!((p.subtotal, p.due, p.base, p.points_earned), (8010, 7349, 7349, 73));
    // Under its minimum (produce 4999) it is worth 0.
    let lines = [line("apples", "produce", 1, 4999), line("bread", "bakery", 1, 2500)];
    assert_eq!(sale(&campaigns(), "standard", &lines, NOV_24).promotion, None);
}

#[test]
fn threshold_over_a_sku_scope_after_the_tier_discount() {
    // Silver, 3 %: d1 = floor(6900 x 0.03) = 207, floor(1890 x 0.03) = floor(56.7) = 56,
    // floor(5990 x 0.03) = floor(179.7) = 179. staples-15's base: 6693 + 1834 = 8527 >= 8000
    // -> 1500; m100-10's base 14338 -> 1000. Over rice and flour: 1500 x 6693 / 8527 =
    // 1177.38 (remainder 3221), 1500 x 1834 / 8527 = 322.62 (5306): 1177 + 322 = 1499, the
    // left-over unit to flour: 1177 / 323; oil gets nothing.
    let lines = [
        line("rice", "grocery", 2, 3450),
        line("flour", "grocery", 1, 1890),
        line("oil", "grocery", 1, 5990),
    ];
    let p = sale(&campaigns(), "silver", &lines, NOV_24);
    assert_eq!(col(&p, |l| l.d1), [207, 56, 179]);
    assert_eq!(p.promotion, Some(("staples-15".into(), 1500)));
    assert_eq!(col(&p, |l| l.d2), [1177, 323, 0]);
    // 14780 - 442 - 1500 = 12838; floor(12838 x 12500 / 10^6) = floor(160.475) = 160.
    assert_eq!((p.due, p.base, p.points_earned), (12838, 12838, 160));
}

#[test]
fn promotion_values_are_capped_at_their_own_base_and_ties_go_to_the_smallest_id() {
    // Two scoped promotions worth more than their lines: each is capped at its own base,
    // so the one with the larger base wins although both say 5000 off.
    let rules = example_with(
        "[[promotions]]\nid = \"b-fruit\"\nmin_minor = 0\noff_minor = 5000\ncategories = [\"fruit\"]\n\
         [[promotions]]\nid = \"a-veg\"\nmin_minor = 0\noff_minor = 5000\ncategories = [\"veg\"]\n",
    );
    let lines = [line("pear", "fruit", 1, 800), line("leek", "veg", 1, 300)];
    let p = sale(&rules, "standard", &lines, NOV_24);
    assert_eq!(p.promotion, Some(("b-fruit".into(), 800)));
    assert_eq!(col(&p, |l| l.d2), [800, 0]);
    // Equal capped values: the smallest id.
    let lines = [line("pear", "fruit", 1, 300), line("leek", "veg", 1, 300)];
    let p = sale(&rules, "standard", &lines, NOV_24);
    assert_eq!(p.promotion, Some(("a-veg".into(), 300)));
    assert_eq!(col(&p, |l| l.d2), [0, 300]);
}

#[test]
fn no_promotion_when_every_value_is_zero() {
    // A promotion with min_minor = 0 on a sale with nothing eligible is worth 0: none is
    // recorded (0.1 recorded it with 0 off; the receipt's money is the same).
    let rules = example_with("[[promotions]]\nid = \"any\"\nmin_minor = 0\noff_minor = 5\n");
    let p = sale(&rules, "gold", &[line("cig", "tobacco", 1, 2500)], NOV_24);
    assert_eq!((p.promotion, p.due), (None, 2500));
}

#[test]
fn tier_gifts_of_every_tier_passed_once() {
    // 520000 of electronics: m100-10 1000 off, base 519000 >= 500000: gold after.
    // B = 50000 x 10000 + 469000 x 12000 = 6128000000, points 6128000000 / 10^6 = 6128.
    let rules = campaigns();
    let lines = [line("tv", "electronics", 1, 520000)];
    let m = member("standard");
    let p = run(&rules, &m, &lines, NOV_24, CampaignFacts::default()).unwrap();
    assert_eq!((p.base, p.points_earned, p.tier_after.as_str()), (519000, 6128, "gold"));
    assert_eq!(
        p.gifts,
        [
            TierGift {
                tier: "silver".into(),
                points: 100,
                coupon: None
            },
            TierGift {
                tier: "gold".into(),
                points: 500,
                coupon: Some("gold20".into())
            },
        ]
    );
    assert_eq!(p.gift_points, 600, "apart from the 6128 earned");
    // Silver reached before (and lost): only gold's gift.
    let reached = ["standard".to_string(), "silver".to_string()];
    let facts = CampaignFacts {
        tiers_reached: &reached,
        ..CampaignFacts::default()
    };
    let p = run(&rules, &m, &lines, NOV_24, facts).unwrap();
    assert_eq!((p.gifts.len(), p.gift_points), (1, 500));
    // The cap of a sale's points leaves gifts alone.
    let mut capped = rules.clone();
    capped.earn.max_points_per_tx = 10;
    let p = run(&capped, &m, &lines, NOV_24, CampaignFacts::default()).unwrap();
    assert_eq!((p.points_earned, p.gift_points), (10, 600));
    // No tier passed: no gift.
    let p = sale(&rules, "gold", &lines, NOV_24);
    assert!(p.gifts.is_empty() && p.gift_points == 0);
}

fn hotpot_unit() -> GroupBuyUnit {
    GroupBuyUnit {
        deal: "hotpot3".into(),
        sku: "hotpot-set".into(),
        group_price_minor: 9900,
    }
}

#[test]
fn a_group_buy_unit_leaves_e_while_the_rest_of_the_line_takes_the_tier_discount() {
    // Silver (3 %), 2026-12-08: one hotpot set at 9900 (2900 off), outside E; the other set
    // 12800 and the beer 4800 take the tier discount: 384 + 144 = 528. every100-10:
    // floor(17072 / 10000) x 1000 = 1000 ties m100-10 (1000); "every100-10" < "m100-10".
    // Over 12416 / 4656 (W 17072): 727.27 (remainder 4656) / 272.73 (12416): 727 / 273.
    let lines = [
        line("hotpot-set", "food", 2, 12800),
        line("beer", "alcohol", 6, 800),
        line("cigarettes", "tobacco", 1, 2500),
    ];
    let units = [hotpot_unit()];
    let facts = CampaignFacts {
        group_buy_units: &units,
        ..CampaignFacts::default()
    };
    let p = run(&campaigns(), &member("silver"), &lines, DEC_08, facts).unwrap();
    assert_eq!(col(&p, |l| l.d0), [2900, 0, 0]);
    assert_eq!(col(&p, |l| l.group_units), [1, 0, 0]);
    assert_eq!(col(&p, |l| l.d1), [384, 144, 0]);
    assert_eq!(p.promotion, Some(("every100-10".into(), 1000)));
    assert_eq!(col(&p, |l| l.d2), [727, 273, 0]);
    assert_eq!(
        p.group_buys,
        [GroupBuyUse {
            deal: "hotpot3".into(),
            unit: 0,
            line: 0,
            off: 2900
        }]
    );
    // 32900 - 2900 - 528 - 1000 = 28472, line by line 21589 + 4383 + 2500.
    assert_eq!((p.subtotal, p.group_buy_discount, p.tier_discount), (32900, 2900, 528));
    assert_eq!(col(&p, PricedLine::net), [21589, 4383, 2500]);
    assert_eq!((p.due, p.total), (28472, 28472));
    // The earn base and the tier metric: 11689 + 4383 = 16072, not the set at 9900.
    // floor(16072 x 12500 / 10^6) = floor(200.9) = 200.
    assert_eq!((p.base, p.points_earned), (16072, 200));
}

#[test]
fn group_buy_units_that_find_no_line_are_not_used() {
    let rules = campaigns();
    let units = [hotpot_unit()];
    let facts = CampaignFacts {
        group_buy_units: &units,
        ..CampaignFacts::default()
    };
    let m = member("standard");
    // At or under the group price: nothing off, the unit kept.
    for price in [9900, 500] {
        let p = run(&rules, &m, &[line("hotpot-set", "food", 1, price)], NOV_24, facts).unwrap();
        assert!(p.group_buys.is_empty() && p.group_buy_discount == 0, "{price}");
        assert_eq!(p.base, price);
    }
    // Another sku, or an excluded category.
    let p = run(&rules, &m, &[line("hotpot", "food", 1, 12800)], NOV_24, facts).unwrap();
    assert!(p.group_buys.is_empty());
    let p = run(&rules, &m, &[line("hotpot-set", "tobacco", 1, 12800)], NOV_24, facts).unwrap();
    assert!(p.group_buys.is_empty());
    assert_eq!(p.due, 12800);
}

#[test]
fn group_buy_units_line_by_line() {
    let rules = example();
    let m = member("gold");
    let two = [hotpot_unit(), hotpot_unit()];
    let facts = CampaignFacts {
        group_buy_units: &two,
        ..CampaignFacts::default()
    };
    // A line of one unit taken whole: nothing of it is in E, not even the tier discount.
    let p = run(&rules, &m, &[line("hotpot-set", "food", 1, 12800)], NOV_24, facts).unwrap();
    assert_eq!((p.lines[0].d0, p.lines[0].d1, p.due, p.base), (2900, 0, 9900, 0));
    assert_eq!(p.group_buys.len(), 1, "the second unit finds no unit left");
    // Two units on a line of three: two sets at 9900, one in E with 5 % off (640).
    let p = run(&rules, &m, &[line("hotpot-set", "food", 3, 12800)], NOV_24, facts).unwrap();
    assert_eq!((p.lines[0].group_units, p.lines[0].d0, p.lines[0].d1), (2, 5800, 640));
    assert_eq!(
        p.group_buys.iter().map(|g| (g.unit, g.line)).collect::<Vec<_>>(),
        [(0, 0), (1, 0)]
    );
    // m100-10 needs 10000 of E: 12160 qualifies. Due 38400 - 5800 - 640 - 1000 = 30960.
    assert_eq!((p.due, p.base), (30960, 11160));
    // The first line of the sku with a unit left takes the unit.
    let lines = [
        line("hotpot-set", "food", 1, 9000),
        line("hotpot-set", "food", 1, 12800),
    ];
    let p = run(&rules, &m, &lines, NOV_24, facts).unwrap();
    assert_eq!(col(&p, |l| l.group_units), [0, 1]);
    // A negative group price is a caller's mistake.
    let bad = [GroupBuyUnit {
        group_price_minor: -1,
        ..hotpot_unit()
    }];
    let facts = CampaignFacts {
        group_buy_units: &bad,
        ..CampaignFacts::default()
    };
    let e = run(&rules, &m, &[line("x", "y", 1, 1)], NOV_24, facts).unwrap_err();
    assert_eq!(e.code, Code::InvalidInput);
}

#[test]
fn a_coupon_and_points_after_a_group_buy_unit() {
    // The coupon's minimum spend is over E: a sale of one hotpot set at the group price
    // and 2000 of tea has 2000 of E, below welcome5's 3000.
    let rules = example();
    let m = member("standard");
    let units = [hotpot_unit()];
    let facts = CampaignFacts {
        group_buy_units: &units,
        ..CampaignFacts::default()
    };
    let lines = [line("hotpot-set", "food", 1, 12800), line("tea", "grocery", 1, 2000)];
    let coupon = CouponView {
        code: "C1".into(),
        type_id: "welcome5".into(),
        member_id: "m1".into(),
        issued: 0,
        valid_until: 100_000,
        used: false,
    };
    let mut req = Request {
        member: &m,
        lines: &lines,
        coupon: Some(("C1", Some(&coupon))),
        redeem_points: 0,
        at: parse_instant(NOV_24).unwrap(),
        expiry_applies: true,
        offline_redeemed: None,
        pin_given: false,
        facts,
    };
    let e = price(&rules, &req, &mut || PinCheck::NotGiven).unwrap_err();
    assert_eq!(e.code, Code::CouponMinSpend);
    // Points pay for the group-price unit like any other due amount: due 11900, half of it
    // 5950; 5000 points are worth 5000. base = 2000 - floor(5000 x 2000 / 11900) = 2000 - 840.
    let mut rich = m.clone();
    rich.lots = vec![Lot {
        points: 10_000,
        earned_at: 0,
        expires_at: None,
    }];
    req.member = &rich;
    req.coupon = None;
    req.redeem_points = 5000;
    let p = price(&rules, &req, &mut || PinCheck::Right).unwrap();
    assert_eq!((p.due, p.redeem_value, p.total, p.base), (11900, 5000, 6900, 1160));
}

// ---------------------------------------------------------------------------------------------
// Property: for random promotions (kinds, scopes), tiers and baskets with group-buy units,
// the priced lines add up, every discount stays within its scope and no line goes below 0.
// ---------------------------------------------------------------------------------------------

const SKUS: [&str; 4] = ["s0", "s1", "s2", "s3"];
const CATEGORIES: [&str; 3] = ["a", "b", "tobacco"];

fn names(all: &[&str], mask: u8) -> Vec<String> {
    all.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn promotion_strategy() -> impl Strategy<Value = Promotion> {
    (
        0u8..3,
        (
            0i64..30_000,
            1i64..6_000,
            1i64..20_000,
            prop::option::of(0i64..20_000),
            1i64..=10_000,
        ),
        0u8..3,
        1u8..8,
        0u8..4,
    )
        .prop_map(|(kind, (min, off, step, cap, bp), scope, mask, id)| Promotion {
            id: format!("p{id}"),
            window: Window {
                starts: None,
                ends: None,
                weekdays: vec![],
                tiers: vec![],
            },
            kind: match kind {
                0 => PromotionKind::Threshold {
                    min_minor: min,
                    off_minor: off,
                },
                1 => PromotionKind::Every {
                    min_minor: min / 3,
                    step_minor: step,
                    off_minor: off,
                    max_off_minor: cap.map(|c| c + off),
                },
                _ => PromotionKind::Percent {
                    min_minor: min,
                    off_bp: bp,
                },
            },
            // Scopes never name the excluded category, as validation guarantees.
            scope: match scope {
                0 => Scope::All,
                1 => Scope::Categories(names(&["a", "b", "c"], mask)),
                _ => Scope::Skus(names(&SKUS, mask)),
            },
        })
}

fn line_strategy() -> impl Strategy<Value = Line> {
    (0usize..4, 0usize..3, 1i64..5, 0i64..20_000).prop_map(|(s, c, qty, unit_price)| Line {
        sku: SKUS[s].into(),
        category: CATEGORIES[c].into(),
        qty,
        unit_price,
    })
}

fn unit_strategy() -> impl Strategy<Value = GroupBuyUnit> {
    (0usize..4, 0i64..15_000, 0u8..3).prop_map(|(s, group_price_minor, deal)| GroupBuyUnit {
        deal: format!("d{deal}"),
        sku: SKUS[s].into(),
        group_price_minor,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn priced_lines_add_up_within_their_scopes(
        promotions in prop::collection::vec(promotion_strategy(), 0..6),
        discounts in prop::collection::vec(0i64..=3000, 3),
        tier in 0usize..3,
        lines in prop::collection::vec(line_strategy(), 1..8),
        units in prop::collection::vec(unit_strategy(), 0..4),
        redeem_frac in 0i64..=100,
    ) {
        let mut rules = example();
        rules.promotions = promotions;
        // Ids are unique in a valid ruleset; the random prefix keeps tie order random.
        for (i, p) in rules.promotions.iter_mut().enumerate() {
            p.id = format!("{}-{i}", p.id);
        }
        for (t, d) in rules.tiers.iter_mut().zip(&discounts) {
            t.discount_bp = *d;
        }
        let mut m = member(&rules.tiers[tier].name.clone());
        m.lots = vec![Lot { points: 1_000_000, earned_at: 0, expires_at: None }];
        let facts = CampaignFacts { group_buy_units: &units, ..CampaignFacts::default() };
        let mut req = Request {
            member: &m,
            lines: &lines,
            coupon: None,
            redeem_points: 0,
            at: parse_instant(NOV_24).unwrap(),
            expiry_applies: true,
            offline_redeemed: None,
            pin_given: false,
            facts,
        };
        let quote = price(&rules, &req, &mut || PinCheck::Right).unwrap();
        // Then with some points, as many as the sale may take.
        let max = quote.max_redeem_points;
        if max > 0 {
            req.redeem_points = rules.redeem.min_points + (max - rules.redeem.min_points) * redeem_frac / 100;
        }
        let p = price(&rules, &req, &mut || PinCheck::Right).unwrap();
        let sum = |f: fn(&PricedLine) -> i64| p.lines.iter().map(f).sum::<i64>();
        let promo_off = p.promotion.as_ref().map_or(0, |x| x.1);
        prop_assert_eq!(p.subtotal, sum(PricedLine::gross));
        prop_assert_eq!(p.group_buy_discount, sum(|l| l.d0));
        prop_assert_eq!(p.tier_discount, sum(|l| l.d1));
        prop_assert_eq!(promo_off, sum(|l| l.d2));
        prop_assert_eq!(sum(|l| l.d3), 0);
        prop_assert_eq!(p.due, sum(PricedLine::net));
        prop_assert_eq!(p.subtotal - p.group_buy_discount - p.tier_discount - promo_off - p.redeem_value, p.total);
        prop_assert!(p.total >= 0 && p.base >= 0);
        // Group-buy units: outside E, each on a line of its sku that costs more.
        prop_assert_eq!(p.group_buy_discount, p.group_buys.iter().map(|g| g.off).sum::<i64>());
        for (i, l) in p.lines.iter().enumerate() {
            let on_line: Vec<_> = p.group_buys.iter().filter(|g| g.line == i).collect();
            prop_assert_eq!(l.group_units, on_line.len() as i64);
            prop_assert!(l.group_units <= l.line.qty);
            prop_assert!(l.group_units == 0 || l.eligible);
            for g in &on_line {
                let unit = &units[g.unit];
                prop_assert_eq!(&unit.sku, &l.line.sku);
                prop_assert_eq!(g.off, l.line.unit_price - unit.group_price_minor);
                prop_assert!(g.off > 0);
            }
            // The tier discount is of the E part only.
            let e_gross = if l.eligible { (l.line.qty - l.group_units) * l.line.unit_price } else { 0 };
            prop_assert_eq!(l.d1, (e_gross as i128 * rules.tiers[tier].discount_bp as i128 / 10_000) as i64);
            prop_assert!(l.net() >= 0 && l.net_e() >= 0);
            prop_assert!(l.eligible || l.d1 + l.d2 + l.d3 == 0);
        }
        // A unit not used found no line it could take.
        for (u, unit) in units.iter().enumerate() {
            if p.group_buys.iter().all(|g| g.unit != u) {
                for l in &p.lines {
                    let could = l.eligible && l.line.sku == unit.sku && l.line.unit_price > unit.group_price_minor;
                    prop_assert!(!could || l.group_units == l.line.qty);
                }
            }
        }
        // The earn base is the E part's net less its share of the redemption.
        let net_e = sum(PricedLine::net_e);
        let share = if p.due == 0 { 0 } else { (p.redeem_value as i128 * net_e as i128 / p.due as i128) as i64 };
        prop_assert_eq!(p.base, net_e - share);
        // The promotion: the largest value of those open (ties to the smallest id), each on
        // its own base, allocated within its scope.
        let base_of = |scope: &Scope| -> i64 {
            p.lines.iter()
                .filter(|l| scope.covers(&l.line.sku, &l.line.category))
                .map(|l| l.net_e() + l.d2)
                .sum()
        };
        let best = rules.promotions.iter()
            .map(|pr| (pr, crate::rules::promo::value(&pr.kind, base_of(&pr.scope))))
            .filter(|(_, v)| *v > 0)
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.id.cmp(&a.0.id)));
        prop_assert_eq!(p.promotion.clone(), best.map(|(pr, v)| (pr.id.clone(), v)));
        if let Some((pr, _)) = best {
            for l in &p.lines {
                prop_assert!(l.d2 == 0 || (l.eligible && pr.scope.covers(&l.line.sku, &l.line.category)));
            }
        }
    }
}

#[test]
fn each_earn_campaign_gets_the_points_it_added_and_the_cap_takes_from_the_last() {
    let extra = "[[campaigns]]\nid = \"bonus5\"\nbonus_points = 5\n\
                 [[campaigns]]\nid = \"x15\"\nmultiplier_bp = 15000\n";
    let mut rules = example_with(extra);
    let lines = [line("rice", "grocery", 1, 10000)];
    // Saturday: weekend-x2 (the largest multiplier) doubles the 90 points of the 90.00
    // paid after m100-10; bonus5 adds its 5; x15 adds nothing (not the multiplier).
    let sat = "2026-12-05T11:00:00+08:00";
    let p = sale(&rules, "standard", &lines, sat);
    assert_eq!(p.points_earned, 185);
    assert_eq!(
        p.campaign_points,
        [("weekend-x2".to_string(), 90), ("bonus5".to_string(), 5)]
    );
    // A Tuesday: x15 is the multiplier (135 - 90), bonus5 its 5.
    let p = sale(&rules, "standard", &lines, DEC_08);
    assert_eq!(p.points_earned, 140);
    assert_eq!(p.campaign_points, [("bonus5".to_string(), 5), ("x15".to_string(), 45)]);
    // A cap of 150 leaves the campaigns 60 of their 95: the last gives up its share first.
    rules.earn.max_points_per_tx = 150;
    let p = sale(&rules, "standard", &lines, sat);
    assert_eq!(p.points_earned, 150);
    assert_eq!(
        p.campaign_points,
        [("weekend-x2".to_string(), 60), ("bonus5".to_string(), 0)]
    );
    // Below the base rate's own cap the campaigns made nothing.
    rules.earn.max_points_per_tx = 80;
    let p = sale(&rules, "standard", &lines, sat);
    assert_eq!(
        p.campaign_points,
        [("weekend-x2".to_string(), 0), ("bonus5".to_string(), 0)]
    );
    // No campaign active: none listed.
    let p = sale(&example(), "standard", &lines, NOV_24);
    assert!(p.campaign_points.is_empty(), "{:?}", p.campaign_points);
}
