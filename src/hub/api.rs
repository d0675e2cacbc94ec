//! The hub's HTTP side: sync (push, pull: signed by the terminal, checked in the order
//! of `intake`) and the operators' endpoints (bearer token).

use std::net::SocketAddr;

use axum::body::Body as HttpBody;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::intake;
use super::store::{Find, HubStore};
use super::{HubState, Shared};
use crate::engine::Actor;
use crate::error::{Code, Error, Result};
use crate::model;
use crate::service::http;
use crate::sync::wire::{self, PullRequest, PushRequest};

pub(super) fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route(wire::PUSH_PATH, post(push))
        .route(wire::PULL_PATH, post(pull_v1))
        .route(wire::PULL_V2_PATH, post(pull))
        .route("/v1/hub/members", get(find))
        .route("/v1/hub/members/{member_id}", get(member))
        .route("/v1/hub/members/{member_id}/transactions", get(transactions))
        .route("/v1/hub/members/{member_id}/points", get(ledger))
        .route("/v1/hub/members/{member_id}/coupons", get(coupons))
        .route("/v1/hub/transactions/{tx_id}", get(transaction))
        .route("/v1/hub/conflicts", get(conflicts))
        .route("/v1/hub/conflicts/{id}/resolve", post(resolve))
        .route("/v1/hub/group-buys/groups/{group_id}", get(group))
        .route("/v1/hub/group-buys/{deal}", get(deal_groups))
        .route("/v1/hub/triggers/run", post(run_triggers))
        .route("/v1/hub/terminals", get(terminals))
        .route("/v1/hub/reports/overspent", get(overspent))
        .route("/v1/hub/rulesets", post(publish))
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(middleware::map_response(http::errors_as_json))
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
    let bound = (wire::PULL_V2_PATH, wire::MAX_PULL_BODY);
    signed(st, peer, headers, body, bound, |s, r: &PullRequest| s.pull(r)).await
}

/// A 0.1 terminal's pull: the same answer with 0.1's member snapshots.
async fn pull_v1(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let bound = (wire::PULL_PATH, wire::MAX_PULL_BODY);
    signed(st, peer, headers, body, bound, |s, r: &PullRequest| {
        s.pull(r).map(|p| p.into_v1())
    })
    .await
}

/// Operator endpoints need the bearer token.
fn operator(st: &HubState, headers: &HeaderMap) -> Result<()> {
    match http::bearer(headers) {
        Some(t) if http::same(t.as_bytes(), st.token.as_bytes()) => Ok(()),
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

async fn group(State(st): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, move |s| s.group(&id)).await)
}

async fn deal_groups(State(st): State<Shared>, headers: HeaderMap, Path(deal): Path<String>) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(
        blocking(&st, move |s| {
            let groups = s.deal_groups(&deal)?;
            Ok(crate::views::campaign::DealView { deal, groups })
        })
        .await,
    )
}

/// Runs the daily trigger pass now (it also runs hourly): `{"coupons_issued": N}`.
async fn run_triggers(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(
        blocking(&st, |s| {
            let (issued, _) = s.daily_pass()?;
            Ok(serde_json::json!({ "coupons_issued": issued }))
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

fn query<T>(q: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    q.map(|Query(q)| q).map_err(|e| Error::invalid(e.body_text()))
}

#[derive(Serialize)]
struct MembersPage {
    members: Vec<crate::views::MemberView>,
    next: Option<String>,
}

async fn find(
    State(st): State<Shared>,
    headers: HeaderMap,
    q: std::result::Result<Query<Find>, QueryRejection>,
) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    json(
        blocking(&st, move |s| {
            let (members, next) = s.find_members(&q)?;
            Ok(MembersPage { members, next })
        })
        .await,
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<usize>,
    after: Option<String>,
}

async fn transactions(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: std::result::Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    json(blocking(&st, move |s| s.transactions(&id, q.after.as_deref(), q.limit)).await)
}

async fn ledger(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: std::result::Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    json(blocking(&st, move |s| s.ledger(&id, q.after.as_deref(), q.limit)).await)
}

async fn coupons(State(st): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, move |s| Ok(serde_json::json!({ "coupons": s.coupons(&id)? }))).await)
}

async fn transaction(State(st): State<Shared>, headers: HeaderMap, Path(tx_id): Path<String>) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, move |s| s.transaction(&tx_id)).await)
}

async fn conflicts(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, |s| Ok(serde_json::json!({ "conflicts": s.conflicts()? }))).await)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    keep: String,
    merge: bool,
}

async fn resolve(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: std::result::Result<Json<ResolveBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return Error::invalid(format!("bad JSON body: {}", e.body_text())).into_response(),
    };
    let by = Actor::new("operator", crate::model::Role::Owner);
    json(blocking(&st, move |s| s.resolve_conflict(&id, &b.keep, b.merge, by)).await)
}
