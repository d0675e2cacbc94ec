//! The random ruleset: what it holds, the TOML text it writes, whether the validator must
//! accept it, and which of its windows are open at an instant.

use super::*;

pub const SKUS: [&str; 6] = ["s0", "s1", "s2", "s3", "s4", "s5"];
/// The last two are the ones a ruleset may exclude.
pub const CATEGORIES: [&str; 5] = ["a", "b", "c", "tobacco", "gift"];
pub const FIRST_EXCLUDABLE: usize = 3;
/// A sku no basket holds, for deals that find no line.
pub const ABSENT_SKU: &str = "zz";
/// Business instants: a Tuesday morning, a Sunday's first instant, a Wednesday's last
/// second, and an instant half a second into a second (windows are to the second).
pub const INSTANTS: [&str; 4] = [
    "2026-12-08T10:00:00+08:00",
    "2026-03-01T00:00:00+08:00",
    "2027-06-30T23:59:59+08:00",
    "2026-12-08T10:00:00.5+08:00",
];
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone)]
pub enum When {
    Always,
    /// starts `.0` seconds before the instant (or no start), ends `.1` seconds after (or no end).
    Around(Option<i64>, Option<i64>),
    /// Ended `.0` seconds (>= 1) before the instant.
    Ended(i64),
    /// Starts `.0` seconds (>= 1) after the instant.
    NotYet(i64),
}

#[derive(Debug, Clone)]
pub struct WindowSpec {
    pub when: When,
    /// None: the key is left out; Some(mask) over mon..sun (0 = an empty list).
    pub weekdays: Option<u8>,
    /// None: left out; Some(mask) over the tiers (bits past the last tier are dropped).
    pub tiers: Option<u8>,
}

pub fn stamp(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

pub fn names_of(all: &[&str], mask: u8) -> Vec<String> {
    all.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, s)| format!("\"{s}\""))
        .collect()
}

impl WindowSpec {
    pub fn toml(&self, at: NaiveDateTime, n_tiers: usize) -> String {
        let secs = chrono::Duration::seconds;
        let mut out = String::new();
        let (starts, ends) = match self.when {
            When::Always => (None, None),
            When::Around(before, after) => (before.map(|b| at - secs(b)), after.map(|a| at + secs(a))),
            When::Ended(ago) => (Some(at - secs(ago) - secs(3600)), Some(at - secs(ago))),
            When::NotYet(ahead) => (Some(at + secs(ahead)), None),
        };
        if let Some(s) = starts {
            out += &format!("starts = \"{}\"\n", stamp(s));
        }
        if let Some(e) = ends {
            out += &format!("ends = \"{}\"\n", stamp(e));
        }
        if let Some(mask) = self.weekdays {
            out += &format!("weekdays = [{}]\n", names_of(&WEEKDAYS, mask).join(", "));
        }
        if let Some(mask) = self.tiers {
            let mask = mask & ((1u8 << n_tiers) - 1);
            out += &format!("tiers = [{}]\n", names_of(&TIER_NAMES[..n_tiers], mask).join(", "));
        }
        out
    }

    /// `at` is the local instant truncated to the second.
    pub fn open(&self, at: NaiveDateTime, tier: usize, n_tiers: usize) -> bool {
        let when = matches!(self.when, When::Always | When::Around(..));
        let day = at.weekday().num_days_from_monday();
        let weekday = self.weekdays.is_none_or(|m| m == 0 || m & (1 << day) != 0);
        let listed = self.tiers.map(|m| m & ((1u8 << n_tiers) - 1));
        let tier_ok = listed.is_none_or(|m| m == 0 || m & (1 << tier) != 0);
        when && weekday && tier_ok
    }
}

pub fn window() -> impl Strategy<Value = WindowSpec> {
    let when = prop_oneof![
        3 => Just(When::Always),
        4 => (prop::option::of(0i64..1_000_000), prop::option::of(0i64..1_000_000))
            .prop_map(|(b, a)| When::Around(b, a)),
        1 => (1i64..1_000_000).prop_map(When::Ended),
        1 => (1i64..1_000_000).prop_map(When::NotYet),
    ];
    let weekdays = prop_oneof![4 => Just(None), 1 => (0u8..128).prop_map(Some)];
    let tiers = prop_oneof![4 => Just(None), 1 => (0u8..16).prop_map(Some)];
    (when, weekdays, tiers).prop_map(|(when, weekdays, tiers)| WindowSpec { when, weekdays, tiers })
}

pub const TIER_NAMES: [&str; 4] = ["t0", "t1", "t2", "t3"];

#[derive(Debug, Clone)]
pub enum Kind {
    Threshold {
        min: i64,
        off: i64,
    },
    Every {
        min: Option<i64>,
        step: i64,
        off: i64,
        cap: Option<i64>,
    },
    Percent {
        min: i64,
        off_bp: i64,
    },
}

#[derive(Debug, Clone)]
pub enum ScopeSpec {
    All,
    /// A mask over CATEGORIES, never empty.
    Categories(u8),
    /// A mask over SKUS, never empty.
    Skus(u8),
    /// Both keys: a mistake.
    Both(u8, u8),
}

impl ScopeSpec {
    pub fn covers(&self, line: &Line) -> bool {
        let bit = |all: &[&str], mask: u8, name: &str| {
            all.iter()
                .position(|s| *s == name)
                .is_some_and(|i| mask & (1 << i) != 0)
        };
        match *self {
            ScopeSpec::All => true,
            ScopeSpec::Categories(m) => bit(&CATEGORIES, m, &line.category),
            ScopeSpec::Skus(m) => bit(&SKUS, m, &line.sku),
            ScopeSpec::Both(..) => unreachable!("refused at load"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PromoSpec {
    /// Ids are made unique by their index unless `same_id_as_previous` (a mistake).
    pub prefix: u8,
    pub same_id_as_previous: bool,
    pub kind: Kind,
    pub scope: ScopeSpec,
    pub window: WindowSpec,
}

/// Mostly amounts of a corner shop, now and then anything up to the largest sale.
pub fn amount(small: i64) -> impl Strategy<Value = i64> {
    prop_oneof![12 => 0..small, 1 => 0..=MAX_SUBTOTAL, 1 => Just(MAX_SUBTOTAL)]
}

pub fn promotion() -> impl Strategy<Value = PromoSpec> {
    let off = prop_oneof![10 => 1i64..6000, 1 => 1i64..=MAX_SUBTOTAL];
    let kind = prop_oneof![
        (amount(30_000), off.clone()).prop_map(|(min, off)| Kind::Threshold { min, off }),
        (
            prop::option::of(amount(30_000)),
            prop_oneof![10 => 1i64..20_000, 1 => 1i64..=MAX_SUBTOTAL],
            off,
            prop::option::of(0i64..20_000),
            prop::bool::weighted(0.01),
        )
            .prop_map(|(min, step, off, cap, cap_too_low)| Kind::Every {
                min,
                step,
                off,
                cap: match cap_too_low {
                    true => Some(off - 1),
                    false => cap.map(|c| off + c),
                },
            }),
        (amount(30_000), 1i64..=10_000).prop_map(|(min, off_bp)| Kind::Percent { min, off_bp }),
    ];
    let scope = prop_oneof![
        60 => Just(ScopeSpec::All),
        // a, b and c, and now and then an excludable category too.
        40 => (1u8..8, prop::bool::weighted(0.03))
            .prop_map(|(m, more)| ScopeSpec::Categories(if more { m | 0b11000 } else { m })),
        40 => (1u8..64).prop_map(ScopeSpec::Skus),
        1 => (1u8..8, 1u8..64).prop_map(|(c, s)| ScopeSpec::Both(c, s)),
    ];
    (0u8..3, prop::bool::weighted(0.01), kind, scope, window()).prop_map(
        |(prefix, same_id_as_previous, kind, scope, window)| PromoSpec {
            prefix,
            same_id_as_previous,
            kind,
            scope,
            window,
        },
    )
}

#[derive(Debug, Clone)]
pub struct CampaignSpec {
    pub window: WindowSpec,
    pub multiplier_bp: Option<i64>,
    pub bonus_points: i64,
}

pub fn campaign() -> impl Strategy<Value = CampaignSpec> {
    let mult = prop::option::of(prop_oneof![8 => 5000i64..40_000, 1 => 1i64..=1_000_000, 1 => Just(1_000_000)]);
    let bonus = prop_oneof![8 => 0i64..100, 1 => 0i64..=1_000_000];
    (window(), mult, bonus).prop_map(|(window, multiplier_bp, bonus_points)| CampaignSpec {
        window,
        multiplier_bp,
        bonus_points,
    })
}

#[derive(Debug, Clone)]
pub enum CouponValueSpec {
    OffMinor(i64),
    OffBp(i64),
}

#[derive(Debug, Clone)]
pub struct CouponTypeSpec {
    pub value: CouponValueSpec,
    pub min_minor: i64,
    pub exchange_points: Option<i64>,
}

pub fn coupon_type() -> impl Strategy<Value = CouponTypeSpec> {
    let value = prop_oneof![
        prop_oneof![10 => 1i64..5000, 1 => 1i64..=MAX_SUBTOTAL].prop_map(CouponValueSpec::OffMinor),
        (1i64..=10_000).prop_map(CouponValueSpec::OffBp),
    ];
    (value, amount(5_000), prop::option::of(1i64..10_000)).prop_map(|(value, min_minor, exchange_points)| {
        CouponTypeSpec {
            value,
            min_minor,
            exchange_points,
        }
    })
}

#[derive(Debug, Clone)]
pub struct DealSpec {
    /// An index into SKUS, or SKUS.len() for a sku no basket holds.
    pub sku: usize,
    /// Negative: a mistake.
    pub group_price_minor: i64,
    /// Below 2: a mistake.
    pub size: i64,
}

impl DealSpec {
    pub fn sku(&self) -> &'static str {
        SKUS.get(self.sku).copied().unwrap_or(ABSENT_SKU)
    }
}

pub fn deal() -> impl Strategy<Value = DealSpec> {
    let price = prop_oneof![
        50 => 0i64..20_000,
        5 => 0i64..=MAX_UNIT_PRICE,
        5 => Just(MAX_UNIT_PRICE),
        1 => Just(-1i64),
    ];
    let size = prop_oneof![60 => 2i64..10, 1 => Just(1i64)];
    (0..=SKUS.len(), price, size).prop_map(|(sku, group_price_minor, size)| DealSpec {
        sku,
        group_price_minor,
        size,
    })
}

#[derive(Debug, Clone)]
pub struct TierSpec {
    pub qualify_step: i64,
    pub discount_bp: i64,
    pub multiplier_bp: i64,
    pub gift_points: Option<i64>,
    /// An index into the coupon types.
    pub gift_coupon: Option<usize>,
}

pub fn tier_spec() -> impl Strategy<Value = TierSpec> {
    let discount = prop_oneof![2 => Just(0i64), 6 => 1i64..1500, 1 => 0i64..=10_000, 1 => Just(10_000i64)];
    let mult = prop_oneof![8 => 10_000i64..20_000, 1 => 1i64..=1_000_000, 1 => Just(1_000_000i64)];
    (
        1i64..200_000,
        discount,
        mult,
        prop::option::of(1i64..=1_000),
        prop::option::of(0usize..8),
    )
        .prop_map(
            |(qualify_step, discount_bp, multiplier_bp, gift_points, gift_coupon)| TierSpec {
                qualify_step,
                discount_bp,
                multiplier_bp,
                gift_points,
                gift_coupon,
            },
        )
}

#[derive(Debug, Clone)]
pub struct EarnSpec {
    pub unit_minor: i64,
    pub points_per_unit: i64,
    pub visit_bonus_points: i64,
    pub visit_bonus_min_minor: i64,
    pub max_points_per_tx: i64,
    /// (step above the previous bracket, multiplier); the first bracket starts at 0.
    pub brackets: Option<Vec<(i64, i64)>>,
}

pub fn earn() -> impl Strategy<Value = EarnSpec> {
    let mult = prop_oneof![8 => 5000i64..20_000, 1 => 1i64..=1_000_000];
    (
        prop_oneof![4 => Just(100i64), 1 => 1i64..10_000],
        prop_oneof![4 => Just(1i64), 1 => 1i64..100],
        prop_oneof![3 => Just(0i64), 1 => 0i64..=1_000_000],
        amount(10_000),
        prop_oneof![3 => Just(0i64), 1 => 0i64..10_000],
        prop::option::of(prop::collection::vec((1i64..100_000, mult), 1..4)),
    )
        .prop_map(
            |(unit_minor, points_per_unit, visit_bonus_points, visit_bonus_min_minor, max_points_per_tx, brackets)| {
                EarnSpec {
                    unit_minor,
                    points_per_unit,
                    visit_bonus_points,
                    visit_bonus_min_minor,
                    max_points_per_tx,
                    brackets,
                }
            },
        )
}

#[derive(Debug, Clone)]
pub struct RedeemSpec {
    pub points_per_unit: i64,
    pub unit_minor: i64,
    pub min_points: i64,
    pub max_share_bp: i64,
    pub pin_required_from: i64,
    pub offline_cap_points: i64,
}

pub fn redeem() -> impl Strategy<Value = RedeemSpec> {
    (
        // The file may set any rate up to the bound (MAX_RATE): now and then an extreme one.
        prop_oneof![30 => Just(100i64), 10 => 1i64..1000, 1 => 1i64..=1_000_000],
        prop_oneof![30 => Just(100i64), 10 => 1i64..1000, 1 => 1i64..=1_000_000],
        0i64..500,
        prop_oneof![1 => Just(0i64), 6 => 1i64..10_000, 1 => Just(10_000i64)],
        prop_oneof![1 => Just(0i64), 2 => 1i64..5000],
        0i64..10_000,
    )
        .prop_map(
            |(points_per_unit, unit_minor, min_points, max_share_bp, pin_required_from, offline_cap_points)| {
                RedeemSpec {
                    points_per_unit,
                    unit_minor,
                    min_points,
                    max_share_bp,
                    pin_required_from,
                    offline_cap_points,
                }
            },
        )
}

#[derive(Debug, Clone)]
pub struct RulesSpec {
    /// A mask over the excludable categories.
    pub excluded: u8,
    pub earn: EarnSpec,
    pub tiers: Vec<TierSpec>,
    /// 0 spend, 1 points, 2 visits, 3 the growth score.
    pub metric: u8,
    pub rolling: bool,
    pub window_days: i64,
    pub redeem: RedeemSpec,
    pub expiry_months: i64,
    /// (multiplier, scope "month" rather than "day").
    pub birthday: Option<(i64, bool)>,
    pub campaigns: Vec<CampaignSpec>,
    pub promotions: Vec<PromoSpec>,
    pub coupons: Vec<CouponTypeSpec>,
    pub deals: Vec<DealSpec>,
}

pub fn rules_spec() -> impl Strategy<Value = RulesSpec> {
    (
        0u8..4,
        earn(),
        prop::collection::vec(tier_spec(), 1..=4),
        (0u8..4, any::<bool>(), 1i64..=731),
        redeem(),
        0i64..=24,
        prop::option::of((1i64..=1_000_000, any::<bool>())),
        prop::collection::vec(campaign(), 0..4),
        prop::collection::vec(promotion(), 0..7),
        prop::collection::vec(coupon_type(), 1..4),
        prop::collection::vec(deal(), 0..5),
    )
        .prop_map(
            |(
                excluded,
                earn,
                tiers,
                (metric, rolling, window_days),
                redeem,
                expiry_months,
                birthday,
                campaigns,
                promotions,
                coupons,
                deals,
            )| {
                RulesSpec {
                    excluded,
                    earn,
                    tiers,
                    metric,
                    rolling,
                    window_days,
                    redeem,
                    expiry_months,
                    birthday,
                    campaigns,
                    promotions,
                    coupons,
                    deals,
                }
            },
        )
}

impl RulesSpec {
    pub fn excluded(&self) -> Vec<&'static str> {
        CATEGORIES[FIRST_EXCLUDABLE..]
            .iter()
            .enumerate()
            .filter(|(i, _)| self.excluded & (1 << i) != 0)
            .map(|(_, c)| *c)
            .collect()
    }

    pub fn is_excluded(&self, category: &str) -> bool {
        self.excluded().contains(&category)
    }

    pub fn promo_id(&self, i: usize) -> String {
        match self.promotions[i].same_id_as_previous && i > 0 {
            true => self.promo_id(i - 1),
            false => format!("{}{i}", ["a", "b", "c"][self.promotions[i].prefix as usize]),
        }
    }

    /// The field the validator must name first, when this ruleset holds a mistake.
    pub fn first_mistake(&self) -> Option<String> {
        for (i, p) in self.promotions.iter().enumerate() {
            let cap_low = matches!(p.kind, Kind::Every { off, cap: Some(cap), .. } if cap < off);
            let scope_bad = match p.scope {
                ScopeSpec::Categories(m) => self.excluded().iter().any(|e| {
                    let bit = CATEGORIES.iter().position(|c| c == e).unwrap();
                    m & (1 << bit) != 0
                }),
                ScopeSpec::Both(..) => true,
                _ => false,
            };
            let dup = (0..i).any(|j| self.promo_id(j) == self.promo_id(i));
            if cap_low || scope_bad || dup {
                return Some(format!("promotions[{i}]"));
            }
        }
        self.deals
            .iter()
            .position(|d| d.group_price_minor < 0 || d.size < 2)
            .map(|j| format!("group_buys[{j}]"))
    }

    pub fn toml(&self, at: NaiveDateTime) -> String {
        let n_tiers = self.tiers.len();
        let quoted = |v: &[&str]| v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        let mut t = format!(
            "version = 1\ncurrency = \"CNY\"\ntimezone = \"Asia/Shanghai\"\nexcluded_categories = [{}]\n",
            quoted(&self.excluded())
        );
        let e = &self.earn;
        t += &format!(
            "[earn]\nunit_minor = {}\npoints_per_unit = {}\nvisit_bonus_points = {}\nvisit_bonus_min_minor = {}\n\
             max_points_per_tx = {}\n",
            e.unit_minor, e.points_per_unit, e.visit_bonus_points, e.visit_bonus_min_minor, e.max_points_per_tx
        );
        if let Some(brackets) = &e.brackets {
            let mut from = 0;
            for (k, (step, mult)) in brackets.iter().enumerate() {
                if k > 0 {
                    from += step;
                }
                t += &format!("[[earn.brackets]]\nfrom_minor = {from}\nmultiplier_bp = {mult}\n");
            }
        }
        let mut qualify = 0;
        for (i, tier) in self.tiers.iter().enumerate() {
            if i > 0 {
                qualify += tier.qualify_step;
            }
            t += &format!(
                "[[tiers]]\nname = \"{}\"\nqualify = {qualify}\ndiscount_bp = {}\nmultiplier_bp = {}\n",
                TIER_NAMES[i], tier.discount_bp, tier.multiplier_bp
            );
            if i > 0 {
                if let Some(g) = tier.gift_points {
                    t += &format!("gift_points = {g}\n");
                }
                if let Some(c) = tier.gift_coupon {
                    t += &format!("gift_coupon = \"c{}\"\n", c % self.coupons.len());
                }
            }
        }
        let metric = ["spend", "points", "visits", "score"][self.metric as usize];
        let downgrade = if self.rolling { "rolling" } else { "never" };
        t += &format!(
            "[tier_policy]\nmetric = \"{metric}\"\nwindow_days = {}\ndowngrade = \"{downgrade}\"\n",
            self.window_days
        );
        if metric == "score" {
            t += "[tier_policy.score]\nspend_unit_minor = 100\nspend_bp = 6000\nvisit_points = 100\nvisits_bp = 3000\n\
                  activity_points = 100\nactivity_bp = 1000\n";
        }
        let r = &self.redeem;
        t += &format!(
            "[redeem]\npoints_per_unit = {}\nunit_minor = {}\nmin_points = {}\nmax_share_bp = {}\n\
             pin_required_from = {}\noffline_cap_points = {}\n[expiry]\nmonths = {}\n",
            r.points_per_unit,
            r.unit_minor,
            r.min_points,
            r.max_share_bp,
            r.pin_required_from,
            r.offline_cap_points,
            self.expiry_months
        );
        if let Some((mult, month)) = self.birthday {
            let scope = if month { "month" } else { "day" };
            t += &format!("[birthday]\nmultiplier_bp = {mult}\nscope = \"{scope}\"\n");
        }
        for (i, c) in self.campaigns.iter().enumerate() {
            t += &format!("[[campaigns]]\nid = \"camp{i}\"\nbonus_points = {}\n", c.bonus_points);
            if let Some(m) = c.multiplier_bp {
                t += &format!("multiplier_bp = {m}\n");
            }
            t += &c.window.toml(at, n_tiers);
        }
        for (i, p) in self.promotions.iter().enumerate() {
            t += &format!("[[promotions]]\nid = \"{}\"\n", self.promo_id(i));
            t += &match p.kind {
                // The kind key is left out now and then: threshold is the default.
                Kind::Threshold { min, off } if i % 2 == 0 => format!("min_minor = {min}\noff_minor = {off}\n"),
                Kind::Threshold { min, off } => {
                    format!("kind = \"threshold\"\nmin_minor = {min}\noff_minor = {off}\n")
                }
                Kind::Every { min, step, off, cap } => {
                    let mut s = format!("kind = \"every\"\nstep_minor = {step}\noff_minor = {off}\n");
                    if let Some(m) = min {
                        s += &format!("min_minor = {m}\n");
                    }
                    if let Some(c) = cap {
                        s += &format!("max_off_minor = {c}\n");
                    }
                    s
                }
                Kind::Percent { min, off_bp } => format!("kind = \"percent\"\nmin_minor = {min}\noff_bp = {off_bp}\n"),
            };
            match p.scope {
                ScopeSpec::All => {}
                ScopeSpec::Categories(m) => t += &format!("categories = [{}]\n", names_of(&CATEGORIES, m).join(", ")),
                ScopeSpec::Skus(m) => t += &format!("skus = [{}]\n", names_of(&SKUS, m).join(", ")),
                ScopeSpec::Both(c, s) => {
                    t += &format!(
                        "categories = [{}]\nskus = [{}]\n",
                        names_of(&CATEGORIES, c).join(", "),
                        names_of(&SKUS, s).join(", ")
                    )
                }
            }
            t += &p.window.toml(at, n_tiers);
        }
        for (i, c) in self.coupons.iter().enumerate() {
            t += &format!(
                "[[coupon_types]]\nid = \"c{i}\"\nmin_minor = {}\nvalid_days = 30\n",
                c.min_minor
            );
            t += &match c.value {
                CouponValueSpec::OffMinor(v) => format!("off_minor = {v}\n"),
                CouponValueSpec::OffBp(v) => format!("off_bp = {v}\n"),
            };
            if let Some(x) = c.exchange_points {
                t += &format!("exchange_points = {x}\n");
            }
        }
        for (i, d) in self.deals.iter().enumerate() {
            t += &format!(
                "[[group_buys]]\nid = \"deal{i}\"\nsku = \"{}\"\ngroup_price_minor = {}\nsize = {}\nwindow_hours = 24\n",
                d.sku(),
                d.group_price_minor,
                d.size
            );
        }
        t
    }
}
