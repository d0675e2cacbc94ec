//! `loyaltyd serve`: the terminal daemon. Wiring only: engine, POS API, reader,
//! feedback, the daily expiry pass, systemd notifications and signals.
//!
//! Start-up order: config and ruleset (refuse to start if either is bad), the engine
//! (journal replay), the listener, the reader; then READY=1. On SIGTERM: STOPPING=1,
//! stop accepting, let in-flight commits finish, flush, exit 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::feedback::Feedback;
use crate::metrics::Metrics;
use crate::reader::{self, ReaderOptions, ReaderSpec};
use crate::service::{runtime, while_starting, StartError, Tasks};
use crate::sync::client::SyncConfig;
use crate::sync::client::SyncInfo;

/// `serve` flags that override the config file (the sync ones are applied to the
/// config before the engine opens).
#[derive(Debug, Clone, Default)]
pub struct ServeArgs {
    pub listen: Option<String>,
    pub token_file: Option<PathBuf>,
    pub reader: Option<String>,
}

/// The sync task's settings from the config: `None` for a standalone terminal.
fn sync_config(cfg: &Config) -> Result<Option<SyncConfig>, StartError> {
    let upstream = cfg.sync.upstream.trim();
    if upstream.is_empty() {
        return Ok(None);
    }
    let Some(file) = &cfg.sync.secret_file else {
        tracing::warn!("sync: upstream {upstream} is set but sync.secret_file is not; not syncing");
        return Ok(None);
    };
    if cfg.embedded && !file.exists() {
        tracing::warn!(
            "sync: the embedded defaults name {}, which is not here; not syncing",
            file.display()
        );
        return Ok(None);
    }
    let secret =
        crate::config::read_secret(file, "terminal secret", 16).map_err(|e| StartError::Config(e.to_string()))?;
    let https = upstream.starts_with("https://");
    if !https && !upstream.starts_with("http://") {
        return Err(StartError::Config(format!(
            "sync.upstream {upstream:?} must be an http:// or https:// URL"
        )));
    }
    let roots = match &cfg.sync.ca_file {
        // A CA file says the hub is reached over TLS: never send in clear text instead.
        Some(_) if !https => {
            return Err(StartError::Config(format!(
                "sync.ca_file is set but sync.upstream {upstream:?} is not https://: refusing clear text"
            )))
        }
        Some(file) => Some(crate::sync::client::load_roots(file).map_err(StartError::Config)?),
        None => None,
    };
    if !https && !crate::sync::client::is_loopback(upstream) {
        tracing::warn!(
            "sync: {upstream} is plain HTTP: member data travels in clear text (use https and [tls] on the hub)"
        );
    }
    Ok(Some(SyncConfig {
        upstream: upstream.to_string(),
        secret: secret.into_bytes(),
        interval: Duration::from_secs(cfg.sync.interval_secs.max(1)),
        roots,
    }))
}

/// The POS bearer token. On the embedded defaults, away from the repository's
/// `config/pos.token`, a random token is made once in the data directory (and its path
/// logged), so that `loyaltyd serve` runs anywhere.
fn pos_token(cfg: &Config, flag: Option<&std::path::Path>) -> Result<String, StartError> {
    let system = |e: String| StartError::System(e);
    let mut file = flag.unwrap_or(&cfg.api.token_file).to_path_buf();
    if flag.is_none() && cfg.embedded && !file.exists() {
        file = cfg.data_dir.join("pos.token");
        if !file.exists() {
            let mut b = [0u8; 24];
            getrandom::getrandom(&mut b).map_err(|e| system(format!("cannot make a POS token: {e}")))?;
            let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
            std::fs::create_dir_all(&cfg.data_dir).map_err(|e| system(format!("{}: {e}", cfg.data_dir.display())))?;
            let mut opts = std::fs::OpenOptions::new();
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts
                .write(true)
                .create_new(true)
                .open(&file)
                .map_err(|e| system(format!("{}: {e}", file.display())))?;
            std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())
                .map_err(|e| system(format!("{}: {e}", file.display())))?;
        }
        tracing::info!("POS token: {} (made for the embedded defaults)", file.display());
    }
    crate::config::read_secret(&file, "POS token", 8).map_err(|e| StartError::Config(e.to_string()))
}

/// Runs the daemon until SIGTERM/SIGINT. Errors are start-up failures, said plainly.
pub fn serve(cfg: Config, ecfg: EngineConfig, args: ServeArgs) -> Result<(), StartError> {
    crate::service::init_logging();
    let rules = cfg.load_rules().map_err(|e| StartError::Config(e.to_string()))?;
    let spec: ReaderSpec = args
        .reader
        .as_deref()
        .unwrap_or(&cfg.reader.spec)
        .parse()
        .map_err(StartError::Config)?;
    let reader_opts = ReaderOptions::from_config(&cfg.reader).map_err(StartError::Config)?;
    let token = pos_token(&cfg, args.token_file.as_deref())?;
    let listen = args.listen.clone().unwrap_or(cfg.api.listen.clone());
    let sync = sync_config(&cfg)?;

    let engine = while_starting(|| Engine::open(ecfg, rules)).map_err(StartError::Engine)?;
    let s = &engine.startup;
    for r in s.repairs() {
        tracing::warn!("{r}");
    }
    tracing::info!(
        "journal: {} records, {} replayed into the state store; terminal {}",
        s.journal_records,
        s.replayed,
        engine.terminal_id()
    );
    let engine = Arc::new(engine);
    let feedback = Feedback::from_config(&cfg.feedback).map_err(StartError::System)?;

    let limits = cfg.api.limits().map_err(StartError::Config)?;
    let runtime = runtime("loyaltyd")?;
    let parts = Parts {
        cfg,
        spec,
        reader_opts,
        feedback,
        token,
        listen,
        limits,
        sync,
    };
    let result = runtime.block_on(run(engine.clone(), parts));
    runtime.shutdown_timeout(Duration::from_secs(1));
    engine.close().map_err(StartError::Engine)?;
    result
}

/// What `serve` checked and built before the runtime starts.
struct Parts {
    cfg: Config,
    spec: ReaderSpec,
    reader_opts: ReaderOptions,
    feedback: Feedback,
    token: String,
    listen: String,
    limits: crate::service::http::Limits,
    sync: Option<SyncConfig>,
}

async fn run(engine: Arc<Engine>, parts: Parts) -> Result<(), StartError> {
    let listen = &parts.listen;
    let listener = crate::service::http::bind(listen)
        .await
        .map_err(|e| StartError::System(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| StartError::System(e.to_string()))?;
    let tasks = Tasks::default();
    let (events, _) = broadcast::channel(256);
    let state = Arc::new(AppState {
        engine: engine.clone(),
        token: parts.token,
        pos_role: parts.cfg.api.pos_role,
        sessions: Default::default(),
        events,
        metrics: Arc::new(Metrics::default()),
        feedback: parts.feedback,
        sync: Arc::new(SyncInfo::default()),
        stopping: tasks.stop.clone(),
    });

    // Card reads: reader thread -> channel -> lookup, SSE, feedback.
    let (reads_tx, mut reads_rx) = mpsc::channel::<reader::CardRead>(64);
    reader::start(&parts.spec, &parts.reader_opts, reads_tx).map_err(StartError::System)?;
    let (st, stop) = (state.clone(), tasks.stop.clone());
    tasks.spawn(async move {
        loop {
            let read = tokio::select! {
                read = reads_rx.recv() => match read {
                    Some(read) => read,
                    None => return,
                },
                _ = stop.cancelled() => return,
            };
            match api::card_read(&st, read.card.as_str().to_string()).await {
                Ok(ev) => tracing::debug!("card {} ({}) in {:?}", ev.card, ev.status, read.at.elapsed()),
                Err(e) => tracing::warn!("card read {}: {e}", read.card),
            }
        }
    });

    if let Some(sync) = parts.sync {
        tracing::info!("sync: with {} every {:?}", sync.upstream, sync.interval);
        let wake = Arc::new(tokio::sync::Notify::new());
        let w = wake.clone();
        engine.on_pushable_commit(Box::new(move || w.notify_one()));
        tasks.spawn(crate::sync::client::run(
            engine.clone(),
            sync,
            state.sync.clone(),
            wake,
            tasks.stop.clone(),
        ));
    }
    tasks.spawn(crate::service::daily::repeat(
        "daily pass",
        tasks.stop.clone(),
        daily_passes(engine.clone()),
    ));
    if let Some(interval) = sd_notify::watchdog_enabled() {
        tasks.spawn(watchdog(engine.clone(), interval, tasks.stop.clone()));
    }
    let console_cfg = parts.cfg.console.clone();
    tasks.spawn(signals(parts.cfg, engine.clone(), tasks.clone()));

    tracing::info!("listening on http://{addr} (reader: {:?})", parts.spec);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    // Requests in flight get a few seconds after SIGTERM; a commit takes milliseconds.
    let options = crate::service::http::Options {
        limits: parts.limits,
        tls: None,
        grace: Duration::from_secs(5),
    };
    let console = Arc::new(crate::console::Console::terminal(
        state.clone(),
        Duration::from_secs(console_cfg.idle_timeout_mins * 60),
    ));
    let app = match &console_cfg.listen {
        None => {
            tracing::info!("console at http://{addr}/console/ (the POS API's listener)");
            crate::console::router(console).merge(api::router(state))
        }
        Some(listen) => {
            let own = crate::service::http::bind(listen)
                .await
                .map_err(|e| StartError::System(format!("cannot listen on {listen} ([console] listen): {e}")))?;
            let at = own.local_addr().map_err(|e| StartError::System(e.to_string()))?;
            tracing::warn!("console on its own listener http://{at}/console/: reachable from the shop's LAN");
            let stop = tasks.stop.clone();
            tasks.spawn(crate::service::http::serve(
                own,
                crate::console::router(console),
                crate::service::http::Options {
                    limits: parts.limits,
                    tls: None,
                    grace: Duration::from_secs(5),
                },
                stop.cancelled_owned(),
            ));
            api::router(state)
        }
    };
    let stop = tasks.stop.clone();
    crate::service::http::serve(listener, app, options, stop.cancelled_owned()).await;
    // Then the reader loop, the sync task, the expiry pass and the watchdog, in order.
    tasks.finish(Duration::from_secs(5)).await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM/SIGINT stop the daemon; SIGHUP reloads the ruleset (a bad one is refused and
/// the old one stays).
async fn signals(cfg: Config, engine: Arc<Engine>, tasks: Tasks) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tasks.stop.cancelled() => return,
            _ = hup.recv() => match cfg.load_rules() {
                Ok(r) => {
                    tracing::info!("ruleset reloaded from {} (version {})", cfg.rules.display(), r.version);
                    if let Err(e) = engine.reload_rules(r) {
                        tracing::error!("ruleset reload: {e}");
                    }
                }
                Err(e) => tracing::error!("ruleset reload refused, keeping the current one: {e}"),
            },
        }
    }
    tasks.stopping();
}

/// Pings the systemd watchdog at half its interval, but only while the engine answers:
/// a stuck writer stops the pings and systemd restarts the daemon.
async fn watchdog(engine: Arc<Engine>, interval: Duration, stop: CancellationToken) {
    let half = interval / 2;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(half) => {}
            _ = stop.cancelled() => return,
        }
        let e = engine.clone();
        let probe = tokio::task::spawn_blocking(move || e.probe());
        match tokio::time::timeout(half, probe).await {
            Ok(Ok(Ok(()))) => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            Ok(Ok(Err(e))) => tracing::error!("watchdog: {e}; not pinging systemd"),
            _ => tracing::error!("watchdog: the engine did not answer; not pinging systemd"),
        }
    }
}

/// The daily passes: points expiry, then the trigger pass (birthdays, inactivity) on a
/// terminal without a hub; at start, hourly, and shortly after every local midnight.
fn daily_passes(engine: Arc<Engine>) -> Arc<dyn Fn() -> Duration + Send + Sync> {
    // Expiry once per local date (lots expire at month ends); triggers every run.
    let expired_on = std::sync::Mutex::new(None);
    Arc::new(move || {
        let at = engine.at(None);
        let today = crate::rules::local_date(&engine.rules(), at.ts);
        let mut last = expired_on.lock().unwrap_or_else(|p| p.into_inner());
        // (Nothing expires while the clock is untrusted: the day counts once it is.)
        if at.trusted && *last != Some(today) {
            match engine.expire_all(at) {
                Ok(n) if n > 0 => tracing::info!("expiry pass: {n} members had points expire"),
                Err(e) => tracing::error!("expiry pass: {e}"),
                _ => {}
            }
            *last = Some(today);
        }
        drop(last);
        match engine.trigger_pass(engine.at(None)) {
            Ok(n) if n > 0 => tracing::info!("trigger pass: {n} coupons issued"),
            Err(e) => tracing::error!("trigger pass: {e}"),
            _ => {}
        }
        engine.until_next_pass(Duration::from_secs(3600))
    })
}
