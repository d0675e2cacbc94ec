use super::*;

use std::sync::Arc;
use std::thread;

use proptest::prelude::*;

fn new_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    (dir, path)
}

/// Distinct, seq-dependent content of varying length (0..=40 bytes).
fn payload_for(seq: u64) -> Vec<u8> {
    (0..seq % 41).map(|i| (seq as u8).wrapping_mul(31) ^ i as u8).collect()
}

fn read_all(j: &Journal, from: u64) -> Vec<(u64, Vec<u8>)> {
    j.read_from(from).unwrap().map(Result::unwrap).collect()
}

/// Writes `n` frames, one acknowledged append each (durable before the next is
/// written, so every frame's watermark covers the one before), and returns the
/// file's bytes up to the end of the last frame.
fn journal_with(path: &Path, n: u64) -> Vec<u8> {
    let (j, _) = Journal::open(path).unwrap();
    for seq in 1..=n {
        assert_eq!(j.append(&[&payload_for(seq)]).unwrap(), seq);
        j.wait_durable(seq).unwrap();
    }
    drop(j);
    frames_of(&std::fs::read(path).unwrap())
}

/// Length of the frame starting at `at` of a well-formed file.
fn frame_len_at(bytes: &[u8], at: usize) -> usize {
    parse_head(&bytes[at..]).expect("a well-formed frame").frame_len()
}

/// Start offsets of the frames of a well-formed file (up to the zeros, if any).
fn frame_offsets(bytes: &[u8]) -> Vec<u64> {
    let mut offsets = Vec::new();
    let mut at = FILE_HEADER_LEN as usize;
    while at < bytes.len() && bytes[at..(at + MAX_HEAD_PREV).min(bytes.len())].iter().any(|&b| b != 0) {
        offsets.push(at as u64);
        at += frame_len_at(bytes, at);
    }
    offsets
}

/// A well-formed file without the zeros written ahead: the header and the frames.
fn frames_of(bytes: &[u8]) -> Vec<u8> {
    let end = match frame_offsets(bytes).last() {
        Some(&last) => last as usize + frame_len_at(bytes, last as usize),
        None => FILE_HEADER_LEN as usize,
    };
    assert!(bytes[end..].iter().all(|&b| b == 0), "only zeros follow the frames");
    bytes[..end].to_vec()
}

/// One past the last non-zero byte of `bytes`: how much of a torn tail is reported.
fn data_len(bytes: &[u8]) -> u64 {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i as u64 + 1)
}

fn assert_corrupt_at<T: fmt::Debug>(r: Result<T, JournalError>, want: u64) {
    match r {
        Err(JournalError::Corrupt { offset, .. }) => assert_eq!(offset, want),
        other => panic!("expected Corrupt at {want}, got {other:?}"),
    }
}

/// Independent hash-chain computation, straight from the format description.
fn chain_hash(payloads: &[Vec<u8>]) -> Hash {
    let mut prev = [0u8; 32];
    for (i, p) in payloads.iter().enumerate() {
        let mut h = Sha256::new();
        h.update((i as u64 + 1).to_le_bytes());
        h.update(prev);
        h.update(p);
        prev = h.finalize().into();
    }
    prev
}

#[test]
fn journal_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Journal>();
    check::<Reader>();
}

#[test]
fn on_disk_layout_matches_the_documented_format() {
    let (_d, path) = new_dir();
    let (j, rec) = Journal::open(&path).unwrap();
    assert_eq!(
        rec,
        Recovery {
            records: 0,
            last_hash: [0; 32],
            truncated: None
        }
    );
    j.append(&[b"abc", b""]).unwrap();
    let file = std::fs::read(&path).unwrap();
    let bytes = frames_of(&file);
    // The zeros written ahead: the file ends ZERO_AHEAD to twice that past the frames.
    assert_eq!(file.len() as u64 % ZERO_AHEAD, 0);
    assert!(file.len() - bytes.len() >= ZERO_AHEAD as usize, "{}", file.len());

    let mut want = Vec::new();
    want.extend_from_slice(b"LOYJRNL\0");
    want.extend_from_slice(&2u32.to_le_bytes());
    want.extend_from_slice(&[0; 4]);
    let mut prev = [0u8; 32];
    // Both frames went in one write, before any sync: their watermark is 0.
    for (seq, p) in [(1u64, &b"abc"[..]), (2, &b""[..])] {
        let mut head = Vec::new();
        head.extend_from_slice(&(p.len() as u32 | 1 << 31).to_le_bytes());
        head.extend_from_slice(&seq.to_le_bytes());
        head.extend_from_slice(&0u64.to_le_bytes());
        want.extend_from_slice(&head);
        want.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
        want.extend_from_slice(&prev);
        want.extend_from_slice(p);
        let mut covered = seq.to_le_bytes().to_vec();
        covered.extend_from_slice(&prev);
        covered.extend_from_slice(p);
        want.extend_from_slice(&crc32fast::hash(&covered).to_le_bytes());
        prev = Sha256::digest(&covered).into();
    }
    assert_eq!(bytes, want);
    assert_eq!(j.last_hash(), prev);
}

#[test]
fn round_trip_including_empty_and_max_payloads() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    let big = vec![0xA5u8; MAX_PAYLOAD];
    let mut all: Vec<Vec<u8>> = Vec::new();
    all.push(Vec::new());
    all.push(big.clone());
    all.extend((1..3000).map(payload_for));
    all.push(Vec::new());

    let mut next = 1;
    for chunk in all.chunks(7) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        assert_eq!(j.append(&refs).unwrap(), next);
        next += chunk.len() as u64;
    }
    assert_eq!(j.last_seq(), all.len() as u64);
    j.wait_durable(j.last_seq()).unwrap();
    assert_eq!(j.durable_seq(), all.len() as u64);
    assert_eq!(j.last_hash(), chain_hash(&all));

    let got = read_all(&j, 1);
    assert_eq!(got.len(), all.len());
    for (i, (seq, p)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(p, &all[i]);
    }
    // Starting points around the sparse index strides.
    for from in [0, 2, 3, 1024, 1025, 1026, 2048, 2049, 3001, 3002] {
        let got = read_all(&j, from);
        let first = from.max(1);
        assert_eq!(got.len() as u64, (all.len() as u64 + 1).saturating_sub(first));
        for (seq, p) in got {
            assert_eq!(p, all[seq as usize - 1]);
        }
    }
    assert!(read_all(&j, 5000).is_empty());

    // The reusing reader API returns the same.
    let mut r = j.read_from(2).unwrap();
    let mut buf = Vec::new();
    assert_eq!(r.next_into(&mut buf).unwrap().unwrap(), 2);
    assert_eq!(buf, big);
    assert_eq!(r.next_into(&mut buf).unwrap().unwrap(), 3);
    assert_eq!(buf, all[2]);
}

#[test]
fn too_large_payload_is_rejected_and_nothing_is_written() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    j.append(&[b"x"]).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let huge = vec![0u8; MAX_PAYLOAD + 1];
    match j.append(&[b"ok", &huge]) {
        Err(JournalError::TooLarge(n)) => assert_eq!(n, MAX_PAYLOAD + 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(j.last_seq(), 1);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    assert_eq!(j.append(&[]).unwrap(), 2);
    assert_eq!(j.append(&[b"y"]).unwrap(), 2);
}

#[test]
fn reopen_keeps_state_and_the_chain_continues() {
    let (_d, path) = new_dir();
    let mut all: Vec<Vec<u8>> = (1..=50).map(payload_for).collect();
    let (j, _) = Journal::open(&path).unwrap();
    for p in &all {
        j.append(&[p]).unwrap();
    }
    let hash = j.last_hash();
    drop(j);

    let (j, rec) = Journal::open(&path).unwrap();
    assert_eq!(
        rec,
        Recovery {
            records: 50,
            last_hash: hash,
            truncated: None
        }
    );
    assert_eq!((j.last_seq(), j.durable_seq(), j.last_hash()), (50, 50, hash));
    for seq in 51..=2100 {
        all.push(payload_for(seq));
        assert_eq!(j.append(&[&all[seq as usize - 1]]).unwrap(), seq);
    }
    drop(j);

    let rec = verify(&path).unwrap();
    assert_eq!(rec.records, 2100);
    assert_eq!(rec.last_hash, chain_hash(&all));
    let (j, rec2) = Journal::open(&path).unwrap();
    assert_eq!(rec, rec2);
    // The index rebuilt by the scan points at the right frames.
    let got = read_all(&j, 2050);
    assert_eq!(got.len(), 51);
    assert_eq!(got[0], (2050, all[2049].clone()));
}

#[test]
fn second_open_of_a_live_journal_is_refused() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    match Journal::open(&path) {
        Err(JournalError::Io { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::WouldBlock)
        }
        other => panic!("{other:?}"),
    }
    drop(j);
    Journal::open(&path).unwrap();
}

#[test]
fn torn_last_frame_is_cut_at_every_offset() {
    let (_d, path) = new_dir();
    let bytes = journal_with(&path, 5);
    let last = *frame_offsets(&bytes).last().unwrap();
    let good = {
        let (_, rec) = Journal::open(&path).unwrap();
        rec
    };
    let prev_hash = chain_hash(&(1..=4).map(payload_for).collect::<Vec<_>>());
    // The torn frame at the very end of the file, or followed by the zeros
    // written ahead (as after a power cut).
    for zeros in [0, ZERO_AHEAD as usize] {
        for cut in last + 1..bytes.len() as u64 {
            let mut file = bytes[..cut as usize].to_vec();
            file.resize(file.len() + zeros, 0);
            std::fs::write(&path, &file).unwrap();
            // A torn frame may end in zero bytes; they are not counted.
            let torn = (data_len(&bytes[..cut as usize]) > last).then(|| Truncation {
                offset: last,
                bytes: data_len(&bytes[..cut as usize]) - last,
                later_frames: 0,
            });

            let rec = verify(&path).unwrap();
            assert_eq!((rec.records, rec.last_hash), (4, prev_hash), "cut {cut}");
            assert_eq!(rec.truncated, torn.clone(), "cut {cut}");
            assert_eq!(std::fs::read(&path).unwrap(), file);

            let (j, rec) = Journal::open(&path).unwrap();
            assert_eq!((rec.records, rec.truncated), (4, torn.clone()), "cut {cut}");
            if torn.is_some() {
                assert_eq!(std::fs::metadata(&path).unwrap().len(), last);
            }
            // Appending again recreates the identical frame.
            j.append(&[&payload_for(5)]).unwrap();
            drop(j);
            assert_eq!(frames_of(&std::fs::read(&path).unwrap()), bytes);
        }
    }
    assert_eq!(verify(&path).unwrap(), good);
}

#[test]
fn torn_multi_frame_write_keeps_the_complete_frames() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    j.append(&[b"one"]).unwrap();
    j.append(&[b"two", b"three", b"four"]).unwrap();
    drop(j);
    let bytes = frames_of(&std::fs::read(&path).unwrap());
    let offs = frame_offsets(&bytes);
    // Tear inside "four": "two" and "three" of the same write survive.
    let cut = offs[3] + 30;
    std::fs::write(&path, &bytes[..cut as usize]).unwrap();
    let (j, rec) = Journal::open(&path).unwrap();
    assert_eq!(rec.records, 3);
    assert_eq!(
        rec.truncated,
        Some(Truncation {
            offset: offs[3],
            bytes: data_len(&bytes[..cut as usize]) - offs[3],
            later_frames: 0,
        })
    );
    let got: Vec<Vec<u8>> = read_all(&j, 1).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, [&b"one"[..], b"two", b"three"]);
}

#[test]
fn last_frame_with_bad_crc_is_cut() {
    let (_d, path) = new_dir();
    let mut bytes = journal_with(&path, 6);
    let last = *frame_offsets(&bytes).last().unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (_j, rec) = Journal::open(&path).unwrap();
    assert_eq!(rec.records, 5);
    assert_eq!(
        rec.truncated,
        Some(Truncation {
            offset: last,
            bytes: n as u64 - last,
            later_frames: 0,
        })
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), last);
}

#[test]
fn zeros_after_the_last_frame_end_the_history() {
    let (_d, path) = new_dir();
    let bytes = journal_with(&path, 4);
    let end = bytes.len() as u64;

    // Zeros right after the last frame, of any length: the clean end. They stay,
    // and the next frame goes where they start.
    for zeros in [1, 15, 16, 52, 4096, 3 * ZERO_AHEAD as usize + 7] {
        let mut file = bytes.clone();
        file.resize(bytes.len() + zeros, 0);
        std::fs::write(&path, &file).unwrap();
        assert_eq!(verify(&path).unwrap().truncated, None, "{zeros} zeros");
        let (j, rec) = Journal::open(&path).unwrap();
        assert_eq!((rec.records, rec.truncated), (4, None), "{zeros} zeros");
        assert_eq!(std::fs::read(&path).unwrap(), file, "the file is not touched");
        assert_eq!(j.append(&[&payload_for(5)]).unwrap(), 5);
        drop(j);
        let grown = std::fs::read(&path).unwrap();
        assert_eq!(frame_offsets(&grown).last(), Some(&end));
        assert_eq!(Journal::open(&path).unwrap().1.records, 5);
        std::fs::write(&path, &bytes).unwrap();
    }

    // The start of a frame followed by zeros: a torn tail of the bytes written.
    let (j, _) = Journal::open(&path).unwrap();
    j.append(&[&[7u8; 300]]).unwrap();
    drop(j);
    let mut partial = std::fs::read(&path).unwrap();
    partial.truncate(end as usize + 100);
    partial.resize(end as usize + 8192, 0);
    std::fs::write(&path, &partial).unwrap();
    let (_j, rec) = Journal::open(&path).unwrap();
    assert_eq!(
        (rec.records, rec.truncated),
        (
            4,
            Some(Truncation {
                offset: end,
                bytes: 100,
                later_frames: 0,
            })
        )
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_zeroed_frame_in_the_middle_is_corruption() {
    // Zeros are the end only if nothing valid follows them.
    let (_d, path) = new_dir();
    let mut bytes = journal_with(&path, 5);
    let offs = frame_offsets(&bytes);
    let (start, end) = (offs[2] as usize, offs[3] as usize);
    bytes[start..end].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    assert_corrupt_at(verify(&path), start as u64);
    assert_corrupt_at(Journal::open(&path), start as u64);
}

#[test]
fn any_flipped_byte_in_a_middle_frame_is_corruption_at_that_frame() {
    let (_d, path) = new_dir();
    let bytes = journal_with(&path, 5);
    let offs = frame_offsets(&bytes);
    let (start, end) = (offs[2], offs[3]); // frame seq 3: header, prev, payload, crc
    assert!(end - start > (HEAD_2 + 36) as u64);
    for at in start..end {
        let mut bad = bytes.clone();
        bad[at as usize] ^= 0xFF;
        std::fs::write(&path, &bad).unwrap();
        assert_corrupt_at(verify(&path), start);
        assert_corrupt_at(Journal::open(&path), start);
        assert_eq!(std::fs::read(&path).unwrap(), bad, "file changed (byte {at})");
    }
    // A bad first frame counts as the middle too when later frames are valid.
    let mut bad = bytes.clone();
    bad[offs[0] as usize + 50] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert_corrupt_at(Journal::open(&path), FILE_HEADER_LEN);
}

/// Rewrites the file with frames built by hand, so seq and prev can be wrong
/// while every crc is right. Each frame's watermark says the one before it was
/// durable (as when each was acknowledged before the next was written).
fn write_frames(path: &Path, frames: &[(u64, Hash, &[u8])]) -> Vec<u64> {
    let mut bytes = file_header().to_vec();
    let mut offsets = Vec::new();
    for (seq, prev, p) in frames {
        offsets.push(bytes.len() as u64);
        encode_frame(&mut bytes, *seq, seq - 1, prev, p);
    }
    std::fs::write(path, &bytes).unwrap();
    offsets
}

#[test]
fn broken_chain_or_seq_with_valid_crcs_is_corruption() {
    let (_d, path) = new_dir();
    let h1 = frame_hash(1, &[0; 32], b"a");
    let h2 = frame_hash(2, &h1, b"b");
    let h3 = frame_hash(3, &h2, b"c");

    // prev of frame 2 wrong.
    let offs = write_frames(&path, &[(1, [0; 32], b"a"), (2, [9; 32], b"b"), (3, h2, b"c")]);
    assert_corrupt_at(verify(&path), offs[1]);

    // Seq gap: 1, 3, 4.
    let offs = write_frames(&path, &[(1, [0; 32], b"a"), (3, h2, b"c"), (4, h3, b"d")]);
    assert_corrupt_at(Journal::open(&path), offs[1]);

    // A wrong last frame with nothing valid after it is a torn tail.
    let offs = write_frames(&path, &[(1, [0; 32], b"a"), (2, h1, b"b"), (3, [1; 32], b"c")]);
    let rec = verify(&path).unwrap();
    assert_eq!(rec.records, 2);
    assert_eq!(rec.last_hash, h2);
    assert_eq!(rec.truncated.unwrap().offset, offs[2]);
}

#[test]
fn verify_never_modifies_the_file() {
    let (_d, path) = new_dir();
    let mut bytes = journal_with(&path, 3);
    bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
    std::fs::write(&path, &bytes).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let rec = verify(&path).unwrap();
    assert_eq!(rec.records, 3);
    assert!(rec.truncated.is_some());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

    // Partial header: reported, not rewritten.
    std::fs::write(&path, b"LOYJ").unwrap();
    let rec = verify(&path).unwrap();
    assert_eq!(
        rec.truncated,
        Some(Truncation {
            offset: 0,
            bytes: 4,
            later_frames: 0
        })
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"LOYJ");

    assert!(matches!(
        verify(&path.with_extension("missing")),
        Err(JournalError::Io { .. })
    ));
}

#[test]
fn bad_file_headers() {
    let (_d, path) = new_dir();
    let good = journal_with(&path, 2);

    let mut bad = good.clone();
    bad[0] = b'X';
    std::fs::write(&path, &bad).unwrap();
    assert_corrupt_at(Journal::open(&path), 0);
    assert_eq!(std::fs::read(&path).unwrap(), bad);

    let mut bad = good.clone();
    bad[8] = 3;
    std::fs::write(&path, &bad).unwrap();
    assert_corrupt_at(verify(&path), 0);

    let mut bad = good.clone();
    bad[15] = 1;
    std::fs::write(&path, &bad).unwrap();
    assert_corrupt_at(verify(&path), 0);

    // Short and not a header prefix.
    std::fs::write(&path, b"LOYX").unwrap();
    assert_corrupt_at(Journal::open(&path), 0);
    assert_eq!(std::fs::read(&path).unwrap(), b"LOYX");

    // Crash while creating: every proper prefix gets the header rewritten.
    for n in 0..FILE_HEADER_LEN as usize {
        std::fs::write(&path, &file_header()[..n]).unwrap();
        let (j, rec) = Journal::open(&path).unwrap();
        let cut = (n > 0).then_some(Truncation {
            offset: 0,
            bytes: n as u64,
            later_frames: 0,
        });
        assert_eq!(
            rec,
            Recovery {
                records: 0,
                last_hash: [0; 32],
                truncated: cut
            }
        );
        assert_eq!(j.append(&[b"first"]).unwrap(), 1);
        drop(j);
        assert_eq!(verify(&path).unwrap().records, 1);
    }
}

#[test]
fn concurrent_writers_share_fdatasyncs() {
    const THREADS: u64 = 8;
    const EACH: u64 = 500;
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    let j = Arc::new(j);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let j = Arc::clone(&j);
            thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..EACH {
                    let p = format!("t{t} i{i}").into_bytes();
                    let seq = j.append(&[&p]).unwrap();
                    j.wait_durable(seq).unwrap();
                    assert!(j.durable_seq() >= seq);
                    mine.push((seq, p));
                }
                mine
            })
        })
        .collect();
    let mut written: Vec<(u64, Vec<u8>)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    written.sort();
    let total = THREADS * EACH;
    let seqs: Vec<u64> = written.iter().map(|w| w.0).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "seqs unique and gap-free");
    assert_eq!(read_all(&j, 1), written);
    let syncs = j.sync_count();
    assert!(syncs >= 1 && syncs < total, "no group commit: {syncs} syncs");
    assert!(
        !j.faults.overlapped.load(Ordering::SeqCst),
        "two fdatasyncs ran at once"
    );
    assert_eq!(j.durable_seq(), total);
}

#[test]
fn appends_proceed_while_a_sync_runs_and_the_next_leader_covers_them() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    let j = Arc::new(j);
    j.append(&[b"first"]).unwrap();
    j.faults.sync_delay_ms.store(300, Ordering::SeqCst);
    let leader = {
        let j = Arc::clone(&j);
        thread::spawn(move || j.wait_durable(1).unwrap())
    };
    while j.faults.in_sync.load(Ordering::SeqCst) == 0 {
        thread::yield_now();
    }
    // The leader is inside fdatasync: appending must not wait for it.
    let seqs: Vec<u64> = (0..5).map(|_| j.append(&[b"more"]).unwrap()).collect();
    assert_eq!(j.faults.in_sync.load(Ordering::SeqCst), 1, "append waited for the sync");
    assert_eq!(seqs, [2, 3, 4, 5, 6]);
    // Waiters behind the running sync share the next one.
    j.faults.sync_delay_ms.store(0, Ordering::SeqCst);
    let waiters: Vec<_> = (2..=6)
        .map(|s| {
            let j = Arc::clone(&j);
            thread::spawn(move || j.wait_durable(s).unwrap())
        })
        .collect();
    leader.join().unwrap();
    for w in waiters {
        w.join().unwrap();
    }
    assert_eq!(j.durable_seq(), 6);
    assert!(j.sync_count() <= 3, "{} syncs", j.sync_count());
    assert!(!j.faults.overlapped.load(Ordering::SeqCst));
}

#[test]
fn reader_reports_damage_done_after_open() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    for seq in 1..=10 {
        j.append(&[&payload_for(seq + 20)]).unwrap();
    }
    let offs = frame_offsets(&std::fs::read(&path).unwrap());
    // Flip one payload byte of seq 7 behind the journal's back.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    let at = offs[6] + MAX_HEAD_PREV as u64;
    let mut b = [0u8];
    File::open(&path).unwrap().read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 1], at).unwrap();

    let items: Vec<_> = j.read_from(3).unwrap().collect();
    assert_eq!(items.len(), 5, "four good frames, then the error, then nothing");
    for (i, item) in items[..4].iter().enumerate() {
        assert_eq!(item.as_ref().unwrap().0, i as u64 + 3);
    }
    assert_corrupt_at(items[4].as_ref().map(|_| ()).map_err(clone_err), offs[6]);
    // Skipping over the damaged frame does not read its body.
    assert_eq!(read_all(&j, 8).len(), 3);
}

fn clone_err(e: &JournalError) -> JournalError {
    match e {
        JournalError::Corrupt { path, offset, reason } => JournalError::Corrupt {
            path: path.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn read_from_while_appending() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    let j = Arc::new(j);
    const N: u64 = 3000;
    let writer = {
        let j = Arc::clone(&j);
        thread::spawn(move || {
            let mut seq = 1;
            while seq <= N {
                let batch: Vec<Vec<u8>> = (seq..(seq + 3).min(N + 1)).map(payload_for).collect();
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                assert_eq!(j.append(&refs).unwrap(), seq);
                seq += batch.len() as u64;
            }
        })
    };
    let mut reads = 0;
    loop {
        let before = j.last_seq();
        let from = before / 2 + 1;
        let mut next = from;
        for item in j.read_from(from).unwrap() {
            let (seq, p) = item.unwrap();
            assert_eq!((seq, p), (next, payload_for(next)));
            next += 1;
        }
        // Saw at least everything written before the call, in order.
        assert!(next > before || before == 0 || from > before);
        reads += 1;
        if before == N {
            break;
        }
    }
    writer.join().unwrap();
    assert!(reads > 1);
}

#[test]
fn failed_fdatasync_is_sticky_and_reported_to_every_waiter() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    j.append(&[b"a"]).unwrap();
    j.wait_durable(1).unwrap();
    j.append(&[b"b"]).unwrap();
    let j = Arc::new(j);
    j.faults.fail_sync.store(true, Ordering::SeqCst);
    j.faults.sync_delay_ms.store(200, Ordering::SeqCst);
    let leader = {
        let j = Arc::clone(&j);
        thread::spawn(move || j.wait_durable(2))
    };
    while j.faults.in_sync.load(Ordering::SeqCst) == 0 {
        thread::yield_now();
    }
    // These wait behind the failing sync and must all get its error.
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let j = Arc::clone(&j);
            thread::spawn(move || j.wait_durable(2))
        })
        .collect();
    j.faults.sync_delay_ms.store(0, Ordering::SeqCst);
    for h in std::iter::once(leader).chain(waiters) {
        match h.join().unwrap() {
            Err(JournalError::Io { source, .. }) => {
                assert!(source.to_string().contains("fdatasync failed"), "{source}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(j.sync_count(), 2, "waiters must not retry a failed sync");
    // The fault fired once; the journal still refuses.
    assert!(matches!(j.wait_durable(2), Err(JournalError::Io { .. })));
    assert!(matches!(j.append(&[b"c"]), Err(JournalError::Io { .. })));
    assert_eq!((j.durable_seq(), j.last_seq()), (1, 2));
    // What was already durable stays so.
    j.wait_durable(1).unwrap();
    drop(j);
    // A reopen re-verifies and carries on.
    let (j, rec) = Journal::open(&path).unwrap();
    assert_eq!(rec.records, 2);
    assert_eq!(j.append(&[b"c"]).unwrap(), 3);
}

#[test]
fn failed_write_removes_the_partial_frames_and_refuses_appends() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    j.append(&[b"keep"]).unwrap();
    let before = frames_of(&std::fs::read(&path).unwrap());
    j.faults.fail_write.store(true, Ordering::SeqCst);
    assert!(matches!(
        j.append(&[&[1u8; 500], &[2u8; 500]]),
        Err(JournalError::Io { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(j.last_seq(), 1);
    assert!(matches!(j.append(&[b"x"]), Err(JournalError::Io { .. })));
    // Frames written before the failure can still be made durable.
    j.wait_durable(1).unwrap();
    drop(j);
    let (_j, rec) = Journal::open(&path).unwrap();
    assert_eq!((rec.records, rec.truncated), (1, None));
}

#[test]
fn wait_durable_bounds() {
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    j.wait_durable(0).unwrap();
    assert_eq!(j.sync_count(), 0);
    match j.wait_durable(1) {
        Err(JournalError::Io { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::InvalidInput)
        }
        other => panic!("{other:?}"),
    }
    j.append(&[b"a", b"b"]).unwrap();
    j.wait_durable(1).unwrap();
    // One sync covered both.
    j.wait_durable(2).unwrap();
    assert_eq!(j.sync_count(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_batches_read_back_identically(
        batches in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            1..12,
        ),
        from in 0u64..40,
    ) {
        let (_d, path) = new_dir();
        let (j, _) = Journal::open(&path).unwrap();
        let mut all = Vec::new();
        for batch in &batches {
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let first = j.append(&refs).unwrap();
            prop_assert_eq!(first, all.len() as u64 + 1);
            all.extend(batch.iter().cloned());
        }
        drop(j);
        let (j, rec) = Journal::open(&path).unwrap();
        prop_assert_eq!(rec.records, all.len() as u64);
        prop_assert_eq!(rec.last_hash, chain_hash(&all));
        let got: Vec<Vec<u8>> = read_all(&j, 1).into_iter().map(|(_, p)| p).collect();
        prop_assert_eq!(&got, &all);
        let tail = read_all(&j, from);
        let skip = from.max(1) as usize - 1;
        prop_assert_eq!(tail.len(), all.len().saturating_sub(skip));
        for (seq, p) in tail {
            prop_assert_eq!(&p, &all[seq as usize - 1]);
        }
    }
}

#[test]
fn read_returns_any_frame_by_seq_across_windows_and_reopens() {
    let (_d, path) = new_dir();
    // Frames from empty to larger than the read window, so `read` walks within a
    // window, across windows and onto a frame that does not fit one.
    let size = |seq: u64| match seq % 7 {
        0 => READ_WINDOW + 100,
        1 => 0,
        s => (s as usize) * 997,
    };
    let body = |seq: u64| vec![(seq % 251) as u8; size(seq)];
    let n = 3 * INDEX_STRIDE + 5;
    {
        let (j, _) = Journal::open(&path).unwrap();
        for seq in 1..=n {
            j.append(&[&body(seq)]).unwrap();
            // Written but not yet durable is readable too.
            assert_eq!(j.read(seq).unwrap(), body(seq));
        }
        j.wait_durable(n).unwrap();
    }
    let (j, _) = Journal::open(&path).unwrap();
    for seq in (1..=n).rev() {
        assert_eq!(j.read(seq).unwrap(), body(seq), "frame {seq}");
    }
    assert!(matches!(j.read(0), Err(JournalError::NoSuchRecord(0))));
    assert!(matches!(j.read(n + 1), Err(JournalError::NoSuchRecord(_))));
}

#[test]
fn read_reports_a_damaged_frame_with_its_offset() {
    let (_d, path) = new_dir();
    let bytes = journal_with(&path, 10);
    let offsets = frame_offsets(&bytes);
    let (j, _) = Journal::open(&path).unwrap();
    // Damage frame 7's payload after the journal checked the file at open.
    let at = offsets[6] + MAX_HEAD_PREV as u64;
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[0xFF ^ bytes[at as usize]], at).unwrap();
    match j.read(7) {
        Err(JournalError::Corrupt { offset, .. }) => assert_eq!(offset, offsets[6]),
        other => panic!("expected corruption at {}, got {other:?}", offsets[6]),
    }
    assert_eq!(j.read(8).unwrap(), payload_for(8));
}

/// A frame of kind 1, as 0.1 wrote it.
fn encode_frame_v1(out: &mut Vec<u8>, seq: u64, prev: &Hash, payload: &[u8]) -> Hash {
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    let hcrc = crc32fast::hash(&out[start..start + 12]);
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(prev);
    out.extend_from_slice(payload);
    out.extend_from_slice(&frame_crc(seq, prev, payload).to_le_bytes());
    frame_hash(seq, prev, payload)
}

/// A version 1 file (0.1) of `n` frames; returns the frames' offsets.
fn write_v1_journal(path: &Path, n: u64) -> Vec<u64> {
    let mut bytes = b"LOYJRNL\0\x01\0\0\0\0\0\0\0".to_vec();
    let (mut prev, mut offsets) = ([0u8; 32], Vec::new());
    for seq in 1..=n {
        offsets.push(bytes.len() as u64);
        prev = encode_frame_v1(&mut bytes, seq, &prev, &payload_for(seq));
    }
    std::fs::write(path, &bytes).unwrap();
    offsets
}

#[test]
fn a_ragged_tail_is_cut_with_the_later_frames_in_it() {
    // Three acknowledged frames, then three written in one go and never synced; the
    // disk kept the last two but not the first of them (a power cut after page
    // writeback took them out of order).
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    for seq in 1..=3 {
        j.append(&[&payload_for(seq)]).unwrap();
        j.wait_durable(seq).unwrap();
    }
    j.append(&[&payload_for(4), &payload_for(5), &payload_for(6)]).unwrap();
    drop(j);
    let mut bytes = std::fs::read(&path).unwrap();
    let offs = frame_offsets(&bytes);
    let (gap, gap_end) = (offs[3] as usize, offs[4] as usize);
    bytes[gap..gap_end].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    let tail_end = offs[5] as usize + frame_len_at(&bytes, offs[5] as usize);
    let want = Truncation {
        offset: gap as u64,
        bytes: (tail_end - gap) as u64,
        later_frames: 2,
    };

    let rec = verify(&path).unwrap();
    assert_eq!((rec.records, rec.truncated.clone()), (3, Some(want.clone())));
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "verify changes nothing");
    let (j, rec) = Journal::open(&path).unwrap();
    assert_eq!((rec.records, rec.truncated), (3, Some(want)));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), gap as u64, "cut at the gap");
    assert_eq!(j.append(&[b"after"]).unwrap(), 4);
    j.wait_durable(4).unwrap();
    drop(j);
    assert_eq!(verify(&path).unwrap().records, 4);
}

#[test]
fn damage_that_a_later_watermark_covers_is_corruption() {
    // Frame 4 was durable before frame 6 was written (6's watermark says 5): its
    // damage is to acknowledged history, even though 4 and 5 were one write.
    let (_d, path) = new_dir();
    let (j, _) = Journal::open(&path).unwrap();
    j.append(&[b"one"]).unwrap();
    j.append(&[b"four", b"five"]).unwrap();
    j.wait_durable(3).unwrap();
    j.append(&[b"six"]).unwrap();
    j.wait_durable(4).unwrap();
    drop(j);
    let mut bytes = frames_of(&std::fs::read(&path).unwrap());
    let offs = frame_offsets(&bytes);
    bytes[offs[1] as usize + 30] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert_corrupt_at(verify(&path), offs[1]);
    assert_corrupt_at(Journal::open(&path), offs[1]);
    // Without frame 4 ("six"), nothing proves 2 was on disk: a ragged tail.
    std::fs::write(&path, &bytes[..offs[3] as usize]).unwrap();
    let rec = verify(&path).unwrap();
    assert_eq!((rec.records, rec.truncated.unwrap().later_frames), (1, 1));
}

#[test]
fn a_version_1_file_is_read_upgraded_and_appended_to() {
    let (_d, path) = new_dir();
    let offs = write_v1_journal(&path, 70);
    let payloads: Vec<Vec<u8>> = (1..=70).map(payload_for).collect();
    let (j, rec) = Journal::open(&path).unwrap();
    assert_eq!(
        (rec.records, rec.last_hash, rec.truncated),
        (70, chain_hash(&payloads), None)
    );
    let header = std::fs::read(&path).unwrap()[..16].to_vec();
    assert_eq!(header, file_header(), "the header says version 2 from now on");
    // Frames of both kinds read back, by seq and in order, across the index stride.
    assert_eq!(j.append(&[&payload_for(71)]).unwrap(), 71);
    j.wait_durable(71).unwrap();
    assert_eq!(j.read(70).unwrap(), payload_for(70));
    assert_eq!(j.read(71).unwrap(), payload_for(71));
    let all: Vec<Vec<u8>> = read_all(&j, 1).into_iter().map(|(_, p)| p).collect();
    assert_eq!(all, (1..=71).map(payload_for).collect::<Vec<_>>());
    assert_eq!(read_all(&j, 65).len(), 7);
    drop(j);
    let rec = verify(&path).unwrap();
    assert_eq!(rec.records, 71);
    assert_eq!(
        rec.last_hash,
        chain_hash(&(1..=71).map(payload_for).collect::<Vec<_>>())
    );

    // Damage under 0.1 frames is never taken for an unacknowledged tail: they
    // carry no watermark to tell.
    write_v1_journal(&path, 5);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offs[2] as usize + 20] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert_corrupt_at(Journal::open(&path), offs[2]);
}

/// What a power cut leaves of one unsynced frame write.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Kept,
    Lost,
    /// The first `n` 512-byte sectors of it reached the disk.
    Torn(usize),
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![Just(Fate::Kept), Just(Fate::Lost), (0usize..4).prop_map(Fate::Torn)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A power cut after any mix of synced and unsynced appends: whatever part of the
    /// unsynced frames reached the disk, opening never refuses the file, keeps every
    /// acknowledged frame, and keeps exactly the unsynced frames before the first one
    /// that did not arrive whole.
    #[test]
    fn power_cuts_lose_nothing_acknowledged(
        batches in proptest::collection::vec((1usize..4, any::<bool>()), 1..12),
        unsynced in proptest::collection::vec((1usize..4, fate()), 0..6),
    ) {
        let (_d, path) = new_dir();
        let (j, _) = Journal::open(&path).unwrap();
        let mut seq = 0u64;
        let mut payload = |seq: u64| vec![seq as u8; 100 + (seq as usize * 37) % 700];
        for (n, sync) in &batches {
            let ps: Vec<Vec<u8>> = (1..=*n as u64).map(|i| payload(seq + i)).collect();
            let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
            j.append(&refs).unwrap();
            seq += *n as u64;
            if *sync {
                j.wait_durable(seq).unwrap();
            }
        }
        j.wait_durable(seq).unwrap();
        let acknowledged = seq;
        // Unsynced writes, one fate per frame.
        let mut fates = Vec::new();
        for (n, f) in &unsynced {
            let ps: Vec<Vec<u8>> = (1..=*n as u64).map(|i| payload(seq + i)).collect();
            let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
            j.append(&refs).unwrap();
            seq += *n as u64;
            fates.extend(std::iter::repeat_n(*f, *n));
        }
        drop(j);
        let mut bytes = std::fs::read(&path).unwrap();
        let offs = frame_offsets(&bytes);
        for (i, f) in fates.iter().enumerate() {
            let at = offs[acknowledged as usize + i] as usize;
            let end = at + frame_len_at(&bytes, at);
            let keep = match f {
                Fate::Kept => end - at,
                Fate::Lost => 0,
                Fate::Torn(sectors) => (sectors * 512).min(end - at - 1),
            };
            bytes[at + keep..end].fill(0);
        }
        std::fs::write(&path, &bytes).unwrap();
        let whole = fates.iter().take_while(|f| matches!(f, Fate::Kept)).count() as u64;
        let (j, rec) = Journal::open(&path).unwrap();
        prop_assert_eq!(rec.records, acknowledged + whole);
        let got: Vec<Vec<u8>> = read_all(&j, 1).into_iter().map(|(_, p)| p).collect();
        prop_assert_eq!(got, (1..=acknowledged + whole).map(&mut payload).collect::<Vec<_>>());
    }
}
