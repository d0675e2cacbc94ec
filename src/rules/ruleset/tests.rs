use super::*;
use chrono::NaiveDate;

/// The ruleset example from shared/spec/rules.md, verbatim.
const EXAMPLE: &str = r##"
version = 1                          # recorded on every transaction it priced
currency = "CNY"
timezone = "Asia/Shanghai"
excluded_categories = ["tobacco"]    # these lines get no member discount, no promotion,
                                 # no coupon, earn nothing and do not count for tiers

[earn]
unit_minor = 100                     # one earn unit = 1.00
points_per_unit = 1
visit_bonus_points = 0               # added when the total paid >= visit_bonus_min_minor
visit_bonus_min_minor = 0            # (and visit_bonus_points > 0)
max_points_per_tx = 0                # 0 = no cap; the cap covers bonuses too
[[earn.brackets]]                    # optional; stepped (marginal) rates on the earn base
from_minor = 0                       # the first bracket starts at 0
multiplier_bp = 10000
[[earn.brackets]]
from_minor = 50000
multiplier_bp = 12000

[[tiers]]                            # ascending; the first has qualify = 0
name = "standard"
qualify = 0                          # threshold of the tier metric over the window
discount_bp = 0
multiplier_bp = 10000
[[tiers]]
name = "silver"
qualify = 100000
discount_bp = 300
multiplier_bp = 12500
[[tiers]]
name = "gold"
qualify = 500000
discount_bp = 500
multiplier_bp = 15000

[tier_policy]
metric = "spend"                     # "spend" | "points" | "visits"
window_days = 365                    # rolling window of local dates
downgrade = "never"                  # "never" | "rolling"

[redeem]
points_per_unit = 100                # 100 points pay unit_minor
unit_minor = 100                     # so here 1 point = 0.01
min_points = 100
max_share_bp = 5000                  # points pay at most 50 % of the amount due
pin_required_from = 1000             # a redemption of >= this many points needs the PIN; 0 = never
offline_cap_points = 2000            # per member, redemptions not yet acknowledged upstream

[expiry]
months = 12                          # 0 = points never expire

[birthday]
multiplier_bp = 20000
scope = "day"                        # "day" | "month" (local calendar)

[[campaigns]]
id = "weekend-x2"
starts = "2026-12-01T00:00:00"       # local time, inclusive
ends = "2026-12-31T23:59:59"         # local time, inclusive
weekdays = ["sat", "sun"]            # optional; empty or absent = every day
tiers = []                           # optional; empty = every tier
multiplier_bp = 20000
bonus_points = 0

[[promotions]]                       # spend-threshold discounts; the single best one applies
id = "m100-10"
min_minor = 10000
off_minor = 1000
# starts, ends, tiers: optional, same meaning as for campaigns

[[coupon_types]]
id = "welcome5"
off_minor = 500                      # or off_bp = 1000 (exactly one of the two)
min_minor = 3000
valid_days = 30                      # from issue, local dates, inclusive

[[rewards]]                          # catalog: redeemed for points, not for money
sku = "mug"
points = 500
stock = 20                           # terminal-local stock"##;

/// The shipped config; it must stay equivalent to the contract's example.
const SHIPPED: &str = include_str!("../../../config/rules.toml");

fn dt(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
}

/// Replaces the first occurrence of `from`, which must be there (a silent no-op would
/// make a refusal test pass for the wrong reason).
fn rep(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "mutation anchor {from:?} not found");
    text.replacen(from, to, 1)
}

/// Removes the first line that starts with `prefix`.
fn drop_line(text: &str, prefix: &str) -> String {
    let start = text
        .find(&format!("\n{prefix}"))
        .unwrap_or_else(|| panic!("line {prefix:?} not found"))
        + 1;
    let end = text[start..].find('\n').map_or(text.len(), |n| start + n + 1);
    format!("{}{}", &text[..start], &text[end..])
}

/// Removes everything from `from` up to (not including) `until`.
fn cut(text: &str, from: &str, until: &str) -> String {
    let start = text.find(from).expect("cut start not found");
    let end = start + text[start..].find(until).expect("cut end not found");
    format!("{}{}", &text[..start], &text[end..])
}

fn append(text: &str, more: &str) -> String {
    format!("{text}\n{more}\n")
}

fn parse(text: &str) -> Result<Ruleset, RulesetError> {
    Ruleset::parse(text, "rules.toml")
}

fn window_all() -> Window {
    Window {
        starts: None,
        ends: None,
        weekdays: vec![],
        tiers: vec![],
    }
}

fn expected_example() -> Ruleset {
    Ruleset {
        version: 1,
        currency: "CNY".into(),
        timezone: chrono_tz::Asia::Shanghai,
        excluded_categories: vec!["tobacco".into()],
        earn: Earn {
            unit_minor: 100,
            points_per_unit: 1,
            visit_bonus_points: 0,
            visit_bonus_min_minor: 0,
            max_points_per_tx: 0,
            brackets: vec![
                Bracket {
                    from_minor: 0,
                    multiplier_bp: 10000,
                },
                Bracket {
                    from_minor: 50000,
                    multiplier_bp: 12000,
                },
            ],
        },
        tiers: vec![
            Tier {
                name: "standard".into(),
                qualify: 0,
                discount_bp: 0,
                multiplier_bp: 10000,
                gift_points: 0,
                gift_coupon: None,
            },
            Tier {
                name: "silver".into(),
                qualify: 100000,
                discount_bp: 300,
                multiplier_bp: 12500,
                gift_points: 0,
                gift_coupon: None,
            },
            Tier {
                name: "gold".into(),
                qualify: 500000,
                discount_bp: 500,
                multiplier_bp: 15000,
                gift_points: 0,
                gift_coupon: None,
            },
        ],
        tier_policy: TierPolicy {
            metric: TierMetric::Spend,
            window_days: 365,
            downgrade: Downgrade::Never,
        },
        redeem: Redeem {
            points_per_unit: 100,
            unit_minor: 100,
            min_points: 100,
            max_share_bp: 5000,
            pin_required_from: 1000,
            offline_cap_points: 2000,
        },
        expiry: Expiry { months: 12 },
        birthday: Some(Birthday {
            multiplier_bp: 20000,
            scope: BirthdayScope::Day,
        }),
        campaigns: vec![Campaign {
            id: "weekend-x2".into(),
            window: Window {
                starts: Some(dt("2026-12-01T00:00:00")),
                ends: Some(dt("2026-12-31T23:59:59")),
                weekdays: vec![Weekday::Sat, Weekday::Sun],
                tiers: vec![],
            },
            multiplier_bp: 20000,
            bonus_points: 0,
        }],
        promotions: vec![Promotion {
            id: "m100-10".into(),
            window: window_all(),
            kind: PromotionKind::Threshold {
                min_minor: 10000,
                off_minor: 1000,
            },
            scope: Scope::All,
        }],
        coupon_types: vec![CouponType {
            id: "welcome5".into(),
            value: CouponValue::OffMinor(500),
            min_minor: 3000,
            valid_days: 30,
            exchange_points: None,
        }],
        rewards: vec![Reward {
            sku: "mug".into(),
            points: 500,
            stock: 20,
        }],
        activities: vec![],
        triggers: vec![],
        group_buys: vec![],
        fingerprint: Sha256::digest(EXAMPLE.as_bytes()).into(),
    }
}

#[test]
fn example_parses_to_expected_values() {
    assert_eq!(parse(EXAMPLE).unwrap(), expected_example());
}

#[test]
fn shipped_config_matches_example() {
    let shipped = parse(SHIPPED).unwrap();
    let example = expected_example();
    assert_eq!(
        shipped,
        Ruleset {
            fingerprint: shipped.fingerprint,
            ..example.clone()
        }
    );
    // Comments differ, so the fingerprints must too: the hash is of the text.
    assert_ne!(shipped.fingerprint, example.fingerprint);
}

#[test]
fn optional_parts_take_their_defaults() {
    let text = r#"
version = 3
currency = "USD"
timezone = "America/New_York"
[earn]
unit_minor = 100
points_per_unit = 2
[[tiers]]
name = "member"
qualify = 0
discount_bp = 0
multiplier_bp = 10000
[tier_policy]
metric = "visits"
window_days = 1
downgrade = "rolling"
[redeem]
points_per_unit = 1
unit_minor = 1
min_points = 0
max_share_bp = 10000
pin_required_from = 0
offline_cap_points = 0
[expiry]
months = 0
[[campaigns]]
id = "bonus-only"
bonus_points = 5
[[campaigns]]
id = "bare"
[[promotions]]
id = "p"
min_minor = 0
off_minor = 1
[[coupon_types]]
id = "ten-percent"
off_bp = 1000
min_minor = 0
valid_days = 1
[[rewards]]
sku = "pen"
points = 1
stock = 0
"#;
    let r = parse(text).unwrap();
    assert_eq!(r.version, 3);
    assert_eq!(r.timezone, chrono_tz::America::New_York);
    assert!(r.excluded_categories.is_empty());
    assert_eq!(
        r.earn,
        Earn {
            unit_minor: 100,
            points_per_unit: 2,
            visit_bonus_points: 0,
            visit_bonus_min_minor: 0,
            max_points_per_tx: 0,
            brackets: vec![Bracket {
                from_minor: 0,
                multiplier_bp: 10000
            }],
        }
    );
    assert_eq!(r.tier_policy.metric, TierMetric::Visits);
    assert_eq!(r.tier_policy.downgrade, Downgrade::Rolling);
    assert_eq!(r.expiry.months, 0);
    assert_eq!(r.birthday, None);
    assert_eq!(
        r.campaigns,
        vec![
            Campaign {
                id: "bonus-only".into(),
                window: window_all(),
                multiplier_bp: 10000,
                bonus_points: 5,
            },
            Campaign {
                id: "bare".into(),
                window: window_all(),
                multiplier_bp: 10000,
                bonus_points: 0,
            },
        ]
    );
    assert_eq!(r.promotions[0].window, window_all());
    assert_eq!(r.coupon_types[0].value, CouponValue::OffBp(1000));
    assert_eq!(r.rewards[0].stock, 0);
}

#[test]
fn other_accepted_values() {
    let r = parse(&rep(EXAMPLE, r#"scope = "day""#, r#"scope = "month""#)).unwrap();
    assert_eq!(r.birthday.unwrap().scope, BirthdayScope::Month);
    let r = parse(&rep(EXAMPLE, r#"metric = "spend""#, r#"metric = "points""#)).unwrap();
    assert_eq!(r.tier_policy.metric, TierMetric::Points);
    // A window may be a single instant, and off_bp may take everything.
    let text = rep(EXAMPLE, "2026-12-31T23:59:59", "2026-12-01T00:00:00");
    let text = rep(&text, "off_minor = 500 ", "off_bp = 10000 ");
    let r = parse(&text).unwrap();
    assert_eq!(r.campaigns[0].window.ends, Some(dt("2026-12-01T00:00:00")));
    assert_eq!(r.coupon_types[0].value, CouponValue::OffBp(10000));
    let text = rep(EXAMPLE, "tiers = []", r#"tiers = ["silver", "gold"]"#);
    let r = parse(&text).unwrap();
    assert_eq!(r.campaigns[0].window.tiers, vec!["silver", "gold"]);
}

type Mutation = fn(&str) -> String;

// 0.2 tables the mutations below append to the example.
const EVERY: &str = "[[promotions]]\nid = \"every\"\nkind = \"every\"\nstep_minor = 10000\noff_minor = 700\n";
const PERCENT: &str = "[[promotions]]\nid = \"pct\"\nkind = \"percent\"\nmin_minor = 4321\noff_bp = 1200\n";
const SCORE: &str = "[tier_policy.score]\nspend_unit_minor = 100\nspend_bp = 6000\nvisit_points = 100\n\
                     visits_bp = 3000\nactivity_points = 100\nactivity_bp = 1000\n";
const ACTIVITY: &str = "[[activities]]\nid = \"checkin\"\npoints = 7\n";
const TRIGGER: &str = "[[triggers]]\nid = \"welcome\"\non = \"enrol\"\ncoupon = \"welcome5\"\n";
const GROUP: &str = "[[group_buys]]\nid = \"hotpot3\"\nsku = \"hotpot-set\"\ngroup_price_minor = 9900\nsize = 3\n\
                     window_hours = 24\nstarts = \"2026-12-01T00:00:00\"\nends = \"2026-12-31T23:59:59\"\n";

/// The example with `table` appended, `from` replaced by `to` in the table.
fn with(t: &str, table: &str, from: &str, to: &str) -> String {
    append(t, &rep(table, from, to))
}

/// The first promotion (m100-10) with `more` added.
fn promo(t: &str, more: &str) -> String {
    rep(t, "id = \"m100-10\"\n", &format!("id = \"m100-10\"\n{more}\n"))
}

/// One row per validation rule: (expected field path, fragment of the reason, mutation of
/// the example). Each mutation breaks exactly one thing.
const REFUSED: &[(&str, &str, Mutation)] = &[
    // TOML syntax
    ("(syntax)", "line 2, column 11", |t| {
        rep(t, "version = 1", "version = = 1")
    }),
    ("earn.unit_minor", "duplicate key", |t| {
        rep(t, "unit_minor = 100", "unit_minor = 100\nunit_minor = 100")
    }),
    // unknown fields, everywhere
    ("colour", "unknown field", |t| {
        rep(t, "currency =", "colour = 1\ncurrency =")
    }),
    ("extras", "unknown field", |t| append(t, "[extras]\nx = 1")),
    ("earn.bogus", "unknown field", |t| {
        rep(t, "[earn]\n", "[earn]\nbogus = 1\n")
    }),
    ("earn.brackets[1].bogus", "unknown field", |t| {
        rep(t, "multiplier_bp = 12000", "multiplier_bp = 12000\nbogus = 1")
    }),
    ("tiers[2].bogus", "unknown field", |t| {
        rep(t, "multiplier_bp = 15000", "multiplier_bp = 15000\nbogus = 1")
    }),
    ("tier_policy.bogus", "unknown field", |t| {
        rep(t, "[tier_policy]\n", "[tier_policy]\nbogus = 1\n")
    }),
    ("redeem.bogus", "unknown field", |t| {
        rep(t, "[redeem]\n", "[redeem]\nbogus = 1\n")
    }),
    ("expiry.bogus", "unknown field", |t| {
        rep(t, "[expiry]\n", "[expiry]\nbogus = 1\n")
    }),
    ("birthday.bogus", "unknown field", |t| {
        rep(t, "[birthday]\n", "[birthday]\nbogus = 1\n")
    }),
    ("campaigns[0].bogus", "unknown field", |t| {
        rep(t, "id = \"weekend-x2\"\n", "id = \"weekend-x2\"\nbogus = 1\n")
    }),
    ("promotions[0].bogus", "unknown field", |t| {
        rep(t, "id = \"m100-10\"\n", "id = \"m100-10\"\nbogus = 1\n")
    }),
    ("coupon_types[0].bogus", "unknown field", |t| {
        rep(t, "id = \"welcome5\"\n", "id = \"welcome5\"\nbogus = 1\n")
    }),
    ("rewards[0].bogus", "unknown field", |t| {
        rep(t, "sku = \"mug\"\n", "sku = \"mug\"\nbogus = 1\n")
    }),
    // missing required keys and sections
    ("version", "missing", |t| drop_line(t, "version =")),
    ("currency", "missing", |t| drop_line(t, "currency =")),
    ("timezone", "missing", |t| drop_line(t, "timezone =")),
    ("earn", "missing", |t| cut(t, "[earn]", "[[tiers]]")),
    ("tiers", "missing", |t| cut(t, "[[tiers]]", "[tier_policy]")),
    ("tier_policy", "missing", |t| cut(t, "[tier_policy]", "[redeem]")),
    ("redeem", "missing", |t| cut(t, "[redeem]", "[expiry]")),
    ("expiry", "missing", |t| cut(t, "[expiry]", "[birthday]")),
    ("earn.unit_minor", "missing", |t| drop_line(t, "unit_minor = 100  ")),
    ("earn.points_per_unit", "missing", |t| {
        drop_line(t, "points_per_unit = 1\n")
    }),
    ("earn.brackets[0].multiplier_bp", "missing", |t| {
        drop_line(t, "multiplier_bp = 10000")
    }),
    ("earn.brackets[1].from_minor", "missing", |t| {
        drop_line(t, "from_minor = 50000")
    }),
    ("tiers[0].name", "missing", |t| drop_line(t, "name = \"standard\"")),
    ("tiers[1].discount_bp", "missing", |t| drop_line(t, "discount_bp = 300")),
    ("tiers[2].qualify", "missing", |t| drop_line(t, "qualify = 500000")),
    ("tier_policy.metric", "missing", |t| drop_line(t, "metric =")),
    ("tier_policy.window_days", "missing", |t| drop_line(t, "window_days =")),
    ("tier_policy.downgrade", "missing", |t| drop_line(t, "downgrade =")),
    ("redeem.points_per_unit", "missing", |t| {
        drop_line(t, "points_per_unit = 100")
    }),
    ("redeem.unit_minor", "missing", |t| {
        drop_line(t, "unit_minor = 100                     # so here")
    }),
    ("redeem.min_points", "missing", |t| drop_line(t, "min_points =")),
    ("redeem.max_share_bp", "missing", |t| drop_line(t, "max_share_bp =")),
    ("redeem.pin_required_from", "missing", |t| {
        drop_line(t, "pin_required_from =")
    }),
    ("redeem.offline_cap_points", "missing", |t| {
        drop_line(t, "offline_cap_points =")
    }),
    ("expiry.months", "missing", |t| drop_line(t, "months =")),
    ("birthday.multiplier_bp", "missing", |t| {
        drop_line(t, "multiplier_bp = 20000")
    }),
    ("birthday.scope", "missing", |t| drop_line(t, "scope =")),
    ("campaigns[0].id", "missing", |t| drop_line(t, "id = \"weekend-x2\"")),
    ("promotions[0].id", "missing", |t| drop_line(t, "id = \"m100-10\"")),
    ("promotions[0].min_minor", "missing", |t| {
        drop_line(t, "min_minor = 10000")
    }),
    ("promotions[0].off_minor", "missing", |t| {
        drop_line(t, "off_minor = 1000\n")
    }),
    ("coupon_types[0].id", "missing", |t| drop_line(t, "id = \"welcome5\"")),
    ("coupon_types[0].min_minor", "missing", |t| {
        drop_line(t, "min_minor = 3000")
    }),
    ("coupon_types[0].valid_days", "missing", |t| {
        drop_line(t, "valid_days =")
    }),
    ("rewards[0].sku", "missing", |t| drop_line(t, "sku =")),
    ("rewards[0].points", "missing", |t| drop_line(t, "points = 500")),
    ("rewards[0].stock", "missing", |t| drop_line(t, "stock =")),
    // wrong types: floats and strings where integers belong, and the like
    ("version", "invalid type", |t| rep(t, "version = 1", "version = \"1\"")),
    (
        "tiers[1].discount_bp",
        "floating point `3.5`, expected a whole number",
        |t| rep(t, "discount_bp = 300", "discount_bp = 3.5"),
    ),
    ("earn.unit_minor", "floating point", |t| {
        rep(t, "unit_minor = 100", "unit_minor = 1.0")
    }),
    ("excluded_categories", "invalid type", |t| {
        rep(t, "[\"tobacco\"]", "\"tobacco\"")
    }),
    ("excluded_categories[0]", "invalid type", |t| {
        rep(t, "[\"tobacco\"]", "[1]")
    }),
    ("campaigns[0].weekdays", "invalid type", |t| {
        rep(t, "[\"sat\", \"sun\"]", "\"sat\"")
    }),
    ("campaigns[0].weekdays[1]", "invalid type", |t| {
        rep(t, "[\"sat\", \"sun\"]", "[\"sat\", 7]")
    }),
    ("earn.brackets[0]", "expected a table", |t| {
        rep(
            &cut(t, "[[earn.brackets]]", "[[tiers]]"),
            "max_points_per_tx = 0",
            "brackets = [5]\nmax_points_per_tx = 0",
        )
    }),
    ("campaigns[0].starts", "quoted strings", |t| {
        rep(t, "\"2026-12-01T00:00:00\"", "2026-12-01T00:00:00")
    }),
    // version, currency, timezone
    ("version", "greater than 0", |t| rep(t, "version = 1", "version = 0")),
    ("version", "greater than 0", |t| rep(t, "version = 1", "version = -1")),
    ("version", "too large", |t| {
        rep(t, "version = 1", "version = 4294967296")
    }),
    ("currency", "3 upper-case", |t| rep(t, "\"CNY\"", "\"cny\"")),
    ("currency", "3 upper-case", |t| rep(t, "\"CNY\"", "\"CNYY\"")),
    ("currency", "3 upper-case", |t| rep(t, "\"CNY\"", "\"C1Y\"")),
    ("timezone", "unknown IANA", |t| rep(t, "Asia/Shanghai", "Mars/Olympus")),
    ("timezone", "unknown IANA", |t| rep(t, "Asia/Shanghai", "asia/shanghai")),
    // excluded categories
    ("excluded_categories[1]", "duplicate", |t| {
        rep(t, "[\"tobacco\"]", "[\"tobacco\", \"tobacco\"]")
    }),
    ("excluded_categories[0]", "empty", |t| rep(t, "[\"tobacco\"]", "[\"\"]")),
    // earn
    ("earn.unit_minor", "greater than 0", |t| {
        rep(t, "unit_minor = 100", "unit_minor = 0")
    }),
    ("earn.points_per_unit", "greater than 0", |t| {
        rep(t, "points_per_unit = 1\n", "points_per_unit = 0\n")
    }),
    ("earn.visit_bonus_points", "negative", |t| {
        rep(t, "visit_bonus_points = 0", "visit_bonus_points = -1")
    }),
    ("earn.visit_bonus_min_minor", "negative", |t| {
        rep(t, "visit_bonus_min_minor = 0", "visit_bonus_min_minor = -1")
    }),
    ("earn.max_points_per_tx", "negative", |t| {
        rep(t, "max_points_per_tx = 0", "max_points_per_tx = -1")
    }),
    ("earn.brackets", "at least one", |t| {
        rep(
            &cut(t, "[[earn.brackets]]", "[[tiers]]"),
            "max_points_per_tx = 0",
            "brackets = []\nmax_points_per_tx = 0",
        )
    }),
    ("earn.brackets[0].from_minor", "start at 0", |t| {
        rep(t, "from_minor = 0 ", "from_minor = 100 ")
    }),
    ("earn.brackets[0].from_minor", "negative", |t| {
        rep(t, "from_minor = 0 ", "from_minor = -1 ")
    }),
    ("earn.brackets[1].from_minor", "ascending", |t| {
        rep(t, "from_minor = 50000", "from_minor = 0")
    }),
    ("earn.brackets[2].from_minor", "ascending", |t| {
        rep(
            t,
            "multiplier_bp = 12000",
            "multiplier_bp = 12000\n[[earn.brackets]]\nfrom_minor = 40000\nmultiplier_bp = 15000",
        )
    }),
    ("earn.brackets[1].multiplier_bp", "greater than 0", |t| {
        rep(t, "multiplier_bp = 12000", "multiplier_bp = 0")
    }),
    ("earn.brackets[1].multiplier_bp", "greater than 0", |t| {
        rep(t, "multiplier_bp = 12000", "multiplier_bp = -12000")
    }),
    // tiers
    ("tiers", "at least one tier", |t| {
        rep(
            &cut(t, "[[tiers]]", "[tier_policy]"),
            "version = 1",
            "tiers = []\nversion = 1",
        )
    }),
    ("tiers[0].qualify", "first tier", |t| {
        rep(t, "qualify = 0 ", "qualify = 1 ")
    }),
    ("tiers[2].qualify", "ascending", |t| {
        rep(t, "qualify = 500000", "qualify = 100000")
    }),
    ("tiers[2].qualify", "ascending", |t| {
        rep(t, "qualify = 500000", "qualify = 50000")
    }),
    ("tiers[1].qualify", "negative", |t| {
        rep(t, "qualify = 100000", "qualify = -100000")
    }),
    ("tiers[2].name", "duplicate", |t| {
        rep(t, "name = \"gold\"", "name = \"silver\"")
    }),
    ("tiers[2].name", "empty", |t| rep(t, "name = \"gold\"", "name = \"\"")),
    ("tiers[1].discount_bp", "at most 10000", |t| {
        rep(t, "discount_bp = 300", "discount_bp = 10001")
    }),
    ("tiers[1].discount_bp", "negative", |t| {
        rep(t, "discount_bp = 300", "discount_bp = -1")
    }),
    ("tiers[2].multiplier_bp", "greater than 0", |t| {
        rep(t, "multiplier_bp = 15000", "multiplier_bp = 0")
    }),
    ("tiers[2].multiplier_bp", "greater than 0", |t| {
        rep(t, "multiplier_bp = 15000", "multiplier_bp = -15000")
    }),
    // tier policy
    ("tier_policy.metric", "unknown metric", |t| {
        rep(t, "\"spend\"", "\"revenue\"")
    }),
    ("tier_policy.metric", "unknown metric", |t| {
        rep(t, "\"spend\"", "\"Spend\"")
    }),
    ("tier_policy.window_days", "greater than 0", |t| {
        rep(t, "window_days = 365", "window_days = 0")
    }),
    ("tier_policy.window_days", "greater than 0", |t| {
        rep(t, "window_days = 365", "window_days = -365")
    }),
    ("tier_policy.downgrade", "unknown downgrade", |t| {
        rep(t, "\"never\"", "\"sometimes\"")
    }),
    // redeem
    ("redeem.points_per_unit", "greater than 0", |t| {
        rep(t, "points_per_unit = 100", "points_per_unit = 0")
    }),
    ("redeem.unit_minor", "greater than 0", |t| {
        rep(t, "unit_minor = 100                     # so", "unit_minor = 0 # so")
    }),
    ("redeem.min_points", "negative", |t| {
        rep(t, "min_points = 100", "min_points = -100")
    }),
    ("redeem.max_share_bp", "at most 10000", |t| {
        rep(t, "max_share_bp = 5000", "max_share_bp = 10001")
    }),
    ("redeem.max_share_bp", "negative", |t| {
        rep(t, "max_share_bp = 5000", "max_share_bp = -5000")
    }),
    ("redeem.pin_required_from", "negative", |t| {
        rep(t, "pin_required_from = 1000", "pin_required_from = -1")
    }),
    ("redeem.offline_cap_points", "negative", |t| {
        rep(t, "offline_cap_points = 2000", "offline_cap_points = -1")
    }),
    // expiry and birthday
    ("expiry.months", "negative", |t| rep(t, "months = 12", "months = -12")),
    ("birthday.multiplier_bp", "greater than 0", |t| {
        rep(t, "multiplier_bp = 20000", "multiplier_bp = 0")
    }),
    ("birthday.scope", "unknown scope", |t| rep(t, "\"day\"", "\"week\"")),
    // campaigns
    ("campaigns[0].starts", "YYYY-MM-DDTHH:MM:SS", |t| {
        rep(t, "2026-12-01T00:00:00", "2026-12-01 00:00:00")
    }),
    ("campaigns[0].starts", "YYYY-MM-DDTHH:MM:SS", |t| {
        rep(t, "2026-12-01T00:00:00", "2026-12-1T00:00:00")
    }),
    ("campaigns[0].starts", "YYYY-MM-DDTHH:MM:SS", |t| {
        rep(t, "2026-12-01T00:00:00", "2026-02-30T00:00:00")
    }),
    ("campaigns[0].starts", "YYYY-MM-DDTHH:MM:SS", |t| {
        rep(t, "2026-12-01T00:00:00", "2026-12-01T24:00:00")
    }),
    ("campaigns[0].starts", "YYYY-MM-DDTHH:MM:SS", |t| {
        rep(t, "2026-12-01T00:00:00", "2026-12-01T00:00:00Z")
    }),
    ("campaigns[0].ends", "YYYY-MM-DDTHH:MM:SS", |t| {
        rep(t, "2026-12-31T23:59:59", "2026-12-31T23:59:60")
    }),
    ("campaigns[0].ends", "before starts", |t| {
        rep(t, "2026-12-31T23:59:59", "2026-11-30T23:59:59")
    }),
    ("campaigns[0].weekdays[0]", "unknown weekday", |t| {
        rep(t, "[\"sat\", \"sun\"]", "[\"saturday\"]")
    }),
    ("campaigns[0].weekdays[1]", "unknown weekday", |t| {
        rep(t, "[\"sat\", \"sun\"]", "[\"sat\", \"Sun\"]")
    }),
    ("campaigns[0].weekdays[1]", "duplicate", |t| {
        rep(t, "[\"sat\", \"sun\"]", "[\"sat\", \"sat\"]")
    }),
    ("campaigns[0].tiers[0]", "unknown tier", |t| {
        rep(t, "tiers = []", "tiers = [\"platinum\"]")
    }),
    ("campaigns[0].tiers[1]", "duplicate", |t| {
        rep(t, "tiers = []", "tiers = [\"gold\", \"gold\"]")
    }),
    ("campaigns[0].multiplier_bp", "greater than 0", |t| {
        rep(t, "multiplier_bp = 20000\nbonus", "multiplier_bp = 0\nbonus")
    }),
    ("campaigns[0].bonus_points", "negative", |t| {
        rep(t, "\nbonus_points = 0", "\nbonus_points = -1")
    }),
    ("campaigns[0].id", "empty", |t| rep(t, "\"weekend-x2\"", "\"\"")),
    ("campaigns[1].id", "duplicate", |t| {
        append(t, "[[campaigns]]\nid = \"weekend-x2\"")
    }),
    // promotions
    ("promotions[0].min_minor", "negative", |t| {
        rep(t, "min_minor = 10000", "min_minor = -1")
    }),
    ("promotions[0].off_minor", "greater than 0", |t| {
        rep(t, "off_minor = 1000\n", "off_minor = 0\n")
    }),
    ("promotions[0].off_minor", "greater than 0", |t| {
        rep(t, "off_minor = 1000\n", "off_minor = -1000\n")
    }),
    ("promotions[0].tiers[0]", "unknown tier", |t| {
        rep(t, "off_minor = 1000\n", "tiers = [\"vip\"]\noff_minor = 1000\n")
    }),
    ("promotions[0].starts", "YYYY-MM-DDTHH:MM:SS", |t| {
        rep(t, "off_minor = 1000\n", "starts = \"tomorrow\"\noff_minor = 1000\n")
    }),
    ("promotions[0].ends", "before starts", |t| {
        rep(
            t,
            "off_minor = 1000\n",
            "starts = \"2026-01-02T00:00:00\"\nends = \"2026-01-01T23:59:59\"\noff_minor = 1000\n",
        )
    }),
    ("promotions[0].weekdays[0]", "unknown weekday", |t| {
        rep(t, "off_minor = 1000\n", "weekdays = [\"fr\"]\noff_minor = 1000\n")
    }),
    ("promotions[1].id", "duplicate", |t| {
        append(t, "[[promotions]]\nid = \"m100-10\"\nmin_minor = 1\noff_minor = 1")
    }),
    // coupon types
    ("coupon_types[0]", "both", |t| {
        rep(t, "off_minor = 500 ", "off_bp = 1000\noff_minor = 500 ")
    }),
    ("coupon_types[0]", "neither", |t| drop_line(t, "off_minor = 500 ")),
    ("coupon_types[0].off_minor", "greater than 0", |t| {
        rep(t, "off_minor = 500 ", "off_minor = 0 ")
    }),
    ("coupon_types[0].off_minor", "greater than 0", |t| {
        rep(t, "off_minor = 500 ", "off_minor = -500 ")
    }),
    ("coupon_types[0].off_bp", "greater than 0", |t| {
        rep(t, "off_minor = 500 ", "off_bp = 0 ")
    }),
    ("coupon_types[0].off_bp", "at most 10000", |t| {
        rep(t, "off_minor = 500 ", "off_bp = 10001 ")
    }),
    ("coupon_types[0].min_minor", "negative", |t| {
        rep(t, "min_minor = 3000", "min_minor = -3000")
    }),
    ("coupon_types[0].valid_days", "greater than 0", |t| {
        rep(t, "valid_days = 30", "valid_days = 0")
    }),
    ("coupon_types[1].id", "duplicate", |t| {
        append(
            t,
            "[[coupon_types]]\nid = \"welcome5\"\noff_bp = 1\nmin_minor = 0\nvalid_days = 1",
        )
    }),
    // rewards
    ("rewards[0].points", "greater than 0", |t| {
        rep(t, "points = 500", "points = 0")
    }),
    ("rewards[0].points", "greater than 0", |t| {
        rep(t, "points = 500", "points = -500")
    }),
    ("rewards[0].stock", "negative", |t| rep(t, "stock = 20", "stock = -1")),
    ("rewards[0].sku", "empty", |t| rep(t, "\"mug\"", "\"\"")),
    ("rewards[1].sku", "duplicate", |t| {
        append(t, "[[rewards]]\nsku = \"mug\"\npoints = 1\nstock = 0")
    }),
    // values bounded so that sums and day arithmetic cannot overflow
    ("campaigns[0].bonus_points", "at most 1000000", |t| {
        rep(t, "\nbonus_points = 0", "\nbonus_points = 1000001")
    }),
    ("earn.visit_bonus_points", "at most 1000000", |t| {
        rep(
            t,
            "visit_bonus_points = 0 ",
            "visit_bonus_points = 9223372036854775807 ",
        )
    }),
    ("coupon_types[0].valid_days", "at most 36525", |t| {
        rep(t, "valid_days = 30", "valid_days = 2147483647")
    }),
    // 0.2: promotion kinds
    ("promotions[0].kind", "unknown kind", |t| promo(t, "kind = \"bogo\"")),
    ("promotions[0].kind", "unknown kind", |t| promo(t, "kind = \"Every\"")),
    ("promotions[0].step_minor", "not used by kind = \"threshold\"", |t| {
        promo(t, "step_minor = 100")
    }),
    ("promotions[0].max_off_minor", "not used by kind = \"threshold\"", |t| {
        promo(t, "max_off_minor = 100")
    }),
    ("promotions[0].off_bp", "not used by kind = \"threshold\"", |t| {
        promo(t, "kind = \"threshold\"\noff_bp = 100")
    }),
    ("promotions[1].step_minor", "missing", |t| {
        with(t, EVERY, "step_minor = 10000\n", "")
    }),
    ("promotions[1].step_minor", "greater than 0", |t| {
        with(t, EVERY, "step_minor = 10000", "step_minor = 0")
    }),
    ("promotions[1].off_minor", "missing", |t| {
        with(t, EVERY, "off_minor = 700\n", "")
    }),
    ("promotions[1].off_minor", "greater than 0", |t| {
        with(t, EVERY, "off_minor = 700", "off_minor = -700")
    }),
    ("promotions[1].max_off_minor", "at least off_minor (700)", |t| {
        with(t, EVERY, "off_minor = 700", "off_minor = 700\nmax_off_minor = 699")
    }),
    ("promotions[1].min_minor", "negative", |t| {
        with(t, EVERY, "off_minor = 700", "off_minor = 700\nmin_minor = -1")
    }),
    ("promotions[1].off_bp", "not used by kind = \"every\"", |t| {
        with(t, EVERY, "off_minor = 700", "off_minor = 700\noff_bp = 1")
    }),
    ("promotions[1].off_bp", "missing", |t| {
        with(t, PERCENT, "off_bp = 1200\n", "")
    }),
    ("promotions[1].min_minor", "missing", |t| {
        with(t, PERCENT, "min_minor = 4321\n", "")
    }),
    ("promotions[1].off_bp", "at most 10000", |t| {
        with(t, PERCENT, "off_bp = 1200", "off_bp = 10001")
    }),
    ("promotions[1].off_bp", "greater than 0", |t| {
        with(t, PERCENT, "off_bp = 1200", "off_bp = 0")
    }),
    ("promotions[1].off_minor", "not used by kind = \"percent\"", |t| {
        with(t, PERCENT, "off_bp = 1200", "off_bp = 1200\noff_minor = 5")
    }),
    ("promotions[1].step_minor", "not used by kind = \"percent\"", |t| {
        with(t, PERCENT, "off_bp = 1200", "off_bp = 1200\nstep_minor = 5")
    }),
    // 0.2: promotion scopes
    ("promotions[0].skus", "mutually exclusive", |t| {
        promo(t, "categories = [\"produce\"]\nskus = [\"rice\"]")
    }),
    ("promotions[0].categories[1]", "excluded category", |t| {
        promo(t, "categories = [\"produce\", \"tobacco\"]")
    }),
    ("promotions[0].categories", "must not be empty", |t| {
        promo(t, "categories = []")
    }),
    ("promotions[0].skus", "must not be empty", |t| promo(t, "skus = []")),
    ("promotions[0].skus[1]", "duplicate", |t| {
        promo(t, "skus = [\"rice\", \"rice\"]")
    }),
    ("promotions[0].skus[0]", "empty", |t| promo(t, "skus = [\" \"]")),
    ("promotions[0].categories[0]", "invalid type", |t| {
        promo(t, "categories = [1]")
    }),
    ("promotions[0].categories", "invalid type", |t| {
        promo(t, "categories = \"produce\"")
    }),
    // 0.2: tier gifts
    ("tiers[1].gift_points", "greater than 0", |t| {
        rep(t, "discount_bp = 300", "discount_bp = 300\ngift_points = 0")
    }),
    ("tiers[1].gift_points", "at most 1000000", |t| {
        rep(t, "discount_bp = 300", "discount_bp = 300\ngift_points = 1000001")
    }),
    ("tiers[2].gift_coupon", "unknown coupon type \"gold20\"", |t| {
        rep(t, "discount_bp = 500", "discount_bp = 500\ngift_coupon = \"gold20\"")
    }),
    ("tiers[0].gift_points", "first tier", |t| {
        rep(t, "discount_bp = 0", "discount_bp = 0\ngift_points = 10")
    }),
    ("tiers[0].gift_coupon", "first tier", |t| {
        rep(t, "discount_bp = 0", "discount_bp = 0\ngift_coupon = \"welcome5\"")
    }),
    ("tiers[2].gift_coupon", "invalid type", |t| {
        rep(t, "discount_bp = 500", "discount_bp = 500\ngift_coupon = 5")
    }),
    // 0.2: the growth score
    ("tier_policy.score", "required with metric = \"score\"", |t| {
        rep(t, "\"spend\"", "\"score\"")
    }),
    ("tier_policy.score", "only with metric = \"score\"", |t| {
        append(t, SCORE)
    }),
    ("tier_policy.score.spend_unit_minor", "greater than 0", |t| {
        with(
            &rep(t, "\"spend\"", "\"score\""),
            SCORE,
            "spend_unit_minor = 100",
            "spend_unit_minor = 0",
        )
    }),
    ("tier_policy.score.visits_bp", "negative", |t| {
        with(
            &rep(t, "\"spend\"", "\"score\""),
            SCORE,
            "visits_bp = 3000",
            "visits_bp = -1",
        )
    }),
    ("tier_policy.score.spend_bp", "at most 1000000", |t| {
        with(
            &rep(t, "\"spend\"", "\"score\""),
            SCORE,
            "spend_bp = 6000",
            "spend_bp = 1000001",
        )
    }),
    ("tier_policy.score.activity_points", "at most 1000000", |t| {
        with(
            &rep(t, "\"spend\"", "\"score\""),
            SCORE,
            "activity_points = 100",
            "activity_points = 1000001",
        )
    }),
    ("tier_policy.score.activity_points", "missing", |t| {
        with(&rep(t, "\"spend\"", "\"score\""), SCORE, "activity_points = 100\n", "")
    }),
    ("tier_policy.score.bogus", "unknown field", |t| {
        with(
            &rep(t, "\"spend\"", "\"score\""),
            SCORE,
            "spend_bp",
            "bogus = 1\nspend_bp",
        )
    }),
    ("tier_policy.score", "every term is 0", |t| {
        let t = with(
            &rep(t, "\"spend\"", "\"score\""),
            SCORE,
            "spend_bp = 6000",
            "spend_bp = 0",
        );
        rep(
            &rep(&t, "visit_points = 100", "visit_points = 0"),
            "activity_bp = 1000",
            "activity_bp = 0",
        )
    }),
    ("tier_policy.score", "expected a table", |t| {
        rep(t, "metric = \"spend\"", "metric = \"score\"\nscore = 5")
    }),
    // 0.2: coupons for points
    ("coupon_types[0].exchange_points", "greater than 0", |t| {
        rep(t, "valid_days = 30", "valid_days = 30\nexchange_points = 0")
    }),
    ("coupon_types[0].exchange_points", "greater than 0", |t| {
        rep(t, "valid_days = 30", "valid_days = 30\nexchange_points = -800")
    }),
    ("coupon_types[0].exchange_points", "floating point", |t| {
        rep(t, "valid_days = 30", "valid_days = 30\nexchange_points = 8.5")
    }),
    // 0.2: activities
    ("activities[0].points", "greater than 0", |t| {
        with(t, ACTIVITY, "points = 7", "points = 0")
    }),
    ("activities[0].points", "at most 1000000", |t| {
        with(t, ACTIVITY, "points = 7", "points = 1000001")
    }),
    ("activities[0].max_per_day", "negative", |t| {
        with(t, ACTIVITY, "points = 7", "points = 7\nmax_per_day = -1")
    }),
    ("activities[0].max_total", "negative", |t| {
        with(t, ACTIVITY, "points = 7", "points = 7\nmax_total = -1")
    }),
    ("activities[0].points", "missing", |t| {
        with(t, ACTIVITY, "points = 7\n", "")
    }),
    ("activities[0].id", "empty", |t| {
        with(t, ACTIVITY, "\"checkin\"", "\"\"")
    }),
    ("activities[0].bogus", "unknown field", |t| {
        with(t, ACTIVITY, "points = 7", "points = 7\nbogus = 1")
    }),
    ("activities[1].id", "duplicate", |t| {
        append(&append(t, ACTIVITY), ACTIVITY)
    }),
    // 0.2: triggers
    ("triggers[0].coupon", "unknown coupon type \"welcome6\"", |t| {
        with(t, TRIGGER, "\"welcome5\"\n", "\"welcome6\"\n")
    }),
    ("triggers[0].coupon", "missing", |t| {
        with(t, TRIGGER, "coupon = \"welcome5\"\n", "")
    }),
    ("triggers[0].on", "unknown event", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"signup\"")
    }),
    ("triggers[0].on", "missing", |t| {
        with(t, TRIGGER, "on = \"enrol\"\n", "")
    }),
    ("triggers[0].nth", "missing", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"visit\"")
    }),
    ("triggers[0].nth", "greater than 0", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"visit\"\nnth = 0")
    }),
    ("triggers[0].days", "missing", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"inactive\"")
    }),
    ("triggers[0].days", "greater than 0", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"inactive\"\ndays = -60")
    }),
    ("triggers[0].days", "at most 36525", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"inactive\"\ndays = 36526")
    }),
    ("triggers[0].tier", "missing", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"tier_up\"")
    }),
    ("triggers[0].tier", "unknown tier \"platinum\"", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"tier_up\"\ntier = \"platinum\"")
    }),
    ("triggers[0].tier", "first tier", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"tier_up\"\ntier = \"standard\"")
    }),
    ("triggers[0].nth", "not used by on = \"enrol\"", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"enrol\"\nnth = 1")
    }),
    ("triggers[0].tier", "not used by on = \"birthday\"", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"birthday\"\ntier = \"gold\"")
    }),
    ("triggers[0].days", "not used by on = \"visit\"", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"visit\"\nnth = 1\ndays = 3")
    }),
    ("triggers[0].nth", "not used by on = \"tier_up\"", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"tier_up\"\ntier = \"gold\"\nnth = 3")
    }),
    ("triggers[0].bogus", "unknown field", |t| {
        with(t, TRIGGER, "\"enrol\"", "\"enrol\"\nbogus = 1")
    }),
    ("triggers[1].id", "duplicate", |t| append(&append(t, TRIGGER), TRIGGER)),
    // 0.2: group buys
    ("group_buys[0].group_price_minor", "negative", |t| {
        with(t, GROUP, "group_price_minor = 9900", "group_price_minor = -1")
    }),
    ("group_buys[0].size", "at least 2", |t| {
        with(t, GROUP, "size = 3", "size = 1")
    }),
    ("group_buys[0].size", "at least 2", |t| {
        with(t, GROUP, "size = 3", "size = -3")
    }),
    ("group_buys[0].window_hours", "greater than 0", |t| {
        with(t, GROUP, "window_hours = 24", "window_hours = 0")
    }),
    ("group_buys[0].ends", "before starts", |t| {
        with(t, GROUP, "2026-12-31T23:59:59", "2026-11-30T23:59:59")
    }),
    ("group_buys[0].starts", "YYYY-MM-DDTHH:MM:SS", |t| {
        with(t, GROUP, "2026-12-01T00:00:00", "2026-12-01")
    }),
    ("group_buys[0].starts", "quoted strings", |t| {
        with(t, GROUP, "\"2026-12-01T00:00:00\"", "2026-12-01T00:00:00")
    }),
    ("group_buys[0].sku", "missing", |t| {
        with(t, GROUP, "sku = \"hotpot-set\"\n", "")
    }),
    ("group_buys[0].sku", "empty", |t| {
        with(t, GROUP, "\"hotpot-set\"", "\"\"")
    }),
    ("group_buys[0].group_price_minor", "floating point", |t| {
        with(t, GROUP, "group_price_minor = 9900", "group_price_minor = 99.0")
    }),
    ("group_buys[0].bogus", "unknown field", |t| {
        with(t, GROUP, "size = 3", "size = 3\nbogus = 1")
    }),
    ("group_buys[1].id", "duplicate", |t| append(&append(t, GROUP), GROUP)),
    ("bogus_lists", "unknown field", |t| {
        append(t, "[[bogus_lists]]\nid = \"x\"")
    }),
];

#[test]
fn refusals_name_the_field() {
    let mut failures = Vec::new();
    for (i, (field, reason, mutate)) in REFUSED.iter().enumerate() {
        let text = mutate(EXAMPLE);
        match parse(&text) {
            Ok(_) => failures.push(format!("#{i} ({field}): accepted")),
            Err(e) => {
                if e.file != "rules.toml" || e.field != *field || !e.reason.contains(reason) {
                    failures.push(format!(
                        "#{i}: wanted {field} / ...{reason}..., got {} / {}",
                        e.field, e.reason
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_display_names_file_field_and_reason() {
    let e = parse(&rep(EXAMPLE, "discount_bp = 300", "discount_bp = 10001")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "rules.toml: tiers[1].discount_bp: must be at most 10000 (got 10001)"
    );
}

#[test]
fn load_reads_the_file_and_fingerprints_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let r = Ruleset::load(&path).unwrap();
    assert_eq!(r, expected_example());
    let expected: [u8; 32] = Sha256::digest(std::fs::read(&path).unwrap()).into();
    assert_eq!(r.fingerprint, expected);

    // Any change to the text, even a comment, changes the fingerprint.
    let r2 = Ruleset::parse(&format!("{EXAMPLE}# edited\n"), "x").unwrap();
    assert_ne!(r2.fingerprint, r.fingerprint);

    std::fs::write(&path, rep(EXAMPLE, "months = 12", "months = -1")).unwrap();
    let e = Ruleset::load(&path).unwrap_err();
    assert_eq!(e.file, path.display().to_string());
    assert_eq!(e.field, "expiry.months");

    let missing = dir.path().join("nope.toml");
    let e = Ruleset::load(&missing).unwrap_err();
    assert_eq!(e.file, missing.display().to_string());
    assert_eq!(e.field, "(file)");
}

#[test]
fn longest_validity_and_expiry_stay_in_the_calendar() {
    let text = rep(EXAMPLE, "valid_days = 30", &format!("valid_days = {MAX_VALID_DAYS}"));
    let r = parse(&rep(&text, "months = 12", &format!("months = {MAX_EXPIRY_MONTHS}"))).unwrap();
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
    let until = r.coupon_types[0].valid_until(crate::model::day_no(last));
    assert_eq!((crate::model::day_date(until) - last).num_days(), MAX_VALID_DAYS - 1);
    let at = crate::model::parse_instant("9999-12-31T23:59:59Z").unwrap();
    assert!(crate::rules::lots::expires_at(&r, at).is_some_and(|e| e > at));
}

#[test]
fn lookups() {
    let r = parse(EXAMPLE).unwrap();
    assert_eq!(r.tier("silver").unwrap().discount_bp, 300);
    assert!(r.tier("Silver").is_none());
    assert_eq!(r.coupon_type("welcome5").unwrap().min_minor, 3000);
    assert!(r.coupon_type("welcome6").is_none());
    assert_eq!(r.reward("mug").unwrap().points, 500);
    assert!(r.reward("cup").is_none());
    assert!(r.is_excluded("tobacco"));
    assert!(!r.is_excluded("grocery"));
}

#[test]
fn window_open_at() {
    let r = parse(EXAMPLE).unwrap();
    let w = &r.campaigns[0].window;
    // Worked example 2: Saturday 2026-12-05 11:00 is inside; example 1's Tuesday is not.
    assert!(w.open_at(dt("2026-12-05T11:00:00"), "gold"));
    assert!(!w.open_at(dt("2026-11-24T10:00:00"), "standard"));
    // Weekday filter inside the date range: Tuesday 2026-12-08.
    assert!(!w.open_at(dt("2026-12-08T11:00:00"), "gold"));
    // Both ends inclusive (2026-12-31 is a Thursday, so test the end on a weekend-only
    // copy without the weekday limit).
    let mut all_days = w.clone();
    all_days.weekdays.clear();
    assert!(all_days.open_at(dt("2026-12-01T00:00:00"), "standard"));
    assert!(all_days.open_at(dt("2026-12-31T23:59:59"), "standard"));
    let last_second = NaiveDate::from_ymd_opt(2026, 12, 31)
        .unwrap()
        .and_hms_milli_opt(23, 59, 59, 999)
        .unwrap();
    assert!(all_days.open_at(last_second, "standard"));
    assert!(!all_days.open_at(dt("2027-01-01T00:00:00"), "standard"));
    assert!(!all_days.open_at(dt("2026-11-30T23:59:59"), "standard"));
    // Tier filter.
    let mut gold_only = all_days.clone();
    gold_only.tiers = vec!["gold".into()];
    assert!(gold_only.open_at(dt("2026-12-02T12:00:00"), "gold"));
    assert!(!gold_only.open_at(dt("2026-12-02T12:00:00"), "silver"));
    // No limits at all: always open.
    assert!(window_all().open_at(dt("1999-01-01T00:00:00"), "anyone"));
}
