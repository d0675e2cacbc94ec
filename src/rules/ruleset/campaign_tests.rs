//! The 0.2 keys as the shipped config's examples write them, and their defaults. Refusals
//! are rows of the REFUSED table in tests.rs.

use super::*;
use crate::rules::testing::{campaigns, example_with, shipped_switched_on};

fn dt(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
}

fn always() -> Window {
    Window {
        starts: None,
        ends: None,
        weekdays: vec![],
        tiers: vec![],
    }
}

#[test]
fn shipped_examples_parse_to_expected_values() {
    let r = campaigns();
    assert_eq!(
        r.promotions
            .iter()
            .map(|p| (p.id.as_str(), p.kind, p.scope.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                "m100-10",
                PromotionKind::Threshold {
                    min_minor: 10000,
                    off_minor: 1000
                },
                Scope::All
            ),
            (
                "every100-10",
                PromotionKind::Every {
                    min_minor: 0,
                    step_minor: 10000,
                    off_minor: 1000,
                    max_off_minor: Some(5000)
                },
                Scope::All
            ),
            (
                "fresh-12pct",
                PromotionKind::Percent {
                    min_minor: 5000,
                    off_bp: 1200
                },
                Scope::Categories(vec!["produce".into()])
            ),
            (
                "staples-15",
                PromotionKind::Threshold {
                    min_minor: 8000,
                    off_minor: 1500
                },
                Scope::Skus(vec!["rice".into(), "flour".into()])
            ),
            (
                "milk-15pct",
                PromotionKind::Percent {
                    min_minor: 3000,
                    off_bp: 1500
                },
                Scope::Skus(vec!["milk".into(), "yogurt".into()])
            ),
        ]
    );
    assert_eq!(r.promotions[1].window.starts, Some(dt("2026-12-01T00:00:00")));
    assert_eq!(r.promotions[2].window, always());
    assert_eq!(
        r.tiers
            .iter()
            .map(|t| (t.gift_points, t.gift_coupon.as_deref()))
            .collect::<Vec<_>>(),
        [(0, None), (100, None), (500, Some("gold20"))]
    );
    assert!(!r.tiers[0].has_gift() && r.tiers[1].has_gift());
    assert_eq!(r.coupon_type("welcome5").unwrap().exchange_points, None);
    assert_eq!(r.coupon_type("gold20").unwrap().exchange_points, Some(3000));
    assert_eq!(
        r.activities,
        vec![
            Activity {
                id: "checkin".into(),
                points: 10,
                max_per_day: 1,
                max_total: 0
            },
            Activity {
                id: "profile".into(),
                points: 50,
                max_per_day: 0,
                max_total: 1
            },
        ]
    );
    assert_eq!(r.activity("profile").unwrap().points, 50);
    assert_eq!(
        r.triggers
            .iter()
            .map(|t| (t.id.as_str(), t.on.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("welcome", TriggerOn::Enrol),
            ("tenth-visit", TriggerOn::Visit { nth: 10 }),
            ("miss-you", TriggerOn::Inactive { days: 60 }),
            ("happy-birthday", TriggerOn::Birthday),
            ("silver-up", TriggerOn::TierUp { tier: 1 }),
        ]
    );
    assert!(r.triggers.iter().all(|t| t.coupon == "welcome5"));
    assert_eq!(
        r.group_buys,
        vec![GroupBuy {
            id: "hotpot3".into(),
            sku: "hotpot-set".into(),
            group_price_minor: 9900,
            size: 3,
            window_hours: 24,
            starts: Some(dt("2026-12-01T00:00:00")),
            ends: Some(dt("2026-12-31T23:59:59")),
        }]
    );
    // Without the score, the metric is still the shipped one.
    assert_eq!(r.tier_policy.metric, TierMetric::Spend);
}

#[test]
fn shipped_score_example_parses() {
    let r = Ruleset::parse(&shipped_switched_on(true), "rules.toml").unwrap();
    assert_eq!(
        r.tier_policy.metric,
        TierMetric::Score(Score {
            spend_unit_minor: 100,
            spend_bp: 6000,
            visit_points: 100,
            visits_bp: 3000,
            activity_points: 100,
            activity_bp: 1000,
        })
    );
}

#[test]
fn the_switched_off_examples_leave_the_shipped_rules_alone() {
    // What the daemon loads from the shipped file has none of the examples on.
    let r = Ruleset::parse(crate::rules::testing::SHIPPED, "rules.toml").unwrap();
    assert_eq!(r.promotions.len(), 1);
    assert!(r.activities.is_empty() && r.triggers.is_empty() && r.group_buys.is_empty());
    assert!(r.tiers.iter().all(|t| !t.has_gift()));
}

#[test]
fn optional_keys_of_the_new_tables() {
    let r = example_with(
        r#"
[[promotions]]
id = "e"
kind = "every"
step_minor = 5000
off_minor = 300
[[promotions]]
id = "t"
kind = "threshold"
min_minor = 0
off_minor = 1
skus = ["a"]
[[promotions]]
id = "p"
kind = "percent"
min_minor = 0
off_bp = 10000
categories = ["x", "y"]
[[activities]]
id = "a"
points = 1
[[triggers]]
id = "b"
on = "birthday"
coupon = "welcome5"
[[group_buys]]
id = "g"
sku = "s"
group_price_minor = 0
size = 2
window_hours = 1
"#,
    );
    assert_eq!(
        r.promotions[1].kind,
        PromotionKind::Every {
            min_minor: 0,
            step_minor: 5000,
            off_minor: 300,
            max_off_minor: None
        }
    );
    assert_eq!(r.promotions[2].scope, Scope::Skus(vec!["a".into()]));
    assert_eq!(
        r.promotions[3].kind,
        PromotionKind::Percent {
            min_minor: 0,
            off_bp: 10000
        }
    );
    assert_eq!((r.activities[0].max_per_day, r.activities[0].max_total), (0, 0));
    assert_eq!(r.triggers[0].on, TriggerOn::Birthday);
    let g = r.group_buy("g").unwrap();
    assert_eq!((g.group_price_minor, g.size, g.starts, g.ends), (0, 2, None, None));
    assert!(g.open_at(dt("1990-01-01T00:00:00")));
    assert!(r.group_buy("h").is_none());
}

#[test]
fn scopes_match_exactly() {
    let cats = Scope::Categories(vec!["produce".into()]);
    assert!(cats.covers("apples", "produce"));
    assert!(!cats.covers("produce", "Produce"));
    let skus = Scope::Skus(vec!["rice".into()]);
    assert!(skus.covers("rice", "anything") && !skus.covers("rice-5kg", "grocery"));
    assert!(Scope::All.covers("x", "y"));
}

#[test]
fn group_buy_window_and_expiry() {
    let g = &campaigns().group_buys[0];
    assert!(!g.open_at(dt("2026-11-30T23:59:59")));
    assert!(g.open_at(dt("2026-12-01T00:00:00")));
    let last = chrono::NaiveDate::from_ymd_opt(2026, 12, 31)
        .unwrap()
        .and_hms_milli_opt(23, 59, 59, 500)
        .unwrap();
    assert!(g.open_at(last));
    assert!(!g.open_at(dt("2027-01-01T00:00:00")));
    // 24 hours in microseconds.
    assert_eq!(g.group_expires_at(1_000), 1_000 + 86_400_000_000);
}
