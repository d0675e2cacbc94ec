//! Verification of a whole journal file, shared by `Journal::open` and `verify`.
//! Never writes: deciding what to do with a torn tail is the caller's job.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    file_header, frame_crc, frame_hash, parse_head, Hash, JournalError, Truncation, FILE_HEADER_LEN, FRAME_OVERHEAD,
    INDEX_STRIDE, MAGIC, MAX_PAYLOAD, VERSION,
};

/// Big sequential reads: opening verifies every byte of the file.
const SCAN_BUF: usize = 1 << 20;
/// Chunk size of the forward search for a valid frame after a bad one.
const SEARCH_WINDOW: usize = 1 << 20;

pub(super) enum Header {
    /// 16 valid header bytes.
    Complete,
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
    if version != VERSION {
        return Err(corrupt(&format!("unsupported format version {version}")));
    }
    if got[12..16] != [0; 4] {
        return Err(corrupt("reserved header bytes are not zero"));
    }
    Ok(Header::Complete)
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
/// torn-tail rule of the module docs.
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
            Ok(hash) => {
                if s.records % INDEX_STRIDE == 0 {
                    s.index.push(s.end);
                }
                s.records += 1;
                s.last_hash = hash;
                s.end += (FRAME_OVERHEAD + payload.len()) as u64;
            }
            Err(reason) => {
                let data_end = data_end(file, s.end, file_len).map_err(io_err)?;
                if data_end == s.end {
                    // Only zeros from here: the end of the history.
                    break;
                }
                if valid_frame_after(file, s.end + 1, file_len, s.records).map_err(io_err)? {
                    return Err(JournalError::Corrupt {
                        path: path.to_path_buf(),
                        offset: s.end,
                        reason,
                    });
                }
                s.torn = Some(Truncation {
                    offset: s.end,
                    bytes: data_end - s.end,
                });
                break;
            }
        }
    }
    Ok(s)
}

/// Reads and checks the frame at `offset` (where `src` is positioned).
/// Outer error: I/O. Inner error: why the frame is not valid; `src` is then
/// left at an unspecified position.
fn check_frame(
    src: &mut impl Read,
    offset: u64,
    file_len: u64,
    expect_seq: u64,
    prev_hash: &Hash,
    payload: &mut Vec<u8>,
) -> io::Result<Result<Hash, String>> {
    let remaining = file_len - offset;
    if remaining < 16 {
        return Ok(Err(format!("incomplete frame header ({remaining} bytes)")));
    }
    let mut head = [0u8; 16];
    src.read_exact(&mut head)?;
    let Some((len, seq)) = parse_head(&head) else {
        return Ok(Err("frame header crc mismatch".into()));
    };
    if len > MAX_PAYLOAD {
        return Ok(Err(format!("frame length {len} exceeds the 1 MiB limit")));
    }
    if remaining < (FRAME_OVERHEAD + len) as u64 {
        return Ok(Err(format!(
            "frame of {} bytes runs past the end of the file",
            FRAME_OVERHEAD + len
        )));
    }
    if seq != expect_seq {
        return Ok(Err(format!("expected seq {expect_seq}, found {seq}")));
    }
    let mut prev = [0u8; 32];
    src.read_exact(&mut prev)?;
    payload.clear();
    payload.resize(len, 0);
    src.read_exact(payload)?;
    let mut crc = [0u8; 4];
    src.read_exact(&mut crc)?;
    if frame_crc(seq, &prev, payload) != u32::from_le_bytes(crc) {
        return Ok(Err(format!("crc mismatch in frame seq {seq}")));
    }
    if prev != *prev_hash {
        return Ok(Err(format!(
            "hash chain broken: prev of seq {seq} is not the hash of seq {}",
            seq - 1
        )));
    }
    Ok(Ok(frame_hash(seq, &prev, payload)))
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

/// Is there a complete valid frame (hcrc ok, seq > `last_seq`, crc ok)
/// starting anywhere in `start..file_len`? Tells damage in the middle of the
/// history from a torn tail.
fn valid_frame_after(file: &File, start: u64, file_len: u64, last_seq: u64) -> io::Result<bool> {
    let overhead = FRAME_OVERHEAD as u64;
    let mut window = Vec::new();
    let mut body = Vec::new();
    let mut pos = start;
    while pos + overhead <= file_len {
        // Loop condition: n >= FRAME_OVERHEAD > 16, so each window holds a
        // candidate header and the advance below makes progress.
        let n = (file_len - pos).min(SEARCH_WINDOW as u64) as usize;
        window.resize(n, 0);
        file.read_exact_at(&mut window, pos)?;
        for i in 0..=n - 16 {
            let at = pos + i as u64;
            if at + overhead > file_len {
                // No room for even an empty frame from here on.
                return Ok(false);
            }
            let h = &window[i..i + 16];
            // Cheap filters first; the crc is computed for few positions.
            let len = u32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
            let seq = u64::from_le_bytes(h[4..12].try_into().unwrap());
            if len > MAX_PAYLOAD || seq <= last_seq || at + overhead + len as u64 > file_len {
                continue;
            }
            if parse_head(h).is_none() {
                continue;
            }
            body.resize(32 + len + 4, 0);
            file.read_exact_at(&mut body, at + 16)?;
            let prev: Hash = body[..32].try_into().unwrap();
            let crc = u32::from_le_bytes(body[32 + len..].try_into().unwrap());
            if frame_crc(seq, &prev, &body[32..32 + len]) == crc {
                return Ok(true);
            }
        }
        // Re-examine the last 15 positions, whose headers the window cut.
        pos += (n - 15) as u64;
    }
    Ok(false)
}
