//! The engine: the single writer between requests and state.
//!
//! Every change follows one path: under the writer lock, read state and decide with the
//! pure rules; append the records to the journal; apply them to the store; build the
//! answer. Then, outside the lock, wait until the journal has fsynced the records (group
//! commit: concurrent requests share one fdatasync) and only then answer.
//!
//! Architecture invariant: nothing is acknowledged before `Journal::wait_durable` returns.
//! State applied before the sync is safe to read: any answer that depends on it waits for
//! a sync that covers it, and after a crash the store is re-derived from the journal.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use sha2::{Digest, Sha256};

use crate::error::{Code, Error, Result};
use crate::journal::{Journal, Truncation};
use crate::model::{self, canonical_card, day_no, validate_lines, Birthday, CardStatus, Line, MemberState, Ts};
use crate::record::{Body, CheckoutRec, Record, RefundRec};
use crate::rules::refund::{self, Paid};
use crate::rules::{self, local_date, PinCheck, Priced, Request, Ruleset};
use crate::store::{Store, TxState};
use crate::views::{self, CouponView, DailyView, MemberView, Receipt, RefundView, RewardView};

/// How long a clock offset measured against the hub is believed.
const HUB_CLOCK_VALID: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

#[derive(Debug, Default)]
struct HubClock {
    offset_us: i64,
    measured_at: Option<std::time::Instant>,
}

/// Whether the wall clock can be believed (a Pi without RTC boots with a stale time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockPolicy {
    /// Trusted when the kernel says the clock is NTP-synchronised, or while a recent
    /// measurement against the hub's clock exists (which then corrects it).
    Auto,
    Trusted,
    Untrusted,
    /// Only the hub's clock is believed: trusted while a recent measurement exists,
    /// and business time is always corrected by it (no NTP at the shop).
    Hub,
}

impl std::str::FromStr for ClockPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<ClockPolicy, String> {
        match s {
            "auto" => Ok(ClockPolicy::Auto),
            "trusted" => Ok(ClockPolicy::Trusted),
            "untrusted" => Ok(ClockPolicy::Untrusted),
            "hub" => Ok(ClockPolicy::Hub),
            _ => Err(format!("clock policy {s:?}: auto, trusted, untrusted or hub")),
        }
    }
}

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
            out.push(format!(
                "journal: cut a torn last record of {} bytes at offset {} (it was never acknowledged)",
                t.bytes, t.offset
            ));
        }
        if let Some(r) = &self.rebuilt {
            out.push(format!("state store: {r}"));
        }
        out
    }
}

/// The business instant of a request and whether expiry may act on it.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub ts: Ts,
    /// An explicit `--at` is the operator's word; otherwise the clock's trust decides.
    pub trusted: bool,
}

pub struct Engine {
    cfg: EngineConfig,
    journal: Arc<Journal>,
    store: Store,
    writer: Mutex<()>,
    rules: RwLock<Arc<Ruleset>>,
    epoch: u64,
    boot_id: [u8; 16],
    clock: Mutex<HubClock>,
    on_commit: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    _lock: DirLock,
    pub startup: Startup,
}

/// A PIN checked ahead of the writer lock against the member's hash `phc`.
struct PinAhead {
    phc: String,
    right: bool,
}

/// Pushable records as (seq, payload), and the seq up to which they cover the journal.
pub type OutboxBatch = (Vec<(u64, Vec<u8>)>, u64);

/// A new member as the CLI and API give it.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub card: String,
    pub name: String,
    pub phone: String,
    #[serde(default)]
    pub birthday: Option<String>,
    #[serde(default)]
    pub pin: Option<String>,
}

/// A sale to quote or commit.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sale {
    pub card: String,
    pub lines: Vec<Line>,
    #[serde(default)]
    pub redeem_points: Option<i64>,
    #[serde(default)]
    pub pin: Option<String>,
    #[serde(default)]
    pub coupon: Option<String>,
}

/// Exclusive use of a data directory: the daemon and offline commands never share one.
struct DirLock(#[allow(dead_code)] File);

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock> {
        let path = dir.join("LOCK");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(Error::new(
                Code::StoreBusy,
                format!(
                    "{} is in use by another loyaltyd process ({}); stop it or talk to the daemon instead",
                    dir.display(),
                    holder.trim()
                ),
            ));
        }
        let _ = f.set_len(0);
        let _ = write!(f, "pid {}", std::process::id());
        Ok(DirLock(f))
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("the OS random source works");
    u64::from_le_bytes(b)
}

/// Unambiguous upper-case code (no 0/O, 1/I) for coupons.
fn random_code(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = vec![0u8; len];
    getrandom::getrandom(&mut b).expect("the OS random source works");
    b.iter()
        .map(|x| ALPHABET[(*x as usize) % ALPHABET.len()] as char)
        .collect()
}

fn boot_id() -> [u8; 16] {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).take(16).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0);
    }
    out
}

fn monotonic_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// True when the kernel's NTP state says the clock is synchronised.
pub fn kernel_clock_synced() -> bool {
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    state >= 0 && state != libc::TIME_ERROR
}

/// Moves a sled directory aside (never deletes it) and says where it went.
fn move_aside(dir: &Path, why: &str) -> Result<String> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let mut target = dir.with_extension(format!("broken-{stamp}"));
    let mut n = 1;
    while target.exists() {
        target = dir.with_extension(format!("broken-{stamp}-{n}"));
        n += 1;
    }
    std::fs::rename(dir, &target).map_err(|e| Error::internal(format!("cannot move {} aside: {e}", dir.display())))?;
    Ok(format!(
        "{why}; moved it to {} and rebuilt it from the journal",
        target.display()
    ))
}

pub fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("journal.log")
}

fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state")
}

/// Records applied to the store in one step during replay (sled gets fewer, larger
/// batches; a member touched many times is written once).
const REPLAY_CHUNK: usize = 256;

/// Applies journal records `from..` to the store; returns how many.
fn replay(journal: &Journal, store: &Store, from: u64) -> Result<u64> {
    let mut n = 0;
    let mut chunk = Vec::with_capacity(REPLAY_CHUNK);
    let mut first = from;
    let mut reader = journal.read_from(from)?;
    let mut buf = Vec::new();
    loop {
        let next = reader.next_into(&mut buf).transpose()?;
        if let Some(seq) = next {
            let rec = Record::decode(&buf)
                .map_err(|e| Error::internal(format!("{} record {seq}: {}", journal.path().display(), e.message)))?;
            if chunk.is_empty() {
                first = seq;
            }
            chunk.push(rec);
        }
        if chunk.len() == REPLAY_CHUNK || (next.is_none() && !chunk.is_empty()) {
            store.apply_all(first, &chunk)?;
            n += chunk.len() as u64;
            chunk.clear();
        }
        if next.is_none() {
            return Ok(n);
        }
    }
}

impl Engine {
    /// Opens a data directory: takes its lock, opens and checks the journal (cutting a
    /// torn tail), opens the sled store (moving aside and rebuilding one that will not
    /// open or is ahead of the journal), replays the journal's tail into it.
    pub fn open(cfg: EngineConfig, rules: Ruleset) -> Result<Engine> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| Error::internal(format!("{}: {e}", cfg.data_dir.display())))?;
        let lock = DirLock::take(&cfg.data_dir)?;
        let (journal, recovery) = Journal::open(&journal_path(&cfg.data_dir))?;
        let journal = Arc::new(journal);
        let mut startup = Startup {
            journal_records: recovery.records,
            truncated: recovery.truncated.clone(),
            ..Startup::default()
        };
        let dir = state_path(&cfg.data_dir);
        let mut built = 0;
        if !dir.exists() && recovery.records > 0 {
            // Lost (or deleted) with a journal to rebuild from: the fast way.
            built = build_state(&cfg, &journal)?;
            startup.rebuilt = Some(format!(
                "{} was missing; rebuilt it from the journal ({built} records)",
                dir.display()
            ));
        }
        let why = match Store::open(&dir, cfg.cache_bytes, cfg.hub, journal.clone()) {
            Ok(s) => match s.applied()? {
                a if a.seq <= recovery.records => Ok(s),
                a => Err(format!(
                    "{} reflects record {} but the journal ends at {}",
                    dir.display(),
                    a.seq,
                    recovery.records
                )),
            },
            Err(e) => Err(format!("the state store would not open ({})", e.0)),
        };
        let store = match why {
            Ok(s) => s,
            Err(why) => {
                startup.rebuilt = Some(move_aside(&dir, &why)?);
                built = build_state(&cfg, &journal)?;
                Store::open(&dir, cfg.cache_bytes, cfg.hub, journal.clone()).map_err(|e| Error::internal(e.0))?
            }
        };
        let from = store.applied()?.seq + 1;
        startup.replayed = built + replay(&journal, &store, from)?;
        let mut engine = Engine {
            epoch: 0,
            boot_id: boot_id(),
            clock: Mutex::new(HubClock::default()),
            on_commit: std::sync::OnceLock::new(),
            journal,
            store,
            writer: Mutex::new(()),
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
                engine.commit(at, |_, _| Ok((vec![body], ())), |_, _, _| Ok(()))?;
                engine.epoch = epoch;
            }
        }
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

    pub fn clock_trusted(&self) -> bool {
        match self.cfg.clock {
            ClockPolicy::Trusted => true,
            ClockPolicy::Untrusted => false,
            ClockPolicy::Auto => kernel_clock_synced() || self.hub_offset().is_some(),
            ClockPolicy::Hub => self.hub_offset().is_some(),
        }
    }

    /// The hub's estimate of how far this clock is off, if it is recent.
    fn hub_offset(&self) -> Option<i64> {
        let c = self.clock.lock().ok()?;
        c.measured_at
            .filter(|t| t.elapsed() < HUB_CLOCK_VALID)
            .map(|_| c.offset_us)
    }

    /// Records the offset between the hub's clock and this one (hub minus local, µs),
    /// measured over one exchange. Until it goes stale it makes the clock trusted and
    /// corrects business instants when the kernel clock is not synchronised.
    pub fn note_hub_clock(&self, offset_us: i64) {
        if let Ok(mut c) = self.clock.lock() {
            *c = HubClock {
                offset_us,
                measured_at: Some(std::time::Instant::now()),
            };
        }
    }

    /// Business "now": the system clock, corrected by the hub's estimate when the policy
    /// says so or the kernel clock is not synchronised (a Pi without RTC booting offline).
    pub fn now(&self) -> Ts {
        let now = model::now();
        let correct = match self.cfg.clock {
            ClockPolicy::Hub => true,
            ClockPolicy::Auto => !kernel_clock_synced(),
            ClockPolicy::Trusted | ClockPolicy::Untrusted => false,
        };
        match self.hub_offset() {
            Some(off) if correct => now + off,
            _ => now,
        }
    }

    pub fn at(&self, explicit: Option<Ts>) -> At {
        match explicit {
            Some(ts) => At { ts, trusted: true },
            None => At {
                ts: self.now(),
                trusted: self.clock_trusted(),
            },
        }
    }

    /// What the hub has acknowledged of this terminal's journal.
    pub fn acked(&self) -> Result<crate::store::Acked> {
        self.store.acked()
    }

    /// Records the hub's acknowledgement durably (through the journal, like any change).
    pub fn record_ack(&self, upto: u64, pushable: u64) -> Result<()> {
        let at = self.at(None);
        self.commit(
            at,
            |store, _| {
                let now = store.acked()?;
                Ok((
                    if upto > now.seq {
                        vec![Body::Acked { upto, pushable }]
                    } else {
                        vec![]
                    },
                    (),
                ))
            },
            |_, _, _| Ok(()),
        )
    }

    /// Records that go upstream and the hub has not acknowledged yet.
    pub fn outbox(&self) -> Result<u64> {
        self.store.outbox_len()
    }

    /// Up to `max` pushable records after `after`, as (seq, payload), and the seq up to
    /// which the batch covers the journal (local-only records in between included).
    pub fn outbox_batch(&self, after: u64, max: usize, max_bytes: usize) -> Result<OutboxBatch> {
        let mut out = Vec::new();
        let (mut upto, mut bytes) = (after, 0);
        for item in self.journal.read_from(after + 1)? {
            let (seq, payload) = item?;
            if out.len() >= max || bytes + payload.len() > max_bytes && !out.is_empty() {
                break;
            }
            upto = seq;
            if Record::decode(&payload)?.body.is_pushable() {
                bytes += payload.len();
                out.push((seq, payload));
            }
        }
        Ok((out, upto))
    }

    /// Applies what a pull brought, through the journal like any change.
    pub fn apply_pull(&self, pull: crate::record::HubPull) -> Result<()> {
        let ruleset = pull.ruleset.clone();
        let at = self.at(None);
        self.commit(
            at,
            |_, _| Ok((vec![Body::HubPull(Box::new(pull))], ())),
            |_, _, _| Ok(()),
        )?;
        if let Some(text) = ruleset {
            self.adopt_hub_ruleset(&text);
        }
        Ok(())
    }

    /// A change decided outside the engine (the hub's ingest): `decide` sees the state
    /// under the writer lock and returns the records to write and a result, which is
    /// returned once the records are durable.
    pub fn transact<R>(&self, at: At, decide: impl FnOnce(&Store, &Ruleset) -> Result<(Vec<Body>, R)>) -> Result<R> {
        self.commit(at, decide, |_, _, r| Ok(r))
    }

    /// How many records in `from..=to` go upstream.
    pub fn count_pushable(&self, from: u64, to: u64) -> Result<u64> {
        let mut n = 0;
        for item in self.journal.read_from(from)? {
            let (seq, payload) = item?;
            if seq > to {
                break;
            }
            n += u64::from(Record::decode(&payload)?.body.is_pushable());
        }
        Ok(n)
    }

    /// Sets what to call after every durable commit of records that go upstream (the
    /// sync task's wake-up). Set once, before the engine is shared.
    pub fn on_pushable_commit(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_commit.set(hook);
    }

    fn tx_id(&self, seq: u64) -> String {
        tx_id(&self.cfg.terminal_id, self.epoch, seq)
    }

    /// The one write path. `decide` sees the state and the rules and returns the records
    /// to write plus anything `answer` needs; `answer` runs after the records are applied
    /// and sees the state with them. The result is returned once the records are durable.
    fn commit<R, T>(
        &self,
        at: At,
        decide: impl FnOnce(&Store, &Ruleset) -> Result<(Vec<Body>, R)>,
        answer: impl FnOnce(&Store, &Ruleset, R) -> Result<T>,
    ) -> Result<T> {
        let rules = self.rules();
        let guard = self
            .writer
            .lock()
            .map_err(|_| Error::internal("writer lock poisoned"))?;
        let (bodies, r) = decide(&self.store, &rules)?;
        if bodies.is_empty() {
            drop(guard);
            return answer(&self.store, &rules, r);
        }
        let day = day_no(local_date(&rules, at.ts));
        let pushable = bodies.iter().any(Body::is_pushable);
        let (wall, clock_trusted, mono_us) = (model::now(), self.clock_trusted(), monotonic_us());
        let records: Vec<Record> = bodies
            .into_iter()
            .map(|body| Record {
                wall,
                clock_trusted,
                boot_id: self.boot_id,
                mono_us,
                at: at.ts,
                day,
                body,
            })
            .collect();
        let encoded: Vec<Vec<u8>> = records.iter().map(Record::encode).collect();
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let first = self.journal.append(&refs)?;
        self.store.apply_all(first, &records)?;
        let out = answer(&self.store, &rules, r);
        let last = first + records.len() as u64 - 1;
        drop(guard);
        self.journal.wait_durable(last)?;
        if pushable {
            if let Some(hook) = self.on_commit.get() {
                hook();
            }
        }
        out
    }

    // ----- reads -----

    fn member_by_card(&self, card: &str) -> Result<(MemberState, CardStatus)> {
        let owner = self
            .store
            .card_owner(card)?
            .ok_or_else(|| Error::new(Code::UnknownCard, format!("no member has card {card}")))?;
        let m = self
            .store
            .member(&owner)?
            .ok_or_else(|| Error::internal(format!("card {card} points at missing member {owner}")))?;
        let status = m
            .cards
            .iter()
            .find(|(c, _)| c == card)
            .map_or(CardStatus::Blocked, |c| c.1);
        Ok((m, status))
    }

    /// The member of an active card; blocked cards are refused.
    fn active_member(&self, card: &str) -> Result<MemberState> {
        let (m, status) = self.member_by_card(card)?;
        if status == CardStatus::Blocked {
            return Err(Error::new(Code::CardBlocked, format!("card {card} is blocked")));
        }
        Ok(m)
    }

    /// A member by card, as seen at `at` (blocked cards are shown too).
    pub fn show_member(&self, card: &str, at: At) -> Result<MemberView> {
        let card = canonical_card(card)?;
        let (m, _) = self.member_by_card(&card)?;
        Ok(MemberView::new(&self.rules(), &m, at.ts, at.trusted))
    }

    /// What a card read means: the member, or unknown/blocked.
    pub fn lookup_card(&self, card: &str) -> Result<(Option<MemberState>, Option<CardStatus>)> {
        match self.member_by_card(card) {
            Ok((m, s)) => Ok((Some(m), Some(s))),
            Err(e) if e.code == Code::UnknownCard => Ok((None, None)),
            Err(e) => Err(e),
        }
    }

    pub fn daily(&self, date: Option<chrono::NaiveDate>) -> Result<DailyView> {
        let rules = self.rules();
        let date = date.unwrap_or_else(|| local_date(&rules, self.now()));
        let day = day_no(date);
        Ok(DailyView::new(&rules, day, self.store.daily(day)?))
    }

    // ----- members and cards -----

    pub fn add_member(&self, req: NewMember, at: At) -> Result<MemberView> {
        let card = canonical_card(&req.card)?;
        let name = req.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("name must be 1 to 100 characters"));
        }
        let phone = normalise_phone(&req.phone)?;
        let birthday = req.birthday.as_deref().map(Birthday::parse).transpose()?;
        let pin_hash = match req.pin.as_deref() {
            Some(pin) => {
                model::validate_pin(pin)?;
                Some(crate::pin::hash(pin)?)
            }
            None => None,
        };
        let member_id = format!("m-{:016x}", random_u64());
        self.commit(
            at,
            |store, _| {
                if store.card_owner(&card)?.is_some() {
                    return Err(Error::new(
                        Code::MemberExists,
                        format!("card {card} already belongs to a member"),
                    ));
                }
                if store.phone_owner(&phone)?.is_some() {
                    return Err(Error::new(
                        Code::PhoneTaken,
                        format!("phone {phone} already belongs to a member"),
                    ));
                }
                let body = Body::MemberAdd {
                    member_id: member_id.clone(),
                    card: card.clone(),
                    name,
                    phone,
                    birthday,
                    pin_hash,
                };
                Ok((vec![body], ()))
            },
            |store, rules, _| self.member_view(store, rules, &member_id, at),
        )
    }

    fn member_view(&self, store: &Store, rules: &Ruleset, member_id: &str, at: At) -> Result<MemberView> {
        let m = store
            .member(member_id)?
            .ok_or_else(|| Error::internal(format!("member {member_id} vanished")))?;
        Ok(MemberView::new(rules, &m, at.ts, at.trusted))
    }

    pub fn block_card(&self, card: &str, at: At) -> Result<MemberView> {
        let card = canonical_card(card)?;
        self.commit(
            at,
            |_, _| {
                let (m, status) = self.member_by_card(&card)?;
                let bodies = match status {
                    CardStatus::Blocked => vec![],
                    CardStatus::Active => vec![Body::CardBlock { card: card.clone() }],
                };
                Ok((bodies, m.member_id))
            },
            |store, rules, id| self.member_view(store, rules, &id, at),
        )
    }

    pub fn replace_card(&self, old: &str, new: &str, at: At) -> Result<MemberView> {
        let (old, new) = (canonical_card(old)?, canonical_card(new)?);
        self.commit(
            at,
            |store, _| {
                let (m, _) = self.member_by_card(&old)?;
                if store.card_owner(&new)?.is_some() {
                    return Err(Error::new(
                        Code::MemberExists,
                        format!("card {new} already belongs to a member"),
                    ));
                }
                Ok((
                    vec![Body::CardReplace {
                        old: old.clone(),
                        new: new.clone(),
                    }],
                    m.member_id,
                ))
            },
            |store, rules, id| self.member_view(store, rules, &id, at),
        )
    }

    // ----- checkout -----

    /// Checks a PIN before the writer lock is taken: argon2 is slow on purpose (tens of
    /// milliseconds, more on a Pi), and other commits must not wait for it. The answer
    /// holds for the hash it was checked against; under the lock it is used only if the
    /// member's hash is still that one.
    fn pin_ahead(&self, card: &str, pin: Option<&str>, needed: bool) -> Option<PinAhead> {
        let pin = pin.filter(|p| needed && model::validate_pin(p).is_ok())?;
        let card = canonical_card(card).ok()?;
        let (m, _) = self.member_by_card(&card).ok()?;
        let phc = m.pin_hash?;
        let right = crate::pin::verify(pin, &phc);
        Some(PinAhead { phc, right })
    }

    /// Prices a sale against the current state. Returns the records that must precede
    /// the checkout (expiry) and the refusal-or-price.
    fn price_sale(
        &self,
        store: &Store,
        rules: &Ruleset,
        sale: &Sale,
        at: At,
        pin_ahead: Option<&PinAhead>,
    ) -> Result<(MemberState, Vec<Body>, Result<Priced>)> {
        let card = canonical_card(&sale.card)?;
        validate_lines(&sale.lines)?;
        let redeem = sale.redeem_points.unwrap_or(0);
        if !(0..=model::MAX_POINTS_INPUT).contains(&redeem) {
            return Err(Error::invalid("redeem_points must be 0 or more"));
        }
        if let Some(pin) = &sale.pin {
            model::validate_pin(pin).map_err(|_| Error::new(Code::PinInvalid, "a PIN is 4 to 8 digits"))?;
        }
        let mut member = self.active_member(&card)?;
        let mut pre = Vec::new();
        if at.trusted && member.has_expired_lots(at.ts) {
            pre.push(Body::Expire {
                member_id: member.member_id.clone(),
            });
            rules::lots::expire(&mut member.lots, at.ts);
        }
        let coupon_code = sale.coupon.as_ref().map(|c| c.trim().to_ascii_uppercase());
        let coupon = match &coupon_code {
            Some(code) => Some((code.as_str(), store.coupon(code)?.map(|c| c.view(code)))),
            None => None,
        };
        let coupon_ref = coupon.as_ref().map(|(code, v)| (*code, v.as_ref()));
        let req = Request {
            member: &member,
            lines: &sale.lines,
            coupon: coupon_ref,
            redeem_points: redeem,
            at: at.ts,
            expiry_applies: at.trusted,
            offline_cap_applies: self.cfg.offline_cap,
            acked: self.acked()?.seq,
        };
        let mut check_pin = || match (&sale.pin, &member.pin_hash) {
            (None, _) => PinCheck::NotGiven,
            (Some(_), None) => PinCheck::NoPinSet,
            (Some(pin), Some(hash)) => {
                let right = match pin_ahead {
                    Some(a) if a.phc == *hash => a.right,
                    _ => crate::pin::verify(pin, hash),
                };
                if right {
                    PinCheck::Right
                } else {
                    PinCheck::Wrong
                }
            }
        };
        let priced = rules::price(rules, &req, &mut check_pin);
        Ok((member, pre, priced))
    }

    pub fn quote(&self, sale: &Sale, at: At) -> Result<Receipt> {
        let rules = self.rules();
        let (member, _, priced) = self.price_sale(&self.store, &rules, sale, at, None)?;
        let p = priced?;
        let balance = member.balance_at(at.ts, at.trusted) - p.points_redeemed + p.points_earned;
        Ok(Receipt {
            tx_id: None,
            member_id: member.member_id.clone(),
            card: canonical_card(&sale.card)?,
            at: model::fmt_instant(at.ts, &rules.timezone),
            lines: views::lines(&p.lines),
            subtotal: p.subtotal,
            discounts: views::discounts(&p.tier_before, p.tier_discount, &p.promotion, &p.coupon),
            due: p.due,
            points_redeemed: p.points_redeemed,
            redeem_value: p.redeem_value,
            total: p.total,
            points_earned: p.points_earned,
            balance,
            tier_before: p.tier_before,
            tier: p.tier_after,
            replayed: false,
            max_redeem_points: Some(p.max_redeem_points),
        })
    }

    /// Commits a sale. With an idempotency key, the same key again returns the first
    /// receipt marked as a replay; the same key with another request is refused.
    pub fn checkout(&self, sale: &Sale, key: Option<&str>, at: At) -> Result<Receipt> {
        if let Some(k) = key {
            if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) {
                return Err(Error::invalid("an idempotency key is 1 to 128 printable characters"));
            }
        }
        let hash = request_hash(sale);
        let pin = self.pin_ahead(&sale.card, sale.pin.as_deref(), sale.redeem_points.unwrap_or(0) > 0);
        enum Outcome {
            Replay(Box<TxState>, i64),
            Done(Box<CheckoutRec>),
            Refused(Error),
        }
        self.commit(
            at,
            |store, rules| {
                if let Some(k) = key {
                    if let Some(first) = store.idem(k)? {
                        let tx_id = &first.tx_id;
                        if first.request != hash {
                            return Err(Error::new(
                                Code::IdempotencyConflict,
                                format!("idempotency key {k:?} was used for a different sale ({tx_id})"),
                            ));
                        }
                        let tx = store
                            .tx(tx_id)?
                            .ok_or_else(|| Error::internal(format!("idempotency key points at missing {tx_id}")))?;
                        return Ok((vec![], Outcome::Replay(Box::new(tx), first.balance_after)));
                    }
                }
                let (member, mut bodies, priced) = self.price_sale(store, rules, sale, at, pin.as_ref())?;
                let p = match priced {
                    Ok(p) => p,
                    Err(e) if e.code == Code::PinInvalid && sale.pin.is_some() => {
                        // A wrong PIN is the one refusal that leaves a trace: it counts
                        // towards the lock.
                        bodies.push(Body::PinFail {
                            member_id: member.member_id.clone(),
                        });
                        return Ok((bodies, Outcome::Refused(e)));
                    }
                    Err(e) => return Err(e),
                };
                let tx_id = self.tx_id(self.journal.last_seq() + 1 + bodies.len() as u64);
                let checkout = Box::new(CheckoutRec {
                    tx_id,
                    member_id: member.member_id.clone(),
                    card: canonical_card(&sale.card)?,
                    idem: key.map(|k| (k.to_string(), hash)),
                    lines: p.lines,
                    subtotal: p.subtotal,
                    tier_discount: p.tier_discount,
                    promotion: p.promotion,
                    coupon: p.coupon,
                    due: p.due,
                    points_redeemed: p.points_redeemed,
                    redeem_value: p.redeem_value,
                    total: p.total,
                    base: p.base,
                    points_earned: p.points_earned,
                    lot_expires_at: p.lot_expires_at,
                    tier_before: p.tier_before,
                    tier_after: p.tier_after,
                    visit: p.visit,
                    pin_verified: p.pin_verified,
                    ruleset_version: rules.version,
                });
                bodies.push(Body::Checkout(checkout.clone()));
                Ok((bodies, Outcome::Done(checkout)))
            },
            |store, rules, outcome| match outcome {
                Outcome::Refused(e) => Err(e),
                Outcome::Replay(tx, balance) => Ok(Receipt::of_checkout(rules, &tx.rec, tx.at, balance, true)),
                Outcome::Done(c) => {
                    // The answer runs right after the apply, under the writer lock: the
                    // member's balance now is the balance after this checkout.
                    let m = store
                        .member(&c.member_id)?
                        .ok_or_else(|| Error::internal(format!("member {} vanished", c.member_id)))?;
                    Ok(Receipt::of_checkout(rules, &c, at.ts, m.ledger_balance(), false))
                }
            },
        )
    }

    /// Refunds lines of a committed checkout, or all that is left of it.
    pub fn refund(&self, tx_id: &str, asked: &[(String, i64)], at: At) -> Result<RefundView> {
        self.commit(
            at,
            |store, _| {
                let tx = store
                    .tx(tx_id)?
                    .ok_or_else(|| Error::invalid(format!("no transaction {tx_id}")))?;
                let c = &tx.rec;
                let paid = Paid {
                    total: c.total,
                    points_earned: c.points_earned,
                    points_redeemed: c.points_redeemed,
                    base: c.base,
                    visit: c.visit,
                };
                let plan = refund::plan(&c.lines, paid, &tx.refunded, asked)?;
                let seq = self.journal.last_seq() + 1;
                let rec = RefundRec {
                    refund_id: self.tx_id(seq),
                    tx_id: tx_id.to_string(),
                    member_id: c.member_id.clone(),
                    plan,
                };
                Ok((vec![Body::Refund(Box::new(rec.clone()))], rec))
            },
            |store, rules, rec| {
                let m = store
                    .member(&rec.member_id)?
                    .ok_or_else(|| Error::internal("refunded member vanished"))?;
                let view = MemberView::new(rules, &m, at.ts, at.trusted);
                Ok(RefundView {
                    refund_id: rec.refund_id,
                    tx_id: rec.tx_id,
                    amount: rec.plan.amount,
                    points_clawed_back: rec.plan.points_clawed_back,
                    points_returned: rec.plan.points_returned,
                    balance: view.balance,
                    tier: view.tier,
                })
            },
        )
    }

    // ----- coupons and rewards -----

    pub fn issue_coupon(&self, card: &str, type_id: &str, at: At) -> Result<CouponView> {
        let card = canonical_card(card)?;
        self.commit(
            at,
            |store, rules| {
                let m = self.active_member(&card)?;
                let ty = rules
                    .coupon_type(type_id)
                    .ok_or_else(|| Error::new(Code::CouponInvalid, format!("no coupon type {type_id}")))?;
                let issued = day_no(local_date(rules, at.ts));
                let valid_until = ty.valid_until(issued);
                let mut code = random_code(10);
                while store.coupon(&code)?.is_some() {
                    code = random_code(10);
                }
                let body = Body::CouponIssue {
                    code: code.clone(),
                    type_id: type_id.to_string(),
                    member_id: m.member_id,
                    issued,
                    valid_until,
                };
                Ok((vec![body], (code, valid_until)))
            },
            |_, _, (code, valid_until)| {
                Ok(CouponView {
                    code,
                    type_id: type_id.to_string(),
                    valid_until: model::day_date(valid_until).to_string(),
                })
            },
        )
    }

    /// Redeems points for a catalog reward, with the same checks as a checkout's
    /// redemption except the share cap (a reward is not paid in money).
    pub fn redeem_reward(&self, card: &str, sku: &str, pin: Option<&str>, at: At) -> Result<RewardView> {
        let card = canonical_card(card)?;
        enum Outcome {
            Done(String, i64),
            Refused(Error),
        }
        let ahead = self.pin_ahead(&card, pin, true);
        self.commit(
            at,
            |store, rules| {
                let mut m = self.active_member(&card)?;
                let reward = rules
                    .reward(sku)
                    .ok_or_else(|| Error::invalid(format!("the catalog has no reward {sku}")))?;
                let mut bodies = Vec::new();
                if at.trusted && m.has_expired_lots(at.ts) {
                    bodies.push(Body::Expire {
                        member_id: m.member_id.clone(),
                    });
                    rules::lots::expire(&mut m.lots, at.ts);
                }
                let left = reward.stock - store.reward_used(sku)?;
                if left <= 0 {
                    return Err(Error::new(Code::RewardOutOfStock, format!("{sku} is out of stock")));
                }
                let balance = m.balance_at(at.ts, at.trusted);
                if reward.points > balance {
                    return Err(Error::new(
                        Code::InsufficientPoints,
                        format!("{sku} costs {} points, the balance is {balance}", reward.points),
                    ));
                }
                let red = &rules.redeem;
                let mut pin_verified = false;
                if red.pin_required_from > 0 && reward.points >= red.pin_required_from {
                    if m.pin_locked_at(at.ts) {
                        return Err(Error::new(
                            Code::PinLocked,
                            "too many wrong PINs; redemption is locked for 15 minutes",
                        ));
                    }
                    match (pin, &m.pin_hash) {
                        (None, _) => return Err(Error::new(Code::PinRequired, "this reward needs the member's PIN")),
                        (Some(_), None) => {
                            return Err(Error::new(
                                Code::PinRequired,
                                "this reward needs a PIN and the member has none set",
                            ))
                        }
                        (Some(p), Some(h))
                            if ahead
                                .as_ref()
                                .filter(|a| a.phc == *h)
                                .map_or_else(|| crate::pin::verify(p, h), |a| a.right) =>
                        {
                            pin_verified = true
                        }
                        (Some(_), Some(_)) => {
                            bodies.push(Body::PinFail {
                                member_id: m.member_id.clone(),
                            });
                            return Ok((bodies, Outcome::Refused(Error::new(Code::PinInvalid, "wrong PIN"))));
                        }
                    }
                }
                if self.cfg.offline_cap
                    && m.unacked_redeemed(self.acked()?.seq) + reward.points > red.offline_cap_points
                {
                    return Err(Error::new(
                        Code::OfflineCapExceeded,
                        "this member's offline redemption cap is reached until the hub confirms earlier ones",
                    ));
                }
                let id = self.tx_id(self.journal.last_seq() + 1 + bodies.len() as u64);
                bodies.push(Body::RewardRedeem {
                    redemption_id: id.clone(),
                    member_id: m.member_id.clone(),
                    sku: sku.to_string(),
                    points: reward.points,
                    pin_verified,
                });
                Ok((bodies, Outcome::Done(id, left - 1)))
            },
            |_, rules, outcome| match outcome {
                Outcome::Refused(e) => Err(e),
                Outcome::Done(redemption_id, stock_left) => {
                    let (m, _) = self.member_by_card(&card)?;
                    Ok(RewardView {
                        redemption_id,
                        member_id: m.member_id.clone(),
                        sku: sku.to_string(),
                        points: rules.reward(sku).map_or(0, |r| r.points),
                        balance: m.balance_at(at.ts, at.trusted),
                        stock_left,
                    })
                }
            },
        )
    }

    /// The daily expiry pass: an `expire` record for every member with lots gone at
    /// `at`. Does nothing while the clock is untrusted. Returns the members touched.
    pub fn expire_all(&self, at: At) -> Result<u64> {
        if !at.trusted {
            return Ok(0);
        }
        let mut due = Vec::new();
        for id in self.store.member_ids()? {
            if let Some(m) = self.store.member(&id)? {
                if m.has_expired_lots(at.ts) {
                    due.push(id);
                }
            }
        }
        let n = due.len() as u64;
        for chunk in due.chunks(256) {
            self.commit(
                at,
                |store, _| {
                    // Re-check under the writer lock: a checkout may have expired them already.
                    let mut bodies = Vec::new();
                    for id in chunk {
                        if store.member(id)?.is_some_and(|m| m.has_expired_lots(at.ts)) {
                            bodies.push(Body::Expire { member_id: id.clone() });
                        }
                    }
                    Ok((bodies, ()))
                },
                |_, _, _| Ok(()),
            )?;
        }
        Ok(n)
    }

    /// Proves the writer is not stuck (for the systemd watchdog).
    pub fn probe(&self) -> Result<()> {
        let _guard = self
            .writer
            .lock()
            .map_err(|_| Error::internal("writer lock poisoned"))?;
        self.store.applied().map(|_| ())
    }

    /// Writes sled's buffers (on shutdown; the journal already holds everything).
    pub fn flush(&self) -> Result<()> {
        self.store.flush()
    }
}

/// Rebuilds the state store of a data dir from its journal: into a new directory, which
/// then replaces the old one (moved aside, never deleted). Returns records applied.
pub fn rebuild(cfg: &EngineConfig) -> Result<(u64, String)> {
    let _lock = DirLock::take(&cfg.data_dir)?;
    let (journal, _) = Journal::open(&journal_path(&cfg.data_dir))?;
    // Built aside first: the old store stays in place until the new one is whole.
    let n = build_aside(cfg, &Arc::new(journal))?;
    let dir = state_path(&cfg.data_dir);
    let note = if dir.exists() {
        move_aside(&dir, "rebuild asked for")?
    } else {
        "no state store was there".to_string()
    };
    let fresh = rebuild_path(&cfg.data_dir);
    std::fs::rename(&fresh, &dir).map_err(|e| Error::internal(format!("{}: {e}", dir.display())))?;
    Ok((n, note))
}

fn rebuild_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state.rebuild")
}

/// Builds the state from the whole journal into `state.rebuild/` (a leftover of an
/// interrupted build is removed first), in the store's bulk mode; returns the records
/// applied. Until it is renamed into place the directory is never used.
fn build_aside(cfg: &EngineConfig, journal: &Arc<Journal>) -> Result<u64> {
    let fresh = rebuild_path(&cfg.data_dir);
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(|e| Error::internal(format!("{}: {e}", fresh.display())))?;
    }
    let store = Store::build(&fresh, cfg.cache_bytes.max(64 << 20), cfg.hub, journal.clone())
        .map_err(|e| Error::internal(e.0))?;
    let n = replay(journal, &store, 1)?;
    store.flush()?;
    Ok(n)
}

/// Builds the state from the whole journal and puts it at `state/` (which must not
/// exist: the caller moved the old one aside).
fn build_state(cfg: &EngineConfig, journal: &Arc<Journal>) -> Result<u64> {
    let n = build_aside(cfg, journal)?;
    let dir = state_path(&cfg.data_dir);
    std::fs::rename(rebuild_path(&cfg.data_dir), &dir)
        .map_err(|e| Error::internal(format!("{}: {e}", dir.display())))?;
    Ok(n)
}

/// The id of the transaction (checkout, refund, reward) journal record `seq` holds:
/// terminal, install epoch, seq. The seq is zero-padded so that ids sort in the order
/// they were made, which keeps the store's inserts at the end of its key range.
pub fn tx_id(terminal: &str, epoch: u64, seq: u64) -> String {
    format!("{terminal}-{:08x}-{seq:010}", epoch as u32)
}

/// Phones are kept as digits with an optional leading `+`; spaces and dashes dropped.
/// `pub` (hidden) only for the fuzz targets in fuzz/.
#[doc(hidden)]
pub fn normalise_phone(raw: &str) -> Result<String> {
    let p: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let digits = p.strip_prefix('+').unwrap_or(&p);
    if (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(p)
    } else {
        Err(Error::invalid(format!("bad phone number {raw:?}")))
    }
}

/// What makes two checkout requests "the same" for idempotency: the card, the lines, the
/// redemption and the coupon (not the instant, which a retry changes; not the PIN).
fn request_hash(sale: &Sale) -> [u8; 32] {
    let canonical = (
        canonical_card(&sale.card).unwrap_or_else(|_| sale.card.clone()),
        &sale.lines,
        sale.redeem_points.unwrap_or(0),
        sale.coupon.as_ref().map(|c| c.trim().to_ascii_uppercase()),
    );
    let bytes = postcard::to_allocvec(&canonical).expect("request encodes");
    Sha256::digest(&bytes).into()
}
