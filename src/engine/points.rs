//! Points outside a sale (adjustments, activities) and what a member can be shown of
//! their past: the points ledger, their transactions, a receipt found again, coupons.

use super::profile::live;
use super::{At, Engine, Keyed, Step};
use crate::error::{Code, Error, Result};
use crate::model::{check_text, day_no, Role, Ts};
use crate::record::{self, Body, Record};
use crate::rules::{activity, local_date, lots, Ruleset};
use crate::store::base::{self, StateBase};
use crate::store::{LedgerKind, Store, TxState};
use crate::views::history::{
    LedgerEntryView, LedgerPage, MemberCouponView, PastRefund, TransactionView, TransactionsPage, TxSummaryView,
};
use crate::views::{MemberView, Receipt, RefundView};

/// The largest page of history, and the page asked without a limit.
pub const PAGE_MAX: usize = 100;
pub const PAGE_DEFAULT: usize = 20;

/// The largest adjustment by hand (a typo of many zeros is refused, not booked).
pub const MAX_ADJUST: i64 = 10_000_000;

impl Engine {
    /// Adds or takes points by hand, with a reason (manager). Taking more than the
    /// member holds is refused: a correction does not make debt.
    pub fn adjust_points(
        &self,
        member_id: &str,
        points: i64,
        reason: &str,
        key: Option<&str>,
        at: At,
    ) -> Result<LedgerEntryView> {
        at.require(Role::Manager, "adjusting points")?;
        if points == 0 || points.abs() > MAX_ADJUST {
            return Err(Error::invalid(format!(
                "points must be non-zero and at most {MAX_ADJUST} either way"
            )));
        }
        let reason = check_text("reason", reason.trim(), 200)?.to_string();
        let key = key
            .map(|k| Keyed::new(k, "points adjust", &(member_id, points, &reason)))
            .transpose()?;
        let id = member_id.to_string();
        self.commit(
            &at,
            key.as_ref(),
            |store, rules| {
                let mut m = live(store, &id)?;
                let mut bodies = self.expire_first(&mut m, &at);
                let balance = m.balance_at(at.ts, at.trusted);
                if points < 0 && -points > balance {
                    return Err(Error::new(
                        Code::InsufficientPoints,
                        format!("member {id} holds {balance} points; cannot take {}", -points),
                    ));
                }
                bodies.push(Body::PointsAdjust {
                    member_id: id.clone(),
                    points,
                    reason: reason.clone(),
                    lot_expires_at: lots::expires_at(rules, at.ts),
                });
                Ok(Step::Done(bodies, ()))
            },
            |store, rules, _| newest_entry(store, rules, &id),
            |_, rules, rec, first| Ok(entry_of(rules, rec, first.balance_after)),
        )
    }

    /// Grants an activity of the ruleset to a member, within its limits.
    pub fn grant_activity(
        &self,
        member_id: &str,
        activity_id: &str,
        key: Option<&str>,
        at: At,
    ) -> Result<LedgerEntryView> {
        let key = key
            .map(|k| Keyed::new(k, "activity", &(member_id, activity_id)))
            .transpose()?;
        let id = member_id.to_string();
        self.commit(
            &at,
            key.as_ref(),
            |store, rules| {
                let a = rules
                    .activity(activity_id)
                    .ok_or_else(|| Error::invalid(format!("the ruleset has no activity {activity_id:?}")))?;
                let mut m = live(store, &id)?;
                if !m.active {
                    return Err(Error::new(Code::MemberInactive, format!("member {id} is inactive")));
                }
                let day = day_no(local_date(rules, at.ts));
                let count = store.activity_count(&id, activity_id)?;
                let granted = activity::Granted {
                    today: if count.day == day { count.today } else { 0 },
                    total: count.total,
                };
                activity::check(a, granted).map_err(|e| Error::new(Code::ActivityLimit, e.to_string()))?;
                let mut bodies = self.expire_first(&mut m, &at);
                bodies.push(Body::Activity {
                    member_id: id.clone(),
                    activity_id: a.id.clone(),
                    points: a.points,
                    lot_expires_at: lots::expires_at(rules, at.ts),
                });
                Ok(Step::Done(bodies, ()))
            },
            |store, rules, _| newest_entry(store, rules, &id),
            |_, rules, rec, first| Ok(entry_of(rules, rec, first.balance_after)),
        )
    }

    /// A member's points ledger, newest first, from the cursor `after`.
    pub fn ledger_page(&self, member_id: &str, after: Option<&str>, limit: Option<usize>) -> Result<LedgerPage> {
        self.member_state(member_id)?;
        let (before, limit) = (cursor(after)?, page_limit(limit)?);
        let rules = self.rules();
        let (entries, next) = self.store.ledger(member_id, before, limit)?;
        Ok(LedgerPage {
            entries: entries.iter().map(|(_, e)| LedgerEntryView::new(&rules, e)).collect(),
            next: next.map(|n| n.to_string()),
        })
    }

    /// A member's transactions, newest first, from the cursor `after`.
    pub fn transactions_page(
        &self,
        member_id: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<TransactionsPage> {
        self.member_state(member_id)?;
        let (before, limit) = (cursor(after)?, page_limit(limit)?);
        let rules = self.rules();
        let (txs, next) = self.store.transactions(member_id, before, limit)?;
        let mut out = Vec::with_capacity(txs.len());
        for (_, t) in &txs {
            let refunded = self.find_tx(&t.tx_id)?.map_or(0, |tx| tx.refunded.amount);
            out.push(TxSummaryView::new(&rules, t, refunded));
        }
        Ok(TransactionsPage {
            transactions: out,
            next: next.map(|n| n.to_string()),
        })
    }

    /// A checkout found again by id: its receipt, its refunds, who made it.
    pub fn transaction(&self, tx_id: &str) -> Result<TransactionView> {
        transaction_view(&self.store, &self.rules(), tx_id, self.now())
    }

    /// A member's coupons, each as of today.
    pub fn member_coupons(&self, member_id: &str) -> Result<Vec<MemberCouponView>> {
        self.member_state(member_id)?;
        let today = day_no(local_date(&self.rules(), self.now()));
        Ok(self
            .store
            .member_coupons(member_id)?
            .iter()
            .map(|(code, c)| MemberCouponView::new(code, c, today))
            .collect())
    }

    /// A checkout by id: this terminal's own, or on the hub any terminal's.
    fn find_tx(&self, tx_id: &str) -> Result<Option<TxState>> {
        base::find_tx(&self.store, tx_id)
    }
}

/// A checkout found again by id, from the state `base` holds (a terminal's, the
/// embedded hub's, the hub's on PostgreSQL): its receipt, its refunds, who made it.
pub fn transaction_view(base: &dyn StateBase, rules: &Ruleset, tx_id: &str, now: Ts) -> Result<TransactionView> {
    check_text("tx_id", tx_id, 80)?;
    let unknown = || Error::new(Code::UnknownTransaction, format!("no transaction {tx_id}"));
    let tx = base::find_tx(base, tx_id)?.ok_or_else(unknown)?;
    let (summary, by) = summary_of(base, &tx)?;
    let receipt = Receipt::of_checkout(rules, &tx.rec, tx.at, summary, false);
    let m = base::member(base, &tx.rec.member_id)?
        .ok_or_else(|| Error::new(Code::UnknownMember, format!("no member has id {:?}", tx.rec.member_id)))?;
    let tier = MemberView::new(rules, &m, now, true).tier;
    let mut refunds = Vec::new();
    for refund_id in &tx.refund_ids {
        if let Some((rec, r)) = refund_record(base, refund_id)? {
            refunds.push(PastRefund {
                refund: RefundView {
                    refund_id: r.refund_id.clone(),
                    tx_id: r.tx_id.clone(),
                    amount: r.plan.amount,
                    points_clawed_back: r.plan.points_clawed_back,
                    points_returned: r.plan.points_returned,
                    balance: balance_after(base, &tx.rec.member_id, tx_id, rec.at)?.unwrap_or(0),
                    tier: tier.clone(),
                },
                at: crate::model::fmt_instant(rec.at, &rules.timezone),
                by: rec.by.clone(),
            });
        }
    }
    Ok(TransactionView {
        terminal_id: crate::store::parse_tx_id(tx_id).map_or(String::new(), |(t, _, _)| t.to_string()),
        receipt,
        refunds,
        by,
    })
}

/// The balance after a checkout and who made it, from the member's history.
fn summary_of(base: &dyn StateBase, tx: &TxState) -> Result<(i64, Option<String>)> {
    let mut before = None;
    // Receipts asked for again are nearly always recent: newest first, a page at a time.
    for _ in 0..1000 {
        let (page, next) = base::transactions(base, &tx.rec.member_id, before, 64)?;
        if let Some((_, t)) = page.iter().find(|(_, t)| t.tx_id == tx.rec.tx_id) {
            return Ok((t.balance_after, t.by.clone()));
        }
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    Ok((0, None))
}

/// The refund record a refund id names (its seq in the terminal's journal).
fn refund_record(base: &dyn StateBase, refund_id: &str) -> Result<Option<(Record, record::Refund)>> {
    let Some(rec) = base::tx_record(base, refund_id)? else {
        return Ok(None);
    };
    match &rec.body {
        Body::Refund(r) if r.refund_id == refund_id => {
            let r = (**r).clone();
            Ok(Some((rec, r)))
        }
        _ => Ok(None),
    }
}

/// The member's balance after the last ledger entry of `tx_id` made at `at`.
fn balance_after(base: &dyn StateBase, member_id: &str, tx_id: &str, at: Ts) -> Result<Option<i64>> {
    let mut before = None;
    for _ in 0..1000 {
        let (page, next) = base::ledger(base, member_id, before, 64)?;
        if let Some((_, e)) = page.iter().find(|(_, e)| {
            e.at == at
                && e.tx_id.as_deref() == Some(tx_id)
                && matches!(e.kind, LedgerKind::Return | LedgerKind::Clawback)
        }) {
            return Ok(Some(e.balance_after));
        }
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    Ok(None)
}

/// The member's newest ledger entry (what a change just wrote).
fn newest_entry(store: &Store, rules: &Ruleset, member_id: &str) -> Result<LedgerEntryView> {
    let (entries, _) = store.ledger(member_id, None, 1)?;
    entries
        .first()
        .map(|(_, e)| LedgerEntryView::new(rules, e))
        .ok_or_else(|| Error::internal(format!("member {member_id} has no ledger entry after a change")))
}

/// The ledger entry a points record made, for a replayed answer.
fn entry_of(rules: &Ruleset, rec: &Record, balance_after: i64) -> LedgerEntryView {
    let (kind, points, reason) = match &rec.body {
        Body::PointsAdjust { points, reason, .. } => ("adjust", *points, reason.clone()),
        Body::Activity {
            points, activity_id, ..
        } => ("activity", *points, activity_id.clone()),
        _ => ("adjust", 0, String::new()),
    };
    LedgerEntryView {
        at: crate::model::fmt_instant(rec.at, &rules.timezone),
        kind,
        points,
        balance_after,
        tx_id: None,
        reason: Some(reason),
        by: rec.by.clone(),
    }
}

/// A history cursor: the number of the entry the next page starts before.
pub(crate) fn cursor(after: Option<&str>) -> Result<Option<u64>> {
    after
        .map(|a| {
            a.parse::<u64>()
                .map_err(|_| Error::invalid(format!("bad cursor {a:?}")))
        })
        .transpose()
}

pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize> {
    let limit = limit.unwrap_or(PAGE_DEFAULT);
    if (1..=PAGE_MAX).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::invalid(format!("limit must be 1 to {PAGE_MAX}")))
    }
}
