//! The HTTP/1.1 serving layer both daemons run their axum router on: timeouts, a cap on
//! open connections, optional TLS, graceful shutdown.
//!
//! Timeouts follow the common server model (Go's `ReadHeaderTimeout`/`IdleTimeout`):
//! - a new connection must deliver a complete request head (and finish its TLS
//!   handshake) within `header_read_timeout` of being accepted;
//! - once a response is done, a keep-alive connection may sit silent for
//!   `idle_timeout`; the first byte of its next request starts `header_read_timeout`;
//! - while a request is in flight (its response, an SSE stream included, not yet
//!   finished) no timeout applies: handlers bound their own work.
//!
//! Beyond `max_connections`, new connections wait in the kernel's accept queue (the
//! client's connect succeeds, its request is read once a slot frees) instead of being
//! accepted and dropped: the timeouts free slots within seconds, so a real client
//! behind a burst of idle or slow ones is served late rather than refused.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

pub use crate::config::Limits;
use crate::error::{Code, Error};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

/// Largest request head (start line and headers) and read buffer of a connection.
const MAX_BUF: usize = 64 << 10;
const MAX_HEADERS: usize = 64;
/// Connections the kernel completes and queues before they are accepted (the kernel
/// caps it at net.core.somaxconn). The default of 128 loses a burst: a client whose
/// handshake overflowed it has its first bytes retransmitted a second or more later.
const LISTEN_BACKLOG: u32 = 1024;
/// File descriptors kept for everything that is not a connection (journal, sled,
/// devices, the listener, logs).
const FD_RESERVE: usize = 64;

pub struct Options {
    pub limits: Limits,
    /// HTTPS when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long in-flight requests get to finish after the shutdown signal.
    pub grace: Duration,
}

/// A TLS server configuration from PEM files: the certificate chain (leaf first) and
/// its private key (PKCS#8, PKCS#1 or SEC1).
pub fn tls_config(cert_file: &Path, key_file: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: cannot read the certificate chain: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{}: cannot read the private key: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} with {}: {e}", cert_file.display(), key_file.display()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Binds a listener on `addr` (host:port) with a deep accept queue.
pub async fn bind(addr: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing")))
}

/// Makes room for `wanted` connections in RLIMIT_NOFILE: raises the soft limit up to
/// the hard one if needed, and returns how many connections fit (fewer than wanted,
/// with a warning, when the hard limit is too low).
pub fn fit_open_files(wanted: usize) -> usize {
    let need = (wanted + FD_RESERVE) as libc::rlim_t;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur >= need {
        return wanted;
    }
    let raised = libc::rlimit {
        rlim_cur: need.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        lim.rlim_cur = raised.rlim_cur;
    }
    let fits = (lim.rlim_cur as usize).saturating_sub(FD_RESERVE).max(1);
    if fits < wanted {
        tracing::warn!(
            "max_connections {wanted} does not fit the open-file limit {} ({FD_RESERVE} kept for the rest): \
             serving at most {fits} connections; raise LimitNOFILE",
            lim.rlim_cur
        );
        return fits;
    }
    wanted
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (closing idle connections at once) for up to `grace`.
/// Requests see the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, router: Router, opts: Options, shutdown: impl Future<Output = ()>) {
    let max = fit_open_files(opts.limits.max_connections);
    let slots = Arc::new(Semaphore::new(max));
    let shared = Arc::new(Shared {
        router,
        limits: opts.limits,
        tls: opts.tls.map(tokio_rustls::TlsAcceptor::from),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut full_since: Option<Instant> = None;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                if full_since.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!("{max} connections open: new ones wait until one closes");
                    full_since = Some(Instant::now());
                }
                tokio::select! {
                    s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
                    _ = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning on the error.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (shared, stop) = (shared.clone(), stop_rx.clone());
        tokio::spawn(async move {
            connection(stream, peer, &shared, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends: all of them back = all closed.
    let all = slots.acquire_many(max as u32);
    if tokio::time::timeout(opts.grace, all).await.is_err() {
        tracing::warn!(
            "shutdown: {} connections still open after {:?}; closing them",
            max - slots.available_permits(),
            opts.grace
        );
    }
}

struct Shared {
    router: Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

async fn connection(stream: TcpStream, peer: SocketAddr, shared: &Shared, stop: watch::Receiver<bool>) {
    let activity = Arc::new(Activity::new());
    match &shared.tls {
        None => drive(stream, peer, shared, activity, stop).await,
        Some(acceptor) => {
            // The handshake counts against the header read timeout.
            let deadline = Instant::now() + shared.limits.header_read_timeout;
            let handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream));
            let mut stopped = stop.clone();
            let shaken = tokio::select! {
                r = handshake => r,
                _ = stopped.wait_for(|s| *s) => return,
            };
            match shaken {
                Ok(Ok(tls)) => drive(tls, peer, shared, activity, stop).await,
                Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                Err(_) => tracing::debug!("TLS handshake with {peer}: timed out"),
            }
        }
    }
}

/// Runs HTTP/1.1 on one connection, closing it when a timeout of [`Activity`] expires.
async fn drive<IO>(io: IO, peer: SocketAddr, shared: &Shared, activity: Arc<Activity>, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = shared.router.clone();
    let act = activity.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let in_flight = InFlight::begin(act.clone());
        let answer = tower_service::Service::call(&mut router.clone(), req);
        async move {
            let resp = answer.await?;
            Ok::<_, Infallible>(resp.map(|body| GuardedBody {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    let watched = Watched {
        io,
        activity: activity.clone(),
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None) // ours, below: hyper's also runs while idle
        .max_buf_size(MAX_BUF)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(watched), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(&shared.limits);
        tokio::select! {
            // The connection first: a head that arrived in time but was not read yet (a
            // busy machine) is dispatched before its timer is looked at.
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection from {peer}: {e}");
                }
                return;
            }
            _ = sleep_until(deadline) => {
                if activity.deadline(&shared.limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("connection from {peer}: closed after its timeout");
                    return;
                }
            }
            _ = activity.changed.notified() => {}
            _ = stop.wait_for(|s| *s), if !stopping => {
                // Shutting down: a connection with no request in flight (idle, or a
                // head still coming) closes now; the others finish their request.
                if activity.deadline(&shared.limits).is_some() {
                    return;
                }
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, for its timeouts.
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

struct Phase {
    /// Requests whose response is not finished.
    in_flight: usize,
    /// With none in flight: waiting for a request head (a new connection, or bytes of
    /// the next request arrived) rather than idle.
    reading_head: bool,
    since: Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase {
                in_flight: 0,
                reading_head: true,
                since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the connection is to be closed, if nothing changes; none while busy.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let p = self.phase();
        (p.in_flight == 0).then(|| {
            p.since
                + if p.reading_head {
                    limits.header_read_timeout
                } else {
                    limits.idle_timeout
                }
        })
    }

    fn bytes_read(&self) {
        let mut p = self.phase();
        if p.in_flight == 0 && !p.reading_head {
            p.reading_head = true;
            p.since = Instant::now();
            drop(p);
            self.changed.notify_one();
        }
    }
}

/// A request in flight on a connection, until its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> InFlight {
        activity.phase().in_flight += 1;
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut p = self.0.phase();
        p.in_flight -= 1;
        if p.in_flight == 0 {
            p.reading_head = false;
            p.since = Instant::now();
            drop(p);
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight.
struct GuardedBody {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for GuardedBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The connection's stream (after TLS), noting when bytes of a new request arrive.
struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

// ---- Helpers both routers use: refusals as the error document, bearer tokens. ----

/// A refusal or fault as the error document, with the status interface.md gives its code.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.to_json())).into_response()
    }
}

/// Compares without an early exit, so the time taken does not tell how much matched.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` header (the scheme's case does not
/// matter, RFC 9110 11.1).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub async fn not_found() -> Response {
    Error::new(Code::NotFound, "no such endpoint").into_response()
}

pub async fn method_not_allowed() -> Response {
    Error::new(Code::MethodNotAllowed, "this endpoint does not take that method").into_response()
}

/// Every answer that is not a success carries the error document, whoever made it
/// (axum's own rejections answer in plain text).
pub async fn errors_as_json(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.is_success() || is_json || status.is_informational() || status.is_redirection() {
        return resp;
    }
    let code = match status.as_u16() {
        401 => Code::Unauthorized,
        404 => Code::NotFound,
        405 => Code::MethodNotAllowed,
        400..=499 => Code::InvalidInput,
        _ => Code::Internal,
    };
    let message = match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.to_string(),
    };
    (status, Json(Error::new(code, message).to_json())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        max_connections: 8,
    };

    fn since(a: &Activity) -> Instant {
        a.phase().since
    }

    #[test]
    fn deadlines_follow_the_connection_phase() {
        let a = Arc::new(Activity::new());
        let opened = since(&a);
        assert_eq!(
            a.deadline(&LIMITS),
            Some(opened + LIMITS.header_read_timeout),
            "new: header timeout"
        );
        let req = InFlight::begin(a.clone());
        let req2 = InFlight::begin(a.clone());
        assert_eq!(a.deadline(&LIMITS), None, "busy: no timeout");
        a.bytes_read();
        assert_eq!(
            a.deadline(&LIMITS),
            None,
            "body bytes of a busy connection change nothing"
        );
        drop(req);
        assert_eq!(a.deadline(&LIMITS), None, "one of two still in flight");
        drop(req2);
        let done = since(&a);
        assert!(done >= opened);
        assert_eq!(
            a.deadline(&LIMITS),
            Some(done + LIMITS.idle_timeout),
            "done: idle timeout"
        );
        std::thread::sleep(Duration::from_millis(2));
        a.bytes_read();
        let head = since(&a);
        assert!(head > done, "the next head's first byte restarts the clock");
        assert_eq!(
            a.deadline(&LIMITS),
            Some(head + LIMITS.header_read_timeout),
            "then the header timeout"
        );
        a.bytes_read();
        assert_eq!(since(&a), head, "counted from the head's first byte, not its last");
    }

    #[test]
    fn the_open_file_limit_is_raised_or_the_cap_lowered() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let hard = lim.rlim_max as usize;
        assert_eq!(fit_open_files(16), 16);
        if hard < 1 << 30 {
            assert_eq!(fit_open_files(hard), hard - FD_RESERVE);
        }
    }
}
