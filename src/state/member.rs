//! What each record does to a member: pure functions over values. The store loads the
//! member, calls one of these, and writes the result; the engine calls the same ones
//! on a copy when it needs the state a change will leave (an answer, a check), so
//! that what it says and what replay builds cannot differ.

use crate::model::{CardStatus, DayNo, MemberState, Taken, Ts, PIN_MAX_TRIES};
use crate::record;
use crate::rules::{lots, tier};

/// The new member a `MemberAddV2` record makes (None for any other record), enrolled
/// by terminal `enrolled_by`. `card_status` is Active unless the card was already
/// someone else's (on the hub, two offline enrolments of one card).
pub fn enrolled(body: &record::Body, card_status: CardStatus, at: Ts, enrolled_by: &str) -> Option<MemberState> {
    let record::Body::MemberAddV2(add) = body else {
        return None;
    };
    Some(MemberState {
        member_id: add.member_id.clone(),
        name: add.name.clone(),
        phone: add.phone.clone(),
        birthday: add.birthday.map(Into::into),
        pin_hash: add.pin_hash.clone(),
        cards: vec![(add.card.clone(), card_status)],
        created_at: at,
        tags: add.tags.clone(),
        active: true,
        enrolled_by: enrolled_by.to_string(),
        ..MemberState::default()
    })
}

/// A member an import brings, with its balance as one lot.
pub fn imported(m: &record::Imported, at: Ts, enrolled_by: &str) -> MemberState {
    let mut state = MemberState {
        member_id: m.member_id.clone(),
        name: m.name.clone(),
        phone: m.phone.clone(),
        birthday: m.birthday.map(Into::into),
        cards: vec![(m.card.clone(), CardStatus::Active)],
        created_at: at,
        tags: m.tags.clone(),
        active: true,
        enrolled_by: enrolled_by.to_string(),
        ..MemberState::default()
    };
    state.credit(m.points, at, m.lot_expires_at);
    state
}

/// What a refund needs to know of the checkout it refunds.
pub struct Refunded<'a> {
    /// Lot parts the checkout's redemption took, and how much of them was given back.
    pub taken: &'a [Taken],
    pub returned_before: i64,
    pub checkout_at: Ts,
    pub checkout_day: DayNo,
    pub lot_expires_at: Option<Ts>,
}

impl MemberState {
    /// Sets a card's status, adding the card if the member did not have it.
    pub fn set_card(&mut self, card: &str, status: CardStatus) {
        match self.cards.iter_mut().find(|(c, _)| c == card) {
            Some(c) => c.1 = status,
            None => self.cards.push((card.to_string(), status)),
        }
    }

    /// `new` (of status `status`: Blocked if another member holds it) takes the place of
    /// `old`: every other card of the member is blocked, so that a member never has two
    /// active cards.
    pub fn replace_card(&mut self, old: &str, new: &str, status: CardStatus) {
        self.set_card(old, CardStatus::Blocked);
        for (c, s) in self.cards.iter_mut() {
            if c != new {
                *s = CardStatus::Blocked;
            }
        }
        self.set_card(new, status);
    }

    /// A checkout: its redemption takes lots first-expiring-first, its earnings form a
    /// lot (after any debt), the tier and the metric move, a visit counts. Returns the
    /// lot parts taken.
    pub fn on_checkout(&mut self, c: &record::CheckoutV3, at: Ts, day: DayNo) -> Vec<Taken> {
        let taken = lots::take(&mut self.lots, &mut self.debt, c.points_redeemed);
        lots::credit(&mut self.lots, &mut self.debt, c.points_earned, at, c.lot_expires_at);
        // Tier gifts: a lot of their own, never part of the tier metric.
        lots::credit(&mut self.lots, &mut self.debt, c.gift_points, at, c.lot_expires_at);
        self.tier = c.tier_after.clone();
        for t in c.tiers_reached.iter().chain([&c.tier_after]) {
            if !self.tiers_reached.contains(t) {
                self.tiers_reached.push(t.clone());
            }
        }
        tier::record(&mut self.days, day, c.base, c.points_earned, c.visit as i64);
        if c.visit {
            self.visits += 1;
            self.last_visit_at = Some(at);
        }
        if c.pin_verified {
            self.pin_failures = 0;
        }
        taken
    }

    /// Points given outside a sale (an adjustment, an activity, an import): one lot
    /// (repaying any debt first).
    pub fn credit(&mut self, points: i64, at: Ts, expires_at: Option<Ts>) {
        lots::credit(&mut self.lots, &mut self.debt, points, at, expires_at);
    }

    /// Points taken outside a sale (a negative adjustment): first-expiring first.
    pub fn debit(&mut self, points: i64) {
        lots::take(&mut self.lots, &mut self.debt, points);
    }

    /// An activity grant at `day`: its points, and a count for the growth score.
    pub fn on_activity(&mut self, points: i64, at: Ts, day: DayNo, expires_at: Option<Ts>) {
        self.credit(points, at, expires_at);
        tier::record_activities(&mut self.days, day, 1);
    }

    /// An edit: each field given replaces the old one.
    pub fn on_edit(&mut self, e: &record::MemberEdit) {
        if let Some(name) = &e.name {
            self.name = name.clone();
        }
        if let Some(phone) = &e.phone {
            self.phone = phone.clone();
        }
        if let Some(b) = e.birthday {
            self.birthday = b.map(Into::into);
        }
        if let Some(tags) = &e.tags {
            self.tags = tags.clone();
        }
    }

    /// A new PIN; a reset (by a manager) also lifts a lock.
    pub fn on_pin_set(&mut self, pin_hash: &str, reset: bool) {
        self.pin_hash = Some(pin_hash.to_string());
        if reset {
            self.pin_failures = 0;
        }
    }

    /// Everything of `other` moves into this member (an operator's merge): lots and
    /// debt, the tier metric's days, visits, tiers reached, tags; `other` is left empty
    /// and marked merged into this one.
    pub fn absorb(&mut self, other: &mut MemberState) {
        for lot in other.lots.drain(..) {
            lots::credit(
                &mut self.lots,
                &mut self.debt,
                lot.points,
                lot.earned_at,
                lot.expires_at,
            );
        }
        if other.debt > 0 {
            lots::take(&mut self.lots, &mut self.debt, other.debt);
            other.debt = 0;
        }
        for d in other.days.drain(..) {
            tier::record(&mut self.days, d.day, d.spend, d.points, d.visits);
            tier::record_activities(&mut self.days, d.day, d.activities);
        }
        self.visits += other.visits;
        self.last_visit_at = self.last_visit_at.max(other.last_visit_at);
        for t in other.tiers_reached.drain(..) {
            if !self.tiers_reached.contains(&t) {
                self.tiers_reached.push(t);
            }
        }
        for t in other.tags.drain(..) {
            if !self.tags.contains(&t) {
                self.tags.push(t);
            }
        }
        other.visits = 0;
        other.merged_into = Some(self.member_id.clone());
    }

    /// A refund: redeemed points come back to lots with their expiry, earned points are
    /// clawed back (a debt if the balance is short), the metric gives back what it took.
    pub fn on_refund(&mut self, of: &Refunded, plan: &record::RefundPlan) {
        lots::give_back(
            &mut self.lots,
            &mut self.debt,
            of.taken,
            of.returned_before,
            plan.points_returned,
        );
        lots::clawback(
            &mut self.lots,
            &mut self.debt,
            plan.points_clawed_back,
            of.checkout_at,
            of.lot_expires_at,
        );
        tier::record(
            &mut self.days,
            of.checkout_day,
            -plan.base,
            -plan.points_metric,
            -(plan.visit as i64),
        );
        // The visit leaves the count with the refund that takes it out of the metric;
        // when the member was last in the shop stays what it was.
        if plan.visit {
            self.visits = self.visits.saturating_sub(1);
        }
    }

    /// A catalog reward paid with points.
    pub fn on_reward(&mut self, points: i64, pin_verified: bool) {
        lots::take(&mut self.lots, &mut self.debt, points);
        if pin_verified {
            self.pin_failures = 0;
        }
    }

    /// Lots gone at `at` leave the balance; returns how many points.
    pub fn on_expire(&mut self, at: Ts) -> i64 {
        lots::expire(&mut self.lots, at)
    }

    /// A wrong PIN at `at`: counts towards the lock (a lock that ran out starts over).
    pub fn on_pin_fail(&mut self, at: Ts) {
        if !self.pin_locked_at(at) && self.pin_failures >= PIN_MAX_TRIES {
            self.pin_failures = 0;
        }
        self.pin_failures += 1;
        self.pin_failed_at = at;
    }

    /// Panics (in debug and test builds) if the member breaks what every state keeps:
    /// points are positive lots in expiry order (never-expiring last, then by when
    /// earned) and a debt is never negative, so the balance is the lots minus the debt.
    pub fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let id = &self.member_id;
        assert!(self.debt >= 0, "member {id}: negative debt {}", self.debt);
        assert!(
            self.lots.iter().all(|l| l.points > 0),
            "member {id}: a lot of no points: {:?}",
            self.lots
        );
        let order = |l: &crate::model::Lot| (l.expires_at.is_none(), l.expires_at, l.earned_at);
        assert!(
            self.lots.windows(2).all(|w| order(&w[0]) <= order(&w[1])),
            "member {id}: lots out of order: {:?}",
            self.lots
        );
        assert!(
            self.debt == 0 || self.lots.is_empty(),
            "member {id}: a debt of {} beside lots {:?} (credit repays debt first)",
            self.debt,
            self.lots
        );
        let days: Vec<DayNo> = self.days.iter().map(|d| d.day).collect();
        assert!(
            days.windows(2).all(|w| w[0] < w[1]),
            "member {id}: tier days out of order: {days:?}"
        );
    }
}
