//! The serving layer end to end, on the real binaries: connections that never finish a
//! request head, or sit idle, are closed by their timeouts; connections beyond the cap
//! wait for a slot; the hub refuses a stranger's body without reading it and keeps
//! serving its terminals while slow unverified requests pile up; a hub over TLS syncs
//! the terminals that verify it and is refused by those that cannot.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use loyaltyd::sync::wire::{self, PushRequest};
use serde_json::{json, Value};
use support::daemon::{code, repo, Daemon};
use support::hub::{secret_file, Hub};

/// Polls `f` until it returns Some, or fails after `secs` seconds saying `what`.
fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The repository's terminal config with `api` keys set in `[api]` (replacing the
/// file's own) and `sync` keys added to `[sync]`.
fn terminal_config(dir: &Path, api: &str, sync: &str) -> PathBuf {
    let mut text = std::fs::read_to_string(repo("config/loyaltyd.toml")).unwrap();
    assert!(text.contains("\n[api]\n") && text.contains("\n[sync]\n"));
    for line in api.lines() {
        let key = line.split('=').next().unwrap().trim();
        let own = text
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .map(str::to_string);
        text = match own {
            Some(own) => text.replace(&format!("\n{own}\n"), &format!("\n{line}\n")),
            None => text.replace("\n[api]\n", &format!("\n[api]\n{line}\n")),
        };
    }
    let text = text.replace("\n[sync]\n", &format!("\n[sync]\n{sync}\n"));
    let p = dir.join("loyaltyd.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn addr_of(url: &str) -> SocketAddr {
    url.split_once("://").unwrap().1.trim_end_matches('/').parse().unwrap()
}

/// Whether the peer has closed `s` (non-blocking: data or nothing yet = open).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// Waits for every stream to be closed by the server, feeding the open ones `feed`
/// (a slowloris keeps sending header lines) every 100 ms; returns when each closed,
/// counted from `since`.
fn close_times(streams: &mut [TcpStream], since: Instant, feed: &[u8], within: Duration) -> Vec<Duration> {
    for s in streams.iter() {
        s.set_nonblocking(true).unwrap();
    }
    let mut at: Vec<Option<Duration>> = vec![None; streams.len()];
    let deadline = since + within;
    while at.iter().any(Option::is_none) {
        assert!(
            Instant::now() < deadline,
            "{} of {} connections still open after {within:?}",
            at.iter().filter(|t| t.is_none()).count(),
            streams.len()
        );
        for (s, t) in streams.iter_mut().zip(at.iter_mut()) {
            if t.is_none() && ((!feed.is_empty() && s.write_all(feed).is_err()) || closed(s)) {
                *t = Some(since.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    at.into_iter().map(Option::unwrap).collect()
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status and body.
fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0, "connection closed inside the body");
                buf.extend_from_slice(&b[..n]);
            }
            let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
            return (
                status,
                String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string(),
            );
        }
        let n = s.read(&mut b).unwrap();
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&b[..n]);
    }
}

#[test]
fn slow_silent_and_idle_connections_are_closed_by_their_timeouts() {
    let root = tempfile::tempdir().unwrap();
    // Header read timeout 1 s, idle timeout 3 s: far enough apart to tell which closed
    // a connection.
    let config = terminal_config(
        root.path(),
        "header_read_timeout_secs = 1\nidle_timeout_secs = 3\nmax_connections = 512",
        "",
    );
    let d = Daemon::start_config(root.path(), &config, &[], &[]);
    let addr = addr_of(&d.url);

    // 50 slowloris connections: a request head that never ends, a line every 100 ms.
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /v1/members HTTP/1.1\r\nHost: t\r\n").unwrap();
            s
        })
        .collect();
    let mut silent: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // 200 keep-alive connections that made one request and then say nothing.
    let mut idle: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for s in idle.iter_mut() {
        s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    }
    let mut answered = Vec::new();
    for s in idle.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(read_response(s).0, 200);
        answered.push(Instant::now());
    }
    let idle_from = *answered.last().unwrap();
    // Meanwhile the daemon serves as usual.
    assert_eq!(d.client().get_json("/v1/health", 200)["status"], "ok");

    let slow_closed = close_times(&mut slow, started, b"X-Slow: 1\r\n", Duration::from_secs(10));
    let silent_closed = close_times(&mut silent, started, b"", Duration::from_secs(10));
    let idle_closed = close_times(&mut idle, answered[0], b"", Duration::from_secs(15));
    let (slow_max, silent_max) = (slow_closed.iter().max().unwrap(), silent_closed.iter().max().unwrap());
    assert!(
        *slow_max < Duration::from_millis(2900),
        "slowloris closed within the header timeout: {slow_max:?}"
    );
    assert!(
        *silent_max < Duration::from_millis(2900),
        "silent ones too: {silent_max:?}"
    );
    assert!(
        slow_closed
            .iter()
            .chain(&silent_closed)
            .all(|t| *t >= Duration::from_millis(800)),
        "not before the header timeout: {slow_closed:?} {silent_closed:?}"
    );
    // Each idle connection closes about 3 s after its own answer.
    for (closed_after_first, answered_at) in idle_closed.iter().zip(&answered) {
        let after_answer = (answered[0] + *closed_after_first).saturating_duration_since(*answered_at);
        assert!(
            after_answer >= Duration::from_millis(2000) && after_answer < Duration::from_millis(5500),
            "an idle connection closed {after_answer:?} after its answer"
        );
    }
    assert!(idle_from.elapsed() < Duration::from_secs(15));
}

#[test]
fn connections_beyond_the_cap_wait_for_a_slot() {
    let root = tempfile::tempdir().unwrap();
    let config = terminal_config(
        root.path(),
        "header_read_timeout_secs = 1\nidle_timeout_secs = 1\nmax_connections = 4",
        "",
    );
    let d = Daemon::start_config(root.path(), &config, &[], &[]);
    let addr = addr_of(&d.url);
    let hogs: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, body) = read_response(&mut s);
    let waited = t0.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        waited >= Duration::from_millis(700),
        "answered after {waited:?}: the 4 open connections should have held every slot"
    );
    drop(hogs);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends a push head declaring a `len`-byte body, reads the answer the hub gives
/// before any of the body, then tries to send the body: returns the answer and
/// whether the whole body could be written (it cannot once the hub has closed).
fn push_unread(addr: SocketAddr, auth: Option<&str>, len: usize) -> (u16, String, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: hub\r\nContent-Type: {}\r\nContent-Length: {len}\r\n",
        wire::PUSH_PATH,
        wire::CONTENT_TYPE
    );
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let (status, body) = read_response(&mut s);
    let chunk = vec![0x5a; 1 << 20];
    for _ in 0..len / chunk.len() {
        if let Err(e) = s.write_all(&chunk) {
            // Closed by the hub, not left hanging unread.
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "writing the body: {e}"
            );
            return (status, body, false);
        }
    }
    (status, body, true)
}

#[test]
fn the_hub_refuses_a_strangers_body_without_reading_it() {
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let hub = Hub::start(root.path(), &[("T1", s1.as_path())]);
    let addr = addr_of(&hub.url);
    let big = 16 << 20;
    let fake_sig = "ab".repeat(32);
    // Warm up the hub's allocator, buffers and code paths (qemu translates code as it
    // first runs) with each kind of refusal first.
    for auth in [None, Some(format!("LOYALTYD-HMAC terminal=T9,sig={fake_sig}"))] {
        push_unread(addr, auth.as_deref(), 1 << 20);
    }
    push_unread(
        addr,
        Some(&format!("LOYALTYD-HMAC terminal=T1,sig={fake_sig}")),
        16 << 20,
    );
    let before = rss_kib(hub.pid());
    for i in 0..10 {
        let (auth, why) = match i % 3 {
            0 => (None, "unsigned"),
            1 => (
                Some(format!("LOYALTYD-HMAC terminal=T9,sig={fake_sig}")),
                "an unknown terminal",
            ),
            _ => (Some("LOYALTYD-HMAC garbage".to_string()), "a malformed signature"),
        };
        let (status, body, sent_all) = push_unread(addr, auth.as_deref(), big);
        assert_eq!(status, 401, "{why}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(code(&v), "unauthorized", "{why}");
        assert!(
            !sent_all,
            "{why}: the hub took all 16 MiB instead of closing the connection"
        );
    }
    // A known terminal with a body over the push bound: refused from its length.
    let auth = format!("LOYALTYD-HMAC terminal=T1,sig={fake_sig}");
    let (status, body, sent_all) = push_unread(addr, Some(&auth), big);
    assert_eq!(
        (status, code(&serde_json::from_str(&body).unwrap())),
        (413, "invalid_input"),
        "{body}"
    );
    assert!(!sent_all);
    let after = rss_kib(hub.pid());
    let grown = after.saturating_sub(before);
    assert!(
        grown < 5 << 10,
        "the hub grew by {grown} KiB over 11 refused 16 MiB pushes ({before} -> {after} KiB)"
    );
    // And it still serves its terminal.
    let secret = std::fs::read_to_string(&s1).unwrap().trim().as_bytes().to_vec();
    assert_eq!(signed_push(&hub.url, "T1", &secret).0, 200);
}

/// An empty push signed by `terminal`: (status, body).
fn signed_push(url: &str, terminal: &str, secret: &[u8]) -> (u16, String) {
    let req = PushRequest {
        terminal_id: terminal.into(),
        epoch: 7,
        from: 1,
        upto: 0,
        records: vec![],
    };
    let body = postcard::to_allocvec(&req).unwrap();
    let mut resp = ureq::post(format!("{url}{}", wire::PUSH_PATH))
        .config()
        .http_status_as_error(false)
        .build()
        .header("Authorization", wire::sign(secret, terminal, wire::PUSH_PATH, &body))
        .send(&body[..])
        .unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// A connection to `to` from the loopback address `from` (so that a test can play
/// several peers).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let s = sock.connect(to).await.unwrap().into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s
    })
}

#[test]
fn slow_unverified_requests_do_not_stop_a_terminals_sync() {
    let root = tempfile::tempdir().unwrap();
    let s1 = secret_file(root.path(), "T1");
    let hub = Hub::start(root.path(), &[("T1", s1.as_path())]);
    let addr = addr_of(&hub.url);
    // One peer claims to be T1 (its id is on every receipt) on 40 connections, sending
    // the head of a 1 MiB push and then the body a byte at a time, never finishing.
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: hub\r\nContent-Length: {}\r\nAuthorization: LOYALTYD-HMAC terminal=T1,sig={}\r\n\r\n",
        wire::PUSH_PATH,
        1 << 20,
        "cd".repeat(32)
    );
    let mut slow: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = connect_from("127.0.0.2", addr);
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(b"x").unwrap();
            s
        })
        .collect();
    // Another sends unsigned slow pushes: refused at once, body unread.
    let mut unsigned: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = connect_from("127.0.0.3", addr);
            let h = format!(
                "POST {} HTTP/1.1\r\nHost: hub\r\nContent-Length: 1000000\r\n\r\nx",
                wire::PUSH_PATH
            );
            s.write_all(h.as_bytes()).unwrap();
            s
        })
        .collect();
    for s in unsigned.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (status, body) = read_response(s);
        assert_eq!(status, 401, "{body}");
    }
    // All but the first few of the slow claimants are turned away: 503 store_busy.
    let expected = 40 - loyaltyd::hub::UNVERIFIED_PER_PEER;
    let mut answered = vec![false; slow.len()];
    let mut busy = 0;
    let mut poll = |answered: &mut [bool], busy: &mut usize| {
        for (s, done) in slow.iter_mut().zip(answered.iter_mut()).filter(|(_, done)| !**done) {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1024];
            if let Ok(n) = s.read(&mut b) {
                let text = String::from_utf8_lossy(&b[..n]);
                assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
                assert!(text.contains("store_busy"), "{text}");
                *done = true;
                *busy += 1;
            }
        }
    };
    eventually(20, "the slow claimants beyond the per-peer bound are refused", || {
        poll(&mut answered, &mut busy);
        (busy >= expected).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    poll(&mut answered, &mut busy);
    assert_eq!(
        busy, expected,
        "one peer holds at most UNVERIFIED_PER_PEER unverified requests"
    );
    // While those still trickle, the real T1 terminal enrols a member and syncs.
    let dir = root.path().join("T1");
    std::fs::create_dir_all(&dir).unwrap();
    let secret = s1.display().to_string();
    let t1 = Daemon::start_env(
        &dir,
        &[
            "--terminal-id",
            "T1",
            "--upstream",
            &hub.url,
            "--upstream-secret-file",
            &secret,
            "--sync-interval",
            "1",
        ],
        &[],
    );
    let body = json!({"card": "0E000001", "name": "Member", "phone": "13900000001", "pin": "1234"});
    t1.client().post_json("/v1/members", &body, &[], 201);
    eventually(30, "T1 has pushed its record through the slow crowd", || {
        let h = t1.client().get_json("/v1/health", 200);
        (h["outbox"] == 0 && h["last_sync_at"].is_string()).then_some(())
    });
    // The held ones were never answered: their bodies are still coming.
    for s in slow.iter_mut() {
        let _ = s.write_all(b"x");
    }
    drop(slow);
}

/// Makes a CA and a hub certificate for `names` in `dir` with scripts/make-hub-cert.sh.
fn make_certs(dir: &Path, names: &[&str]) {
    let out = Command::new("bash")
        .arg(repo("scripts/make-hub-cert.sh"))
        .arg(dir)
        .args(names)
        .output()
        .expect("bash and the openssl command line (apt-get install openssl)");
    assert!(
        out.status.success(),
        "make-hub-cert.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tls_hub(root: &Path, certs: &Path, terminals: &[(&str, &Path)]) -> Hub {
    let tls = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        certs.join("hub.pem").display().to_string(),
        certs.join("hub.key").display().to_string()
    );
    Hub::start_with(root, terminals, "127.0.0.1:0", &tls)
}

/// Terminal `id` syncing with `upstream`, trusting the CA file `ca`.
fn tls_terminal(root: &Path, id: &str, upstream: &str, secret: &Path, ca: &Path) -> Daemon {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let config = terminal_config(&dir, "", &format!("ca_file = {:?}", ca.display().to_string()));
    let secret = secret.display().to_string();
    let args = [
        "--terminal-id",
        id,
        "--upstream",
        upstream,
        "--upstream-secret-file",
        &secret,
        "--sync-interval",
        "1",
    ];
    Daemon::start_config(&dir, &config, &args, &[])
}

#[test]
fn a_hub_over_tls_syncs_the_terminals_that_verify_it() {
    let root = tempfile::tempdir().unwrap();
    let certs = root.path().join("certs");
    make_certs(&certs, &["localhost", "127.0.0.1"]);
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let hub = tls_hub(root.path(), &certs, &[("T1", &s1), ("T2", &s2)]);
    assert!(hub.url.starts_with("https://127.0.0.1:"), "{}", hub.url);
    let ca = certs.join("ca.pem");
    let t1 = tls_terminal(root.path(), "T1", &hub.url, &s1, &ca);
    let t2 = tls_terminal(root.path(), "T2", &hub.url, &s2, &ca);
    let body = json!({"card": "0F000001", "name": "Member", "phone": "13900000001", "pin": "1234"});
    let member = t1.client().post_json("/v1/members", &body, &[], 201);
    eventually(30, "T1's enrolment is acknowledged", || {
        (t1.client().get_json("/v1/health", 200)["outbox"] == 0).then_some(())
    });
    let seen = eventually(30, "T2 has pulled the member", || {
        let (status, text) = t2.client().get("/v1/cards/0F000001").unwrap();
        (status == 200).then(|| serde_json::from_str::<Value>(&text).unwrap())
    });
    assert_eq!(seen["member_id"], member["member_id"]);

    // An operator's client that trusts the chain's CA sees T1's stream.
    let pem = std::fs::read(&ca).unwrap();
    let roots: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                .build(),
        )
        .build()
        .into();
    let terminals: Value = agent
        .get(format!("{}/v1/hub/terminals", hub.url))
        .header("Authorization", format!("Bearer {}", support::hub::HUB_TOKEN))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let t1_stream = terminals
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["terminal_id"] == "T1")
        .unwrap();
    assert!(t1_stream["acked_seq"].as_u64().unwrap() > 0, "{terminals}");
    // Plain HTTP to the TLS port gets no answer in clear text.
    let plain = ureq::get(format!("http://{}/v1/health", addr_of(&hub.url))).call();
    assert!(plain.is_err(), "{plain:?}");
}

#[test]
fn a_terminal_refuses_a_hub_it_cannot_verify() {
    let root = tempfile::tempdir().unwrap();
    let (good, other, misnamed) = (
        root.path().join("good"),
        root.path().join("other"),
        root.path().join("misnamed"),
    );
    make_certs(&good, &["127.0.0.1"]);
    make_certs(&other, &["127.0.0.1"]);
    make_certs(&misnamed, &["hub.example"]);
    let s1 = secret_file(root.path(), "T1");
    let hub_dir = root.path().join("hub1");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let hub = tls_hub(&hub_dir, &good, &[("T1", &s1)]);
    let hub2_dir = root.path().join("hub2");
    std::fs::create_dir_all(&hub2_dir).unwrap();
    let hub2 = tls_hub(&hub2_dir, &misnamed, &[("T1", &s1)]);

    let cases = [
        // Both CAs have the same name, so the other one's signature is what fails.
        ("wrong_ca", &hub, other.join("ca.pem"), "BadSignature"),
        ("wrong_name", &hub2, misnamed.join("ca.pem"), "not valid for name"),
    ];
    for (name, hub, ca, why) in cases {
        let t = tls_terminal(&root.path().join(name), "T1", &hub.url, &s1, &ca);
        let body = json!({"card": "0F000002", "name": "Member", "phone": "13900000002", "pin": "1234"});
        t.client().post_json("/v1/members", &body, &[], 201);
        let line = eventually(30, &format!("{name}: the terminal says why it refuses the hub"), || {
            t.log_lines().into_iter().find(|l| l.contains("refusing the hub"))
        });
        assert!(line.contains("TLS") && line.contains(why), "{name}: {line}");
        assert_eq!(
            t.client().get_json("/v1/health", 200)["outbox"],
            1,
            "{name}: nothing pushed"
        );
    }
    // The hub holds nothing from T1.
    let pem = std::fs::read(good.join("ca.pem")).unwrap();
    let roots: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                .build(),
        )
        .build()
        .into();
    let terminals: Value = agent
        .get(format!("{}/v1/hub/terminals", hub.url))
        .header("Authorization", format!("Bearer {}", support::hub::HUB_TOKEN))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(terminals, json!([]));

    // A CA file with a plain-HTTP upstream: the terminal will not start.
    let dir = root.path().join("clear");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = good.join("ca.pem");
    let config = terminal_config(&dir, "", &format!("ca_file = {:?}", ca.display().to_string()));
    let mut args = support::daemon::global_args_with(&dir, &config);
    let secret = s1.display().to_string();
    args.extend(
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--reader",
            "none",
            "--upstream",
            "http://127.0.0.1:9",
        ]
        .map(String::from),
    );
    args.extend(["--upstream-secret-file".to_string(), secret]);
    let out = support::loyaltyd_command().args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("refusing clear text"), "{stderr}");
}

#[test]
fn open_connections_do_not_hold_up_a_shutdown() {
    let root = tempfile::tempdir().unwrap();
    // Timeouts far longer than the test: only the shutdown can close these.
    let config = terminal_config(root.path(), "header_read_timeout_secs = 60\nidle_timeout_secs = 60", "");
    let mut d = Daemon::start_config(root.path(), &config, &[], &[]);
    let addr = addr_of(&d.url);
    let mut idle: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for s in idle.iter_mut() {
        s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(read_response(s).0, 200);
    }
    let _partial: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /v1/health HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    let t0 = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(20));
    let took = t0.elapsed();
    assert!(status.success(), "{status:?}");
    // Well inside the 5 s that requests in flight would get.
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let log = d.log_lines().join("\n");
    assert!(!log.contains("still open"), "{log}");
    assert!(idle.iter_mut().all(|s| {
        s.set_nonblocking(true).unwrap();
        closed(s)
    }));
}
