pub mod cli;
pub mod daemon;
pub mod hub;
pub mod netns;
pub mod openapi;
pub mod pg;
pub mod proxy;
pub mod shop;
pub mod tcp_cut;
pub mod wire;

/// A `Command` that starts the `loyaltyd` under test. With LOYALTYD_TEST_RUNNER set
/// (scripts/qemu-aarch64-runner sets it for `cargo test --target aarch64-...`), the
/// binary is started through that runner, e.g. `qemu-aarch64 <binary> ARGS`.
#[allow(dead_code)]
pub fn loyaltyd_command() -> std::process::Command {
    loyaltyd_command_in(None)
}

/// The same, inside network namespace `netns` when given: `ip netns exec NS <binary>`,
/// which execs the binary in place, so the child's pid is the binary's own.
#[allow(dead_code)]
pub fn loyaltyd_command_in(netns: Option<&str>) -> std::process::Command {
    let mut words: Vec<String> = match netns {
        Some(ns) => ["ip", "netns", "exec", ns].map(String::from).to_vec(),
        None => Vec::new(),
    };
    if let Ok(runner) = std::env::var("LOYALTYD_TEST_RUNNER") {
        words.extend(runner.split_whitespace().map(String::from));
    }
    words.push(daemon::BIN.to_string());
    let mut c = std::process::Command::new(&words[0]);
    c.args(&words[1..]);
    if netns.is_some() {
        netns::die_with_parent(&mut c);
    }
    c
}

/// Polls `f` every 50 ms until it returns Some, or fails after `secs` seconds saying `what`.
#[allow(dead_code)]
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
