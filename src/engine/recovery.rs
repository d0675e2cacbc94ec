//! Opening a data directory: its lock, the journal's recovery, a state store that can
//! be believed (or is rebuilt), the replay of the journal's tail; and `rebuild`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{EngineConfig, Startup};
use crate::error::{Code, Error, Result};
use crate::journal::Journal;
use crate::record::Record;
use crate::store::{self, Store};

/// Exclusive use of a data directory: the daemon and offline commands never share one.
pub(super) struct DirLock(#[allow(dead_code)] File);

impl DirLock {
    pub(super) fn take(dir: &Path) -> Result<DirLock> {
        let path = dir.join("LOCK");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        // SAFETY: flock only inspects the descriptor, which `f` keeps open.
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

pub fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("journal.log")
}

fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state")
}

fn rebuild_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state.rebuild")
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

/// The state store of a data dir, believed and brought up to the journal's end. One
/// that is missing, is not to be believed (see `store::trust`: in use when the machine
/// went down, or a fault seen in it), will not open, claims records the journal does
/// not have, or fails while the journal's tail is replayed into it, is moved aside and
/// rebuilt from the journal. Says what it did in `startup`.
pub(super) fn open_state(cfg: &EngineConfig, journal: &Arc<Journal>, startup: &mut Startup) -> Result<Store> {
    let dir = state_path(&cfg.data_dir);
    let records = journal.last_seq();
    if !dir.exists() && records > 0 {
        // Lost (or deleted) with a journal to rebuild from: the fast way.
        let built = build_state(cfg, journal)?;
        startup.rebuilt = Some(format!(
            "{} was missing; rebuilt it from the journal ({built} records)",
            dir.display()
        ));
        startup.replayed = built;
    }
    let problem = match Store::open(&dir, cfg.cache_bytes, cfg.hub, journal.clone()) {
        Err(e) => format!("the state store cannot be used: {}", e.0),
        Ok(store) => match store.applied()?.seq {
            seq if seq > records => format!(
                "{} reflects record {seq} but the journal ends at {records}",
                dir.display()
            ),
            seq => match replay(journal, &store, seq + 1) {
                Ok(n) => {
                    startup.replayed += n;
                    return Ok(store);
                }
                Err(e) => format!("replaying the journal's tail into the state store failed: {e}"),
            },
        },
    };
    let aside = store::move_aside(&dir, &problem)
        .map_err(|e| Error::internal(format!("cannot move {} aside: {e}", dir.display())))?;
    let built = build_state(cfg, journal)?;
    startup.rebuilt = Some(format!("{aside}; rebuilt it from the journal ({built} records)"));
    startup.replayed = built;
    Store::open(&dir, cfg.cache_bytes, cfg.hub, journal.clone()).map_err(|e| Error::internal(e.0))
}

/// Rebuilds the state store of a data dir from its journal: into a new directory, which
/// then replaces the old one (moved aside). Returns records applied and what happened.
pub fn rebuild(cfg: &EngineConfig) -> Result<(u64, String)> {
    let _lock = DirLock::take(&cfg.data_dir)?;
    let (journal, _) = Journal::open(&journal_path(&cfg.data_dir))?;
    // Built aside first: the old store stays in place until the new one is whole.
    let n = build_aside(cfg, &Arc::new(journal))?;
    let dir = state_path(&cfg.data_dir);
    let note = if dir.exists() {
        store::move_aside(&dir, "rebuild asked for")
            .map_err(|e| Error::internal(format!("cannot move {} aside: {e}", dir.display())))?
    } else {
        "no state store was there".to_string()
    };
    store::install(&rebuild_path(&cfg.data_dir), &dir)
        .map_err(|e| Error::internal(format!("{}: {e}", dir.display())))?;
    Ok((n, note))
}

/// Builds the state from the whole journal into `state.rebuild/` (a leftover of an
/// interrupted build is removed first), in the store's bulk mode, and makes it
/// durable; returns the records applied. Until it is renamed into place the directory
/// is never used.
fn build_aside(cfg: &EngineConfig, journal: &Arc<Journal>) -> Result<u64> {
    let fresh = rebuild_path(&cfg.data_dir);
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(|e| Error::internal(format!("{}: {e}", fresh.display())))?;
    }
    let store = Store::build(&fresh, cfg.cache_bytes.max(64 << 20), cfg.hub, journal.clone())
        .map_err(|e| Error::internal(e.0))?;
    let n = replay(journal, &store, 1)?;
    store.close()?;
    Ok(n)
}

/// Builds the state from the whole journal and puts it at `state/` (which must not
/// exist: the caller moved the old one aside).
fn build_state(cfg: &EngineConfig, journal: &Arc<Journal>) -> Result<u64> {
    let n = build_aside(cfg, journal)?;
    let dir = state_path(&cfg.data_dir);
    store::install(&rebuild_path(&cfg.data_dir), &dir)
        .map_err(|e| Error::internal(format!("{}: {e}", dir.display())))?;
    Ok(n)
}
