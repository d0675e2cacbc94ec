//! Card readers end to end: bytes into the real daemon's reader, an SSE event out.
//! The RDM6300 driver reads a pseudo-terminal exactly as it reads /dev/serial0.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::daemon::{Daemon, TOKEN};

/// Subscribes to /v1/events; yields each event's data line.
fn subscribe(url: &str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let url = format!("{url}/v1/events");
    thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        let resp = agent
            .get(&url)
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        for line in BufReader::new(resp.into_body().into_reader())
            .lines()
            .map_while(Result::ok)
        {
            if let Some(d) = line.strip_prefix("data: ") {
                if tx.send(d.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// Waits until the SSE stream is live: swipes a probe card until its event arrives.
fn wait_live(d: &Daemon, rx: &mpsc::Receiver<String>) {
    let c = d.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        c.post_json("/v1/swipe", &json!({"card": "PROBE0001"}), &[], 200);
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(200)) {
            if ev.contains("PROBE0001") {
                while rx.try_recv().is_ok() {}
                return;
            }
        }
    }
    panic!("SSE stream not live");
}

fn next_event(rx: &mpsc::Receiver<String>) -> Value {
    serde_json::from_str(&rx.recv_timeout(Duration::from_secs(10)).expect("no card event")).unwrap()
}

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/readers.json")).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A pseudo-terminal: (master to write to, path of the slave for the daemon).
fn pty() -> (std::fs::File, String) {
    let (mut master, mut slave) = (0, 0);
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    let path = std::fs::read_link(format!("/proc/self/fd/{slave}"))
        .unwrap()
        .display()
        .to_string();
    // Keep the slave open in the test too so the pty lives while the daemon reopens it.
    std::mem::forget(unsafe { OwnedFd::from_raw_fd(slave) });
    (unsafe { std::fs::File::from_raw_fd(master) }, path)
}

#[test]
fn rdm6300_frames_from_a_uart_become_card_events() {
    let dir = tempfile::tempdir().unwrap();
    let (mut master, slave) = pty();
    let d = Daemon::start_with(dir.path(), &["--reader", &format!("rdm6300:{slave}")]);
    let c = d.client();
    c.post_json(
        "/v1/members",
        &json!({"card": "62E3086CED", "name": "Ann", "phone": "13800000001"}),
        &[],
        201,
    );
    let rx = subscribe(&d.url);
    wait_live(&d, &rx);

    let fx = fixtures();
    let good = &fx["rdm6300"][0];
    // Noise, a bad frame, then the good frame split across two writes.
    master.write_all(b"\x55\xAA junk").unwrap();
    master
        .write_all(&hex(fx["rdm6300_bad"][0]["frame_hex"].as_str().unwrap()))
        .unwrap();
    let frame = hex(good["frame_hex"].as_str().unwrap());
    master.write_all(&frame[..5]).unwrap();
    master.flush().unwrap();
    master.write_all(&frame[5..]).unwrap();
    let ev = next_event(&rx);
    assert_eq!(ev["card"], good["card"]);
    assert_eq!(
        (ev["status"].as_str(), ev["member"]["name"].as_str()),
        (Some("member"), Some("Ann"))
    );
    // The reader repeats while the tag stays in the field: one event, not three.
    master.write_all(&frame).unwrap();
    master.write_all(&frame).unwrap();
    // Another card is read at once.
    let other = &fx["rdm6300"][1];
    master.write_all(&hex(other["frame_hex"].as_str().unwrap())).unwrap();
    let ev = next_event(&rx);
    assert_eq!(
        (ev["card"].as_str(), ev["status"].as_str()),
        (other["card"].as_str(), Some("unknown"))
    );

    // Waiting for the next card costs no CPU: the reader blocks on the line.
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", d.child.id())).unwrap();
        let fields: Vec<u64> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        fields[0] + fields[1] // utime + stime, in clock ticks (1/100 s)
    };
    let before = cpu();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu() - before;
    assert!(used < 20, "the idle daemon used {used}/100 s of CPU in 1 s");
}

#[test]
fn stdin_reader_turns_typed_numbers_into_card_events() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let mut args = support::daemon::global_args(dir.path());
    args.extend(["serve", "--listen", "127.0.0.1:0", "--reader", "stdin", "--token-file"].map(String::from));
    args.push(token.display().to_string());
    let mut child = support::loyaltyd_command()
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    let url = lines
        .find_map(|l| {
            l.split("listening on ")
                .nth(1)
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        })
        .expect("daemon started");
    thread::spawn(move || lines.for_each(drop));
    let rx = subscribe(&url);
    // Typed input is not a live probe; poll the stream by typing until an event arrives.
    let mut stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        writeln!(stdin, "04:a1:b2:c3").unwrap();
        writeln!(stdin, "not a card!").unwrap();
        got = rx.recv_timeout(Duration::from_millis(200)).ok();
    }
    let ev: Value = serde_json::from_str(&got.expect("no event from stdin")).unwrap();
    assert_eq!(
        (ev["card"].as_str(), ev["status"].as_str()),
        (Some("04A1B2C3"), Some("unknown"))
    );
    drop(stdin);
    // End of input does not stop the daemon.
    let c = support::daemon::Client::new(&url, Some(TOKEN));
    assert_eq!(c.get_json("/v1/health", 200)["status"], "ok");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have systemd-analyze (.ci/run installs systemd)"
        );
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let units: Vec<_> = std::fs::read_dir(support::daemon::repo("systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "service"))
        .collect();
    assert!(!units.is_empty());
    for unit_path in units {
        let unit = unit_path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&unit_path).unwrap();
        // The unit names the installed path; point it at the binary under test.
        let text = text.replace("/usr/bin/loyaltyd", support::daemon::BIN);
        let path = dir.path().join(&unit);
        std::fs::write(&path, text).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let msg = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && msg.trim().is_empty(),
            "systemd-analyze verify {unit}: {msg}"
        );
    }
}
