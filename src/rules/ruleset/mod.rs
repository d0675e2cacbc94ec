//! The ruleset file (`config/rules.toml`): parsing, validation and lookups.
//!
//! The contract is `shared/spec/rules.md`, section "The ruleset file (TOML)". A ruleset is
//! either accepted whole or refused with an error naming the file, the field (as a TOML path
//! such as `tiers[1].discount_bp`) and the reason. Nothing is ever corrected or defaulted
//! beyond what the contract allows, because a silently "fixed" ruleset would price
//! checkouts differently from what the shop owner wrote.

mod campaigns;
mod raw;
mod validate;

use std::path::Path;

use chrono::{Datelike, NaiveDateTime, Timelike, Weekday};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use raw::RawRuleset;
use validate::{reject_datetimes, Cx};

/// 10000 basis points = 1x; the neutral multiplier.
const ONE_X_BP: i64 = 10_000;

/// The largest multiplier a ruleset may set (100x).
pub const MAX_MULTIPLIER_BP: i64 = 1_000_000;
/// The largest `unit_minor` and `points_per_unit` (earning and redemption): 10,000.00 a
/// unit, a million points a unit. Larger rates price nothing a shop sells, and bounding
/// them keeps every product of the arithmetic far from overflow.
pub const MAX_RATE: i64 = 1_000_000;

/// The most bonus points one campaign or the visit bonus may give: with every campaign
/// of a ruleset adding its bonus, a sale's points stay far inside i64.
pub const MAX_BONUS_POINTS: i64 = 1_000_000;

/// Longest coupon validity and point expiry a ruleset may set: 100 years, so that every
/// date derived from them exists in the calendar.
pub const MAX_VALID_DAYS: i64 = 36_525;
pub const MAX_EXPIRY_MONTHS: i64 = 1_200;

/// A validated ruleset. Every value in here has passed the checks in [`Ruleset::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub version: u32,
    pub currency: String,
    pub timezone: Tz,
    pub excluded_categories: Vec<String>,
    pub earn: Earn,
    pub tiers: Vec<Tier>,
    pub tier_policy: TierPolicy,
    pub redeem: Redeem,
    pub expiry: Expiry,
    pub birthday: Option<Birthday>,
    pub campaigns: Vec<Campaign>,
    pub promotions: Vec<Promotion>,
    pub coupon_types: Vec<CouponType>,
    pub rewards: Vec<Reward>,
    pub activities: Vec<Activity>,
    pub triggers: Vec<Trigger>,
    pub group_buys: Vec<GroupBuy>,
    /// SHA-256 of the file text, to record which ruleset priced a transaction.
    pub fingerprint: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earn {
    pub unit_minor: i64,
    pub points_per_unit: i64,
    pub visit_bonus_points: i64,
    pub visit_bonus_min_minor: i64,
    /// 0 = no cap.
    pub max_points_per_tx: i64,
    /// Strictly ascending by `from_minor`, the first at 0. When the file has no brackets,
    /// exactly one bracket `{0, 10000}`, so pricing never needs a special case.
    pub brackets: Vec<Bracket>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bracket {
    pub from_minor: i64,
    pub multiplier_bp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub name: String,
    pub qualify: i64,
    pub discount_bp: i64,
    pub multiplier_bp: i64,
    /// Given once per member, the first time a checkout takes the member to this tier
    /// (0 = none; the first tier cannot carry a gift: nobody reaches it at a checkout).
    pub gift_points: i64,
    /// A coupon type issued with the gift.
    pub gift_coupon: Option<String>,
}

impl Tier {
    pub fn has_gift(&self) -> bool {
        self.gift_points > 0 || self.gift_coupon.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierPolicy {
    pub metric: TierMetric,
    pub window_days: u32,
    pub downgrade: Downgrade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierMetric {
    Spend,
    Points,
    Visits,
    /// The growth score (成长值) of rules.md 0.2.
    Score(Score),
}

/// `[tier_policy.score]`: the weights of the growth score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    pub spend_unit_minor: i64,
    pub spend_bp: i64,
    pub visit_points: i64,
    pub visits_bp: i64,
    pub activity_points: i64,
    pub activity_bp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downgrade {
    Never,
    Rolling,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeem {
    pub points_per_unit: i64,
    pub unit_minor: i64,
    pub min_points: i64,
    pub max_share_bp: i64,
    /// 0 = a PIN is never required.
    pub pin_required_from: i64,
    pub offline_cap_points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// 0 = points never expire.
    pub months: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Birthday {
    pub multiplier_bp: i64,
    pub scope: BirthdayScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BirthdayScope {
    Day,
    Month,
}

/// When a campaign or promotion applies. Every limit is optional; an absent one does not limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Local time, inclusive.
    pub starts: Option<NaiveDateTime>,
    /// Local time, inclusive.
    pub ends: Option<NaiveDateTime>,
    /// Empty = every day.
    pub weekdays: Vec<Weekday>,
    /// Tier names; empty = every tier.
    pub tiers: Vec<String>,
}

impl Window {
    /// True when the local date-time is inside [starts, ends] (inclusive), on one of the
    /// weekdays (empty = all), and the tier is listed (empty = all).
    pub fn open_at(&self, local: NaiveDateTime, tier: &str) -> bool {
        // The file states times to the second and `ends` is inclusive, so an instant anywhere
        // inside the last second (e.g. 23:59:59.7) still belongs to the window.
        let local = local.with_nanosecond(0).unwrap_or(local);
        self.starts.is_none_or(|starts| starts <= local)
            && self.ends.is_none_or(|ends| local <= ends)
            && (self.weekdays.is_empty() || self.weekdays.contains(&local.weekday()))
            && (self.tiers.is_empty() || self.tiers.iter().any(|t| t == tier))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: String,
    pub window: Window,
    /// 10000 when absent (a bonus-only campaign).
    pub multiplier_bp: i64,
    pub bonus_points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub id: String,
    pub window: Window,
    pub kind: PromotionKind,
    pub scope: Scope,
}

/// How a promotion's value follows from its base (rules.md 0.2, "Promotions: kinds and scope").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotionKind {
    /// `off_minor` when the base reaches `min_minor` (the 0.1 promotion).
    Threshold { min_minor: i64, off_minor: i64 },
    /// `off_minor` for every full `step_minor` of the base (每满减), capped at `max_off_minor`.
    Every {
        min_minor: i64,
        step_minor: i64,
        off_minor: i64,
        max_off_minor: Option<i64>,
    },
    /// `off_bp` of the base when it reaches `min_minor`.
    Percent { min_minor: i64, off_bp: i64 },
}

/// The lines a promotion looks at, within the eligible ones. Lists are never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Categories(Vec<String>),
    Skus(Vec<String>),
}

impl Scope {
    /// Exact, case-sensitive, as `excluded_categories`.
    pub fn covers(&self, sku: &str, category: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Categories(c) => c.iter().any(|c| c == category),
            Scope::Skus(s) => s.iter().any(|s| s == sku),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponType {
    pub id: String,
    pub value: CouponValue,
    pub min_minor: i64,
    pub valid_days: u32,
    /// A member may buy the coupon for this many points; `None`: it cannot be bought.
    pub exchange_points: Option<i64>,
}

impl CouponType {
    /// The last local date a coupon issued on `issued` is valid (`valid_days` counts the
    /// issue date).
    pub fn valid_until(&self, issued: crate::model::DayNo) -> crate::model::DayNo {
        // valid_days <= MAX_VALID_DAYS, so this fits for any issue date.
        issued + self.valid_days as crate::model::DayNo - 1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponValue {
    OffMinor(i64),
    OffBp(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reward {
    pub sku: String,
    pub points: i64,
    pub stock: i64,
}

/// `[[activities]]`: points for taking part, outside any sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub id: String,
    pub points: i64,
    /// Grants per member per local date; 0 = no limit.
    pub max_per_day: i64,
    /// Grants per member ever; 0 = no limit.
    pub max_total: i64,
}

/// `[[triggers]]`: a coupon a member earns by behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub id: String,
    pub on: TriggerOn,
    /// A coupon type of this ruleset.
    pub coupon: String,
}

impl Trigger {
    /// Fired by the daily pass (birthday, inactivity), not by a commit.
    pub fn is_daily(&self) -> bool {
        matches!(self.on, TriggerOn::Birthday | TriggerOn::Inactive { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerOn {
    Enrol,
    /// The member's birthday, with the scope of `[birthday]` (day when the section is absent).
    Birthday,
    /// The member's `nth` visit (checkout with total > 0).
    Visit {
        nth: i64,
    },
    /// `days` local days without a visit.
    Inactive {
        days: i64,
    },
    /// The first time the member reaches this tier (an index into `tiers`, never 0).
    TierUp {
        tier: usize,
    },
}

/// `[[group_buys]]`: a deal members buy together (团购).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBuy {
    pub id: String,
    pub sku: String,
    pub group_price_minor: i64,
    pub size: u32,
    pub window_hours: u32,
    /// Local time, inclusive; absent = no limit (groups open and join within it).
    pub starts: Option<NaiveDateTime>,
    pub ends: Option<NaiveDateTime>,
}

impl GroupBuy {
    /// May a group of this deal be opened or joined at this local time?
    pub fn open_at(&self, local: NaiveDateTime) -> bool {
        let local = local.with_nanosecond(0).unwrap_or(local);
        self.starts.is_none_or(|s| s <= local) && self.ends.is_none_or(|e| local <= e)
    }

    /// The instant a group opened at `opened_at` fails unless it is full by then.
    pub fn group_expires_at(&self, opened_at: crate::model::Ts) -> crate::model::Ts {
        opened_at + self.window_hours as i64 * 3_600_000_000
    }
}

/// Why a ruleset was refused: the file, the field as a TOML path, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct RulesetError {
    pub file: String,
    pub field: String,
    pub reason: String,
}

impl Ruleset {
    /// Reads and parses the ruleset at `path`; errors name the file as `path` displays.
    pub fn load(path: &Path) -> Result<Ruleset, RulesetError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RulesetError {
            file: file.clone(),
            field: "(file)".to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        Ruleset::parse(&text, &file)
    }

    /// Parses and validates ruleset text; `file` is only used to name the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Ruleset, RulesetError> {
        let cx = Cx { file };
        let table: toml::Table = text.parse().map_err(|e| cx.syntax(text, &e))?;
        reject_datetimes(&cx, &table, "")?;
        let raw: RawRuleset = cx.de(toml::Value::Table(table), "")?;
        let mut ruleset = raw.validate(&cx)?;
        ruleset.fingerprint = Sha256::digest(text.as_bytes()).into();
        Ok(ruleset)
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.name == name)
    }

    pub fn coupon_type(&self, id: &str) -> Option<&CouponType> {
        self.coupon_types.iter().find(|c| c.id == id)
    }

    pub fn reward(&self, sku: &str) -> Option<&Reward> {
        self.rewards.iter().find(|r| r.sku == sku)
    }

    pub fn activity(&self, id: &str) -> Option<&Activity> {
        self.activities.iter().find(|a| a.id == id)
    }

    pub fn group_buy(&self, id: &str) -> Option<&GroupBuy> {
        self.group_buys.iter().find(|g| g.id == id)
    }

    /// Exact, case-sensitive match, as written in `excluded_categories`.
    pub fn is_excluded(&self, category: &str) -> bool {
        self.excluded_categories.iter().any(|c| c == category)
    }
}

#[cfg(test)]
mod campaign_tests;
#[cfg(test)]
mod tests;
