//! The engine: the single writer between requests and state.
//!
//! Every change follows one path (`commit`): under the writer lock, read state and
//! decide with the pure rules; append the records to the journal; apply them to the
//! store; build the answer. Then, outside the lock, wait until the journal has fsynced
//! the records (group commit: concurrent requests share one fdatasync) and only then
//! answer. A change asked with an idempotency key that was seen before answers again
//! from the record that answered first, after that record is durable.
//!
//! Architecture invariant: nothing is acknowledged before `Journal::wait_durable` returns.
//! State applied before the sync is safe to read: any answer that depends on it waits for
//! a sync that covers it, and after a crash the store is re-derived from the journal.
//!
//! The operations live by concern: `members` (enrolment, cards, lookups), `checkout`
//! (quotes, sales, refunds), `rewards` (coupons, catalog rewards, expiry), `sync` (the
//! outbox, acknowledgements, pulls, the hub's ingest); `idem` holds idempotency keys,
//! `clock` the clock's trust, `recovery` opening a data directory and `rebuild`.

pub mod audit;
mod campaigns;
mod checkout;
mod clock;
mod conflicts;
mod idem;
mod import;
mod members;
pub mod pass;
mod points;
mod profile;
mod recovery;
pub mod reports;
mod rewards;
mod staff;
mod sync;

pub use checkout::Sale;
pub use clock::ClockPolicy;
pub use conflicts::ConflictView;
pub use idem::Keyed;
pub use import::{ImportReport, COLUMNS as IMPORT_COLUMNS};
pub use members::NewMember;
pub(crate) use points::{cursor as page_cursor, page_limit};
pub use points::{transaction_view, MAX_ADJUST, PAGE_DEFAULT, PAGE_MAX};
pub use profile::{MemberPatch, SEARCH_DEFAULT, SEARCH_MAX};
pub use recovery::{journal_path, rebuild};
pub use staff::{StaffView, PASSWORD_MAX, PASSWORD_MIN, POS_STAFF};
pub use sync::OutboxBatch;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::error::{Code, Error, Result};
use crate::journal::{Journal, Truncation};
use crate::model::{self, day_no, Role, Ts};
use crate::record::{Body, Record};
use crate::rules::{local_date, Ruleset};
use crate::store::{Idem, Store};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub terminal_id: String,
    pub clock: ClockPolicy,
    pub cache_bytes: u64,
    /// The offline redemption cap applies (the terminal has an upstream hub).
    pub offline_cap: bool,
    /// This engine is the hub: its store keeps the change feed terminals pull.
    pub hub: bool,
    /// `[members] default_country_code`: the country of national phone numbers.
    pub country_code: String,
    /// `[api] cashier_refund_limit_minor`: larger refunds need a manager.
    pub refund_limit: Option<i64>,
}

impl Default for EngineConfig {
    /// A standalone terminal `T1` with a trusted clock, in the current directory (tests
    /// and tools name what differs).
    fn default() -> EngineConfig {
        EngineConfig {
            data_dir: PathBuf::from("data"),
            terminal_id: "T1".into(),
            clock: ClockPolicy::Trusted,
            cache_bytes: 8 << 20,
            offline_cap: false,
            hub: false,
            country_code: "86".into(),
            refund_limit: None,
        }
    }
}

impl EngineConfig {
    /// The engine settings a terminal's config gives.
    pub fn of(cfg: &crate::config::Config) -> EngineConfig {
        EngineConfig {
            data_dir: cfg.data_dir.clone(),
            terminal_id: cfg.terminal_id.clone(),
            clock: cfg.clock,
            cache_bytes: cfg.cache_mib << 20,
            offline_cap: !cfg.sync.upstream.trim().is_empty(),
            hub: false,
            country_code: cfg.members.default_country_code.clone(),
            refund_limit: cfg.api.cashier_refund_limit_minor,
        }
    }
}

/// What start-up found and did, for the log.
#[derive(Debug, Clone, Default)]
pub struct Startup {
    pub journal_records: u64,
    pub replayed: u64,
    pub truncated: Option<Truncation>,
    /// Why the sled store was moved aside and rebuilt, and where it went.
    pub rebuilt: Option<String>,
}

impl Startup {
    /// The repairs start-up made, said plainly, for the log or stderr.
    pub fn repairs(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = &self.truncated {
            let kind = match t.later_frames {
                0 => "a torn tail".to_string(),
                n => format!("a ragged tail (a lost write, then {n} complete records)"),
            };
            out.push(format!(
                "journal: cut {kind} of {} bytes at offset {}: written after the last completed sync, so never acknowledged",
                t.bytes, t.offset
            ));
        }
        if let Some(r) = &self.rebuilt {
            out.push(format!("state store: {r}"));
        }
        out
    }
}

/// The business instant of a request, whether expiry may act on it, and who asks.
#[derive(Debug, Clone)]
pub struct At {
    pub ts: Ts,
    /// An explicit `--at` is the operator's word; otherwise the clock's trust decides.
    pub trusted: bool,
    pub actor: Actor,
}

impl At {
    /// The same request made by `actor`.
    pub fn by(self, actor: Actor) -> At {
        At { actor, ..self }
    }

    /// Refused with 403 `forbidden` unless the actor has at least `role`.
    pub fn require(&self, role: Role, what: &str) -> Result<()> {
        if self.actor.role >= role {
            return Ok(());
        }
        Err(Error::new(
            Code::Forbidden,
            format!(
                "{what} needs the {} role; {} is {}",
                role.as_str(),
                self.actor.by,
                self.actor.role.as_str()
            ),
        ))
    }
}

/// Who acts, named in every record written (`by`): a staff id, a token's name, `cli`
/// for the offline CLI, `system` for the daemon's own passes. With a manager's approval
/// the approver acts and the caller is kept as `requested_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub by: String,
    pub role: Role,
    pub requested_by: Option<String>,
}

impl Actor {
    pub fn new(by: &str, role: Role) -> Actor {
        Actor {
            by: by.to_string(),
            role,
            requested_by: None,
        }
    }

    /// The daemon itself (expiry passes, sync): may do anything.
    pub fn system() -> Actor {
        Actor::new("system", Role::Owner)
    }

    /// The CLI offline, on the device: whoever runs it owns the data directory.
    pub fn cli() -> Actor {
        Actor::new("cli", Role::Owner)
    }
}

pub struct Engine {
    cfg: EngineConfig,
    journal: Arc<Journal>,
    store: Store,
    writer: Mutex<Writer>,
    /// The first fault after which the engine refuses every change (see `fail`).
    failure: OnceLock<Error>,
    rules: RwLock<Arc<Ruleset>>,
    epoch: u64,
    boot_id: [u8; 16],
    clock: clock::SharedClock,
    on_commit: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Recent PIN checks by quotes, per member (see `checkout::PinChecks`).
    pin_checks: checkout::PinChecks,
    _lock: recovery::DirLock,
    pub startup: Startup,
}

/// What the writer lock guards besides the right to write.
#[derive(Debug, Default)]
struct Writer {
    /// `close` has run: nothing may change the store any more.
    closed: bool,
}

/// What a change decided under the writer lock.
enum Step<R> {
    /// Write these records (maybe none), then answer from `R` once they are durable.
    /// With an idempotency key, the last record carries it.
    Done(Vec<Body>, R),
    /// Refuse with this error after writing these records (the trace a wrong PIN
    /// leaves). A refusal does not use up an idempotency key.
    Refused(Vec<Body>, Error),
}

/// Creates `dir` (and missing parents) so that it survives a power cut: each new
/// directory's entry is fsynced in its parent. A member enrolled in a fresh data dir
/// must not vanish with the directory that holds its journal.
fn create_durably(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    crate::os::sync_parent(dir)
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("the OS random source works");
    u64::from_le_bytes(b)
}

/// The id of the transaction (checkout, refund, reward) journal record `seq` holds:
/// terminal, install epoch, seq. The seq is zero-padded so that ids sort in the order
/// they were made, which keeps the store's inserts at the end of its key range.
pub fn tx_id(terminal: &str, epoch: u64, seq: u64) -> String {
    format!("{terminal}-{:08x}-{seq:010}", epoch as u32)
}

impl Engine {
    /// Opens a data directory: takes its lock, opens and checks the journal (cutting an
    /// unacknowledged tail), opens the state store, rebuilding it from the journal when
    /// it cannot be believed, and replays the journal's tail into it.
    pub fn open(cfg: EngineConfig, rules: Ruleset) -> Result<Engine> {
        create_durably(&cfg.data_dir).map_err(|e| Error::internal(format!("{}: {e}", cfg.data_dir.display())))?;
        let lock = recovery::DirLock::take(&cfg.data_dir)?;
        let (journal, recovery) = Journal::open(&journal_path(&cfg.data_dir))?;
        let journal = Arc::new(journal);
        let mut startup = Startup {
            journal_records: recovery.records,
            truncated: recovery.truncated.clone(),
            ..Startup::default()
        };
        let store = recovery::open_state(&cfg, &journal, &mut startup)?;
        let mut engine = Engine {
            epoch: 0,
            boot_id: crate::os::boot_id(),
            clock: Default::default(),
            on_commit: OnceLock::new(),
            pin_checks: Default::default(),
            journal,
            store,
            writer: Mutex::new(Writer::default()),
            failure: OnceLock::new(),
            rules: RwLock::new(Arc::new(rules)),
            _lock: lock,
            startup,
            cfg,
        };
        match engine.store.identity()? {
            Some((terminal, epoch)) => {
                if terminal != engine.cfg.terminal_id {
                    return Err(Error::internal(format!(
                        "{} belongs to terminal {terminal:?}, but this terminal is configured as {:?}",
                        engine.cfg.data_dir.display(),
                        engine.cfg.terminal_id
                    )));
                }
                engine.epoch = epoch;
            }
            None => {
                // A fresh data dir: a new install epoch, so a cloned SD card cannot reuse
                // sequence numbers under the same identity.
                let epoch = random_u64();
                let at = engine.at(None);
                let body = Body::Init {
                    terminal_id: engine.cfg.terminal_id.clone(),
                    epoch,
                };
                engine.commit_plain(&at, |_, _| Ok((vec![body], ())), |_, _, _| Ok(()))?;
                engine.epoch = epoch;
            }
        }
        engine.canonicalise_phones()?;
        // A ruleset the hub published wins over the local file unless the file's is newer.
        if let Some(text) = engine.store.hub_ruleset()? {
            engine.adopt_hub_ruleset(&text);
        }
        Ok(engine)
    }

    /// Uses a ruleset the hub sent if it parses and is at least as new as the current one.
    fn adopt_hub_ruleset(&self, text: &str) {
        match Ruleset::parse(text, "(ruleset from the hub)") {
            Ok(r) if r.version >= self.rules().version => {
                if r.fingerprint != self.rules().fingerprint {
                    tracing::info!("using ruleset version {} from the hub", r.version);
                    self.set_rules(r);
                }
            }
            Ok(r) => tracing::info!(
                "hub ruleset version {} is older than the local one; keeping the local",
                r.version
            ),
            Err(e) => tracing::error!("refusing the hub's ruleset: {e}"),
        }
    }

    pub fn rules(&self) -> Arc<Ruleset> {
        self.rules.read().expect("rules lock").clone()
    }

    /// Swaps in a new ruleset for the next request.
    pub fn set_rules(&self, rules: Ruleset) {
        *self.rules.write().expect("rules lock") = Arc::new(rules);
    }

    /// A ruleset reloaded from the local file (SIGHUP): used unless the hub has sent
    /// a newer one, which keeps precedence.
    pub fn reload_rules(&self, file_rules: Ruleset) -> Result<()> {
        self.set_rules(file_rules);
        if let Some(text) = self.store.hub_ruleset()? {
            self.adopt_hub_ruleset(&text);
        }
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn terminal_id(&self) -> &str {
        &self.cfg.terminal_id
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn tx_id(&self, seq: u64) -> String {
        tx_id(&self.cfg.terminal_id, self.epoch, seq)
    }

    /// The one write path. With `key`, a key seen before answers through `replay` from
    /// the record that answered it first (the same key with another request is refused);
    /// otherwise `decide` sees the state and the rules and says what to write, `answer`
    /// runs after the records are applied and sees the state with them. The result is
    /// returned once everything it rests on is durable.
    fn commit<R, T>(
        &self,
        at: &At,
        key: Option<&Keyed>,
        decide: impl FnOnce(&Store, &Ruleset) -> Result<Step<R>>,
        answer: impl FnOnce(&Store, &Ruleset, R) -> Result<T>,
        replay: impl FnOnce(&Store, &Ruleset, &Record, &Idem) -> Result<T>,
    ) -> Result<T> {
        let rules = self.rules();
        let guard = self
            .writer
            .lock()
            .map_err(|_| Error::internal("writer lock poisoned"))?;
        if guard.closed {
            return Err(Error::new(
                Code::StoreBusy,
                "loyaltyd is stopping; try again in a moment",
            ));
        }
        self.healthy()?;
        if let Some(first) = key.map(|k| k.seen(&self.store)).transpose()?.flatten() {
            let rec = Record::decode(&self.journal.read(first.seq)?)?;
            let out = replay(&self.store, &rules, &rec, &first);
            // A replay is an acknowledgement of what it replays: once that is durable.
            let seen = self.journal.last_seq();
            drop(guard);
            self.journal.wait_durable(seen).map_err(|e| self.fail(e.into()))?;
            return out;
        }
        let (bodies, outcome) = match decide(&self.store, &rules)? {
            Step::Done(bodies, r) => (bodies, Ok(r)),
            Step::Refused(bodies, e) => (bodies, Err(e)),
        };
        if bodies.is_empty() {
            // The answer may rest on records that are not durable yet: it waits for
            // them, as their own commit does.
            let seen = self.journal.last_seq();
            drop(guard);
            self.journal.wait_durable(seen).map_err(|e| self.fail(e.into()))?;
            return answer(&self.store, &rules, outcome?);
        }
        let keyed = outcome.is_ok().then(|| key.map(Keyed::idem)).flatten();
        let day = day_no(local_date(&rules, at.ts));
        let pushable = bodies.iter().any(Body::is_pushable);
        let (wall, clock_trusted, mono_us) = (model::now(), self.clock_trusted(), crate::os::monotonic_us());
        let n = bodies.len();
        let records: Vec<Record> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Record {
                wall,
                clock_trusted,
                boot_id: self.boot_id,
                mono_us,
                at: at.ts,
                day,
                idem: if i + 1 == n { keyed.clone() } else { None },
                by: Some(at.actor.by.clone()),
                requested_by: at.actor.requested_by.clone(),
                body,
            })
            .collect();
        let encoded: Vec<Vec<u8>> = records.iter().map(Record::encode).collect();
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let first = self.journal.append(&refs).map_err(|e| self.fail(e.into()))?;
        // From here on the records are in the journal: a failure to apply them or to
        // answer from them leaves the state behind it, which only a restart repairs.
        self.store.apply_all(first, &records).map_err(|e| self.fail(e))?;
        let out = outcome.and_then(|r| {
            answer(&self.store, &rules, r).map_err(|e| match e.code {
                Code::Internal => self.fail(e),
                _ => e,
            })
        });
        let last = first + records.len() as u64 - 1;
        drop(guard);
        self.journal.wait_durable(last).map_err(|e| self.fail(e.into()))?;
        if pushable {
            if let Some(hook) = self.on_commit.get() {
                hook();
            }
        }
        out
    }

    /// `commit` of a change without an idempotency key that is either written or refused.
    fn commit_plain<R, T>(
        &self,
        at: &At,
        decide: impl FnOnce(&Store, &Ruleset) -> Result<(Vec<Body>, R)>,
        answer: impl FnOnce(&Store, &Ruleset, R) -> Result<T>,
    ) -> Result<T> {
        self.commit(
            at,
            None,
            |store, rules| decide(store, rules).map(|(bodies, r)| Step::Done(bodies, r)),
            answer,
            |_, _, _, _| Err(Error::internal("a change without a key was replayed")),
        )
    }

    /// Makes the engine refuse every further change (sticky): after a journal write or
    /// sync failed, or records were appended that could not be applied, the state in
    /// memory no longer follows the journal. Reported unhealthy (so that the watchdog
    /// restarts the daemon); the next start replays the journal and repairs it.
    fn fail(&self, e: Error) -> Error {
        if self.failure.set(e.clone()).is_ok() {
            tracing::error!("engine fault, refusing changes until restarted: {}", e.message);
        }
        e
    }

    /// Ok while the engine takes changes; the fault that stopped it otherwise.
    pub fn healthy(&self) -> Result<()> {
        let fault = match (self.failure.get(), self.store.fault()) {
            (Some(e), _) => e.message.clone(),
            (None, Some(f)) => format!("state store: {f}"),
            (None, None) => return Ok(()),
        };
        Err(Error::internal(format!(
            "refusing changes after a fault ({fault}); a restart repairs the state from the journal"
        )))
    }

    /// Proves the writer is not stuck and the engine not failed (for the systemd
    /// watchdog: a failed engine stops the pings, and systemd restarts the daemon).
    pub fn probe(&self) -> Result<()> {
        let _guard = self
            .writer
            .lock()
            .map_err(|_| Error::internal("writer lock poisoned"))?;
        self.healthy()
    }

    /// Ends the session: no change is taken any more, and the state store is made
    /// durable and marked closed cleanly, so that the next start believes it whatever
    /// happens to the machine meanwhile. Idempotent.
    pub fn close(&self) -> Result<()> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| Error::internal("writer lock poisoned"))?;
        if guard.closed {
            return Ok(());
        }
        guard.closed = true;
        if self.failure.get().is_some() {
            // The state does not follow the journal: leave the session as it is, and
            // the next start replays (or rebuilds) it.
            return self.store.flush();
        }
        self.store.close()
    }
}

#[cfg(test)]
mod tests;
