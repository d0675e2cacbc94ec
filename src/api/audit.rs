//! `GET /v1/audit`: who did what, when, at which terminal (manager), newest first.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::reports::date;
use super::{blocking, Caller, Shared};
use crate::engine::audit::{AuditAsk, AuditView};
use crate::error::{Error, Result};
use crate::service::openapi::ErrorDoc;

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(audit))
}

fn limit_schema() -> utoipa::openapi::schema::Object {
    crate::views::schema::int64(1, crate::engine::audit::AUDIT_MAX as i64, false)
}

/// The audit view's filters and page.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The first local date (`YYYY-MM-DD`), inclusive; none = from the start.
    from: Option<String>,
    /// The last local date, inclusive; none = up to now.
    to: Option<String>,
    /// Entries where this staff id acted or asked (approved by a manager).
    staff: Option<String>,
    /// One action (README, "The audit view", lists them).
    action: Option<String>,
    /// Entries on a page: 1 to 500, default 50.
    #[param(schema_with = limit_schema)]
    limit: Option<usize>,
    /// A page's `next`: the older entries after it.
    cursor: Option<String>,
}

impl AuditQuery {
    /// The ask, with the dates parsed (`terminal` is the hub's).
    pub fn ask(self, terminal: Option<String>) -> Result<AuditAsk> {
        let day = |v: &Option<String>, name| v.as_ref().map(|_| date(v, name)).transpose();
        Ok(AuditAsk {
            from: day(&self.from, "from")?,
            to: day(&self.to, "to")?,
            staff: self.staff,
            action: self.action,
            terminal,
            limit: self.limit,
            cursor: self.cursor,
        })
    }
}

#[utoipa::path(get, path = "/v1/audit", operation_id = "audit",
    description = "Who did what, when, at which terminal, from the actor every record names (manager): newest first, filtered by local dates, staff id and action, in pages with a stable cursor.",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries.", body = AuditView),
        (status = 400, description = "`invalid_input`: a date, from after to, an unknown staff id or action, the limit, the cursor.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs a manager.", body = ErrorDoc),
    ))]
async fn audit(
    State(st): State<Shared>,
    c: Caller,
    q: std::result::Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let run = || -> Result<AuditView> {
        let Query(q) = q.map_err(|e| Error::invalid(e.body_text()))?;
        let ask = q.ask(None)?;
        let at = st.engine.at(None).by(c.actor);
        blocking(&st, move |e| e.audit(&ask, false, &at))
    };
    match run() {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
