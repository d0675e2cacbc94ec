//! Sequential reader over a journal, on its own read-only file handle.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::{frame_crc, parse_head, Head, JournalError, HEAD_1, HEAD_2, KIND_2, MAX_PAYLOAD};

/// Large enough that replaying a big journal is a few hundred reads.
const READ_BUF: usize = 1 << 20;

/// Yields `(seq, payload)` for each frame from the requested seq up to the
/// last frame written when it was created. After an error it yields nothing.
pub struct Reader {
    path: PathBuf,
    src: BufReader<File>,
    /// File offset of the next frame.
    offset: u64,
    next_seq: u64,
    from: u64,
    last: u64,
    done: bool,
}

impl Reader {
    /// `offset` is where the frame `start_seq` begins (start_seq <= from);
    /// frames before `from` are skipped without reading their bodies.
    pub(super) fn open(path: &Path, offset: u64, start_seq: u64, from: u64, last: u64) -> Result<Reader, JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        // SAFETY: posix_fadvise only inspects the descriptor, which `file`
        // keeps open. The result is ignored: it is only a readahead hint.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
        }
        let mut src = BufReader::with_capacity(READ_BUF, file);
        src.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        Ok(Reader {
            path: path.to_path_buf(),
            src,
            offset,
            next_seq: start_seq,
            from,
            last,
            done: false,
        })
    }

    /// Like `next`, but reads the payload into `buf` (replacing its contents)
    /// so a replay loop can reuse one allocation. Returns the frame's seq.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Option<Result<u64, JournalError>> {
        if self.done {
            return None;
        }
        match self.step(buf) {
            Ok(Some(seq)) => Some(Ok(seq)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn step(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>, JournalError> {
        while self.next_seq < self.from && self.next_seq <= self.last {
            let head = self.read_head()?;
            let rest = (head.frame_len() - head.size()) as i64;
            self.src.seek_relative(rest).map_err(|e| self.io_err(e))?;
            self.advance(&head);
        }
        if self.next_seq > self.last {
            return Ok(None);
        }
        let head = self.read_head()?;
        let mut prev = [0u8; 32];
        self.read_exact(&mut prev)?;
        buf.clear();
        buf.resize(head.len, 0);
        self.read_exact(buf)?;
        let mut crc = [0u8; 4];
        self.read_exact(&mut crc)?;
        if frame_crc(self.next_seq, &prev, buf) != u32::from_le_bytes(crc) {
            return Err(self.corrupt("crc mismatch".into()));
        }
        let seq = self.next_seq;
        self.advance(&head);
        Ok(Some(seq))
    }

    /// Reads the head of the frame at `self.offset` and checks its hcrc, length
    /// limit and seq.
    fn read_head(&mut self) -> Result<Head, JournalError> {
        let mut b = [0u8; HEAD_2];
        self.read_exact(&mut b[..4])?;
        let size = if u32::from_le_bytes(b[..4].try_into().unwrap()) & KIND_2 != 0 {
            HEAD_2
        } else {
            HEAD_1
        };
        self.read_exact(&mut b[4..size])?;
        let Some(head) = parse_head(&b[..size]) else {
            return Err(self.corrupt("frame header crc mismatch".into()));
        };
        if head.len > MAX_PAYLOAD {
            return Err(self.corrupt(format!("frame length {} exceeds the 1 MiB limit", head.len)));
        }
        if head.seq != self.next_seq {
            return Err(self.corrupt(format!("expected seq {}, found {}", self.next_seq, head.seq)));
        }
        Ok(head)
    }

    fn advance(&mut self, head: &Head) {
        self.offset += head.frame_len() as u64;
        self.next_seq += 1;
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), JournalError> {
        self.src.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                // Only frames known to be complete are read, so a short file
                // means someone cut it under us.
                self.corrupt("unexpected end of file".into())
            } else {
                self.io_err(e)
            }
        })
    }

    fn corrupt(&self, reason: String) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            offset: self.offset,
            reason,
        }
    }

    fn io_err(&self, source: io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl Iterator for Reader {
    type Item = Result<(u64, Vec<u8>), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut payload = Vec::new();
        let seq = self.next_into(&mut payload)?;
        Some(seq.map(|s| (s, payload)))
    }
}

impl std::iter::FusedIterator for Reader {}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .field("next_seq", &self.next_seq)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}
