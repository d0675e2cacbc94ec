//! Journal records: what happened, with the outcome the rules computed.
//!
//! A record carries results (points earned, amounts, the tier reached), not just the
//! request, so that applying it needs no ruleset: replay, `rebuild` and the hub reach
//! the same state whatever rules are loaded now.
//!
//! # The format is frozen
//!
//! Journals live for years on SD cards in shops, and every build must read every
//! journal any earlier build wrote (tests/golden/ holds one set per release). The
//! encoding is postcard, which is not self-describing: a struct is its fields in
//! order, an enum the index of its variant and then the variant's fields. So:
//!
//! 1. Never change a type that has been written: no field added, removed, reordered
//!    or retyped, no variant reordered, renamed in meaning or removed, in `Payload`,
//!    the headers, `Body` or any type a variant holds (everything in this module).
//!    Names are free (they are not encoded); layouts are not.
//! 2. A new kind of record is a new variant at the end of `Body`.
//! 3. A kind that must hold more gets a new version: a new struct (`RefundV2`) in a
//!    new variant at the end of `Body`; the old variant stays, and `Record::decode`
//!    turns it into the new one, so that nothing above this module sees old versions.
//!    Only the new one is written from then on.
//! 4. A header that must hold more gets a new `HeaderVn` in a new `Payload` variant
//!    at the end, decoded into `Record`'s fields the same way (first use: `HeaderV2`,
//!    the idempotency key of any change).
//! 5. A release that writes a new version adds its golden journals (every kind).
//!
//! Nothing here imports the crate but the model's primitives (instants and day
//! numbers), so no change elsewhere can change a record by accident; the types
//! mirror the domain's and the modules that write and apply records convert.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{DayNo, Ts};

/// One journal record. Its identity is (terminal id, install epoch, journal seq): the
/// first two come from the journal's `Init` record, the seq from the journal frame.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The idempotency key the change was asked with, and the hash of the request: the
    /// same key with the same request answers again from this record.
    pub idem: Option<IdemKey>,
    pub body: Body,
}

/// An idempotency key and the hash of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemKey {
    pub key: String,
    pub request: [u8; 32],
}

/// What a journal frame holds. Frozen (see the module docs).
#[derive(Deserialize)]
enum Payload {
    V1(HeaderV1, Body),
    V2(HeaderV2, Body),
}

/// Encodes like `Payload::V2` without cloning the body.
#[derive(Serialize)]
enum PayloadRef<'a> {
    #[allow(dead_code)]
    V1(HeaderV1, &'a Body),
    V2(HeaderV2, &'a Body),
}

/// The header of 0.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HeaderV1 {
    wall: Ts,
    clock_trusted: bool,
    boot_id: [u8; 16],
    mono_us: u64,
    at: Ts,
    day: DayNo,
}

/// 0.2: and the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HeaderV2 {
    wall: Ts,
    clock_trusted: bool,
    boot_id: [u8; 16],
    mono_us: u64,
    at: Ts,
    day: DayNo,
    idem: Option<IdemKey>,
}

/// The kinds of record. Frozen: add variants at the end only (see the module docs).
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
    Checkout(Box<Checkout>),
    Refund(Box<Refund>),
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

/// A birthday as month and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Birthday {
    pub month: u8,
    pub day: u8,
}

/// One line of a sale as the POS sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub category: String,
    pub qty: i64,
    pub unit_price: i64,
}

/// A line of a committed sale with what each step of the pricing took off it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    pub line: Line,
    /// Not in an excluded category: takes discounts and earns.
    pub eligible: bool,
    /// Tier discount, promotion and coupon allocated to this line.
    pub d1: i64,
    pub d2: i64,
    pub d3: i64,
}

impl PricedLine {
    /// What the line came to after its discounts.
    pub fn net(&self) -> i64 {
        self.line.qty * self.line.unit_price - self.d1 - self.d2 - self.d3
    }
}

/// A committed checkout: the receipt's arithmetic and what it did to the member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    pub tx_id: String,
    pub member_id: String,
    pub card: String,
    /// 0.1 kept the idempotency key here; 0.2 keeps it in the record's header, and
    /// `Record::decode` moves an old one there.
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

/// A refund of (part of) a checkout made at this terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub tx_id: String,
    pub member_id: String,
    pub plan: RefundPlan,
}

/// What a refund gives back and takes away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPlan {
    /// (index of the checkout line, quantity refunded now)
    pub lines: Vec<(u32, i64)>,
    pub amount: i64,
    pub points_clawed_back: i64,
    pub points_returned: i64,
    /// Earn base and earned points leaving the tier metric.
    pub base: i64,
    pub points_metric: i64,
    /// The visit leaves the metric (the last refund of a checkout that counted one).
    pub visit: bool,
    /// This refund takes the last of the checkout.
    pub last: bool,
}

/// Member snapshots and the rest of a pull, as the hub sent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubPull {
    /// The hub's opaque position after this pull.
    pub cursor: u64,
    /// What the hub had acknowledged of this terminal when it built the snapshots.
    pub acked: u64,
    pub members: Vec<MemberSnapshot>,
    pub coupons: Vec<(String, CouponSnapshot)>,
    pub blocked_cards: Vec<String>,
    pub ruleset: Option<String>,
}

/// A member as the hub knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub name: String,
    pub phone: String,
    pub birthday: Option<Birthday>,
    pub pin_hash: Option<String>,
    pub cards: Vec<(String, CardStatus)>,
    pub created_at: Ts,
    pub tier: String,
    pub lots: Vec<Lot>,
    pub debt: i64,
    pub days: Vec<DayBucket>,
    pub pin_failures: u32,
    pub pin_failed_at: Ts,
    /// 0.1 sent the hub's own bookkeeping in these three; they mean nothing to a
    /// terminal, which ignores them (0.2 sends them empty).
    pub unacked_redeem: Vec<(u64, i64)>,
    pub local_seq: u64,
    pub listed_negative: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CardStatus {
    Active,
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub points: i64,
    pub earned_at: Ts,
    pub expires_at: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayBucket {
    pub day: DayNo,
    pub spend: i64,
    pub points: i64,
    pub visits: i64,
}

/// A coupon as the hub knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponSnapshot {
    pub type_id: String,
    pub member_id: String,
    pub issued: DayNo,
    pub valid_until: DayNo,
    pub used_by: Option<String>,
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

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let header = HeaderV2 {
            wall: self.wall,
            clock_trusted: self.clock_trusted,
            boot_id: self.boot_id,
            mono_us: self.mono_us,
            at: self.at,
            day: self.day,
            idem: self.idem.clone(),
        };
        postcard::to_allocvec(&PayloadRef::V2(header, &self.body)).expect("records always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Record> {
        let (h, idem, mut body) = match postcard::from_bytes::<Payload>(bytes) {
            Ok(Payload::V1(h, body)) => (h, None, body),
            Ok(Payload::V2(h, body)) => {
                let v1 = HeaderV1 {
                    wall: h.wall,
                    clock_trusted: h.clock_trusted,
                    boot_id: h.boot_id,
                    mono_us: h.mono_us,
                    at: h.at,
                    day: h.day,
                };
                (v1, h.idem, body)
            }
            Err(e) => return Err(Error::internal(format!("undecodable journal record: {e}"))),
        };
        // 0.1 kept a checkout's key in the checkout.
        let idem = match &mut body {
            Body::Checkout(c) => idem.or_else(|| c.idem.take().map(|(key, request)| IdemKey { key, request })),
            _ => idem,
        };
        Ok(Record {
            wall: h.wall,
            clock_trusted: h.clock_trusted,
            boot_id: h.boot_id,
            mono_us: h.mono_us,
            at: h.at,
            day: h.day,
            idem,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(idem: Option<IdemKey>, body: Body) -> Record {
        Record {
            wall: 1,
            clock_trusted: true,
            boot_id: [7; 16],
            mono_us: 2,
            at: 3,
            day: 4,
            idem,
            body,
        }
    }

    #[test]
    fn round_trip_with_and_without_a_key() {
        let key = IdemKey {
            key: "pos-1".into(),
            request: [9; 32],
        };
        for r in [
            record(None, Body::Expire { member_id: "m".into() }),
            record(Some(key), Body::CardBlock { card: "04A1".into() }),
        ] {
            assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn a_0_1_checkout_key_moves_to_the_header() {
        // A 0.1 payload: variant 0 of Payload, the 0.1 header, the body.
        let c = Checkout {
            tx_id: "T1-00000001-0000000002".into(),
            member_id: "m".into(),
            card: "04A1".into(),
            idem: Some(("pos-1".into(), [5; 32])),
            lines: vec![],
            subtotal: 0,
            tier_discount: 0,
            promotion: None,
            coupon: None,
            due: 0,
            points_redeemed: 0,
            redeem_value: 0,
            total: 0,
            base: 0,
            points_earned: 0,
            lot_expires_at: None,
            tier_before: "standard".into(),
            tier_after: "standard".into(),
            visit: false,
            pin_verified: false,
            ruleset_version: 1,
        };
        let h = HeaderV1 {
            wall: 1,
            clock_trusted: true,
            boot_id: [7; 16],
            mono_us: 2,
            at: 3,
            day: 4,
        };
        let old = Body::Checkout(Box::new(c.clone()));
        let bytes = postcard::to_allocvec(&PayloadRef::V1(h, &old)).unwrap();
        let r = Record::decode(&bytes).unwrap();
        assert_eq!(
            r.idem,
            Some(IdemKey {
                key: "pos-1".into(),
                request: [5; 32]
            })
        );
        let Body::Checkout(got) = r.body else { panic!() };
        assert_eq!(got.idem, None);
        assert_eq!(got.tx_id, c.tx_id);
    }
}
