//! The shapes of a member's history (interface.md 0.2 "History", "Points outside a sale").

use serde::Serialize;

use super::{Receipt, RefundView};
use crate::model::{day_date, fmt_instant, CouponState, DayNo, Ts};
use crate::rules::Ruleset;
use crate::store::{LedgerEntry, TxSummary};

/// One entry of the points ledger.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LedgerEntryView {
    pub at: String,
    pub kind: &'static str,
    pub points: i64,
    pub balance_after: i64,
    pub tx_id: Option<String>,
    pub reason: Option<String>,
    pub by: Option<String>,
}

impl LedgerEntryView {
    pub fn new(rules: &Ruleset, e: &LedgerEntry) -> LedgerEntryView {
        LedgerEntryView {
            at: fmt_instant(e.at, &rules.timezone),
            kind: e.kind.as_str(),
            points: e.points,
            balance_after: e.balance_after,
            tx_id: e.tx_id.clone(),
            reason: e.reason.clone(),
            by: e.by.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LedgerPage {
    pub entries: Vec<LedgerEntryView>,
    pub next: Option<String>,
}

/// One of a member's checkouts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TxSummaryView {
    pub tx_id: String,
    pub at: String,
    pub total: i64,
    pub points_earned: i64,
    pub points_redeemed: i64,
    /// The amount refunded of it so far.
    pub refunded: i64,
    pub terminal_id: String,
}

impl TxSummaryView {
    pub fn new(rules: &Ruleset, t: &TxSummary, refunded: i64) -> TxSummaryView {
        TxSummaryView {
            tx_id: t.tx_id.clone(),
            at: fmt_instant(t.at, &rules.timezone),
            total: t.total,
            points_earned: t.points_earned,
            points_redeemed: t.points_redeemed,
            refunded,
            terminal_id: t.terminal_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransactionsPage {
    pub transactions: Vec<TxSummaryView>,
    pub next: Option<String>,
}

/// A receipt found again: the receipt, its refunds, who made it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransactionView {
    #[serde(flatten)]
    pub receipt: Receipt,
    pub refunds: Vec<PastRefund>,
    pub by: Option<String>,
    pub terminal_id: String,
}

/// A refund of a transaction found again: the Refund shape, with when and by whom.
/// `balance` and `tier` are the member's right after it where the ledger tells.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PastRefund {
    #[serde(flatten)]
    pub refund: RefundView,
    pub at: String,
    pub by: Option<String>,
}

/// One of a member's coupons.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberCouponView {
    pub code: String,
    #[serde(rename = "type")]
    pub type_id: String,
    pub valid_until: String,
    pub state: &'static str,
    pub issued_by: String,
}

impl MemberCouponView {
    /// A coupon as of local day `today`.
    pub fn new(code: &str, c: &CouponState, today: DayNo) -> MemberCouponView {
        MemberCouponView {
            code: code.to_string(),
            type_id: c.type_id.clone(),
            valid_until: day_date(c.valid_until).to_string(),
            state: match (&c.used_by, c.valid_until < today) {
                (Some(_), _) => "used",
                (None, true) => "expired",
                (None, false) => "unused",
            },
            issued_by: c.issued_by.clone(),
        }
    }
}

/// When a ledger entry was made, for shapes that name it.
pub fn at(rules: &Ruleset, ts: Ts) -> String {
    fmt_instant(ts, &rules.timezone)
}
