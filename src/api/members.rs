//! Finding and fixing members, their history, points outside a sale, import and export
//! (interface.md 0.2: "Lookup, search, edit", "History", "Points outside a sale",
//! "Reports" for the CSV).

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{blocking, reply, Asked, Caller, Nothing, Shared};
use crate::engine::MemberPatch;
use crate::error::{Error, Result};
use crate::views::MemberView;

/// An import's CSV may be far larger than a POS request (100,000 members are ~8 MB).
pub const IMPORT_LIMIT: usize = 64 << 20;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/members/export", get(export))
        .route(
            "/v1/members/import",
            post(import).layer(DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
        .route("/v1/members/{id}", get(member).patch(edit))
        .route("/v1/members/{id}/status", post(status))
        .route("/v1/members/{id}/pin", post(pin))
        .route("/v1/members/{id}/transactions", get(transactions))
        .route("/v1/members/{id}/points", get(ledger).post(adjust))
        .route("/v1/members/{id}/activities", post(activity))
        .route(
            "/v1/members/{id}/coupons",
            get(coupons).post(super::campaigns::exchange),
        )
        .route("/v1/cards/{card}/unblock", post(unblock))
        .route("/v1/transactions/{tx_id}", get(transaction))
}

fn query<T>(q: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    q.map(|Query(q)| q).map_err(|e| Error::invalid(e.body_text()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    phone: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

#[derive(Serialize)]
struct MembersPage {
    members: Vec<MemberView>,
    next: Option<String>,
}

/// `GET /v1/members?phone=P` (exact) or `?q=TEXT` (a search page).
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

async fn member(State(st): State<Shared>, c: Caller, Path(id): Path<String>) -> Response {
    reply(blocking(&st, move |e| e.member(&id, &e.at(None).by(c.actor))))
}

async fn edit(State(st): State<Shared>, Path(id): Path<String>, a: Asked<MemberPatch>) -> Response {
    reply(blocking(&st, move |e| {
        e.edit_member(&id, a.body, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub status: String,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    #[serde(default)]
    pub old_pin: Option<String>,
    pub new_pin: String,
}

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

async fn unblock(State(st): State<Shared>, Path(card): Path<String>, a: Asked<Nothing>) -> Response {
    reply(blocking(&st, move |e| {
        e.unblock_card(&card, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<usize>,
    after: Option<String>,
}

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

async fn transaction(State(st): State<Shared>, Path(tx_id): Path<String>) -> Response {
    reply(blocking(&st, move |e| e.transaction(&tx_id)))
}

#[derive(Serialize)]
struct CouponsOf {
    coupons: Vec<crate::views::history::MemberCouponView>,
}

async fn coupons(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    reply(blocking(&st, move |e| {
        Ok(CouponsOf {
            coupons: e.member_coupons(&id)?,
        })
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    pub points: i64,
    pub reason: String,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityBody {
    pub activity: String,
}

async fn activity(State(st): State<Shared>, Path(id): Path<String>, a: Asked<ActivityBody>) -> Response {
    reply(blocking(&st, move |e| {
        e.grant_activity(&id, &a.body.activity, a.key.as_deref(), e.at(None).by(a.actor))
    }))
}

/// `POST /v1/members/import`: the CSV file as the body (manager).
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
}

/// `GET /v1/members/export?format=csv`: streamed a page of members at a time, so that a
/// chain's million members never sit in memory at once.
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
