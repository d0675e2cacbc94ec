//! The POS API of interface.md over HTTP/JSON (axum).
//!
//! Handlers are thin: parse, call the engine on a blocking thread (commits wait for an
//! fdatasync), map the result to JSON. Errors become the error document with the status
//! interface.md gives its code.
//!
//! `GET /v1/openapi.json` is generated from the handlers' `#[utoipa::path]` attributes and
//! the types' `ToSchema` derives; the router is built from the same attributes
//! (utoipa-axum), so every route is described at the path and method it is served on.

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::engine::{Engine, NewMember, Sale};
use crate::error::{Code, Error, Result};
use crate::feedback::{Feedback, Signal};
use crate::metrics::Metrics;
use crate::model::{canonical_card, parse_date, CardStatus};
use crate::service::http::{self, ErrorDoc};
use crate::sync::client::SyncInfo;
use crate::views::{schema, CouponView, DailyView, MemberView, Receipt, RefundView, RewardView};
use openapi::{ApiDoc, CardParam, KeyHeader, RequiredKeyHeader, BEARER};

mod openapi;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

pub struct AppState {
    pub engine: Arc<Engine>,
    pub token: String,
    pub events: broadcast::Sender<CardEvent>,
    pub metrics: Arc<Metrics>,
    pub feedback: Feedback,
    pub sync: Arc<SyncInfo>,
    /// Turns true when the daemon stops: open SSE streams end so shutdown can finish.
    pub stopping: watch::Receiver<bool>,
}

const CARD_MEMBER: &str = "member";
const CARD_UNKNOWN: &str = "unknown";
const CARD_BLOCKED: &str = "blocked";

fn card_event_status_schema() -> Object {
    schema::string_enum([CARD_MEMBER, CARD_UNKNOWN, CARD_BLOCKED])
}

/// A card read as the POS sees it on `GET /v1/events`, and the answer to a swipe.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardEvent {
    pub card: String,
    #[schema(schema_with = card_event_status_schema)]
    pub status: &'static str,
    /// The member when the card is known (blocked included), else null.
    #[schema(required = true)]
    pub member: Option<MemberView>,
}

type Shared = Arc<AppState>;

pub fn router(state: Shared) -> Router {
    let (routes, doc) = described(state.clone());
    // Built once per process: the description depends on the code alone.
    DESCRIPTION.get_or_init(|| Bytes::from(serde_json::to_vec(&doc).expect("the description serializes")));
    routes
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(middleware::map_response(http::errors_as_json))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The routes and their description: what the bearer token guards is marked so, with
/// its 401; answers every route shares are added to each (413 on a body, 500 on a fault).
fn described(state: Shared) -> (Router<Shared>, utoipa::openapi::OpenApi) {
    let (authed, mut authed_doc) = OpenApiRouter::new()
        .routes(routes!(add_member))
        .routes(routes!(get_card))
        .routes(routes!(block_card))
        .routes(routes!(replace_card))
        .routes(routes!(quote))
        .routes(routes!(commit))
        .routes(routes!(refund))
        .routes(routes!(issue_coupon))
        .routes(routes!(redeem_reward))
        .routes(routes!(swipe))
        .routes(routes!(events))
        .routes(routes!(daily))
        .routes(routes!(metrics))
        .route_layer(middleware::from_fn_with_state(state, auth))
        .split_for_parts();
    openapi::guarded(&mut authed_doc, BEARER);
    let (public, public_doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi_json))
        .split_for_parts();
    let mut doc = public_doc;
    doc.merge(authed_doc);
    openapi::finish(&mut doc, BEARER);
    (public.merge(authed), doc)
}

/// The serialized description `GET /v1/openapi.json` answers with.
static DESCRIPTION: OnceLock<Bytes> = OnceLock::new();

/// The `Idempotency-Key` header: none, or the key (any UTF-8 text without control
/// characters; the engine bounds its length).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match std::str::from_utf8(v.as_bytes()) {
        Ok(k) if !k.trim().is_empty() => Ok(Some(k.trim().to_string())),
        Ok(_) => Err(Error::invalid("the Idempotency-Key header is empty")),
        Err(_) => Err(Error::invalid("the Idempotency-Key header is not UTF-8 text")),
    }
}

async fn auth(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let given = http::bearer(req.headers());
    match given {
        Some(t) if http::same(t.as_bytes(), st.token.as_bytes()) => next.run(req).await,
        _ => {
            st.metrics.refusal(Code::Unauthorized);
            Error::new(Code::Unauthorized, "missing or wrong bearer token").into_response()
        }
    }
}

// The request bodies below are public so that the fuzz targets in fuzz/ parse them as
// the handlers do.

/// Parses a JSON body, mapping every failure to a stable code (413 for oversize).
fn body<T: for<'de> Deserialize<'de>>(b: std::result::Result<Bytes, BytesRejection>) -> Result<T, Box<Response>> {
    let bytes = b.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            let e = Error::invalid(format!("request body over {BODY_LIMIT} bytes"));
            (StatusCode::PAYLOAD_TOO_LARGE, Json(ErrorDoc::from(e))).into_response()
        } else {
            Error::invalid(r.body_text()).into_response()
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Box::new(Error::invalid(format!("bad JSON body: {e}")).into_response()))
}

/// Runs engine work, which may wait for an fdatasync, and counts refusals.
///
/// `block_in_place` runs it on the request's own thread and hands the runtime's other
/// work to another thread, where `spawn_blocking` would wake a pool thread and then wake
/// the request's thread again with the answer: two context switches fewer on the path of
/// every request (1-client commits: p50 430-477 µs instead of 489-658, p99 1.5-2.0 ms
/// instead of 2.2-4.4 in the same noisy runs). Needs the multi-threaded runtime, which
/// is the only one serving this API.
fn blocking<T>(st: &Shared, f: impl FnOnce(&Engine) -> Result<T>) -> Result<T> {
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

fn health_status_schema() -> Object {
    schema::string_enum(["ok", "failing"])
}

/// `GET /v1/health`.
#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(schema_with = health_status_schema)]
    status: &'static str,
    /// Why the engine refuses changes until a restart (status `failing`), else null.
    #[schema(required = true)]
    fault: Option<String>,
    version: &'static str,
    terminal_id: String,
    /// Records not yet acknowledged by the hub.
    outbox: u64,
    #[schema(format = DateTime, required = true)]
    last_sync_at: Option<String>,
    clock_trusted: bool,
    /// Records in the journal: it grows with every change and with nothing else.
    journal_records: u64,
}

#[utoipa::path(get, path = "/v1/health",
    description = "Liveness and sync state; needs no bearer token.",
    responses(
        (status = 200, description = "Healthy.", body = Health),
        (status = 503, description = "The engine failed and refuses every change until a restart.", body = Health),
    ))]
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
    let body = Health {
        status: if fault.is_none() { "ok" } else { "failing" },
        fault,
        version: env!("CARGO_PKG_VERSION"),
        terminal_id: engine.terminal_id().to_string(),
        outbox,
        last_sync_at: last,
        clock_trusted: engine.clock_trusted(),
        journal_records: engine.journal().last_seq(),
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/v1/openapi.json",
    description = "This description (OpenAPI 3.1), generated from the code; needs no bearer token.",
    responses((status = 200, description = "The description.", body = Value, content_type = "application/json")))]
async fn openapi_json() -> Response {
    match DESCRIPTION.get() {
        Some(doc) => ([(header::CONTENT_TYPE, "application/json")], doc.clone()).into_response(),
        None => Error::internal("the description was not built").into_response(),
    }
}

#[utoipa::path(post, path = "/v1/members",
    description = "Enrols a member with their first card.",
    params(KeyHeader),
    request_body = NewMember,
    responses(
        (status = 201, description = "Enrolled (or the first answer to this key).", body = MemberView),
        (status = 400, description = "`invalid_input` (a field, the body, the key), `invalid_card`.", body = ErrorDoc),
        (status = 409, description = "`member_exists` (the card has a member), `phone_taken`, `idempotency_conflict`.", body = ErrorDoc),
    ))]
async fn add_member(
    State(st): State<Shared>,
    headers: HeaderMap,
    b: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let req: NewMember = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let st2 = st.clone();
    match blocking(&st, move |e| e.add_member(req, key.as_deref(), e.at(None))) {
        Ok(m) => {
            st2.metrics.members_added.fetch_add(1, Relaxed);
            (StatusCode::CREATED, Json(m)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn reply<T: Serialize>(r: Result<T>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(get, path = "/v1/cards/{card}",
    description = "The member a card belongs to (blocked cards too).",
    params(CardParam),
    responses(
        (status = 200, description = "The member.", body = MemberView),
        (status = 400, description = "`invalid_card`.", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
    ))]
async fn get_card(State(st): State<Shared>, Path(card): Path<String>) -> Response {
    reply(blocking(&st, move |e| e.show_member(&card, e.at(None))))
}

#[utoipa::path(post, path = "/v1/cards/{card}/block",
    description = "Blocks a card (blocking a blocked card changes nothing). Takes no body.",
    params(CardParam, KeyHeader),
    responses(
        (status = 200, description = "The member with the card blocked.", body = MemberView),
        (status = 400, description = "`invalid_card`, `invalid_input` (the key).", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
    ))]
async fn block_card(State(st): State<Shared>, headers: HeaderMap, Path(card): Path<String>) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    reply(blocking(&st, move |e| e.block_card(&card, key.as_deref(), e.at(None))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceBody {
    #[schema(schema_with = schema::card)]
    pub new_card: String,
}

#[utoipa::path(post, path = "/v1/cards/{card}/replace",
    description = "Gives the member of `card` the card `new_card`: it becomes their one active card, the others are blocked.",
    params(CardParam, KeyHeader),
    request_body = ReplaceBody,
    responses(
        (status = 200, description = "The member with the new card.", body = MemberView),
        (status = 400, description = "`invalid_input`, `invalid_card`.", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 409, description = "`member_exists` (the new card has a member), `idempotency_conflict`.", body = ErrorDoc),
    ))]
async fn replace_card(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(card): Path<String>,
    b: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let req: ReplaceBody = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    reply(blocking(&st, move |e| {
        e.replace_card(&card, &req.new_card, key.as_deref(), e.at(None))
    }))
}

#[utoipa::path(post, path = "/v1/checkout/quote",
    description = "What a sale would come to; changes nothing but a wrong PIN's trace.",
    request_body = Sale,
    responses(
        (status = 200, description = "The receipt the sale would get, without `tx_id`, with `max_redeem_points`.", body = Receipt),
        (status = 400, description = "`invalid_input`, `invalid_card`.", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 422, description = "`card_blocked`, `below_min_redeem`, `insufficient_points`, `redeem_exceeds_share`, `pin_required`, `pin_invalid` (a wrong PIN is recorded: it counts towards the lock), `pin_locked`, `offline_cap_exceeded`, `coupon_invalid`, `coupon_used`, `coupon_expired`, `coupon_min_spend`.", body = ErrorDoc),
    ))]
async fn quote(State(st): State<Shared>, b: std::result::Result<Bytes, BytesRejection>) -> Response {
    let sale: Sale = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    reply(blocking(&st, move |e| e.quote(&sale, e.at(None))))
}

#[utoipa::path(post, path = "/v1/checkout/commit",
    description = "Commits a sale.",
    params(RequiredKeyHeader),
    request_body = Sale,
    responses(
        (status = 200, description = "The receipt (`replayed: true` when the key answered before).", body = Receipt),
        (status = 400, description = "`invalid_input` (the key missing too), `invalid_card`.", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`card_blocked`, `below_min_redeem`, `insufficient_points`, `redeem_exceeds_share`, `pin_required`, `pin_invalid` (a wrong PIN is recorded: it counts towards the lock), `pin_locked`, `offline_cap_exceeded`, `coupon_invalid`, `coupon_used`, `coupon_expired`, `coupon_min_spend`.", body = ErrorDoc),
    ))]
async fn commit(
    State(st): State<Shared>,
    headers: HeaderMap,
    b: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(Some(k)) => k,
        Ok(None) => {
            st.metrics.refusal(Code::InvalidInput);
            return Error::invalid("the Idempotency-Key header is required").into_response();
        }
        Err(e) => {
            st.metrics.refusal(e.code);
            return e.into_response();
        }
    };
    let sale: Sale = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let started = Instant::now();
    let r = blocking(&st, move |e| e.checkout(&sale, Some(&key), e.at(None)));
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLine {
    pub sku: String,
    #[schema(schema_with = schema::qty)]
    pub qty: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    pub tx_id: String,
    /// The lines to give back; none: all that is left of the sale.
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

#[utoipa::path(post, path = "/v1/refunds",
    description = "Refunds lines of a checkout, or all that is left of it.",
    params(KeyHeader),
    request_body = RefundBody,
    responses(
        (status = 200, description = "What the refund did.", body = RefundView),
        (status = 400, description = "`invalid_input`.", body = ErrorDoc),
        (status = 404, description = "`unknown_transaction`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`refund_exceeds`.", body = ErrorDoc),
    ))]
async fn refund(
    State(st): State<Shared>,
    headers: HeaderMap,
    b: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let req: RefundBody = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let (tx_id, asked) = match req.asked() {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let r = blocking(&st, move |e| e.refund(&tx_id, &asked, key.as_deref(), e.at(None)));
    if r.is_ok() {
        st.metrics.refunds.fetch_add(1, Relaxed);
    }
    reply(r)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponBody {
    #[schema(schema_with = schema::card)]
    pub card: String,
    #[serde(rename = "type")]
    pub type_id: String,
}

#[utoipa::path(post, path = "/v1/coupons",
    description = "Issues a coupon of a ruleset's coupon type to a member.",
    params(KeyHeader),
    request_body = CouponBody,
    responses(
        (status = 200, description = "The coupon.", body = CouponView),
        (status = 400, description = "`invalid_input`, `invalid_card`.", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`card_blocked`, `coupon_invalid` (no such type).", body = ErrorDoc),
    ))]
async fn issue_coupon(
    State(st): State<Shared>,
    headers: HeaderMap,
    b: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let req: CouponBody = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    reply(blocking(&st, move |e| {
        e.issue_coupon(&req.card, &req.type_id, key.as_deref(), e.at(None))
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardBody {
    #[schema(schema_with = schema::card)]
    pub card: String,
    pub sku: String,
    #[serde(default)]
    #[schema(schema_with = schema::pin)]
    pub pin: Option<String>,
}

#[utoipa::path(post, path = "/v1/rewards/redeem",
    description = "Redeems points for a catalog reward.",
    params(KeyHeader),
    request_body = RewardBody,
    responses(
        (status = 200, description = "The redemption.", body = RewardView),
        (status = 400, description = "`invalid_input` (no such reward too), `invalid_card`.", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`card_blocked`, `reward_out_of_stock`, `insufficient_points`, `pin_required`, `pin_invalid` (a wrong PIN is recorded), `pin_locked`, `offline_cap_exceeded`.", body = ErrorDoc),
    ))]
async fn redeem_reward(
    State(st): State<Shared>,
    headers: HeaderMap,
    b: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let req: RewardBody = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    reply(blocking(&st, move |e| {
        e.redeem_reward(&req.card, &req.sku, req.pin.as_deref(), key.as_deref(), e.at(None))
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwipeBody {
    #[schema(schema_with = schema::card)]
    pub card: String,
}

#[utoipa::path(post, path = "/v1/swipe",
    description = "A card read by a reader attached to the POS: published on /v1/events and signalled to the cashier.",
    request_body = SwipeBody,
    responses(
        (status = 200, description = "What the read means.", body = CardEvent),
        (status = 400, description = "`invalid_input`, `invalid_card`.", body = ErrorDoc),
    ))]
async fn swipe(State(st): State<Shared>, b: std::result::Result<Bytes, BytesRejection>) -> Response {
    let req: SwipeBody = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    reply(card_read(&st, req.card).await)
}

/// What a card read means, published to SSE subscribers and signalled to the cashier.
pub async fn card_read(st: &Shared, raw: String) -> Result<CardEvent> {
    let card = canonical_card(&raw)?;
    let c2 = card.clone();
    let (member, status) = blocking(st, move |e| e.lookup_card(&c2))?;
    let rules = st.engine.rules();
    let at = st.engine.at(None);
    let (status, signal, idx) = match status {
        Some(CardStatus::Active) => (CARD_MEMBER, Signal::Member, 0),
        None => (CARD_UNKNOWN, Signal::Unknown, 1),
        Some(CardStatus::Blocked) => (CARD_BLOCKED, Signal::Blocked, 2),
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

#[utoipa::path(get, path = "/v1/events",
    description = "Server-Sent Events: each card read is `event: card` with `data:` a CardEvent as JSON; comments keep the stream alive. The stream ends when the daemon stops.",
    responses((status = 200, description = "The event stream.", body = String, content_type = "text/event-stream")))]
async fn events(
    State(st): State<Shared>,
) -> Sse<impl futures_util::Stream<Item = std::result::Result<Event, Infallible>>> {
    let rx = st.events.subscribe();
    let stopping = st.stopping.clone();
    let stream = futures_util::stream::unfold((rx, stopping), |(mut rx, mut stopping)| async move {
        loop {
            if *stopping.borrow() {
                return None;
            }
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
                _ = stopping.changed() => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DailyQuery {
    /// The local business date (the ruleset's timezone); default today.
    #[param(format = Date)]
    date: Option<String>,
}

#[utoipa::path(get, path = "/v1/reports/daily",
    description = "Totals of one local business day.",
    params(DailyQuery),
    responses(
        (status = 200, description = "The day's totals.", body = DailyView),
        (status = 400, description = "`invalid_input` (the date).", body = ErrorDoc),
    ))]
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

#[utoipa::path(get, path = "/metrics",
    description = "Prometheus text format 0.0.4.",
    responses((status = 200, description = "Counters and gauges.", body = String, content_type = "text/plain")))]
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
