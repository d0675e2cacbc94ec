//! The journal: the terminal's source of truth, an append-only file of
//! opaque payloads (the caller encodes them; the journal never looks inside).
//!
//! # File format, version 2 (all integers little-endian)
//!
//! ```text
//! file header, 16 bytes:
//!   0   magic    [u8; 8]  = b"LOYJRNL\0"
//!   8   version  u32      = 2 (1: written by 0.1, holds only frames of kind 1)
//!   12  reserved [u8; 4]  = 0
//! then frames back to back. A frame of kind 2 (every frame this version writes):
//!   0   len      u32       payload length (at most 1 MiB) | 1 << 31
//!   4   seq      u64       1 for the first frame, +1 for each next (no gaps)
//!   12  durable  u64       every frame up to this seq was on disk (fdatasync had
//!                          returned) when this frame was written
//!   20  hcrc     u32       CRC32 of the 20 bytes len ‖ seq ‖ durable, so `len`
//!                          can be trusted before the body is read
//!   24  prev     [u8; 32]  hash of the previous frame, all zero for seq 1
//!   56  payload  [u8; len]
//!   56+len crc   u32       CRC32 of seq ‖ prev ‖ payload
//! A frame of kind 1 (written by 0.1; bit 31 of len clear) has no `durable`:
//!   len u32, seq u64, hcrc u32 = CRC32(len ‖ seq), prev, payload, crc.
//! frame hash = SHA-256(seq ‖ prev ‖ payload), whatever the kind
//! ```
//!
//! A version 1 file opened for writing gets the version 2 header before its first
//! new frame, so that 0.1 refuses it rather than taking kind 2 frames for damage.
//! Byte offsets reported anywhere (errors, [`Truncation`]) count from the
//! start of the file, header included.
//!
//! The frames may be followed by zero bytes: the writer keeps the file zero-filled
//! [`ZERO_AHEAD`] bytes or so past the last frame, written ahead in one piece. An
//! fdatasync that only overwrites blocks the file already has needs no metadata
//! commit, while one after an append that grows the file has the filesystem commit
//! the new size every time (on ext4 here: about 25% more syncs per second, see
//! README). A zero header can never be a frame (its hcrc does not match), so the
//! zeros simply end the history.
//!
//! # Recovery rule
//!
//! A frame is acknowledged only after an fdatasync that returned after it was
//! written, and that sync covered every earlier frame too. So the frames that were
//! acknowledged form a prefix of the file, and after a power cut anything past the
//! last completed sync may be on disk in any part: a torn last write, or a ragged
//! tail where the disk kept a later write and lost an earlier one (page writeback
//! and disk caches do not keep the order). Such a tail was never acknowledged and
//! is cut. Damage to acknowledged history is not: it stops start-up.
//!
//! Telling the two apart: when the frame at offset X (seq k) fails any check, the
//! rest of the file is searched for complete valid frames (hcrc ok, seq above the
//! last good one, crc ok). If one of them says `durable >= k`, frame k had been on
//! disk before that frame was written: the damage is to acknowledged history, and
//! the file is reported corrupt at X. A frame of kind 1 found after X counts the
//! same way (0.1 recorded no watermark, so damage under it is never cut). Otherwise
//! everything from X to the last non-zero byte is an unacknowledged tail, which
//! [`Journal::open`] cuts off (with the zeros after it) and [`verify`] only
//! reports. Only zeros after X is the plain end of the history. A file shorter
//! than the header that is a prefix of a valid header (crash while creating) gets
//! its header rewritten.
//!
//! The watermark lags acknowledgement a little (it is the durable seq when a frame
//! is written), so the frames acknowledged by the very last sync before a cut are
//! covered by no later watermark: damage to exactly those (not a power-cut pattern,
//! which never touches synced data) would be taken for an unacknowledged tail.
//!
//! # Durability
//!
//! [`Journal::append`] only writes; [`Journal::wait_durable`] returns once
//! fdatasync has covered the given seq. Concurrent waiters share one
//! fdatasync (group commit). A failed write or fdatasync makes the journal
//! refuse further appends: after a failed fsync the page cache state is
//! unknown, so the only safe continuation is a reopen (which re-verifies).

mod reader;
mod scan;
#[cfg(test)]
mod tests;

pub use reader::Reader;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use sha2::{Digest, Sha256};

/// SHA-256 hash of a frame (see the module docs).
pub type Hash = [u8; 32];

/// Largest payload one frame may carry.
pub const MAX_PAYLOAD: usize = 1 << 20;

const MAGIC: [u8; 8] = *b"LOYJRNL\0";
const VERSION: u32 = 2;
/// The version of files written by 0.1, which this one reads and upgrades.
const VERSION_1: u32 = 1;
const FILE_HEADER_LEN: u64 = 16;
/// Bit 31 of the length word marks a frame of kind 2 (with the durable watermark).
const KIND_2: u32 = 1 << 31;
/// Head sizes (len, seq, [durable,] hcrc) of the two frame kinds.
const HEAD_1: usize = 16;
const HEAD_2: usize = 24;
/// The longest head plus prev: enough bytes to parse any frame's head and prev.
const MAX_HEAD_PREV: usize = HEAD_2 + 32;
/// The smallest frame there can be (kind 1, empty payload).
const MIN_FRAME: usize = HEAD_1 + 32 + 4;
/// One in-memory offset per this many frames, so `read_from` and `read` start
/// near their target (1M frames -> 15,625 entries, 122 KiB).
const INDEX_STRIDE: u64 = 64;
/// `read` fetches this much at a time while it walks from the index entry to
/// its frame: a stride of average frames in one pread.
const READ_WINDOW: usize = 32 << 10;
/// An append buffer grown beyond this by a large batch is released afterwards
/// rather than kept for the life of the daemon.
const KEEP_BUF: usize = 4 << 20;
/// When a write would run past the zero-filled part of the file, the file is
/// zero-filled to between this far and twice this far past the new last frame:
/// one size change per ~1000 commits of 250 bytes instead of one per commit. The
/// commit that extends pays for writing these zeros (a fraction of a millisecond
/// on an SSD, some milliseconds on an SD card).
pub const ZERO_AHEAD: u64 = 256 << 10;
/// A buffer of zeros to write from.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// What opening (or verifying) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Number of valid frames, i.e. the last seq.
    pub records: u64,
    /// Hash of the last valid frame, all zero if there is none.
    pub last_hash: Hash,
    /// The torn tail, if there was one (cut by `open`, only reported by `verify`).
    pub truncated: Option<Truncation>,
}

/// An unacknowledged tail: where it started, how many bytes it had (up to its last
/// non-zero byte; the zeros written ahead after it are not counted), and how many
/// complete frames it held after the first bad one (a ragged tail: a later write
/// reached the disk and an earlier one did not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub offset: u64,
    pub bytes: u64,
    pub later_frames: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: I/O error: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: corrupt journal at offset {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("payload of {0} bytes exceeds the 1 MiB record limit")]
    TooLarge(usize),
    #[error("the journal has no record {0}")]
    NoSuchRecord(u64),
}

/// An append-only, hash-chained, crash-safe record file. `Send + Sync`: share
/// it behind an `Arc`.
pub struct Journal {
    path: PathBuf,
    /// The one write handle. Written only while `state` is locked; fdatasync
    /// runs on it from `wait_durable` without that lock.
    file: File,
    state: Mutex<AppendState>,
    /// Copy of `state.last_seq`, published after the bytes are written, so the
    /// sync leader can read its target without the append lock.
    last_seq: AtomicU64,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Copy of `sync.durable_seq` for lock-free reads.
    durable_seq: AtomicU64,
    syncs: AtomicU64,
    /// Set once by a failed write or fdatasync; appends are refused after.
    append_failure: OnceLock<Failure>,
    /// Set once by a failed fdatasync; nothing becomes durable after.
    sync_failure: OnceLock<Failure>,
    #[cfg(test)]
    faults: Faults,
}

struct AppendState {
    last_seq: u64,
    last_hash: Hash,
    /// End of the last complete frame: where the next write goes.
    end: u64,
    /// The file's length: `end` plus the zeros written ahead.
    zeroed_to: u64,
    /// Reused across appends so a batch costs one allocation at most.
    buf: Vec<u8>,
    /// index[i] = offset of the frame with seq i * INDEX_STRIDE + 1.
    index: Vec<u64>,
}

struct SyncState {
    durable_seq: u64,
    /// A leader is inside fdatasync; others wait for its result.
    syncing: bool,
}

/// A sticky failure. io::Error is not Clone, so keep what is needed to hand a
/// fresh one to every caller.
struct Failure {
    kind: io::ErrorKind,
    what: String,
}

/// Test-only switches that make the next write or fdatasync fail.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) fail_write: std::sync::atomic::AtomicBool,
    pub(crate) fail_sync: std::sync::atomic::AtomicBool,
    /// Makes every fdatasync take this long, to widen race windows.
    pub(crate) sync_delay_ms: AtomicU64,
    /// fdatasyncs in progress, and whether two ever ran at once.
    pub(crate) in_sync: AtomicU64,
    pub(crate) overlapped: std::sync::atomic::AtomicBool,
}

impl Journal {
    /// Opens or creates the journal at `path`, verifying every frame (header
    /// crc, crc, seq continuity, hash chain). A torn tail is cut off and
    /// reported in [`Recovery::truncated`]; any other damage is
    /// [`JournalError::Corrupt`] at the offset of the first bad frame, and the
    /// file is left as it was. Takes an exclusive `flock` on the file, so a
    /// second open (from this or another process) fails with `WouldBlock`
    /// while the first journal is alive.
    pub fn open(path: &Path) -> Result<(Journal, Recovery), JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = open_or_create(path).map_err(io_err)?;
        // Lock before looking: cutting a tail another writer is producing
        // would destroy acknowledged data.
        lock_exclusive(&file).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();

        let (scanned, truncated, zeroed_to) = match scan::check_header(path, &file, len)? {
            scan::Header::Partial(n) => {
                // Empty or a crash while the header was being written.
                file.write_all_at(&file_header(), 0).map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                // The directory entry may be as new as the file.
                crate::os::sync_parent(path).map_err(io_err)?;
                let cut = (n > 0).then_some(Truncation {
                    offset: 0,
                    bytes: n,
                    later_frames: 0,
                });
                (scan::Scan::empty(), cut, FILE_HEADER_LEN)
            }
            scan::Header::Complete(version) => {
                let scanned = scan::scan(path, &file, len)?;
                if version == VERSION_1 {
                    // Before any frame of kind 2 goes in (see the module docs); made
                    // durable by the sync just below.
                    file.write_all_at(&file_header(), 0).map_err(io_err)?;
                }
                let zeroed_to = match &scanned.torn {
                    Some(t) => {
                        file.set_len(t.offset).map_err(io_err)?;
                        // sync_all: the size change is metadata.
                        file.sync_all().map_err(io_err)?;
                        t.offset
                    }
                    None => {
                        // What we read may be only in the page cache (the last
                        // writer was killed before syncing); make it durable so
                        // durable_seq starts out true.
                        file.sync_data().map_err(io_err)?;
                        len
                    }
                };
                let torn = scanned.torn.clone();
                (scanned, torn, zeroed_to)
            }
        };

        let recovery = Recovery {
            records: scanned.records,
            last_hash: scanned.last_hash,
            truncated,
        };
        let journal = Journal {
            path: path.to_path_buf(),
            file,
            state: Mutex::new(AppendState {
                last_seq: scanned.records,
                last_hash: scanned.last_hash,
                end: scanned.end,
                zeroed_to,
                buf: Vec::new(),
                index: scanned.index,
            }),
            last_seq: AtomicU64::new(scanned.records),
            sync: Mutex::new(SyncState {
                durable_seq: scanned.records,
                syncing: false,
            }),
            synced: Condvar::new(),
            durable_seq: AtomicU64::new(scanned.records),
            syncs: AtomicU64::new(0),
            append_failure: OnceLock::new(),
            sync_failure: OnceLock::new(),
            #[cfg(test)]
            faults: Faults::default(),
        };
        Ok((journal, recovery))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fault switches, for the tests of the modules above.
    #[cfg(test)]
    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Seq of the last frame written (maybe not yet durable); 0 if none.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// Every frame with seq <= this is on disk.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// Hash of the last frame written; all zero if none.
    pub fn last_hash(&self) -> Hash {
        lock(&self.state).last_hash
    }

    /// Number of fdatasync calls made by [`Journal::wait_durable`] (group
    /// commit leaders); the syncs done inside `open` are not counted.
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Writes one frame per payload with a single write (not yet durable) and
    /// returns the seq of the first. An empty batch writes nothing and returns
    /// the seq the next frame will get. Nothing is written if any payload is
    /// over [`MAX_PAYLOAD`].
    pub fn append(&self, payloads: &[&[u8]]) -> Result<u64, JournalError> {
        if let Some(p) = payloads.iter().find(|p| p.len() > MAX_PAYLOAD) {
            return Err(JournalError::TooLarge(p.len()));
        }
        let mut guard = lock(&self.state);
        if let Some(f) = self.append_failure.get() {
            return Err(self.failure_error(f));
        }
        let st = &mut *guard;
        let first = st.last_seq + 1;
        if payloads.is_empty() {
            return Ok(first);
        }

        st.buf.clear();
        let mut seq = st.last_seq;
        let mut hash = st.last_hash;
        // Every frame up to here is on disk; the new frames say so (recovery rule).
        let durable = self.durable_seq();
        let index_len = st.index.len();
        for payload in payloads {
            if seq % INDEX_STRIDE == 0 {
                st.index.push(st.end + st.buf.len() as u64);
            }
            seq += 1;
            hash = encode_frame(&mut st.buf, seq, durable, &hash, payload);
        }

        let new_end = st.end + st.buf.len() as u64;
        if new_end > st.zeroed_to {
            st.zeroed_to = self.zero_fill(st.zeroed_to, new_end);
        }
        if let Err(e) = self.write_at(&st.buf, st.end) {
            // Part of the batch may be in the file; try to cut it so a later
            // reopen does not have to treat it as a torn tail. Either way the
            // in-memory view no longer matches the file: refuse appends.
            st.index.truncate(index_len);
            let cut = match self.file.set_len(st.end) {
                Ok(()) => {
                    st.zeroed_to = st.end;
                    String::from("partial write removed")
                }
                Err(c) => format!("removing the partial write failed too: {c}"),
            };
            self.fail_appends(e.kind(), format!("write failed: {e} ({cut})"));
            return Err(self.io_error(e));
        }

        st.end = new_end;
        st.last_seq = seq;
        st.last_hash = hash;
        self.last_seq.store(seq, Ordering::Release);
        if st.buf.capacity() > KEEP_BUF {
            st.buf = Vec::new();
        }
        Ok(first)
    }

    /// Blocks until every frame with seq <= `seq` is on disk.
    ///
    /// Group commit: if no fdatasync is running, the caller becomes the
    /// leader, takes the current last_seq as its target, syncs without the
    /// append lock (so appends go on meanwhile), publishes durable_seq and
    /// wakes the others, who re-check and may lead the next round. An
    /// fdatasync error is returned to every waiter and is sticky. Asking for a
    /// seq that was never appended is an `InvalidInput` I/O error (it would
    /// otherwise block forever).
    pub fn wait_durable(&self, seq: u64) -> Result<(), JournalError> {
        let written = self.last_seq();
        if seq > written {
            return Err(self.io_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("wait_durable({seq}): only {written} frames were appended"),
            )));
        }
        let mut st = lock(&self.sync);
        loop {
            if st.durable_seq >= seq {
                return Ok(());
            }
            if let Some(f) = self.sync_failure.get() {
                return Err(self.failure_error(f));
            }
            if st.syncing {
                st = self.synced.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.syncing = true;
            drop(st);

            // Read after taking leadership: everything appended up to here is
            // in the page cache and covered by the sync below.
            let target = self.last_seq();
            let result = self.sync_data();
            self.syncs.fetch_add(1, Ordering::Relaxed);

            st = lock(&self.sync);
            st.syncing = false;
            match result {
                Ok(()) => {
                    if target > st.durable_seq {
                        st.durable_seq = target;
                        self.durable_seq.store(target, Ordering::Release);
                    }
                }
                Err(e) => {
                    let what = format!("fdatasync failed: {e}");
                    let _ = self.sync_failure.set(Failure {
                        kind: e.kind(),
                        what: what.clone(),
                    });
                    self.fail_appends(e.kind(), what);
                }
            }
            self.synced.notify_all();
        }
    }

    /// Reads frames with seq >= `from` (0 counts as 1) in order, through a
    /// separate read-only handle, up to the last frame written at the time of
    /// this call. Appends may go on meanwhile. Each frame's header crc, seq
    /// and crc are checked as it is read.
    pub fn read_from(&self, from: u64) -> Result<Reader, JournalError> {
        let from = from.max(1);
        let (last, start_seq, start_offset) = {
            let st = lock(&self.state);
            if from > st.last_seq {
                (st.last_seq, from, st.end)
            } else {
                let i = (from - 1) / INDEX_STRIDE;
                (st.last_seq, i * INDEX_STRIDE + 1, st.index[i as usize])
            }
        };
        Reader::open(&self.path, start_offset, start_seq, from, last)
    }

    /// The payload of frame `seq`, read with pread from the nearest index entry
    /// (frames in between are only looked at through their headers). Any frame
    /// already written can be read, durable or not. The frame's header crc,
    /// seq and crc are checked.
    pub fn read(&self, seq: u64) -> Result<Vec<u8>, JournalError> {
        let (mut offset, mut at) = {
            let st = lock(&self.state);
            if seq == 0 || seq > st.last_seq {
                return Err(JournalError::NoSuchRecord(seq));
            }
            let i = (seq - 1) / INDEX_STRIDE;
            (st.index[i as usize], i * INDEX_STRIDE + 1)
        };
        let corrupt = |offset, reason: String| JournalError::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        };
        let mut window = vec![0u8; READ_WINDOW];
        loop {
            // A window starts at a frame; a read that ends before the window
            // does is the end of the file.
            let got = read_up_to(&self.file, &mut window, offset).map_err(|e| self.io_error(e))?;
            let mut pos = 0;
            while pos < got {
                let Some(head) = parse_head(&window[pos..got]) else {
                    if got == window.len() && got - pos < MAX_HEAD_PREV {
                        break; // the head runs past the window: read on from here
                    }
                    return Err(corrupt(offset + pos as u64, "frame header crc mismatch".into()));
                };
                if head.seq != at || head.len > MAX_PAYLOAD {
                    return Err(corrupt(
                        offset + pos as u64,
                        format!("expected frame {at}, found {}", head.seq),
                    ));
                }
                let frame = head.frame_len();
                if at < seq {
                    pos += frame;
                    at += 1;
                    continue;
                }
                let start = offset + pos as u64;
                if pos + frame > got {
                    window.resize(frame, 0);
                    self.file
                        .read_exact_at(&mut window, start)
                        .map_err(|e| self.io_error(e))?;
                    pos = 0;
                }
                let f = &window[pos..pos + frame];
                let prev: &Hash = f[head.size()..head.prefix()].try_into().expect("32 bytes");
                let payload = &f[head.prefix()..head.prefix() + head.len];
                let crc = u32::from_le_bytes(f[head.prefix() + head.len..].try_into().expect("4 bytes"));
                if frame_crc(seq, prev, payload) != crc {
                    return Err(corrupt(start, "crc mismatch".into()));
                }
                return Ok(payload.to_vec());
            }
            if pos == 0 {
                // Not even a header left: the file was cut under us.
                return Err(corrupt(offset, "unexpected end of file".into()));
            }
            offset += pos as u64;
        }
    }

    /// Zero-fills the file from `from` (its length) to `ZERO_AHEAD` or more past
    /// `need`, and returns the new length. On a write error (say, a full disk)
    /// whatever part of the zeros was written stays, which is harmless, and the
    /// caller's own write will meet the error if it is real.
    fn zero_fill(&self, from: u64, need: u64) -> u64 {
        let to = (need + ZERO_AHEAD).next_multiple_of(ZERO_AHEAD);
        let mut at = from;
        while at < to {
            let n = (to - at).min(ZEROS.len() as u64) as usize;
            if self.file.write_all_at(&ZEROS[..n], at).is_err() {
                return from;
            }
            at += n as u64;
        }
        to
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        #[cfg(test)]
        if self.faults.fail_write.swap(false, Ordering::SeqCst) {
            // Simulates a write that got half way (disk full, EIO).
            self.file.write_all_at(&buf[..buf.len() / 2], offset)?;
            return Err(io::Error::other("injected write failure"));
        }
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        #[cfg(test)]
        {
            if self.faults.in_sync.fetch_add(1, Ordering::SeqCst) > 0 {
                self.faults.overlapped.store(true, Ordering::SeqCst);
            }
            let delay = self.faults.sync_delay_ms.load(Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(delay));
            let fail = self.faults.fail_sync.swap(false, Ordering::SeqCst);
            self.faults.in_sync.fetch_sub(1, Ordering::SeqCst);
            if fail {
                return Err(io::Error::other("injected fdatasync failure"));
            }
        }
        self.file.sync_data()
    }

    fn fail_appends(&self, kind: io::ErrorKind, what: String) {
        // The first failure is the one worth reporting; later ones follow from it.
        let _ = self.append_failure.set(Failure { kind, what });
    }

    fn failure_error(&self, f: &Failure) -> JournalError {
        self.io_error(io::Error::new(
            f.kind,
            format!("journal unusable after an earlier failure: {}", f.what),
        ))
    }

    fn io_error(&self, source: io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("last_seq", &self.last_seq())
            .field("durable_seq", &self.durable_seq())
            .finish_non_exhaustive()
    }
}

/// Read-only check of a journal file: the same verification as
/// [`Journal::open`], but a torn tail is only reported in `truncated` and the
/// file is never modified (nor locked, so it can run beside the daemon; a
/// write in flight may then show up as a torn tail).
pub fn verify(path: &Path) -> Result<Recovery, JournalError> {
    let io_err = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    match scan::check_header(path, &file, len)? {
        scan::Header::Partial(n) => Ok(Recovery {
            records: 0,
            last_hash: [0; 32],
            truncated: (n > 0).then_some(Truncation {
                offset: 0,
                bytes: n,
                later_frames: 0,
            }),
        }),
        scan::Header::Complete(_) => {
            let s = scan::scan(path, &file, len)?;
            Ok(Recovery {
                records: s.records,
                last_hash: s.last_hash,
                truncated: s.torn,
            })
        }
    }
}

fn file_header() -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// The head of a frame: what its first 16 or 24 bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    len: usize,
    seq: u64,
    /// Kind 2: the durable watermark. Kind 1 (0.1) frames have none.
    durable: Option<u64>,
}

impl Head {
    /// Bytes of the head (up to and including hcrc).
    fn size(&self) -> usize {
        if self.durable.is_some() {
            HEAD_2
        } else {
            HEAD_1
        }
    }

    /// Bytes in front of the payload: the head and prev.
    fn prefix(&self) -> usize {
        self.size() + 32
    }

    /// The whole frame's length.
    fn frame_len(&self) -> usize {
        self.prefix() + self.len + 4
    }
}

/// Appends one encoded frame (kind 2, carrying `durable`) to `out` and returns
/// its hash.
fn encode_frame(out: &mut Vec<u8>, seq: u64, durable: u64, prev: &Hash, payload: &[u8]) -> Hash {
    let start = out.len();
    // Callers check MAX_PAYLOAD, so the length fits in 31 bits.
    out.extend_from_slice(&(payload.len() as u32 | KIND_2).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&durable.to_le_bytes());
    let hcrc = crc32fast::hash(&out[start..start + 20]);
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(prev);
    out.extend_from_slice(payload);
    out.extend_from_slice(&frame_crc(seq, prev, payload).to_le_bytes());
    frame_hash(seq, prev, payload)
}

/// Parses the head at the start of `b`: None if `b` is too short for the head its
/// length word announces or the hcrc does not match. The length is not checked
/// against [`MAX_PAYLOAD`] here.
fn parse_head(b: &[u8]) -> Option<Head> {
    let word = u32::from_le_bytes(b.get(0..4)?.try_into().unwrap());
    let seq = u64::from_le_bytes(b.get(4..12)?.try_into().unwrap());
    let (durable, size) = if word & KIND_2 != 0 {
        (Some(u64::from_le_bytes(b.get(12..20)?.try_into().unwrap())), HEAD_2)
    } else {
        (None, HEAD_1)
    };
    let hcrc = u32::from_le_bytes(b.get(size - 4..size)?.try_into().unwrap());
    (crc32fast::hash(&b[..size - 4]) == hcrc).then_some(Head {
        len: (word & !KIND_2) as usize,
        seq,
        durable,
    })
}

fn frame_crc(seq: u64, prev: &Hash, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(prev);
    h.update(payload);
    h.finalize()
}

fn frame_hash(seq: u64, prev: &Hash, payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(seq.to_le_bytes());
    h.update(prev);
    h.update(payload);
    h.finalize().into()
}

/// Reads from `offset` until `buf` is full or the file ends; returns the count.
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn open_or_create(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    match opts.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // create_new, so that of two racing creators one simply opens the
            // other's file (and then fails on the lock).
            match opts.clone().create_new(true).open(path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => opts.open(path),
                other => other,
            }
        }
        other => other,
    }
}

/// Exclusive, non-blocking advisory lock: two writers on one journal would
/// interleave frames and break the chain.
fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: flock only inspects the descriptor, which `file` keeps open for
    // the whole call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "journal is already open (locked by another handle or process)",
        ));
    }
    Err(e)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent across a panic (every update is a
    // plain store after the fallible I/O), so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
