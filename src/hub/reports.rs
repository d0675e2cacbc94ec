//! The hub's reports: `GET /v1/hub/reports/summary`, `/retention` and `/campaigns`, the
//! terminal's shapes for the chain, and with `?terminal=ID` for one shop (interface.md
//! 0.2 "Reports": sales, transactions and ledger figures to what it recorded, member
//! figures to the members it enrolled).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{blocking, operator};
use super::{HubState, Shared};
use crate::api::reports::{campaigns_csv, csv_response, date, month, retention_csv, summary_csv, wants_csv};
use crate::engine::audit::{AuditAsk, AuditView};
use crate::engine::reports::{Campaigns, Retention, Summary};
use crate::error::{Error, Result};
use crate::service::openapi::ErrorDoc;

pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(summary))
        .routes(routes!(retention))
        .routes(routes!(campaigns))
        .routes(routes!(audit))
}

/// A report's window, format and shop.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct HubWindowQuery {
    /// The first day (`YYYY-MM-DD`) or month (`YYYY-MM`), inclusive.
    from: Option<String>,
    /// The last day or month, inclusive.
    to: Option<String>,
    /// `json` (the default) or `csv`.
    format: Option<String>,
    /// One shop's figures: a terminal of the hub's config or one that has synced.
    terminal: Option<String>,
}

/// The query, checked: whether CSV is wanted and the terminal, if one, known.
async fn asked(
    st: &Shared,
    headers: &HeaderMap,
    q: std::result::Result<Query<HubWindowQuery>, QueryRejection>,
) -> Result<(HubWindowQuery, bool)> {
    operator(st, headers)?;
    let Query(q) = q.map_err(|e| Error::invalid(e.body_text()))?;
    let csv = wants_csv(q.format.as_deref())?;
    if let Some(t) = q.terminal.clone() {
        let configured = HubState::configured(st, &t);
        if !configured && !blocking(st, move |s| s.knows_terminal(&t)).await? {
            let t = q.terminal.as_deref().unwrap_or_default();
            return Err(Error::invalid(format!(
                "terminal {t:?}: not a terminal of this hub (none configured or synced by that id)"
            )));
        }
    }
    Ok((q, csv))
}

fn answer<T: serde::Serialize>(name: &str, r: Result<(bool, T)>, csv: impl Fn(&T) -> String) -> Response {
    match r {
        Ok((true, v)) => csv_response(name, csv(&v)),
        Ok((false, v)) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(get, path = "/v1/hub/reports/summary", operation_id = "hub_report_summary",
    description = "The chain's figures over a window of local dates, or one shop's with `terminal` (what it recorded; member figures of the members it enrolled); the terminal's shape; `format=csv`: a header row and a row.",
    params(HubWindowQuery),
    responses(
        (status = 200, description = "The summary (or its CSV).", body = Summary),
        (status = 400, description = "`invalid_input`: a date, the window, the format, an unknown terminal.", body = ErrorDoc),
    ))]
async fn summary(
    State(st): State<Shared>,
    headers: HeaderMap,
    q: std::result::Result<Query<HubWindowQuery>, QueryRejection>,
) -> Response {
    let run = async {
        let (q, csv) = asked(&st, &headers, q).await?;
        let (from, to) = (date(&q.from, "from")?, date(&q.to, "to")?);
        let s = blocking(&st, move |s| s.report_summary(from, to, q.terminal.as_deref())).await?;
        Ok((csv, s))
    };
    answer("summary", run.await, summary_csv)
}

#[utoipa::path(get, path = "/v1/hub/reports/retention", operation_id = "hub_report_retention",
    description = "The chain's enrolment cohorts and how many of each had a checkout in each later month, or one shop's with `terminal` (the members it enrolled, their checkouts anywhere); `format=csv`: a row per cohort and month after it.",
    params(HubWindowQuery),
    responses(
        (status = 200, description = "The cohorts (or their CSV).", body = Retention),
        (status = 400, description = "`invalid_input`: a month, the window, the format, an unknown terminal.", body = ErrorDoc),
    ))]
async fn retention(
    State(st): State<Shared>,
    headers: HeaderMap,
    q: std::result::Result<Query<HubWindowQuery>, QueryRejection>,
) -> Response {
    let run = async {
        let (q, csv) = asked(&st, &headers, q).await?;
        let (from, to) = (month(&q.from, "from")?, month(&q.to, "to")?);
        let r = blocking(&st, move |s| s.report_retention(from, to, q.terminal.as_deref())).await?;
        Ok((csv, r))
    };
    answer("retention", run.await, retention_csv)
}

#[utoipa::path(get, path = "/v1/hub/reports/campaigns", operation_id = "hub_report_campaigns",
    description = "What each promotion, coupon type, earn campaign, group-buy deal and trigger did in the chain's checkouts of a window of local dates, or in one shop's with `terminal`; `format=csv`: a row per campaign.",
    params(HubWindowQuery),
    responses(
        (status = 200, description = "The campaigns (or their CSV).", body = Campaigns),
        (status = 400, description = "`invalid_input`: a date, the window, the format, an unknown terminal.", body = ErrorDoc),
    ))]
async fn campaigns(
    State(st): State<Shared>,
    headers: HeaderMap,
    q: std::result::Result<Query<HubWindowQuery>, QueryRejection>,
) -> Response {
    let run = async {
        let (q, csv) = asked(&st, &headers, q).await?;
        let (from, to) = (date(&q.from, "from")?, date(&q.to, "to")?);
        let c = blocking(&st, move |s| s.report_campaigns(from, to, q.terminal.as_deref())).await?;
        Ok((csv, c))
    };
    answer("campaigns", run.await, campaigns_csv)
}

fn limit_schema() -> utoipa::openapi::schema::Object {
    crate::views::schema::int64(1, crate::engine::audit::AUDIT_MAX as i64, false)
}

/// The audit view's filters and page, chain-wide or for one terminal.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct HubAuditQuery {
    /// The first local date (`YYYY-MM-DD`), inclusive; none = from the start.
    from: Option<String>,
    /// The last local date, inclusive; none = up to now.
    to: Option<String>,
    /// Entries where this staff id acted or asked.
    staff: Option<String>,
    /// One action (README, "The audit view", lists them).
    action: Option<String>,
    /// Entries a terminal made.
    terminal: Option<String>,
    /// Entries on a page: 1 to 500, default 50.
    #[param(schema_with = limit_schema)]
    limit: Option<usize>,
    /// A page's `next`: the older entries after it.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/hub/audit", operation_id = "hub_audit",
    description = "Who did what, when, at which terminal, chain-wide (every record the terminals pushed and the hub's own): newest first, filtered by local dates, staff id, action and terminal, in pages with a stable cursor.",
    params(HubAuditQuery),
    responses(
        (status = 200, description = "A page of entries.", body = AuditView),
        (status = 400, description = "`invalid_input`: a date, from after to, an unknown staff id, action or terminal, the limit, the cursor.", body = ErrorDoc),
    ))]
async fn audit(
    State(st): State<Shared>,
    headers: HeaderMap,
    q: std::result::Result<Query<HubAuditQuery>, QueryRejection>,
) -> Response {
    let run = async {
        operator(&st, &headers)?;
        let Query(q) = q.map_err(|e| Error::invalid(e.body_text()))?;
        let day = |v: &Option<String>, name| v.as_ref().map(|_| date(v, name)).transpose();
        let ask = AuditAsk {
            from: day(&q.from, "from")?,
            to: day(&q.to, "to")?,
            staff: q.staff,
            action: q.action,
            terminal: q.terminal,
            limit: q.limit,
            cursor: q.cursor,
        };
        let configured = ask.terminal.as_deref().is_some_and(|t| HubState::configured(&st, t));
        blocking(&st, move |s| s.audit(ask, configured)).await
    };
    match run.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
