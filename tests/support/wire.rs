//! A point-to-point link between two hosts (namespaces) whose IP packets pass through
//! the test process: a TUN device at each end, a thread reading each, and one writing
//! each packet out when its time comes. On the way it loses, delays (with jitter),
//! duplicates and reorders packets as `tc qdisc ... netem` does, or drops every one
//! (a partition). It stands in for netem because the kernels of this project's
//! machines have no sch_netem (CONFIG_NET_SCH_NETEM off, no loadable modules); the rest
//! is real: each host's own TCP/IP stack, its retransmissions and timers, connections
//! that hang in a partition instead of being refused.

#![allow(dead_code)]

use std::collections::BinaryHeap;
use std::fmt;
use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::os::unix::io::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::{ip, Host, Lab};

/// What the link does to each IPv4 packet, in both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Percent of packets lost.
    pub loss_pct: u32,
    pub delay: Duration,
    /// Each packet waits a delay drawn uniformly from delay ± jitter, so packets
    /// overtake one another, as with netem's jitter.
    pub jitter: Duration,
    /// Percent of packets sent twice, each copy delayed on its own.
    pub duplicate_pct: u32,
    /// Percent of packets sent at once, ahead of the delayed ones (netem's reorder).
    pub reorder_pct: u32,
    /// Every packet lost: a partition.
    pub cut: bool,
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.cut {
            parts.push("100 % loss (partition)".to_string());
        }
        if self.loss_pct > 0 {
            parts.push(format!("loss {} %", self.loss_pct));
        }
        if !self.delay.is_zero() {
            parts.push(format!("delay {:?} ± {:?}", self.delay, self.jitter));
        }
        if self.duplicate_pct > 0 {
            parts.push(format!("duplicate {} %", self.duplicate_pct));
        }
        if self.reorder_pct > 0 {
            parts.push(format!("reorder {} %", self.reorder_pct));
        }
        if parts.is_empty() {
            parts.push("clean".into());
        }
        f.write_str(&parts.join(", "))
    }
}

/// IPv4 packets seen, and what was done to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub packets: u64,
    pub lost: u64,
    /// Lost to a partition.
    pub cut: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub delayed: u64,
}

impl Counts {
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            packets: self.packets - earlier.packets,
            lost: self.lost - earlier.lost,
            cut: self.cut - earlier.cut,
            duplicated: self.duplicated - earlier.duplicated,
            reordered: self.reordered - earlier.reordered,
            delayed: self.delayed - earlier.delayed,
        }
    }
}

/// One end of a wire: the host, its TUN device there and its address on the wire.
#[derive(Clone, Debug)]
pub struct End {
    pub host: Host,
    pub dev: String,
    pub addr: Ipv4Addr,
}

impl End {
    /// Takes this end's device down or up, as a pulled cable would: the route over it
    /// goes, and connecting fails at once until it is back.
    pub fn set_up(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.host.ns, "link", "set", &self.dev, state]);
    }
}

pub struct Wire {
    pub a: End,
    pub b: End,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    fds: [OwnedFd; 2],
    /// By the end the packets come from: 0 = a, 1 = b.
    faults: Mutex<[Faults; 2]>,
    /// Once a packet from this end carries these bytes, every packet towards it is lost.
    cut_answers: Mutex<Option<(usize, Vec<u8>)>>,
    counts: Mutex<Counts>,
    queue: Mutex<BinaryHeap<Pending>>,
    queued: Condvar,
    order: AtomicU64,
    stop: AtomicBool,
}

/// A packet waiting for its time, to be written to `fds[to]`.
struct Pending {
    due: Instant,
    order: u64,
    to: usize,
    packet: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

impl Wire {
    /// Links `a` and `b`: 10.251.N.1 at `a`, 10.251.N.2 at `b`, each the other's only
    /// route over it. `seed` drives the faults' dice.
    pub fn new(lab: &Lab, a: &Host, b: &Host, seed: u64) -> Wire {
        let n = lab.link_no();
        assert!(n < 256);
        let ends = [
            (a, lab.ifname(&format!("w{n}a")), Ipv4Addr::new(10, 251, n as u8, 1)),
            (b, lab.ifname(&format!("w{n}b")), Ipv4Addr::new(10, 251, n as u8, 2)),
        ];
        let fds = [open_tun(&ends[0].1), open_tun(&ends[1].1)];
        for (i, (host, dev, addr)) in ends.iter().enumerate() {
            let peer = ends[1 - i].2;
            ip(&["link", "set", dev, "netns", &host.ns]);
            ip(&[
                "-n",
                &host.ns,
                "addr",
                "add",
                &addr.to_string(),
                "peer",
                &peer.to_string(),
                "dev",
                dev,
            ]);
            ip(&["-n", &host.ns, "link", "set", dev, "up"]);
        }
        let [a, b] = ends.map(|(host, dev, addr)| End {
            host: host.clone(),
            dev,
            addr,
        });
        let shared = Arc::new(Shared {
            fds,
            faults: Mutex::new([Faults::default(); 2]),
            cut_answers: Mutex::new(None),
            counts: Mutex::new(Counts::default()),
            queue: Mutex::new(BinaryHeap::new()),
            queued: Condvar::new(),
            order: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        for from in 0..2 {
            let (s, rng) = (shared.clone(), Rng::new(seed, from as u64));
            threads.push(std::thread::spawn(move || carry(&s, from, rng)));
        }
        let s = shared.clone();
        threads.push(std::thread::spawn(move || deliver(&s)));
        Wire { a, b, shared, threads }
    }

    /// The same faults both ways.
    pub fn set(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = [faults; 2];
    }

    /// Arms a one-way partition: as soon as a packet from end `b` carries `needle`
    /// (say a request's path), every packet towards `b` is lost, so the request arrives
    /// and its answer never does.
    pub fn cut_answers_to_b_after(&self, needle: &[u8]) {
        *self.shared.cut_answers.lock().unwrap() = Some((1, needle.to_vec()));
    }

    /// Whether the armed one-way partition has fired.
    pub fn answers_cut(&self) -> bool {
        self.shared.faults.lock().unwrap()[0].cut
    }

    pub fn counts(&self) -> Counts {
        *self.shared.counts.lock().unwrap()
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.queued.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The descriptors close with the last Arc: the TUN devices go with them.
    }
}

/// A TUN device (IP packets, no extra header) named `name`, in the test's namespace.
fn open_tun(name: &str) -> OwnedFd {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("opening /dev/net/tun");
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes an ifreq, which IfReq lays out (name, flags,
    // the rest of the union as padding); `req` outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    assert_eq!(rc, 0, "TUNSETIFF {name}: {}", std::io::Error::last_os_error());
    OwnedFd::from(file)
}

/// Reads packets arriving at end `from` and queues them for the other end, faults applied.
fn carry(s: &Shared, from: usize, mut rng: Rng) {
    let fd = s.fds[from].as_raw_fd();
    let mut buf = vec![0u8; 65536];
    while !s.stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            continue;
        }
        let packet = &buf[..n as usize];
        let now = Instant::now();
        // IPv6 neighbour chatter passes untouched and uncounted: the tests speak IPv4.
        if packet[0] >> 4 != 4 {
            queue(s, now, 1 - from, packet);
            continue;
        }
        let f = faults_for(s, from, packet);
        let mut c = s.counts.lock().unwrap();
        c.packets += 1;
        if f.cut {
            c.cut += 1;
            continue;
        }
        if rng.percent(f.loss_pct) {
            c.lost += 1;
            continue;
        }
        let copies = if rng.percent(f.duplicate_pct) {
            c.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let wait = if !f.delay.is_zero() && rng.percent(f.reorder_pct) {
                c.reordered += 1;
                Duration::ZERO
            } else {
                rng.around(f.delay, f.jitter)
            };
            c.delayed += u64::from(!wait.is_zero());
            queue(s, now + wait, 1 - from, packet);
        }
    }
}

/// The faults for a packet from end `from`, after firing an armed one-way cut it matches.
fn faults_for(s: &Shared, from: usize, packet: &[u8]) -> Faults {
    let mut faults = s.faults.lock().unwrap();
    let mut armed = s.cut_answers.lock().unwrap();
    if let Some((end, needle)) = armed.as_ref() {
        if *end == from && packet.windows(needle.len()).any(|w| w == &needle[..]) {
            faults[1 - from].cut = true;
            *armed = None;
        }
    }
    faults[from]
}

fn queue(s: &Shared, due: Instant, to: usize, packet: &[u8]) {
    let order = s.order.fetch_add(1, Ordering::SeqCst);
    s.queue.lock().unwrap().push(Pending {
        due,
        order,
        to,
        packet: packet.to_vec(),
    });
    s.queued.notify_one();
}

/// Writes each queued packet to its end when it is due.
fn deliver(s: &Shared) {
    let mut q = s.queue.lock().unwrap();
    while !s.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        match q.peek().map(|p| p.due) {
            Some(due) if due <= now => {
                let p = q.pop().unwrap();
                drop(q);
                // A write to a device that is down fails (EIO): the packet is lost, as
                // on a pulled cable.
                // SAFETY: the packet is readable for its length.
                unsafe { libc::write(s.fds[p.to].as_raw_fd(), p.packet.as_ptr().cast(), p.packet.len()) };
                q = s.queue.lock().unwrap();
            }
            Some(due) => q = s.queued.wait_timeout(q, due - now).unwrap().0,
            None => q = s.queued.wait_timeout(q, Duration::from_millis(100)).unwrap().0,
        }
    }
}

/// xorshift64*: the faults' dice, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng((seed ^ (stream + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn percent(&mut self, pct: u32) -> bool {
        pct > 0 && self.next() % 100 < u64::from(pct)
    }

    /// Uniform in `mid` ± `spread`, at least zero.
    fn around(&mut self, mid: Duration, spread: Duration) -> Duration {
        let (mid, spread) = (mid.as_micros() as u64, spread.as_micros() as u64);
        let us = (mid + self.next() % (2 * spread + 1)).saturating_sub(spread);
        Duration::from_micros(us)
    }
}
