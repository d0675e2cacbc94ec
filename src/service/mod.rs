//! Service plumbing both daemons (`serve`, `hub serve`) share: why one did not start,
//! its runtime, logging, telling systemd about a long start-up, and stopping on a
//! signal. The HTTP serving layer is `http`; what both `GET /v1/openapi.json` share is
//! `openapi`.

pub mod daily;
pub mod http;
pub mod openapi;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Error;

/// Why a daemon did not start (or stopped with an error): a configuration the
/// operator must fix, or a fault of the machine. Never a label for the other.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config, the ruleset, a flag or a file they name is wrong.
    #[error("{0}")]
    Config(String),
    /// The machine refused: a port in use, a device or file that cannot be opened.
    #[error("{0}")]
    System(String),
    /// Opening or running the engine failed, with the stable code of why.
    #[error("{0}")]
    Engine(Error),
}

impl From<StartError> for Error {
    fn from(e: StartError) -> Error {
        match e {
            StartError::Config(m) => Error::invalid(m),
            StartError::System(m) => Error::internal(m),
            StartError::Engine(e) => e,
        }
    }
}

/// Engine calls wait on fdatasync off the runtime's workers (`block_in_place` hands a
/// worker's queue to a blocking-pool thread); this many may wait at once. A till's POS
/// sends a handful of requests at a time; 16 still fill a group commit under the
/// benchmark's 32 clients, and tokio's default of 512 threads would only cost memory.
const MAX_BLOCKING_THREADS: usize = 16;

/// How often start-up tells systemd it is still busy, and how much more time each
/// message asks for.
const EXTEND_EVERY: Duration = Duration::from_secs(10);
const EXTEND_BY: Duration = Duration::from_secs(30);

/// Runs `open` (journal scan, replay, maybe a rebuild: a minute or more for a large
/// journal on a Pi) while telling systemd that start-up goes on: EXTEND_TIMEOUT_USEC
/// at once and then every `EXTEND_EVERY`, so a long replay is not killed by the start
/// timeout, while a start-up that hangs still is (`EXTEND_BY` after its last sign of
/// life). Without a notify socket the messages go nowhere.
pub fn while_starting<T>(open: impl FnOnce() -> T) -> T {
    let (done, stopped) = std::sync::mpsc::channel::<()>();
    let pinger = std::thread::Builder::new()
        .name("start-timeout".into())
        .spawn(move || loop {
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::ExtendTimeoutUsec(EXTEND_BY.as_micros() as u32),
                sd_notify::NotifyState::Status("opening the journal and the state store"),
            ]);
            if stopped.recv_timeout(EXTEND_EVERY) != Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                return;
            }
        });
    let out = open();
    drop(done);
    if let Ok(p) = pinger {
        let _ = p.join();
    }
    out
}

/// The daemon's runtime, built for a small machine: the blocking pool is bounded.
pub fn runtime(name: &str) -> Result<tokio::runtime::Runtime, StartError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
        .map_err(|e| StartError::System(format!("cannot start the runtime: {e}")))
}

/// Logs to stderr; under systemd (JOURNAL_STREAM set) without timestamps, which the
/// journal adds itself.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOYALTYD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.try_init()
    };
}

/// The tasks of a daemon and their common stop: every task is spawned through here and
/// ends when `stop` is cancelled; `finish` waits for them all, in bounded time, so that
/// shutdown stops them in order instead of cutting them with the runtime.
#[derive(Clone, Default)]
pub struct Tasks {
    pub stop: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// Tells systemd and the tasks that the daemon stops.
    pub fn stopping(&self) {
        if !self.stop.is_cancelled() {
            tracing::info!("stopping: no new requests; finishing the ones in flight");
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
            self.stop.cancel();
        }
    }

    /// Stops every task and waits up to `within` for them to end; says which did not.
    pub async fn finish(&self, within: Duration) {
        self.stopping();
        self.tracker.close();
        if tokio::time::timeout(within, self.tracker.wait()).await.is_err() {
            tracing::warn!("shutdown: {} task(s) did not end within {within:?}", self.tracker.len());
        }
    }
}

/// Cancels `tasks` on SIGTERM or SIGINT (a daemon without a ruleset to reload: the hub).
pub async fn stop_on_signal(tasks: Tasks) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
        _ = tasks.stop.cancelled() => return,
    }
    tasks.stopping();
}
