//! The filesystem's own semantics, through a real mount and ordinary syscalls.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Duration;

use super::{available_or_skip, sync_dir, CutMode, PowerCutFs};

fn mounted(test: &str) -> Option<PowerCutFs> {
    available_or_skip(test, None).then(|| PowerCutFs::mount().expect("mount the power-cut filesystem"))
}

fn write_file(path: &Path, data: &[u8], fsync: bool) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    if fsync {
        f.sync_all().unwrap();
    }
}

fn power_cycle(fs: &PowerCutFs, mode: CutMode, seed: u64) {
    fs.cut(mode, seed);
    fs.power_on();
}

#[test]
fn powercut_fs_unsynced_writes_and_names_are_lost() {
    let Some(fs) = mounted("powercut_fs_unsynced_writes_and_names_are_lost") else {
        return;
    };
    let root = fs.path();
    // A durable name with durable data, then an unsynced overwrite and append.
    write_file(&root.join("kept"), b"durable", true);
    sync_dir(root).unwrap();
    let f = OpenOptions::new().write(true).open(root.join("kept")).unwrap();
    f.write_all_at(b"DURABLE and more", 0).unwrap();
    // Reads see the page cache.
    assert_eq!(fs::read(root.join("kept")).unwrap(), b"DURABLE and more");
    drop(f);
    // A file never synced at all, in a synced directory.
    write_file(&root.join("empty-after"), b"lost bytes", false);
    sync_dir(root).unwrap();
    // A file whose data is fsynced but whose directory never was.
    write_file(&root.join("no-dir-fsync"), b"data", true);

    power_cycle(&fs, CutMode::All, 1);
    assert_eq!(fs::read(root.join("kept")).unwrap(), b"durable");
    assert_eq!(
        fs::read(root.join("empty-after")).unwrap(),
        b"",
        "its name was durable, its data not"
    );
    assert!(
        !root.join("no-dir-fsync").exists(),
        "a file's own fsync does not make its name durable"
    );
    assert_eq!(fs.counters().cuts, 1);
}

#[test]
fn powercut_fs_everything_fails_with_eio_until_power_on() {
    let Some(fs) = mounted("powercut_fs_everything_fails_with_eio_until_power_on") else {
        return;
    };
    let root = fs.path();
    let d = root.join("d");
    fs::create_dir(&d).unwrap();
    sync_dir(root).unwrap();
    let mut open = File::create(d.join("f")).unwrap();
    fs.cut(CutMode::All, 7);
    let eio = |r: std::io::Result<()>| assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EIO));
    eio(open.write_all(b"x"));
    eio(open.sync_all());
    eio(fs::metadata(&d).map(|_| ()));
    eio(File::create(root.join("new")).map(|_| ()));
    eio(fs::create_dir(root.join("nd")));
    fs.power_on();
    assert!(d.is_dir());
    // `f` was created in `d`, which was never fsynced.
    assert!(!d.join("f").exists());
    fs::write(d.join("g"), b"ok").unwrap();
    assert_eq!(fs::read(d.join("g")).unwrap(), b"ok");
}

#[test]
fn powercut_fs_renames_need_the_destination_directory_fsynced() {
    let Some(fs) = mounted("powercut_fs_renames_need_the_destination_directory_fsynced") else {
        return;
    };
    let root = fs.path();
    let (a, b) = (root.join("a"), root.join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    write_file(&a.join("x"), b"x", true);
    write_file(&a.join("y"), b"y", true);
    sync_dir(&a).unwrap();
    sync_dir(root).unwrap();

    // Within one directory, not synced: undone by a cut.
    fs::rename(a.join("x"), a.join("x2")).unwrap();
    power_cycle(&fs, CutMode::All, 2);
    assert!(a.join("x").exists() && !a.join("x2").exists());

    // Across directories: the source directory's fsync does not commit it...
    fs::rename(a.join("x"), b.join("x")).unwrap();
    sync_dir(&a).unwrap();
    power_cycle(&fs, CutMode::All, 3);
    assert!(a.join("x").exists() && !b.join("x").exists());
    // ... the destination's does, both sides at once (no second name left behind).
    fs::rename(a.join("x"), b.join("x")).unwrap();
    sync_dir(&b).unwrap();
    power_cycle(&fs, CutMode::All, 4);
    assert!(!a.join("x").exists());
    assert_eq!(fs::read(b.join("x")).unwrap(), b"x");

    // Replacing a name: the old file stays until the rename is durable.
    write_file(&a.join("y.new"), b"new", true);
    sync_dir(&a).unwrap();
    fs::rename(a.join("y.new"), a.join("y")).unwrap();
    assert_eq!(fs::read(a.join("y")).unwrap(), b"new");
    power_cycle(&fs, CutMode::All, 5);
    assert_eq!(fs::read(a.join("y")).unwrap(), b"y");
    fs::rename(a.join("y.new"), a.join("y")).unwrap();
    sync_dir(&a).unwrap();
    power_cycle(&fs, CutMode::All, 6);
    assert_eq!(fs::read(a.join("y")).unwrap(), b"new");
    assert!(!a.join("y.new").exists());
}

#[test]
fn powercut_fs_directories_rename_and_remove_like_the_daemon_does() {
    let Some(fs) = mounted("powercut_fs_directories_rename_and_remove_like_the_daemon_does") else {
        return;
    };
    let root = fs.path();
    let fresh = root.join("state.rebuild");
    fs::create_dir_all(fresh.join("blobs")).unwrap();
    for i in 0..40 {
        write_file(&fresh.join(format!("f{i}")), format!("{i}").as_bytes(), true);
    }
    sync_dir(&fresh).unwrap();
    sync_dir(root).unwrap();
    fs::rename(&fresh, root.join("state")).unwrap();
    sync_dir(root).unwrap();
    // A directory made in a directory that is then lost takes what it holds with it.
    let lost = root.join("state").join("sub");
    fs::create_dir(&lost).unwrap();
    write_file(&lost.join("inner"), b"i", true);
    sync_dir(&lost).unwrap();
    power_cycle(&fs, CutMode::All, 8);
    let state = root.join("state");
    assert!(!fresh.exists() && state.join("blobs").is_dir() && !state.join("sub").exists());
    assert_eq!(fs::read(state.join("f39")).unwrap(), b"39");

    // remove_dir_all deletes while it reads the directory.
    fs::rename(&state, root.join("state.broken-1")).unwrap();
    fs::remove_dir_all(root.join("state.broken-1")).unwrap();
    assert_eq!(fs::read_dir(root).unwrap().count(), 0);
    power_cycle(&fs, CutMode::All, 9);
    assert!(state.join("f0").exists(), "none of it was durable");
    fs::remove_dir_all(&state).unwrap();
    sync_dir(root).unwrap();
    power_cycle(&fs, CutMode::All, 10);
    assert_eq!(fs::read_dir(root).unwrap().count(), 0);

    // Hard links, and flock handled by the kernel.
    write_file(&root.join("LOCK"), b"pid 1", true);
    fs::hard_link(root.join("LOCK"), root.join("LOCK2")).unwrap();
    assert_eq!(fs::metadata(root.join("LOCK")).unwrap().nlink(), 2);
    let (one, two) = (
        File::open(root.join("LOCK")).unwrap(),
        File::open(root.join("LOCK2")).unwrap(),
    );
    assert_eq!(
        unsafe { libc::flock(one.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    assert_ne!(
        unsafe { libc::flock(two.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    drop(one);
    assert_eq!(
        unsafe { libc::flock(two.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
}

#[test]
fn powercut_fs_size_changes_read_and_persist_in_order() {
    let Some(fs) = mounted("powercut_fs_size_changes_read_and_persist_in_order") else {
        return;
    };
    let root = fs.path();
    let p = root.join("f");
    write_file(&p, &[7u8; 3000], true);
    sync_dir(root).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.set_len(1000).unwrap();
    f.write_all_at(b"end", 2000).unwrap();
    let mut want = vec![7u8; 1000];
    want.resize(2000, 0); // the truncated part reads back as zeros
    want.extend_from_slice(b"end");
    assert_eq!(fs::read(&p).unwrap(), want);
    assert_eq!(fs::metadata(&p).unwrap().len(), 2003);
    f.sync_data().unwrap();
    drop(f);
    power_cycle(&fs, CutMode::All, 11);
    assert_eq!(fs::read(&p).unwrap(), want);
}

/// Eight pending 1 KiB writes, write i filling block i with i+1; what each cut mode
/// leaves, over many seeds.
fn blocks_after(fs: &PowerCutFs, mode: CutMode, seed: u64) -> Vec<u8> {
    let p = fs.path().join("blocks");
    write_file(&p, &[0u8; 8 * 1024], true);
    sync_dir(fs.path()).unwrap();
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    for i in 0..8u8 {
        f.write_all_at(&[i + 1; 1024], u64::from(i) * 1024).unwrap();
    }
    drop(f);
    power_cycle(fs, mode, seed);
    fs::read(&p).unwrap()
}

#[test]
fn powercut_fs_cut_modes_keep_a_prefix_a_subset_or_a_torn_write() {
    let Some(fs) = mounted("powercut_fs_cut_modes_keep_a_prefix_a_subset_or_a_torn_write") else {
        return;
    };
    let block_kept = |data: &[u8], i: usize| {
        let b = &data[i * 1024..(i + 1) * 1024];
        assert!(
            b.iter().all(|&x| x == 0) || b.iter().all(|&x| x == i as u8 + 1),
            "block {i} mixed"
        );
        b[0] != 0
    };
    let (mut prefixes, mut holes, mut torn) = (std::collections::BTreeSet::new(), 0, 0);
    for seed in 0..40 {
        let d = blocks_after(&fs, CutMode::All, seed);
        assert!(d.iter().all(|&x| x == 0), "all: nothing pending reaches the disk");

        let d = blocks_after(&fs, CutMode::Prefix, seed);
        let kept: Vec<bool> = (0..8).map(|i| block_kept(&d, i)).collect();
        let k = kept.iter().take_while(|&&x| x).count();
        assert!(kept[k..].iter().all(|&x| !x), "prefix: {kept:?}");
        prefixes.insert(k);

        let d = blocks_after(&fs, CutMode::Subset, seed);
        let kept: Vec<bool> = (0..8).map(|i| block_kept(&d, i)).collect();
        let k = kept.iter().take_while(|&&x| x).count();
        holes += usize::from(kept[k..].iter().any(|&x| x));

        // Torn: whole blocks up to k, then block k partly written in 512-byte sectors.
        let d = blocks_after(&fs, CutMode::Torn, seed);
        let sector_new = |s: usize| d[s * 512..(s + 1) * 512].iter().all(|&x| x == (s / 2) as u8 + 1);
        let sector_old = |s: usize| d[s * 512..(s + 1) * 512].iter().all(|&x| x == 0);
        assert!(
            (0..16).all(|s| sector_new(s) || sector_old(s)),
            "torn: a sector is mixed"
        );
        let k = (0..16).take_while(|&s| sector_new(s)).count() / 2;
        assert!(k < 8 && (2 * k + 2..16).all(sector_old), "torn: beyond block {k}");
        if sector_new(2 * k) != sector_new(2 * k + 1) {
            torn += 1;
        }
    }
    assert!(prefixes.len() >= 5, "prefix lengths seen: {prefixes:?}");
    assert!(
        holes >= 10,
        "subset mode kept a later write without an earlier one only {holes} times"
    );
    assert!(torn >= 30, "a half-written block in only {torn} of 40 torn cuts");
}

#[test]
fn powercut_fs_namespace_prefix_commits_in_order() {
    let Some(fs) = mounted("powercut_fs_namespace_prefix_commits_in_order") else {
        return;
    };
    let root = fs.path();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..30 {
        for i in 0..6 {
            fs::create_dir(root.join(format!("d{i}"))).unwrap();
        }
        power_cycle(&fs, CutMode::Subset, seed);
        let exists: Vec<bool> = (0..6).map(|i| root.join(format!("d{i}")).exists()).collect();
        let k = exists.iter().take_while(|&&x| x).count();
        assert!(
            exists[k..].iter().all(|&x| !x),
            "namespace changes commit in order: {exists:?}"
        );
        seen.insert(k);
        for i in 0..k {
            fs::remove_dir(root.join(format!("d{i}"))).unwrap();
        }
        sync_dir(root).unwrap();
    }
    assert!(seen.len() >= 4, "prefix lengths seen: {seen:?}");
}

#[test]
fn powercut_fs_a_cut_during_a_delayed_fsync_loses_it() {
    let Some(fs) = mounted("powercut_fs_a_cut_during_a_delayed_fsync_loses_it") else {
        return;
    };
    let root = fs.path();
    let p = root.join("j");
    write_file(&p, b"", true);
    sync_dir(root).unwrap();
    let ino = fs::metadata(&p).unwrap().ino();
    fs.set_fsync_delay(Duration::from_millis(300));
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(b"frame", 0).unwrap();
    std::thread::scope(|s| {
        let syncing = s.spawn(|| f.sync_data());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while fs.fsyncs_in_flight(ino) == 0 {
            assert!(std::time::Instant::now() < deadline, "the fsync never started");
            std::thread::yield_now();
        }
        let report = fs.cut(CutMode::All, 12);
        assert_eq!(report.fsyncs_in_flight, 1);
        let err = syncing.join().unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
    });
    fs.power_on();
    fs.set_fsync_delay(Duration::ZERO);
    assert_eq!(fs::read(&p).unwrap(), b"");
    assert_eq!(fs.counters().fsyncs_cut, 1);
    // And with no cut, the delayed fsync saves it.
    f.write_all_at(b"frame", 0).unwrap();
    fs.set_fsync_delay(Duration::from_millis(50));
    f.sync_data().unwrap();
    power_cycle(&fs, CutMode::All, 13);
    assert_eq!(fs::read(&p).unwrap(), b"frame");
    assert!(matches!(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    ));
}
