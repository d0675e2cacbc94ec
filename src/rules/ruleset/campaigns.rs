//! Validation of what rules.md "Added in 0.2" brings: promotion kinds and scopes, tier
//! gifts, the growth score, coupons for points, activities, triggers and group buys.

use std::collections::HashSet;

use super::raw::*;
use super::validate::{keyed_tables, Cx, Res};
use super::*;
use crate::model::MAX_UNIT_PRICE;

/// A key that the chosen kind (of promotion, of trigger) does not use is refused, not
/// ignored: `step_minor` on a threshold promotion is a mistake the owner wants to hear of.
fn not_for<T>(cx: &Cx, value: &Option<T>, field: String, what: &str) -> Res<()> {
    match value {
        Some(_) => Err(cx.err(field, format!("is not used by {what}"))),
        None => Ok(()),
    }
}

fn required<T>(cx: &Cx, value: Option<T>, field: &str) -> Res<T> {
    value.ok_or_else(|| cx.err(field, "required key is missing"))
}

pub(super) fn validate_promotions(
    cx: &Cx,
    values: Vec<toml::Value>,
    tiers: &[Tier],
    excluded: &[String],
) -> Res<Vec<Promotion>> {
    keyed_tables(
        cx,
        "promotions",
        "id",
        values,
        |p: &Promotion| &p.id,
        |raw: RawPromotion, path| {
            let id = cx.name(raw.id, &format!("{path}.id"))?;
            let window = RawWindow {
                starts: raw.starts,
                ends: raw.ends,
                weekdays: raw.weekdays,
                tiers: raw.tiers,
            };
            let window = cx.window(window, path, tiers)?;
            let field = |key: &str| format!("{path}.{key}");
            let kind_name = raw.kind.as_deref().unwrap_or("threshold");
            let what = format!("kind = \"{kind_name}\"");
            let min =
                |v: Option<i64>| -> Res<Option<i64>> { v.map(|m| cx.non_negative(m, &field("min_minor"))).transpose() };
            let kind = match kind_name {
                "threshold" => {
                    not_for(cx, &raw.step_minor, field("step_minor"), &what)?;
                    not_for(cx, &raw.max_off_minor, field("max_off_minor"), &what)?;
                    not_for(cx, &raw.off_bp, field("off_bp"), &what)?;
                    let min_minor = required(cx, min(raw.min_minor)?, &field("min_minor"))?;
                    let off = required(cx, raw.off_minor, &field("off_minor"))?;
                    // A promotion that takes nothing off can only be a typo.
                    let off_minor = cx.positive(off, &field("off_minor"))?;
                    PromotionKind::Threshold { min_minor, off_minor }
                }
                "every" => {
                    not_for(cx, &raw.off_bp, field("off_bp"), &what)?;
                    let min_minor = min(raw.min_minor)?.unwrap_or(0);
                    let step = required(cx, raw.step_minor, &field("step_minor"))?;
                    let step_minor = cx.positive(step, &field("step_minor"))?;
                    let off = required(cx, raw.off_minor, &field("off_minor"))?;
                    let off_minor = cx.positive(off, &field("off_minor"))?;
                    let max_off_minor = match raw.max_off_minor {
                        None => None,
                        // A cap below one step's discount would make the steps meaningless.
                        Some(max) if max < off_minor => {
                            return Err(cx.err(
                                field("max_off_minor"),
                                format!("must be at least off_minor ({off_minor}) (got {max})"),
                            ))
                        }
                        Some(max) => Some(max),
                    };
                    PromotionKind::Every {
                        min_minor,
                        step_minor,
                        off_minor,
                        max_off_minor,
                    }
                }
                "percent" => {
                    not_for(cx, &raw.off_minor, field("off_minor"), &what)?;
                    not_for(cx, &raw.step_minor, field("step_minor"), &what)?;
                    not_for(cx, &raw.max_off_minor, field("max_off_minor"), &what)?;
                    let min_minor = required(cx, min(raw.min_minor)?, &field("min_minor"))?;
                    let bp = required(cx, raw.off_bp, &field("off_bp"))?;
                    cx.positive(bp, &field("off_bp"))?;
                    let off_bp = cx.share_bp(bp, &field("off_bp"))?;
                    PromotionKind::Percent { min_minor, off_bp }
                }
                other => {
                    return Err(cx.err(
                        field("kind"),
                        format!("unknown kind \"{other}\" (expected threshold, every or percent)"),
                    ))
                }
            };
            let scope = match (raw.categories, raw.skus) {
                (None, None) => Scope::All,
                (Some(_), Some(_)) => {
                    return Err(cx.err(
                        field("skus"),
                        "categories and skus are mutually exclusive (give one of them)",
                    ))
                }
                (Some(values), None) => {
                    let names = scope_list(cx, values, &field("categories"))?;
                    if let Some(i) = names.iter().position(|c| excluded.contains(c)) {
                        return Err(cx.err(
                            format!("{}[{i}]", field("categories")),
                            format!("\"{}\" is an excluded category: its lines take no promotion", names[i]),
                        ));
                    }
                    Scope::Categories(names)
                }
                (None, Some(values)) => Scope::Skus(scope_list(cx, values, &field("skus"))?),
            };
            Ok(Promotion {
                id,
                window,
                kind,
                scope,
            })
        },
    )
}

/// A scope's list: not empty (leaving the key out means every line), no empty or
/// repeated name.
fn scope_list(cx: &Cx, values: Vec<toml::Value>, path: &str) -> Res<Vec<String>> {
    let names = cx.strings(values, path)?;
    if names.is_empty() {
        return Err(cx.err(path, "must not be empty (leave the key out for every line)"));
    }
    let mut seen = HashSet::new();
    for (i, name) in names.iter().enumerate() {
        let field = format!("{path}[{i}]");
        cx.name(name.clone(), &field)?;
        cx.unique(&mut seen, name, &field)?;
    }
    Ok(names)
}

/// A tier's gift: `gift_points` above 0 when given; `gift_coupon` is checked against the
/// coupon types once they are read (`check_gift_coupons`).
pub(super) fn tier_gift(
    cx: &Cx,
    index: usize,
    points: Option<i64>,
    coupon: Option<String>,
    path: &str,
) -> Res<(i64, Option<String>)> {
    if index == 0 && (points.is_some() || coupon.is_some()) {
        let key = if points.is_some() { "gift_points" } else { "gift_coupon" };
        return Err(cx.err(
            format!("{path}.{key}"),
            "the first tier is every member's from enrolment, so its gift would never be given \
             (an enrol trigger issues a coupon at enrolment)",
        ));
    }
    let points = match points {
        None => 0,
        Some(p) => cx.within(p, 1, MAX_BONUS_POINTS, &format!("{path}.gift_points"))?,
    };
    Ok((points, coupon))
}

pub(super) fn check_gift_coupons(cx: &Cx, tiers: &[Tier], coupon_types: &[CouponType]) -> Res<()> {
    for (i, t) in tiers.iter().enumerate() {
        if let Some(c) = &t.gift_coupon {
            if !coupon_types.iter().any(|ct| &ct.id == c) {
                return Err(cx.err(
                    format!("tiers[{i}].gift_coupon"),
                    format!("unknown coupon type \"{c}\""),
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn validate_score(cx: &Cx, value: Option<toml::Value>, tiers: &[Tier]) -> Res<Score> {
    let path = "tier_policy.score";
    let value = value.ok_or_else(|| cx.err(path, "required with metric = \"score\""))?;
    let raw: RawScore = cx.de(value, path)?;
    let field = |key: &str| format!("{path}.{key}");
    let weight = |v: i64, key: &str| cx.within(v, 0, MAX_MULTIPLIER_BP, &field(key));
    let worth = |v: i64, key: &str| cx.within(v, 0, MAX_BONUS_POINTS, &field(key));
    let score = Score {
        spend_unit_minor: cx.positive(raw.spend_unit_minor, &field("spend_unit_minor"))?,
        spend_bp: weight(raw.spend_bp, "spend_bp")?,
        visit_points: worth(raw.visit_points, "visit_points")?,
        visits_bp: weight(raw.visits_bp, "visits_bp")?,
        activity_points: worth(raw.activity_points, "activity_points")?,
        activity_bp: weight(raw.activity_bp, "activity_bp")?,
    };
    let nothing_counts = score.spend_bp == 0
        && (score.visits_bp == 0 || score.visit_points == 0)
        && (score.activity_bp == 0 || score.activity_points == 0);
    if nothing_counts && tiers.len() > 1 {
        return Err(cx.err(
            path,
            "every term is 0, so the score is always 0 and no member could leave the first tier",
        ));
    }
    Ok(score)
}

pub(super) fn validate_activities(cx: &Cx, values: Vec<toml::Value>) -> Res<Vec<Activity>> {
    keyed_tables(
        cx,
        "activities",
        "id",
        values,
        |a: &Activity| &a.id,
        |raw: RawActivity, path| {
            Ok(Activity {
                id: cx.name(raw.id, &format!("{path}.id"))?,
                points: cx.within(raw.points, 1, MAX_BONUS_POINTS, &format!("{path}.points"))?,
                max_per_day: cx.non_negative(raw.max_per_day, &format!("{path}.max_per_day"))?,
                max_total: cx.non_negative(raw.max_total, &format!("{path}.max_total"))?,
            })
        },
    )
}

/// The most visits a `nth` may name; far beyond any member, and far inside i64.
const MAX_NTH: i64 = 1_000_000;

pub(super) fn validate_triggers(
    cx: &Cx,
    values: Vec<toml::Value>,
    tiers: &[Tier],
    coupon_types: &[CouponType],
) -> Res<Vec<Trigger>> {
    keyed_tables(
        cx,
        "triggers",
        "id",
        values,
        |t: &Trigger| &t.id,
        |raw: RawTrigger, path| {
            let id = cx.name(raw.id, &format!("{path}.id"))?;
            let field = |key: &str| format!("{path}.{key}");
            let what = format!("on = \"{}\"", raw.on);
            let on = match raw.on.as_str() {
                "enrol" | "birthday" => {
                    not_for(cx, &raw.nth, field("nth"), &what)?;
                    not_for(cx, &raw.days, field("days"), &what)?;
                    not_for(cx, &raw.tier, field("tier"), &what)?;
                    if raw.on == "enrol" {
                        TriggerOn::Enrol
                    } else {
                        TriggerOn::Birthday
                    }
                }
                "visit" => {
                    not_for(cx, &raw.days, field("days"), &what)?;
                    not_for(cx, &raw.tier, field("tier"), &what)?;
                    let nth = required(cx, raw.nth, &field("nth"))?;
                    TriggerOn::Visit {
                        nth: cx.within(nth, 1, MAX_NTH, &field("nth"))?,
                    }
                }
                "inactive" => {
                    not_for(cx, &raw.nth, field("nth"), &what)?;
                    not_for(cx, &raw.tier, field("tier"), &what)?;
                    let days = required(cx, raw.days, &field("days"))?;
                    TriggerOn::Inactive {
                        days: cx.within(days, 1, MAX_VALID_DAYS, &field("days"))?,
                    }
                }
                "tier_up" => {
                    not_for(cx, &raw.nth, field("nth"), &what)?;
                    not_for(cx, &raw.days, field("days"), &what)?;
                    let name = required(cx, raw.tier, &field("tier"))?;
                    let tier = tiers
                        .iter()
                        .position(|t| t.name == name)
                        .ok_or_else(|| cx.err(field("tier"), format!("unknown tier \"{name}\"")))?;
                    if tier == 0 {
                        return Err(cx.err(
                            field("tier"),
                            format!("\"{name}\" is the first tier, which no member moves up to"),
                        ));
                    }
                    TriggerOn::TierUp { tier }
                }
                other => {
                    return Err(cx.err(
                        field("on"),
                        format!("unknown event \"{other}\" (expected enrol, birthday, visit, inactive or tier_up)"),
                    ))
                }
            };
            if !coupon_types.iter().any(|c| c.id == raw.coupon) {
                return Err(cx.err(field("coupon"), format!("unknown coupon type \"{}\"", raw.coupon)));
            }
            Ok(Trigger {
                id,
                on,
                coupon: raw.coupon,
            })
        },
    )
}

/// The most members a group may need and the longest a group may stay open (a year).
const MAX_GROUP_SIZE: i64 = 10_000;
const MAX_WINDOW_HOURS: i64 = 366 * 24;

pub(super) fn validate_group_buys(cx: &Cx, values: Vec<toml::Value>) -> Res<Vec<GroupBuy>> {
    keyed_tables(
        cx,
        "group_buys",
        "id",
        values,
        |g: &GroupBuy| &g.id,
        |raw: RawGroupBuy, path| {
            let field = |key: &str| format!("{path}.{key}");
            let id = cx.name(raw.id, &field("id"))?;
            let sku = cx.name(raw.sku, &field("sku"))?;
            let group_price_minor = cx.within(raw.group_price_minor, 0, MAX_UNIT_PRICE, &field("group_price_minor"))?;
            let size = cx.within(raw.size, 2, MAX_GROUP_SIZE, &field("size"))? as u32;
            let window_hours = cx.within(raw.window_hours, 1, MAX_WINDOW_HOURS, &field("window_hours"))? as u32;
            let starts = raw.starts.map(|s| cx.local_time(&s, &field("starts"))).transpose()?;
            let ends = raw.ends.map(|s| cx.local_time(&s, &field("ends"))).transpose()?;
            if let (Some(starts), Some(ends)) = (starts, ends) {
                if ends < starts {
                    return Err(cx.err(field("ends"), "is before starts"));
                }
            }
            Ok(GroupBuy {
                id,
                sku,
                group_price_minor,
                size,
                window_hours,
                starts,
                ends,
            })
        },
    )
}
