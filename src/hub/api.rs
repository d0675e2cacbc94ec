//! The hub's HTTP side: sync (push, pull: signed by the terminal, checked in the order
//! of `intake`) and the operators' endpoints (bearer token).
//!
//! Like the terminal's, the router is built from the handlers' `#[utoipa::path]`
//! attributes (utoipa-axum), which `GET /v1/openapi.json` describes.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::schema::Object;
use utoipa::openapi::OpenApi as Description;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::intake;
use super::openapi::{ConflictParam, DealParam, GroupParam, HubDoc, MemberParam, Postcard, TxParam, BEARER, SIGNED};
use super::store::{Find, HubStore, Overspent, TerminalView};
use super::{HubState, Shared};
use crate::engine::{Actor, ConflictView};
use crate::error::{Code, Error, Result};
use crate::model;
use crate::service::http;
use crate::service::openapi::{self as described, ErrorDoc};
use crate::sync::wire::{self, PullRequest, PushRequest};
use crate::views::campaign::{DealView, GroupView};
use crate::views::history::{LedgerPage, MemberCouponView, TransactionView, TransactionsPage};
use crate::views::{schema, MemberView};

pub(super) fn router(state: Shared) -> Router {
    let (public, public_doc) = public_routes().split_for_parts();
    let (sync, sync_doc) = sync_routes().split_for_parts();
    let (ops, ops_doc) = operator_routes().split_for_parts();
    DESCRIPTION.get_or_init(|| described::serialized(&describe(public_doc, sync_doc, ops_doc)));
    public
        .merge(sync)
        .merge(ops)
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(middleware::map_response(http::errors_as_json))
        .with_state(state)
}

/// The description `GET /v1/openapi.json` answers with (it depends on the code alone).
static DESCRIPTION: OnceLock<Bytes> = OnceLock::new();

fn public_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(HubDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi_json))
}

/// Signed by a terminal (checked by the handlers, in `intake`'s order).
fn sync_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(push))
        .routes(routes!(pull_v1))
        .routes(routes!(pull))
}

/// Behind the operators' bearer token (checked by the handlers).
fn operator_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(find))
        .routes(routes!(member))
        .routes(routes!(transactions))
        .routes(routes!(ledger))
        .routes(routes!(coupons))
        .routes(routes!(transaction))
        .routes(routes!(conflicts))
        .routes(routes!(resolve))
        .routes(routes!(group))
        .routes(routes!(deal_groups))
        .routes(routes!(run_triggers))
        .routes(routes!(terminals))
        .routes(routes!(overspent))
        .routes(routes!(publish))
        .merge(super::reports::routes())
}

fn describe(mut doc: Description, mut sync: Description, mut ops: Description) -> Description {
    described::guarded(
        &mut sync,
        SIGNED,
        "`unauthorized`: unsigned, a malformed or wrong signature, an unknown terminal, or a body naming another terminal.",
    );
    described::guarded(
        &mut ops,
        BEARER,
        "`unauthorized`: the bearer token is missing or wrong.",
    );
    doc.merge(sync);
    doc.merge(ops);
    described::finish(
        &mut doc,
        &described::Finish {
            no_fault: &["openapi_json"],
            body_limit: "2 MiB",
        },
    );
    super::openapi::schemes(&mut doc);
    doc
}

/// The hub's description as this build serves it, without a hub.
#[cfg(test)]
pub(super) fn description() -> Description {
    describe(
        public_routes().into_openapi(),
        sync_routes().into_openapi(),
        operator_routes().into_openapi(),
    )
}

pub(super) async fn blocking<T: Send + 'static>(
    st: &Shared,
    f: impl FnOnce(&dyn HubStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))?
}

fn health_status_schema() -> Object {
    schema::string_enum(["ok", "failing"])
}

fn hub_role_schema() -> Object {
    schema::string_enum(["hub"])
}

/// The hub's `GET /v1/health`.
#[derive(Serialize, ToSchema)]
#[schema(as = HubHealth)]
struct Health {
    #[schema(schema_with = health_status_schema)]
    status: &'static str,
    /// Why the hub refuses changes until a restart (status `failing`), else null.
    #[schema(required = true)]
    fault: Option<String>,
    #[schema(schema_with = hub_role_schema)]
    role: &'static str,
    version: &'static str,
    /// The hub's clock (UTC), which terminals without NTP follow.
    #[schema(format = DateTime)]
    hub_time: String,
}

#[utoipa::path(get, path = "/v1/health",
    description = "Liveness; needs no token.",
    responses(
        (status = 200, description = "Healthy.", body = Health),
        (status = 503, description = "The hub failed and refuses every change until a restart.", body = Health),
    ))]
async fn health(State(st): State<Shared>) -> Response {
    let (status, fault) = match st.store.healthy() {
        Ok(()) => (StatusCode::OK, None),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Some(e.message)),
    };
    let body = Health {
        status: if fault.is_none() { "ok" } else { "failing" },
        fault,
        role: "hub",
        version: env!("CARGO_PKG_VERSION"),
        hub_time: model::fmt_instant(model::now(), &chrono_tz::UTC),
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/v1/openapi.json",
    description = "This description (OpenAPI 3.1), generated from the code; needs no token.",
    responses((status = 200, description = "The description.", body = Value, content_type = "application/json")))]
async fn openapi_json() -> Response {
    described::answer(DESCRIPTION.get())
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

#[utoipa::path(post, path = wire::PUSH_PATH, operation_id = "sync_push",
    description = "A terminal's records (postcard `PushRequest`): each stored exactly once; the answer (`PushReply`) says up to where the stream is durably held.",
    request_body(content = Postcard, content_type = "application/x-loyaltyd-postcard"),
    responses(
        (status = 200, description = "`PushReply`.", body = Postcard, content_type = "application/x-loyaltyd-postcard"),
        (status = 400, description = "`invalid_input`: an undecodable body or record, seqs out of order or range.", body = ErrorDoc),
        (status = 408, description = "`invalid_input`: the body did not arrive within 30 s.", body = ErrorDoc),
        (status = 409, description = "`sync_conflict`: a record the hub holds with other content.", body = ErrorDoc),
        (status = 413, description = "`invalid_input`: the body is over the push bound (about 4 MiB).", body = ErrorDoc),
        (status = 503, description = "`store_busy`: too many unverified sync requests (Retry-After), or the hub is stopping.", body = ErrorDoc),
    ))]
async fn push(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let bound = (wire::PUSH_PATH, wire::MAX_PUSH_BODY);
    signed(st, peer, headers, body, bound, |s, r: &PushRequest| s.ingest(r)).await
}

#[utoipa::path(post, path = wire::PULL_V2_PATH, operation_id = "sync_pull2",
    description = "What changed since the terminal's cursor (postcard `PullRequest`), with 0.2 member snapshots (`PullReply`).",
    request_body(content = Postcard, content_type = "application/x-loyaltyd-postcard"),
    responses(
        (status = 200, description = "`PullReply`.", body = Postcard, content_type = "application/x-loyaltyd-postcard"),
        (status = 400, description = "`invalid_input`: an undecodable body.", body = ErrorDoc),
        (status = 408, description = "`invalid_input`: the body did not arrive within 30 s.", body = ErrorDoc),
        (status = 413, description = "`invalid_input`: the body is over 1 MiB.", body = ErrorDoc),
        (status = 503, description = "`store_busy`: too many unverified sync requests (Retry-After).", body = ErrorDoc),
    ))]
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
#[utoipa::path(post, path = wire::PULL_PATH, operation_id = "sync_pull",
    description = "A 0.1 terminal's pull: the same answer with 0.1's member snapshots.",
    request_body(content = Postcard, content_type = "application/x-loyaltyd-postcard"),
    responses(
        (status = 200, description = "`PullReply` with 0.1 snapshots.", body = Postcard, content_type = "application/x-loyaltyd-postcard"),
        (status = 400, description = "`invalid_input`: an undecodable body.", body = ErrorDoc),
        (status = 408, description = "`invalid_input`: the body did not arrive within 30 s.", body = ErrorDoc),
        (status = 413, description = "`invalid_input`: the body is over 1 MiB.", body = ErrorDoc),
        (status = 503, description = "`store_busy`: too many unverified sync requests (Retry-After).", body = ErrorDoc),
    ))]
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
pub(super) fn operator(st: &HubState, headers: &HeaderMap) -> Result<()> {
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

#[utoipa::path(get, path = "/v1/hub/members/{member_id}", operation_id = "hub_member",
    description = "A member as the chain knows them.",
    params(MemberParam),
    responses(
        (status = 200, description = "The member.", body = MemberView),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
    ))]
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

#[utoipa::path(get, path = "/v1/hub/group-buys/groups/{group_id}", operation_id = "hub_group",
    description = "A group-buy group as the hub decided it.",
    params(GroupParam),
    responses(
        (status = 200, description = "The group.", body = GroupView),
        (status = 404, description = "`not_found`: no such group.", body = ErrorDoc),
    ))]
async fn group(State(st): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, move |s| s.group(&id)).await)
}

#[utoipa::path(get, path = "/v1/hub/group-buys/{deal}", operation_id = "hub_deal_groups",
    description = "A deal of the published ruleset and its groups.",
    params(DealParam),
    responses(
        (status = 200, description = "The deal.", body = DealView),
        (status = 404, description = "`not_found`: no such deal.", body = ErrorDoc),
    ))]
async fn deal_groups(State(st): State<Shared>, headers: HeaderMap, Path(deal): Path<String>) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(
        blocking(&st, move |s| {
            let groups = s.deal_groups(&deal)?;
            Ok(DealView { deal, groups })
        })
        .await,
    )
}

#[derive(Serialize, ToSchema)]
struct TriggersRun {
    /// Coupons the pass issued.
    coupons_issued: u64,
}

/// Runs the daily trigger pass now (it also runs hourly): `{"coupons_issued": N}`.
#[utoipa::path(post, path = "/v1/hub/triggers/run", operation_id = "hub_run_triggers",
    description = "Runs the daily trigger pass now (it also runs hourly): coupons for birthdays and other dated triggers, once per member and occurrence.",
    responses(
        (status = 200, description = "What the pass issued.", body = TriggersRun),
        (status = 503, description = "`store_busy`: the hub is stopping.", body = ErrorDoc),
    ))]
async fn run_triggers(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(
        blocking(&st, |s| {
            let (issued, _) = s.daily_pass()?;
            Ok(TriggersRun { coupons_issued: issued })
        })
        .await,
    )
}

#[utoipa::path(get, path = "/v1/hub/terminals", operation_id = "hub_terminals",
    description = "Every terminal stream the hub holds.",
    responses((status = 200, description = "The streams.", body = Vec<TerminalView>)))]
async fn terminals(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, |s| s.terminals()).await)
}

#[utoipa::path(get, path = "/v1/hub/reports/overspent", operation_id = "hub_overspent",
    description = "Members whose balance went negative (offline double spend, clawbacks).",
    responses((status = 200, description = "The members.", body = Vec<Overspent>)))]
async fn overspent(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, |s| s.overspent()).await)
}

#[derive(Serialize, ToSchema)]
struct Published {
    /// The ruleset's `version`, newer than any published before.
    version: u32,
}

#[utoipa::path(post, path = "/v1/hub/rulesets", operation_id = "hub_publish_ruleset",
    description = "Validates and publishes a ruleset (TOML, rules.md) for every terminal; they get it on their next pull.",
    request_body(content = String, content_type = "text/plain", description = "The ruleset's TOML text, up to 1 MiB."),
    responses(
        (status = 201, description = "Published.", body = Published),
        (status = 400, description = "`invalid_input`: not UTF-8, not a valid ruleset, or a version not newer than the published one.", body = ErrorDoc),
        (status = 408, description = "`invalid_input`: the body did not arrive within 30 s.", body = ErrorDoc),
        (status = 413, description = "`invalid_input`: the body is over 1 MiB.", body = ErrorDoc),
        (status = 503, description = "`store_busy`: the hub is stopping.", body = ErrorDoc),
    ))]
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
        Ok(version) => (StatusCode::CREATED, Json(Published { version })).into_response(),
        Err(e) => e.into_response(),
    }
}

fn query<T>(q: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    q.map(|Query(q)| q).map_err(|e| Error::invalid(e.body_text()))
}

#[derive(Serialize, ToSchema)]
#[schema(as = HubMembersPage)]
struct MembersPage {
    /// In member id order.
    members: Vec<MemberView>,
    /// The `after` of the next page; null on the last (always on a phone lookup).
    #[schema(required = true)]
    next: Option<String>,
}

#[utoipa::path(get, path = "/v1/hub/members", operation_id = "hub_find_members",
    description = "Members chain-wide by phone (exact, any spelling) or by a search text, a page at a time.",
    params(Find),
    responses(
        (status = 200, description = "The members found.", body = MembersPage),
        (status = 400, description = "`invalid_input`: neither or both of `phone` and `q`, a bad phone, text, limit or cursor.", body = ErrorDoc),
    ))]
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

fn page_limit_schema() -> Object {
    schema::int64(1, crate::engine::PAGE_MAX as i64, false)
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// Entries on a page: 1 to 100, default 20.
    #[param(schema_with = page_limit_schema)]
    limit: Option<usize>,
    /// A page's `next`: the page after it.
    after: Option<String>,
}

#[utoipa::path(get, path = "/v1/hub/members/{member_id}/transactions", operation_id = "hub_member_transactions",
    description = "A member's checkouts at every shop, newest first, a page at a time.",
    params(MemberParam, PageQuery),
    responses(
        (status = 200, description = "A page.", body = TransactionsPage),
        (status = 400, description = "`invalid_input`: the limit or the cursor.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
    ))]
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

#[utoipa::path(get, path = "/v1/hub/members/{member_id}/points", operation_id = "hub_points_ledger",
    description = "A member's points ledger chain-wide, newest first, a page at a time.",
    params(MemberParam, PageQuery),
    responses(
        (status = 200, description = "A page.", body = LedgerPage),
        (status = 400, description = "`invalid_input`: the limit or the cursor.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
    ))]
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

#[derive(Serialize, ToSchema)]
#[schema(as = HubCoupons)]
struct CouponsOf {
    coupons: Vec<MemberCouponView>,
}

#[utoipa::path(get, path = "/v1/hub/members/{member_id}/coupons", operation_id = "hub_member_coupons",
    description = "A member's coupons, each as of today.",
    params(MemberParam),
    responses(
        (status = 200, description = "The coupons.", body = CouponsOf),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
    ))]
async fn coupons(State(st): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(
        blocking(&st, move |s| {
            Ok(CouponsOf {
                coupons: s.coupons(&id)?,
            })
        })
        .await,
    )
}

#[utoipa::path(get, path = "/v1/hub/transactions/{tx_id}", operation_id = "hub_transaction",
    description = "A checkout any terminal made, with its refunds and who made it.",
    params(TxParam),
    responses(
        (status = 200, description = "The transaction.", body = TransactionView),
        (status = 400, description = "`invalid_input`: the id.", body = ErrorDoc),
        (status = 404, description = "`unknown_transaction`.", body = ErrorDoc),
    ))]
async fn transaction(State(st): State<Shared>, headers: HeaderMap, Path(tx_id): Path<String>) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(blocking(&st, move |s| s.transaction(&tx_id)).await)
}

#[derive(Serialize, ToSchema)]
struct Conflicts {
    conflicts: Vec<ConflictView>,
}

#[utoipa::path(get, path = "/v1/hub/conflicts", operation_id = "hub_conflicts",
    description = "Two offline enrolments of one card or phone, not yet resolved.",
    responses((status = 200, description = "The conflicts.", body = Conflicts)))]
async fn conflicts(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&st, &headers) {
        return e.into_response();
    }
    json(
        blocking(&st, |s| {
            Ok(Conflicts {
                conflicts: s.conflicts()?,
            })
        })
        .await,
    )
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    /// The member (one of the conflict's) who holds the card or phone.
    keep: String,
    /// Whether the others are merged into `keep` (their points, history and cards).
    merge: bool,
}

#[utoipa::path(post, path = "/v1/hub/conflicts/{id}/resolve", operation_id = "hub_resolve_conflict",
    description = "Resolves a conflict: `keep` holds the card or phone everywhere; with `merge` the other members move into it.",
    params(ConflictParam),
    request_body = ResolveBody,
    responses(
        (status = 200, description = "The conflict, resolved.", body = ConflictView),
        (status = 400, description = "`invalid_input`: the body, resolved already, `keep` not one of its members.", body = ErrorDoc),
        (status = 404, description = "`not_found`: no such conflict.", body = ErrorDoc),
        (status = 413, description = "`invalid_input`: the body is over 2 MiB.", body = ErrorDoc),
        (status = 503, description = "`store_busy`: the hub is stopping.", body = ErrorDoc),
    ))]
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
        Err(e) => {
            let refused = Error::invalid(format!("bad JSON body: {}", e.body_text()));
            return match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => (e.status(), Json(refused.to_json())).into_response(),
                _ => refused.into_response(),
            };
        }
    };
    let by = Actor::new("operator", crate::model::Role::Owner);
    json(blocking(&st, move |s| s.resolve_conflict(&id, &b.keep, b.merge, by)).await)
}
