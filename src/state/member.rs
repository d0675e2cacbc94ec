//! What each record does to a member: pure functions over values. The store loads the
//! member, calls one of these, and writes the result; the engine calls the same ones
//! on a copy when it needs the state a change will leave (an answer, a check), so
//! that what it says and what replay builds cannot differ.

use crate::model::{CardStatus, DayNo, MemberState, Taken, Ts, PIN_MAX_TRIES};
use crate::record;
use crate::rules::{lots, tier};

/// The new member a `MemberAdd` record makes (None for any other record).
/// `card_status` is Active unless the card was already someone else's (on the hub, two
/// offline enrolments of one card).
pub fn enrolled(body: &record::Body, card_status: CardStatus, at: Ts) -> Option<MemberState> {
    let record::Body::MemberAdd {
        member_id,
        card,
        name,
        phone,
        birthday,
        pin_hash,
    } = body
    else {
        return None;
    };
    Some(MemberState {
        member_id: member_id.clone(),
        name: name.clone(),
        phone: phone.clone(),
        birthday: birthday.map(Into::into),
        pin_hash: pin_hash.clone(),
        cards: vec![(card.clone(), card_status)],
        created_at: at,
        tier: String::new(),
        lots: vec![],
        debt: 0,
        days: vec![],
        pin_failures: 0,
        pin_failed_at: 0,
    })
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
    /// lot (after any debt), the tier and the metric move. Returns the lot parts taken.
    pub fn on_checkout(&mut self, c: &record::Checkout, at: Ts, day: DayNo) -> Vec<Taken> {
        let taken = lots::take(&mut self.lots, &mut self.debt, c.points_redeemed);
        lots::credit(&mut self.lots, &mut self.debt, c.points_earned, at, c.lot_expires_at);
        self.tier = c.tier_after.clone();
        tier::record(&mut self.days, day, c.base, c.points_earned, c.visit as i64);
        if c.pin_verified {
            self.pin_failures = 0;
        }
        taken
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
