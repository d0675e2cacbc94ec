//! Verification of a whole journal file, shared by `Journal::open` and `verify`.
//! Never writes: deciding what to do with a torn tail is the caller's job.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    file_header, frame_crc, frame_hash, parse_head, Hash, Head, JournalError, Truncation, FILE_HEADER_LEN, HEAD_1,
    HEAD_2, INDEX_STRIDE, KIND_2, MAGIC, MAX_PAYLOAD, MIN_FRAME, VERSION, VERSION_1,
};

/// Big sequential reads: opening verifies every byte of the file.
const SCAN_BUF: usize = 1 << 20;
/// Chunk size of the forward search for a valid frame after a bad one.
const SEARCH_WINDOW: usize = 1 << 20;

pub(super) enum Header {
    /// 16 valid header bytes, of this format version.
    Complete(u32),
    /// The file is this many bytes long (< 16) and all of them are a prefix of
    /// a valid header: a crash while creating.
    Partial(u64),
}

pub(super) fn check_header(path: &Path, file: &File, len: u64) -> Result<Header, JournalError> {
    let expected = file_header();
    let n = len.min(FILE_HEADER_LEN) as usize;
    let mut got = [0u8; FILE_HEADER_LEN as usize];
    file.read_exact_at(&mut got[..n], 0)
        .map_err(|source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let corrupt = |reason: &str| JournalError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.to_string(),
    };
    if n < FILE_HEADER_LEN as usize {
        return if got[..n] == expected[..n] {
            Ok(Header::Partial(len))
        } else {
            Err(corrupt("not a loyaltyd journal (bad magic)"))
        };
    }
    if got[..8] != MAGIC {
        return Err(corrupt("not a loyaltyd journal (bad magic)"));
    }
    let version = u32::from_le_bytes(got[8..12].try_into().unwrap());
    if version != VERSION && version != VERSION_1 {
        return Err(corrupt(&format!("unsupported format version {version}")));
    }
    if got[12..16] != [0; 4] {
        return Err(corrupt("reserved header bytes are not zero"));
    }
    Ok(Header::Complete(version))
}

/// Result of a scan of the frames.
pub(super) struct Scan {
    pub records: u64,
    pub last_hash: Hash,
    /// End of the last valid frame.
    pub end: u64,
    pub torn: Option<Truncation>,
    /// See `AppendState::index`.
    pub index: Vec<u64>,
}

impl Scan {
    pub fn empty() -> Scan {
        Scan {
            records: 0,
            last_hash: [0; 32],
            end: FILE_HEADER_LEN,
            torn: None,
            index: Vec::new(),
        }
    }
}

/// Verifies every frame of a file whose header was checked, applying the
/// recovery rule of the module docs.
pub(super) fn scan(path: &Path, file: &File, file_len: u64) -> Result<Scan, JournalError> {
    let io_err = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut src = BufReader::with_capacity(SCAN_BUF, file);
    src.seek(SeekFrom::Start(FILE_HEADER_LEN)).map_err(io_err)?;
    let mut s = Scan::empty();
    let mut payload = Vec::new();
    while s.end < file_len {
        let checked =
            check_frame(&mut src, s.end, file_len, s.records + 1, &s.last_hash, &mut payload).map_err(io_err)?;
        match checked {
            Ok((hash, frame_len)) => {
                if s.records % INDEX_STRIDE == 0 {
                    s.index.push(s.end);
                }
                s.records += 1;
                s.last_hash = hash;
                s.end += frame_len as u64;
            }
            Err(reason) => {
                let data_end = data_end(file, s.end, file_len).map_err(io_err)?;
                if data_end == s.end {
                    // Only zeros from here: the end of the history.
                    break;
                }
                match frames_after(file, s.end + 1, file_len, s.records).map_err(io_err)? {
                    After::Proof(seq) => {
                        return Err(JournalError::Corrupt {
                            path: path.to_path_buf(),
                            offset: s.end,
                            reason: format!(
                                "{reason}; record {seq} after it shows record {} was on disk (acknowledged history)",
                                s.records + 1
                            ),
                        })
                    }
                    After::Unacknowledged(later_frames) => {
                        s.torn = Some(Truncation {
                            offset: s.end,
                            bytes: data_end - s.end,
                            later_frames,
                        });
                    }
                }
                break;
            }
        }
    }
    Ok(s)
}

/// Reads and checks the frame at `offset` (where `src` is positioned); returns its
/// hash and length. Outer error: I/O. Inner error: why the frame is not valid;
/// `src` is then left at an unspecified position.
fn check_frame(
    src: &mut impl Read,
    offset: u64,
    file_len: u64,
    expect_seq: u64,
    prev_hash: &Hash,
    payload: &mut Vec<u8>,
) -> io::Result<Result<(Hash, usize), String>> {
    let remaining = file_len - offset;
    let mut head = [0u8; HEAD_2];
    if remaining < 4 {
        return Ok(Err(format!("incomplete frame header ({remaining} bytes)")));
    }
    src.read_exact(&mut head[..4])?;
    let size = if u32::from_le_bytes(head[..4].try_into().unwrap()) & KIND_2 != 0 {
        HEAD_2
    } else {
        HEAD_1
    };
    if remaining < size as u64 {
        return Ok(Err(format!("incomplete frame header ({remaining} bytes)")));
    }
    src.read_exact(&mut head[4..size])?;
    let Some(h) = parse_head(&head[..size]) else {
        return Ok(Err("frame header crc mismatch".into()));
    };
    if h.len > MAX_PAYLOAD {
        return Ok(Err(format!("frame length {} exceeds the 1 MiB limit", h.len)));
    }
    if remaining < h.frame_len() as u64 {
        return Ok(Err(format!(
            "frame of {} bytes runs past the end of the file",
            h.frame_len()
        )));
    }
    if h.seq != expect_seq {
        return Ok(Err(format!("expected seq {expect_seq}, found {}", h.seq)));
    }
    let mut prev = [0u8; 32];
    src.read_exact(&mut prev)?;
    payload.clear();
    payload.resize(h.len, 0);
    src.read_exact(payload)?;
    let mut crc = [0u8; 4];
    src.read_exact(&mut crc)?;
    if frame_crc(h.seq, &prev, payload) != u32::from_le_bytes(crc) {
        return Ok(Err(format!("crc mismatch in frame seq {}", h.seq)));
    }
    if prev != *prev_hash {
        return Ok(Err(format!(
            "hash chain broken: prev of seq {} is not the hash of seq {}",
            h.seq,
            h.seq - 1
        )));
    }
    Ok(Ok((frame_hash(h.seq, &prev, payload), h.frame_len())))
}

/// One past the last non-zero byte in `start..file_len`, or `start` if they are
/// all zero. Reads backwards: the zeros, if any, are at the end.
fn data_end(file: &File, start: u64, file_len: u64) -> io::Result<u64> {
    let mut window = vec![0u8; SEARCH_WINDOW];
    let mut end = file_len;
    while end > start {
        let n = (end - start).min(SEARCH_WINDOW as u64) as usize;
        let from = end - n as u64;
        file.read_exact_at(&mut window[..n], from)?;
        if let Some(i) = window[..n].iter().rposition(|&b| b != 0) {
            return Ok(from + i as u64 + 1);
        }
        end = from;
    }
    Ok(start)
}

/// What the complete valid frames after a bad one say about it.
#[derive(Debug, PartialEq, Eq)]
enum After {
    /// This frame's watermark covers the bad frame (or it is a 0.1 frame, which
    /// has none): the bad frame had been on disk.
    Proof(u64),
    /// This many frames, none covering it: an unacknowledged tail.
    Unacknowledged(u64),
}

/// Searches `start..file_len` for complete valid frames (hcrc ok, seq above
/// `last_seq`, crc ok) and judges frame `last_seq + 1` by them (see the module docs).
fn frames_after(file: &File, start: u64, file_len: u64, last_seq: u64) -> io::Result<After> {
    let bad_seq = last_seq + 1;
    let mut later = 0;
    let mut window = Vec::new();
    let mut body = Vec::new();
    let mut pos = start;
    while pos + MIN_FRAME as u64 <= file_len {
        let n = (file_len - pos).min(SEARCH_WINDOW as u64) as usize;
        window.resize(n, 0);
        file.read_exact_at(&mut window, pos)?;
        let at_end = pos + n as u64 == file_len;
        let mut i = 0;
        let mut next = None;
        // Heads cut by the window's end are examined again by the next window.
        while i + if at_end { HEAD_1 } else { HEAD_2 } <= n {
            let at = pos + i as u64;
            i += 1;
            let Some(h) = candidate(&window[i - 1..], at, file_len, last_seq) else {
                continue;
            };
            body.resize(32 + h.len + 4, 0);
            file.read_exact_at(&mut body, at + h.size() as u64)?;
            let prev: Hash = body[..32].try_into().unwrap();
            let crc = u32::from_le_bytes(body[32 + h.len..].try_into().unwrap());
            if frame_crc(h.seq, &prev, &body[32..32 + h.len]) != crc {
                continue;
            }
            if h.durable.is_none_or(|d| d >= bad_seq) {
                return Ok(After::Proof(h.seq));
            }
            later += 1;
            next = Some(at + h.frame_len() as u64);
            break;
        }
        pos = next.unwrap_or(pos + i as u64);
    }
    Ok(After::Unacknowledged(later))
}

/// A frame head at `b` worth checking the body of: cheap filters first (length,
/// seq, fits in the file), then the hcrc.
fn candidate(b: &[u8], at: u64, file_len: u64, last_seq: u64) -> Option<Head> {
    let word = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let seq = u64::from_le_bytes(b[4..12].try_into().unwrap());
    let len = (word & !KIND_2) as u64;
    if len > MAX_PAYLOAD as u64 || seq <= last_seq || at + MIN_FRAME as u64 + len > file_len {
        return None;
    }
    let h = parse_head(b)?;
    (at + h.frame_len() as u64 <= file_len).then_some(h)
}
