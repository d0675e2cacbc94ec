//! The materialized state in sled: members, cards, phones, transactions, idempotency
//! keys, coupons, reward stock, daily totals, and the journal position it reflects.
//!
//! Architecture invariants:
//! - Only this module knows sled and the stored encodings. Every value starts with a
//!   version byte (postcard is not self-describing), so a changed layout gets a new one.
//! - [`Store::apply`] is the one function that changes state. Live commits, start-up
//!   replay, `rebuild` and the hub all call it, so replay equals live by construction.
//! - One record is applied as one sled batch that also moves the applied position, so
//!   the state always matches exactly a prefix of the journal.

mod apply;

pub use apply::content_hash;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{DayNo, MemberState, Taken, Ts};
use crate::record::CheckoutRec;
use crate::rules::refund::Refunded;
use crate::rules::CouponView;

const VERSION: u8 = 1;

/// Key prefixes of the single sled tree (one tree makes every apply one atomic batch).
mod key {
    pub const MEMBER: u8 = b'm';
    pub const CARD: u8 = b'c';
    pub const PHONE: u8 = b'p';
    pub const TX: u8 = b't';
    pub const IDEM: u8 = b'k';
    pub const COUPON: u8 = b'q';
    pub const REWARD: u8 = b'r';
    pub const DAY: u8 = b'd';
    /// Terminal: pushable records not yet acknowledged (by seq).
    pub const OUTBOX: u8 = b'o';
    /// Members whose balance is negative (the hub's overspent report).
    pub const NEGATIVE: u8 = b'n';
    /// Terminal: members whose hub snapshot was skipped for pending local changes.
    pub const STALE: u8 = b's';
    /// Hub: content hash of every record a terminal pushed, by identity.
    pub const RECORD: u8 = b'R';
    /// Hub: per terminal and epoch, what it holds.
    pub const TERMINAL: u8 = b'T';
    pub const APPLIED: &[u8] = b"Mapplied";
    pub const IDENTITY: &[u8] = b"Midentity";
    /// Hub: the published ruleset (text, version).
    pub const RULESET: &[u8] = b"Mruleset";
    /// Terminal: the ruleset text the hub sent last.
    pub const HUB_RULESET: &[u8] = b"Mhubruleset";
    /// Terminal: the hub's pull cursor after the last pull applied.
    pub const CURSOR: &[u8] = b"Mcursor";
}

fn terminal_key(terminal: &str, epoch: u64) -> Vec<u8> {
    let mut v = k(key::TERMINAL, terminal.as_bytes());
    v.push(0);
    v.extend_from_slice(&epoch.to_be_bytes());
    v
}

fn record_key(terminal: &str, epoch: u64, seq: u64) -> Vec<u8> {
    let mut v = k(key::RECORD, terminal.as_bytes());
    v.push(0);
    v.extend_from_slice(&epoch.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v
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
}

fn k(prefix: u8, id: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + id.len());
    v.push(prefix);
    v.extend_from_slice(id);
    v
}

fn day_key(day: DayNo) -> Vec<u8> {
    // Sign bit flipped so that byte order is date order.
    k(key::DAY, &((day as u32) ^ 0x8000_0000).to_be_bytes())
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend(postcard::to_allocvec(v).expect("state always encodes"));
    out
}

fn dec<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| Error::internal(format!("state store: bad {what}: {e}")))
        }
        _ => Err(Error::internal(format!(
            "state store: {what} has an unknown encoding version"
        ))),
    }
}

/// A committed checkout as the store keeps it: the record plus what applying it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxState {
    pub rec: CheckoutRec,
    pub seq: u64,
    pub at: Ts,
    pub day: DayNo,
    /// Lot parts the redemption took, to give back on refund with their expiry.
    pub taken: Vec<Taken>,
    pub balance_after: i64,
    pub refunded: Refunded,
    pub refund_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponState {
    pub type_id: String,
    pub member_id: String,
    pub issued: DayNo,
    pub valid_until: DayNo,
    pub used_by: Option<String>,
}

impl CouponState {
    pub fn view(&self, code: &str) -> CouponView {
        CouponView {
            code: code.to_string(),
            type_id: self.type_id.clone(),
            member_id: self.member_id.clone(),
            issued: self.issued,
            valid_until: self.valid_until,
            used: self.used_by.is_some(),
        }
    }
}

/// Totals of one local business day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Where the store stands in the journal: the seq of the last record applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub seq: u64,
}

pub struct Store {
    db: sled::Db,
    dir: PathBuf,
    /// The applied seq, cached: every apply checks it.
    applied: AtomicU64,
}

/// Why a sled directory could not be used; the caller moves it aside and rebuilds.
#[derive(Debug)]
pub struct Unusable(pub String);

impl Store {
    /// Opens the sled directory. sled 0.34 can panic on a damaged directory, so a panic is
    /// caught and reported like an error: the daemon must move it aside, not crash-loop.
    pub fn open(dir: &Path, cache_bytes: u64) -> std::result::Result<Store, Unusable> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(Some(1000));
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(Unusable(format!("{}: {e}", dir.display()))),
            Err(_) => return Err(Unusable(format!("{}: sled panicked while opening it", dir.display()))),
        };
        let store = Store {
            db,
            dir: dir.to_path_buf(),
            applied: AtomicU64::new(0),
        };
        // A readable position is the least we ask of a store we keep.
        let applied: Applied = store
            .get("applied position", key::APPLIED)
            .map_err(|e| Unusable(format!("{}: {}", dir.display(), e.message)))?
            .unwrap_or_default();
        store.applied.store(applied.seq, Ordering::Release);
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn get<T: DeserializeOwned>(&self, what: &str, key: &[u8]) -> Result<Option<T>> {
        match self.db.get(key)? {
            Some(v) => Ok(Some(dec(what, &v)?)),
            None => Ok(None),
        }
    }

    pub fn applied(&self) -> Result<Applied> {
        Ok(Applied {
            seq: self.applied.load(Ordering::Acquire),
        })
    }

    /// The terminal id and install epoch of the journal this store reflects.
    pub fn identity(&self) -> Result<Option<(String, u64)>> {
        self.get("identity", key::IDENTITY)
    }

    pub fn member(&self, member_id: &str) -> Result<Option<MemberState>> {
        self.get("member", &k(key::MEMBER, member_id.as_bytes()))
    }

    /// The member id a card belongs to (blocked cards included).
    pub fn card_owner(&self, card: &str) -> Result<Option<String>> {
        self.get("card", &k(key::CARD, card.as_bytes()))
    }

    pub fn phone_owner(&self, phone: &str) -> Result<Option<String>> {
        self.get("phone", &k(key::PHONE, phone.as_bytes()))
    }

    pub fn tx(&self, tx_id: &str) -> Result<Option<TxState>> {
        self.get("transaction", &k(key::TX, tx_id.as_bytes()))
    }

    /// The request hash and transaction of an idempotency key.
    pub fn idem(&self, idem_key: &str) -> Result<Option<([u8; 32], String)>> {
        self.get("idempotency key", &k(key::IDEM, idem_key.as_bytes()))
    }

    pub fn coupon(&self, code: &str) -> Result<Option<CouponState>> {
        self.get("coupon", &k(key::COUPON, code.as_bytes()))
    }

    /// How many of a reward this terminal has handed out.
    pub fn reward_used(&self, sku: &str) -> Result<i64> {
        Ok(self.get("reward", &k(key::REWARD, sku.as_bytes()))?.unwrap_or(0))
    }

    pub fn daily(&self, day: DayNo) -> Result<Daily> {
        Ok(self.get("daily totals", &day_key(day))?.unwrap_or_default())
    }

    /// Every member, for the daily expiry pass and reports.
    pub fn member_ids(&self) -> impl Iterator<Item = Result<String>> + '_ {
        self.db.scan_prefix([key::MEMBER]).map(|kv| {
            let (k, _) = kv?;
            Ok(String::from_utf8_lossy(&k[1..]).into_owned())
        })
    }

    pub fn member_count(&self) -> usize {
        self.db.scan_prefix([key::MEMBER]).count()
    }

    /// Terminal: pushable records above `acked` (the outbox depth).
    pub fn outbox_len(&self, acked: u64) -> usize {
        self.db
            .range(k(key::OUTBOX, &(acked + 1).to_be_bytes())..k(key::OUTBOX + 1, &[]))
            .count()
    }

    /// Terminal: forgets outbox entries the hub has acknowledged. Derived data (a rebuild
    /// recreates them and the next acknowledgement prunes them again), so not journalled.
    pub fn prune_outbox(&self, acked: u64) -> Result<()> {
        let mut batch = sled::Batch::default();
        for kv in self
            .db
            .range(k(key::OUTBOX, &[])..=k(key::OUTBOX, &acked.to_be_bytes()))
        {
            batch.remove(kv?.0);
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Terminal: the pull cursor of the last pull applied.
    pub fn cursor(&self) -> Result<u64> {
        Ok(self.get("cursor", key::CURSOR)?.unwrap_or(0))
    }

    /// Terminal: members to ask the hub for again.
    pub fn stale_members(&self) -> Result<Vec<String>> {
        self.db
            .scan_prefix([key::STALE])
            .map(|kv| Ok(String::from_utf8_lossy(&kv?.0[1..]).into_owned()))
            .collect()
    }

    /// Terminal: the last ruleset text the hub sent.
    pub fn hub_ruleset(&self) -> Result<Option<String>> {
        self.get("hub ruleset", key::HUB_RULESET)
    }

    /// Hub: the published ruleset.
    pub fn published_ruleset(&self) -> Result<Option<(String, u32)>> {
        self.get("published ruleset", key::RULESET)
    }

    /// Hub: the content hash of a stored pushed record.
    pub fn record_hash(&self, terminal: &str, epoch: u64, seq: u64) -> Result<Option<[u8; 32]>> {
        self.get("record hash", &record_key(terminal, epoch, seq))
    }

    /// Hub: one terminal stream's figures.
    pub fn hub_terminal(&self, terminal: &str, epoch: u64) -> Result<Option<HubTerminal>> {
        self.get("terminal", &terminal_key(terminal, epoch))
    }

    /// Hub: every terminal stream.
    pub fn hub_terminals(&self) -> Result<Vec<HubTerminal>> {
        self.db
            .scan_prefix([key::TERMINAL])
            .map(|kv| dec("terminal", &kv?.1))
            .collect()
    }

    /// Members with a negative balance, with that balance.
    pub fn negative_members(&self) -> Result<Vec<(String, i64)>> {
        self.db
            .scan_prefix([key::NEGATIVE])
            .map(|kv| {
                let (k, v) = kv?;
                Ok((String::from_utf8_lossy(&k[1..]).into_owned(), dec("balance", &v)?))
            })
            .collect()
    }

    /// Writes sled's buffers out (sled's own durability; the journal is the real one).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}
