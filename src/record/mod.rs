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
//!    at the end, decoded into `Record`'s fields the same way (first uses: `HeaderV2`,
//!    the idempotency key of any change; `HeaderV3`, who acted).
//! 5. A release that writes a new version adds its golden journals (every kind).
//!
//! Nothing here imports the crate but the model's primitives (instants and day
//! numbers), so no change elsewhere can change a record by accident; the types
//! mirror the domain's and the modules that write and apply records convert.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{DayNo, Ts};

mod campaign;
pub use campaign::*;

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
    /// Who acted: the staff id (or `pos` for the POS token), and, when a manager
    /// approved a request inside it, the caller who asked (`by` is then the approver).
    /// None in records written before 0.2 and in the engine's own (start-up, sync).
    pub by: Option<String>,
    pub requested_by: Option<String>,
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
    V3(HeaderV3, Body),
}

/// Encodes like `Payload::V2` without cloning the body.
#[derive(Serialize)]
enum PayloadRef<'a> {
    #[allow(dead_code)]
    V1(HeaderV1, &'a Body),
    #[allow(dead_code)]
    V2(HeaderV2, &'a Body),
    V3(HeaderV3, &'a Body),
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

/// 0.2 staff: and who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HeaderV3 {
    wall: Ts,
    clock_trusted: bool,
    boot_id: [u8; 16],
    mono_us: u64,
    at: Ts,
    day: DayNo,
    idem: Option<IdemKey>,
    by: Option<String>,
    requested_by: Option<String>,
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
    // ---- 0.2 ----
    /// A member enrolled with tags (`MemberAdd` is the 0.1 form, read as this with none).
    MemberAddV2(Box<MemberAddV2>),
    /// Changes to a member's details: each field given replaces the old one.
    MemberEdit(Box<MemberEdit>),
    /// Active or inactive (an inactive member's cards are refused at checkout).
    MemberStatus {
        member_id: String,
        active: bool,
    },
    /// A new PIN: changed with the old one, or reset by a manager (which lifts a lock).
    PinSet {
        member_id: String,
        pin_hash: String,
        reset: bool,
    },
    CardUnblock {
        card: String,
    },
    /// Points given or taken outside a sale, with the reason (`import` for balances
    /// brought from another system).
    PointsAdjust {
        member_id: String,
        points: i64,
        reason: String,
        lot_expires_at: Option<Ts>,
    },
    /// Points for taking part in an activity of the ruleset.
    Activity {
        member_id: String,
        activity_id: String,
        points: i64,
        lot_expires_at: Option<Ts>,
    },
    /// Staff accounts: a new one, or a change to one (its role, password, or disabled).
    StaffAdd {
        staff_id: String,
        name: String,
        role: String,
        password_hash: String,
    },
    StaffChange {
        staff_id: String,
        role: Option<String>,
        password_hash: Option<String>,
        disabled: Option<bool>,
    },
    /// The upgrade to canonical phones: each member's phone as it is now written.
    PhonesCanonical {
        phones: Vec<(String, String)>,
    },
    /// Part of a member import; nothing of it counts until its `ImportCommit`.
    ImportChunk {
        import_id: u64,
        members: Vec<Imported>,
    },
    ImportCommit {
        import_id: u64,
        chunks: u32,
    },
    /// Hub: an operator's resolution of a conflict (two enrolments of one card or phone):
    /// `keep` holds the card or phone; with `merge`, the others are merged into it.
    ConflictResolve {
        conflict_id: String,
        keep: String,
        merge: bool,
    },
    /// Terminal: what one pull from the hub brought, with 0.2's member snapshots.
    HubPullV2(Box<HubPullV2>),
    // ---- 0.2 campaigns ----
    /// A checkout with group-buy units, tier gifts and the coupons it issued.
    CheckoutV2(Box<CheckoutV2>),
    /// A coupon with who issued it and what it cost.
    CouponIssueV2(Box<CouponIssueV2>),
    /// A member joined (or opened) a group of a group-buy deal.
    GroupJoin(Box<GroupJoin>),
    /// The daily trigger pass ran for local day `day` (the coupons it issued come before).
    TriggerPass {
        day: DayNo,
    },
    /// Terminal: what one pull brought, with the groups the hub decided.
    HubPullV3(Box<HubPullV3>),
    // ---- 0.2 reports ----
    /// A checkout with the points each earn campaign added.
    CheckoutV3(Box<CheckoutV3>),
}

/// A member as enrolled (0.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddV2 {
    pub member_id: String,
    pub card: String,
    pub name: String,
    pub phone: String,
    pub birthday: Option<Birthday>,
    pub pin_hash: Option<String>,
    pub tags: Vec<String>,
}

/// The fields of a member an edit replaces (None: unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEdit {
    pub member_id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    /// Some(None) clears the birthday.
    pub birthday: Option<Option<Birthday>>,
    pub tags: Option<Vec<String>>,
}

/// One member of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    pub member_id: String,
    pub card: String,
    pub name: String,
    pub phone: String,
    pub birthday: Option<Birthday>,
    pub tags: Vec<String>,
    /// The balance brought along, as one lot.
    pub points: i64,
    pub lot_expires_at: Option<Ts>,
}

/// A pull (0.2): snapshots carry what 0.2 members hold beyond 0.1's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubPullV2 {
    pub cursor: u64,
    pub acked: u64,
    pub members: Vec<MemberSnapshotV2>,
    pub coupons: Vec<(String, CouponSnapshot)>,
    pub blocked_cards: Vec<String>,
    pub ruleset: Option<String>,
}

/// A member as the hub knows it (0.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshotV2 {
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
    pub days: Vec<DayBucketV2>,
    pub pin_failures: u32,
    pub pin_failed_at: Ts,
    pub tags: Vec<String>,
    pub active: bool,
    pub enrolled_by: String,
    pub visits: u64,
    pub last_visit_at: Option<Ts>,
    /// Merged into this member by an operator (then it holds no balance).
    pub merged_into: Option<String>,
    pub tiers_reached: Vec<String>,
    /// The hub finds this member by its phone (false for the later of two offline
    /// enrolments of one phone, until an operator resolves the conflict).
    pub holds_phone: bool,
}

/// A day of the tier metric (0.2): and the activities granted that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayBucketV2 {
    pub day: DayNo,
    pub spend: i64,
    pub points: i64,
    pub visits: i64,
    pub activities: i64,
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
                | Body::HubPullV2(_)
                | Body::HubPullV3(_)
                | Body::ConflictResolve { .. }
                // Where the daily trigger pass runs, it is that node's own.
                | Body::TriggerPass { .. }
                // Staff accounts are each terminal's own.
                | Body::StaffAdd { .. }
                | Body::StaffChange { .. }
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

impl MemberSnapshot {
    /// A 0.1 snapshot in 0.2's form: an active member with no tags, merges or visits
    /// counted (0.1 did not keep them), enrolled by an unknown terminal.
    pub fn into_v2(self) -> MemberSnapshotV2 {
        MemberSnapshotV2 {
            member_id: self.member_id,
            name: self.name,
            phone: self.phone,
            birthday: self.birthday,
            pin_hash: self.pin_hash,
            cards: self.cards,
            created_at: self.created_at,
            tier: self.tier,
            lots: self.lots,
            debt: self.debt,
            days: self
                .days
                .into_iter()
                .map(|d| DayBucketV2 {
                    day: d.day,
                    spend: d.spend,
                    points: d.points,
                    visits: d.visits,
                    activities: 0,
                })
                .collect(),
            pin_failures: self.pin_failures,
            pin_failed_at: self.pin_failed_at,
            tags: vec![],
            active: true,
            enrolled_by: String::new(),
            visits: 0,
            last_visit_at: None,
            merged_into: None,
            tiers_reached: vec![],
            holds_phone: true,
        }
    }
}

impl MemberSnapshotV2 {
    /// The snapshot as a 0.1 terminal takes it (what 0.1 snapshots held).
    pub fn into_v1(self) -> MemberSnapshot {
        MemberSnapshot {
            member_id: self.member_id,
            name: self.name,
            phone: self.phone,
            birthday: self.birthday,
            pin_hash: self.pin_hash,
            cards: self.cards,
            created_at: self.created_at,
            tier: self.tier,
            lots: self.lots,
            debt: self.debt,
            days: self
                .days
                .into_iter()
                .map(|d| DayBucket {
                    day: d.day,
                    spend: d.spend,
                    points: d.points,
                    visits: d.visits,
                })
                .collect(),
            pin_failures: self.pin_failures,
            pin_failed_at: self.pin_failed_at,
            unacked_redeem: vec![],
            local_seq: 0,
            listed_negative: false,
        }
    }
}

impl HubPull {
    pub fn into_v2(self) -> HubPullV2 {
        HubPullV2 {
            cursor: self.cursor,
            acked: self.acked,
            members: self.members.into_iter().map(MemberSnapshot::into_v2).collect(),
            coupons: self.coupons,
            blocked_cards: self.blocked_cards,
            ruleset: self.ruleset,
        }
    }
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let header = HeaderV3 {
            wall: self.wall,
            clock_trusted: self.clock_trusted,
            boot_id: self.boot_id,
            mono_us: self.mono_us,
            at: self.at,
            day: self.day,
            idem: self.idem.clone(),
            by: self.by.clone(),
            requested_by: self.requested_by.clone(),
        };
        postcard::to_allocvec(&PayloadRef::V3(header, &self.body)).expect("records always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Record> {
        let v1 = |wall, clock_trusted, boot_id, mono_us, at, day| HeaderV1 {
            wall,
            clock_trusted,
            boot_id,
            mono_us,
            at,
            day,
        };
        let (h, idem, by, requested_by, mut body) = match postcard::from_bytes::<Payload>(bytes) {
            Ok(Payload::V1(h, body)) => (h, None, None, None, body),
            Ok(Payload::V2(h, body)) => {
                let head = v1(h.wall, h.clock_trusted, h.boot_id, h.mono_us, h.at, h.day);
                (head, h.idem, None, None, body)
            }
            Ok(Payload::V3(h, body)) => {
                let head = v1(h.wall, h.clock_trusted, h.boot_id, h.mono_us, h.at, h.day);
                (head, h.idem, h.by, h.requested_by, body)
            }
            Err(e) => return Err(Error::internal(format!("undecodable journal record: {e}"))),
        };
        // 0.1 kept a checkout's key in the checkout.
        let idem = match &mut body {
            Body::Checkout(c) => idem.or_else(|| c.idem.take().map(|(key, request)| IdemKey { key, request })),
            _ => idem,
        };
        // Older versions of a kind are read as the newest (see the module docs).
        let body = match body {
            Body::MemberAdd {
                member_id,
                card,
                name,
                phone,
                birthday,
                pin_hash,
            } => Body::MemberAddV2(Box::new(MemberAddV2 {
                member_id,
                card,
                name,
                phone,
                birthday,
                pin_hash,
                tags: vec![],
            })),
            Body::HubPull(p) => Body::HubPullV3(Box::new(p.into_v2().into())),
            Body::HubPullV2(p) => Body::HubPullV3(Box::new((*p).into())),
            Body::Checkout(c) => Body::CheckoutV3(Box::new(CheckoutV2::from(*c).into())),
            Body::CheckoutV2(c) => Body::CheckoutV3(Box::new((*c).into())),
            Body::CouponIssue {
                code,
                type_id,
                member_id,
                issued,
                valid_until,
            } => Body::CouponIssueV2(Box::new(CouponIssueV2 {
                code,
                type_id,
                member_id,
                issued,
                valid_until,
                issued_by: "manual".to_string(),
                points: 0,
                occurrence: None,
                pin_verified: false,
            })),
            other => other,
        };
        Ok(Record {
            wall: h.wall,
            clock_trusted: h.clock_trusted,
            boot_id: h.boot_id,
            mono_us: h.mono_us,
            at: h.at,
            day: h.day,
            idem,
            by,
            requested_by,
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
            by: Some("pos".into()),
            requested_by: None,
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
        assert_eq!((r.by, r.requested_by), (None, None), "0.1 named nobody");
        let Body::CheckoutV3(got) = r.body else { panic!() };
        assert_eq!(got.tx_id, c.tx_id);
    }
}
