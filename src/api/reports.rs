//! `GET /v1/reports/summary`, `/v1/reports/retention` and `/v1/reports/campaigns`
//! (interface.md 0.2 "Reports"), as JSON or, with `?format=csv`, a header row and rows.
//! The parsing and the CSV forms are the hub's too (`hub::reports`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, Caller, Shared};
use crate::engine::reports::{Campaigns, Month, Retention, Summary};
use crate::error::{Error, Result};
use crate::service::openapi::ErrorDoc;
use crate::store::report::Scope;

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(summary))
        .routes(routes!(retention))
        .routes(routes!(campaigns))
}

/// A report's window (dates for the summary, months for retention) and its format.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    /// The first day (`YYYY-MM-DD`) or month (`YYYY-MM`), inclusive.
    from: Option<String>,
    /// The last day or month, inclusive.
    to: Option<String>,
    /// `json` (the default) or `csv`.
    format: Option<String>,
}

/// Whether the answer is CSV (`format=csv`) or JSON (none, or `format=json`).
pub(crate) fn wants_csv(format: Option<&str>) -> Result<bool> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(f) => Err(Error::invalid(format!("format {f:?}: a report is json or csv"))),
    }
}

fn required<'a>(v: &'a Option<String>, name: &str, shape: &str) -> Result<&'a str> {
    v.as_deref()
        .ok_or_else(|| Error::invalid(format!("{name} is required ({shape})")))
}

pub(crate) fn date(v: &Option<String>, name: &str) -> Result<chrono::NaiveDate> {
    let s = required(v, name, "YYYY-MM-DD")?;
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Error::invalid(format!("{name} {s:?} is not a date (YYYY-MM-DD)")))
}

pub(crate) fn month(v: &Option<String>, name: &str) -> Result<Month> {
    let s = required(v, name, "YYYY-MM")?;
    let bad = || Error::invalid(format!("{name} {s:?} is not a month (YYYY-MM)"));
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || y < 1 {
        return Err(bad());
    }
    Ok((y, m))
}

pub(crate) fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A tier name as a CSV field (quoted when it holds a comma, quote or line break).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The summary as CSV: its figures, then a `tier_mix.<tier>` column per tier.
pub fn summary_csv(s: &Summary) -> String {
    let figures = [
        ("sales", s.sales),
        ("member_sales", s.member_sales),
        ("transactions", s.transactions),
        ("member_transactions", s.member_transactions),
        ("new_members", s.new_members),
        ("active_members", s.active_members),
        ("repeat_members", s.repeat_members),
        ("repurchase_rate_bp", s.repurchase_rate_bp),
        ("points_issued", s.points_issued),
        ("points_clawed_back", s.points_clawed_back),
        ("points_redeemed", s.points_redeemed),
        ("points_expired", s.points_expired),
        ("points_outstanding", s.points_outstanding),
        ("liability_minor", s.liability_minor),
    ];
    let mut head = vec!["from".to_string(), "to".to_string()];
    let mut row = vec![s.from.to_string(), s.to.to_string()];
    for (name, v) in figures {
        head.push(name.to_string());
        row.push(v.to_string());
    }
    for (tier, n) in &s.tier_mix {
        head.push(field(&format!("tier_mix.{tier}")));
        row.push(n.to_string());
    }
    format!("{}\n{}\n", head.join(","), row.join(","))
}

/// The campaigns as CSV: a row per campaign.
pub fn campaigns_csv(c: &Campaigns) -> String {
    let mut out = String::from("id,kind,uses,members,discount,bonus_points,sales\n");
    for r in &c.campaigns {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            field(&r.id),
            r.kind,
            r.uses,
            r.members,
            r.discount,
            r.bonus_points,
            r.sales
        ));
    }
    out
}

/// Retention as CSV: a row per cohort and month after it (`k`).
pub fn retention_csv(r: &Retention) -> String {
    let mut out = String::from("month,members,k,active\n");
    for c in &r.cohorts {
        for (k, a) in c.active.iter().enumerate() {
            out.push_str(&format!("{},{},{k},{a}\n", c.month, c.members));
        }
    }
    out
}

#[utoipa::path(get, path = "/v1/reports/summary", operation_id = "report_summary",
    description = "The shop's figures over a window of local dates (manager), with exactly the definitions of interface.md; `format=csv`: a header row and a row.",
    params(WindowQuery),
    responses(
        (status = 200, description = "The summary (or its CSV).", body = Summary),
        (status = 400, description = "`invalid_input`: a date, the window, the format.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs a manager.", body = ErrorDoc),
    ))]
async fn summary(
    State(st): State<Shared>,
    c: Caller,
    q: std::result::Result<Query<WindowQuery>, QueryRejection>,
) -> Response {
    let run = || -> Result<(bool, Summary)> {
        let Query(q) = q.map_err(|e| Error::invalid(e.body_text()))?;
        let csv = wants_csv(q.format.as_deref())?;
        let (from, to) = (date(&q.from, "from")?, date(&q.to, "to")?);
        let at = st.engine.at(None).by(c.actor);
        blocking(&st, move |e| e.report_summary(from, to, Scope::All, &at)).map(|s| (csv, s))
    };
    match run() {
        Ok((true, s)) => csv_response("summary", summary_csv(&s)),
        Ok((false, s)) => Json(s).into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(get, path = "/v1/reports/retention", operation_id = "report_retention",
    description = "Cohorts by enrolment month and how many of each had a checkout in each later month (manager); `format=csv`: a row per cohort and month after it.",
    params(WindowQuery),
    responses(
        (status = 200, description = "The cohorts (or their CSV).", body = Retention),
        (status = 400, description = "`invalid_input`: a month, the window, the format.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs a manager.", body = ErrorDoc),
    ))]
async fn retention(
    State(st): State<Shared>,
    c: Caller,
    q: std::result::Result<Query<WindowQuery>, QueryRejection>,
) -> Response {
    let run = || -> Result<(bool, Retention)> {
        let Query(q) = q.map_err(|e| Error::invalid(e.body_text()))?;
        let csv = wants_csv(q.format.as_deref())?;
        let (from, to) = (month(&q.from, "from")?, month(&q.to, "to")?);
        let at = st.engine.at(None).by(c.actor);
        blocking(&st, move |e| e.report_retention(from, to, Scope::All, &at)).map(|s| (csv, s))
    };
    match run() {
        Ok((true, r)) => csv_response("retention", retention_csv(&r)),
        Ok((false, r)) => Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(get, path = "/v1/reports/campaigns", operation_id = "report_campaigns",
    description = "What each promotion, coupon type, earn campaign, group-buy deal and trigger did in the checkouts of a window of local dates (manager): checkouts it touched, their distinct members, money it took off, points it added above the base rate, the totals of those checkouts; `format=csv`: a row per campaign.",
    params(WindowQuery),
    responses(
        (status = 200, description = "The campaigns (or their CSV).", body = Campaigns),
        (status = 400, description = "`invalid_input`: a date, the window, the format.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs a manager.", body = ErrorDoc),
    ))]
async fn campaigns(
    State(st): State<Shared>,
    c: Caller,
    q: std::result::Result<Query<WindowQuery>, QueryRejection>,
) -> Response {
    let run = || -> Result<(bool, Campaigns)> {
        let Query(q) = q.map_err(|e| Error::invalid(e.body_text()))?;
        let csv = wants_csv(q.format.as_deref())?;
        let (from, to) = (date(&q.from, "from")?, date(&q.to, "to")?);
        let at = st.engine.at(None).by(c.actor);
        blocking(&st, move |e| e.report_campaigns(from, to, Scope::All, &at)).map(|s| (csv, s))
    };
    match run() {
        Ok((true, r)) => csv_response("campaigns", campaigns_csv(&r)),
        Ok((false, r)) => Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}
