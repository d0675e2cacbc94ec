//! The loyalty rules of `shared/spec/rules.md`: pure functions of their inputs.
//!
//! Architecture invariant: nothing under `rules` does I/O or reads a clock. The business
//! instant is an argument, so the same inputs give the same receipt on every terminal,
//! on the hub, and in tests.

pub mod activity;
pub mod alloc;
pub mod lots;
pub mod price;
pub mod promo;
pub mod refund;
pub mod ruleset;
pub mod tier;
pub mod triggers;

pub use price::{
    authorise_redemption, price, CampaignFacts, CouponView, GroupBuyUnit, GroupBuyUse, PinCheck, Priced, PricedLine,
    Request, TierGift,
};
pub use ruleset::Ruleset;

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone};

use crate::model::{ts_from, ts_to, Birthday, Ts};
use ruleset::BirthdayScope;

/// The shop-local date and time of an instant.
pub fn local(rules: &Ruleset, at: Ts) -> NaiveDateTime {
    ts_to(at).with_timezone(&rules.timezone).naive_local()
}

pub fn local_date(rules: &Ruleset, at: Ts) -> NaiveDate {
    local(rules, at).date()
}

/// The first instant of a local date (the earliest one when a DST change repeats or
/// skips midnight).
pub fn start_of_day(tz: &chrono_tz::Tz, date: NaiveDate) -> Ts {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    let mut probe = midnight;
    // Zones that skip midnight start the day at the first valid minute after it.
    for _ in 0..180 {
        if let Some(dt) = tz.from_local_datetime(&probe).earliest() {
            return ts_from(dt.with_timezone(&chrono::Utc));
        }
        probe += chrono::Duration::minutes(1);
    }
    ts_from(midnight.and_utc())
}

/// Scope "day": the same month and day (a 02-29 birthday is kept on 02-28 in other
/// years); scope "month": the same month.
pub fn birthday_matches(scope: BirthdayScope, b: Birthday, date: NaiveDate) -> bool {
    let (m, d) = (date.month() as u8, date.day() as u8);
    match scope {
        BirthdayScope::Month => b.month == m,
        BirthdayScope::Day => {
            let leap = NaiveDate::from_ymd_opt(date.year(), 2, 29).is_some();
            (b.month, b.day) == (m, d) || (!leap && (b.month, b.day) == (2, 29) && (m, d) == (2, 28))
        }
    }
}

/// The example ruleset of rules.md, for tests across the crate.
#[cfg(test)]
pub(crate) mod testing {
    use super::Ruleset;

    pub const EXAMPLE: &str = r#"
version = 1
currency = "CNY"
timezone = "Asia/Shanghai"
excluded_categories = ["tobacco"]
[earn]
unit_minor = 100
points_per_unit = 1
visit_bonus_points = 0
visit_bonus_min_minor = 0
max_points_per_tx = 0
[[earn.brackets]]
from_minor = 0
multiplier_bp = 10000
[[earn.brackets]]
from_minor = 50000
multiplier_bp = 12000
[[tiers]]
name = "standard"
qualify = 0
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
metric = "spend"
window_days = 365
downgrade = "never"
[redeem]
points_per_unit = 100
unit_minor = 100
min_points = 100
max_share_bp = 5000
pin_required_from = 1000
offline_cap_points = 2000
[expiry]
months = 12
[birthday]
multiplier_bp = 20000
scope = "day"
[[campaigns]]
id = "weekend-x2"
starts = "2026-12-01T00:00:00"
ends = "2026-12-31T23:59:59"
weekdays = ["sat", "sun"]
tiers = []
multiplier_bp = 20000
bonus_points = 0
[[promotions]]
id = "m100-10"
min_minor = 10000
off_minor = 1000
[[coupon_types]]
id = "welcome5"
off_minor = 500
min_minor = 3000
valid_days = 30
[[rewards]]
sku = "mug"
points = 500
stock = 20
"#;

    /// The example, with extra TOML appended (e.g. another promotion).
    pub fn example_with(extra: &str) -> Ruleset {
        Ruleset::parse(&format!("{EXAMPLE}{extra}"), "example.toml").expect("example ruleset")
    }

    pub fn example() -> Ruleset {
        example_with("")
    }

    /// Worked example 2 adds this promotion.
    pub const M200: &str = "[[promotions]]\nid = \"m200-25\"\nmin_minor = 20000\noff_minor = 2500\n";

    /// The shipped config, whose comments hold the 0.2 examples and their worked figures.
    pub const SHIPPED: &str = include_str!("../../config/rules.toml");

    /// The shipped config with its switched-off example settings (lines of `#` and then no
    /// space) switched on; `score` also switches the tier metric to the growth score,
    /// whose table is otherwise left out.
    pub fn shipped_switched_on(score: bool) -> String {
        let mut out = String::with_capacity(SHIPPED.len());
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

    /// The 0.2 example ruleset: the shipped one with every example setting on but the score.
    pub fn campaigns() -> Ruleset {
        Ruleset::parse(&shipped_switched_on(false), "rules.toml").expect("the shipped examples")
    }
}
