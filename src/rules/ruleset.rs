//! The ruleset file (`config/rules.toml`): parsing, validation and lookups.
//!
//! The contract is `shared/spec/rules.md`, section "The ruleset file (TOML)". A ruleset is
//! either accepted whole or refused with an error naming the file, the field (as a TOML path
//! such as `tiers[1].discount_bp`) and the reason. Nothing is ever corrected or defaulted
//! beyond what the contract allows, because a silently "fixed" ruleset would price
//! checkouts differently from what the shop owner wrote.

use std::collections::HashSet;
use std::path::Path;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::model::DayNo;

/// 10000 basis points = 1x; the neutral multiplier.
const ONE_X_BP: i64 = 10_000;

/// The largest multiplier a ruleset may set (100x).
pub const MAX_MULTIPLIER_BP: i64 = 1_000_000;

/// Longest coupon validity and point expiry a ruleset may set: 100 years, so that every
/// date derived from them exists in the calendar.
pub const MAX_VALID_DAYS: u32 = 36_525;
pub const MAX_EXPIRY_MONTHS: u32 = 1_200;

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
    pub min_minor: i64,
    pub off_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponType {
    pub id: String,
    pub value: CouponValue,
    pub min_minor: i64,
    pub valid_days: u32,
}

impl CouponType {
    /// The last local date a coupon issued on `issued` is valid (`valid_days` counts the
    /// issue date).
    pub fn valid_until(&self, issued: DayNo) -> DayNo {
        // valid_days <= MAX_VALID_DAYS, so this fits for any issue date.
        issued + self.valid_days as DayNo - 1
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

    /// Exact, case-sensitive match, as written in `excluded_categories`.
    pub fn is_excluded(&self, category: &str) -> bool {
        self.excluded_categories.iter().any(|c| c == category)
    }
}

// ---------------------------------------------------------------------------------------------
// Raw file shape. Sections and arrays are kept as `toml::Value` and deserialized one by one,
// so an error inside an array element can be reported with its index (`tiers[1].qualify`);
// serde alone only knows key names. Numbers are read as i64 everywhere so that a negative or
// out-of-range value gets our own message at the right path rather than a serde type error.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleset {
    version: i64,
    currency: String,
    timezone: String,
    #[serde(default)]
    excluded_categories: Vec<toml::Value>,
    earn: toml::Value,
    tiers: Vec<toml::Value>,
    tier_policy: toml::Value,
    redeem: toml::Value,
    expiry: toml::Value,
    birthday: Option<toml::Value>,
    #[serde(default)]
    campaigns: Vec<toml::Value>,
    #[serde(default)]
    promotions: Vec<toml::Value>,
    #[serde(default)]
    coupon_types: Vec<toml::Value>,
    #[serde(default)]
    rewards: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEarn {
    unit_minor: i64,
    points_per_unit: i64,
    #[serde(default)]
    visit_bonus_points: i64,
    #[serde(default)]
    visit_bonus_min_minor: i64,
    #[serde(default)]
    max_points_per_tx: i64,
    brackets: Option<Vec<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBracket {
    from_minor: i64,
    multiplier_bp: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    name: String,
    qualify: i64,
    discount_bp: i64,
    multiplier_bp: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTierPolicy {
    metric: String,
    window_days: i64,
    downgrade: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedeem {
    points_per_unit: i64,
    unit_minor: i64,
    min_points: i64,
    max_share_bp: i64,
    pin_required_from: i64,
    offline_cap_points: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpiry {
    months: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBirthday {
    multiplier_bp: i64,
    scope: String,
}

/// Campaigns and promotions share these keys; serde's `flatten` cannot be combined with
/// `deny_unknown_fields`, so both raw structs repeat them and hand them over as this.
struct RawWindow {
    starts: Option<String>,
    ends: Option<String>,
    weekdays: Option<Vec<toml::Value>>,
    tiers: Option<Vec<toml::Value>>,
}

fn one_x() -> i64 {
    ONE_X_BP
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    id: String,
    starts: Option<String>,
    ends: Option<String>,
    weekdays: Option<Vec<toml::Value>>,
    tiers: Option<Vec<toml::Value>>,
    #[serde(default = "one_x")]
    multiplier_bp: i64,
    #[serde(default)]
    bonus_points: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromotion {
    id: String,
    starts: Option<String>,
    ends: Option<String>,
    weekdays: Option<Vec<toml::Value>>,
    tiers: Option<Vec<toml::Value>>,
    min_minor: i64,
    off_minor: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCouponType {
    id: String,
    off_minor: Option<i64>,
    off_bp: Option<i64>,
    min_minor: i64,
    valid_days: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReward {
    sku: String,
    points: i64,
    stock: i64,
}

// ---------------------------------------------------------------------------------------------
// Error context and small checks.
// ---------------------------------------------------------------------------------------------

struct Cx<'a> {
    file: &'a str,
}

type Res<T> = Result<T, RulesetError>;

/// `base.key`, or just `key` at the document root.
fn join(base: &str, key: &str) -> String {
    match (base.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (_, true) => base.to_string(),
        _ => format!("{base}.{key}"),
    }
}

/// The text between the first pair of backticks after `prefix` in `message`.
fn backticked_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    // toml quotes the key as `key`, then the message ends or goes on with ", expected ..." or
    // " in table ..."; a backtick inside the key is followed by neither.
    let end = rest
        .match_indices('`')
        .map(|(i, _)| i)
        .find(|&i| matches!(rest[i + 1..].chars().next(), None | Some(',') | Some(' ')))?;
    Some(&rest[..end])
}

impl Cx<'_> {
    fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> RulesetError {
        RulesetError {
            file: self.file.to_string(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A TOML syntax error: toml gives no field, except for duplicate keys, where the key it
    /// names is the most useful "field". The reason carries line and column.
    fn syntax(&self, text: &str, e: &toml::de::Error) -> RulesetError {
        let message = e.message().replace('\n', "; ");
        let field = backticked_after(e.message(), "duplicate key ")
            .map(|key| {
                let table = e
                    .message()
                    .split_once(" in table `")
                    .and_then(|(_, t)| t.strip_suffix('`'))
                    .unwrap_or("");
                join(table, key)
            })
            .unwrap_or_else(|| "(syntax)".to_string());
        let reason = match e.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                format!("line {line}, column {column}: {message}")
            }
            None => message,
        };
        self.err(field, reason)
    }

    /// Deserializes one section or array element found at `path`, mapping serde's error to
    /// the full TOML path of the offending key.
    fn de<T: DeserializeOwned>(&self, value: toml::Value, path: &str) -> Res<T> {
        T::deserialize(value).map_err(|e| {
            let message = e.message().trim().to_string();
            // Below the value's root, toml appends "\nin `a.b`" (key names only) to Display.
            let display = e.to_string();
            let inner = display
                .strip_prefix(e.message())
                .map(str::trim)
                .and_then(|rest| rest.strip_prefix("in `"))
                .and_then(|rest| rest.strip_suffix('`'))
                .unwrap_or("");
            let mut field = join(path, inner);
            let (reason, key) = if let Some(key) = backticked_after(&message, "unknown field ") {
                (message.clone(), Some(key))
            } else if let Some(key) = backticked_after(&message, "missing field ") {
                ("required key is missing".to_string(), Some(key))
            } else {
                (message.clone(), None)
            };
            if let Some(key) = key {
                field = join(&field, key);
            }
            // Rust type names (our raw structs, i64) mean nothing to a shop owner.
            let reason = match reason.find("expected struct Raw") {
                Some(at) => format!("{}expected a table", &reason[..at]),
                None => reason.replace("expected i64", "expected a whole number"),
            };
            if field.is_empty() {
                field = "(document)".to_string();
            }
            self.err(field, reason)
        })
    }

    fn at_least(&self, value: i64, min: i64, field: &str) -> Res<i64> {
        if value < min {
            let reason = match min {
                0 => format!("must not be negative (got {value})"),
                1 => format!("must be greater than 0 (got {value})"),
                _ => format!("must be at least {min} (got {value})"),
            };
            return Err(self.err(field, reason));
        }
        Ok(value)
    }

    fn non_negative(&self, value: i64, field: &str) -> Res<i64> {
        self.at_least(value, 0, field)
    }

    fn positive(&self, value: i64, field: &str) -> Res<i64> {
        self.at_least(value, 1, field)
    }

    /// A multiplier: above 0 and at most 100x, which keeps step 8's product inside i128.
    fn multiplier(&self, value: i64, field: &str) -> Res<i64> {
        self.positive(value, field)?;
        if value > MAX_MULTIPLIER_BP {
            return Err(self.err(
                field,
                format!("must be at most {MAX_MULTIPLIER_BP} (100x) (got {value})"),
            ));
        }
        Ok(value)
    }

    /// A fraction of a whole: 0..=10000 basis points.
    fn share_bp(&self, value: i64, field: &str) -> Res<i64> {
        self.non_negative(value, field)?;
        if value > ONE_X_BP {
            return Err(self.err(field, format!("must be at most 10000 (got {value})")));
        }
        Ok(value)
    }

    fn u32_at_least(&self, value: i64, min: i64, field: &str) -> Res<u32> {
        self.at_least(value, min, field)?;
        u32::try_from(value).map_err(|_| self.err(field, format!("is too large (got {value})")))
    }

    fn u32_in(&self, value: i64, min: i64, max: u32, field: &str) -> Res<u32> {
        let v = self.u32_at_least(value, min, field)?;
        if v > max {
            return Err(self.err(field, format!("must be at most {max} (got {value})")));
        }
        Ok(v)
    }

    /// Ids, names and skus are used as lookup keys, so an empty one is a mistake.
    fn name(&self, value: String, field: &str) -> Res<String> {
        if value.trim().is_empty() {
            return Err(self.err(field, "must not be empty"));
        }
        Ok(value)
    }

    /// Refuses a repeated key in a list that is looked up by that key.
    fn unique<'s>(&self, seen: &mut HashSet<&'s str>, value: &'s str, field: &str) -> Res<()> {
        if !seen.insert(value) {
            return Err(self.err(field, format!("duplicate value \"{value}\"")));
        }
        Ok(())
    }

    /// A list of strings, with each element's index in the error path.
    fn strings(&self, values: Vec<toml::Value>, path: &str) -> Res<Vec<String>> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| self.de::<String>(v, &format!("{path}[{i}]")))
            .collect()
    }

    fn window(&self, raw: RawWindow, path: &str, tiers: &[Tier]) -> Res<Window> {
        let starts = raw
            .starts
            .map(|s| self.local_time(&s, &join(path, "starts")))
            .transpose()?;
        let ends = raw.ends.map(|s| self.local_time(&s, &join(path, "ends"))).transpose()?;
        if let (Some(starts), Some(ends)) = (starts, ends) {
            if ends < starts {
                return Err(self.err(join(path, "ends"), "is before starts"));
            }
        }

        let weekdays_path = join(path, "weekdays");
        let mut weekdays = Vec::new();
        let names = self.strings(raw.weekdays.unwrap_or_default(), &weekdays_path)?;
        for (i, name) in names.iter().enumerate() {
            let field = format!("{weekdays_path}[{i}]");
            let day = weekday(name).ok_or_else(|| {
                self.err(
                    &field,
                    format!("unknown weekday \"{name}\" (expected mon, tue, wed, thu, fri, sat or sun)"),
                )
            })?;
            if weekdays.contains(&day) {
                return Err(self.err(&field, format!("duplicate value \"{name}\"")));
            }
            weekdays.push(day);
        }

        let tiers_path = join(path, "tiers");
        let names = self.strings(raw.tiers.unwrap_or_default(), &tiers_path)?;
        let mut seen = HashSet::new();
        for (i, name) in names.iter().enumerate() {
            let field = format!("{tiers_path}[{i}]");
            if !tiers.iter().any(|t| &t.name == name) {
                return Err(self.err(&field, format!("unknown tier \"{name}\"")));
            }
            self.unique(&mut seen, name, &field)?;
        }

        Ok(Window {
            starts,
            ends,
            weekdays,
            tiers: names,
        })
    }

    /// Exactly `YYYY-MM-DDTHH:MM:SS`, local time. chrono's own parser also takes one-digit
    /// fields and leap seconds, which the contract does not allow, so the shape is checked here.
    fn local_time(&self, s: &str, field: &str) -> Res<NaiveDateTime> {
        let bad = || {
            self.err(
                field,
                format!("\"{s}\" is not a valid local date-time YYYY-MM-DDTHH:MM:SS"),
            )
        };
        let shape_ok = s.len() == 19
            && s.bytes().enumerate().all(|(i, c)| match i {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 | 16 => c == b':',
                _ => c.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(bad());
        }
        let num = |from: usize, to: usize| s[from..to].parse::<u32>().map_err(|_| bad());
        let year = i32::try_from(num(0, 4)?).map_err(|_| bad())?;
        let date = NaiveDate::from_ymd_opt(year, num(5, 7)?, num(8, 10)?).ok_or_else(bad)?;
        let time = NaiveTime::from_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?).ok_or_else(bad)?;
        Ok(date.and_time(time))
    }
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

/// No ruleset key holds a TOML date-time, and toml would otherwise hand one to a string field
/// as text; an unquoted `starts = 2026-12-01T00:00:00` is refused rather than reinterpreted.
fn reject_datetimes(cx: &Cx, table: &toml::Table, path: &str) -> Res<()> {
    fn walk(cx: &Cx, value: &toml::Value, path: &str) -> Res<()> {
        match value {
            toml::Value::Datetime(_) => Err(cx.err(
                path,
                "TOML date-times are not used here; write local times as quoted strings \
                 \"YYYY-MM-DDTHH:MM:SS\"",
            )),
            toml::Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| walk(cx, v, &format!("{path}[{i}]"))),
            toml::Value::Table(t) => reject_datetimes(cx, t, path),
            _ => Ok(()),
        }
    }
    table.iter().try_for_each(|(k, v)| walk(cx, v, &join(path, k)))
}

// ---------------------------------------------------------------------------------------------
// Validation and conversion, section by section, in file order.
// ---------------------------------------------------------------------------------------------

impl RawRuleset {
    fn validate(self, cx: &Cx) -> Res<Ruleset> {
        let version = cx.u32_at_least(self.version, 1, "version")?;

        if !(self.currency.len() == 3 && self.currency.bytes().all(|c| c.is_ascii_uppercase())) {
            return Err(cx.err(
                "currency",
                format!("\"{}\" is not a currency code of 3 upper-case letters", self.currency),
            ));
        }

        let timezone: Tz = self
            .timezone
            .parse()
            .map_err(|_| cx.err("timezone", format!("unknown IANA time zone \"{}\"", self.timezone)))?;

        let excluded_categories = cx.strings(self.excluded_categories, "excluded_categories")?;
        let mut seen = HashSet::new();
        for (i, c) in excluded_categories.iter().enumerate() {
            let field = format!("excluded_categories[{i}]");
            cx.name(c.clone(), &field)?;
            cx.unique(&mut seen, c, &field)?;
        }

        let earn = validate_earn(cx, cx.de(self.earn, "earn")?)?;
        let tiers = validate_tiers(cx, self.tiers)?;

        let raw: RawTierPolicy = cx.de(self.tier_policy, "tier_policy")?;
        let tier_policy = TierPolicy {
            metric: match raw.metric.as_str() {
                "spend" => TierMetric::Spend,
                "points" => TierMetric::Points,
                "visits" => TierMetric::Visits,
                other => {
                    return Err(cx.err(
                        "tier_policy.metric",
                        format!("unknown metric \"{other}\" (expected spend, points or visits)"),
                    ))
                }
            },
            window_days: {
                let days = cx.u32_at_least(raw.window_days, 1, "tier_policy.window_days")?;
                if days > crate::model::HISTORY_DAYS as u32 {
                    let reason = format!(
                        "must be at most {} (the tier history kept per member)",
                        crate::model::HISTORY_DAYS
                    );
                    return Err(cx.err("tier_policy.window_days", reason));
                }
                days
            },
            downgrade: match raw.downgrade.as_str() {
                "never" => Downgrade::Never,
                "rolling" => Downgrade::Rolling,
                other => {
                    return Err(cx.err(
                        "tier_policy.downgrade",
                        format!("unknown downgrade \"{other}\" (expected never or rolling)"),
                    ))
                }
            },
        };

        let raw: RawRedeem = cx.de(self.redeem, "redeem")?;
        let redeem = Redeem {
            points_per_unit: cx.positive(raw.points_per_unit, "redeem.points_per_unit")?,
            unit_minor: cx.positive(raw.unit_minor, "redeem.unit_minor")?,
            min_points: cx.non_negative(raw.min_points, "redeem.min_points")?,
            max_share_bp: cx.share_bp(raw.max_share_bp, "redeem.max_share_bp")?,
            pin_required_from: cx.non_negative(raw.pin_required_from, "redeem.pin_required_from")?,
            offline_cap_points: cx.non_negative(raw.offline_cap_points, "redeem.offline_cap_points")?,
        };

        let raw: RawExpiry = cx.de(self.expiry, "expiry")?;
        let expiry = Expiry {
            months: cx.u32_in(raw.months, 0, MAX_EXPIRY_MONTHS, "expiry.months")?,
        };

        let birthday = match self.birthday {
            None => None,
            Some(value) => {
                let raw: RawBirthday = cx.de(value, "birthday")?;
                Some(Birthday {
                    multiplier_bp: cx.multiplier(raw.multiplier_bp, "birthday.multiplier_bp")?,
                    scope: match raw.scope.as_str() {
                        "day" => BirthdayScope::Day,
                        "month" => BirthdayScope::Month,
                        other => {
                            return Err(cx.err(
                                "birthday.scope",
                                format!("unknown scope \"{other}\" (expected day or month)"),
                            ))
                        }
                    },
                })
            }
        };

        let campaigns = validate_campaigns(cx, self.campaigns, &tiers)?;
        let promotions = validate_promotions(cx, self.promotions, &tiers)?;
        let coupon_types = validate_coupon_types(cx, self.coupon_types)?;
        let rewards = validate_rewards(cx, self.rewards)?;

        Ok(Ruleset {
            version,
            currency: self.currency,
            timezone,
            excluded_categories,
            earn,
            tiers,
            tier_policy,
            redeem,
            expiry,
            birthday,
            campaigns,
            promotions,
            coupon_types,
            rewards,
            fingerprint: [0; 32],
        })
    }
}

fn validate_earn(cx: &Cx, raw: RawEarn) -> Res<Earn> {
    // Checked in file order, so the first error reported is the first one in the file.
    let unit_minor = cx.positive(raw.unit_minor, "earn.unit_minor")?;
    let points_per_unit = cx.positive(raw.points_per_unit, "earn.points_per_unit")?;
    let visit_bonus_points = cx.non_negative(raw.visit_bonus_points, "earn.visit_bonus_points")?;
    let visit_bonus_min_minor = cx.non_negative(raw.visit_bonus_min_minor, "earn.visit_bonus_min_minor")?;
    let max_points_per_tx = cx.non_negative(raw.max_points_per_tx, "earn.max_points_per_tx")?;
    let brackets = match raw.brackets {
        // No brackets = one flat rate; pricing always has at least one bracket to walk.
        None => vec![Bracket {
            from_minor: 0,
            multiplier_bp: ONE_X_BP,
        }],
        Some(values) if values.is_empty() => {
            return Err(cx.err(
                "earn.brackets",
                "must hold at least one bracket when present (or be left out)",
            ))
        }
        Some(values) => {
            let mut brackets: Vec<Bracket> = Vec::with_capacity(values.len());
            for (i, value) in values.into_iter().enumerate() {
                let path = format!("earn.brackets[{i}]");
                let b: RawBracket = cx.de(value, &path)?;
                let from_field = format!("{path}.from_minor");
                cx.non_negative(b.from_minor, &from_field)?;
                match brackets.last() {
                    None if b.from_minor != 0 => return Err(cx.err(&from_field, "the first bracket must start at 0")),
                    Some(prev) if b.from_minor <= prev.from_minor => {
                        return Err(cx.err(
                            &from_field,
                            format!(
                                "must be greater than the previous bracket's {} \
                                 (brackets are strictly ascending)",
                                prev.from_minor
                            ),
                        ))
                    }
                    _ => {}
                }
                brackets.push(Bracket {
                    from_minor: b.from_minor,
                    multiplier_bp: cx.multiplier(b.multiplier_bp, &format!("{path}.multiplier_bp"))?,
                });
            }
            brackets
        }
    };
    Ok(Earn {
        unit_minor,
        points_per_unit,
        visit_bonus_points,
        visit_bonus_min_minor,
        max_points_per_tx,
        brackets,
    })
}

fn validate_tiers(cx: &Cx, values: Vec<toml::Value>) -> Res<Vec<Tier>> {
    if values.is_empty() {
        return Err(cx.err("tiers", "at least one tier is required"));
    }
    let mut tiers: Vec<Tier> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("tiers[{i}]");
        let raw: RawTier = cx.de(value, &path)?;
        let name_field = format!("{path}.name");
        let name = cx.name(raw.name, &name_field)?;
        if tiers.iter().any(|t| t.name == name) {
            return Err(cx.err(&name_field, format!("duplicate value \"{name}\"")));
        }
        let qualify_field = format!("{path}.qualify");
        let qualify = cx.non_negative(raw.qualify, &qualify_field)?;
        match tiers.last() {
            // Every member is in some tier, so the lowest must need nothing.
            None if qualify != 0 => return Err(cx.err(&qualify_field, "the first tier must have qualify = 0")),
            Some(prev) if qualify <= prev.qualify => {
                return Err(cx.err(
                    &qualify_field,
                    format!(
                        "must be greater than the previous tier's {} \
                         (tiers are strictly ascending)",
                        prev.qualify
                    ),
                ))
            }
            _ => {}
        }
        tiers.push(Tier {
            name,
            qualify,
            discount_bp: cx.share_bp(raw.discount_bp, &format!("{path}.discount_bp"))?,
            multiplier_bp: cx.multiplier(raw.multiplier_bp, &format!("{path}.multiplier_bp"))?,
        });
    }
    Ok(tiers)
}

fn validate_campaigns(cx: &Cx, values: Vec<toml::Value>, tiers: &[Tier]) -> Res<Vec<Campaign>> {
    let mut out: Vec<Campaign> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("campaigns[{i}]");
        let raw: RawCampaign = cx.de(value, &path)?;
        let id_field = format!("{path}.id");
        let id = cx.name(raw.id, &id_field)?;
        if out.iter().any(|c| c.id == id) {
            return Err(cx.err(&id_field, format!("duplicate value \"{id}\"")));
        }
        let window = RawWindow {
            starts: raw.starts,
            ends: raw.ends,
            weekdays: raw.weekdays,
            tiers: raw.tiers,
        };
        out.push(Campaign {
            window: cx.window(window, &path, tiers)?,
            multiplier_bp: cx.multiplier(raw.multiplier_bp, &format!("{path}.multiplier_bp"))?,
            bonus_points: cx.non_negative(raw.bonus_points, &format!("{path}.bonus_points"))?,
            id,
        });
    }
    Ok(out)
}

fn validate_promotions(cx: &Cx, values: Vec<toml::Value>, tiers: &[Tier]) -> Res<Vec<Promotion>> {
    let mut out: Vec<Promotion> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("promotions[{i}]");
        let raw: RawPromotion = cx.de(value, &path)?;
        let id_field = format!("{path}.id");
        let id = cx.name(raw.id, &id_field)?;
        if out.iter().any(|p| p.id == id) {
            return Err(cx.err(&id_field, format!("duplicate value \"{id}\"")));
        }
        let window = RawWindow {
            starts: raw.starts,
            ends: raw.ends,
            weekdays: raw.weekdays,
            tiers: raw.tiers,
        };
        out.push(Promotion {
            window: cx.window(window, &path, tiers)?,
            min_minor: cx.non_negative(raw.min_minor, &format!("{path}.min_minor"))?,
            // A promotion that takes nothing off can only be a typo.
            off_minor: cx.positive(raw.off_minor, &format!("{path}.off_minor"))?,
            id,
        });
    }
    Ok(out)
}

fn validate_coupon_types(cx: &Cx, values: Vec<toml::Value>) -> Res<Vec<CouponType>> {
    let mut out: Vec<CouponType> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("coupon_types[{i}]");
        let raw: RawCouponType = cx.de(value, &path)?;
        let id_field = format!("{path}.id");
        let id = cx.name(raw.id, &id_field)?;
        if out.iter().any(|c| c.id == id) {
            return Err(cx.err(&id_field, format!("duplicate value \"{id}\"")));
        }
        let value = match (raw.off_minor, raw.off_bp) {
            (Some(off), None) => CouponValue::OffMinor(cx.positive(off, &format!("{path}.off_minor"))?),
            (None, Some(bp)) => {
                let field = format!("{path}.off_bp");
                cx.positive(bp, &field)?;
                CouponValue::OffBp(cx.share_bp(bp, &field)?)
            }
            (Some(_), Some(_)) => {
                return Err(cx.err(
                    &path,
                    "exactly one of off_minor and off_bp is required (both are given)",
                ))
            }
            (None, None) => {
                return Err(cx.err(
                    &path,
                    "exactly one of off_minor and off_bp is required (neither is given)",
                ))
            }
        };
        out.push(CouponType {
            id,
            value,
            min_minor: cx.non_negative(raw.min_minor, &format!("{path}.min_minor"))?,
            valid_days: cx.u32_in(raw.valid_days, 1, MAX_VALID_DAYS, &format!("{path}.valid_days"))?,
        });
    }
    Ok(out)
}

fn validate_rewards(cx: &Cx, values: Vec<toml::Value>) -> Res<Vec<Reward>> {
    let mut out: Vec<Reward> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("rewards[{i}]");
        let raw: RawReward = cx.de(value, &path)?;
        let sku_field = format!("{path}.sku");
        let sku = cx.name(raw.sku, &sku_field)?;
        if out.iter().any(|r| r.sku == sku) {
            return Err(cx.err(&sku_field, format!("duplicate value \"{sku}\"")));
        }
        out.push(Reward {
            sku,
            points: cx.positive(raw.points, &format!("{path}.points"))?,
            stock: cx.non_negative(raw.stock, &format!("{path}.stock"))?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
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
    const SHIPPED: &str = include_str!("../../config/rules.toml");

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
                },
                Tier {
                    name: "silver".into(),
                    qualify: 100000,
                    discount_bp: 300,
                    multiplier_bp: 12500,
                },
                Tier {
                    name: "gold".into(),
                    qualify: 500000,
                    discount_bp: 500,
                    multiplier_bp: 15000,
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
                min_minor: 10000,
                off_minor: 1000,
            }],
            coupon_types: vec![CouponType {
                id: "welcome5".into(),
                value: CouponValue::OffMinor(500),
                min_minor: 3000,
                valid_days: 30,
            }],
            rewards: vec![Reward {
                sku: "mug".into(),
                points: 500,
                stock: 20,
            }],
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
        // Once accepted: points earned under it never expired (no such date).
        ("expiry.months", "at most 1200", |t| {
            rep(t, "months = 12", "months = 4000000000")
        }),
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
        // Once accepted: issuing such a coupon panicked on its end date (no such date),
        // after the record was written, and left the engine's writer lock poisoned.
        ("coupon_types[0].valid_days", "at most 36525", |t| {
            rep(t, "valid_days = 30", "valid_days = 100000000")
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
        assert_eq!(
            (crate::model::day_date(until) - last).num_days(),
            MAX_VALID_DAYS as i64 - 1
        );
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
}
