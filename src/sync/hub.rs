//! `loyaltyd hub serve`: the chain's upstream.
//!
//! The hub is the same engine as a terminal (journal first, then sled, one `apply`),
//! holding every terminal's records inside `Remote` records of its own journal. It
//! answers pushes with the highest contiguous sequence it holds durably for each
//! terminal stream, serves a change feed to pulls, and has read-only endpoints for
//! operators. Storage sits behind [`HubStore`] so that a chain that outgrows one
//! machine can put it elsewhere.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::watch;

use super::intake::{self, Unverified};
use super::wire::{self, PullReply, PullRequest, PushReply, PushRequest};
use crate::config::{read_secret, HubConfig};
use crate::daemon::StartError;
use crate::engine::{ClockPolicy, Engine, EngineConfig};
use crate::error::{Code, Error, Result};
use crate::model::{self, MemberState};
use crate::record::{Body, Record, Remote};
use crate::rules::Ruleset;
use crate::store::{content_hash, FeedKind};
use crate::views::MemberView;

/// Feed entries one pull looks at, and the snapshot bytes it aims to stay under (a
/// pull becomes one journal record on the terminal, whose frames hold at most 1 MiB).
const PULL_ENTRIES: usize = 512;
const PULL_BYTES: usize = 512 << 10;
/// Members a terminal may ask for by id in one pull.
const PULL_ASKED: usize = 256;

/// One terminal stream as operators see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TerminalView {
    pub terminal_id: String,
    pub epoch: String,
    pub acked_seq: u64,
    pub records: u64,
    pub duplicates: u64,
    /// Records held whose effects could not be applied (should stay 0).
    pub skipped: u64,
    /// Records made while the terminal did not trust its clock.
    pub untrusted_clock: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Overspent {
    pub member_id: String,
    pub balance: i64,
}

/// The hub's storage: what the HTTP layer needs, nothing about how it is kept.
pub trait HubStore: Send + Sync {
    /// Stores a terminal's pushed records exactly once each and answers with what is
    /// now durably held of that stream.
    fn ingest(&self, push: &PushRequest) -> Result<PushReply>;
    /// What changed since the terminal's cursor, plus the members it asks for.
    fn pull(&self, req: &PullRequest) -> Result<PullReply>;
    fn member(&self, member_id: &str) -> Result<Option<MemberView>>;
    fn terminals(&self) -> Result<Vec<TerminalView>>;
    /// Members whose balance went negative (offline double spend, clawbacks).
    fn overspent(&self) -> Result<Vec<Overspent>>;
    /// Validates and publishes a ruleset for every terminal; returns its version.
    fn publish_ruleset(&self, text: &str) -> Result<u32>;
    /// Ends the session cleanly (see `Engine::close`).
    fn close(&self) -> Result<()>;
    /// Ok while the store takes changes (see `Engine::healthy`).
    fn healthy(&self) -> Result<()>;
}

/// [`HubStore`] on the terminal's own engine: a journal and sled.
pub struct SledHub {
    engine: Engine,
}

/// The engine settings of a hub: its own journal, a trusted (NTP) clock, no offline
/// cap, and the change feed on.
pub fn engine_config(cfg: &HubConfig) -> EngineConfig {
    EngineConfig {
        data_dir: cfg.data_dir.clone(),
        terminal_id: "hub".into(),
        clock: ClockPolicy::Trusted,
        cache_bytes: cfg.cache_mib << 20,
        offline_cap: false,
        hub: true,
    }
}

impl SledHub {
    pub fn open(cfg: &HubConfig) -> std::result::Result<SledHub, StartError> {
        let rules = if cfg.rules == std::path::Path::new(crate::config::DEFAULT_RULES_PATH) && !cfg.rules.exists() {
            Ruleset::parse(crate::config::EMBEDDED_RULES, "(embedded rules.toml)")
        } else {
            Ruleset::load(&cfg.rules)
        }
        .map_err(|e| StartError::Config(e.to_string()))?;
        let engine = Engine::open(engine_config(cfg), rules).map_err(StartError::Engine)?;
        let published = engine.store().published_ruleset().map_err(StartError::Engine)?;
        if let Some((text, version)) = published {
            match Ruleset::parse(&text, "(published ruleset)") {
                Ok(r) if version >= engine.rules().version => engine.set_rules(r),
                Ok(_) => {}
                Err(e) => tracing::error!("the published ruleset no longer loads: {e}"),
            }
        }
        Ok(SledHub { engine })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn conflict(push: &PushRequest, seq: u64) -> Error {
    let e = Error::new(
        Code::SyncConflict,
        format!(
            "terminal {} epoch {:x} record {seq}: the hub holds this identity with other content; refused",
            push.terminal_id, push.epoch
        ),
    );
    tracing::error!("SYNC CONFLICT: {}", e.message);
    e
}

impl HubStore for SledHub {
    fn ingest(&self, push: &PushRequest) -> Result<PushReply> {
        let ordered = push.records.windows(2).all(|w| w[0].0 < w[1].0);
        let inside = push.records.iter().all(|(s, _)| (push.from..=push.upto).contains(s));
        if push.from == 0 || push.upto + 1 < push.from || !ordered || !inside {
            return Err(Error::invalid("a push covers seqs from..=upto, in order"));
        }
        let at = self.engine.at(None);
        let (acked, duplicates) = self.engine.transact(at, |store, _| {
            let held = store
                .hub_terminal(&push.terminal_id, push.epoch)?
                .map_or(0, |t| t.acked);
            if push.from > held + 1 {
                // The terminal believes we hold more than we do (a hub restored from an
                // older backup): it resends from what we answer.
                tracing::warn!(
                    "terminal {} epoch {:x} pushed from {} but the hub holds up to {held}",
                    push.terminal_id,
                    push.epoch,
                    push.from
                );
                return Ok((vec![], (held, 0)));
            }
            let mut bodies = Vec::new();
            let mut duplicates = 0;
            for (seq, payload) in &push.records {
                if *seq <= held {
                    match store.record_hash(&push.terminal_id, push.epoch, *seq)? {
                        Some(h) if h == content_hash(payload) => duplicates += 1,
                        _ => return Err(conflict(push, *seq)),
                    }
                    continue;
                }
                Record::decode(payload).map_err(|e| Error::invalid(format!("record {seq}: {}", e.message)))?;
                bodies.push(Body::Remote(Box::new(Remote {
                    terminal_id: push.terminal_id.clone(),
                    epoch: push.epoch,
                    seq: *seq,
                    payload: payload.clone(),
                })));
            }
            let acked = held.max(push.upto);
            if acked > held || duplicates > 0 {
                bodies.push(Body::Covered {
                    terminal_id: push.terminal_id.clone(),
                    epoch: push.epoch,
                    upto: acked,
                    duplicates,
                });
            }
            Ok((bodies, (acked, duplicates)))
        })?;
        Ok(PushReply {
            acked,
            duplicates,
            hub_time: model::now(),
        })
    }

    fn pull(&self, req: &PullRequest) -> Result<PullReply> {
        let (journal, store) = (self.engine.journal(), self.engine.store());
        // Serve only what is durable, so that a cursor never points past a record a
        // crash could take back; and read the acknowledgement before the snapshots,
        // so that every snapshot covers at least what `acked` says.
        let durable = journal.last_seq();
        journal.wait_durable(durable)?;
        let acked = store.hub_terminal(&req.terminal_id, req.epoch)?.map_or(0, |t| t.acked);
        let entries: Vec<_> = store
            .feed_after(req.cursor, PULL_ENTRIES)?
            .into_iter()
            .filter(|e| e.0 <= durable)
            .collect();
        let mut reply = PullReply {
            cursor: req.cursor,
            acked,
            members: vec![],
            coupons: vec![],
            blocked_cards: vec![],
            ruleset: None,
            more: entries.len() >= PULL_ENTRIES,
            hub_time: 0,
        };
        let mut bytes = 0;
        let add_member = |reply: &mut PullReply, bytes: &mut usize, m: MemberState| {
            let snap = crate::state::convert::snapshot_of(&m);
            *bytes += postcard::to_allocvec(&snap).map_or(0, |v| v.len());
            reply.members.push(snap);
        };
        for id in req.members.iter().take(PULL_ASKED) {
            if bytes > PULL_BYTES {
                // The rest are asked for again by the next round's pull. (Not `more`:
                // a member stays stale until its records are acknowledged, which the
                // push after this pull does, so pulling again at once would not help.)
                break;
            }
            if let Some(m) = store.member(id)? {
                add_member(&mut reply, &mut bytes, m);
            }
        }
        let mut i = 0;
        while i < entries.len() {
            let seq = entries[i].0;
            if bytes > PULL_BYTES && reply.cursor > req.cursor {
                reply.more = true;
                break;
            }
            while i < entries.len() && entries[i].0 == seq {
                let (_, kind, id) = &entries[i];
                match kind {
                    FeedKind::Member => {
                        if let Some(m) = store.member(id)? {
                            add_member(&mut reply, &mut bytes, m);
                        }
                    }
                    FeedKind::Coupon => {
                        if let Some(c) = store.coupon(id)? {
                            reply.coupons.push((id.clone(), (&c).into()));
                        }
                    }
                    FeedKind::BlockedCard => reply.blocked_cards.push(id.clone()),
                    FeedKind::Ruleset => reply.ruleset = store.published_ruleset()?.map(|r| r.0),
                }
                i += 1;
            }
            reply.cursor = seq;
        }
        reply.hub_time = model::now();
        Ok(reply)
    }

    fn member(&self, member_id: &str) -> Result<Option<MemberView>> {
        let at = self.engine.at(None);
        Ok(self
            .engine
            .store()
            .member(member_id)?
            .map(|m| MemberView::new(&self.engine.rules(), &m, at.ts, at.trusted)))
    }

    fn terminals(&self) -> Result<Vec<TerminalView>> {
        Ok(self
            .engine
            .store()
            .hub_terminals()?
            .into_iter()
            .map(|t| TerminalView {
                terminal_id: t.terminal_id,
                epoch: format!("{:016x}", t.epoch),
                acked_seq: t.acked,
                records: t.records,
                duplicates: t.duplicates,
                skipped: t.skipped,
                untrusted_clock: t.untrusted_clock,
            })
            .collect())
    }

    fn overspent(&self) -> Result<Vec<Overspent>> {
        Ok(self
            .engine
            .store()
            .negative_members()?
            .into_iter()
            .map(|(member_id, balance)| Overspent { member_id, balance })
            .collect())
    }

    fn publish_ruleset(&self, text: &str) -> Result<u32> {
        let rules = Ruleset::parse(text, "(published ruleset)").map_err(|e| Error::invalid(e.to_string()))?;
        let version = rules.version;
        let at = self.engine.at(None);
        self.engine.transact(at, |store, _| {
            if let Some((_, current)) = store.published_ruleset()? {
                if version <= current {
                    return Err(Error::invalid(format!(
                        "ruleset version {version} is not newer than the published version {current}"
                    )));
                }
            }
            let body = Body::RulesetPublish {
                text: text.to_string(),
                version,
            };
            Ok((vec![body], ()))
        })?;
        self.engine.set_rules(rules);
        tracing::info!("published ruleset version {version}");
        Ok(version)
    }

    fn healthy(&self) -> Result<()> {
        self.engine.healthy()
    }

    fn close(&self) -> Result<()> {
        self.engine.close()
    }
}

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

/// Runs the hub until SIGTERM/SIGINT. Errors are start-up failures, said plainly.
pub fn serve(mut cfg: HubConfig, args: HubArgs) -> std::result::Result<(), StartError> {
    let config = StartError::Config;
    crate::daemon::init_logging();
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
    let serving = crate::http_serve::Options {
        limits: cfg.limits().map_err(StartError::Config)?,
        tls: match &cfg.tls {
            Some(t) => Some(crate::http_serve::tls_config(&t.cert_file, &t.key_file).map_err(StartError::Config)?),
            None => None,
        },
        grace: Duration::from_secs(5),
    };
    let hub = crate::daemon::while_starting(|| SledHub::open(&cfg))?;
    let s = &hub.engine().startup;
    for r in s.repairs() {
        tracing::warn!("hub {r}");
    }
    tracing::info!(
        "hub journal: {} records, {} replayed; {} terminals registered",
        s.journal_records,
        s.replayed,
        secrets.len()
    );
    let hub = Arc::new(hub);
    let state = Arc::new(HubState {
        store: hub.clone(),
        token,
        secrets,
        unverified: Unverified::default(),
    });
    let runtime = crate::daemon::runtime("loyaltyd-hub")?;
    let result = runtime.block_on(run(state, listen, serving));
    runtime.shutdown_timeout(Duration::from_secs(1));
    hub.close().map_err(StartError::Engine)?;
    result
}

async fn run(
    state: Shared,
    listen: String,
    serving: crate::http_serve::Options,
) -> std::result::Result<(), StartError> {
    let listener = crate::http_serve::bind(&listen)
        .await
        .map_err(|e| StartError::System(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| StartError::System(e.to_string()))?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(crate::daemon::stop_on_signal(stop_tx));
    let scheme = if serving.tls.is_some() { "https" } else { "http" };
    tracing::info!("hub listening on {scheme}://{addr}");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let stopped = async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    };
    crate::http_serve::serve(listener, router(state), serving, stopped).await;
    tracing::info!("hub stopped");
    Ok(())
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route(wire::PUSH_PATH, post(push))
        .route(wire::PULL_PATH, post(pull))
        .route("/v1/hub/members/{member_id}", get(member))
        .route("/v1/hub/terminals", get(terminals))
        .route("/v1/hub/reports/overspent", get(overspent))
        .route("/v1/hub/rulesets", post(publish))
        .fallback(|| async { Error::new(Code::InvalidInput, "no such endpoint").into_response() })
        .with_state(state)
}

async fn blocking<T: Send + 'static>(
    st: &Shared,
    f: impl FnOnce(&dyn HubStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))?
}

async fn health(State(st): State<Shared>) -> Response {
    let (status, fault) = match st.store.healthy() {
        Ok(()) => (StatusCode::OK, None),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Some(e.message)),
    };
    let body = Json(serde_json::json!({
        "status": if fault.is_none() { "ok" } else { "failing" },
        "fault": fault,
        "role": "hub",
        "version": env!("CARGO_PKG_VERSION"),
        "hub_time": model::fmt_instant(model::now(), &chrono_tz::UTC),
    }));
    (status, body).into_response()
}

/// A request body that names the terminal it comes from.
trait FromTerminal: serde::de::DeserializeOwned + Send + 'static {
    fn terminal_id(&self) -> &str;
}

impl FromTerminal for PushRequest {
    fn terminal_id(&self) -> &str {
        &self.terminal_id
    }
}

impl FromTerminal for PullRequest {
    fn terminal_id(&self) -> &str {
        &self.terminal_id
    }
}

/// A sync request, in this order: the `Authorization` header names a known terminal
/// (else 401, the body unread); a slot among the unverified requests (else 503); the
/// body, bounded in size and time; its signature (else 401); then `f` runs on the
/// store and the answer goes back in postcard.
async fn signed<Q: FromTerminal, A: Serialize + Send + 'static>(
    st: Shared,
    peer: SocketAddr,
    headers: HeaderMap,
    body: HttpBody,
    (path, limit): (&'static str, usize),
    f: fn(&dyn HubStore, &Q) -> Result<A>,
) -> Response {
    let (terminal, sig, secret) = match intake::claimed(&st.secrets, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Some(slot) = st.unverified.take(peer.ip()) else {
        tracing::debug!("sync request from {peer} claiming {terminal}: too many unverified requests");
        let busy = Error::new(
            Code::StoreBusy,
            "too many sync requests are being received; retry in a moment",
        );
        return ([(header::RETRY_AFTER, "1")], busy).into_response();
    };
    let body = match intake::read_body(&headers, body, limit).await {
        Ok(b) => b,
        Err(refused) => return refused.into_response(),
    };
    if !wire::verify(secret, &terminal, path, &body, &sig) {
        tracing::warn!("sync request from terminal {terminal:?} ({peer}) with a wrong signature refused");
        return Error::new(Code::Unauthorized, "wrong signature").into_response();
    }
    drop(slot);
    let req: Q = match postcard::from_bytes(&body) {
        Ok(r) => r,
        Err(e) => return Error::invalid(format!("undecodable sync body: {e}")).into_response(),
    };
    if req.terminal_id() != terminal {
        return Error::new(Code::Unauthorized, "signed by another terminal").into_response();
    }
    drop(body);
    match blocking(&st, move |s| f(s, &req)).await {
        Ok(answer) => match postcard::to_allocvec(&answer) {
            Ok(bytes) => ([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], bytes).into_response(),
            Err(e) => Error::internal(format!("cannot encode the answer: {e}")).into_response(),
        },
        Err(e) => e.into_response(),
    }
}

async fn push(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let bound = (wire::PUSH_PATH, wire::MAX_PUSH_BODY);
    signed(st, peer, headers, body, bound, |s, r: &PushRequest| s.ingest(r)).await
}

async fn pull(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let bound = (wire::PULL_PATH, wire::MAX_PULL_BODY);
    signed(st, peer, headers, body, bound, |s, r: &PullRequest| s.pull(r)).await
}

/// Operator endpoints need the bearer token.
fn operator(st: &HubState, headers: &HeaderMap) -> Result<()> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if crate::api::same(t.trim().as_bytes(), st.token.as_bytes()) => Ok(()),
        _ => Err(Error::new(Code::Unauthorized, "missing or wrong bearer token")),
    }
}

fn json<T: Serialize>(r: Result<T>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn member(State(st): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(
        blocking(&st, move |s| {
            s.member(&id)?
                .ok_or_else(|| Error::new(Code::UnknownMember, format!("no member {id}")))
        })
        .await,
    )
}

async fn terminals(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, |s| s.terminals()).await)
}

async fn overspent(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, |s| s.overspent()).await)
}

async fn publish(State(st): State<Shared>, headers: HeaderMap, body: HttpBody) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    let body = match intake::read_body(&headers, body, intake::MAX_RULESET_BODY).await {
        Ok(b) => b,
        Err(refused) => return refused.into_response(),
    };
    let text = match String::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return Error::invalid("a ruleset is UTF-8 TOML text").into_response(),
    };
    match blocking(&st, move |s| s.publish_ruleset(&text)).await {
        Ok(version) => (StatusCode::CREATED, Json(serde_json::json!({ "version": version }))).into_response(),
        Err(e) => e.into_response(),
    }
}
