//! Finding and fixing members, their history, points outside a sale, import and export
//! (interface.md 0.2: "Lookup, search, edit", "History", "Points outside a sale",
//! "Reports" for the CSV).

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::openapi::{Busy, CardParam, KeyHeader, MemberParam, TxParam};
use super::{blocking, reply, Asked, Caller, Nothing, Shared};
use crate::engine::{ImportReport, MemberPatch};
use crate::error::{Error, Result};
use crate::service::openapi::ErrorDoc;
use crate::views::history::{LedgerEntryView, LedgerPage, MemberCouponView, TransactionView, TransactionsPage};
use crate::views::{schema, MemberView};

/// An import's CSV may be far larger than a POS request (100,000 members are ~8 MB).
pub const IMPORT_LIMIT: usize = 64 << 20;

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(export))
        .routes(routes!(import).layer(DefaultBodyLimit::max(IMPORT_LIMIT)))
        .routes(routes!(member, edit))
        .routes(routes!(status))
        .routes(routes!(pin))
        .routes(routes!(transactions))
        .routes(routes!(ledger, adjust))
        .routes(routes!(activity))
        .routes(routes!(coupons, super::campaigns::exchange))
        .routes(routes!(unblock))
        .routes(routes!(transaction))
}

fn query<T>(q: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    q.map(|Query(q)| q).map_err(|e| Error::invalid(e.body_text()))
}

fn page_limit_schema() -> Object {
    schema::int64(1, crate::engine::PAGE_MAX as i64, false)
}

fn search_limit_schema() -> Object {
    schema::int64(1, crate::engine::SEARCH_MAX as i64, false)
}

/// Give one of `phone` and `q`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    /// Any spelling of a phone: the member it finds, exactly (no paging).
    phone: Option<String>,
    /// A name prefix (any case, any script), a phone suffix of 4 digits or more, or a
    /// card prefix; 1 to 100 characters after trimming.
    q: Option<String>,
    /// Members on a page of a search: 1 to 100, default 20.
    #[param(schema_with = search_limit_schema)]
    limit: Option<usize>,
    /// A search page's `next`: the page after it.
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct MembersPage {
    /// In member id order.
    members: Vec<MemberView>,
    /// The `after` of the next page; null on the last (always on a phone lookup).
    #[schema(required = true)]
    next: Option<String>,
}

/// `GET /v1/members?phone=P` (exact) or `?q=TEXT` (a search page).
#[utoipa::path(get, path = "/v1/members", operation_id = "find_members",
    description = "Members by phone (exact, any spelling) or by a search text, a page at a time.",
    params(FindQuery),
    responses(
        (status = 200, description = "The members found.", body = MembersPage),
        (status = 400, description = "`invalid_input`: neither or both of `phone` and `q`, a bad phone, text, limit or cursor.", body = ErrorDoc),
    ))]
pub async fn find(
    State(st): State<Shared>,
    c: Caller,
    q: std::result::Result<Query<FindQuery>, QueryRejection>,
) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    reply(blocking(&st, move |e| {
        let at = e.at(None).by(c.actor);
        match (q.phone, q.q) {
            (Some(phone), None) => Ok(MembersPage {
                members: e.find_by_phone(&phone, &at)?,
                next: None,
            }),
            (None, Some(text)) => {
                let (members, next) = e.search(&text, q.after.as_deref(), q.limit, &at)?;
                Ok(MembersPage { members, next })
            }
            _ => Err(Error::invalid("give one of phone= or q=")),
        }
    }))
}

#[utoipa::path(get, path = "/v1/members/{id}", operation_id = "get_member",
    description = "A member by id (a merged member too).",
    params(MemberParam),
    responses(
        (status = 200, description = "The member.", body = MemberView),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
    ))]
async fn member(State(st): State<Shared>, c: Caller, Path(id): Path<String>) -> Response {
    reply(blocking(&st, move |e| e.member(&id, &e.at(None).by(c.actor))))
}

#[utoipa::path(patch, path = "/v1/members/{id}", operation_id = "edit_member",
    description = "Changes a member's name, phone, birthday or tags: each field given is replaced (a null birthday clears it).",
    params(MemberParam, KeyHeader),
    request_body = MemberPatch,
    responses(
        (status = 200, description = "The member as edited.", body = MemberView),
        (status = 400, description = "`invalid_input`: a field (control characters, length, a bad phone or birthday), the body, the key.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
        (status = 409, description = "`phone_taken`, `idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`member_inactive`: the member was merged into another.", body = ErrorDoc),
        Busy,
    ))]
async fn edit(State(st): State<Shared>, Path(id): Path<String>, a: Asked<MemberPatch>) -> Response {
    reply(blocking(&st, move |e| {
        e.edit_member(&id, a.body, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

fn member_status_schema() -> Object {
    schema::string_enum(["active", "inactive"])
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    #[schema(schema_with = member_status_schema)]
    pub status: String,
}

#[utoipa::path(post, path = "/v1/members/{id}/status", operation_id = "set_member_status",
    description = "Makes a member active or inactive (manager): an inactive member's cards are refused at checkout; history is kept.",
    params(MemberParam, KeyHeader),
    request_body = StatusBody,
    responses(
        (status = 200, description = "The member.", body = MemberView),
        (status = 400, description = "`invalid_input`.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs a manager.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`member_inactive`: the member was merged into another.", body = ErrorDoc),
        Busy,
    ))]
async fn status(State(st): State<Shared>, Path(id): Path<String>, a: Asked<StatusBody>) -> Response {
    let active = match a.body.status.as_str() {
        "active" => true,
        "inactive" => false,
        other => return Error::invalid(format!("status {other:?}: active or inactive")).into_response(),
    };
    reply(blocking(&st, move |e| {
        e.set_status(&id, active, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    /// The PIN now (anyone); without it, a reset by a manager, which also lifts a lock.
    #[serde(default)]
    #[schema(schema_with = schema::pin, required = false)]
    pub old_pin: Option<String>,
    #[schema(schema_with = schema::required_pin)]
    pub new_pin: String,
}

#[utoipa::path(post, path = "/v1/members/{id}/pin", operation_id = "set_member_pin",
    description = "A new PIN: with the old one, or without it as a manager's reset.",
    params(MemberParam, KeyHeader),
    request_body = PinBody,
    responses(
        (status = 200, description = "The member.", body = MemberView),
        (status = 400, description = "`invalid_input`: a PIN is 4 to 8 digits; the body, the key.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: a reset (no `old_pin`) needs a manager.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`pin_invalid` (the old PIN is wrong; recorded, it counts towards the lock), `pin_locked`, `pin_required` (no PIN to change), `member_inactive` (merged).", body = ErrorDoc),
        Busy,
    ))]
async fn pin(State(st): State<Shared>, Path(id): Path<String>, a: Asked<PinBody>) -> Response {
    reply(blocking(&st, move |e| {
        let b = a.body;
        e.set_pin(
            &id,
            b.old_pin.as_deref(),
            &b.new_pin,
            a.key.as_deref(),
            e.at(None).by(a.actor),
        )
    }))
}

#[utoipa::path(post, path = "/v1/cards/{card}/unblock", operation_id = "unblock_card",
    description = "Unblocks a card (manager); refused while the member has another active card. The body is optional: only an `approval`.",
    params(CardParam, KeyHeader),
    request_body = Option<Nothing>,
    responses(
        (status = 200, description = "The member with the card active.", body = MemberView),
        (status = 400, description = "`invalid_card`, `invalid_input` (another card of the member is active; the body, the key).", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs a manager.", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`member_inactive`: the member was merged into another.", body = ErrorDoc),
        Busy,
    ))]
async fn unblock(State(st): State<Shared>, Path(card): Path<String>, a: Asked<Nothing>) -> Response {
    reply(blocking(&st, move |e| {
        e.unblock_card(&card, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Entries on a page: 1 to 100, default 20.
    #[param(schema_with = page_limit_schema)]
    limit: Option<usize>,
    /// A page's `next`: the page after it.
    after: Option<String>,
}

#[utoipa::path(get, path = "/v1/members/{id}/transactions", operation_id = "member_transactions",
    description = "A member's checkouts, newest first, a page at a time.",
    params(MemberParam, PageQuery),
    responses(
        (status = 200, description = "A page.", body = TransactionsPage),
        (status = 400, description = "`invalid_input`: the limit or the cursor.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
    ))]
async fn transactions(
    State(st): State<Shared>,
    Path(id): Path<String>,
    q: std::result::Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    reply(blocking(&st, move |e| {
        e.transactions_page(&id, q.after.as_deref(), q.limit)
    }))
}

#[utoipa::path(get, path = "/v1/members/{id}/points", operation_id = "points_ledger",
    description = "A member's points ledger, newest first, a page at a time: the newest entry's `balance_after` is the balance.",
    params(MemberParam, PageQuery),
    responses(
        (status = 200, description = "A page.", body = LedgerPage),
        (status = 400, description = "`invalid_input`: the limit or the cursor.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
    ))]
async fn ledger(
    State(st): State<Shared>,
    Path(id): Path<String>,
    q: std::result::Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    reply(blocking(&st, move |e| e.ledger_page(&id, q.after.as_deref(), q.limit)))
}

#[utoipa::path(get, path = "/v1/transactions/{tx_id}", operation_id = "get_transaction",
    description = "A checkout of this terminal found again: its receipt, its refunds, who made it.",
    params(TxParam),
    responses(
        (status = 200, description = "The transaction.", body = TransactionView),
        (status = 400, description = "`invalid_input`: the id.", body = ErrorDoc),
        (status = 404, description = "`unknown_transaction`.", body = ErrorDoc),
    ))]
async fn transaction(State(st): State<Shared>, Path(tx_id): Path<String>) -> Response {
    reply(blocking(&st, move |e| e.transaction(&tx_id)))
}

#[derive(Serialize, ToSchema)]
struct CouponsOf {
    coupons: Vec<MemberCouponView>,
}

#[utoipa::path(get, path = "/v1/members/{id}/coupons", operation_id = "member_coupons",
    description = "A member's coupons, each as of today.",
    params(MemberParam),
    responses(
        (status = 200, description = "The coupons.", body = CouponsOf),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
    ))]
async fn coupons(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    reply(blocking(&st, move |e| {
        Ok(CouponsOf {
            coupons: e.member_coupons(&id)?,
        })
    }))
}

fn adjust_points_schema() -> Object {
    let max = crate::engine::MAX_ADJUST;
    schema::int64(-max, max, false)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    /// Non-zero; negative takes points (never more than the member holds).
    #[schema(schema_with = adjust_points_schema)]
    pub points: i64,
    /// 1 to 200 characters after trimming.
    #[schema(schema_with = schema::reason)]
    pub reason: String,
}

#[utoipa::path(post, path = "/v1/members/{id}/points", operation_id = "adjust_points",
    description = "Adds or takes points by hand, with a reason (manager).",
    params(MemberParam, KeyHeader),
    request_body = AdjustBody,
    responses(
        (status = 200, description = "The ledger entry (kind `adjust`).", body = LedgerEntryView),
        (status = 400, description = "`invalid_input`: zero or too many points, the reason, the body, the key.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs a manager.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`insufficient_points` (taking more than the member holds), `member_inactive` (merged).", body = ErrorDoc),
        Busy,
    ))]
async fn adjust(State(st): State<Shared>, Path(id): Path<String>, a: Asked<AdjustBody>) -> Response {
    reply(blocking(&st, move |e| {
        e.adjust_points(
            &id,
            a.body.points,
            &a.body.reason,
            a.key.as_deref(),
            e.at(None).by(a.actor),
        )
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityBody {
    /// An activity id of the ruleset.
    pub activity: String,
}

#[utoipa::path(post, path = "/v1/members/{id}/activities", operation_id = "grant_activity",
    description = "Grants an activity of the ruleset to a member, within its limits.",
    params(MemberParam, KeyHeader),
    request_body = ActivityBody,
    responses(
        (status = 200, description = "The ledger entry (kind `activity`).", body = LedgerEntryView),
        (status = 400, description = "`invalid_input`: no such activity, the body, the key.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`activity_limit`, `member_inactive`.", body = ErrorDoc),
        Busy,
    ))]
async fn activity(State(st): State<Shared>, Path(id): Path<String>, a: Asked<ActivityBody>) -> Response {
    reply(blocking(&st, move |e| {
        e.grant_activity(&id, &a.body.activity, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

/// `POST /v1/members/import`: the CSV file as the body (manager).
#[utoipa::path(post, path = "/v1/members/import", operation_id = "import_members",
    description = "Imports members from CSV (manager): all rows or none. The header row is `card,name,phone,birthday,points,tier,tags` (tags separated by `;`, `tier` ignored); each balance becomes one lot.",
    request_body(content = String, content_type = "text/csv", description = "The CSV file, up to 64 MiB."),
    responses(
        (status = 200, description = "What was imported.", body = ImportReport),
        (status = 400, description = "`invalid_input`: not this CSV, or bad rows (each in `rows` with its line).", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs a manager.", body = ErrorDoc),
        (status = 413, description = "`invalid_input`: the file is over 64 MiB.", body = ErrorDoc),
        Busy,
    ))]
async fn import(
    State(st): State<Shared>,
    c: Caller,
    body: std::result::Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let bytes = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let e = Error::invalid(format!("an import is at most {IMPORT_LIMIT} bytes"));
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(e.to_json())).into_response();
        }
        Err(r) => return Error::invalid(r.body_text()).into_response(),
    };
    reply(blocking(&st, move |e| e.import_members(&bytes, e.at(None).by(c.actor))))
}

fn export_format_schema() -> Object {
    schema::string_enum(["csv"])
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `csv`, the one format (the default).
    #[param(schema_with = export_format_schema)]
    format: Option<String>,
}

/// `GET /v1/members/export?format=csv`: streamed a page of members at a time, so that a
/// chain's million members never sit in memory at once.
#[utoipa::path(get, path = "/v1/members/export", operation_id = "export_members",
    description = "Every member (merged ones left out) as CSV, streamed (manager): the header row `card,name,phone,birthday,points,tier,tags`, then a row each.",
    params(ExportQuery),
    responses(
        (status = 200, description = "The CSV file.", body = String, content_type = "text/csv"),
        (status = 400, description = "`invalid_input`: the format.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs a manager.", body = ErrorDoc),
    ))]
async fn export(
    State(st): State<Shared>,
    c: Caller,
    q: std::result::Result<Query<ExportQuery>, QueryRejection>,
) -> Response {
    match query(q) {
        Ok(ExportQuery { format: None }) => {}
        Ok(ExportQuery { format: Some(f) }) if f == "csv" => {}
        Ok(ExportQuery { format: Some(f) }) => {
            return Error::invalid(format!("format {f:?}: the export is csv")).into_response()
        }
        Err(e) => return e.into_response(),
    }
    let at = st.engine.at(None).by(c.actor);
    if let Err(e) = at.require(crate::model::Role::Manager, "exporting members") {
        st.metrics.refusal(e.code);
        return e.into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let engine = st.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = engine.export_members(&mut out, &at) {
            tracing::error!("member export stopped: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"members.csv\""),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Bytes an export sends at a time.
const CHUNK: usize = 64 << 10;

/// Hands what the export writes to the response body, a chunk at a time; a client that
/// went away ends the export.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}
