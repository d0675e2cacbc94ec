//! The file as TOML gives it, before validation.

use serde::Deserialize;

use super::ONE_X_BP;

// ---------------------------------------------------------------------------------------------
// Raw file shape. Sections and arrays are kept as `toml::Value` and deserialized one by one,
// so an error inside an array element can be reported with its index (`tiers[1].qualify`);
// serde alone only knows key names. Numbers are read as i64 everywhere so that a negative or
// out-of-range value gets our own message at the right path rather than a serde type error.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuleset {
    pub(super) version: i64,
    pub(super) currency: String,
    pub(super) timezone: String,
    #[serde(default)]
    pub(super) excluded_categories: Vec<toml::Value>,
    pub(super) earn: toml::Value,
    pub(super) tiers: Vec<toml::Value>,
    pub(super) tier_policy: toml::Value,
    pub(super) redeem: toml::Value,
    pub(super) expiry: toml::Value,
    pub(super) birthday: Option<toml::Value>,
    #[serde(default)]
    pub(super) campaigns: Vec<toml::Value>,
    #[serde(default)]
    pub(super) promotions: Vec<toml::Value>,
    #[serde(default)]
    pub(super) coupon_types: Vec<toml::Value>,
    #[serde(default)]
    pub(super) rewards: Vec<toml::Value>,
    #[serde(default)]
    pub(super) activities: Vec<toml::Value>,
    #[serde(default)]
    pub(super) triggers: Vec<toml::Value>,
    #[serde(default)]
    pub(super) group_buys: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEarn {
    pub(super) unit_minor: i64,
    pub(super) points_per_unit: i64,
    #[serde(default)]
    pub(super) visit_bonus_points: i64,
    #[serde(default)]
    pub(super) visit_bonus_min_minor: i64,
    #[serde(default)]
    pub(super) max_points_per_tx: i64,
    pub(super) brackets: Option<Vec<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBracket {
    pub(super) from_minor: i64,
    pub(super) multiplier_bp: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTier {
    pub(super) name: String,
    pub(super) qualify: i64,
    pub(super) discount_bp: i64,
    pub(super) multiplier_bp: i64,
    pub(super) gift_points: Option<i64>,
    pub(super) gift_coupon: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTierPolicy {
    pub(super) metric: String,
    pub(super) window_days: i64,
    pub(super) downgrade: String,
    pub(super) score: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScore {
    pub(super) spend_unit_minor: i64,
    pub(super) spend_bp: i64,
    pub(super) visit_points: i64,
    pub(super) visits_bp: i64,
    pub(super) activity_points: i64,
    pub(super) activity_bp: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedeem {
    pub(super) points_per_unit: i64,
    pub(super) unit_minor: i64,
    pub(super) min_points: i64,
    pub(super) max_share_bp: i64,
    pub(super) pin_required_from: i64,
    pub(super) offline_cap_points: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpiry {
    pub(super) months: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBirthday {
    pub(super) multiplier_bp: i64,
    pub(super) scope: String,
}

/// Campaigns and promotions share these keys; serde's `flatten` cannot be combined with
/// `deny_unknown_fields`, so both raw structs repeat them and hand them over as this.
pub(super) struct RawWindow {
    pub(super) starts: Option<String>,
    pub(super) ends: Option<String>,
    pub(super) weekdays: Option<Vec<toml::Value>>,
    pub(super) tiers: Option<Vec<toml::Value>>,
}

fn one_x() -> i64 {
    ONE_X_BP
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCampaign {
    pub(super) id: String,
    pub(super) starts: Option<String>,
    pub(super) ends: Option<String>,
    pub(super) weekdays: Option<Vec<toml::Value>>,
    pub(super) tiers: Option<Vec<toml::Value>>,
    #[serde(default = "one_x")]
    pub(super) multiplier_bp: i64,
    #[serde(default)]
    pub(super) bonus_points: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPromotion {
    pub(super) id: String,
    pub(super) starts: Option<String>,
    pub(super) ends: Option<String>,
    pub(super) weekdays: Option<Vec<toml::Value>>,
    pub(super) tiers: Option<Vec<toml::Value>>,
    /// Which of the other keys are required or allowed depends on the kind.
    pub(super) kind: Option<String>,
    pub(super) min_minor: Option<i64>,
    pub(super) off_minor: Option<i64>,
    pub(super) step_minor: Option<i64>,
    pub(super) max_off_minor: Option<i64>,
    pub(super) off_bp: Option<i64>,
    pub(super) categories: Option<Vec<toml::Value>>,
    pub(super) skus: Option<Vec<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCouponType {
    pub(super) id: String,
    pub(super) off_minor: Option<i64>,
    pub(super) off_bp: Option<i64>,
    pub(super) min_minor: i64,
    pub(super) valid_days: i64,
    pub(super) exchange_points: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReward {
    pub(super) sku: String,
    pub(super) points: i64,
    pub(super) stock: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawActivity {
    pub(super) id: String,
    pub(super) points: i64,
    #[serde(default)]
    pub(super) max_per_day: i64,
    #[serde(default)]
    pub(super) max_total: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrigger {
    pub(super) id: String,
    pub(super) on: String,
    pub(super) coupon: String,
    pub(super) nth: Option<i64>,
    pub(super) days: Option<i64>,
    pub(super) tier: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroupBuy {
    pub(super) id: String,
    pub(super) sku: String,
    pub(super) group_price_minor: i64,
    pub(super) size: i64,
    pub(super) window_hours: i64,
    pub(super) starts: Option<String>,
    pub(super) ends: Option<String>,
}
