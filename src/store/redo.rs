//! Crash atomicity for the flusher's batches, without `sled::Tree::apply_batch`.
//!
//! sled 0.34 makes a batch atomic by logging it between two markers, which is cheap,
//! but `apply_batch` also takes sled's process-wide concurrency-control lock for
//! writing, and from the first such call on every `get` in the process takes that lock
//! for reading. A batch of a few thousand keys then stalls every read for milliseconds,
//! and longer when the batch waits behind sled's own periodic flush (which holds the
//! lock for reading while it writes and syncs its log). With 1M members, about half of
//! the 1-client commits the daemon timed over 1 ms had waited 1-4 ms in such a read;
//! with the redo log none or nearly none do (`bench_api`, README "Measured figures").
//!
//! The overlay needs no isolation from sled (it serves a landing batch's keys itself);
//! it needs only that a crash leaves sled at a journal prefix. So a batch is written as
//! a redo log in a tree of its own, then key by key, then the redo log is removed:
//!
//! 1. the batch's entries, in key order, as chunks `c<n>` of about 32 KiB;
//! 2. the commit mark `n` holding the number of chunks;
//! 3. every key of the batch, one insert or remove at a time, in key order;
//! 4. the mark, then the chunks, removed.
//!
//! sled recovers a prefix of the operations a single thread made (they are ordered in
//! its one log, and recovery stops at the first gap; its crash tests check exactly
//! this). A crash before the mark leaves no key of the batch in sled, only stray
//! chunks; a crash after it leaves the whole batch in the redo log. Opening the store
//! re-applies a marked redo log (the values are whole values, so applying twice is
//! harmless) and drops stray chunks.

use super::{dec, enc, Changes};
use crate::error::{Error, Result};

/// The name of the redo log's sled tree.
const TREE: &[u8] = b"redo";
/// The commit mark: the number of chunks, present only while a batch is being applied.
const MARK: &[u8] = b"n";
/// Chunks: `c` and the chunk's index, big-endian.
const CHUNK: u8 = b'c';
/// A chunk ends after the entry that takes it past this many bytes (well under sled's
/// blob threshold, a quarter of its 512 KiB segments, so chunks stay in its log).
const CHUNK_BYTES: usize = 32 << 10;

fn chunk_key(i: u32) -> [u8; 5] {
    let [a, b, c, d] = i.to_be_bytes();
    [CHUNK, a, b, c, d]
}

pub(super) struct Redo {
    tree: sled::Tree,
}

impl Redo {
    pub(super) fn open(db: &sled::Db) -> sled::Result<Redo> {
        Ok(Redo {
            tree: db.open_tree(TREE)?,
        })
    }

    /// Writes `changes` to `db` so that a crash leaves either none of them or (after
    /// [`Redo::recover`]) all of them.
    pub(super) fn write(&self, db: &sled::Db, changes: &Changes) -> Result<()> {
        let (sorted, chunks) = self.stage(changes)?;
        apply(db, sorted)?;
        self.clear(chunks)
    }

    /// [`Redo::write`] cut short after `keys` keys of step 3, as by a crash.
    #[cfg(test)]
    pub(super) fn write_cut_short(&self, db: &sled::Db, changes: &Changes, keys: usize) -> Result<()> {
        let (sorted, _) = self.stage(changes)?;
        apply(db, sorted.into_iter().take(keys))
    }

    /// Steps 1 and 2: the redo log and its mark. Returns the entries in key order and
    /// the number of chunks.
    fn stage<'a>(&self, changes: &'a Changes) -> Result<(Vec<Change<'a>>, u32)> {
        let sorted = in_key_order(changes);
        let (mut chunks, mut start, mut bytes) = (0u32, 0, 0);
        for (i, (k, v)) in sorted.iter().enumerate() {
            bytes += k.len() + v.as_ref().map_or(0, Vec::len);
            if bytes >= CHUNK_BYTES || i + 1 == sorted.len() {
                self.tree.insert(chunk_key(chunks), enc(&&sorted[start..=i]))?;
                chunks += 1;
                (start, bytes) = (i + 1, 0);
            }
        }
        self.tree.insert(MARK, enc(&chunks))?;
        Ok((sorted, chunks))
    }

    /// Removes the mark, then the chunks below `chunks`.
    fn clear(&self, chunks: u32) -> Result<()> {
        self.tree.remove(MARK)?;
        for i in 0..chunks {
            self.tree.remove(chunk_key(i))?;
        }
        Ok(())
    }

    /// Completes a batch a crash cut short, and drops the chunks of one that never got
    /// its mark. Returns the number of keys re-applied. A marked redo log that cannot
    /// be read is an error: sled then holds part of a batch and no way to finish it.
    pub(super) fn recover(&self, db: &sled::Db) -> Result<usize> {
        let mut applied = 0;
        if let Some(mark) = self.tree.get(MARK)? {
            let chunks: u32 = dec("redo mark", &mark)?;
            for i in 0..chunks {
                let chunk = self
                    .tree
                    .get(chunk_key(i))?
                    .ok_or_else(|| Error::internal(format!("state store: redo chunk {i} of {chunks} is missing")))?;
                let entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = dec("redo chunk", &chunk)?;
                apply(db, entries.iter().map(|(k, v)| (k, v)))?;
                applied += entries.len();
            }
        }
        // The mark, then stray chunks (of a crash before the mark or after its removal).
        let mut stray = self.tree.remove(MARK)?.is_some();
        for kv in self.tree.iter() {
            self.tree.remove(kv?.0)?;
            stray = true;
        }
        if stray {
            db.flush()?;
        }
        Ok(applied)
    }
}

/// A key and its change, borrowed from a batch.
pub(super) type Change<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);

/// The changes of a batch in key order: sled inserts next to the previous key cost
/// several times less than at random places.
pub(super) fn in_key_order(changes: &Changes) -> Vec<Change<'_>> {
    let mut sorted: Vec<Change<'_>> = changes.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    sorted
}

/// Writes changes to `db` one by one.
pub(super) fn apply<'a>(db: &sled::Db, changes: impl IntoIterator<Item = Change<'a>>) -> Result<()> {
    for (k, v) in changes {
        match v {
            Some(v) => db.insert(k.as_slice(), v.as_slice())?,
            None => db.remove(k.as_slice())?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn open(dir: &std::path::Path) -> (sled::Db, Redo) {
        // The store's own settings: its buffering decides where a crash cuts.
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(1000))
            .open()
            .unwrap();
        let redo = Redo::open(&db).unwrap();
        (db, redo)
    }

    /// Every key of batch `g`: 3,000 keys of about 100 bytes (several chunks), the
    /// batch number in every value, and key 0 removed in odd batches.
    fn batch(g: u64) -> Changes {
        let mut c = Changes::default();
        for i in 0u32..3000 {
            let mut v = g.to_be_bytes().to_vec();
            v.resize(100, b'x');
            c.insert(i.to_be_bytes().to_vec(), (i != 0 || g % 2 == 0).then_some(v));
        }
        c
    }

    /// The batch the whole of `db` comes from, or a panic naming the mix.
    fn whole_batch(db: &sled::Db) -> u64 {
        let mut seen = std::collections::BTreeSet::new();
        for kv in db.iter() {
            let (_, v) = kv.unwrap();
            seen.insert(u64::from_be_bytes(v[..8].try_into().unwrap()));
        }
        let Some(&one) = seen.first() else { return 0 };
        assert!(seen.len() <= 1, "sled holds a mix of batches {seen:?}");
        assert_eq!(
            db.len(),
            if one % 2 == 0 { 3000 } else { 2999 },
            "batch {one} is not whole"
        );
        one
    }

    #[test]
    fn a_batch_cut_short_is_completed_and_stray_chunks_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (db, redo) = open(dir.path());
            redo.write(&db, &batch(2)).unwrap();
            assert_eq!(redo.tree.len(), 0, "a written batch leaves no redo log");
            redo.write_cut_short(&db, &batch(3), 1000).unwrap();
            assert!(redo.tree.len() > 2, "several chunks and the mark");
            db.flush().unwrap();
        }
        let (db, redo) = open(dir.path());
        assert_eq!(redo.recover(&db).unwrap(), 3000);
        assert_eq!(whole_batch(&db), 3);
        assert_eq!(redo.tree.len(), 0);

        // Chunks without a mark: a crash before the mark. Nothing is applied.
        redo.stage(&batch(4)).unwrap();
        redo.tree.remove(MARK).unwrap();
        assert_eq!(redo.recover(&db).unwrap(), 0);
        assert_eq!(whole_batch(&db), 3);
        assert_eq!(redo.tree.len(), 0);
    }

    #[test]
    fn a_marked_redo_log_that_cannot_be_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (db, redo) = open(dir.path());
        redo.write_cut_short(&db, &batch(2), 10).unwrap();
        redo.tree.remove(chunk_key(1)).unwrap();
        let e = redo.recover(&db).unwrap_err();
        assert!(e.message.contains("redo chunk 1"), "{}", e.message);
        redo.tree.insert(chunk_key(1), b"\x01\xff".to_vec()).unwrap();
        let e = redo.recover(&db).unwrap_err();
        assert!(e.message.contains("bad redo chunk"), "{}", e.message);
    }

    /// Writes batch after batch into the directory named by the environment, printing
    /// each batch number once it is whole, until killed.
    fn crash_child(dir: &str) {
        let (db, redo) = open(std::path::Path::new(dir));
        redo.recover(&db).unwrap();
        let first = whole_batch(&db) + 1;
        for g in first.. {
            redo.write(&db, &batch(g)).unwrap();
            println!("batch {g}");
        }
    }

    const CHILD: &str = "LOYALTYD_REDO_CRASH_CHILD";

    /// SIGKILL at random instants while batches are written: sled's buffered log is
    /// lost at an arbitrary operation, and after recovery sled holds one whole batch.
    #[test]
    fn sigkill_while_writing_leaves_whole_batches() {
        if let Ok(dir) = std::env::var(CHILD) {
            crash_child(&dir);
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let me = std::env::current_exe().unwrap();
        let (mut completed, mut last) = (0, 0);
        let mut rng = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u8);
        for round in 0..12 {
            // Under emulation (scripts/qemu-aarch64-runner) the child needs the emulator too.
            let mut cmd = match std::env::var("LOYALTYD_TEST_RUNNER") {
                Ok(runner) if !runner.trim().is_empty() => {
                    let mut words = runner.split_whitespace();
                    let mut c = Command::new(words.next().unwrap_or_default());
                    c.args(words).arg(&me);
                    c
                }
                _ => Command::new(&me),
            };
            let mut child = cmd
                .args([
                    "--exact",
                    "store::redo::tests::sigkill_while_writing_leaves_whole_batches",
                ])
                .args(["--nocapture", "--test-threads", "1"])
                .env(CHILD, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // Let it write a few batches, then kill it at some point of the next ones.
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            let mut printed = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while printed < 3 {
                line.clear();
                assert!(
                    out.read_line(&mut line).unwrap() > 0,
                    "round {round}: the writer ended early"
                );
                printed += u64::from(line.starts_with("batch "));
                assert!(Instant::now() < deadline, "round {round}: no batches within 60 s");
            }
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            std::thread::sleep(Duration::from_micros(rng % 150_000));
            child.kill().unwrap();
            child.wait().unwrap();

            let (db, redo) = open(dir.path());
            completed += usize::from(redo.recover(&db).unwrap() > 0);
            let now = whole_batch(&db);
            assert!(now >= last, "round {round}: sled went back from batch {last} to {now}");
            last = now;
        }
        println!("12 kills; {completed} left a batch cut short, completed on open; at batch {last}");
    }
}
