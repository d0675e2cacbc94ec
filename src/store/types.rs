//! The values the store keeps, besides members' domain state: its bookkeeping about
//! members, transactions, idempotency keys, sync, staff, conflicts, daily totals.

use serde::{Deserialize, Serialize};

use crate::model::{DayNo, MemberState, Taken, Ts};
use crate::record;
use crate::rules::refund::Refunded;

/// What a change-feed entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    Member,
    Coupon,
    BlockedCard,
    Ruleset,
    Group,
}

impl FeedKind {
    pub(super) fn byte(self) -> u8 {
        match self {
            FeedKind::Member => b'm',
            FeedKind::Coupon => b'q',
            FeedKind::BlockedCard => b'b',
            FeedKind::Ruleset => b'r',
            FeedKind::Group => b'g',
        }
    }

    pub(super) fn of(b: u8) -> Option<FeedKind> {
        Some(match b {
            b'm' => FeedKind::Member,
            b'q' => FeedKind::Coupon,
            b'b' => FeedKind::BlockedCard,
            b'r' => FeedKind::Ruleset,
            b'g' => FeedKind::Group,
            _ => return None,
        })
    }
}

/// One page of a terminal stream as the hub holds it, by seq: the record's content
/// hash and the seq of the hub's own journal record that holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HashPage(pub(super) Vec<(u64, [u8; 32], u64)>);

impl HashPage {
    pub(super) fn insert(&mut self, seq: u64, hash: [u8; 32], held: u64) {
        match self.0.binary_search_by_key(&seq, |e| e.0) {
            Ok(i) => self.0[i] = (seq, hash, held),
            Err(i) => self.0.insert(i, (seq, hash, held)),
        }
    }

    pub(super) fn get(&self, seq: u64) -> Option<([u8; 32], u64)> {
        self.0
            .binary_search_by_key(&seq, |e| e.0)
            .ok()
            .map(|i| (self.0[i].1, self.0[i].2))
    }
}

/// What an idempotency key answers: the request it was first used for, the journal
/// record that answered it, and the balance of the member that record changed (if
/// any) right after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idem {
    pub key: String,
    pub request: [u8; 32],
    pub seq: u64,
    pub balance_after: i64,
    /// A reward redemption: the reward's units handed out here after it.
    pub count_after: i64,
}

/// A member as the store keeps it: the domain state, and the terminal's or hub's own
/// bookkeeping about it (which is not the member's state: a snapshot from the hub
/// carries none of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MemberRec {
    pub(super) state: MemberState,
    /// Terminal: the last local journal record that changed the member. A hub
    /// snapshot that does not cover it yet must not replace the local state.
    pub(super) local_seq: u64,
    /// Terminal: redemptions here not yet acknowledged upstream, as (seq, points).
    pub(super) unacked_redeem: Vec<(u64, i64)>,
    /// Hub: the member is in the negative-balance index (so that leaving it needs no read).
    pub(super) listed_negative: bool,
    /// Entries in the member's points ledger and transactions (see `history`).
    pub(super) ledger_len: u64,
    pub(super) history_len: u64,
    /// The month (`report::month_of`) the member was enrolled in here: its retention
    /// cohort (none for members another node enrolled).
    pub(super) cohort: Option<u32>,
    /// The member's last two checkout days here, oldest first (`report::active`).
    pub(super) last_days: Vec<DayNo>,
}

impl MemberRec {
    pub(super) fn new(state: MemberState) -> MemberRec {
        MemberRec {
            state,
            local_seq: 0,
            unacked_redeem: vec![],
            listed_negative: false,
            ledger_len: 0,
            history_len: 0,
            cohort: None,
            last_days: vec![],
        }
    }

    /// A redemption at journal seq `seq` goes against the offline cap until the hub
    /// acknowledges it (those up to `acked` already have been).
    pub(super) fn note_offline_redemption(&mut self, acked: u64, seq: u64, points: i64) {
        self.unacked_redeem.retain(|u| u.0 > acked);
        self.unacked_redeem.push((seq, points));
    }

    /// Points a refund gave back of the redemption at `seq` stop counting.
    pub(super) fn note_returned(&mut self, seq: u64, points: i64) {
        if let Some(u) = self.unacked_redeem.iter_mut().find(|u| u.0 == seq) {
            u.1 -= points.min(u.1);
        }
        self.unacked_redeem.retain(|u| u.1 > 0);
    }
}

/// What the hub holds of one terminal's stream (one install epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubTerminal {
    pub terminal_id: String,
    pub epoch: u64,
    /// Highest seq up to which the stream is complete.
    pub acked: u64,
    /// Records stored (each identity once).
    pub records: u64,
    /// Records received again after they were stored, and refused as duplicates.
    pub duplicates: u64,
    /// Records stored whose effects could not be applied.
    pub skipped: u64,
    /// Records the terminal made while it did not trust its clock (their business time
    /// may be off; the hub's own receive time is in the wrapping record).
    pub untrusted_clock: u64,
}

/// What the hub has acknowledged of this terminal's journal: everything up to `seq`,
/// which holds `pushable` records that go upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    pub seq: u64,
    pub pushable: u64,
}

/// A committed checkout: its journal record and what applying it and refunds did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxState {
    pub rec: record::CheckoutV3,
    /// Its seq in this terminal's journal (0 on the hub, where it came from a terminal).
    pub seq: u64,
    pub at: Ts,
    pub day: DayNo,
    /// Lot parts the redemption took, to give back on refund with their expiry.
    pub taken: Vec<Taken>,
    pub refunded: Refunded,
    pub refund_ids: Vec<String>,
}

/// What the store keeps of a transaction beyond its journal record; written only once
/// there is something to keep (a redemption took lots, a refund was made).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TxNote {
    pub(super) taken: Vec<Taken>,
    pub(super) refunded: Refunded,
    pub(super) refund_ids: Vec<String>,
}

/// Totals of one local business day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Daily {
    pub checkouts: i64,
    pub subtotal: i64,
    pub discounts: i64,
    pub redeem_value: i64,
    pub total: i64,
    pub points_earned: i64,
    pub points_redeemed: i64,
    pub refunds: i64,
    pub refunded_amount: i64,
    pub points_clawed_back: i64,
    pub points_returned: i64,
    pub points_expired: i64,
    pub new_members: i64,
    pub coupons_issued: i64,
    pub coupons_used: i64,
    pub rewards_redeemed: i64,
    pub reward_points: i64,
}

/// Where the store stands in the journal: the seq of the last record applied, and how
/// many of the records up to it go upstream (the outbox is the difference to `Acked`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub seq: u64,
    pub pushable: u64,
}

/// A staff account. The role is kept as its name (`model::Role` parses it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffState {
    pub staff_id: String,
    pub name: String,
    pub role: String,
    /// argon2id, in the PHC string format.
    pub password_hash: String,
    pub disabled: bool,
}

/// How often an activity was granted to a member: in all, and on its latest day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCount {
    pub total: i64,
    pub day: DayNo,
    pub today: i64,
}

/// Hub: two or more offline enrolments of one card or phone (sync.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// `card-<number>` or `phone-<digits>`.
    pub id: String,
    /// `card` or `phone`.
    pub kind: String,
    pub value: String,
    /// In hub order: the first holds the card or phone until it is resolved.
    pub members: Vec<String>,
    pub detected_at: Ts,
    pub resolved: bool,
}

/// A group of a group-buy deal. Where formation is decided here (the hub, a terminal
/// without one) `members` are the joins taken in this node's order; on a terminal of a
/// chain they are the hub's word and `pending` the joins made here it has not answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub group_id: String,
    pub deal: String,
    pub sku: String,
    pub group_price_minor: i64,
    pub size: u32,
    pub opened_at: Ts,
    pub expires_at: Ts,
    pub members: Vec<String>,
    /// Terminal of a chain: (member, local seq of the join) not answered by the hub yet.
    pub pending: Vec<(String, u64)>,
    /// Joins refused because the group was full or closed when its turn came.
    pub refused: Vec<String>,
    pub formed_at: Option<Ts>,
    /// (member, transaction) that used the member's unit.
    pub used: Vec<(String, String)>,
}

/// Where a group stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupPhase {
    Open,
    Formed,
    Failed,
}

impl GroupState {
    pub fn phase(&self, at: Ts) -> GroupPhase {
        match self.formed_at {
            Some(_) => GroupPhase::Formed,
            None if at >= self.expires_at => GroupPhase::Failed,
            None => GroupPhase::Open,
        }
    }

    /// Members counted in: decided ones and, on a terminal of a chain, its pending joins.
    pub fn joined(&self) -> usize {
        self.members.len() + self.pending.len()
    }

    pub fn has(&self, member_id: &str) -> bool {
        self.members.iter().any(|m| m == member_id) || self.pending.iter().any(|(m, _)| m == member_id)
    }
}
