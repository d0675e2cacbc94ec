//! A FUSE filesystem, served by the test process, that behaves like a disk behind a
//! page cache and can lose power on command.
//!
//! # The model
//!
//! The filesystem is a graph of nodes (files and directories), each with a number that
//! is never reused: the FUSE inode number. No path is stored anywhere, so a pending
//! rename is just two map entries that differ between the two views below, and a
//! node's path is whatever the maps say.
//!
//! Every node exists in two views: the *running* view (what processes see: the page
//! cache) and the *durable* view (what the disk holds: what a power cut leaves).
//!
//! - A directory has two maps name -> node: `entries` (running) and `durable`.
//! - A file has its durable bytes in the backing directory, as `backing/<ino>` (named
//!   by node, so renames never touch the backing directory), a durable size, and the
//!   list of its *pending* changes since the last fsync, in order: writes and size
//!   changes (truncate, set_len).
//! - Reads see every write made so far: the durable bytes with the pending changes
//!   applied in order.
//! - fsync or fdatasync of a file applies its pending changes to the backing file, in
//!   order, and syncs it there. (fdatasync covers the size too: the data needs it.)
//!   Nothing else: not the file's directory entry.
//! - create, mkdir, link, unlink, rmdir and rename change `entries` at once and append
//!   an operation to one global list of pending namespace changes, each naming the
//!   directory whose fsync commits it: the parent for create, mkdir, link, unlink and
//!   rmdir; for rename, the destination directory (the conservative reading: an fsync
//!   of the source directory alone does not commit it). fsync of directory D commits,
//!   in order, the pending operations that name D into the `durable` maps: a rename
//!   removes the source name from the durable source map (if it still names that node)
//!   and sets the destination name, in one step. Symlinks are refused (EPERM).
//! - After a cut, what exists is what the durable maps reach from the root. A file
//!   created in a directory that was never fsynced is gone even if its data was
//!   fsynced; a file whose name is durable but whose data never was has its durable
//!   bytes (perhaps none). A directory reached twice through durable maps (only
//!   renames committed one side at a time could do that) stays where it is reached
//!   first.
//!
//! # A cut
//!
//! [`PowerCutFs::cut`] decides, per file, which pending changes reached the disk
//! ([`CutMode`]): none (`All` lost), a random prefix, a random subset in order (page
//! writeback may write later pages first), or a random prefix followed by part of the
//! next write in whole 512-byte sectors, neither none nor all of them (`Torn`). Pending
//! namespace changes: all lost in `All`; in the other modes a random prefix of the
//! global list commits, in order and whatever directory each names, as a journaling
//! filesystem commits its metadata. Then the power is off: every request fails with
//! EIO, including fsyncs still in their delay, until [`PowerCutFs::power_on`], which
//! makes the running view the durable one (node numbers kept; unreachable nodes and
//! their backing files dropped).
//!
//! The kernel keeps nothing across a cut: entries and attributes are answered with a
//! zero TTL and files are opened with direct I/O (no page cache of the kernel's own).
//! flock is left to the kernel (FUSE handles it locally when the filesystem does not
//! ask for it). A fsync delay ([`PowerCutFs::set_fsync_delay`]) widens race windows:
//! the delay runs before the commit, so a cut during it loses what the fsync would have
//! saved, and the fsync answers EIO.

#![allow(dead_code)]

mod fuse;
pub mod model;
mod power;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use model::Counters;
pub use power::{CutMode, CutReport, Rng};

/// A mounted power-cut filesystem: `path()` is the mount point. Unmounted on drop.
pub struct PowerCutFs {
    mountpoint: PathBuf,
    shared: Arc<fuse::Shared>,
    session: Option<fuser::BackgroundSession>,
    _dir: tempfile::TempDir,
}

/// Why the filesystem cannot be mounted here, if it cannot.
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing".into());
    }
    let in_path = |prog: &str| {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
    };
    if !in_path("fusermount3") {
        return Some("fusermount3 is not installed (Debian: apt-get install fuse3)".into());
    }
    None
}

/// For a test that needs FUSE (and `extra`, another requirement's failure): true if it
/// can run. Where it cannot, it fails under CI=true and says loudly that it skipped.
pub fn available_or_skip(test: &str, extra: Option<String>) -> bool {
    match unavailable().or(extra) {
        None => true,
        Some(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: cannot run: {why}; CI must run it");
            }
            eprintln!("\n*** SKIPPED {test}: {why} ***\n");
            false
        }
    }
}

impl PowerCutFs {
    /// Mounts a new, empty filesystem in a temporary directory of its own, under `TMPDIR`.
    pub fn mount() -> std::io::Result<PowerCutFs> {
        let dir = tempfile::Builder::new().prefix("powercut").tempdir()?;
        let mountpoint = dir.path().join("mnt");
        let backing = dir.path().join("backing");
        std::fs::create_dir(&mountpoint)?;
        std::fs::create_dir(&backing)?;
        let shared = Arc::new(fuse::Shared::new(model::Model::new(backing)));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("powercut".into()),
            fuser::MountOption::Subtype("powercut".into()),
        ];
        // The daemon under test may run as another user than the test.
        config.acl = fuser::SessionACL::RootAndOwner;
        // A request sleeping in its fsync delay must not hold up the others.
        config.n_threads = Some(6);
        let session = fuser::spawn_mount(fuse::Adapter(shared.clone()), &mountpoint, &config)?;
        Ok(PowerCutFs {
            mountpoint,
            shared,
            session: Some(session),
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The power goes: see the module's doc. `seed` picks what each file keeps.
    pub fn cut(&self, mode: CutMode, seed: u64) -> CutReport {
        self.shared.model().cut(mode, &mut Rng::new(seed))
    }

    /// Power back: the durable view is all there is. Call it only once no process
    /// can still be writing (the daemon killed and reaped).
    pub fn power_on(&self) {
        self.shared
            .model()
            .power_on()
            .expect("the backing directory is writable");
    }

    pub fn set_fsync_delay(&self, d: Duration) {
        self.shared.fsync_delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn counters(&self) -> Counters {
        self.shared.model().counters.clone()
    }

    /// fsyncs of node `ino` (a mounted file's `st_ino`) now sleeping in their delay.
    pub fn fsyncs_in_flight(&self, ino: u64) -> u64 {
        self.shared.model().syncs_in_flight(ino)
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            // Detached first: a plain umount fails while something still uses the
            // mount, and the join would then wait for ever.
            if let Ok(c) = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes()) {
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
            let _ = s.umount_and_join();
        }
    }
}

/// `std::fs::copy` without copy_file_range, sendfile or splice (which a FUSE mount with
/// direct I/O may refuse): plain reads and writes.
pub fn copy_file(from: &Path, to: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Write};
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::File::create(to)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        dst.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Copies a directory tree with [`copy_file`].
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            copy_file(&e.path(), &target)?;
        }
    }
    Ok(())
}

/// fsyncs a directory (a file's new name in it becomes durable).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
