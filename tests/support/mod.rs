pub mod daemon;
pub mod hub;
pub mod proxy;

/// A `Command` that starts the `loyaltyd` under test. With LOYALTYD_TEST_RUNNER set
/// (scripts/qemu-aarch64-runner sets it for `cargo test --target aarch64-...`), the
/// binary is started through that runner, e.g. `qemu-aarch64 <binary> ARGS`.
#[allow(dead_code)]
pub fn loyaltyd_command() -> std::process::Command {
    match std::env::var("LOYALTYD_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut c = std::process::Command::new(words.next().unwrap_or_default());
            c.args(words).arg(daemon::BIN);
            c
        }
        _ => std::process::Command::new(daemon::BIN),
    }
}
