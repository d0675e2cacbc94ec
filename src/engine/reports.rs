//! Reports (interface.md 0.2 "Reports"): the summary of a window of local dates, the
//! retention cohorts and the campaigns' effect, from the aggregates the store keeps as
//! records apply (see `store::report`); on the hub for the chain or, with a terminal
//! id, one shop.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::{At, Engine};
use crate::error::{Error, Result};
use crate::model::{day_no, Role, Ts};
use crate::rules::{local_date, Ruleset};
use crate::store::base::StateBase;
use crate::store::report::{self, month_of, Scope};

/// The longest window a report takes: ten years of days, of months.
pub const MAX_DAYS: i64 = 3653;
pub const MAX_MONTHS: u32 = 120;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    pub sales: i64,
    pub member_sales: i64,
    pub transactions: i64,
    pub member_transactions: i64,
    pub new_members: i64,
    pub active_members: i64,
    pub repeat_members: i64,
    pub repurchase_rate_bp: i64,
    pub points_issued: i64,
    pub points_clawed_back: i64,
    pub points_redeemed: i64,
    pub points_expired: i64,
    pub points_outstanding: i64,
    pub liability_minor: i64,
    pub tier_mix: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Cohort {
    /// `YYYY-MM`.
    pub month: String,
    pub members: i64,
    pub active: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Retention {
    pub cohorts: Vec<Cohort>,
}

/// What one promotion, coupon type, earn campaign, group-buy deal or trigger did in the
/// checkouts of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CampaignEffect {
    /// The promotion, coupon type, campaign, deal or trigger id.
    pub id: String,
    /// `promotion`, `coupon`, `campaign`, `group_buy` or `trigger`.
    pub kind: String,
    /// Checkouts it touched.
    pub uses: i64,
    /// Distinct members of those checkouts.
    pub members: i64,
    /// Money it took off.
    pub discount: i64,
    /// Points it added above the base rate.
    pub bonus_points: i64,
    /// The totals of those checkouts.
    pub sales: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Campaigns {
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    pub campaigns: Vec<CampaignEffect>,
}

/// A month as (year, month 1..=12).
pub type Month = (i32, u32);

fn month_no((y, m): Month) -> u32 {
    y as u32 * 12 + (m - 1)
}

fn month_text(n: u32) -> String {
    format!("{:04}-{:02}", n / 12, n % 12 + 1)
}

/// Members per tier as stored; a member who never bought has none stored and is in the
/// first tier (where every member starts).
fn tier_mix(mut stored: BTreeMap<String, i64>, rules: &Ruleset) -> BTreeMap<String, i64> {
    if let (Some(n), Some(first)) = (stored.remove(""), rules.tiers.first()) {
        *stored.entry(first.name.clone()).or_default() += n;
    }
    stored
}

/// A window of dates as a report takes it: `from <= to`, at most `MAX_DAYS` days.
fn check_days(from: NaiveDate, to: NaiveDate) -> Result<()> {
    if from > to {
        return Err(Error::invalid(format!("from {from} is after to {to}")));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(Error::invalid(format!(
            "from {from} to {to}: a report covers at most {MAX_DAYS} days (ten years)"
        )));
    }
    Ok(())
}

impl Engine {
    /// Whether `terminal` is this node or a terminal the hub has heard from (for the
    /// hub's `?terminal=`).
    pub fn knows_terminal(&self, terminal: &str) -> Result<bool> {
        Ok(self.store.hub_terminals()?.iter().any(|h| h.terminal_id == terminal)
            || self.store.identity()?.is_some_and(|(own, _)| own == terminal))
    }

    pub fn report_summary(&self, from: NaiveDate, to: NaiveDate, scope: Scope, at: &At) -> Result<Summary> {
        at.require(Role::Manager, "reports")?;
        summary(&self.store, &self.rules(), from, to, scope)
    }

    pub fn report_retention(&self, from: Month, to: Month, scope: Scope, at: &At) -> Result<Retention> {
        at.require(Role::Manager, "reports")?;
        retention(&self.store, &self.rules(), from, to, scope, at.ts)
    }

    pub fn report_campaigns(&self, from: NaiveDate, to: NaiveDate, scope: Scope, at: &At) -> Result<Campaigns> {
        at.require(Role::Manager, "reports")?;
        campaigns(&self.store, from, to, scope)
    }
}

// The reports themselves, over any state base (the terminal's and the embedded hub's
// sled store, the hub's PostgreSQL database): who may ask is the caller's to check.

/// The summary of days `from..=to`.
pub fn summary(base: &dyn StateBase, rules: &Ruleset, from: NaiveDate, to: NaiveDate, scope: Scope) -> Result<Summary> {
    check_days(from, to)?;
    let w = report::window(base, scope, day_no(from), day_no(to))?;
    let totals = report::totals(base, scope)?;
    let sales = w.day.total - w.day.refunded_amount;
    let outstanding = totals.points_outstanding;
    let liability =
        i128::from(outstanding) * i128::from(rules.redeem.unit_minor) / i128::from(rules.redeem.points_per_unit.max(1));
    Ok(Summary {
        from,
        to,
        sales,
        member_sales: sales,
        transactions: w.day.checkouts,
        member_transactions: w.day.checkouts,
        new_members: w.day.new_members,
        active_members: w.active_members,
        repeat_members: w.repeat_members,
        repurchase_rate_bp: match w.active_members {
            0 => 0,
            n => w.repeat_members * 10_000 / n,
        },
        points_issued: w.day.points_issued,
        points_clawed_back: w.day.points_clawed_back,
        points_redeemed: w.day.points_redeemed,
        points_expired: w.day.points_expired,
        points_outstanding: outstanding,
        liability_minor: i64::try_from(liability).unwrap_or(i64::MAX),
        tier_mix: tier_mix(totals.tiers, rules),
    })
}

/// Cohorts enrolled in months `from..=to`; each followed up to the month of `now`.
pub fn retention(
    base: &dyn StateBase,
    rules: &Ruleset,
    from: Month,
    to: Month,
    scope: Scope,
    now: Ts,
) -> Result<Retention> {
    let (f, t) = (month_no(from), month_no(to));
    if f > t {
        return Err(Error::invalid(format!(
            "from {} is after to {}",
            month_text(f),
            month_text(t)
        )));
    }
    if t - f >= MAX_MONTHS {
        return Err(Error::invalid(format!(
            "from {} to {}: a report covers at most {MAX_MONTHS} months (ten years)",
            month_text(f),
            month_text(t)
        )));
    }
    let now = month_of(day_no(local_date(rules, now)));
    let cohorts = report::cohorts(base, scope, f, t)?
        .into_iter()
        .map(|(month, (members, active))| Cohort {
            month: month_text(month),
            members,
            active: (month..=now.max(month))
                .map(|m| active.get(&m).copied().unwrap_or(0))
                .collect(),
        })
        .collect();
    Ok(Retention { cohorts })
}

/// What each campaign did in the checkouts of `from..=to`, by kind and id.
pub fn campaigns(base: &dyn StateBase, from: NaiveDate, to: NaiveDate, scope: Scope) -> Result<Campaigns> {
    check_days(from, to)?;
    let rows = report::campaign_window(base, scope, day_no(from), day_no(to))?;
    let campaigns = rows
        .into_iter()
        .map(|r| CampaignEffect {
            id: r.id,
            kind: r.kind.name().to_string(),
            uses: r.figures.uses,
            members: r.members,
            discount: r.figures.discount,
            bonus_points: r.figures.bonus_points,
            sales: r.figures.sales,
        })
        .collect();
    Ok(Campaigns { from, to, campaigns })
}
