//! What sled 0.34 itself costs, without loyaltyd: the floor under the store's figures.
//! Prints figures, never passes or fails.
//!
//! ```text
//! cargo run --release --example sled_floor [KEYS] [VALUE_BYTES]      # 1000000 250
//! ```
//!
//! Writes KEYS keys of VALUE_BYTES each into a fresh sled (8 MiB cache, batches of 4096,
//! as the store's flusher does), once in key order and once in random order, then opens
//! the random one again in a fresh process and reads its resident memory. BENCH_DIR
//! (default `target`) says where the databases go.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

fn config(dir: &Path) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity(8 << 20)
        .mode(sled::Mode::HighThroughput)
}

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map_or_else(String::new, |l| l[field.len() + 1..].trim().to_string())
}

/// Writes `n` keys; returns the seconds it took.
fn write(dir: &Path, n: u64, value: usize, random: bool) -> Result<f64> {
    let _ = std::fs::remove_dir_all(dir);
    let db = config(dir).open()?;
    let v = vec![7u8; value];
    let t = Instant::now();
    let mut i = 0u64;
    while i < n {
        let mut batch = sled::Batch::default();
        for _ in 0..4096.min(n - i) {
            let k = if random {
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            } else {
                i
            };
            batch.insert(&k.to_be_bytes()[..], v.as_slice());
            i += 1;
        }
        db.apply_batch(batch)?;
    }
    db.flush()?;
    Ok(t.elapsed().as_secs_f64())
}

fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => du(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--reopen") {
        let t = Instant::now();
        let db = config(Path::new(&args[2])).open()?;
        let opened = t.elapsed().as_secs_f64();
        println!(
            "reopened in {opened:.2} s: VmRSS {} (peak {})",
            status("VmRSS:"),
            status("VmHWM:")
        );
        drop(db);
        return Ok(());
    }
    let n: u64 = args.get(1).map_or(Ok(1_000_000), |a| a.parse()).context("KEYS")?;
    let value: usize = args.get(2).map_or(Ok(250), |a| a.parse()).context("VALUE_BYTES")?;
    let base = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()));
    let tmp = tempfile::tempdir_in(&base)?;
    for random in [false, true] {
        let dir = tmp.path().join(if random { "random" } else { "ordered" });
        let secs = write(&dir, n, value, random)?;
        println!(
            "{n} keys of {value} B in {} order: {secs:.1} s = {:.1} us per key; {} MiB on disk",
            if random { "random" } else { "key" },
            secs * 1e6 / n as f64,
            du(&dir) >> 20
        );
    }
    let out = Command::new(std::env::current_exe()?)
        .arg("--reopen")
        .arg(tmp.path().join("random"))
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}
