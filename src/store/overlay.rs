//! Write-behind between `apply` and sled.
//!
//! sled is expensive per write (every batch goes through its log and its background
//! writer), while the journal has already made every change durable. So applied
//! changes land in memory first, and a flusher thread writes them to sled in large
//! batches, each carrying the applied position it reaches. Reads look at the pending
//! changes before sled, so they always see the state of the last record applied.
//! After a crash sled holds an earlier prefix of the journal (a batch is atomic) and
//! start-up replays the rest: exactly what the store already promises.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result};

/// Changes by key: `Some(value)` to write, `None` to remove.
pub(super) type Changes = HashMap<Vec<u8>, Option<Vec<u8>>>;

/// The flusher writes at least this often while changes are pending.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// ... and at once when this many keys are pending.
const FLUSH_KEYS: usize = 4096;
/// Writers wait for the flusher when this many keys are pending and a batch is
/// already on its way (bounds memory during a rebuild).
const MAX_PENDING_KEYS: usize = 16 * FLUSH_KEYS;

struct Pending {
    /// Applied since the last hand-off to the flusher (newest).
    fresh: Changes,
    /// Handed to sled and being written; still read from until it has landed.
    landing: Option<Arc<Changes>>,
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
    pending: Mutex<Pending>,
    /// Wakes the flusher (many keys pending, stop) and writers held back (batch landed).
    cv: Condvar,
    /// One batch is written at a time, by the flusher or by `settle`.
    writing: Mutex<()>,
}

impl Overlay {
    pub(super) fn new() -> Overlay {
        Overlay {
            pending: Mutex::new(Pending {
                fresh: Changes::new(),
                landing: None,
                recent: Changes::new(),
                generation: 0,
                stop: false,
            }),
            cv: Condvar::new(),
            writing: Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest value of `key`: pending changes first, then sled.
    pub(super) fn get(&self, db: &sled::Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let generation = {
            let p = self.lock();
            if let Some(v) = p.fresh.get(key) {
                return Ok(v.clone());
            }
            if let Some(v) = p.landing.as_ref().and_then(|l| l.get(key)) {
                return Ok(v.clone());
            }
            if let Some(v) = p.recent.get(key) {
                return Ok(v.clone());
            }
            p.generation
        };
        let v = db.get(key)?.map(|v| v.to_vec());
        let mut p = self.lock();
        if p.generation == generation {
            if p.recent.len() >= RECENT_KEYS {
                p.recent.clear();
            }
            p.recent.insert(key.to_vec(), v.clone());
        }
        Ok(v)
    }

    /// Makes `changes` visible to readers and queues them for sled, as one step.
    pub(super) fn merge(&self, changes: Changes) {
        let mut p = self.lock();
        while p.fresh.len() >= MAX_PENDING_KEYS && p.landing.is_some() {
            p = self.cv.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        p.generation += 1;
        if !p.recent.is_empty() {
            for k in changes.keys() {
                p.recent.remove(k);
            }
        }
        if p.fresh.is_empty() {
            p.fresh = changes;
        } else {
            p.fresh.extend(changes);
        }
        if p.fresh.len() >= FLUSH_KEYS {
            self.cv.notify_all();
        }
    }

    /// Writes what is pending to sled as one atomic batch.
    pub(super) fn flush_once(&self, db: &sled::Db) -> Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let batch_src = {
            let mut p = self.lock();
            if p.fresh.is_empty() {
                return Ok(());
            }
            let fresh = Arc::new(std::mem::take(&mut p.fresh));
            p.landing = Some(fresh.clone());
            fresh
        };
        let mut batch = sled::Batch::default();
        for (k, v) in batch_src.iter() {
            match v {
                Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                None => batch.remove(k.as_slice()),
            }
        }
        let written = db.apply_batch(batch).map_err(Error::from);
        let mut p = self.lock();
        let landed = p.landing.take();
        if written.is_err() {
            // Keep the changes (newer ones win) so that reads stay right; retry later.
            if let Some(l) = landed {
                for (k, v) in l.iter() {
                    p.fresh.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        self.cv.notify_all();
        written
    }

    /// The flusher thread's loop: a batch every `FLUSH_EVERY`, or sooner when many
    /// keys are pending; a last one on stop.
    pub(super) fn run_flusher(&self, db: &sled::Db) {
        loop {
            let stop = {
                let p = self.lock();
                let (p, _) = self
                    .cv
                    .wait_timeout_while(p, FLUSH_EVERY, |p| !p.stop && p.fresh.len() < FLUSH_KEYS)
                    .unwrap_or_else(|e| e.into_inner());
                p.stop
            };
            if let Err(e) = self.flush_once(db) {
                tracing::error!("state store: writing to sled failed (kept in memory, will retry): {e}");
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
