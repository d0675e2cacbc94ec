//! The terminal's sync task: pull what changed on the hub, push what the hub has not
//! acknowledged, record the acknowledgement, repeat.
//!
//! Every step is safe to repeat: a push the hub already holds is counted as a
//! duplicate, an acknowledgement lost on the way (or lost to a crash before it was
//! recorded) makes the records go again, and a pull is applied through the journal
//! like any change. Failures are retried forever with exponential backoff and jitter;
//! while the hub cannot even be connected to, a cheap connect probe runs every second
//! so that the next round starts as soon as the link is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::wire::{self, PullReply, PullRequest, PushReply, PushRequest, PULL_ASKED, PUSH_BYTES, PUSH_RECORDS};
use crate::engine::Engine;
use crate::error::Error;
use crate::model;
use crate::record::HubPullV3;

const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const PROBE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The hub's base URL, e.g. `https://hub.example:7440`.
    pub upstream: String,
    pub secret: Vec<u8>,
    pub interval: Duration,
    /// The roots an https hub's certificate must chain to (`sync.ca_file`); `None` =
    /// the public roots built in (webpki-roots).
    pub roots: Option<Vec<ureq::tls::Certificate<'static>>>,
}

/// The certificates of a PEM file (`sync.ca_file`): at least one.
pub fn load_roots(path: &std::path::Path) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("sync.ca_file {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("sync.ca_file {}: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!("sync.ca_file {}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// A TLS failure inside an I/O error: the hub's certificate did not verify, or the
/// handshake failed. Not a link failure: retrying at once would not help.
fn tls_failure(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// Why a round failed: the link (nothing answered) or the hub (it answered, badly).
#[derive(Debug)]
enum Failure {
    Link(String),
    Hub(String),
    /// The hub does not serve this path (a hub older than this terminal).
    NotServed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Link(m) => write!(f, "hub unreachable: {m}"),
            Failure::Hub(m) => write!(f, "{m}"),
            Failure::NotServed(p) => write!(f, "the hub does not serve {p}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Hub(e.to_string())
    }
}

/// Test hook: `LOYALTYD_FAULT=exit-after-ack` makes the process exit abruptly after
/// it has received the hub's first acknowledgement and before it records it, as a
/// power cut at that instant would.
fn fault_after_ack() {
    if std::env::var("LOYALTYD_FAULT").as_deref() == Ok("exit-after-ack") {
        eprintln!("LOYALTYD_FAULT=exit-after-ack: exiting before recording the acknowledgement");
        // SAFETY: _exit ends the process at once, like a crash: no destructors, no flush.
        unsafe { libc::_exit(137) };
    }
}

struct Client {
    agent: ureq::Agent,
    cfg: SyncConfig,
    terminal_id: String,
    /// The hub answered that it has no 0.2 pull: it runs 0.1.
    hub_v1: std::sync::atomic::AtomicBool,
}

impl Client {
    fn new(cfg: SyncConfig, terminal_id: String) -> Client {
        let roots = match &cfg.roots {
            Some(certs) => ureq::tls::RootCerts::new_with_certs(certs),
            None => ureq::tls::RootCerts::WebPki,
        };
        let agent = ureq::Agent::config_builder()
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(3)))
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Client {
            agent,
            cfg,
            terminal_id,
            hub_v1: Default::default(),
        }
    }

    /// One signed postcard exchange. Notes the hub's clock on the engine.
    fn call<Q: serde::Serialize, A: serde::de::DeserializeOwned>(
        &self,
        engine: &Engine,
        path: &str,
        req: &Q,
        hub_time: impl Fn(&A) -> i64,
    ) -> std::result::Result<A, Failure> {
        let body = postcard::to_allocvec(req).map_err(|e| Failure::Hub(format!("cannot encode: {e}")))?;
        let auth = wire::sign(&self.cfg.secret, &self.terminal_id, path, &body);
        let url = format!("{}{path}", self.cfg.upstream.trim_end_matches('/'));
        let sent = model::now();
        let mut resp = self
            .agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", wire::CONTENT_TYPE)
            .send(&body[..])
            .map_err(|e| match e {
                e if tls_failure(&e).is_some() => Failure::Hub(format!(
                    "refusing the hub at {}: TLS failed ({}); nothing was sent",
                    self.cfg.upstream,
                    tls_failure(&e).map_or_else(String::new, |t| t.to_string())
                )),
                ureq::Error::Rustls(t) => Failure::Hub(format!(
                    "refusing the hub at {}: TLS failed ({t}); nothing was sent",
                    self.cfg.upstream
                )),
                ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                    Failure::Link(e.to_string())
                }
                ureq::Error::Timeout(_) => Failure::Link(e.to_string()),
                other => Failure::Hub(other.to_string()),
            })?;
        let status = resp.status();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(wire::MAX_REPLY as u64)
            .read_to_vec()
            .map_err(|e| Failure::Link(format!("reading the answer: {e}")))?;
        if status == 404 {
            return Err(Failure::NotServed(path.to_string()));
        }
        if !status.is_success() {
            let msg = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(Failure::Hub(format!("hub answered {status} to {path}: {msg}")));
        }
        let answer: A =
            postcard::from_bytes(&bytes).map_err(|e| Failure::Hub(format!("undecodable answer to {path}: {e}")))?;
        let received = model::now();
        engine.note_hub_clock(hub_time(&answer) - (sent + received) / 2);
        Ok(answer)
    }

    /// Pulls until the hub has nothing more; applies each page through the journal.
    fn pull(&self, engine: &Engine) -> std::result::Result<(), Failure> {
        loop {
            let store = engine.store();
            let req = PullRequest {
                terminal_id: self.terminal_id.clone(),
                epoch: engine.epoch(),
                cursor: store.cursor()?,
                // The hub answers for this many; the rest are asked for next round.
                members: store.stale_members()?.into_iter().take(PULL_ASKED).collect(),
            };
            let reply = self.pull_once(engine, &req)?;
            let more = reply.more;
            let changed = !(reply.members.is_empty()
                && reply.coupons.is_empty()
                && reply.blocked_cards.is_empty()
                && reply.ruleset.is_none()
                && reply.groups.is_empty());
            if changed || reply.cursor != req.cursor {
                engine.apply_pull(HubPullV3 {
                    cursor: reply.cursor,
                    acked: reply.acked,
                    members: reply.members,
                    coupons: reply.coupons,
                    blocked_cards: reply.blocked_cards,
                    ruleset: reply.ruleset,
                    groups: reply.groups,
                })?;
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// One pull, in 0.2's form; from a 0.1 hub (which has no such path) in 0.1's.
    fn pull_once(&self, engine: &Engine, req: &PullRequest) -> std::result::Result<PullReply, Failure> {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.hub_v1.load(Relaxed) {
            match self.call(engine, wire::PULL_V2_PATH, req, |r: &PullReply| r.hub_time) {
                Err(Failure::NotServed(_)) => {
                    tracing::info!("the hub is older than 0.2; pulling 0.1 member snapshots");
                    self.hub_v1.store(true, Relaxed);
                }
                other => return other,
            }
        }
        let reply: wire::PullReplyV1 = self.call(engine, wire::PULL_PATH, req, |r: &wire::PullReplyV1| r.hub_time)?;
        Ok(reply.into_v2())
    }

    /// Pushes every unacknowledged record, recording each acknowledgement. Returns
    /// how many records went.
    fn push(&self, engine: &Engine) -> std::result::Result<u64, Failure> {
        let mut sent = 0;
        let mut acked = engine.acked()?;
        // Where the next batch starts; below `acked.seq + 1` only when the hub says it
        // holds less than we recorded (it was restored from a backup).
        let mut from = acked.seq + 1;
        loop {
            let (records, upto) = engine.outbox_batch(from - 1, PUSH_RECORDS, PUSH_BYTES)?;
            if records.is_empty() {
                return Ok(sent);
            }
            let n = records.len() as u64;
            let req = PushRequest {
                terminal_id: self.terminal_id.clone(),
                epoch: engine.epoch(),
                from,
                upto,
                records,
            };
            let reply: PushReply = self.call(engine, wire::PUSH_PATH, &req, |r: &PushReply| r.hub_time)?;
            fault_after_ack();
            if reply.acked + 1 < from {
                tracing::warn!(
                    "the hub holds this terminal's records only up to {}; sending again from there",
                    reply.acked
                );
                from = reply.acked + 1;
                continue;
            }
            if reply.acked > acked.seq {
                let pushable = if reply.acked == upto && from == acked.seq + 1 {
                    acked.pushable + n
                } else {
                    acked.pushable + engine.count_pushable(acked.seq + 1, reply.acked)?
                };
                engine.record_ack(reply.acked, pushable)?;
                acked = engine.acked()?;
            }
            sent += n;
            from = from.max(reply.acked + 1);
        }
    }

    /// One round: the blocklist and snapshots first (a card blocked elsewhere is
    /// refused here at once), then our records, then the snapshots they changed.
    fn round(&self, engine: &Engine) -> std::result::Result<(), Failure> {
        self.pull(engine)?;
        if self.push(engine)? > 0 {
            self.pull(engine)?;
        }
        Ok(())
    }
}

/// Sync progress the health endpoint reports (filled by the sync task).
#[derive(Default)]
pub struct SyncInfo {
    last_sync_at: std::sync::Mutex<Option<crate::model::Ts>>,
}

impl SyncInfo {
    pub fn note_success(&self) {
        if let Ok(mut t) = self.last_sync_at.lock() {
            *t = Some(crate::model::now());
        }
    }

    /// When the last round with the hub completed.
    pub fn last_sync_at(&self) -> Option<crate::model::Ts> {
        self.last_sync_at.lock().ok().and_then(|t| *t)
    }
}

/// Runs the sync task until `stop` is cancelled.
pub async fn run(
    engine: Arc<Engine>,
    cfg: SyncConfig,
    info: Arc<SyncInfo>,
    wake: Arc<Notify>,
    stop: tokio_util::sync::CancellationToken,
) {
    let interval = cfg.interval;
    let host = hub_addr(&cfg.upstream);
    let client = Arc::new(Client::new(cfg, engine.terminal_id().to_string()));
    let mut backoff = BACKOFF_FIRST;
    let mut failing_since: Option<Instant> = None;
    loop {
        let (c, e) = (client.clone(), engine.clone());
        let result = tokio::task::spawn_blocking(move || c.round(&e))
            .await
            .unwrap_or_else(|e| Err(Failure::Hub(format!("sync round failed: {e}"))));
        let wait = match result {
            Ok(()) => {
                if let Some(t) = failing_since.take() {
                    tracing::info!("sync: back in touch with the hub after {:.0?}", t.elapsed());
                }
                info.note_success();
                backoff = BACKOFF_FIRST;
                Wait::Interval(interval)
            }
            Err(f) => {
                if failing_since.is_none() {
                    failing_since = Some(Instant::now());
                    tracing::warn!("sync: {f}; retrying with backoff");
                } else {
                    tracing::debug!("sync: {f}");
                }
                let this = jitter(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                match f {
                    Failure::Link(_) => Wait::LinkDown(this),
                    Failure::Hub(_) | Failure::NotServed(_) => Wait::Backoff(this),
                }
            }
        };
        let done = match wait {
            Wait::Interval(d) => tokio::select! {
                _ = tokio::time::sleep(d) => false,
                _ = wake.notified() => false,
                _ = stop.cancelled() => true,
            },
            Wait::Backoff(d) => tokio::select! {
                _ = tokio::time::sleep(d) => false,
                _ = stop.cancelled() => true,
            },
            Wait::LinkDown(d) => tokio::select! {
                _ = tokio::time::sleep(d) => false,
                _ = link_back(&host) => false,
                _ = stop.cancelled() => true,
            },
        };
        if done {
            return;
        }
    }
}

enum Wait {
    Interval(Duration),
    Backoff(Duration),
    LinkDown(Duration),
}

/// A random duration in [d/2, d], so that terminals cut off together do not retry
/// in lockstep.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 8];
    let r = getrandom::getrandom(&mut b).map_or(0, |_| u64::from_le_bytes(b));
    let half = d.as_millis() as u64 / 2;
    Duration::from_millis(half + r % (half + 1))
}

/// host:port of the upstream URL, for the connect probe: the scheme's port when the
/// URL gives none.
fn hub_addr(upstream: &str) -> String {
    let (scheme, rest) = upstream.split_once("://").unwrap_or(("http", upstream));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // A port follows the last ':' unless that ':' is inside an IPv6 literal.
    let has_port = hostport.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty() && !port.contains(']') && (!host.starts_with('[') || host.ends_with(']'))
    });
    if has_port {
        hostport.to_string()
    } else {
        let port = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
        format!("{hostport}:{port}")
    }
}

/// Whether the upstream URL names this machine (clear text then crosses no network).
pub fn is_loopback(upstream: &str) -> bool {
    let addr = hub_addr(upstream);
    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Resolves once a TCP connection to the hub succeeds (checked every second).
async fn link_back(host: &str) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let probe = tokio::time::timeout(PROBE_EVERY, tokio::net::TcpStream::connect(host)).await;
        if matches!(probe, Ok(Ok(_))) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_address_comes_from_the_url() {
        assert_eq!(hub_addr("http://127.0.0.1:7440"), "127.0.0.1:7440");
        assert_eq!(hub_addr("http://hub.example/"), "hub.example:80");
        assert_eq!(hub_addr("http://[::1]:9/x"), "[::1]:9");
        assert_eq!(hub_addr("https://hub.example"), "hub.example:443");
        assert_eq!(hub_addr("https://hub.example:7440/"), "hub.example:7440");
        assert_eq!(hub_addr("HTTPS://hub.example?x=1"), "hub.example:443");
        assert_eq!(hub_addr("https://[2001:db8::1]/"), "[2001:db8::1]:443");
        assert_eq!(hub_addr("http://[2001:db8::1]"), "[2001:db8::1]:80");
        assert_eq!(hub_addr("https://u:p@hub.example"), "hub.example:443");
        assert!(
            is_loopback("http://127.0.0.1:7440") && is_loopback("http://localhost/") && is_loopback("http://[::1]:9")
        );
        assert!(!is_loopback("http://10.0.0.2:7440") && !is_loopback("http://hub.example"));
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!(
                j >= Duration::from_millis(500) && j <= Duration::from_millis(1000),
                "{j:?}"
            );
        }
    }
}
