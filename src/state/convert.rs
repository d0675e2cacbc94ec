//! Between the journal's frozen record types (`record`) and the domain's types. The
//! record types never change (see `record`), so this is where a domain type that grows
//! meets the bytes of older versions.

use crate::model::{self, CouponState, MemberState};
use crate::record;
use crate::rules::{self, refund::RefundPlan};

impl From<model::Birthday> for record::Birthday {
    fn from(b: model::Birthday) -> Self {
        record::Birthday {
            month: b.month,
            day: b.day,
        }
    }
}

impl From<record::Birthday> for model::Birthday {
    fn from(b: record::Birthday) -> Self {
        model::Birthday {
            month: b.month,
            day: b.day,
        }
    }
}

impl From<&model::Line> for record::Line {
    fn from(l: &model::Line) -> Self {
        record::Line {
            sku: l.sku.clone(),
            category: l.category.clone(),
            qty: l.qty,
            unit_price: l.unit_price,
        }
    }
}

impl From<&record::Line> for model::Line {
    fn from(l: &record::Line) -> Self {
        model::Line {
            sku: l.sku.clone(),
            category: l.category.clone(),
            qty: l.qty,
            unit_price: l.unit_price,
        }
    }
}

impl From<&rules::PricedLine> for record::PricedLineV2 {
    fn from(l: &rules::PricedLine) -> Self {
        record::PricedLineV2 {
            line: (&l.line).into(),
            eligible: l.eligible,
            d0: l.d0,
            group_units: l.group_units,
            d1: l.d1,
            d2: l.d2,
            d3: l.d3,
        }
    }
}

impl From<&record::PricedLineV2> for rules::PricedLine {
    fn from(l: &record::PricedLineV2) -> Self {
        rules::PricedLine {
            line: (&l.line).into(),
            eligible: l.eligible,
            d0: l.d0,
            group_units: l.group_units,
            d1: l.d1,
            d2: l.d2,
            d3: l.d3,
        }
    }
}

impl From<&rules::triggers::Occurrence> for record::Occurrence {
    fn from(o: &rules::triggers::Occurrence) -> Self {
        use rules::triggers::Occurrence as O;
        match o {
            O::Enrol => record::Occurrence::Enrol,
            O::Birthday { year } => record::Occurrence::Birthday { year: *year },
            O::Visit { nth } => record::Occurrence::Visit { nth: *nth },
            O::Inactive { since } => record::Occurrence::Inactive { since: *since },
            O::TierUp { tier } => record::Occurrence::TierUp { tier: tier.clone() },
        }
    }
}

impl From<&record::Occurrence> for rules::triggers::Occurrence {
    fn from(o: &record::Occurrence) -> Self {
        use rules::triggers::Occurrence as O;
        match o {
            record::Occurrence::Enrol => O::Enrol,
            record::Occurrence::Birthday { year } => O::Birthday { year: *year },
            record::Occurrence::Visit { nth } => O::Visit { nth: *nth },
            record::Occurrence::Inactive { since } => O::Inactive { since: *since },
            record::Occurrence::TierUp { tier } => O::TierUp { tier: tier.clone() },
        }
    }
}

impl From<&RefundPlan> for record::RefundPlan {
    fn from(p: &RefundPlan) -> Self {
        record::RefundPlan {
            lines: p.lines.clone(),
            amount: p.amount,
            points_clawed_back: p.points_clawed_back,
            points_returned: p.points_returned,
            base: p.base,
            points_metric: p.points_metric,
            visit: p.visit,
            last: p.last,
        }
    }
}

impl From<&record::RefundPlan> for RefundPlan {
    fn from(p: &record::RefundPlan) -> Self {
        RefundPlan {
            lines: p.lines.clone(),
            amount: p.amount,
            points_clawed_back: p.points_clawed_back,
            points_returned: p.points_returned,
            base: p.base,
            points_metric: p.points_metric,
            visit: p.visit,
            last: p.last,
        }
    }
}

fn card_status(s: model::CardStatus) -> record::CardStatus {
    match s {
        model::CardStatus::Active => record::CardStatus::Active,
        model::CardStatus::Blocked => record::CardStatus::Blocked,
    }
}

fn card_status_of(s: record::CardStatus) -> model::CardStatus {
    match s {
        record::CardStatus::Active => model::CardStatus::Active,
        record::CardStatus::Blocked => model::CardStatus::Blocked,
    }
}

fn lots_of(lots: &[model::Lot]) -> Vec<record::Lot> {
    lots.iter()
        .map(|l| record::Lot {
            points: l.points,
            earned_at: l.earned_at,
            expires_at: l.expires_at,
        })
        .collect()
}

/// A member as a 0.2 hub sends it (the hub's bookkeeping is not part of it), and
/// whether the hub finds it by its phone.
pub fn snapshot_of(m: &MemberState, holds_phone: bool) -> record::MemberSnapshotV2 {
    record::MemberSnapshotV2 {
        member_id: m.member_id.clone(),
        name: m.name.clone(),
        phone: m.phone.clone(),
        birthday: m.birthday.map(Into::into),
        pin_hash: m.pin_hash.clone(),
        cards: m.cards.iter().map(|(c, s)| (c.clone(), card_status(*s))).collect(),
        created_at: m.created_at,
        tier: m.tier.clone(),
        lots: lots_of(&m.lots),
        debt: m.debt,
        days: m
            .days
            .iter()
            .map(|d| record::DayBucketV2 {
                day: d.day,
                spend: d.spend,
                points: d.points,
                visits: d.visits,
                activities: d.activities,
            })
            .collect(),
        pin_failures: m.pin_failures,
        pin_failed_at: m.pin_failed_at,
        tags: m.tags.clone(),
        active: m.active,
        enrolled_by: m.enrolled_by.clone(),
        visits: m.visits,
        last_visit_at: m.last_visit_at,
        merged_into: m.merged_into.clone(),
        tiers_reached: m.tiers_reached.clone(),
        holds_phone,
    }
}

/// The member a hub snapshot describes.
pub fn member_of(s: &record::MemberSnapshotV2) -> MemberState {
    MemberState {
        member_id: s.member_id.clone(),
        name: s.name.clone(),
        phone: s.phone.clone(),
        birthday: s.birthday.map(Into::into),
        pin_hash: s.pin_hash.clone(),
        cards: s.cards.iter().map(|(c, st)| (c.clone(), card_status_of(*st))).collect(),
        created_at: s.created_at,
        tier: s.tier.clone(),
        lots: s
            .lots
            .iter()
            .map(|l| model::Lot {
                points: l.points,
                earned_at: l.earned_at,
                expires_at: l.expires_at,
            })
            .collect(),
        debt: s.debt,
        days: s
            .days
            .iter()
            .map(|d| model::DayBucket {
                day: d.day,
                spend: d.spend,
                points: d.points,
                visits: d.visits,
                activities: d.activities,
            })
            .collect(),
        pin_failures: s.pin_failures,
        pin_failed_at: s.pin_failed_at,
        tags: s.tags.clone(),
        active: s.active,
        enrolled_by: s.enrolled_by.clone(),
        visits: s.visits,
        last_visit_at: s.last_visit_at,
        merged_into: s.merged_into.clone(),
        tiers_reached: s.tiers_reached.clone(),
    }
}

impl From<&CouponState> for record::CouponSnapshotV2 {
    fn from(c: &CouponState) -> Self {
        record::CouponSnapshotV2 {
            type_id: c.type_id.clone(),
            member_id: c.member_id.clone(),
            issued: c.issued,
            valid_until: c.valid_until,
            used_by: c.used_by.clone(),
            issued_by: c.issued_by.clone(),
        }
    }
}

impl From<&record::CouponSnapshotV2> for CouponState {
    fn from(c: &record::CouponSnapshotV2) -> Self {
        CouponState {
            type_id: c.type_id.clone(),
            member_id: c.member_id.clone(),
            issued: c.issued,
            valid_until: c.valid_until,
            used_by: c.used_by.clone(),
            issued_by: c.issued_by.clone(),
        }
    }
}
