//! The materialized state in sled: members, cards, phones, what the journal's
//! transactions do not say themselves, idempotency keys, coupons, reward stock, daily
//! totals, sync bookkeeping, and the journal position it reflects.
//!
//! Architecture invariants:
//! - Only this module knows sled and the stored encodings. Every value starts with a
//!   version byte (postcard is not self-describing), and the key `Mlayout` names the
//!   layout: a store of another layout is moved aside and rebuilt from the journal.
//! - [`Store::apply`] is the one function that changes state. Live commits, start-up
//!   replay, `rebuild` and the hub all call it, so replay equals live by construction.
//! - Applied changes reach sled through a write-behind overlay (see `overlay`), in
//!   batches that also move the applied position and are made atomic by a redo log
//!   (see `redo`), so sled always matches exactly a prefix of the journal; reads see
//!   the last record applied. Nothing calls sled's `apply_batch` or transactions: the
//!   first such call makes every later sled read in the process take a global lock.
//! - sled is paid per key written, so nothing gets a key per checkout: a transaction is
//!   read back from the journal record that holds it (its id names the seq), with a
//!   small note only once a redemption or refund gives it state of its own; idempotency
//!   keys live in 65,536 buckets.

mod apply;
mod dump;
mod overlay;
mod redo;
mod trust;

pub use apply::content_hash;
pub use trust::{install, move_aside, KEEP_BROKEN};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::journal::Journal;
use crate::model::{CouponState, DayNo, MemberState, Taken, Ts};
use crate::record::{self, Body, Record};
use crate::rules::refund::Refunded;

use overlay::Overlay;
use redo::Redo;

/// The maps of the store's hot path hash with FxHash (sled's own choice, already
/// in the build): several times cheaper than SipHash on short keys, and their keys
/// come from the local journal, whose writer already checked them.
type FastMap<K, V> = std::collections::HashMap<K, V, fxhash::FxBuildHasher>;

/// Changes by key: `Some(value)` to write, `None` to remove (what `apply` makes, the
/// overlay holds and `redo` writes to sled).
type Changes = FastMap<Vec<u8>, Option<Vec<u8>>>;

const VERSION: u8 = 1;
/// The key layout (see the module docs); 1 kept a key per transaction and idempotency
/// key, 2 kept the terminal's and hub's bookkeeping inside the member's state and
/// idempotency keys by transaction id.
const LAYOUT: u32 = 3;

/// Key prefixes of the single sled tree (one tree makes every apply one atomic batch).
mod key {
    pub const MEMBER: u8 = b'm';
    pub const CARD: u8 = b'c';
    pub const PHONE: u8 = b'p';
    /// A transaction's note (`TxNote`), once it has one.
    pub const TX: u8 = b't';
    /// Idempotency keys, in buckets by a hash of the key.
    pub const IDEM: u8 = b'k';
    pub const COUPON: u8 = b'q';
    pub const REWARD: u8 = b'r';
    pub const DAY: u8 = b'd';
    /// Members whose balance is negative (the hub's overspent report).
    pub const NEGATIVE: u8 = b'n';
    /// Terminal: members whose hub snapshot was skipped for pending local changes.
    pub const STALE: u8 = b's';
    /// Hub: content hashes of the records a terminal pushed, by identity, in pages.
    pub const RECORD: u8 = b'R';
    /// Hub: per terminal and epoch, what it holds.
    pub const TERMINAL: u8 = b'T';
    /// Hub: the change feed terminals pull, by hub seq: (seq, kind, id) -> ().
    pub const FEED: u8 = b'F';
    /// Hub: where an entity stands in the feed: (kind, id) -> seq.
    pub const FEED_POS: u8 = b'f';
    pub const LAYOUT: &[u8] = b"Mlayout";
    pub const APPLIED: &[u8] = b"Mapplied";
    pub const IDENTITY: &[u8] = b"Midentity";
    /// Terminal: what the hub has acknowledged.
    pub const ACKED: &[u8] = b"Macked";
    /// Hub: the published ruleset (text, version).
    pub const RULESET: &[u8] = b"Mruleset";
    /// Terminal: the ruleset text the hub sent last.
    pub const HUB_RULESET: &[u8] = b"Mhubruleset";
    /// Terminal: the hub's pull cursor after the last pull applied.
    pub const CURSOR: &[u8] = b"Mcursor";
}

/// What a change-feed entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    Member,
    Coupon,
    BlockedCard,
    Ruleset,
}

impl FeedKind {
    fn byte(self) -> u8 {
        match self {
            FeedKind::Member => b'm',
            FeedKind::Coupon => b'q',
            FeedKind::BlockedCard => b'b',
            FeedKind::Ruleset => b'r',
        }
    }

    fn of(b: u8) -> Option<FeedKind> {
        Some(match b {
            b'm' => FeedKind::Member,
            b'q' => FeedKind::Coupon,
            b'b' => FeedKind::BlockedCard,
            b'r' => FeedKind::Ruleset,
            _ => return None,
        })
    }
}

fn terminal_key(terminal: &str, epoch: u64) -> Vec<u8> {
    let mut v = k(key::TERMINAL, terminal.as_bytes());
    v.push(0);
    v.extend_from_slice(&epoch.to_be_bytes());
    v
}

/// Record hashes are kept in pages of this many seqs (one sled key per page rather
/// than per record: the hub ingests many records per step).
const HASH_PAGE: u64 = 256;

fn record_page_key(terminal: &str, epoch: u64, seq: u64) -> Vec<u8> {
    let mut v = k(key::RECORD, terminal.as_bytes());
    v.push(0);
    v.extend_from_slice(&epoch.to_be_bytes());
    v.extend_from_slice(&(seq / HASH_PAGE).to_be_bytes());
    v
}

/// One page of a terminal stream as the hub holds it, by seq: the record's content
/// hash and the seq of the hub's own journal record that holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct HashPage(Vec<(u64, [u8; 32], u64)>);

impl HashPage {
    fn insert(&mut self, seq: u64, hash: [u8; 32], held: u64) {
        match self.0.binary_search_by_key(&seq, |e| e.0) {
            Ok(i) => self.0[i] = (seq, hash, held),
            Err(i) => self.0.insert(i, (seq, hash, held)),
        }
    }

    fn get(&self, seq: u64) -> Option<([u8; 32], u64)> {
        self.0
            .binary_search_by_key(&seq, |e| e.0)
            .ok()
            .map(|i| (self.0[i].1, self.0[i].2))
    }
}

/// Idempotency keys are kept in this many buckets (a hash of the key picks one), so a
/// terminal's millionth checkout rewrites a bucket of about 15 entries rather than
/// inserting a random key into sled, and a rebuild writes each bucket once.
const IDEM_BUCKET_BITS: u32 = 16;

fn idem_bucket_key(idem_key: &str) -> Vec<u8> {
    let bucket = crc32fast::hash(idem_key.as_bytes()) >> (32 - IDEM_BUCKET_BITS);
    k(key::IDEM, &(bucket as u16).to_be_bytes())
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
struct MemberRec {
    state: MemberState,
    /// Terminal: the last local journal record that changed the member. A hub
    /// snapshot that does not cover it yet must not replace the local state.
    local_seq: u64,
    /// Terminal: redemptions here not yet acknowledged upstream, as (seq, points).
    unacked_redeem: Vec<(u64, i64)>,
    /// Hub: the member is in the negative-balance index (so that leaving it needs no read).
    listed_negative: bool,
}

impl MemberRec {
    fn new(state: MemberState) -> MemberRec {
        MemberRec {
            state,
            local_seq: 0,
            unacked_redeem: vec![],
            listed_negative: false,
        }
    }

    /// A redemption at journal seq `seq` goes against the offline cap until the hub
    /// acknowledges it (those up to `acked` already have been).
    fn note_offline_redemption(&mut self, acked: u64, seq: u64, points: i64) {
        self.unacked_redeem.retain(|u| u.0 > acked);
        self.unacked_redeem.push((seq, points));
    }

    /// Points a refund gave back of the redemption at `seq` stop counting.
    fn note_returned(&mut self, seq: u64, points: i64) {
        if let Some(u) = self.unacked_redeem.iter_mut().find(|u| u.0 == seq) {
            u.1 -= points.min(u.1);
        }
        self.unacked_redeem.retain(|u| u.1 > 0);
    }
}

/// A bucket's value: the version byte, then its entries, each postcard-encoded, one
/// after the other, so that remembering a key appends to the bytes without decoding
/// the entries already there.
fn idem_find(bucket: &[u8], idem_key: &str) -> Result<Option<Idem>> {
    let Some((&VERSION, mut rest)) = bucket.split_first() else {
        return Err(Error::internal(
            "state store: idempotency keys have an unknown encoding version",
        ));
    };
    while !rest.is_empty() {
        let (e, next) = postcard::take_from_bytes::<Idem>(rest)
            .map_err(|e| Error::internal(format!("state store: bad idempotency keys: {e}")))?;
        if e.key == idem_key {
            return Ok(Some(e));
        }
        rest = next;
    }
    Ok(None)
}

/// A transaction id's parts: terminal, the low 32 bits of its install epoch, seq (the
/// format `engine::tx_id` makes).
fn parse_tx_id(id: &str) -> Option<(&str, u32, u64)> {
    let (rest, seq) = id.rsplit_once('-')?;
    let (terminal, epoch) = rest.rsplit_once('-')?;
    let digits = |s: &str, hex: bool| {
        !s.is_empty()
            && s.bytes()
                .all(|b| if hex { b.is_ascii_hexdigit() } else { b.is_ascii_digit() })
    };
    if terminal.is_empty() || epoch.len() != 8 || !digits(epoch, true) || !digits(seq, false) {
        return None;
    }
    Some((terminal, u32::from_str_radix(epoch, 16).ok()?, seq.parse().ok()?))
}

fn feed_key(seq: u64, kind: FeedKind, id: &str) -> Vec<u8> {
    let mut v = k(key::FEED, &seq.to_be_bytes());
    v.push(kind.byte());
    v.extend_from_slice(id.as_bytes());
    v
}

fn feed_pos_key(kind: FeedKind, id: &str) -> Vec<u8> {
    let mut v = vec![key::FEED_POS, kind.byte()];
    v.extend_from_slice(id.as_bytes());
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
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    postcard::to_extend(v, out).expect("state always encodes")
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

/// A committed checkout: its journal record and what applying it and refunds did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxState {
    pub rec: record::Checkout,
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
struct TxNote {
    taken: Vec<Taken>,
    refunded: Refunded,
    refund_ids: Vec<String>,
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

/// Where the store stands in the journal: the seq of the last record applied, and how
/// many of the records up to it go upstream (the outbox is the difference to `Acked`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub seq: u64,
    pub pushable: u64,
}

/// sled and the changes on their way to it, shared with the flusher thread.
struct Shared {
    db: sled::Db,
    overlay: Overlay,
    /// The state directory.
    dir: std::path::PathBuf,
    /// Not in bulk mode: the directory's session is kept (see `trust`).
    sessions: bool,
    /// The first fault seen in sled (an I/O error, a value that does not decode):
    /// once set, the store is not believed again until it is rebuilt.
    fault: OnceLock<String>,
}

impl Shared {
    /// Notes a fault of the store (the first one is kept, and recorded on disk so
    /// that the next start rebuilds the store) and hands the error back.
    fn fault(&self, e: Error) -> Error {
        if self.fault.set(e.message.clone()).is_ok() {
            tracing::error!("state store fault, it will be rebuilt at the next start: {}", e.message);
            if self.sessions {
                if let Err(io) = trust::mark_broken(&self.dir, &e.message) {
                    tracing::error!("{}: cannot record the fault: {io}", self.dir.display());
                }
            }
        }
        e
    }
}

pub struct Store {
    shared: Arc<Shared>,
    /// The journal this store reflects, for the transactions read back from it.
    journal: Arc<Journal>,
    /// The terminal id and epoch of that journal, once its `Init` record is applied.
    identity: OnceLock<(String, u64)>,
    /// The hub keeps a change feed for terminals to pull; a terminal does not.
    hub: bool,
    /// The applied seq, cached: every apply checks it.
    applied: AtomicU64,
    pushable: AtomicU64,
    flusher: Option<std::thread::JoinHandle<()>>,
}

/// Why a sled directory could not be used; the caller moves it aside and rebuilds.
#[derive(Debug)]
pub struct Unusable(pub String);

impl Store {
    /// Opens the sled directory. sled 0.34 can panic on a damaged directory, so a panic is
    /// caught and reported like an error: the daemon must move it aside, not crash-loop.
    /// `hub` turns on the change feed the hub serves to terminals. `journal` is the
    /// journal whose records this store applies. A store of another key layout is
    /// unusable (it is rebuilt).
    pub fn open(
        dir: &Path,
        cache_bytes: u64,
        hub: bool,
        journal: Arc<Journal>,
    ) -> std::result::Result<Store, Unusable> {
        Store::open_mode(dir, cache_bytes, hub, journal, false)
    }

    /// Opens a new, empty store for building from scratch (`rebuild`) in bulk mode:
    /// faster, but sled matches a journal prefix only once `flush` has returned, so the
    /// directory must be thrown away unless the build completes.
    pub fn build(
        dir: &Path,
        cache_bytes: u64,
        hub: bool,
        journal: Arc<Journal>,
    ) -> std::result::Result<Store, Unusable> {
        Store::open_mode(dir, cache_bytes, hub, journal, true)
    }

    fn open_mode(
        dir: &Path,
        cache_bytes: u64,
        hub: bool,
        journal: Arc<Journal>,
        bulk: bool,
    ) -> std::result::Result<Store, Unusable> {
        if !bulk {
            if let Some(why) = trust::distrust(dir) {
                return Err(Unusable(why));
            }
            // Durable before sled writes anything in this session.
            trust::begin(dir).map_err(|e| Unusable(format!("{}: cannot record the session: {e}", dir.display())))?;
        }
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(1000));
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(Unusable(format!("{}: {e}", dir.display()))),
            Err(_) => return Err(Unusable(format!("{}: sled panicked while opening it", dir.display()))),
        };
        let unusable = |e: sled::Error| Unusable(format!("{}: {e}", dir.display()));
        let redo = Redo::open(&db).map_err(unusable)?;
        // A batch a crash cut short is completed before anything is read.
        match redo.recover(&db) {
            Ok(0) => {}
            Ok(n) => tracing::info!("{}: completed a state batch cut short ({n} keys)", dir.display()),
            Err(e) => return Err(Unusable(format!("{}: {}", dir.display(), e.message))),
        }
        let shared = Arc::new(Shared {
            db,
            overlay: Overlay::new(bulk, redo),
            dir: dir.to_path_buf(),
            sessions: !bulk,
            fault: OnceLock::new(),
        });
        // A readable position is the least we ask of a store we keep.
        let applied: Applied = match shared.db.get(key::APPLIED) {
            Ok(None) => Applied::default(),
            Ok(Some(v)) => {
                dec("applied position", &v).map_err(|e| Unusable(format!("{}: {}", dir.display(), e.message)))?
            }
            Err(e) => return Err(unusable(e)),
        };
        match shared.db.get(key::LAYOUT).map_err(unusable)? {
            Some(v) if v.as_ref() == LAYOUT.to_be_bytes() => {}
            None if applied.seq == 0 => {
                shared.db.insert(key::LAYOUT, &LAYOUT.to_be_bytes()).map_err(unusable)?;
            }
            other => {
                let found = other
                    .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
                    .map_or(1, u32::from_be_bytes);
                return Err(Unusable(format!(
                    "{}: key layout {found}, this version uses layout {LAYOUT}",
                    dir.display()
                )));
            }
        }
        let s2 = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("state-flusher".into())
            .spawn(move || {
                s2.overlay.run_flusher(&s2.db, &|e| {
                    s2.fault(e);
                })
            })
            .map_err(|e| Unusable(format!("{}: cannot start its flusher: {e}", dir.display())))?;
        Ok(Store {
            shared,
            journal,
            identity: OnceLock::new(),
            hub,
            applied: AtomicU64::new(applied.seq),
            pushable: AtomicU64::new(applied.pushable),
            flusher: Some(flusher),
        })
    }

    /// A result of reading or writing sled: an error is a fault of the store.
    fn checked<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.shared.fault(e))
    }

    /// The first fault seen in this store, if any: it is then not to be believed.
    pub fn fault(&self) -> Option<&str> {
        self.shared.fault.get().map(String::as_str)
    }

    fn raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.checked(self.shared.overlay.get(&self.shared.db, key))
    }

    fn get<T: DeserializeOwned>(&self, what: &str, key: &[u8]) -> Result<Option<T>> {
        self.checked(
            self.shared
                .overlay
                .get_with(&self.shared.db, key, |v| v.map(|b| dec(what, b)).transpose()),
        )
    }

    /// Writes every pending change to sled.
    fn settle(&self) -> Result<()> {
        self.checked(self.shared.overlay.flush_once(&self.shared.db))
    }

    /// `f` of every key and value under `prefix`, in key order, read from sled with
    /// every pending change written and no batch landing meanwhile (one state).
    fn scan<T>(&self, prefix: &[u8], mut f: impl FnMut(sled::IVec, sled::IVec) -> Result<T>) -> Result<Vec<T>> {
        let db = &self.shared.db;
        self.checked(self.shared.overlay.settled(db, || {
            db.scan_prefix(prefix)
                .map(|kv| {
                    let (k, v) = kv?;
                    f(k, v)
                })
                .collect()
        }))
    }

    pub fn applied(&self) -> Result<Applied> {
        Ok(Applied {
            seq: self.applied.load(Ordering::Acquire),
            pushable: self.pushable.load(Ordering::Acquire),
        })
    }

    /// The terminal id and install epoch of the journal this store reflects.
    pub fn identity(&self) -> Result<Option<(String, u64)>> {
        if let Some(id) = self.identity.get() {
            return Ok(Some(id.clone()));
        }
        let id: Option<(String, u64)> = self.get("identity", key::IDENTITY)?;
        if let Some(id) = &id {
            let _ = self.identity.set(id.clone());
        }
        Ok(id)
    }

    pub fn member(&self, member_id: &str) -> Result<Option<MemberState>> {
        Ok(self.member_rec(member_id)?.map(|m| m.state))
    }

    fn member_rec(&self, member_id: &str) -> Result<Option<MemberRec>> {
        self.get("member", &k(key::MEMBER, member_id.as_bytes()))
    }

    /// Terminal: the points redeemed here for a member that the hub has not
    /// acknowledged yet (what the offline cap counts).
    pub fn offline_redeemed(&self, member_id: &str) -> Result<i64> {
        Ok(self.member_and_offline(member_id)?.map_or(0, |(_, n)| n))
    }

    /// A member and, read with it in one decode, `offline_redeemed`.
    pub fn member_and_offline(&self, member_id: &str) -> Result<Option<(MemberState, i64)>> {
        let acked = self.acked()?.seq;
        Ok(self.member_rec(member_id)?.map(|m| {
            let unacked = m
                .unacked_redeem
                .iter()
                .filter(|(seq, _)| *seq > acked)
                .map(|(_, points)| points)
                .sum();
            (m.state, unacked)
        }))
    }

    /// The member id a card belongs to (blocked cards included).
    pub fn card_owner(&self, card: &str) -> Result<Option<String>> {
        self.get("card", &k(key::CARD, card.as_bytes()))
    }

    pub fn phone_owner(&self, phone: &str) -> Result<Option<String>> {
        self.get("phone", &k(key::PHONE, phone.as_bytes()))
    }

    /// A checkout made at this terminal, by id.
    pub fn tx(&self, tx_id: &str) -> Result<Option<TxState>> {
        apply::find_tx(self, tx_id)
    }

    /// What an idempotency key was used for.
    pub fn idem(&self, idem_key: &str) -> Result<Option<Idem>> {
        self.checked(
            self.shared
                .overlay
                .get_with(&self.shared.db, &idem_bucket_key(idem_key), |v| match v {
                    Some(bucket) => idem_find(bucket, idem_key),
                    None => Ok(None),
                }),
        )
    }

    /// Journal record `seq`, decoded; a record a terminal pushed to the hub is unwrapped.
    fn journal_record(&self, seq: u64) -> Result<Record> {
        let payload = self.journal.read(seq)?;
        let rec = Record::decode(&payload)?;
        match rec.body {
            Body::Remote(r) => Record::decode(&r.payload),
            _ => Ok(rec),
        }
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

    /// Every member id, for the daily expiry pass.
    pub fn member_ids(&self) -> Result<Vec<String>> {
        self.scan(&[key::MEMBER], |k, _| Ok(String::from_utf8_lossy(&k[1..]).into_owned()))
    }

    /// Terminal: what the hub has acknowledged.
    pub fn acked(&self) -> Result<Acked> {
        Ok(self.get("acknowledgement", key::ACKED)?.unwrap_or_default())
    }

    /// Terminal: records that go upstream and the hub has not acknowledged yet.
    pub fn outbox_len(&self) -> Result<u64> {
        Ok(self
            .pushable
            .load(Ordering::Acquire)
            .saturating_sub(self.acked()?.pushable))
    }

    /// Terminal: the pull cursor of the last pull applied.
    pub fn cursor(&self) -> Result<u64> {
        Ok(self.get("cursor", key::CURSOR)?.unwrap_or(0))
    }

    /// Terminal: members to ask the hub for again.
    pub fn stale_members(&self) -> Result<Vec<String>> {
        self.scan(&[key::STALE], |k, _| Ok(String::from_utf8_lossy(&k[1..]).into_owned()))
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
        let page: Option<HashPage> = self.get("record hashes", &record_page_key(terminal, epoch, seq))?;
        Ok(page.and_then(|p| p.get(seq)).map(|(hash, _)| hash))
    }

    /// Hub: one terminal stream's figures.
    pub fn hub_terminal(&self, terminal: &str, epoch: u64) -> Result<Option<HubTerminal>> {
        self.get("terminal", &terminal_key(terminal, epoch))
    }

    /// Hub: every terminal stream.
    pub fn hub_terminals(&self) -> Result<Vec<HubTerminal>> {
        self.scan(&[key::TERMINAL], |_, v| dec("terminal", &v))
    }

    /// Hub: members with a negative balance, with that balance.
    pub fn negative_members(&self) -> Result<Vec<(String, i64)>> {
        self.scan(&[key::NEGATIVE], |k, v| {
            Ok((String::from_utf8_lossy(&k[1..]).into_owned(), dec("balance", &v)?))
        })
    }

    /// Hub: change-feed entries after `cursor`, in order, as (seq, kind, id). Stops at
    /// `limit` entries, but never inside one seq, so that a cursor resumes exactly.
    pub fn feed_after(&self, cursor: u64, limit: usize) -> Result<Vec<(u64, FeedKind, String)>> {
        let from = k(key::FEED, &(cursor.saturating_add(1)).to_be_bytes());
        let db = &self.shared.db;
        self.checked(self.shared.overlay.settled(db, || {
            let mut out: Vec<(u64, FeedKind, String)> = Vec::new();
            for kv in db.range(from..vec![key::FEED + 1]) {
                let (k, _) = kv?;
                let seq = u64::from_be_bytes(k[1..9].try_into().expect("feed keys hold a seq"));
                if out.len() >= limit && out.last().is_some_and(|l| l.0 != seq) {
                    break;
                }
                let Some(kind) = FeedKind::of(k[9]) else { continue };
                out.push((seq, kind, String::from_utf8_lossy(&k[10..]).into_owned()));
            }
            Ok(out)
        }))
    }

    /// Writes every pending change and sled's buffers out, without making them durable
    /// (sled's flush is not a durability barrier; the journal is).
    pub fn flush(&self) -> Result<()> {
        self.settle()?;
        self.checked(self.shared.db.flush().map(|_| ()).map_err(Error::from))
    }

    /// Ends the session cleanly: everything pending written, every file of the state
    /// directory made durable, and the session file removed, so that the next start
    /// believes the store whatever happens to the machine meanwhile (see `trust`). A
    /// store with a fault keeps its verdict. Nothing may change the store after this.
    pub fn close(&self) -> Result<()> {
        self.flush()?;
        if self.fault().is_some() {
            return Ok(());
        }
        let dir = &self.shared.dir;
        let synced = if self.shared.sessions {
            trust::end(dir)
        } else {
            crate::os::sync_tree(dir)
        };
        synced.map_err(|e| Error::internal(format!("{}: cannot make the state store durable: {e}", dir.display())))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shared.overlay.stop();
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
