//! The disk and its page cache, without FUSE: the node graph, the pending writes and
//! namespace changes, what fsync makes durable and what a cut keeps (see the model in
//! `mod.rs`). Every method takes the model's lock through its caller; errors are errnos.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use libc::{EEXIST, EINVAL, EIO, EISDIR, ENOENT, ENOTDIR, ENOTEMPTY, EPERM, ESTALE};

pub const ROOT: u64 = 1;

pub type Res<T> = Result<T, i32>;

/// A directory's entries as readdir gives them: node, kind, name.
pub type Listing = Vec<(u64, NodeKind, OsString)>;

/// A file change the running system sees but the disk may not have.
#[derive(Clone, Debug)]
pub(super) enum Pending {
    Write { off: u64, data: Vec<u8> },
    SetLen(u64),
}

pub(super) struct FileData {
    /// The durable bytes: `backing/<ino>`.
    pub(super) backing: Arc<File>,
    pub(super) durable_len: u64,
    /// The size the running system sees.
    pub(super) len: u64,
    pub(super) pending: Vec<Pending>,
}

impl FileData {
    /// Puts one pending change on the disk.
    pub(super) fn persist(&mut self, p: &Pending) -> io::Result<()> {
        match p {
            Pending::Write { off, data } => {
                self.backing.write_all_at(data, *off)?;
                self.durable_len = self.durable_len.max(off + data.len() as u64);
            }
            Pending::SetLen(l) => {
                self.backing.set_len(*l)?;
                self.durable_len = *l;
            }
        }
        Ok(())
    }
}

pub(super) struct DirData {
    /// The running system's view.
    pub(super) entries: BTreeMap<OsString, u64>,
    /// The disk's: what a cut leaves.
    pub(super) durable: BTreeMap<OsString, u64>,
    /// The running view's `..`.
    pub(super) parent: u64,
}

pub(super) enum Kind {
    File(FileData),
    Dir(DirData),
}

pub(super) struct Node {
    pub(super) kind: Kind,
    pub(super) perm: u16,
    pub(super) nlink: u32,
    pub(super) atime: SystemTime,
    pub(super) mtime: SystemTime,
    pub(super) ctime: SystemTime,
}

/// A namespace change not yet durable, and the directory whose fsync commits it.
#[derive(Clone, Debug)]
pub(super) enum NsOp {
    /// create, mkdir, link: fsync of `dir`.
    Link { dir: u64, name: OsString, ino: u64 },
    /// unlink, rmdir: fsync of `dir`.
    Unlink { dir: u64, name: OsString, ino: u64 },
    /// rename: fsync of the destination directory `to` (the conservative reading).
    Rename {
        from: u64,
        from_name: OsString,
        to: u64,
        to_name: OsString,
        ino: u64,
    },
}

impl NsOp {
    fn committed_by(&self) -> u64 {
        match self {
            NsOp::Link { dir, .. } | NsOp::Unlink { dir, .. } => *dir,
            NsOp::Rename { to, .. } => *to,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    File,
    Dir,
}

#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub ino: u64,
    pub kind: NodeKind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub file_fsyncs: u64,
    pub dir_fsyncs: u64,
    pub cuts: u64,
    /// fsyncs answered EIO because the power went during their delay.
    pub fsyncs_cut: u64,
}

pub struct Model {
    pub(super) backing_dir: PathBuf,
    pub(super) nodes: HashMap<u64, Node>,
    pub(super) next_ino: u64,
    pub(super) ns_pending: Vec<NsOp>,
    pub(super) power: bool,
    /// Bumped at every cut, so an fsync that slept across one cannot commit.
    pub(super) boot: u64,
    pub(super) syncing: HashMap<u64, u64>,
    pub counters: Counters,
}

fn dir_node(perm: u16, parent: u64) -> Node {
    let now = SystemTime::now();
    Node {
        kind: Kind::Dir(DirData {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
            parent,
        }),
        perm,
        nlink: 2,
        atime: now,
        mtime: now,
        ctime: now,
    }
}

impl Model {
    pub fn new(backing_dir: PathBuf) -> Model {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, dir_node(0o755, ROOT));
        Model {
            backing_dir,
            nodes,
            next_ino: ROOT + 1,
            ns_pending: Vec::new(),
            power: true,
            boot: 0,
            syncing: HashMap::new(),
            counters: Counters::default(),
        }
    }

    pub fn powered(&self) -> Res<()> {
        if self.power {
            Ok(())
        } else {
            Err(EIO)
        }
    }

    pub fn boot(&self) -> u64 {
        self.boot
    }

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(ESTALE)
    }

    pub(super) fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(ESTALE)
    }

    fn dir(&self, ino: u64) -> Res<&DirData> {
        match &self.node(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Res<&mut DirData> {
        match &mut self.node_mut(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(ENOTDIR),
        }
    }

    pub(super) fn file_mut(&mut self, ino: u64) -> Res<&mut FileData> {
        match &mut self.node_mut(ino)?.kind {
            Kind::File(f) => Ok(f),
            Kind::Dir(_) => Err(EISDIR),
        }
    }

    fn is_dir(&self, ino: u64) -> Res<bool> {
        Ok(matches!(self.node(ino)?.kind, Kind::Dir(_)))
    }

    pub(super) fn backing_path(&self, ino: u64) -> PathBuf {
        self.backing_dir.join(ino.to_string())
    }

    pub fn attr(&self, ino: u64) -> Res<Attr> {
        self.powered()?;
        let n = self.node(ino)?;
        let (kind, size) = match &n.kind {
            Kind::File(f) => (NodeKind::File, f.len),
            Kind::Dir(d) => (NodeKind::Dir, d.entries.len() as u64),
        };
        Ok(Attr {
            ino,
            kind,
            size,
            perm: n.perm,
            nlink: n.nlink,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
        })
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<Attr> {
        self.powered()?;
        let ino = *self.dir(parent)?.entries.get(name).ok_or(ENOENT)?;
        self.attr(ino)
    }

    fn touch_dir(&mut self, dir: u64) {
        if let Ok(n) = self.node_mut(dir) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
    }

    fn add_entry(&mut self, parent: u64, name: &OsStr, node: Node) -> Res<u64> {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?.entries.insert(name.to_os_string(), ino);
        self.ns_pending.push(NsOp::Link {
            dir: parent,
            name: name.to_os_string(),
            ino,
        });
        self.touch_dir(parent);
        Ok(ino)
    }

    pub fn create(&mut self, parent: u64, name: &OsStr, perm: u16) -> Res<Attr> {
        self.powered()?;
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(EEXIST);
        }
        let path = self.backing_path(self.next_ino);
        let backing = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| e.raw_os_error().unwrap_or(EIO))?;
        let now = SystemTime::now();
        let node = Node {
            kind: Kind::File(FileData {
                backing: Arc::new(backing),
                durable_len: 0,
                len: 0,
                pending: Vec::new(),
            }),
            perm,
            nlink: 1,
            atime: now,
            mtime: now,
            ctime: now,
        };
        let ino = self.add_entry(parent, name, node)?;
        self.attr(ino)
    }

    pub fn mkdir(&mut self, parent: u64, name: &OsStr, perm: u16) -> Res<Attr> {
        self.powered()?;
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(EEXIST);
        }
        let ino = self.add_entry(parent, name, dir_node(perm, parent))?;
        self.attr(ino)
    }

    pub fn link(&mut self, ino: u64, parent: u64, name: &OsStr) -> Res<Attr> {
        self.powered()?;
        if self.is_dir(ino)? {
            return Err(EPERM);
        }
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(EEXIST);
        }
        self.dir_mut(parent)?.entries.insert(name.to_os_string(), ino);
        self.node_mut(ino)?.nlink += 1;
        self.ns_pending.push(NsOp::Link {
            dir: parent,
            name: name.to_os_string(),
            ino,
        });
        self.touch_dir(parent);
        self.attr(ino)
    }

    /// unlink (`want_dir` false) or rmdir (true).
    pub fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Res<()> {
        self.powered()?;
        let ino = *self.dir(parent)?.entries.get(name).ok_or(ENOENT)?;
        match (want_dir, self.is_dir(ino)?) {
            (false, true) => return Err(EISDIR),
            (true, false) => return Err(ENOTDIR),
            (true, true) if !self.dir(ino)?.entries.is_empty() => return Err(ENOTEMPTY),
            _ => {}
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.unlinked(ino)?;
        self.ns_pending.push(NsOp::Unlink {
            dir: parent,
            name: name.to_os_string(),
            ino,
        });
        self.touch_dir(parent);
        Ok(())
    }

    fn unlinked(&mut self, ino: u64) -> Res<()> {
        let dir = self.is_dir(ino)?;
        let n = self.node_mut(ino)?;
        n.nlink = if dir { 0 } else { n.nlink.saturating_sub(1) };
        n.ctime = SystemTime::now();
        Ok(())
    }

    pub fn rename(&mut self, from: u64, name: &OsStr, to: u64, new_name: &OsStr, noreplace: bool) -> Res<()> {
        self.powered()?;
        let ino = *self.dir(from)?.entries.get(name).ok_or(ENOENT)?;
        let moving_dir = self.is_dir(ino)?;
        let replaced = self.dir(to)?.entries.get(new_name).copied();
        if let Some(old) = replaced {
            if old == ino {
                return Ok(()); // two names of one file: POSIX says do nothing
            }
            if noreplace {
                return Err(EEXIST);
            }
            match (moving_dir, self.is_dir(old)?) {
                (true, false) => return Err(ENOTDIR),
                (false, true) => return Err(EISDIR),
                (true, true) if !self.dir(old)?.entries.is_empty() => return Err(ENOTEMPTY),
                _ => {}
            }
        }
        if moving_dir {
            // Not into itself or below itself.
            let mut at = to;
            loop {
                if at == ino {
                    return Err(EINVAL);
                }
                if at == ROOT {
                    break;
                }
                at = self.dir(at)?.parent;
            }
        }
        if let Some(old) = replaced {
            self.unlinked(old)?;
        }
        self.dir_mut(from)?.entries.remove(name);
        self.dir_mut(to)?.entries.insert(new_name.to_os_string(), ino);
        if moving_dir {
            self.dir_mut(ino)?.parent = to;
        }
        self.ns_pending.push(NsOp::Rename {
            from,
            from_name: name.to_os_string(),
            to,
            to_name: new_name.to_os_string(),
            ino,
        });
        self.touch_dir(from);
        self.touch_dir(to);
        Ok(())
    }

    /// The entries of a directory, `.` and `..` first.
    pub fn list(&self, ino: u64) -> Res<Listing> {
        self.powered()?;
        let d = self.dir(ino)?;
        let mut out = vec![
            (ino, NodeKind::Dir, OsString::from(".")),
            (d.parent, NodeKind::Dir, OsString::from("..")),
        ];
        for (name, &child) in &d.entries {
            let kind = if self.is_dir(child)? {
                NodeKind::Dir
            } else {
                NodeKind::File
            };
            out.push((child, kind, name.clone()));
        }
        Ok(out)
    }

    /// The running view of a file: the durable bytes, then every pending change in order.
    pub fn read(&mut self, ino: u64, off: u64, size: u32) -> Res<Vec<u8>> {
        self.powered()?;
        let f = self.file_mut(ino)?;
        let end = (off + u64::from(size)).min(f.len);
        if off >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - off) as usize];
        let durable_end = end.min(f.durable_len);
        if off < durable_end {
            let part = &mut buf[..(durable_end - off) as usize];
            f.backing.read_exact_at(part, off).map_err(|_| EIO)?;
        }
        for p in &f.pending {
            match p {
                Pending::Write { off: at, data } => {
                    let (lo, hi) = ((*at).max(off), (at + data.len() as u64).min(end));
                    if lo < hi {
                        buf[(lo - off) as usize..(hi - off) as usize]
                            .copy_from_slice(&data[(lo - at) as usize..(hi - at) as usize]);
                    }
                }
                Pending::SetLen(l) if *l < end => {
                    let from = (*l).max(off);
                    buf[(from - off) as usize..].fill(0);
                }
                Pending::SetLen(_) => {}
            }
        }
        self.node_mut(ino)?.atime = SystemTime::now();
        Ok(buf)
    }

    pub fn write(&mut self, ino: u64, off: u64, data: &[u8]) -> Res<u32> {
        self.powered()?;
        let f = self.file_mut(ino)?;
        f.len = f.len.max(off + data.len() as u64);
        f.pending.push(Pending::Write {
            off,
            data: data.to_vec(),
        });
        let n = self.node_mut(ino)?;
        n.mtime = SystemTime::now();
        n.ctime = n.mtime;
        Ok(data.len() as u32)
    }

    pub fn set_len(&mut self, ino: u64, len: u64) -> Res<()> {
        self.powered()?;
        let f = self.file_mut(ino)?;
        f.len = len;
        f.pending.push(Pending::SetLen(len));
        let n = self.node_mut(ino)?;
        n.mtime = SystemTime::now();
        n.ctime = n.mtime;
        Ok(())
    }

    pub fn set_meta(
        &mut self,
        ino: u64,
        perm: Option<u16>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Res<()> {
        self.powered()?;
        let n = self.node_mut(ino)?;
        if let Some(p) = perm {
            n.perm = p;
        }
        if let Some(t) = atime {
            n.atime = t;
        }
        if let Some(t) = mtime {
            n.mtime = t;
        }
        n.ctime = SystemTime::now();
        Ok(())
    }

    /// An fsync starts its delay: counted so a test can see it is inside it.
    pub fn sync_started(&mut self, ino: u64) {
        *self.syncing.entry(ino).or_default() += 1;
    }

    pub fn sync_ended(&mut self, ino: u64) {
        if let Some(n) = self.syncing.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                self.syncing.remove(&ino);
            }
        }
    }

    pub fn syncs_in_flight(&self, ino: u64) -> u64 {
        self.syncing.get(&ino).copied().unwrap_or(0)
    }

    /// fsync/fdatasync of a file: its pending changes go to the backing file, in
    /// order. Returns the backing file for the caller to sync outside the lock.
    pub fn fsync_file(&mut self, ino: u64) -> Res<Arc<File>> {
        self.powered()?;
        self.counters.file_fsyncs += 1;
        let f = self.file_mut(ino)?;
        let pending = std::mem::take(&mut f.pending);
        let backing = f.backing.clone();
        for p in &pending {
            f.persist(p).map_err(|_| EIO)?;
        }
        Ok(backing)
    }

    /// fsync of a directory: the pending namespace changes it commits, in order.
    pub fn fsync_dir(&mut self, ino: u64) -> Res<()> {
        self.powered()?;
        self.dir(ino)?;
        self.counters.dir_fsyncs += 1;
        let (mine, rest): (Vec<NsOp>, Vec<NsOp>) = std::mem::take(&mut self.ns_pending)
            .into_iter()
            .partition(|op| op.committed_by() == ino);
        self.ns_pending = rest;
        for op in &mine {
            self.commit(op)?;
        }
        Ok(())
    }

    pub(super) fn commit(&mut self, op: &NsOp) -> Res<()> {
        match op {
            NsOp::Link { dir, name, ino } => {
                self.dir_mut(*dir)?.durable.insert(name.clone(), *ino);
            }
            NsOp::Unlink { dir, name, ino } => {
                let d = self.dir_mut(*dir)?;
                if d.durable.get(name) == Some(ino) {
                    d.durable.remove(name);
                }
            }
            NsOp::Rename {
                from,
                from_name,
                to,
                to_name,
                ino,
            } => {
                let d = self.dir_mut(*from)?;
                if d.durable.get(from_name) == Some(ino) {
                    d.durable.remove(from_name);
                }
                self.dir_mut(*to)?.durable.insert(to_name.clone(), *ino);
            }
        }
        Ok(())
    }
}
