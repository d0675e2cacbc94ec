//! Validation and conversion of the raw file, section by section, with errors naming the
//! file, the field (a TOML path) and the reason.

use std::collections::HashSet;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;

use super::campaigns;
use super::raw::*;
use super::*;

// ---------------------------------------------------------------------------------------------
// Error context and small checks.
// ---------------------------------------------------------------------------------------------

pub(super) struct Cx<'a> {
    pub(super) file: &'a str,
}

pub(super) type Res<T> = Result<T, RulesetError>;

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
    pub(super) fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> RulesetError {
        RulesetError {
            file: self.file.to_string(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A TOML syntax error: toml gives no field, except for duplicate keys, where the key it
    /// names is the most useful "field". The reason carries line and column.
    pub(super) fn syntax(&self, text: &str, e: &toml::de::Error) -> RulesetError {
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
    pub(super) fn de<T: DeserializeOwned>(&self, value: toml::Value, path: &str) -> Res<T> {
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

    pub(super) fn at_least(&self, value: i64, min: i64, field: &str) -> Res<i64> {
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

    pub(super) fn non_negative(&self, value: i64, field: &str) -> Res<i64> {
        self.at_least(value, 0, field)
    }

    pub(super) fn positive(&self, value: i64, field: &str) -> Res<i64> {
        self.at_least(value, 1, field)
    }

    /// A multiplier: above 0 and at most 100x, which keeps step 8's product inside i128.
    pub(super) fn multiplier(&self, value: i64, field: &str) -> Res<i64> {
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
    pub(super) fn share_bp(&self, value: i64, field: &str) -> Res<i64> {
        self.non_negative(value, field)?;
        if value > ONE_X_BP {
            return Err(self.err(field, format!("must be at most 10000 (got {value})")));
        }
        Ok(value)
    }

    /// `min..=max`, for values whose sums or date arithmetic must stay far from overflow.
    pub(super) fn within(&self, value: i64, min: i64, max: i64, field: &str) -> Res<i64> {
        self.at_least(value, min, field)?;
        if value > max {
            return Err(self.err(field, format!("must be at most {max} (got {value})")));
        }
        Ok(value)
    }

    pub(super) fn u32_at_least(&self, value: i64, min: i64, field: &str) -> Res<u32> {
        self.at_least(value, min, field)?;
        u32::try_from(value).map_err(|_| self.err(field, format!("is too large (got {value})")))
    }

    /// Ids, names and skus are used as lookup keys, so an empty one is a mistake.
    pub(super) fn name(&self, value: String, field: &str) -> Res<String> {
        if value.trim().is_empty() {
            return Err(self.err(field, "must not be empty"));
        }
        Ok(value)
    }

    /// Refuses a repeated key in a list that is looked up by that key.
    pub(super) fn unique<'s>(&self, seen: &mut HashSet<&'s str>, value: &'s str, field: &str) -> Res<()> {
        if !seen.insert(value) {
            return Err(self.err(field, format!("duplicate value \"{value}\"")));
        }
        Ok(())
    }

    /// A list of strings, with each element's index in the error path.
    pub(super) fn strings(&self, values: Vec<toml::Value>, path: &str) -> Res<Vec<String>> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| self.de::<String>(v, &format!("{path}[{i}]")))
            .collect()
    }

    pub(super) fn window(&self, raw: RawWindow, path: &str, tiers: &[Tier]) -> Res<Window> {
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
    pub(super) fn local_time(&self, s: &str, field: &str) -> Res<NaiveDateTime> {
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
pub(super) fn reject_datetimes(cx: &Cx, table: &toml::Table, path: &str) -> Res<()> {
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
    pub(super) fn validate(self, cx: &Cx) -> Res<Ruleset> {
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

        let mut raw: RawTierPolicy = cx.de(self.tier_policy, "tier_policy")?;
        let tier_policy = TierPolicy {
            metric: match raw.metric.as_str() {
                "spend" => TierMetric::Spend,
                "points" => TierMetric::Points,
                "visits" => TierMetric::Visits,
                "score" => TierMetric::Score(campaigns::validate_score(cx, raw.score.take(), &tiers)?),
                other => {
                    return Err(cx.err(
                        "tier_policy.metric",
                        format!("unknown metric \"{other}\" (expected spend, points, visits or score)"),
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

        if raw.score.is_some() {
            return Err(cx.err(
                "tier_policy.score",
                format!("is used only with metric = \"score\" (metric is \"{}\")", raw.metric),
            ));
        }

        let raw: RawRedeem = cx.de(self.redeem, "redeem")?;
        let redeem = Redeem {
            points_per_unit: cx.within(raw.points_per_unit, 1, MAX_RATE, "redeem.points_per_unit")?,
            unit_minor: cx.within(raw.unit_minor, 1, MAX_RATE, "redeem.unit_minor")?,
            min_points: cx.non_negative(raw.min_points, "redeem.min_points")?,
            max_share_bp: cx.share_bp(raw.max_share_bp, "redeem.max_share_bp")?,
            pin_required_from: cx.non_negative(raw.pin_required_from, "redeem.pin_required_from")?,
            offline_cap_points: cx.non_negative(raw.offline_cap_points, "redeem.offline_cap_points")?,
        };

        let raw: RawExpiry = cx.de(self.expiry, "expiry")?;
        let expiry = Expiry {
            months: cx.within(raw.months, 0, MAX_EXPIRY_MONTHS, "expiry.months")? as u32,
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
        let promotions = campaigns::validate_promotions(cx, self.promotions, &tiers, &excluded_categories)?;
        let coupon_types = validate_coupon_types(cx, self.coupon_types)?;
        campaigns::check_gift_coupons(cx, &tiers, &coupon_types)?;
        let rewards = validate_rewards(cx, self.rewards)?;
        let activities = campaigns::validate_activities(cx, self.activities)?;
        let triggers = campaigns::validate_triggers(cx, self.triggers, &tiers, &coupon_types)?;
        let group_buys = campaigns::validate_group_buys(cx, self.group_buys)?;

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
            activities,
            triggers,
            group_buys,
            fingerprint: [0; 32],
        })
    }
}

fn validate_earn(cx: &Cx, raw: RawEarn) -> Res<Earn> {
    // Checked in file order, so the first error reported is the first one in the file.
    let unit_minor = cx.within(raw.unit_minor, 1, MAX_RATE, "earn.unit_minor")?;
    let points_per_unit = cx.within(raw.points_per_unit, 1, MAX_RATE, "earn.points_per_unit")?;
    let visit_bonus_points = cx.within(raw.visit_bonus_points, 0, MAX_BONUS_POINTS, "earn.visit_bonus_points")?;
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
        let discount_bp = cx.share_bp(raw.discount_bp, &format!("{path}.discount_bp"))?;
        let multiplier_bp = cx.multiplier(raw.multiplier_bp, &format!("{path}.multiplier_bp"))?;
        let (gift_points, gift_coupon) = campaigns::tier_gift(cx, i, raw.gift_points, raw.gift_coupon, &path)?;
        tiers.push(Tier {
            name,
            qualify,
            discount_bp,
            multiplier_bp,
            gift_points,
            gift_coupon,
        });
    }
    Ok(tiers)
}

/// A list of tables looked up by a key of theirs (`id`, or `sku` for rewards): each
/// item is read at `section[i]` and built by `build`, and a key seen before is refused.
pub(super) fn keyed_tables<R: DeserializeOwned, T>(
    cx: &Cx,
    section: &str,
    key: &str,
    values: Vec<toml::Value>,
    key_of: impl Fn(&T) -> &str,
    mut build: impl FnMut(R, &str) -> Res<T>,
) -> Res<Vec<T>> {
    let mut out: Vec<T> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("{section}[{i}]");
        let item = build(cx.de(value, &path)?, &path)?;
        if let Some(dup) = out.iter().map(&key_of).find(|k| *k == key_of(&item)) {
            return Err(cx.err(format!("{path}.{key}"), format!("duplicate value \"{dup}\"")));
        }
        out.push(item);
    }
    Ok(out)
}

fn validate_campaigns(cx: &Cx, values: Vec<toml::Value>, tiers: &[Tier]) -> Res<Vec<Campaign>> {
    keyed_tables(
        cx,
        "campaigns",
        "id",
        values,
        |c: &Campaign| &c.id,
        |raw: RawCampaign, path| {
            let id = cx.name(raw.id, &format!("{path}.id"))?;
            let window = RawWindow {
                starts: raw.starts,
                ends: raw.ends,
                weekdays: raw.weekdays,
                tiers: raw.tiers,
            };
            Ok(Campaign {
                window: cx.window(window, path, tiers)?,
                multiplier_bp: cx.multiplier(raw.multiplier_bp, &format!("{path}.multiplier_bp"))?,
                bonus_points: cx.within(raw.bonus_points, 0, MAX_BONUS_POINTS, &format!("{path}.bonus_points"))?,
                id,
            })
        },
    )
}

fn validate_coupon_types(cx: &Cx, values: Vec<toml::Value>) -> Res<Vec<CouponType>> {
    keyed_tables(
        cx,
        "coupon_types",
        "id",
        values,
        |c: &CouponType| &c.id,
        |raw: RawCouponType, path| {
            let id = cx.name(raw.id, &format!("{path}.id"))?;
            let value = match (raw.off_minor, raw.off_bp) {
                (Some(off), None) => CouponValue::OffMinor(cx.positive(off, &format!("{path}.off_minor"))?),
                (None, Some(bp)) => {
                    let field = format!("{path}.off_bp");
                    cx.positive(bp, &field)?;
                    CouponValue::OffBp(cx.share_bp(bp, &field)?)
                }
                (Some(_), Some(_)) => {
                    return Err(cx.err(path, "exactly one of off_minor and off_bp is required (both are given)"))
                }
                (None, None) => {
                    return Err(cx.err(
                        path,
                        "exactly one of off_minor and off_bp is required (neither is given)",
                    ))
                }
            };
            let exchange_points = raw
                .exchange_points
                .map(|p| cx.within(p, 1, crate::model::MAX_POINTS_INPUT, &format!("{path}.exchange_points")))
                .transpose()?;
            Ok(CouponType {
                id,
                value,
                min_minor: cx.non_negative(raw.min_minor, &format!("{path}.min_minor"))?,
                valid_days: cx.within(raw.valid_days, 1, MAX_VALID_DAYS, &format!("{path}.valid_days"))? as u32,
                exchange_points,
            })
        },
    )
}

fn validate_rewards(cx: &Cx, values: Vec<toml::Value>) -> Res<Vec<Reward>> {
    keyed_tables(
        cx,
        "rewards",
        "sku",
        values,
        |r: &Reward| &r.sku,
        |raw: RawReward, path| {
            Ok(Reward {
                sku: cx.name(raw.sku, &format!("{path}.sku"))?,
                points: cx.positive(raw.points, &format!("{path}.points"))?,
                stock: cx.non_negative(raw.stock, &format!("{path}.stock"))?,
            })
        },
    )
}
