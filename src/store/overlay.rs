//! Write-behind between `apply` and sled.
//!
//! sled is expensive per write (every batch goes through its log and its background
//! writer), while the journal has already made every change durable. So applied
//! changes land in memory first, and a flusher thread writes them to sled in large
//! batches, each carrying the applied position it reaches. Reads look at the pending
//! changes before sled, so they always see the state of the last record applied.
//! A batch is written through a redo log (see `redo`), so after a crash sled holds an
//! earlier prefix of the journal and start-up replays the rest: exactly what the store
//! already promises.
//!
//! A store being built from scratch (`rebuild`, into a directory nobody uses until it
//! is complete) runs in bulk mode instead: no timer, a batch only when the pending
//! values reach `bulk_bytes()`, and each batch written key by key in key order (sled's
//! own batches go in hash order, and a sled insert costs several times more at a
//! random place than next to the previous one), without the redo log. Such a batch is
//! not atomic, which does not matter for a directory that is thrown away unless the
//! build completes.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::redo::{self, Redo};
use super::Changes;
use crate::error::Result;

/// The flusher writes at least this often while changes are pending.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// ... and at once when this many keys are pending.
const FLUSH_KEYS: usize = 4096;
/// Writers wait for the flusher when this many keys are pending and a batch is
/// already on its way (bounds memory).
const MAX_PENDING_KEYS: usize = 16 * FLUSH_KEYS;
/// Bulk mode: a batch when the pending keys and values take this many bytes (and
/// writers wait at this much while a batch is on its way): memory for speed, as a
/// member changed by many records of a rebuild is then written to sled once or twice
/// and mostly read from memory. A twenty-fourth of the machine's memory, within
/// 16-64 MiB: 64 MiB from 1.5 GiB up, 21 MiB on a 512 MiB Pi Zero 2. Pending, landing
/// and kept batches with the maps' own overhead make the peak about 5 times this.
fn bulk_bytes() -> usize {
    // SAFETY: sysconf only reads system configuration.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    let ram = (pages.max(0) as u64).saturating_mul(page.max(0) as u64);
    (ram / 24).clamp(16 << 20, 64 << 20) as usize
}

struct Pending {
    /// Applied since the last hand-off to the flusher (newest).
    fresh: Changes,
    /// Bytes of the keys and values in `fresh`.
    fresh_bytes: usize,
    /// Handed to sled and being written; still read from until it has landed.
    landing: Option<Arc<Changes>>,
    /// Bulk mode: the batch that landed last, still read from (a rebuild touches the
    /// same members again and again, and a sled read is the slow part of a record).
    kept: Option<Arc<Changes>>,
    /// Values recently read from sled: a commit reads its member to decide and again to
    /// apply, and a sled read that misses its page cache is the slow part of a commit.
    /// Dropped for every key a merge changes.
    recent: Changes,
    /// Bumped by every merge, so that a value read from sled while a merge went by is
    /// not remembered (it may be older than what the merge brought).
    generation: u64,
    stop: bool,
}

/// Values read from sled that are remembered, at most (then the memory starts over).
const RECENT_KEYS: usize = 1024;

pub(super) struct Overlay {
    /// Bulk mode (see the module docs), fixed at creation.
    bulk: bool,
    /// Bulk mode: `bulk_bytes()`.
    bulk_bytes: usize,
    pending: Mutex<Pending>,
    /// Wakes the flusher (many keys pending, stop) and writers held back (batch landed).
    cv: Condvar,
    /// One batch is written at a time, by the flusher or by `settled`.
    writing: Mutex<()>,
    /// Makes a batch atomic (not used in bulk mode).
    redo: Redo,
}

impl Overlay {
    pub(super) fn new(bulk: bool, redo: Redo) -> Overlay {
        Overlay {
            bulk,
            bulk_bytes: if bulk { bulk_bytes() } else { 0 },
            pending: Mutex::new(Pending {
                fresh: Changes::default(),
                fresh_bytes: 0,
                landing: None,
                kept: None,
                recent: Changes::default(),
                generation: 0,
                stop: false,
            }),
            cv: Condvar::new(),
            writing: Mutex::new(()),
            redo,
        }
    }

    /// Forgets the values remembered from sled (tests that change sled under it).
    #[cfg(test)]
    pub(super) fn forget_recent(&self) {
        self.lock().recent.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest value of `key`: pending changes first, then sled.
    pub(super) fn get(&self, db: &sled::Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(db, key, |v| Ok(v.map(<[u8]>::to_vec)))
    }

    /// `f` of the newest value of `key`, without copying a pending value out first
    /// (`f` runs under the overlay's lock: keep it short, a decode).
    pub(super) fn get_with<T>(
        &self,
        db: &sled::Db,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Result<T>,
    ) -> Result<T> {
        let generation = {
            let p = self.lock();
            let pending = p
                .fresh
                .get(key)
                .or_else(|| p.landing.as_ref().and_then(|l| l.get(key)))
                .or_else(|| p.kept.as_ref().and_then(|l| l.get(key)))
                .or_else(|| p.recent.get(key));
            if let Some(v) = pending {
                return f(v.as_deref());
            }
            p.generation
        };
        let v = db.get(key)?;
        let out = f(v.as_deref());
        let mut p = self.lock();
        if p.generation == generation {
            if p.recent.len() >= RECENT_KEYS {
                p.recent.clear();
            }
            p.recent.insert(key.to_vec(), v.map(|v| v.to_vec()));
        }
        out
    }

    /// Enough is pending for a batch now.
    fn due(&self, p: &Pending) -> bool {
        if self.bulk {
            p.fresh_bytes >= self.bulk_bytes
        } else {
            p.fresh.len() >= FLUSH_KEYS
        }
    }

    /// So much is pending that writers wait for the batch on its way.
    fn full(&self, p: &Pending) -> bool {
        p.landing.is_some()
            && if self.bulk {
                p.fresh_bytes >= self.bulk_bytes
            } else {
                p.fresh.len() >= MAX_PENDING_KEYS
            }
    }

    /// Makes `changes` visible to readers and queues them for sled, as one step.
    pub(super) fn merge(&self, changes: Changes) {
        let mut p = self.lock();
        while self.full(&p) {
            p = self.cv.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        p.generation += 1;
        if !p.recent.is_empty() {
            for k in changes.keys() {
                p.recent.remove(k);
            }
        }
        let size = |k: &Vec<u8>, v: &Option<Vec<u8>>| k.len() + v.as_ref().map_or(0, Vec::len);
        for (k, v) in changes {
            p.fresh_bytes += size(&k, &v);
            let key_len = k.len();
            if let Some(old) = p.fresh.insert(k, v) {
                p.fresh_bytes -= key_len + old.map_or(0, |o| o.len());
            }
        }
        if self.due(&p) {
            self.cv.notify_all();
        }
    }

    /// Writes what is pending to sled as one atomic batch.
    pub(super) fn flush_once(&self, db: &sled::Db) -> Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_locked(db)
    }

    /// Writes what is pending to sled, then runs `f` while no batch can start, so that
    /// a scan of sled in `f` sees one state throughout: that of the last record applied
    /// when it began (sled's iterators alone would see batches landing mid-scan).
    pub(super) fn settled<T>(&self, db: &sled::Db, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_locked(db)?;
        f()
    }

    /// `flush_once` with the `writing` lock held.
    fn flush_locked(&self, db: &sled::Db) -> Result<()> {
        let batch_src = {
            let mut p = self.lock();
            if p.fresh.is_empty() {
                return Ok(());
            }
            let fresh = Arc::new(std::mem::take(&mut p.fresh));
            p.fresh_bytes = 0;
            p.landing = Some(fresh.clone());
            fresh
        };
        let written = if self.bulk {
            redo::apply(db, redo::in_key_order(&batch_src))
        } else {
            self.redo.write(db, &batch_src)
        };
        let mut p = self.lock();
        let landed = p.landing.take();
        if self.bulk && written.is_ok() {
            p.kept = landed.clone();
        }
        if written.is_err() {
            // Keep the changes (newer ones win) so that reads stay right; retry later.
            if let Some(l) = landed {
                for (k, v) in l.iter() {
                    if !p.fresh.contains_key(k) {
                        p.fresh_bytes += k.len() + v.as_ref().map_or(0, Vec::len);
                        p.fresh.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        self.cv.notify_all();
        written
    }

    /// The flusher thread's loop: a batch every `FLUSH_EVERY` (not in bulk mode), or
    /// sooner when enough is pending; a last one on stop.
    pub(super) fn run_flusher(&self, db: &sled::Db, on_error: &dyn Fn(crate::error::Error)) {
        loop {
            let stop = {
                let mut p = self.lock();
                loop {
                    if p.stop || self.due(&p) {
                        break;
                    }
                    let (next, waited) = self.cv.wait_timeout(p, FLUSH_EVERY).unwrap_or_else(|e| e.into_inner());
                    p = next;
                    if waited.timed_out() && !self.bulk && !p.fresh.is_empty() {
                        break;
                    }
                }
                p.stop
            };
            if let Err(e) = self.flush_once(db) {
                tracing::error!("state store: writing to sled failed (kept in memory, will retry): {e}");
                on_error(e);
                if stop {
                    return;
                }
                std::thread::sleep(FLUSH_EVERY);
            }
            if stop {
                return;
            }
        }
    }

    pub(super) fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_all();
    }
}
