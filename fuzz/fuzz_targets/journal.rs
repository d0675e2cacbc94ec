//! The journal's scan, verify, open (torn-tail cut) and readers on arbitrary file contents.
//!
//! Input: the whole file. It is written to a directory on tmpfs (`/dev/shm` when there is
//! one) and then:
//! - `verify` and `Journal::open` must agree: both fail with the same error (and a failed
//!   open leaves the file byte for byte as it was), or both succeed with the same
//!   `Recovery`;
//! - after open, `verify` finds the same records and hash and no torn tail;
//! - `Reader` yields seqs 1..=records, each payload equal to what `Journal::read` gives,
//!   also from the middle; a seq past the end is `NoSuchRecord`;
//! - one more append after open makes a journal that verifies with one record more
//!   (for inputs whose length is a multiple of 8).
//!
//! Payloads are also run through `Record::decode`, as start-up replay does.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loyaltyd::journal::{self, Journal, JournalError};
use loyaltyd::record::Record;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() { shm } else { std::env::temp_dir() };
        let dir = base.join(format!("loyaltyd-fuzz-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fuzz scratch directory");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = dir().join("journal.log");
    std::fs::write(&path, data).expect("write the input");

    let verified = journal::verify(&path);
    let opened = Journal::open(&path);
    let (journal, recovery) = match (verified, opened) {
        (Err(v), Err(o)) => {
            assert_eq!(v.to_string(), o.to_string(), "verify and open disagree");
            assert!(matches!(o, JournalError::Corrupt { .. }), "{o}");
            assert_eq!(std::fs::read(&path).unwrap(), data, "a refused open changed the file");
            return;
        }
        (Ok(v), Ok((j, r))) => {
            assert_eq!(v, r, "verify and open disagree");
            (j, r)
        }
        (v, o) => panic!("verify says {v:?}, open says {:?}", o.map(|(_, r)| r)),
    };
    let n = recovery.records;

    let again = journal::verify(&path).expect("verify after open");
    assert_eq!(again.records, n);
    assert_eq!(again.last_hash, recovery.last_hash);
    assert_eq!(again.truncated, None, "open left a torn tail");
    assert_eq!(journal.last_seq(), n);
    assert_eq!(journal.durable_seq(), n);

    let mut payloads = Vec::new();
    for (i, item) in journal.read_from(0).expect("reader").enumerate() {
        let (seq, payload) = item.expect("a verified frame reads");
        assert_eq!(seq, i as u64 + 1);
        let _ = Record::decode(&payload);
        payloads.push(payload);
    }
    assert_eq!(payloads.len() as u64, n);
    for seq in [1, n / 2 + 1, n.saturating_sub(1), n] {
        if (1..=n).contains(&seq) {
            assert_eq!(journal.read(seq).expect("read"), payloads[seq as usize - 1]);
            let mut from = journal.read_from(seq).expect("reader from the middle");
            let (s, p) = from.next().expect("a frame").expect("reads");
            assert_eq!((s, &p), (seq, &payloads[seq as usize - 1]));
        }
    }
    assert!(matches!(journal.read(n + 1), Err(JournalError::NoSuchRecord(_))));
    assert!(journal.read_from(n + 1).expect("reader past the end").next().is_none());

    // Appending zero-fills 256 KiB ahead, which the next verify scans byte by byte: with
    // coverage instrumentation that is most of an execution, so only one input in 8 does it.
    if !data.len().is_multiple_of(8) {
        return;
    }
    let seq = journal.append(&[&b"appended by the fuzz target"[..]]).expect("append");
    assert_eq!(seq, n + 1);
    journal.wait_durable(seq).expect("durable");
    drop(journal);
    let after = journal::verify(&path).expect("verify after append");
    assert_eq!((after.records, after.truncated), (n + 1, None));
});
