//! What a power cut leaves: per file, which pending changes reached the disk; which
//! pending namespace changes committed; then the power back on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::os::unix::fs::FileExt;

use super::model::{FileData, Kind, Model, Node, Pending, ROOT};

/// The unit a torn write is cut at: what a disk writes atomically.
pub const SECTOR: u64 = 512;

/// What a power cut does to the writes that were not made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CutMode {
    /// Every pending write and namespace change is lost.
    All,
    /// Per file, a random prefix of its pending writes reached the disk.
    Prefix,
    /// Per file, a random subset (later writes may land, earlier ones not).
    Subset,
    /// Per file, a random prefix and then part of the next write, in whole sectors.
    Torn,
}

impl CutMode {
    pub const EVERY: [CutMode; 4] = [CutMode::All, CutMode::Prefix, CutMode::Subset, CutMode::Torn];

    pub fn name(self) -> &'static str {
        match self {
            CutMode::All => "all",
            CutMode::Prefix => "prefix",
            CutMode::Subset => "subset",
            CutMode::Torn => "torn",
        }
    }
}

/// splitmix64: small, seedable, good enough to pick what a cut keeps.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// What one cut did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Pending file writes and size changes: reached the disk, lost, torn.
    pub writes_kept: u64,
    pub writes_lost: u64,
    pub writes_torn: u64,
    /// Pending namespace changes: committed, lost.
    pub ns_kept: u64,
    pub ns_lost: u64,
    /// fsyncs that were waiting (in their delay) and will fail with EIO.
    pub fsyncs_in_flight: u64,
}

/// Pieces of a write, split at sector boundaries of the file.
fn sectors(off: u64, len: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut at, end) = (off, off + len);
    while at < end {
        let next = ((at / SECTOR) + 1) * SECTOR;
        let stop = next.min(end);
        out.push((at, stop));
        at = stop;
    }
    out
}

impl Model {
    /// The power goes: each file keeps what `mode` lets reach the disk, namespace
    /// changes are lost (`All`) or a random prefix of them commits, in order. Every
    /// request then fails with EIO until `power_on`.
    pub fn cut(&mut self, mode: CutMode, rng: &mut Rng) -> CutReport {
        let mut report = CutReport {
            fsyncs_in_flight: self.syncing.values().sum(),
            ..CutReport::default()
        };
        let mut files: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| matches!(&n.kind, Kind::File(f) if !f.pending.is_empty()))
            .map(|(&ino, _)| ino)
            .collect();
        files.sort_unstable(); // a seed must replay the same cut
        for ino in files {
            let Ok(f) = self.file_mut(ino) else { continue };
            let pending = std::mem::take(&mut f.pending);
            let n = pending.len() as u64;
            let (keep, torn): (Vec<bool>, Option<usize>) = match mode {
                CutMode::All => (vec![false; n as usize], None),
                CutMode::Prefix => {
                    let k = rng.below(n + 1);
                    ((0..n).map(|i| i < k).collect(), None)
                }
                CutMode::Subset => ((0..n).map(|_| rng.coin()).collect(), None),
                CutMode::Torn => {
                    let k = rng.below(n);
                    ((0..n).map(|i| i < k).collect(), Some(k as usize))
                }
            };
            for (i, p) in pending.iter().enumerate() {
                if torn == Some(i) {
                    let parts = match p {
                        Pending::Write { off, data } => sectors(*off, data.len() as u64),
                        Pending::SetLen(_) => vec![],
                    };
                    let mut chosen: Vec<bool> = (0..parts.len().max(1)).map(|_| rng.coin()).collect();
                    if chosen.len() >= 2 {
                        // Neither none nor all of it: a torn write.
                        let j = rng.below(chosen.len() as u64) as usize;
                        if chosen.iter().all(|&c| c) {
                            chosen[j] = false;
                        } else if chosen.iter().all(|&c| !c) {
                            chosen[j] = true;
                        }
                    }
                    let _ = persist_torn(f, p, &parts, &chosen);
                    report.writes_torn += 1;
                } else if keep[i] {
                    let _ = f.persist(p);
                    report.writes_kept += 1;
                } else {
                    report.writes_lost += 1;
                }
            }
        }
        let ns = std::mem::take(&mut self.ns_pending);
        let k = match mode {
            CutMode::All => 0,
            _ => rng.below(ns.len() as u64 + 1) as usize,
        };
        for op in &ns[..k] {
            let _ = self.commit(op);
        }
        report.ns_kept = k as u64;
        report.ns_lost = (ns.len() - k) as u64;
        self.power = false;
        self.boot += 1;
        self.counters.cuts += 1;
        report
    }

    /// Power back: the running view becomes the durable one. Nodes keep their numbers;
    /// nodes no durable name reaches are gone, with their backing files.
    pub fn power_on(&mut self) -> io::Result<()> {
        let mut reached: HashSet<u64> = HashSet::from([ROOT]);
        let mut links: HashMap<u64, u32> = HashMap::new();
        let mut stack = vec![ROOT];
        while let Some(d) = stack.pop() {
            let Some(Node {
                kind: Kind::Dir(dd), ..
            }) = self.nodes.get(&d)
            else {
                continue;
            };
            let mut keep = BTreeMap::new();
            let mut subdirs = Vec::new();
            for (name, &child) in &dd.durable {
                match self.nodes.get(&child).map(|n| &n.kind) {
                    Some(Kind::File(_)) => {
                        *links.entry(child).or_default() += 1;
                        reached.insert(child);
                        keep.insert(name.clone(), child);
                    }
                    // A directory reached twice (only renames across directories made
                    // durable one side at a time can do that) stays at the first place.
                    Some(Kind::Dir(_)) if reached.insert(child) => {
                        subdirs.push(child);
                        keep.insert(name.clone(), child);
                    }
                    _ => {}
                }
            }
            for &s in &subdirs {
                if let Some(Node {
                    kind: Kind::Dir(sd), ..
                }) = self.nodes.get_mut(&s)
                {
                    sd.parent = d;
                }
                stack.push(s);
            }
            if let Some(Node {
                kind: Kind::Dir(dd), ..
            }) = self.nodes.get_mut(&d)
            {
                dd.durable = keep;
            }
        }
        let gone: Vec<u64> = self.nodes.keys().copied().filter(|i| !reached.contains(i)).collect();
        for ino in gone {
            if let Some(Node {
                kind: Kind::File(_), ..
            }) = self.nodes.remove(&ino)
            {
                std::fs::remove_file(self.backing_path(ino))?;
            }
        }
        for (ino, n) in &mut self.nodes {
            match &mut n.kind {
                Kind::Dir(d) => {
                    d.entries = d.durable.clone();
                    n.nlink = 2;
                }
                Kind::File(f) => {
                    f.pending.clear();
                    f.len = f.durable_len;
                    n.nlink = links.get(ino).copied().unwrap_or(0);
                }
            }
        }
        self.ns_pending.clear();
        self.syncing.clear();
        self.power = true;
        Ok(())
    }
}

/// Puts the chosen sectors of a pending write on the disk (a size change: all or nothing).
fn persist_torn(f: &mut FileData, p: &Pending, parts: &[(u64, u64)], chosen: &[bool]) -> io::Result<()> {
    match p {
        Pending::Write { off, data } => {
            for (&(lo, hi), &take) in parts.iter().zip(chosen) {
                if take {
                    f.backing
                        .write_all_at(&data[(lo - off) as usize..(hi - off) as usize], lo)?;
                    f.durable_len = f.durable_len.max(hi);
                }
            }
            Ok(())
        }
        Pending::SetLen(_) if chosen.first() == Some(&true) => f.persist(p),
        Pending::SetLen(_) => Ok(()),
    }
}
