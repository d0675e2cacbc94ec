//! Hosts for the network tests: a network namespace per host, each with a clean
//! management link (a veth pair) to the test's own namespace, through which the test
//! reaches the host's APIs; the links between hosts are `Wire`s (wire.rs).
//!
//! Names and the test-side addresses come from a slot this run holds locked (flock on a
//! file under /tmp, released by the kernel however the run ends): runs in parallel never
//! share them, and whatever a crashed run left in its slot (namespaces, the processes
//! still in them, links) is removed when the slot is taken again.

#![allow(dead_code)]

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const SLOTS: u32 = 64;

/// Runs `ip ARGS`, failing the test with what it said if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Whether the namespace tests can run here: as root, with `ip` (iproute2), network
/// namespaces and /dev/net/tun. If not, the test fails under CI=true (CI must run it)
/// and is skipped loudly elsewhere. Under an emulating runner (the aarch64 run) it is
/// skipped: what it checks does not depend on the architecture, and it would cost
/// minutes there.
pub fn can_run(test: &str) -> bool {
    if std::env::var("LOYALTYD_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty()) {
        loud(&format!(
            "SKIPPED {test}: not run under an emulating LOYALTYD_TEST_RUNNER (it runs natively)"
        ));
        return false;
    }
    let Some(missing) = missing() else {
        return true;
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} cannot run on this CI machine: {missing}");
    }
    loud(&format!("*** SKIPPED {test}: {missing} (under CI=true this fails) ***"));
    false
}

/// To the process's stderr itself: the test harness does not capture it, so a skipped
/// test says so even though it is reported as passed.
fn loud(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n{message}\n");
}

fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, links, TUN devices)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs `ip` (apt-get install iproute2)".into());
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        return Some(format!("needs /dev/net/tun: {e}"));
    }
    let probe = format!("lydprobe{}", std::process::id());
    let out = match Command::new("ip").args(["netns", "add", &probe]).output() {
        Ok(out) => out,
        Err(e) => return Some(format!("cannot run ip: {e}")),
    };
    if !out.status.success() {
        return Some(format!(
            "cannot make a network namespace: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    ip(&["netns", "del", &probe]);
    None
}

/// A child started in a namespace dies with the test's thread that started it, so that
/// a test killed outright leaves no daemon behind (a panic kills them in Drop anyway).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// The namespaces of one test run. Dropping it deletes them (declare it before the
/// processes and wires that live in them, so that those go first).
pub struct Lab {
    pub slot: u32,
    _lock: File,
    hosts: Vec<String>,
    next_link: AtomicU32,
}

/// One host: a namespace, and its address on the management link.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub addr: Ipv4Addr,
}

impl Lab {
    pub fn new() -> Lab {
        let (slot, lock) = (0..SLOTS)
            .find_map(|k| {
                let f = File::create(format!("/tmp/loyaltyd-netns-slot-{k}.lock")).ok()?;
                // SAFETY: flock on a descriptor `f` keeps open.
                let held = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
                held.then_some((k, f))
            })
            .expect("every namespace slot is taken");
        sweep(slot);
        Lab {
            slot,
            _lock: lock,
            hosts: Vec::new(),
            next_link: AtomicU32::new(0),
        }
    }

    fn prefix(&self) -> String {
        format!("lyd{}", self.slot)
    }

    /// A fresh number for a link of this run (names and addresses).
    pub fn link_no(&self) -> u32 {
        self.next_link.fetch_add(1, Ordering::SeqCst)
    }

    /// A name for an interface made in the test's namespace (15 bytes at most).
    pub fn ifname(&self, what: &str) -> String {
        let name = format!("{}{what}", self.prefix());
        assert!(name.len() <= 15, "{name}");
        name
    }

    /// Makes host `name`: its namespace with loopback up, and a management veth pair,
    /// 10.250.SLOT.(4j+1) on the test's side, 10.250.SLOT.(4j+2) on the host's.
    pub fn host(&mut self, name: &str) -> Host {
        let j = self.hosts.len() as u8;
        assert!(j < 64);
        let ns = format!("{}-{name}", self.prefix());
        ip(&["netns", "add", &ns]);
        self.hosts.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        let outer = self.ifname(&format!("m{j}"));
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", "mgmt", "netns", &ns,
        ]);
        let base = [10, 250, self.slot as u8, 4 * j];
        let ours = Ipv4Addr::new(base[0], base[1], base[2], base[3] + 1);
        let theirs = Ipv4Addr::new(base[0], base[1], base[2], base[3] + 2);
        ip(&["addr", "add", &format!("{ours}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("{theirs}/30"), "dev", "mgmt"]);
        ip(&["-n", &ns, "link", "set", "mgmt", "up"]);
        Host { ns, addr: theirs }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (j, ns) in self.hosts.iter().enumerate() {
            remove_namespace(ns);
            // A namespace outlives its name while sockets of killed processes in it
            // still retransmit; its management link, with our address on it, must not.
            let _ = Command::new("ip")
                .args(["link", "del", &self.ifname(&format!("m{j}"))])
                .output();
        }
    }
}

/// Kills what still runs in `ns` and deletes it (its veth ends go with it).
fn remove_namespace(ns: &str) {
    for pid in ip_output(&["netns", "pids", ns]).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            // SAFETY: kill has no memory preconditions; the pid is in our namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
}

/// Removes what an earlier run of slot `slot` left behind.
fn sweep(slot: u32) {
    let prefix = format!("lyd{slot}-");
    for line in ip_output(&["netns", "list"]).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        if ns.starts_with(&prefix) {
            eprintln!("netns: removing {ns}, left by an earlier run");
            remove_namespace(ns);
        }
    }
    let links = format!("lyd{slot}");
    for line in ip_output(&["-o", "link", "show"]).lines() {
        // "7: lyd0m0@if6: <...>"
        let name = line.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        let rest = name.strip_prefix(&links).unwrap_or("");
        if rest.starts_with(|c: char| !c.is_ascii_digit()) {
            let _ = Command::new("ip").args(["link", "del", name]).output();
        }
    }
}
