//! The POS API of interface.md over HTTP/JSON (axum).
//!
//! Handlers are thin: parse, call the engine on a blocking thread (commits wait for an
//! fdatasync), map the result to JSON. Errors become the error document with the status
//! interface.md gives its code. `ask` says who calls; `members` serves finding and
//! fixing members and their history, `staff` sessions and staff accounts.
//!
//! `GET /v1/openapi.json` is generated from the handlers' `#[utoipa::path]` attributes and
//! the types' `ToSchema` derives; the router is built from the same attributes
//! (utoipa-axum), so every route is described at the path and method it is served on.

mod ask;
pub(crate) mod audit;
mod campaigns;
mod members;
mod openapi;
pub mod reports;
pub mod sessions;
mod staff;

pub use ask::{Asked, Caller, Nothing, RequiredKey};

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::engine::{Actor, Engine, NewMember, Sale, POS_STAFF};
use crate::error::{Code, Error, Result};
use crate::feedback::{Feedback, Signal};
use crate::metrics::Metrics;
use crate::model::{canonical_card, parse_date, CardStatus, Role};
use crate::service::http;
use crate::service::openapi::{self as described, ErrorDoc};
use crate::sync::client::SyncInfo;
use crate::views::{schema, CouponView, DailyView, MemberView, Receipt, RefundView, RewardView};
use openapi::{ApiDoc, Busy, CardParam, KeyHeader, RequiredKeyHeader, BEARER};

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
    let (authed, authed_doc) = authed_routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), auth))
        .split_for_parts();
    let (public, public_doc) = public_routes().split_for_parts();
    DESCRIPTION.get_or_init(|| described::serialized(&describe(public_doc, authed_doc)));
    public
        .merge(authed)
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(middleware::map_response(http::errors_as_json))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The description `GET /v1/openapi.json` answers with (it depends on the code alone).
static DESCRIPTION: OnceLock<Bytes> = OnceLock::new();

/// The routes behind the bearer token, each with its description.
fn authed_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(add_member, members::find))
        .merge(members::routes())
        .merge(campaigns::routes())
        .merge(staff::routes())
        .merge(reports::routes())
        .merge(audit::routes())
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
}

/// The routes anyone may call.
fn public_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi_json))
        .routes(routes!(staff::login))
}

/// The whole description: what the bearer token guards marked so, with its 401; what
/// an approval may add; the answers many routes share.
fn describe(mut doc: utoipa::openapi::OpenApi, mut authed: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    described::guarded(
        &mut authed,
        BEARER,
        "`unauthorized`: the bearer token is missing, wrong or expired.",
    );
    openapi::approvable(&mut authed);
    doc.merge(authed);
    described::finish(
        &mut doc,
        &described::Finish {
            no_fault: &["openapi_json", "events", "metrics"],
            body_limit: "64 KiB",
        },
    );
    openapi::bearer_scheme(&mut doc);
    doc
}

/// The description as this build serves it, without a daemon.
pub fn description() -> utoipa::openapi::OpenApi {
    describe(public_routes().into_openapi(), authed_routes().into_openapi())
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
    described::answer(DESCRIPTION.get())
}

#[utoipa::path(post, path = "/v1/members",
    description = "Enrols a member; without a card they get a virtual one (12 digits, the last a Luhn check digit).",
    params(KeyHeader),
    request_body = NewMember,
    responses(
        (status = 201, description = "Enrolled (or the first answer to this key).", body = MemberView),
        (status = 400, description = "`invalid_input` (a field, the body, the key), `invalid_card`.", body = ErrorDoc),
        (status = 409, description = "`member_exists` (the card has a member), `phone_taken`, `idempotency_conflict`.", body = ErrorDoc),
        Busy,
    ))]
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

#[utoipa::path(get, path = "/v1/cards/{card}",
    description = "The member a card belongs to (a blocked card too).",
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
    description = "Blocks a card (blocking a blocked card changes nothing). The body is optional: only an `approval`.",
    params(CardParam, KeyHeader),
    request_body = Option<Nothing>,
    responses(
        (status = 200, description = "The member with the card blocked.", body = MemberView),
        (status = 400, description = "`invalid_card`, `invalid_input` (the body, the key).", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        Busy,
    ))]
async fn block_card(State(st): State<Shared>, Path(card): Path<String>, a: Asked<Nothing>) -> Response {
    reply(blocking(&st, move |e| {
        e.block_card(&card, a.key.as_deref(), e.at(None).by(a.actor))
    }))
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
        Busy,
    ))]
async fn replace_card(State(st): State<Shared>, Path(card): Path<String>, a: Asked<ReplaceBody>) -> Response {
    reply(blocking(&st, move |e| {
        e.replace_card(&card, &a.body.new_card, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

#[utoipa::path(post, path = "/v1/checkout/quote",
    description = "What a sale would come to; changes nothing but a wrong PIN's trace.",
    request_body = Sale,
    responses(
        (status = 200, description = "The receipt the sale would get, without `tx_id`, with `max_redeem_points`.", body = Receipt),
        (status = 400, description = "`invalid_input`, `invalid_card`.", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 422, description = "`card_blocked`, `member_inactive`, `below_min_redeem`, `insufficient_points`, `redeem_exceeds_share`, `pin_required`, `pin_invalid` (a wrong PIN is recorded: it counts towards the lock), `pin_locked`, `offline_cap_exceeded`, `coupon_invalid`, `coupon_used`, `coupon_expired`, `coupon_min_spend`.", body = ErrorDoc),
        Busy,
    ))]
async fn quote(State(st): State<Shared>, a: Asked<Sale>) -> Response {
    reply(blocking(&st, move |e| e.quote(&a.body, e.at(None).by(a.actor))))
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
        (status = 422, description = "`card_blocked`, `member_inactive`, `below_min_redeem`, `insufficient_points`, `redeem_exceeds_share`, `pin_required`, `pin_invalid` (a wrong PIN is recorded: it counts towards the lock), `pin_locked`, `offline_cap_exceeded`, `coupon_invalid`, `coupon_used`, `coupon_expired`, `coupon_min_spend`.", body = ErrorDoc),
        Busy,
    ))]
async fn commit(State(st): State<Shared>, RequiredKey(key): RequiredKey, a: Asked<Sale>) -> Response {
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
    description = "Refunds lines of a checkout, or all that is left of it. Over `[api] cashier_refund_limit_minor` it needs a manager.",
    params(KeyHeader),
    request_body = RefundBody,
    responses(
        (status = 200, description = "What the refund did.", body = RefundView),
        (status = 400, description = "`invalid_input` (a line the sale does not have too).", body = ErrorDoc),
        (status = 403, description = "`forbidden`: over the cashier's refund limit.", body = ErrorDoc),
        (status = 404, description = "`unknown_transaction`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`refund_exceeds`.", body = ErrorDoc),
        Busy,
    ))]
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
        (status = 422, description = "`card_blocked`, `member_inactive`, `coupon_invalid` (no such type).", body = ErrorDoc),
        Busy,
    ))]
async fn issue_coupon(State(st): State<Shared>, a: Asked<CouponBody>) -> Response {
    reply(blocking(&st, move |e| {
        e.issue_coupon(&a.body.card, &a.body.type_id, a.key.as_deref(), e.at(None).by(a.actor))
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
        (status = 422, description = "`card_blocked`, `member_inactive`, `reward_out_of_stock`, `insufficient_points`, `pin_required`, `pin_invalid` (a wrong PIN is recorded), `pin_locked`, `offline_cap_exceeded`.", body = ErrorDoc),
        Busy,
    ))]
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
