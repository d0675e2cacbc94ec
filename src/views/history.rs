//! The shapes of a member's history (interface.md 0.2 "History", "Points outside a sale").

use serde::Serialize;
use utoipa::openapi::schema::Object;
use utoipa::ToSchema;

use super::{schema, Receipt, RefundView};
use crate::model::{day_date, fmt_instant, CouponState, DayNo, Ts};
use crate::rules::Ruleset;
use crate::store::{LedgerEntry, LedgerKind, TxSummary};

const COUPON_UNUSED: &str = "unused";
const COUPON_USED: &str = "used";
const COUPON_EXPIRED: &str = "expired";

fn ledger_kind_schema() -> Object {
    use LedgerKind::*;
    // A kind added to LedgerKind fails this match until it is listed here too.
    let listed = |k: LedgerKind| match k {
        Earn | Redeem | Reward | Expire | Clawback | Return | Adjust | Activity | Gift => k.as_str(),
    };
    schema::string_enum([Earn, Redeem, Reward, Expire, Clawback, Return, Adjust, Activity, Gift].map(listed))
}

fn coupon_state_schema() -> Object {
    schema::string_enum([COUPON_UNUSED, COUPON_USED, COUPON_EXPIRED])
}

/// One entry of the points ledger.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = LedgerEntry)]
pub struct LedgerEntryView {
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(schema_with = ledger_kind_schema)]
    pub kind: &'static str,
    pub points: i64,
    pub balance_after: i64,
    /// The sale or refund it came with, if any.
    #[schema(required = true)]
    pub tx_id: Option<String>,
    /// An adjustment's reason, an activity's id.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// Who acted (a staff id, `pos`, `cli`, `system`); null before 0.2.
    #[schema(required = true)]
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct LedgerPage {
    /// Newest first.
    pub entries: Vec<LedgerEntryView>,
    /// The `after` of the next page; null on the last.
    #[schema(required = true)]
    pub next: Option<String>,
}

/// One of a member's checkouts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = TransactionSummary)]
pub struct TxSummaryView {
    pub tx_id: String,
    #[schema(format = DateTime)]
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct TransactionsPage {
    /// Newest first.
    pub transactions: Vec<TxSummaryView>,
    /// The `after` of the next page; null on the last.
    #[schema(required = true)]
    pub next: Option<String>,
}

/// A receipt found again: the receipt, its refunds, who made it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Transaction)]
pub struct TransactionView {
    #[serde(flatten)]
    pub receipt: Receipt,
    pub refunds: Vec<PastRefund>,
    /// The staff id or token name that made it; null before 0.2.
    #[schema(required = true)]
    pub by: Option<String>,
    pub terminal_id: String,
}

/// A refund of a transaction found again: the Refund shape, with when and by whom.
/// `balance` and `tier` are the member's right after it where the ledger tells.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct PastRefund {
    #[serde(flatten)]
    pub refund: RefundView,
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(required = true)]
    pub by: Option<String>,
}

/// One of a member's coupons.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = MemberCoupon)]
pub struct MemberCouponView {
    pub code: String,
    #[serde(rename = "type")]
    pub type_id: String,
    #[schema(format = Date)]
    pub valid_until: String,
    #[schema(schema_with = coupon_state_schema)]
    pub state: &'static str,
    /// `manual`, `trigger:<id>` or `exchange`.
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
                (Some(_), _) => COUPON_USED,
                (None, true) => COUPON_EXPIRED,
                (None, false) => COUPON_UNUSED,
            },
            issued_by: c.issued_by.clone(),
        }
    }
}

/// When a ledger entry was made, for shapes that name it.
pub fn at(rules: &Ruleset, ts: Ts) -> String {
    fmt_instant(ts, &rules.timezone)
}
