//! `loyaltyd hub serve`: the chain's upstream.
//!
//! The hub is the same engine as a terminal (journal first, then sled, one `apply`),
//! holding every terminal's records inside `Remote` records of its own journal. It
//! answers pushes with the highest contiguous sequence it holds durably for each
//! terminal stream, serves a change feed to pulls, and has read-only endpoints for
//! operators. Storage sits behind [`HubStore`] so that a chain that outgrows one
//! machine can put it elsewhere.
//!
//! - `store`: [`HubStore`] and [`SledHub`], what is kept and how;
//! - `intake`: what a sync request must show before its body is read;
//! - `api`: the routes, sync and operators'.

mod api;
mod intake;
mod openapi;
pub mod pg;
mod reports;
mod store;

pub use intake::UNVERIFIED_PER_PEER;
pub use store::{engine_config, HubStore, Overspent, SledHub, TerminalView};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{read_secret, HubConfig, HubStoreKind};
use crate::service::StartError;
use intake::Unverified;

/// `hub serve` flags that override `config/hub.toml`.
#[derive(Debug, Clone, Default)]
pub struct HubArgs {
    pub listen: Option<String>,
    pub token_file: Option<PathBuf>,
    /// ID=SECRET_FILE, repeatable.
    pub terminals: Vec<String>,
}

struct HubState {
    store: Arc<dyn HubStore>,
    token: String,
    secrets: HashMap<String, Vec<u8>>,
    unverified: Unverified,
}

type Shared = Arc<HubState>;

impl HubState {
    /// A terminal of the hub's config.
    fn configured(&self, terminal: &str) -> bool {
        self.secrets.contains_key(terminal)
    }
}

/// Runs the hub until SIGTERM/SIGINT. Errors are start-up failures, said plainly.
pub fn serve(mut cfg: HubConfig, args: HubArgs) -> std::result::Result<(), StartError> {
    let config = StartError::Config;
    crate::service::init_logging();
    for t in &args.terminals {
        let (id, file) = t
            .split_once('=')
            .ok_or_else(|| config(format!("--terminal {t:?}: want ID=SECRET_FILE")))?;
        if !crate::config::valid_terminal_id(id) {
            return Err(config(format!(
                "--terminal {t:?}: the id must be 1 to 32 letters, digits or _"
            )));
        }
        cfg.terminals.retain(|x| x.id != id);
        cfg.terminals.push(crate::config::HubTerminalConfig {
            id: id.to_string(),
            secret_file: file.into(),
        });
    }
    let token_file = args.token_file.clone().unwrap_or(cfg.token_file.clone());
    let token = read_secret(&token_file, "operator token", 8).map_err(|e| config(e.to_string()))?;
    let mut secrets = HashMap::new();
    for t in &cfg.terminals {
        let s = read_secret(&t.secret_file, "terminal secret", 16).map_err(|e| config(e.to_string()))?;
        secrets.insert(t.id.clone(), s.into_bytes());
    }
    let listen = args.listen.clone().unwrap_or(cfg.listen.clone());
    let serving = crate::service::http::Options {
        limits: cfg.limits().map_err(StartError::Config)?,
        tls: match &cfg.tls {
            Some(t) => Some(crate::service::http::tls_config(&t.cert_file, &t.key_file).map_err(StartError::Config)?),
            None => None,
        },
        grace: Duration::from_secs(5),
    };
    let runtime = crate::service::runtime("loyaltyd-hub")?;
    // The console renders from an engine: the embedded hub's (the PostgreSQL hub has
    // none yet, and serves the operator API without a console).
    let mut embedded: Option<Arc<SledHub>> = None;
    let hub: Arc<dyn HubStore> = match cfg.store.kind {
        HubStoreKind::Embedded => {
            let hub = crate::service::while_starting(|| SledHub::open(&cfg))?;
            let s = &hub.engine().startup;
            for r in s.repairs() {
                tracing::warn!("hub {r}");
            }
            tracing::info!("hub journal: {} records, {} replayed", s.journal_records, s.replayed);
            let hub = Arc::new(hub);
            embedded = Some(hub.clone());
            hub
        }
        HubStoreKind::Postgres => {
            let retry = Duration::from_secs(cfg.store.connect_retry_secs);
            Arc::new(crate::service::while_starting(|| {
                pg::PgHub::open(&cfg, runtime.handle().clone(), retry)
            })?)
        }
    };
    tracing::info!("{} terminals registered", secrets.len());
    let state = Arc::new(HubState {
        store: hub.clone(),
        token,
        secrets,
        unverified: Unverified::default(),
    });
    let console = embedded.map(|hub| {
        Arc::new(crate::console::Console::hub(
            Arc::new(HubConsole {
                hub,
                token: state.token.clone(),
            }),
            Duration::from_secs(30 * 60),
            serving.tls.is_some(),
        ))
    });
    let result = runtime.block_on(run(state, console, listen, serving));
    runtime.shutdown_timeout(Duration::from_secs(1));
    hub.close().map_err(StartError::Engine)?;
    result
}

/// What the console needs of the hub beyond its engine.
struct HubConsole {
    hub: Arc<SledHub>,
    token: String,
}

impl crate::console::HubOps for HubConsole {
    fn engine(&self) -> &crate::engine::Engine {
        self.hub.engine()
    }

    fn operator_token_is(&self, password: &str) -> bool {
        crate::service::http::same(password.as_bytes(), self.token.as_bytes())
    }

    fn terminals(&self) -> crate::error::Result<Vec<crate::console::TerminalRow>> {
        Ok(self
            .hub
            .terminals()?
            .into_iter()
            .map(|t| crate::console::TerminalRow {
                terminal_id: t.terminal_id,
                epoch: t.epoch,
                acked_seq: t.acked_seq,
                records: t.records,
                duplicates: t.duplicates,
                skipped: t.skipped,
                untrusted_clock: t.untrusted_clock,
                last_contact: t.last_contact,
                records_behind: t.records_behind,
            })
            .collect())
    }

    fn conflicts(&self) -> crate::error::Result<Vec<crate::engine::ConflictView>> {
        self.hub.conflicts()
    }

    fn resolve(
        &self,
        id: &str,
        keep: &str,
        merge: bool,
        by: crate::engine::Actor,
    ) -> crate::error::Result<crate::engine::ConflictView> {
        self.hub.resolve_conflict(id, keep, merge, by)
    }

    fn publish(&self, text: &str) -> crate::error::Result<u32> {
        self.hub.publish_ruleset(text)
    }
}

async fn run(
    state: Shared,
    console: Option<Arc<crate::console::Console>>,
    listen: String,
    serving: crate::service::http::Options,
) -> std::result::Result<(), StartError> {
    let listener = crate::service::http::bind(&listen)
        .await
        .map_err(|e| StartError::System(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| StartError::System(e.to_string()))?;
    let tasks = crate::service::Tasks::default();
    tasks.spawn(crate::service::stop_on_signal(tasks.clone()));
    let store = state.store.clone();
    let pass = move || match store.daily_pass() {
        Ok((issued, wait)) => {
            if issued > 0 {
                tracing::info!("trigger pass: {issued} coupons issued");
            }
            wait
        }
        Err(e) => {
            tracing::error!("trigger pass: {e}");
            Duration::from_secs(3600)
        }
    };
    tasks.spawn(crate::service::daily::repeat(
        "trigger pass",
        tasks.stop.clone(),
        Arc::new(pass),
    ));
    let scheme = if serving.tls.is_some() { "https" } else { "http" };
    tracing::info!("hub listening on {scheme}://{addr}");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let stop = tasks.stop.clone();
    let app = match console {
        Some(console) => {
            tracing::info!("console at {scheme}://{addr}/console/");
            crate::console::router(console).merge(api::router(state))
        }
        None => {
            tracing::info!("no console on the PostgreSQL hub yet: the operator API only");
            api::router(state)
        }
    };
    crate::service::http::serve(listener, app, serving, stop.cancelled_owned()).await;
    tasks.finish(Duration::from_secs(5)).await;
    tracing::info!("hub stopped");
    Ok(())
}
