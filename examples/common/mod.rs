//! Helpers shared by the benchmarks (`mod common;` in each): environment knobs, a
//! deterministic RNG, the synthetic members and sales, latency statistics, and the
//! parallel enrolment that builds a large data dir quickly.
#![allow(dead_code)] // each benchmark uses a different subset

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use loyaltyd::engine::{At, Engine, NewMember, Sale};
use loyaltyd::model::Line;

/// (sku, category, unit price in minor units).
pub const CATALOG: [(&str, &str, i64); 8] = [
    ("rice-5kg", "grocery", 3450),
    ("milk-1l", "dairy", 1290),
    ("eggs-12", "grocery", 2100),
    ("cigarettes", "tobacco", 2500),
    ("green-tea", "drinks", 5800),
    ("soap", "household", 990),
    ("beef-500g", "meat", 8900),
    ("red-wine", "drinks", 16800),
];

/// A count from the environment (`1_000_000` and `1000000` both work), or `default`.
pub fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v:?} is not a count")),
        Err(_) => Ok(default),
    }
}

/// BENCH_DIR (default `target`): where the temporary data dirs go. Keep it on the disk
/// you care about.
pub fn bench_dir() -> Result<PathBuf> {
    let base = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()));
    std::fs::create_dir_all(&base).with_context(|| base.display().to_string())?;
    Ok(base)
}

/// xorshift64*: deterministic, no rand crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Member `i`'s card: `BC` and 8 digits, which is also 10 hex characters (an RDM6300 id).
pub fn card(i: usize) -> String {
    format!("BC{i:08}")
}

pub fn phone(i: usize) -> String {
    format!("+861{i:010}")
}

pub fn new_member(i: usize) -> NewMember {
    NewMember {
        card: Some(card(i)),
        name: format!("Member {i}"),
        phone: phone(i),
        ..NewMember::default()
    }
}

/// 2 or 3 distinct catalog lines, quantity 1 to 3.
pub fn random_lines(rng: &mut Rng) -> Vec<Line> {
    let n = 2 + rng.below(2);
    let first = rng.below(CATALOG.len());
    (0..n)
        .map(|j| {
            let (sku, category, unit_price) = CATALOG[(first + j * 3) % CATALOG.len()];
            Line {
                sku: sku.to_string(),
                category: category.to_string(),
                qty: 1 + rng.below(3) as i64,
                unit_price,
            }
        })
        .collect()
}

/// A sale by a random member among `members`.
pub fn random_sale(rng: &mut Rng, members: usize) -> Sale {
    Sale {
        card: card(rng.below(members)),
        lines: random_lines(rng),
        redeem_points: None,
        pin: None,
        coupon: None,
    }
}

/// Enrols members `range` with `threads` threads (1 = strictly one after another); the
/// threads' commits share fdatasyncs (group commit), which is what makes 1M members quick.
pub fn enrol(engine: &Engine, range: std::ops::Range<usize>, threads: usize, at: At) -> Result<()> {
    let next = AtomicUsize::new(range.start);
    let end = range.end;
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            return Ok(());
                        }
                        engine
                            .add_member(new_member(i), None, at.clone())
                            .with_context(|| format!("enrolling member {i}"))?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("enrol thread panicked"))
            .collect()
    });
    results.into_iter().collect()
}

/// 512-byte writes, each followed by fdatasync: what the disk alone costs per durable
/// write, to read the commit figures against. Either appends to an O_APPEND file (the
/// figure the targets are set against), or overwrites in place in a file zero-filled
/// beforehand (what the journal does, which spares the filesystem a metadata commit
/// per sync).
pub struct RawFile {
    file: std::fs::File,
    /// Pre-zeroed: where the next block goes.
    at: Option<u64>,
}

impl RawFile {
    pub fn open(path: &Path) -> Result<RawFile> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| path.display().to_string())?;
        Ok(RawFile { file, at: None })
    }

    /// A file of `blocks` zero blocks, made durable, to be overwritten from the start.
    pub fn pre_zeroed(path: &Path, blocks: usize) -> Result<RawFile> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| path.display().to_string())?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = blocks * 512;
        while left > 0 {
            let n = left.min(zeros.len());
            file.write_all(&zeros[..n])?;
            left -= n;
        }
        file.sync_all()?;
        Ok(RawFile { file, at: Some(0) })
    }

    fn durable_write(&mut self, block: &[u8]) -> Result<()> {
        match &mut self.at {
            None => self.file.write_all(block)?,
            Some(at) => {
                std::os::unix::fs::FileExt::write_all_at(&self.file, block, *at)?;
                *at += block.len() as u64;
            }
        }
        self.file.sync_data()?;
        Ok(())
    }

    /// `n` writes; the time they took together.
    pub fn appends(&mut self, n: usize) -> Result<Duration> {
        let block = [0x5Au8; 512];
        let t0 = Instant::now();
        for _ in 0..n {
            self.durable_write(&block)?;
        }
        Ok(t0.elapsed())
    }

    /// `n` writes; the µs each one took.
    pub fn timed_appends(&mut self, n: usize) -> Result<Vec<u32>> {
        let block = [0x5Au8; 512];
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            self.durable_write(&block)?;
            lat.push(us(start.elapsed()));
        }
        Ok(lat)
    }
}

/// Latencies in µs, sorted on construction.
pub struct Lat(pub Vec<u32>);

impl Lat {
    pub fn new(mut v: Vec<u32>) -> Lat {
        v.sort_unstable();
        Lat(v)
    }
    /// The nearest-rank percentile, `p` in 0..=1.
    pub fn pct(&self, p: f64) -> u32 {
        if self.0.is_empty() {
            return 0;
        }
        let i = ((self.0.len() as f64 * p).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[i]
    }
    pub fn max(&self) -> u32 {
        self.0.last().copied().unwrap_or(0)
    }
    pub fn mean(&self) -> f64 {
        self.0.iter().map(|&x| x as f64).sum::<f64>() / self.0.len().max(1) as f64
    }
}

/// A duration in whole µs, saturating.
pub fn us(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// Events per second.
pub fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// A `kB` field of `/proc/PID/status` (`self` for this process), e.g. `VmHWM:`.
pub fn proc_status_kib(pid: &str, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in {path}"))?;
    Ok(line[field.len()..].trim().trim_end_matches("kB").trim().parse()?)
}

/// Starts this process's peak resident memory (VmHWM) over from its current size.
pub fn reset_peak_rss() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM through /proc/self/clear_refs")
}
