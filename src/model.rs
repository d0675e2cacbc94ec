//! Domain types shared by the rules, the store and the engine.
//!
//! Instants are `Ts`: microseconds since the Unix epoch, UTC. They are plain integers so
//! that stored encodings stay compact and replay is exact; chrono is used only at the
//! edges (parsing `--at`, local calendar arithmetic in `rules`, JSON output).

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Code, Error, Result};

/// An instant: microseconds since 1970-01-01T00:00:00Z.
pub type Ts = i64;

pub fn ts_from(dt: DateTime<Utc>) -> Ts {
    dt.timestamp_micros()
}

pub fn ts_to(ts: Ts) -> DateTime<Utc> {
    Utc.timestamp_micros(ts).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Parses an RFC 3339 instant (the `--at` option and JSON inputs).
pub fn parse_instant(s: &str) -> Result<Ts> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|d| ts_from(d.with_timezone(&Utc)))
        .map_err(|e| {
            Error::invalid(format!(
                "bad instant {s:?} (want RFC 3339, e.g. 2026-11-24T10:00:00+08:00): {e}"
            ))
        })
}

/// Formats an instant as RFC 3339 in the given zone (the shop's local offset reads best).
pub fn fmt_instant(ts: Ts, tz: &chrono_tz::Tz) -> String {
    ts_to(ts)
        .with_timezone(tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

pub fn now() -> Ts {
    ts_from(Utc::now())
}

/// Days since 1970-01-01 of a local calendar date: compact and totally ordered.
pub type DayNo = i32;

pub fn day_no(d: NaiveDate) -> DayNo {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as DayNo
}

pub fn day_date(n: DayNo) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(n as i64)
}

pub fn parse_date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| Error::invalid(format!("bad date {s:?} (want YYYY-MM-DD)")))
}

/// Canonical card number: separators (space, `:`, `-`) stripped, letters upper-cased,
/// then `[0-9A-Z]{4,32}`.
pub fn canonical_card(raw: &str) -> Result<String> {
    let card: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | ':' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if (4..=32).contains(&card.len()) && card.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        Ok(card)
    } else {
        Err(Error::new(
            Code::InvalidCard,
            format!("{raw:?} is not a card number (4 to 32 letters or digits)"),
        ))
    }
}

/// A birthday as month and day (no year: members are not asked their age).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Birthday {
    pub month: u8,
    pub day: u8,
}

impl Birthday {
    pub fn parse(s: &str) -> Result<Birthday> {
        let bad = || Error::invalid(format!("bad birthday {s:?} (want MM-DD)"));
        let (m, d) = s.trim().split_once('-').ok_or_else(bad)?;
        // Two digits each: `u8::from_str` would also take "+1".
        let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(m) || !two_digits(d) {
            return Err(bad());
        }
        let (month, day): (u8, u8) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
        // 2000 is a leap year, so 02-29 is a valid birthday.
        NaiveDate::from_ymd_opt(2000, month as u32, day as u32).ok_or_else(bad)?;
        Ok(Birthday { month, day })
    }
}

impl std::fmt::Display for Birthday {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

/// One line of a sale as the POS sends it.
// The bounds in `schema` are `Line::validate`'s, for GET /v1/openapi.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Line {
    #[schema(min_length = 1, max_length = 64)]
    pub sku: String,
    #[schema(min_length = 1, max_length = 64)]
    pub category: String,
    #[schema(schema_with = crate::views::schema::qty)]
    pub qty: i64,
    /// Minor units.
    #[schema(schema_with = crate::views::schema::unit_price)]
    pub unit_price: i64,
}

/// Upper bounds that keep every product far inside i64 (and i128 intermediates exact).
pub const MAX_QTY: i64 = 100_000;
pub const MAX_UNIT_PRICE: i64 = 100_000_000_000; // 1e9 in major units
pub const MAX_LINES: usize = 500;
/// Bounds a sale so that every product of the pricing fits in i128.
pub const MAX_SUBTOTAL: i64 = 10_000_000_000_000;
pub const MAX_POINTS_INPUT: i64 = 1_000_000_000_000;

impl Line {
    /// Parses the CLI form `SKU,CATEGORY,QTY,UNIT_PRICE`.
    pub fn parse_cli(s: &str) -> Result<Line> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [sku, category, qty, price] = parts[..] else {
            return Err(Error::invalid(format!(
                "bad line {s:?} (want SKU,CATEGORY,QTY,UNIT_PRICE)"
            )));
        };
        let qty = qty
            .parse()
            .map_err(|_| Error::invalid(format!("bad quantity {qty:?} in line {s:?}")))?;
        let unit_price = price.parse().map_err(|_| {
            Error::invalid(format!(
                "bad unit price {price:?} in line {s:?} (minor units, an integer)"
            ))
        })?;
        let line = Line {
            sku: sku.to_string(),
            category: category.to_string(),
            qty,
            unit_price,
        };
        line.validate()?;
        Ok(line)
    }

    pub fn validate(&self) -> Result<()> {
        if self.sku.is_empty() || self.sku.len() > 64 {
            return Err(Error::invalid(format!("sku {:?} must be 1 to 64 characters", self.sku)));
        }
        if self.category.is_empty() || self.category.len() > 64 {
            return Err(Error::invalid(format!(
                "category {:?} must be 1 to 64 characters",
                self.category
            )));
        }
        check_text("sku", &self.sku, 64)?;
        check_text("category", &self.category, 64)?;
        if !(1..=MAX_QTY).contains(&self.qty) {
            return Err(Error::invalid(format!(
                "quantity {} of {} must be 1 to {MAX_QTY}",
                self.qty, self.sku
            )));
        }
        if !(0..=MAX_UNIT_PRICE).contains(&self.unit_price) {
            return Err(Error::invalid(format!(
                "unit price {} of {} must be 0 to {MAX_UNIT_PRICE} minor units",
                self.unit_price, self.sku
            )));
        }
        Ok(())
    }

    pub fn amount(&self) -> i64 {
        self.qty * self.unit_price
    }
}

/// A text field a person typed (a name, a sku): 1 to `max` characters of any script,
/// emoji included, but no control characters (an ESC sequence in a name would reach an
/// operator's terminal). Returns it as given.
pub fn check_text<'a>(field: &str, s: &'a str, max: usize) -> Result<&'a str> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(Error::invalid(format!("{field} must be 1 to {max} characters")));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "{field} {s:?} holds the control character U+{:04X}",
            c as u32
        )));
    }
    Ok(s)
}

pub fn validate_lines(lines: &[Line]) -> Result<()> {
    if lines.is_empty() {
        return Err(Error::invalid("a sale needs at least one line"));
    }
    if lines.len() > MAX_LINES {
        return Err(Error::invalid(format!("a sale has at most {MAX_LINES} lines")));
    }
    lines.iter().try_for_each(Line::validate)?;
    if lines.iter().map(Line::amount).sum::<i64>() > MAX_SUBTOTAL {
        return Err(Error::invalid(format!(
            "a sale's subtotal is at most {MAX_SUBTOTAL} minor units"
        )));
    }
    Ok(())
}

/// A refund line in the CLI form `SKU,QTY`.
pub fn parse_refund_line(s: &str) -> Result<(String, i64)> {
    let (sku, qty) = s
        .split_once(',')
        .ok_or_else(|| Error::invalid(format!("bad refund line {s:?} (want SKU,QTY)")))?;
    let qty: i64 = qty
        .trim()
        .parse()
        .map_err(|_| Error::invalid(format!("bad quantity in refund line {s:?}")))?;
    if !(1..=MAX_QTY).contains(&qty) {
        return Err(Error::invalid(format!(
            "refund quantity in {s:?} must be 1 to {MAX_QTY}"
        )));
    }
    Ok((sku.trim().to_string(), qty))
}

/// A batch of points with one expiry. Positive points only; a clawback beyond the
/// balance is held as `MemberState::debt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub points: i64,
    pub earned_at: Ts,
    /// First instant at which the lot is gone; `None` never expires.
    pub expires_at: Option<Ts>,
}

impl Lot {
    pub fn alive_at(&self, at: Ts) -> bool {
        self.expires_at.is_none_or(|e| at < e)
    }
}

/// A part of a lot that a redemption took: enough to give it back with its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    pub points: i64,
    pub earned_at: Ts,
    pub expires_at: Option<Ts>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CardStatus {
    #[default]
    Active,
    Blocked,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Active => "active",
            CardStatus::Blocked => "blocked",
        }
    }
}

/// Tier-metric contributions of one local date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayBucket {
    pub day: DayNo,
    pub spend: i64,
    pub points: i64,
    pub visits: i64,
    /// Activity grants (rules.md 0.2), which count for the growth score.
    pub activities: i64,
}

/// Staff roles, each allowed what the one before it is (interface.md "Staff and roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Cashier,
    Manager,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cashier => "cashier",
            Role::Manager => "manager",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "cashier" => Ok(Role::Cashier),
            "manager" => Ok(Role::Manager),
            "owner" => Ok(Role::Owner),
            _ => Err(Error::invalid(format!(
                "{s:?} is not a role (cashier, manager or owner)"
            ))),
        }
    }
}

/// A staff id: 1 to 32 letters, digits, `-`, `_` or `.`.
pub fn check_staff_id(id: &str) -> Result<&str> {
    if (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        Ok(id)
    } else {
        Err(Error::invalid(format!(
            "{id:?} is not a staff id (1 to 32 letters, digits, '-', '_' or '.')"
        )))
    }
}

/// Tags of a member: each 1 to 32 characters without control characters or `;` (the
/// CSV separator), at most 20, kept in the order given without repeats.
pub fn check_tags(tags: &[String]) -> Result<Vec<String>> {
    if tags.len() > 20 {
        return Err(Error::invalid("a member has at most 20 tags"));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        let t = check_text("tag", t.trim(), 32)?;
        if t.contains(';') {
            return Err(Error::invalid(format!("tag {t:?} holds ';'")));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// Days of tier history kept per member; ruleset validation caps `window_days` to this.
pub const HISTORY_DAYS: i32 = 731;

/// Everything the terminal knows about one member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    pub member_id: String,
    pub name: String,
    pub phone: String,
    pub birthday: Option<Birthday>,
    /// PHC string of the argon2id hash of the PIN.
    pub pin_hash: Option<String>,
    pub cards: Vec<(String, CardStatus)>,
    pub created_at: Ts,
    /// The tier stored by the last checkout (the tier of `downgrade = "never"`).
    pub tier: String,
    /// Live lots, kept sorted by (expiry, never-expiring last; earned_at).
    pub lots: Vec<Lot>,
    /// Points owed after a clawback larger than the balance; repaid first by later credit.
    pub debt: i64,
    pub days: Vec<DayBucket>,
    pub pin_failures: u32,
    pub pin_failed_at: Ts,
    pub tags: Vec<String>,
    /// False: inactive (its cards are refused at checkout; its history is kept).
    pub active: bool,
    /// The terminal that enrolled the member.
    pub enrolled_by: String,
    /// Checkouts with something paid, and when the last one was.
    pub visits: u64,
    pub last_visit_at: Option<Ts>,
    /// Merged into this member by an operator: then this one holds no balance and is
    /// found by no lookup (its id still answers).
    pub merged_into: Option<String>,
    /// Every tier the member has reached (gifts and `tier_up` triggers go by it).
    pub tiers_reached: Vec<String>,
}

impl MemberState {
    /// The balance including lots that expired but have not yet left through an
    /// `expire` entry (what the ledger says).
    pub fn ledger_balance(&self) -> i64 {
        self.lots.iter().map(|l| l.points).sum::<i64>() - self.debt
    }

    /// The balance usable at `at`: lots alive then, minus debt.
    pub fn balance_at(&self, at: Ts, expiry_applies: bool) -> i64 {
        self.lots
            .iter()
            .filter(|l| !expiry_applies || l.alive_at(at))
            .map(|l| l.points)
            .sum::<i64>()
            - self.debt
    }

    pub fn has_expired_lots(&self, at: Ts) -> bool {
        self.lots.iter().any(|l| !l.alive_at(at))
    }

    pub fn pin_locked_at(&self, at: Ts) -> bool {
        self.pin_failures >= PIN_MAX_TRIES && at < self.pin_failed_at + PIN_LOCK_US
    }
}

/// An issued coupon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponState {
    pub type_id: String,
    pub member_id: String,
    pub issued: DayNo,
    pub valid_until: DayNo,
    /// The checkout that used it.
    pub used_by: Option<String>,
    /// `manual`, `trigger:<id>`, `gift:<tier>` or `exchange`.
    pub issued_by: String,
}

pub const PIN_MAX_TRIES: u32 = 5;
pub const PIN_LOCK_US: i64 = 15 * 60 * 1_000_000;

/// Validates a PIN: 4 to 8 digits.
pub fn validate_pin(pin: &str) -> Result<()> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::invalid("a PIN is 4 to 8 digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_are_canonicalised() {
        assert_eq!(canonical_card("04:a1-b2 c3").unwrap(), "04A1B2C3");
        for bad in ["", "abc", "04A1_B2", "ÄÄÄÄ", &"1".repeat(33)] {
            assert_eq!(canonical_card(bad).unwrap_err().code, Code::InvalidCard, "{bad}");
        }
    }

    #[test]
    fn lines_parse_and_refuse() {
        let l = Line::parse_cli("rice,grocery,2,3450").unwrap();
        assert_eq!(l.amount(), 6900);
        for bad in [
            "rice,grocery,0,100",
            "rice,grocery,-1,100",
            "rice,grocery,1,-5",
            "rice,grocery,1000000,1",
            "rice,grocery,1,1.5",
            "rice,grocery,1",
            ",grocery,1,1",
        ] {
            assert_eq!(Line::parse_cli(bad).unwrap_err().code, Code::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn text_fields_take_every_script_and_no_control_characters() {
        for good in ["Ann", "王小明", "Zoë 🎉", "محمد", "a b"] {
            assert_eq!(check_text("name", good, 100).unwrap(), good);
        }
        for bad in [
            "",
            "\u{1b}[2J",
            "tab\there",
            "new\nline",
            "nul\0",
            "\u{7f}",
            "\u{9b}31m",
        ] {
            assert_eq!(
                check_text("name", bad, 100).unwrap_err().code,
                Code::InvalidInput,
                "{bad:?}"
            );
        }
        assert!(check_text("name", &"字".repeat(101), 100).is_err());
        let mut line = Line::parse_cli("rice,grocery,1,100").unwrap();
        line.sku = "ri\u{1b}ce".into();
        assert_eq!(line.validate().unwrap_err().code, Code::InvalidInput);
    }

    #[test]
    fn birthdays() {
        assert_eq!(Birthday::parse("02-29").unwrap().to_string(), "02-29");
        for bad in ["2-29", "02-30", "13-01", "0101", "aa-bb", "+1-14", "01-+4"] {
            assert!(Birthday::parse(bad).is_err(), "{bad}");
        }
    }
}
