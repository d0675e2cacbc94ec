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
pub mod audit;
pub mod base;
pub mod campaign;
mod contact;
mod dump;
pub mod history;
mod overlay;
mod read;
mod redo;
pub mod report;
pub mod search;
mod trust;
mod types;

pub use history::{LedgerEntry, LedgerKind, TxSummary};
pub use types::{
    Acked, ActivityCount, Applied, Conflict, Daily, FeedKind, GroupPhase, GroupState, HubTerminal, Idem, StaffState,
    TxState,
};
use types::{HashPage, MemberRec, TxNote};

pub use apply::content_hash;
pub use contact::Contact;
pub use trust::{install, move_aside, KEEP_BROKEN};

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};
use crate::journal::Journal;
use crate::model::DayNo;

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
/// idempotency keys by transaction id, 3 had no history, search indexes or staff, 4
/// no groups, fired triggers or coupon issuers, 5 no report aggregates, 6 searched
/// names and cards only by their first characters and had no pass index, 7 had no
/// campaign figures or audit index and report aggregates without terminal scopes, 8
/// counted active members by a key per member and day and had no chain-wide copy.
const LAYOUT: u32 = 9;

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
    /// A member's coupons: (member, 0, code) -> ().
    pub const MEMBER_COUPON: u8 = b'Q';
    /// An import's chunks until it commits: (import id, chunk) -> members.
    pub const IMPORT: u8 = b'I';
    /// Activities granted to a member, counted for their limits: (member, 0, activity).
    pub const ACTIVITY: u8 = b'G';
    /// Hub: two offline enrolments of one card or phone.
    pub const CONFLICT: u8 = b'X';
    /// Staff accounts.
    pub const STAFF: u8 = b'a';
    /// Group-buy groups: group id -> `GroupState`.
    pub const GROUP: u8 = b'U';
    /// A deal's groups: (deal, 0, group id) -> ().
    pub const DEAL_GROUP: u8 = b'V';
    /// A member's groups: (member, 0, group id) -> ().
    pub const MEMBER_GROUP: u8 = b'W';
    /// Daily triggers fired for a member: member -> [(trigger id, occurrence)].
    pub const FIRED: u8 = b'Y';
    /// Per member, the points ledger and the transactions, in pages (see `history`).
    pub const LEDGER: u8 = super::history::LEDGER;
    pub const HISTORY: u8 = super::history::HISTORY;
    /// The search indexes (see `search`).
    pub const NAME: u8 = super::search::NAME;
    pub const PHONE_SUFFIX: u8 = super::search::PHONE_SUFFIX;
    pub const CARD_PREFIX: u8 = super::search::CARD_PREFIX;
    pub const NAME_ORDER: u8 = super::search::NAME_ORDER;
    pub const CARD_ORDER: u8 = super::search::CARD_ORDER;
    /// The daily trigger pass's index (birthdays, inactivity; see `campaign`).
    pub const PASS: u8 = b'z';
    pub const LAYOUT: &[u8] = b"Mlayout";
    /// The phones have been made canonical (0.2's upgrade record applied).
    pub const PHONES_CANONICAL: &[u8] = b"Mphones";
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
    /// The last local day the daily trigger pass ran for.
    pub const TRIGGER_DAY: &[u8] = b"Mtriggerday";
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

/// Idempotency keys are kept in this many buckets (a hash of the key picks one), so a
/// terminal's millionth checkout rewrites a bucket of about 15 entries rather than
/// inserting a random key into sled, and a rebuild writes each bucket once.
const IDEM_BUCKET_BITS: u32 = 16;

fn idem_bucket_key(idem_key: &str) -> Vec<u8> {
    let bucket = crc32fast::hash(idem_key.as_bytes()) >> (32 - IDEM_BUCKET_BITS);
    k(key::IDEM, &(bucket as u16).to_be_bytes())
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
pub fn parse_tx_id(id: &str) -> Option<(&str, u32, u64)> {
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

/// sled and the changes on their way to it, shared with the flusher thread.
struct Shared {
    db: sled::Db,
    overlay: Overlay,
    /// Hub: each terminal stream's last contact (see `contact`), beside the state.
    contact: sled::Tree,
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
        let contact = db.open_tree(contact::TREE).map_err(unusable)?;
        // A batch a crash cut short is completed before anything is read.
        match redo.recover(&db) {
            Ok(0) => {}
            Ok(n) => tracing::info!("{}: completed a state batch cut short ({n} keys)", dir.display()),
            Err(e) => return Err(Unusable(format!("{}: {}", dir.display(), e.message))),
        }
        let shared = Arc::new(Shared {
            db,
            overlay: Overlay::new(bulk, redo),
            contact,
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
