//! Journal records: what happened, with the outcome the rules computed.
//!
//! A record carries results (points earned, amounts, the tier reached), not just the
//! request, so that applying it needs no ruleset: replay, `rebuild` and the hub reach
//! the same state whatever rules are loaded now. The encoding is postcard inside a
//! versioned enum: postcard is not self-describing, so a changed layout is a new variant.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Birthday, DayNo, Ts};
use crate::rules::refund::RefundPlan;
use crate::rules::PricedLine;

#[derive(Deserialize)]
enum Payload {
    V1(Record),
}

/// Encodes exactly like `Payload` without cloning the record.
#[derive(Serialize)]
enum PayloadRef<'a> {
    V1(&'a Record),
}

/// One journal record. Its identity is (terminal id, install epoch, journal seq): the
/// first two come from the journal's `Init` record, the seq from the journal frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Wall-clock time when written, and whether the clock was trusted then.
    pub wall: Ts,
    pub clock_trusted: bool,
    pub boot_id: [u8; 16],
    /// CLOCK_BOOTTIME in microseconds: orders records within one boot whatever the wall clock does.
    pub mono_us: u64,
    /// The business instant the change was priced at (`--at` or now).
    pub at: Ts,
    /// The shop-local date of `at` (the ruleset's zone at the time): daily report and tier day.
    pub day: DayNo,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// First record of every journal: who wrote it.
    Init {
        terminal_id: String,
        epoch: u64,
    },
    MemberAdd {
        member_id: String,
        card: String,
        name: String,
        phone: String,
        birthday: Option<Birthday>,
        pin_hash: Option<String>,
    },
    CardBlock {
        card: String,
    },
    CardReplace {
        old: String,
        new: String,
    },
    Checkout(Box<CheckoutRec>),
    Refund(Box<RefundRec>),
    CouponIssue {
        code: String,
        type_id: String,
        member_id: String,
        issued: DayNo,
        valid_until: DayNo,
    },
    RewardRedeem {
        redemption_id: String,
        member_id: String,
        sku: String,
        points: i64,
        pin_verified: bool,
    },
    /// Lots of the member gone at `at` leave the balance.
    Expire {
        member_id: String,
    },
    /// A wrong PIN: counts towards the lock.
    PinFail {
        member_id: String,
    },
    /// Terminal: what one pull from the hub brought (applied, never pushed back).
    HubPull(Box<HubPull>),
    /// Hub: a record a terminal pushed, with its identity.
    Remote(Box<Remote>),
    /// Hub: a terminal's stream is complete up to `upto` (records it skipped as local-only
    /// included); `duplicates` were received again and refused as already held.
    Covered {
        terminal_id: String,
        epoch: u64,
        upto: u64,
        duplicates: u64,
    },
    /// Hub: an operator published a ruleset for every terminal.
    RulesetPublish {
        text: String,
        version: u32,
    },
    /// Terminal: the hub acknowledged every record up to `upto`, which holds `pushable`
    /// records that go upstream.
    Acked {
        upto: u64,
        pushable: u64,
    },
}

/// Member snapshots and the rest of a pull, as the hub sent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubPull {
    /// The hub's opaque position after this pull.
    pub cursor: u64,
    /// What the hub had acknowledged of this terminal when it built the snapshots.
    pub acked: u64,
    pub members: Vec<crate::model::MemberState>,
    pub coupons: Vec<(String, crate::store::CouponState)>,
    pub blocked_cards: Vec<String>,
    pub ruleset: Option<String>,
}

/// A terminal's record as the hub keeps it: its identity and the journal payload exactly
/// as the terminal wrote it (with the terminal's own times inside), wrapped in a hub
/// record (with the hub's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    pub terminal_id: String,
    pub epoch: u64,
    pub seq: u64,
    pub payload: Vec<u8>,
}

impl Body {
    /// Records that go to the hub. What came from the hub, the hub's own records, and
    /// the journal's `Init` (the hub knows a stream by its identity) do not.
    pub fn is_pushable(&self) -> bool {
        !matches!(
            self,
            Body::Init { .. }
                | Body::HubPull(_)
                | Body::Remote(_)
                | Body::Covered { .. }
                | Body::RulesetPublish { .. }
                | Body::Acked { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRec {
    pub tx_id: String,
    pub member_id: String,
    pub card: String,
    /// Idempotency key and the hash of the request it came with.
    pub idem: Option<(String, [u8; 32])>,
    pub lines: Vec<PricedLine>,
    pub subtotal: i64,
    pub tier_discount: i64,
    pub promotion: Option<(String, i64)>,
    pub coupon: Option<(String, i64)>,
    pub due: i64,
    pub points_redeemed: i64,
    pub redeem_value: i64,
    pub total: i64,
    pub base: i64,
    pub points_earned: i64,
    pub lot_expires_at: Option<Ts>,
    pub tier_before: String,
    pub tier_after: String,
    pub visit: bool,
    pub pin_verified: bool,
    pub ruleset_version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRec {
    pub refund_id: String,
    pub tx_id: String,
    pub member_id: String,
    pub plan: RefundPlan,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(&PayloadRef::V1(self)).expect("records always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Record> {
        match postcard::from_bytes::<Payload>(bytes) {
            Ok(Payload::V1(r)) => Ok(r),
            Err(e) => Err(Error::internal(format!("undecodable journal record: {e}"))),
        }
    }
}
