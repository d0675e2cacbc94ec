//! The state directory's life: whether it can be believed (decided before sled is
//! opened), moving a bad one aside, and putting a rebuilt one in its place.
//!
//! sled 0.34 survives its process being killed (every write it made is in the page
//! cache), but not a power cut: its flush uses sync_file_range, which neither empties
//! the device's cache nor orders metadata, so after a cut its files may hold any mix
//! of old and new blocks (missing blob files, an applied position ahead of the data it
//! stands for). The journal is durable; sled is only believed when it is known whole:
//!
//! - Before a session changes anything in `state/`, `state.session` (beside it) is
//!   written and made durable saying `open <boot id>`.
//! - A clean close makes every file and directory of `state/` durable and then removes
//!   `state.session`.
//! - At open: no `state.session` means the last session closed cleanly; `open B` with
//!   B this boot's id means a process died but the machine did not, and the page cache
//!   holds everything sled wrote: believed, and the journal's tail replayed. Any other
//!   boot means the machine went down (power cut, kernel crash) with sled half on
//!   disk, and `broken <why>` means a fault was seen at run time: not believed; the
//!   caller moves `state/` aside and rebuilds it from the journal.

use std::path::{Path, PathBuf};

/// Moved-aside state directories kept for inspection, at most (the newest; older
/// ones are deleted, and the log says so): an SD card must not fill up with them.
pub const KEEP_BROKEN: usize = 3;

/// The session file of a state directory: `state` -> `state.session`.
fn path_of(state_dir: &Path) -> PathBuf {
    state_dir.with_extension("session")
}

fn boot() -> String {
    crate::os::boot_id().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why `state_dir` cannot be believed, if it cannot.
pub(super) fn distrust(state_dir: &Path) -> Option<String> {
    let path = path_of(state_dir);
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    let text = text.trim();
    match text.split_once(' ') {
        Some(("open", b)) if b == boot() => None,
        Some(("open", _)) => Some(
            "it was in use when the machine last went down (a power cut or a crash of the \
             system, not just of loyaltyd), so its files may be half written"
                .to_string(),
        ),
        Some(("broken", why)) => Some(format!("a fault was seen in it at run time ({why})")),
        _ => Some(format!("{} says {text:?}", path.display())),
    }
}

/// Records durably that a session is changing `state_dir`, in this boot.
pub(super) fn begin(state_dir: &Path) -> std::io::Result<()> {
    crate::os::write_durably(&path_of(state_dir), format!("open {}\n", boot()).as_bytes())
}

/// Records durably that `state_dir` must be rebuilt at the next start.
pub(super) fn mark_broken(state_dir: &Path, why: &str) -> std::io::Result<()> {
    let why: String = why.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    crate::os::write_durably(&path_of(state_dir), format!("broken {why}\n").as_bytes())
}

/// Makes everything in `state_dir` durable (its own entry in the data dir included),
/// then says it was closed cleanly.
pub(super) fn end(state_dir: &Path) -> std::io::Result<()> {
    crate::os::sync_tree(state_dir)?;
    crate::os::sync_parent(state_dir)?;
    clear(state_dir)
}

/// Forgets the last session's verdict.
fn clear(state_dir: &Path) -> std::io::Result<()> {
    crate::os::remove_durably(&path_of(state_dir))
}

/// Moves a state directory aside to `<dir>.broken-<time>` (kept for inspection),
/// removes its session file, and deletes the oldest moved-aside directories beyond
/// [`KEEP_BROKEN`]. Returns what it did, for the log.
pub fn move_aside(dir: &Path, why: &str) -> std::io::Result<String> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let mut target = dir.with_extension(format!("broken-{stamp}"));
    let mut n = 1;
    while target.exists() {
        target = dir.with_extension(format!("broken-{stamp}-{n}"));
        n += 1;
    }
    std::fs::rename(dir, &target)?;
    crate::os::sync_parent(dir)?;
    clear(dir)?;
    let mut note = format!("{why}; moved it to {}", target.display());
    for old in prune_broken(dir)? {
        note.push_str(&format!("; deleted the older {}", old.display()));
    }
    Ok(note)
}

/// Deletes moved-aside copies of `dir` beyond the newest [`KEEP_BROKEN`].
fn prune_broken(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(vec![]);
    };
    let prefix = format!("{}.broken-", name.to_string_lossy());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(parent)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) && entry.file_type()?.is_dir() {
            let modified = entry.metadata()?.modified()?;
            found.push((modified, entry.path()));
        }
    }
    // Newest first: by time, then by name (the stamp and counter sort in order).
    found.sort_by(|a, b| b.cmp(a));
    let old: Vec<PathBuf> = found.into_iter().skip(KEEP_BROKEN).map(|(_, p)| p).collect();
    for p in &old {
        std::fs::remove_dir_all(p)?;
    }
    Ok(old)
}

/// Puts a state directory that was built from the journal and made durable in the
/// place of `dir` (which must not exist), and forgets the last session's verdict.
pub fn install(built: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::rename(built, dir)?;
    crate::os::sync_parent(dir)?;
    clear(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_believed_in_its_own_boot_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(distrust(&dir), None, "never opened");
        begin(&dir).unwrap();
        assert_eq!(distrust(&dir), None, "the same boot: the page cache kept sled's writes");
        std::fs::write(path_of(&dir), "open 00000000000000000000000000000000\n").unwrap();
        assert!(distrust(&dir).unwrap().contains("went down"));
        mark_broken(&dir, "bad\nmember").unwrap();
        assert!(distrust(&dir).unwrap().contains("bad member"));
        std::fs::write(path_of(&dir), "").unwrap();
        assert!(distrust(&dir).is_some(), "an empty session file is not a clean close");
        end(&dir).unwrap();
        assert_eq!(distrust(&dir), None, "closed cleanly");
        assert!(!path_of(&dir).exists());
    }
}

#[cfg(test)]
mod aside_tests {
    use super::*;

    #[test]
    fn moved_aside_directories_are_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        for i in 0..KEEP_BROKEN + 3 {
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("db"), format!("{i}")).unwrap();
            begin(&dir).unwrap();
            let note = move_aside(&dir, "test").unwrap();
            assert!(!dir.exists() && !path_of(&dir).exists(), "{note}");
            if i >= KEEP_BROKEN {
                assert!(note.contains("deleted the older"), "{note}");
            }
        }
        let mut kept: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path().join("db")).unwrap())
            .collect();
        kept.sort();
        let newest: Vec<String> = (3..KEEP_BROKEN + 3).map(|i| i.to_string()).collect();
        assert_eq!(kept, newest, "the newest are kept");
    }
}
