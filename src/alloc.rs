//! The process's allocator: mimalloc (its version 2 line) instead of glibc's malloc.
//!
//! The store's hot paths (decoding and encoding members, the write-behind maps, sled's
//! own nodes) allocate and free small objects from several threads. glibc keeps an arena
//! per thread and returns little to the kernel, so the resident size grew with the
//! blocking pool; mimalloc's thread-local free lists made a commit cheaper and rebuilds
//! faster (figures in README, "Measured figures"). It also runs on the 16 KiB pages of a
//! Raspberry Pi 5 kernel, where a jemalloc built for 4 KiB pages does not. Version 3 of
//! mimalloc was tried and kept far more memory resident under load, so the crate is
//! built with its `v2` feature.
//!
//! [`tune`], which `main` calls first, changes two things: freed memory goes back to the
//! kernel at once, and the process takes no transparent huge pages. mimalloc advises
//! `MADV_HUGEPAGE` on the memory it maps, so each purged segment came back as a freshly
//! zeroed 2 MiB page: 5% of the daemon's CPU under load went to zeroing pages, and 1M
//! members cost 151 MiB resident after start-up instead of 117 MiB (`bench_api`, README).

use libmimalloc_sys::{mi_option_eager_commit_delay, mi_option_get, mi_option_set_default, mi_option_t};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc 2's `mi_option_e`, which the sys crate does not
/// name: the option right after `mi_option_eager_commit_delay` (checked by a test).
const PURGE_DELAY: mi_option_t = mi_option_eager_commit_delay + 1;

/// Gives freed memory back to the kernel at once instead of 10 ms later: mimalloc purges
/// only when the thread that freed it allocates again, so with the default delay an
/// idle daemon kept the memory of its start-up (the journal replay) resident. Costs a
/// little throughput under load. The environment variable `MIMALLOC_PURGE_DELAY` still
/// wins, for an operator who wants to trade the other way.
///
/// Then turns transparent huge pages off for the process (`PR_SET_THP_DISABLE`). mimalloc's
/// own switch for that (`allow_thp`) is read when it maps its first arena, before `main`,
/// so only the environment (`MIMALLOC_ALLOW_THP=0`) could set it; the kernel's flag
/// holds for every page faulted in from now on, whoever mapped it.
pub fn tune() {
    // SAFETY: sets one of mimalloc's integer options; any thread may, at any time.
    unsafe { mi_option_set_default(PURGE_DELAY, 0) }
    // Without it (an old kernel, or qemu's user mode, which refuses this prctl) the
    // process merely keeps huge pages.
    let _ = disable_huge_pages();
}

/// Turns transparent huge pages off for this process and its children.
fn disable_huge_pages() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    match unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// The purge delay in milliseconds, as mimalloc will use it.
pub fn purge_delay_ms() -> std::os::raw::c_long {
    // SAFETY: reads one of mimalloc's integer options.
    unsafe { mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_tune_sets() {
        // Another test of this process may have tuned it already; the environment may
        // override it. Only a process left alone shows mimalloc's default of 10 ms.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            let before = purge_delay_ms();
            assert!(
                before == 10 || before == 0,
                "purge delay {before}: not mimalloc 2's option 15"
            );
        }
        // Its neighbours have other defaults: eager_commit_delay 1, use_numa_nodes 0.
        // SAFETY: reads mimalloc options.
        assert_eq!(unsafe { mi_option_get(mi_option_eager_commit_delay) }, 1);
        tune();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 0);
        }
    }

    #[test]
    fn tune_turns_huge_pages_off() {
        tune();
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } == 1 {
            return;
        }
        // Only where the kernel refuses the flag may it be off: qemu-aarch64 7.2 (the
        // CI's emulator) answers EINVAL to prctl options it does not know.
        let e = disable_huge_pages().expect_err("tune left huge pages on although the prctl works");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "PR_SET_THP_DISABLE: {e}");
    }
}
