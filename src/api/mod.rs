//! The POS API of interface.md over HTTP/JSON (axum).
//!
//! Handlers are thin: parse, call the engine on a blocking thread (commits wait for an
//! fdatasync), map the result to JSON. Errors become the error document with the status
//! interface.md gives its code. `ask` says who calls; `members` serves finding and
//! fixing members and their history, `staff` sessions and staff accounts.

mod ask;
mod campaigns;
mod members;
mod reports;
pub mod sessions;
mod staff;

pub use ask::{Asked, Caller, Nothing};

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::engine::{Actor, Engine, NewMember, Sale, POS_STAFF};
use crate::error::{Code, Error, Result};
use crate::feedback::{Feedback, Signal};
use crate::metrics::Metrics;
use crate::model::{canonical_card, parse_date, CardStatus, Role};
use crate::service::http;
use crate::sync::client::SyncInfo;
use crate::views::MemberView;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

pub struct AppState {
    pub engine: Arc<Engine>,
    pub token: String,
    /// The role the POS token acts with (as staff id `pos`).
    pub pos_role: Role,
    pub sessions: sessions::Sessions,
    pub events: broadcast::Sender<CardEvent>,
    pub metrics: Arc<Metrics>,
    pub feedback: Feedback,
    pub sync: Arc<SyncInfo>,
    /// Turns true when the daemon stops: open SSE streams end so shutdown can finish.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// A card read as the POS sees it on `GET /v1/events`.
#[derive(Debug, Clone, Serialize)]
pub struct CardEvent {
    pub card: String,
    pub status: &'static str,
    pub member: Option<MemberView>,
}

type Shared = Arc<AppState>;

pub fn router(state: Shared) -> Router {
    let authed = Router::new()
        .route("/v1/members", post(add_member).get(members::find))
        .merge(members::routes())
        .merge(campaigns::routes())
        .merge(staff::routes())
        .merge(reports::routes())
        .route("/v1/cards/{card}", get(get_card))
        .route("/v1/cards/{card}/block", post(block_card))
        .route("/v1/cards/{card}/replace", post(replace_card))
        .route("/v1/checkout/quote", post(quote))
        .route("/v1/checkout/commit", post(commit))
        .route("/v1/refunds", post(refund))
        .route("/v1/coupons", post(issue_coupon))
        .route("/v1/rewards/redeem", post(redeem_reward))
        .route("/v1/swipe", post(swipe))
        .route("/v1/events", get(events))
        .route("/v1/reports/daily", get(daily))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/sessions", post(staff::login))
        .merge(authed)
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(middleware::map_response(http::errors_as_json))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Names the caller of every request but health and login: the POS token acts as
/// staff `pos` with `[api] pos_role`; a session token as its staff member.
async fn auth(State(st): State<Shared>, mut req: Request, next: Next) -> Response {
    let actor = match http::bearer(req.headers()) {
        Some(t) if http::same(t.as_bytes(), st.token.as_bytes()) => Some(Actor::new(POS_STAFF, st.pos_role)),
        Some(t) => st.sessions.actor(t),
        None => None,
    };
    match actor {
        Some(actor) => {
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        None => {
            st.metrics.refusal(Code::Unauthorized);
            Error::new(Code::Unauthorized, "missing or wrong bearer token").into_response()
        }
    }
}

// The request bodies below are public so that the fuzz targets in fuzz/ parse them as
// the handlers do.

/// Runs engine work, which may wait for an fdatasync, and counts refusals.
///
/// `block_in_place` runs it on the request's own thread and hands the runtime's other
/// work to another thread, where `spawn_blocking` would wake a pool thread and then wake
/// the request's thread again with the answer: two context switches fewer on the path of
/// every request (1-client commits: p50 430-477 µs instead of 489-658, p99 1.5-2.0 ms
/// instead of 2.2-4.4 in the same noisy runs). Needs the multi-threaded runtime, which
/// is the only one serving this API.
pub(crate) fn blocking<T>(st: &Shared, f: impl FnOnce(&Engine) -> Result<T>) -> Result<T> {
    let engine = &st.engine;
    let r = tokio::task::block_in_place(move || f(engine));
    if let Err(e) = &r {
        st.metrics.refusal(e.code);
        if e.code.is_fault() {
            tracing::error!("{e}");
        }
    }
    r
}

async fn health(State(st): State<Shared>) -> Response {
    let engine = &st.engine;
    let outbox = match engine.outbox() {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let tz = engine.rules().timezone;
    let last = st.sync.last_sync_at().map(|t| crate::model::fmt_instant(t, &tz));
    // A failed engine refuses every change until a restart repairs it: unhealthy, so
    // that a supervisor (and the watchdog, which stops pinging) restarts it.
    let (status, fault) = match engine.healthy() {
        Ok(()) => (StatusCode::OK, None),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Some(e.message)),
    };
    let body = Json(serde_json::json!({
        "status": if fault.is_none() { "ok" } else { "failing" },
        "fault": fault,
        "version": env!("CARGO_PKG_VERSION"),
        "terminal_id": engine.terminal_id(),
        "outbox": outbox,
        "last_sync_at": last,
        "clock_trusted": engine.clock_trusted(),
        "journal_records": engine.journal().last_seq(),
    }));
    (status, body).into_response()
}

async fn add_member(State(st): State<Shared>, a: Asked<NewMember>) -> Response {
    let st2 = st.clone();
    match blocking(&st, move |e| {
        e.add_member(a.body, a.key.as_deref(), e.at(None).by(a.actor))
    }) {
        Ok(m) => {
            st2.metrics.members_added.fetch_add(1, Relaxed);
            (StatusCode::CREATED, Json(m)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub(crate) fn reply<T: Serialize>(r: Result<T>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn get_card(State(st): State<Shared>, Path(card): Path<String>) -> Response {
    reply(blocking(&st, move |e| e.show_member(&card, e.at(None))))
}

async fn block_card(State(st): State<Shared>, Path(card): Path<String>, a: Asked<Nothing>) -> Response {
    reply(blocking(&st, move |e| {
        e.block_card(&card, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceBody {
    pub new_card: String,
}

async fn replace_card(State(st): State<Shared>, Path(card): Path<String>, a: Asked<ReplaceBody>) -> Response {
    reply(blocking(&st, move |e| {
        e.replace_card(&card, &a.body.new_card, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

async fn quote(State(st): State<Shared>, a: Asked<Sale>) -> Response {
    reply(blocking(&st, move |e| e.quote(&a.body, e.at(None).by(a.actor))))
}

async fn commit(State(st): State<Shared>, a: Asked<Sale>) -> Response {
    let Some(key) = a.key else {
        st.metrics.refusal(Code::InvalidInput);
        return Error::invalid("the Idempotency-Key header is required").into_response();
    };
    let (sale, actor) = (a.body, a.actor);
    let started = Instant::now();
    let r = blocking(&st, move |e| e.checkout(&sale, Some(&key), e.at(None).by(actor)));
    if let Ok(receipt) = &r {
        if receipt.replayed {
            st.metrics.replays.fetch_add(1, Relaxed);
        } else {
            st.metrics.checkouts.fetch_add(1, Relaxed);
            st.metrics.commit_took(started.elapsed());
        }
    }
    reply(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundLine {
    pub sku: String,
    pub qty: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    pub tx_id: String,
    #[serde(default)]
    pub lines: Vec<RefundLine>,
}

impl RefundBody {
    /// The (sku, quantity) pairs asked for, each quantity checked.
    pub fn asked(self) -> Result<(String, Vec<(String, i64)>)> {
        if let Some(l) = self
            .lines
            .iter()
            .find(|l| !(1..=crate::model::MAX_QTY).contains(&l.qty))
        {
            return Err(Error::invalid(format!(
                "refund quantity of {} must be 1 to {}",
                l.sku,
                crate::model::MAX_QTY
            )));
        }
        let asked = self.lines.into_iter().map(|l| (l.sku, l.qty)).collect();
        Ok((self.tx_id, asked))
    }
}

async fn refund(State(st): State<Shared>, a: Asked<RefundBody>) -> Response {
    let (tx_id, asked) = match a.body.asked() {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let (key, actor) = (a.key, a.actor);
    let r = blocking(&st, move |e| {
        e.refund(&tx_id, &asked, key.as_deref(), e.at(None).by(actor))
    });
    if r.is_ok() {
        st.metrics.refunds.fetch_add(1, Relaxed);
    }
    reply(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponBody {
    pub card: String,
    #[serde(rename = "type")]
    pub type_id: String,
}

async fn issue_coupon(State(st): State<Shared>, a: Asked<CouponBody>) -> Response {
    reply(blocking(&st, move |e| {
        e.issue_coupon(&a.body.card, &a.body.type_id, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardBody {
    pub card: String,
    pub sku: String,
    #[serde(default)]
    pub pin: Option<String>,
}

async fn redeem_reward(State(st): State<Shared>, a: Asked<RewardBody>) -> Response {
    let b = a.body;
    reply(blocking(&st, move |e| {
        e.redeem_reward(
            &b.card,
            &b.sku,
            b.pin.as_deref(),
            a.key.as_deref(),
            e.at(None).by(a.actor),
        )
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwipeBody {
    pub card: String,
}

async fn swipe(State(st): State<Shared>, a: Asked<SwipeBody>) -> Response {
    reply(card_read(&st, a.body.card).await)
}

/// What a card read means, published to SSE subscribers and signalled to the cashier.
pub async fn card_read(st: &Shared, raw: String) -> Result<CardEvent> {
    let card = canonical_card(&raw)?;
    let c2 = card.clone();
    let (member, status) = blocking(st, move |e| e.lookup_card(&c2))?;
    let rules = st.engine.rules();
    let at = st.engine.at(None);
    let (status, signal, idx) = match status {
        Some(CardStatus::Active) => ("member", Signal::Member, 0),
        None => ("unknown", Signal::Unknown, 1),
        Some(CardStatus::Blocked) => ("blocked", Signal::Blocked, 2),
    };
    st.metrics.card_reads[idx].fetch_add(1, Relaxed);
    let event = CardEvent {
        card: card.clone(),
        status,
        member: member.map(|m| MemberView::new(&rules, &m, at.ts, at.trusted)),
    };
    // No subscriber is fine: the POS may not be listening.
    let _ = st.events.send(event.clone());
    st.feedback.signal(&card, signal);
    Ok(event)
}

async fn events(
    State(st): State<Shared>,
) -> Sse<impl futures_util::Stream<Item = std::result::Result<Event, Infallible>>> {
    let rx = st.events.subscribe();
    let stopping = st.stopping.clone();
    let stream = futures_util::stream::unfold((rx, stopping), |(mut rx, stopping)| async move {
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(ev) => {
                        let data = serde_json::to_string(&ev).unwrap_or_default();
                        return Some((Ok(Event::default().event("card").data(data)), (rx, stopping)));
                    }
                    // A slow subscriber skips what it missed rather than stalling the rest.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = stopping.cancelled() => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct DailyQuery {
    date: Option<String>,
}

async fn daily(
    State(st): State<Shared>,
    q: std::result::Result<Query<DailyQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let date = match q {
        Ok(Query(q)) => q.date,
        Err(e) => return Error::invalid(e.body_text()).into_response(),
    };
    let date = match date.as_deref().map(parse_date).transpose() {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    reply(blocking(&st, move |e| e.daily(date)))
}

async fn metrics(State(st): State<Shared>) -> Response {
    let j = st.engine.journal();
    let outbox = st.engine.outbox().unwrap_or(0);
    let gauges = [
        (
            "loyaltyd_journal_records",
            "Records in the journal.",
            j.last_seq() as i64,
        ),
        (
            "loyaltyd_journal_fsyncs",
            "fdatasync calls since start (group commit shares them).",
            j.sync_count() as i64,
        ),
        (
            "loyaltyd_outbox",
            "Records not yet acknowledged by the hub.",
            outbox as i64,
        ),
        (
            "loyaltyd_clock_trusted",
            "1 when the wall clock is trusted.",
            st.engine.clock_trusted() as i64,
        ),
        (
            "loyaltyd_sse_clients",
            "Open event streams.",
            st.events.receiver_count() as i64,
        ),
    ];
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(&gauges),
    )
        .into_response()
}
