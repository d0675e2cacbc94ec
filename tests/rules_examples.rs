//! The worked examples in config/rules.toml's comments, priced by the rules core with the
//! file's switched-off example settings switched on, to the minor unit and the point.
//!
//! Each example is a comment item (`# - ...`, continued by `#   ...`) found by a phrase
//! of its own. A test prices the sale the item describes, asserts the figures, and asserts
//! that the item states those figures and those lines, so the comment and the rules cannot
//! drift apart. Every item must be claimed by a test here.

use loyaltyd::model::{day_no, parse_instant, DayBucket, Line, MemberState};
use loyaltyd::rules::{self, tier, CampaignFacts, GroupBuyUnit, PinCheck, Priced, Request, Ruleset};

const SHIPPED: &str = include_str!("../config/rules.toml");

const WORKED_1: &str = "Standard member, 2026-11-24: rice/grocery";
const EVERY: &str = "Standard member, 2026-12-08: wok/kitchen";
const EVERY_CAP: &str = "Same day, tv/electronics";
const PERCENT_CATEGORIES: &str = "apples/produce";
const THRESHOLD_SKUS: &str = "Silver member (3 %), 2026-11-24";
const PERCENT_SKUS: &str = "Gold member (5 %), 2026-11-24";
const GIFT: &str = "who never reached silver";
const SCORE: &str = "With the weights below";
const SCORE_FRACTIONS: &str = "every term leaves a fraction";
const GROUP_BUY: &str = "Silver member of a formed hotpot3 group";
const ALL: [&str; 10] = [
    WORKED_1,
    EVERY,
    EVERY_CAP,
    PERCENT_CATEGORIES,
    THRESHOLD_SKUS,
    PERCENT_SKUS,
    GIFT,
    SCORE,
    SCORE_FRACTIONS,
    GROUP_BUY,
];

/// The file as its header explains it: a `#` right before a setting switches that setting
/// off; these are switched on. The growth score's table goes in only with `score` (it is
/// refused unless the metric is the score, which `score` then sets).
fn switched_on(score: bool) -> String {
    let mut out = String::new();
    let mut in_score = false;
    for line in SHIPPED.lines() {
        let setting = line
            .strip_prefix('#')
            .filter(|rest| !rest.is_empty() && !rest.starts_with([' ', '#']));
        in_score = match setting {
            Some(rest) => in_score || rest == "[tier_policy.score]",
            None => false,
        };
        match setting {
            Some(_) if in_score && !score => {}
            Some(rest) => out.push_str(rest),
            None if score && line.starts_with("metric = \"spend\"") => out.push_str("metric = \"score\""),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn examples_on() -> Ruleset {
    Ruleset::parse(&switched_on(false), "rules.toml").expect("the shipped examples load")
}

/// Every item of a comment paragraph that says "Worked example", its lines joined and its
/// spaces collapsed.
fn items() -> Vec<String> {
    let mut out = Vec::new();
    let mut item: Option<String> = None;
    let mut worked = false;
    for line in SHIPPED.lines() {
        if let (Some(rest), true) = (line.strip_prefix("# - "), worked) {
            out.extend(item.replace(rest.to_string()));
        } else if let (Some(rest), Some(it)) = (line.strip_prefix("#   "), item.as_mut()) {
            it.push(' ');
            it.push_str(rest);
        } else {
            out.extend(item.take());
            // A paragraph of comment lines ends at a setting, a blank or a TOML line.
            worked = match line.strip_prefix("# ") {
                Some(text) => worked || text.contains("Worked example"),
                None => false,
            };
        }
    }
    out.extend(item);
    out.iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The one item holding `anchor`.
fn item(anchor: &str) -> String {
    let found: Vec<String> = items().into_iter().filter(|i| i.contains(anchor)).collect();
    assert_eq!(found.len(), 1, "items holding {anchor:?}: {found:?}");
    found.into_iter().next().unwrap()
}

/// Asserts that the example states `figure` (as written, spaces collapsed).
fn states(example: &str, figure: &str) {
    assert!(
        example.contains(figure),
        "the example does not state {figure:?}:\n{example}"
    );
}

/// `sku/category qty x unit_price, ...` as the examples write their lines; each must be
/// written so in the example.
fn lines_of(example: &str, spec: &str) -> Vec<Line> {
    spec.split(", ")
        .map(|l| {
            states(example, l);
            let (name, rest) = l.split_once(' ').unwrap();
            let (sku, category) = name.split_once('/').unwrap();
            let (qty, price) = rest.split_once(" x ").unwrap();
            Line {
                sku: sku.into(),
                category: category.into(),
                qty: qty.parse().unwrap(),
                unit_price: price.parse().unwrap(),
            }
        })
        .collect()
}

fn member(tier: &str) -> MemberState {
    MemberState {
        member_id: "m1".into(),
        name: "Ann".into(),
        phone: "+8613800000000".into(),
        tier: tier.into(),
        active: true,
        ..MemberState::default()
    }
}

/// A sale at 10:00 local on `date`, no coupon, no points.
fn price(rules: &Ruleset, m: &MemberState, lines: &[Line], date: &str, facts: CampaignFacts) -> Priced {
    let req = Request {
        member: m,
        lines,
        coupon: None,
        redeem_points: 0,
        at: parse_instant(&format!("{date}T10:00:00+08:00")).unwrap(),
        expiry_applies: true,
        offline_redeemed: None,
        pin_given: false,
        facts,
    };
    rules::price(rules, &req, &mut || PinCheck::NotGiven).expect("the example prices")
}

fn sale(rules: &Ruleset, tier: &str, lines: &[Line], date: &str) -> Priced {
    price(rules, &member(tier), lines, date, CampaignFacts::default())
}

fn col(p: &Priced, f: fn(&rules::PricedLine) -> i64) -> Vec<i64> {
    p.lines.iter().map(f).collect()
}

fn slashed(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(" / ")
}

fn promotion(p: &Priced) -> (&str, i64) {
    let (id, off) = p.promotion.as_ref().expect("a promotion applies");
    (id.as_str(), *off)
}

#[test]
fn every_example_item_is_checked_here() {
    for i in items() {
        let claimed = ALL.iter().filter(|a| i.contains(**a)).count();
        assert_eq!(
            claimed, 1,
            "an example that no test (or more than one) here checks:\n{i}"
        );
    }
    assert_eq!(items().len(), ALL.len());
}

#[test]
fn the_active_file_prices_as_without_its_examples() {
    // Switched off, the example settings change nothing: worked example 1 of rules.md.
    let rules = Ruleset::parse(SHIPPED, "rules.toml").unwrap();
    assert_eq!(rules.promotions.len(), 1);
    let ex = item(WORKED_1);
    let lines = lines_of(
        &ex,
        "rice/grocery 2 x 3450, cigarettes/tobacco 1 x 2500, oil/grocery 1 x 5990",
    );
    let p = sale(&rules, "standard", &lines, "2026-11-24");
    assert_eq!((p.due, p.total, p.base, p.points_earned), (14390, 14390, 11890, 118));
}

#[test]
fn worked_example_1_with_the_examples_on() {
    let ex = item(WORKED_1);
    let lines = lines_of(
        &ex,
        "rice/grocery 2 x 3450, cigarettes/tobacco 1 x 2500, oil/grocery 1 x 5990",
    );
    let p = sale(&examples_on(), "standard", &lines, "2026-11-24");
    assert_eq!(promotion(&p), ("m100-10", 1000));
    states(&ex, "m100-10: 12890 >= 10000, 1000");
    assert_eq!(col(&p, |l| l.d2), [535, 0, 465]);
    states(
        &ex,
        &format!(
            "{}; total {}; {} points",
            slashed(&col(&p, |l| l.d2)),
            p.total,
            p.points_earned
        ),
    );
    assert_eq!((p.total, p.points_earned), (14390, 118));
}

#[test]
fn every_kind_per_full_step() {
    let ex = item(EVERY);
    let lines = lines_of(&ex, "wok/kitchen 1 x 15800, tea/grocery 2 x 4100");
    let p = sale(&examples_on(), "standard", &lines, "2026-12-08");
    assert_eq!(promotion(&p), ("every100-10", 2000));
    states(&ex, "floor(24000 / 10000) x 1000 = 2000 beats m100-10's 1000");
    assert_eq!(col(&p, |l| l.d2), [1317, 683]);
    assert_eq!((p.subtotal, p.total, p.points_earned), (24000, 22000, 220));
    states(
        &ex,
        &format!(
            "{}. Total {}; {} points",
            slashed(&col(&p, |l| l.d2)),
            p.total,
            p.points_earned
        ),
    );
}

#[test]
fn every_kind_with_its_cap() {
    let ex = item(EVERY_CAP);
    let lines = lines_of(&ex, "tv/electronics 1 x 61000");
    // "Same day": the standard member of the example before, 2026-12-08.
    let p = sale(&examples_on(), "standard", &lines, "2026-12-08");
    assert_eq!(promotion(&p), ("every100-10", 5000));
    assert_eq!((p.total, p.base, p.points_earned), (56000, 56000, 572));
    states(
        &ex,
        &format!("6 full steps = 6000, capped at {}. Total {};", promotion(&p).1, p.total),
    );
    states(&ex, &format!("= 572000000, {} points", p.points_earned));
}

#[test]
fn percent_kind_scoped_by_category() {
    let ex = item(PERCENT_CATEGORIES);
    let lines = lines_of(
        &ex,
        "apples/produce 3 x 1250, cabbage/produce 2 x 880, bread/bakery 1 x 2500",
    );
    let p = sale(&examples_on(), "standard", &lines, "2026-11-24");
    assert_eq!(promotion(&p), ("fresh-12pct", 661));
    states(&ex, "floor(5510 x 1200 / 10000) = 661; m100-10: 8010 < 10000, 0");
    assert_eq!(col(&p, |l| l.d2), [450, 211, 0]);
    assert_eq!((p.subtotal, p.total, p.points_earned), (8010, 7349, 73));
    states(
        &ex,
        &format!(
            "{}. Total {}; {} points",
            slashed(&col(&p, |l| l.d2)),
            p.total,
            p.points_earned
        ),
    );
}

#[test]
fn threshold_scoped_by_sku_after_the_tier_discount() {
    let ex = item(THRESHOLD_SKUS);
    let lines = lines_of(
        &ex,
        "rice/grocery 2 x 3450, flour/grocery 1 x 1890, oil/grocery 1 x 5990",
    );
    let p = sale(&examples_on(), "silver", &lines, "2026-11-24");
    assert_eq!(col(&p, |l| l.d1), [207, 56, 179]);
    states(&ex, &format!("Tier discount {}.", slashed(&col(&p, |l| l.d1))));
    assert_eq!(promotion(&p), ("staples-15", 1500));
    assert_eq!(col(&p, |l| l.d2), [1177, 323, 0]);
    states(&ex, &format!("{}.", slashed(&col(&p, |l| l.d2))));
    assert_eq!((p.total, p.points_earned), (12838, 160));
    states(
        &ex,
        &format!(
            "Total {} - {} - {} = {}; floor(12838 x 1.25) = {} points",
            p.subtotal, p.tier_discount, 1500, p.total, p.points_earned
        ),
    );
}

#[test]
fn percent_kind_scoped_by_sku() {
    let ex = item(PERCENT_SKUS);
    let lines = lines_of(
        &ex,
        "milk/dairy 4 x 1290, yogurt/dairy 3 x 650, cheese/dairy 1 x 3800, cigarettes/tobacco 1 x 2500",
    );
    let p = sale(&examples_on(), "gold", &lines, "2026-11-24");
    assert_eq!(p.tier_before, "gold");
    assert_eq!(col(&p, |l| l.d1), [258, 97, 190, 0]);
    states(&ex, &format!("(13410). Tier discount {}.", slashed(&col(&p, |l| l.d1))));
    // The sku scope leaves cheese out although it is dairy too.
    assert_eq!(promotion(&p), ("milk-15pct", 1013));
    states(
        &ex,
        "floor(6755 x 1500 / 10000) = floor(1013.25) = 1013 beats m100-10's 1000 (on 10365)",
    );
    assert_eq!(col(&p, |l| l.d2), [735, 278, 0, 0]);
    states(&ex, &format!("{}.", slashed(&col(&p, |l| l.d2))));
    assert_eq!(
        (p.subtotal, p.tier_discount, p.total, p.base, p.points_earned),
        (13410, 545, 11852, 9352, 140)
    );
    states(
        &ex,
        &format!(
            "Total {} - {} - 1013 = {}; base {}; floor(9352 x 1.5) = {} points",
            p.subtotal, p.tier_discount, p.total, p.base, p.points_earned
        ),
    );
}

#[test]
fn tier_gifts_of_each_tier_passed() {
    let ex = item(GIFT);
    let rules = examples_on();
    let lines = lines_of(&ex, "tv/electronics 1 x 520000");
    let p = sale(&rules, "standard", &lines, "2026-11-24");
    assert_eq!(promotion(&p), ("m100-10", 1000));
    assert_eq!((p.base, p.points_earned, p.tier_after.as_str()), (519000, 6128, "gold"));
    states(
        &ex,
        &format!("base {} >= 500000, so the member is {}", p.base, p.tier_after),
    );
    states(&ex, &format!("= {}; gifts of silver and gold", p.points_earned));
    let gifts: Vec<_> = p
        .gifts
        .iter()
        .map(|g| (g.tier.as_str(), g.points, g.coupon.as_deref()))
        .collect();
    assert_eq!(gifts, [("silver", 100, None), ("gold", 500, Some("gold20"))]);
    assert_eq!(p.gift_points, 600);
    states(&ex, &format!("100 + 500 = {} more points", p.gift_points));
    states(&ex, "and a gold20 coupon");
    // Silver reached before: gold's gift alone.
    let reached = ["standard".to_string(), "silver".to_string()];
    let facts = CampaignFacts {
        tiers_reached: &reached,
        ..CampaignFacts::default()
    };
    let p = price(&rules, &member("standard"), &lines, "2026-11-24", facts);
    let gifts: Vec<_> = p
        .gifts
        .iter()
        .map(|g| (g.tier.as_str(), g.points, g.coupon.as_deref()))
        .collect();
    assert_eq!(gifts, [("gold", 500, Some("gold20"))]);
    states(
        &ex,
        "A member who reached silver before gets gold's 500 and gold20 only",
    );
}

/// The score's weights set one by one in the switched-on table.
fn with_weights(text: &str, weights: &[(&str, i64)]) -> Ruleset {
    let mut out = String::new();
    for line in text.lines() {
        match weights.iter().find(|(k, _)| line.starts_with(&format!("{k} = "))) {
            Some((k, v)) => out += &format!("{k} = {v}\n"),
            None => out += &format!("{line}\n"),
        }
    }
    Ruleset::parse(&out, "rules.toml").expect("the score example loads")
}

#[test]
fn growth_score_floors_each_term() {
    // 123399 spent, 7 visits and 3 activity grants inside the window, split over two dates.
    let day = day_no(chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
    let bucket = |day, spend, visits, activities| DayBucket {
        day,
        spend,
        points: 0,
        visits,
        activities,
    };
    let days = [bucket(day - 30, 100_000, 4, 1), bucket(day, 23_399, 3, 2)];
    let text = switched_on(true);

    let ex = item(SCORE);
    states(&ex, "floor(1233 x 6000 / 10000) = floor(739.8) = 739");
    let rules = with_weights(&text, &[]);
    assert_eq!(tier::metric(&rules, &days, day), 979);
    states(&ex, "= 210 + floor(3 x 100 x 1000 / 10000) = 30 = a score of 979");

    let ex = item(SCORE_FRACTIONS);
    let weights = [
        ("visit_points", 15),
        ("visits_bp", 3333),
        ("activity_points", 7),
        ("activity_bp", 1111),
    ];
    for (k, v) in weights {
        states(&ex, &format!("{k} = {v}"));
    }
    let rules = with_weights(&text, &weights);
    assert_eq!(tier::metric(&rules, &days, day), 775);
    states(
        &ex,
        "= floor(34.9965) = 34 + floor(3 x 7 x 1111 / 10000) = floor(2.3331) = 2 = a score of 775",
    );
    states(&ex, "would give 777");
    // Once the older date leaves the window (365 days), only the later one counts:
    // floor(233 x 0.6) = 139, floor(3 x 15 x 3333 / 10000) = 14, floor(2 x 7 x 1111 / 10000) = 1.
    assert_eq!(tier::metric(&rules, &days, day - 30 + 364), 775);
    assert_eq!(tier::metric(&rules, &days, day - 30 + 365), 139 + 14 + 1);
}

#[test]
fn a_group_buy_unit_in_a_sale_whose_other_lines_take_the_tier_discount() {
    let ex = item(GROUP_BUY);
    let rules = examples_on();
    let lines = lines_of(
        &ex,
        "hotpot-set/food 2 x 12800, beer/alcohol 6 x 800, cigarettes/tobacco 1 x 2500",
    );
    let deal = rules.group_buy("hotpot3").expect("the example deal");
    let units = [GroupBuyUnit {
        deal: deal.id.clone(),
        sku: deal.sku.clone(),
        group_price_minor: deal.group_price_minor,
    }];
    let facts = CampaignFacts {
        group_buy_units: &units,
        ..CampaignFacts::default()
    };
    let p = price(&rules, &member("silver"), &lines, "2026-12-08", facts);
    states(
        &ex,
        &format!("({}). One hotpot set at {}", p.subtotal, deal.group_price_minor),
    );
    assert_eq!(col(&p, |l| l.d0), [2900, 0, 0]);
    assert_eq!(col(&p, |l| l.group_units), [1, 0, 0]);
    assert_eq!(p.group_buys.len(), 1);
    states(
        &ex,
        &format!("{} off, and it leaves the rest of the sale", p.group_buy_discount),
    );
    assert_eq!(col(&p, |l| l.d1), [384, 144, 0]);
    states(
        &ex,
        &format!(
            "Tier discount 3 % of 12800 and 4800: {} + {}.",
            p.lines[0].d1, p.lines[1].d1
        ),
    );
    assert_eq!(promotion(&p), ("every100-10", 1000));
    states(
        &ex,
        "floor(17072 / 10000) x 1000 = 1000 ties m100-10; every100-10 comes first",
    );
    assert_eq!(col(&p, |l| l.d2), [727, 273, 0]);
    states(&ex, &format!("to beer: {}.", slashed(&col(&p, |l| l.d2))));
    assert_eq!((p.total, p.base, p.points_earned), (28472, 16072, 200));
    states(
        &ex,
        &format!(
            "Total {} - {} - {} - 1000 = {}; base 11689 + 4383 = {}; floor(16072 x 1.25) = {} points",
            p.subtotal, p.group_buy_discount, p.tier_discount, p.total, p.base, p.points_earned
        ),
    );
    // The set at the group price is outside E: only the other set and the beer count.
    assert_eq!(p.base, (12800 - 384 - 727) + (4800 - 144 - 273));
}
