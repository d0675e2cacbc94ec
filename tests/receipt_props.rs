//! Receipts add up, for random rulesets and baskets (issue 16, "Exactness").
//!
//! Each case writes a ruleset as TOML text (tiers, earn brackets, every promotion kind with
//! scopes by category or sku, campaigns, coupon types of both value kinds, excluded
//! categories, group-buy deals, now and then a deliberate mistake) and loads it through
//! `Ruleset::parse`, which must refuse it exactly when it holds a mistake. A random basket
//! is then priced by the pure `rules::price` and checked against a model of rules.md
//! written here from the text: every figure of an accepted sale, and for a refusal that
//! its code is one the rules give for a condition that holds.
//!
//! `PROPTEST_CASES` overrides the case count (default 2000: about 3 s in a debug build).

use chrono::{Datelike, NaiveDateTime, Timelike};
use loyaltyd::model::{
    day_no, parse_instant, validate_lines, Birthday, DayBucket, DayNo, Line, Lot, MemberState, MAX_POINTS_INPUT,
    MAX_QTY, MAX_SUBTOTAL, MAX_UNIT_PRICE,
};
use loyaltyd::rules::{self, tier, CampaignFacts, CouponView, GroupBuyUnit, PinCheck, Priced, Request, Ruleset};
use loyaltyd::Code;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

#[path = "receipt_props/model.rs"]
mod model;
#[path = "receipt_props/rules_spec.rs"]
mod rules_spec;
#[path = "receipt_props/sale_spec.rs"]
mod sale_spec;

use model::*;
use rules_spec::*;
use sale_spec::*;

const BP: i128 = 10_000;

/// The refusals the rules give a checkout; a fault is never one of them.
const BUSINESS_REFUSALS: [Code; 12] = [
    Code::InsufficientPoints,
    Code::BelowMinRedeem,
    Code::RedeemExceedsShare,
    Code::PinRequired,
    Code::PinInvalid,
    Code::PinLocked,
    Code::OfflineCapExceeded,
    Code::CouponInvalid,
    Code::CouponUsed,
    Code::CouponExpired,
    Code::CouponMinSpend,
    // Only for a sale too large to price (the model says when).
    Code::InvalidInput,
];

/// Loads the ruleset, prices one sale and checks it against the model.
fn check(spec: &RulesSpec, sale: &SaleSpec) -> Result<(), TestCaseError> {
    let at = parse_instant(INSTANTS[sale.instant]).unwrap();
    let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
    let local_exact = loyaltyd::model::ts_to(at).with_timezone(&tz).naive_local();
    let local = local_exact.with_nanosecond(0).unwrap();
    let text = spec.toml(local);
    let rules = match (Ruleset::parse(&text, "random.toml"), spec.first_mistake()) {
        (Ok(r), None) => r,
        (Err(e), Some(field)) => {
            prop_assert!(
                e.field.starts_with(&field),
                "refused at {} for {}, want {}\n{}",
                e.field,
                e.reason,
                field,
                text
            );
            return Ok(());
        }
        (Ok(_), Some(field)) => return Err(TestCaseError::fail(format!("accepted a mistake at {field}:\n{text}"))),
        (Err(e), None) => return Err(TestCaseError::fail(format!("refused a good ruleset: {e}\n{text}"))),
    };
    let day = day_no(local.date());
    let lines = basket(sale);
    let member = member_of(spec, sale, at, local);
    let units: Vec<GroupBuyUnit> = match spec.deals.len() {
        0 => vec![],
        n => sale
            .units
            .iter()
            .map(|&u| GroupBuyUnit {
                deal: format!("deal{}", u % n),
                sku: spec.deals[u % n].sku().into(),
                group_price_minor: spec.deals[u % n].group_price_minor,
            })
            .collect(),
    };
    let reached: Vec<String> = (0..spec.tiers.len())
        .filter(|i| sale.reached & (1 << i) != 0)
        .map(|i| TIER_NAMES[i].to_string())
        .collect();
    let view = match sale.coupon {
        CouponChoice::Found {
            own,
            type_idx,
            used,
            dates,
        } => Some(CouponView {
            code: "CPN1".into(),
            type_id: match type_idx {
                Some(i) => format!("c{}", i % spec.coupons.len()),
                None => "gone".into(),
            },
            member_id: if own { "m1" } else { "m2" }.into(),
            issued: if dates == 1 { day + 1 } else { day - 3 },
            valid_until: if dates == 2 { day - 1 } else { day + 26 },
            used,
        }),
        _ => None,
    };
    let coupon = match sale.coupon {
        CouponChoice::None => None,
        _ => Some(("CPN1", view.as_ref())),
    };
    let pin = match sale.pin {
        0 => PinCheck::NotGiven,
        1 => PinCheck::NoPinSet,
        2 => PinCheck::Right,
        _ => PinCheck::Wrong,
    };
    let mut req = Request {
        member: &member,
        lines: &lines,
        coupon,
        redeem_points: 0,
        at,
        expiry_applies: sale.expiry_applies,
        offline_redeemed: sale.offline_redeemed,
        pin_given: sale.pin != 0,
        facts: CampaignFacts {
            group_buy_units: &units,
            tiers_reached: &reached,
        },
    };
    // A quote without points first: the redemption may then be what it says is the most.
    let quote = rules::price(&rules, &req, &mut || pin);
    let max = quote.as_ref().map_or(0, |q| q.max_redeem_points);
    let balance = member.balance_at(at, sale.expiry_applies).max(0);
    req.redeem_points = match sale.redeem {
        RedeemChoice::None => 0,
        RedeemChoice::Min => rules.redeem.min_points,
        RedeemChoice::OfBalance(pct) => (balance as i128 * pct as i128 / 100) as i64,
        RedeemChoice::Max => max,
        RedeemChoice::MaxPlusOne => max + 1,
        RedeemChoice::Huge => MAX_POINTS_INPUT,
    };
    let tier_idx = tier::current(&rules, &member, day);
    let case = Case {
        spec,
        rules: &rules,
        sale,
        lines: &lines,
        member: &member,
        units: &units,
        coupon,
        at,
        local,
        day,
        redeem_points: req.redeem_points,
    };
    let x = case.model(tier_idx);
    if let Ok(q) = &quote {
        prop_assert_eq!(q.max_redeem_points, x.max_redeem, "the most points the sale may take");
    }
    let got = rules::price(&rules, &req, &mut || pin);
    let p = match got {
        Err(e) => {
            prop_assert!(
                BUSINESS_REFUSALS.contains(&e.code),
                "refused with {:?}: {}",
                e.code,
                e.message
            );
            prop_assert!(
                x.refusals.contains(&e.code),
                "refused with {:?} ({}) but the model holds only {:?}",
                e.code,
                e.message,
                x.refusals
            );
            return Ok(());
        }
        Ok(p) => p,
    };
    prop_assert!(
        x.refusals.is_empty(),
        "priced a sale the model refuses with {:?}",
        x.refusals
    );
    check_priced(&case, &x, &p, tier_idx)
}

fn check_priced(case: &Case, x: &Expected, p: &Priced, tier_idx: usize) -> Result<(), TestCaseError> {
    let spec = case.spec;
    let col = |f: fn(&rules::PricedLine) -> i64| p.lines.iter().map(f).collect::<Vec<_>>();
    let sum = |f: fn(&rules::PricedLine) -> i64| p.lines.iter().map(f).sum::<i64>();
    let promo_off = p.promotion.as_ref().map_or(0, |x| x.1);
    let coupon_off = p.coupon.as_ref().map_or(0, |x| x.1);

    // The receipt adds up.
    prop_assert_eq!(p.subtotal, case.lines.iter().map(Line::amount).sum::<i64>());
    prop_assert_eq!(
        p.subtotal - p.group_buy_discount - p.tier_discount - promo_off - coupon_off,
        p.due
    );
    prop_assert_eq!(p.due - p.redeem_value, p.total);
    prop_assert_eq!(p.due, sum(rules::PricedLine::net));
    prop_assert_eq!(p.group_buy_discount, sum(|l| l.d0));
    prop_assert_eq!(p.tier_discount, sum(|l| l.d1));
    prop_assert_eq!(promo_off, sum(|l| l.d2), "the d2 add up to the promotion");
    prop_assert_eq!(coupon_off, sum(|l| l.d3), "the d3 add up to the coupon");
    for l in &p.lines {
        prop_assert!(l.net() >= 0, "a line below zero: {:?}", l);
        // Group-buy units take no d1, d2 or d3: those stay within the E part.
        prop_assert!(
            l.d1 + l.d2 + l.d3 <= l.gross_e(),
            "discounts beyond the E part: {:?}",
            l
        );
        prop_assert!(
            l.eligible || l.d0 + l.d1 + l.d2 + l.d3 == 0,
            "a discount on an excluded line: {:?}",
            l
        );
    }

    // Each step as the model has it.
    prop_assert_eq!(&p.tier_before, TIER_NAMES[tier_idx]);
    prop_assert_eq!(col(|l| l.group_units), x.group_units.clone());
    prop_assert_eq!(
        col(|l| l.d0),
        x.d0.clone(),
        "d0 only on a unit's line, unit_price - group_price each"
    );
    let uses: Vec<(usize, usize, i64)> = p.group_buys.iter().map(|g| (g.unit, g.line, g.off)).collect();
    prop_assert_eq!(&uses, &x.uses);
    for g in &p.group_buys {
        prop_assert_eq!(&g.deal, &case.units[g.unit].deal);
        prop_assert!(g.off > 0);
    }
    prop_assert_eq!(col(|l| l.d1), x.d1.clone());
    prop_assert_eq!(
        p.promotion.clone(),
        x.promotion.as_ref().map(|(id, v, _)| (id.clone(), *v)),
        "the best promotion"
    );
    match &x.promotion {
        None => prop_assert!(p.lines.iter().all(|l| l.d2 == 0)),
        Some((_, off, k)) => {
            let scope = &spec.promotions[*k].scope;
            let weights: Vec<i64> = (0..p.lines.len())
                .map(|i| {
                    if scope.covers(case.lines.get(i).unwrap()) {
                        x.w2[i]
                    } else {
                        0
                    }
                })
                .collect();
            for (l, w) in p.lines.iter().zip(&weights) {
                prop_assert!(*w > 0 || l.d2 == 0, "d2 outside the promotion's scope: {:?}", l);
            }
            check_allocation("promotion", *off, &weights, &col(|l| l.d2))?;
        }
    }
    let w3: Vec<i64> = (0..p.lines.len()).map(|i| x.w2[i] - p.lines[i].d2).collect();
    match &p.coupon {
        None => prop_assert!(case.coupon.is_none()),
        Some((code, off)) => {
            prop_assert_eq!(code.as_str(), "CPN1");
            prop_assert_eq!(*off, x.coupon_value);
            check_allocation("coupon", *off, &w3, &col(|l| l.d3))?;
        }
    }
    prop_assert_eq!(p.due, x.due);
    prop_assert_eq!(
        (p.points_redeemed, p.redeem_value),
        (case.redeem_points, x.redeem_value)
    );
    prop_assert_eq!(p.total, x.total);
    prop_assert_eq!(p.base, x.base);
    // Group-buy units are outside the earn base.
    prop_assert!(
        p.base >= 0 && p.base <= sum(rules::PricedLine::net_e),
        "base {} beyond E",
        p.base
    );
    prop_assert_eq!(p.points_earned, x.points);
    prop_assert!(p.points_earned >= 0);
    prop_assert_eq!(p.visit, p.total > 0);

    // Gifts: the tiers passed that were not reached before.
    let after = TIER_NAMES.iter().position(|t| *t == p.tier_after).unwrap();
    prop_assert!(after < spec.tiers.len());
    let want: Vec<&str> = (tier_idx + 1..=after)
        .filter(|&i| {
            let t = &spec.tiers[i];
            (t.gift_points.is_some() || t.gift_coupon.is_some()) && case.sale.reached & (1 << i) == 0
        })
        .map(|i| TIER_NAMES[i])
        .collect();
    prop_assert_eq!(p.gifts.iter().map(|g| g.tier.as_str()).collect::<Vec<_>>(), want);
    prop_assert_eq!(p.gift_points, p.gifts.iter().map(|g| g.points).sum::<i64>());
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]
    #[test]
    fn receipts_add_up_for_random_rulesets_and_baskets(spec in rules_spec(), sale in sale_spec()) {
        check(&spec, &sale)?;
    }
}

/// Most generated rulesets load (the mistakes are rare), so the property prices real sales.
#[test]
fn most_random_rulesets_are_accepted() {
    let mut runner = TestRunner::deterministic();
    let (mut accepted, n) = (0, 1000);
    let local = chrono::NaiveDate::from_ymd_opt(2026, 12, 8)
        .unwrap()
        .and_hms_opt(10, 0, 0)
        .unwrap();
    for _ in 0..n {
        let spec = rules_spec().new_tree(&mut runner).unwrap().current();
        let ok = Ruleset::parse(&spec.toml(local), "random.toml").is_ok();
        assert_eq!(ok, spec.first_mistake().is_none(), "{}", spec.toml(local));
        accepted += ok as u32;
    }
    assert!(accepted * 100 >= n * 80, "only {accepted} of {n} accepted");
    assert!(accepted < n, "no mistake was generated: validation went unexercised");
}

/// The largest sale the model admits, with every multiplier at its maximum: no panic, no
/// overflow, and a refusal, if any, is the too-large one.
#[test]
fn the_largest_sale_prices_or_is_refused_as_too_large() {
    let local = chrono::NaiveDate::from_ymd_opt(2026, 12, 8)
        .unwrap()
        .and_hms_opt(10, 0, 0)
        .unwrap();
    let spec_for = |discount_bp, kind, points_per_unit| RulesSpec {
        excluded: 0,
        earn: EarnSpec {
            unit_minor: 1,
            points_per_unit,
            visit_bonus_points: 1_000_000,
            visit_bonus_min_minor: 0,
            max_points_per_tx: 0,
            brackets: Some(vec![(0, 1_000_000), (1, 1_000_000)]),
        },
        tiers: vec![TierSpec {
            qualify_step: 1,
            discount_bp,
            multiplier_bp: 1_000_000,
            gift_points: None,
            gift_coupon: None,
        }],
        metric: 0,
        rolling: false,
        window_days: 731,
        redeem: RedeemSpec {
            points_per_unit: 1,
            unit_minor: 1000,
            min_points: 0,
            max_share_bp: 10_000,
            pin_required_from: 0,
            offline_cap_points: 0,
        },
        expiry_months: 0,
        birthday: Some((1_000_000, true)),
        campaigns: vec![CampaignSpec {
            window: WindowSpec {
                when: When::Always,
                weekdays: None,
                tiers: None,
            },
            multiplier_bp: Some(1_000_000),
            bonus_points: 1_000_000,
        }],
        promotions: vec![PromoSpec {
            prefix: 0,
            same_id_as_previous: false,
            kind,
            scope: ScopeSpec::All,
            window: WindowSpec {
                when: When::Always,
                weekdays: None,
                tiers: None,
            },
        }],
        coupons: vec![CouponTypeSpec {
            value: CouponValueSpec::OffBp(10_000),
            min_minor: 0,
            exchange_points: None,
        }],
        deals: vec![DealSpec {
            sku: 0,
            group_price_minor: 0,
            size: 2,
        }],
    };
    let kinds = [
        Kind::Every {
            min: None,
            step: 1,
            off: 1,
            cap: Some(MAX_SUBTOTAL / 3),
        },
        Kind::Every {
            min: None,
            step: 3,
            off: 2,
            cap: None,
        },
        Kind::Percent { min: 0, off_bp: 1 },
        Kind::Threshold {
            min: 0,
            off: MAX_SUBTOTAL,
        },
    ];
    let variants = kinds
        .iter()
        .flat_map(|k| [(0, k.clone(), 1), (1, k.clone(), 100), (10_000, k.clone(), 1)]);
    for (discount_bp, kind, ppu) in variants {
        for redeem in [RedeemChoice::None, RedeemChoice::Max, RedeemChoice::Huge] {
            let spec = spec_for(discount_bp, kind.clone(), ppu);
            let sale = SaleSpec {
                instant: 0,
                // Exactly MAX_SUBTOTAL over two lines; s0 is the deal's sku.
                lines: vec![(0, 0, 50, MAX_UNIT_PRICE), (1, 1, 50, MAX_UNIT_PRICE)],
                tier: 0,
                days: vec![(0, i64::MAX / 4, i64::MAX / 4, 1000, 1000)],
                lots: vec![(MAX_POINTS_INPUT, 0)],
                debt: 0,
                birthday: 1,
                pin: 0,
                pin_locked: false,
                redeem: redeem.clone(),
                coupon: CouponChoice::Found {
                    own: true,
                    type_idx: Some(0),
                    used: false,
                    dates: 0,
                },
                offline_redeemed: None,
                expiry_applies: true,
                units: vec![0, 0, 0],
                reached: 0,
            };
            assert_eq!(basket(&sale).iter().map(Line::amount).sum::<i64>(), MAX_SUBTOTAL);
            assert!(Ruleset::parse(&spec.toml(local), "edge.toml").is_ok());
            check(&spec, &sale).unwrap_or_else(|e| panic!("{discount_bp} {kind:?} {ppu} {redeem:?}: {e}"));
        }
    }
}

/// A ruleset may set any positive redemption rate. Points worth absurdly much or absurdly
/// little must still be refused or allowed as the rates say, never wrapped around i64.
#[test]
fn absurd_redemption_rates_do_not_wrap() {
    let ruleset = |points_per_unit: i64, unit_minor: i64| {
        let text = format!(
            "version = 1\ncurrency = \"CNY\"\ntimezone = \"Asia/Shanghai\"\n\
             [earn]\nunit_minor = 100\npoints_per_unit = 1\n\
             [[tiers]]\nname = \"standard\"\nqualify = 0\ndiscount_bp = 0\nmultiplier_bp = 10000\n\
             [tier_policy]\nmetric = \"spend\"\nwindow_days = 365\ndowngrade = \"never\"\n\
             [redeem]\npoints_per_unit = {points_per_unit}\nunit_minor = {unit_minor}\nmin_points = 1\n\
             max_share_bp = 5000\npin_required_from = 0\noffline_cap_points = 0\n[expiry]\nmonths = 0\n"
        );
        Ruleset::parse(&text, "absurd.toml")
    };
    // Rates past the bound are refused at load, naming the field.
    for (ppu, unit) in [(1, 1_000_001), (1i64 << 62, 1)] {
        let e = ruleset(ppu, unit).expect_err("an absurd rate");
        assert!(e.to_string().contains("redeem."), "{e}");
    }
    let ruleset = |ppu, unit| ruleset(ppu, unit).expect("a valid ruleset");
    let member = MemberState {
        member_id: "m1".into(),
        tier: "standard".into(),
        lots: vec![Lot {
            points: 1_000,
            earned_at: 0,
            expires_at: None,
        }],
        ..MemberState::default()
    };
    let lines = [Line {
        sku: "s0".into(),
        category: "a".into(),
        qty: 1,
        unit_price: 10_000,
    }];
    let price = |rules: &Ruleset, redeem_points| {
        let req = Request {
            member: &member,
            lines: &lines,
            coupon: None,
            redeem_points,
            at: parse_instant(INSTANTS[0]).unwrap(),
            expiry_applies: true,
            offline_redeemed: None,
            pin_given: false,
            facts: CampaignFacts::default(),
        };
        rules::price(rules, &req, &mut || PinCheck::NotGiven)
    };
    // One point pays 10,000.00 (the most a file may set): 1 point is worth far more than
    // half of 100.00. (Before the bound and the i128 value, 3 x 2^62 wrapped to a
    // negative value and 4 x 2^62 to 0, which let the points through.)
    let dear = ruleset(1, 1_000_000);
    for r in [1, 3, 4] {
        let e = price(&dear, r).expect_err("the points pay more than the share");
        assert_eq!(e.code, Code::RedeemExceedsShare, "{r}: {}", e.message);
    }
    assert_eq!(price(&dear, 0).unwrap().max_redeem_points, 0);
    // A point worth next to nothing: the share allows every point of the balance.
    let cheap = ruleset(1_000_000, 1);
    let q = price(&cheap, 0).unwrap();
    assert_eq!(q.max_redeem_points, 1_000);
    let p = price(&cheap, 1_000).unwrap();
    assert_eq!((p.redeem_value, p.total), (0, 10_000));
}
