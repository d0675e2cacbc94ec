//! Reports (managers): the summary of a window, the retention heat map, and the same
//! CSV as the JSON API's `?format=csv` (the API's own CSV writers) to download.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use super::dashboard::{date_field, figures, today, window, Figure, WindowQuery};
use super::{frame, html, money, refused, staff_error, status_of, Frame};
use crate::console::charts;
use crate::console::i18n::{t, url_encode};
use crate::console::{Shared, Staff};
use crate::engine::reports::{Campaigns, Month, Retention, MAX_MONTHS};
use crate::error::{Error, Result};
use crate::model::Role;
use crate::store::report::Scope;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ReportsQuery {
    from: Option<String>,
    to: Option<String>,
    /// Retention's months.
    rfrom: Option<String>,
    rto: Option<String>,
}

#[derive(Template)]
#[template(path = "console/reports.html")]
struct ReportsPage {
    f: Frame,
    from: String,
    to: String,
    rfrom: String,
    rto: String,
    figures: Vec<Figure>,
    tiers: Vec<(String, i64)>,
    heatmap: String,
    retention: Option<Retention>,
    summary_csv: String,
    retention_csv: String,
    campaigns: Vec<CampaignRow>,
    campaigns_csv: String,
}

/// A row of the campaigns report as the page shows it.
struct CampaignRow {
    id: String,
    kind: String,
    uses: i64,
    members: i64,
    discount: String,
    bonus_points: i64,
    sales: String,
}

impl CampaignRow {
    /// The catalogue key of the row's kind.
    fn kind_key(&self) -> &'static str {
        match self.kind.as_str() {
            "promotion" => "kind.promotion",
            "coupon" => "kind.coupon",
            "campaign" => "kind.campaign",
            "group_buy" => "kind.group_buy",
            _ => "kind.trigger",
        }
    }
}

fn campaign_rows(c: &Campaigns) -> Vec<CampaignRow> {
    c.campaigns
        .iter()
        .map(|x| CampaignRow {
            id: x.id.clone(),
            kind: x.kind.clone(),
            uses: x.uses,
            members: x.members,
            discount: money(x.discount),
            bonus_points: x.bonus_points,
            sales: money(x.sales),
        })
        .collect()
}

fn month_text((y, m): Month) -> String {
    format!("{y:04}-{m:02}")
}

fn month_field(v: &Option<String>, name: &str, default: Month) -> Result<Month> {
    let s = match v.as_deref().map(str::trim) {
        None | Some("") => return Ok(default),
        Some(s) => s,
    };
    let bad = || Error::invalid(format!("{name} {s:?} is not a month (YYYY-MM)"));
    let d = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").map_err(|_| bad())?;
    if s.len() != 7 {
        return Err(bad());
    }
    Ok((d.year(), d.month()))
}

/// Retention's months: default the twelve up to this one.
fn months_window(q: &ReportsQuery, today: NaiveDate) -> Result<(Month, Month)> {
    let to = month_field(&q.rto, "rto", (today.year(), today.month()))?;
    let n = to.0 * 12 + to.1 as i32 - 1 - 11;
    let from = month_field(&q.rfrom, "rfrom", (n / 12, (n % 12) as u32 + 1))?;
    let (f, t) = (from.0 * 12 + from.1 as i32, to.0 * 12 + to.1 as i32);
    if f > t {
        return Err(Error::invalid(format!(
            "rfrom {} is after rto {}",
            month_text(from),
            month_text(to)
        )));
    }
    if (t - f) as u32 >= MAX_MONTHS {
        return Err(Error::invalid(format!(
            "rfrom {} to {}: at most {MAX_MONTHS} months (ten years)",
            month_text(from),
            month_text(to)
        )));
    }
    Ok((from, to))
}

pub async fn page(
    State(st): State<Shared>,
    s: Staff,
    q: std::result::Result<Query<ReportsQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    if let Err(e) = s.require(Role::Manager, "reports") {
        return staff_error(&st, &s, &e);
    }
    let lang = s.v.lang;
    let mut f = frame(&st, &s, "title.reports", "/console/reports");
    let today = today(&st);
    let at = s.at(&st);
    let wq = WindowQuery {
        from: q.from.clone(),
        to: q.to.clone(),
    };
    let r = window(&wq, today).and_then(|(from, to)| {
        let (rfrom, rto) = months_window(&q, today)?;
        st.run(|e| {
            let summary = e.report_summary(from, to, Scope::All, &at)?;
            let retention = e.report_retention(rfrom, rto, Scope::All, &at)?;
            let campaigns = e.report_campaigns(from, to, Scope::All, &at)?;
            Ok((from, to, rfrom, rto, summary, retention, campaigns))
        })
    });
    match r {
        Ok((from, to, rfrom, rto, summary, retention, campaigns)) => {
            let rows: Vec<(String, i64, Vec<i64>)> = retention
                .cohorts
                .iter()
                .map(|c| (c.month.clone(), c.members, c.active.clone()))
                .collect();
            let page = ReportsPage {
                f,
                from: from.to_string(),
                to: to.to_string(),
                rfrom: month_text(rfrom),
                rto: month_text(rto),
                figures: figures(&summary),
                tiers: summary.tier_mix.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                heatmap: charts::heatmap(t(lang, "chart.retention"), &rows, "+"),
                retention: Some(retention),
                summary_csv: format!("/console/reports/summary.csv?from={from}&to={to}"),
                retention_csv: format!(
                    "/console/reports/retention.csv?from={}&to={}",
                    url_encode(&month_text(rfrom)),
                    url_encode(&month_text(rto))
                ),
                campaigns: campaign_rows(&campaigns),
                campaigns_csv: format!("/console/reports/campaigns.csv?from={from}&to={to}"),
            };
            html(StatusCode::OK, &page)
        }
        Err(e) if !e.code.is_fault() && e.code != crate::error::Code::Forbidden => {
            let status = status_of(&e);
            f.notice = Some(refused(&e));
            let page = ReportsPage {
                f,
                from: q.from.unwrap_or_default(),
                to: q.to.unwrap_or_default(),
                rfrom: q.rfrom.unwrap_or_default(),
                rto: q.rto.unwrap_or_default(),
                figures: Vec::new(),
                tiers: Vec::new(),
                heatmap: String::new(),
                retention: None,
                summary_csv: String::new(),
                retention_csv: String::new(),
                campaigns: Vec::new(),
                campaigns_csv: String::new(),
            };
            html(status, &page)
        }
        Err(e) => staff_error(&st, &s, &e),
    }
}

fn csv(name: &str, body: String) -> Response {
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

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsvQuery {
    from: Option<String>,
    to: Option<String>,
}

/// A report over a window of dates as CSV: `from` and `to` required, then the engine's
/// report written by the API's own CSV writer.
fn dated_csv(
    st: &Shared,
    s: &Staff,
    q: std::result::Result<Query<CsvQuery>, QueryRejection>,
    name: &str,
    report: impl FnOnce(&crate::engine::Engine, NaiveDate, NaiveDate, &crate::engine::At) -> Result<String>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let at = s.at(st);
    let r = (|| {
        let from = date_field(&q.from, "from", NaiveDate::MIN)?;
        let to = date_field(&q.to, "to", NaiveDate::MIN)?;
        if from == NaiveDate::MIN || to == NaiveDate::MIN {
            return Err(Error::invalid("from and to are required (YYYY-MM-DD)"));
        }
        st.run(|e| report(e, from, to, &at))
    })();
    match r {
        Ok(body) => csv(name, body),
        Err(e) => staff_error(st, s, &e),
    }
}

pub async fn summary_csv(
    State(st): State<Shared>,
    s: Staff,
    q: std::result::Result<Query<CsvQuery>, QueryRejection>,
) -> Response {
    dated_csv(&st, &s, q, "summary", |e, from, to, at| {
        Ok(crate::api::reports::summary_csv(&e.report_summary(
            from,
            to,
            Scope::All,
            at,
        )?))
    })
}

pub async fn campaigns_csv(
    State(st): State<Shared>,
    s: Staff,
    q: std::result::Result<Query<CsvQuery>, QueryRejection>,
) -> Response {
    dated_csv(&st, &s, q, "campaigns", |e, from, to, at| {
        Ok(crate::api::reports::campaigns_csv(&e.report_campaigns(
            from,
            to,
            Scope::All,
            at,
        )?))
    })
}

pub async fn retention_csv(
    State(st): State<Shared>,
    s: Staff,
    q: std::result::Result<Query<CsvQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let at = s.at(&st);
    let r = (|| {
        if q.from.is_none() || q.to.is_none() {
            return Err(Error::invalid("from and to are required (YYYY-MM)"));
        }
        let wq = ReportsQuery {
            rfrom: q.from.clone(),
            rto: q.to.clone(),
            ..Default::default()
        };
        let (from, to) = months_window(&wq, today(&st))?;
        st.run(|e| e.report_retention(from, to, Scope::All, &at))
    })();
    match r {
        Ok(ret) => csv("retention", crate::api::reports::retention_csv(&ret)),
        Err(e) => staff_error(&st, &s, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_checked() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
        let q = |f: &str, t: &str| ReportsQuery {
            rfrom: Some(f.into()),
            rto: Some(t.into()),
            ..Default::default()
        };
        assert_eq!(
            months_window(&ReportsQuery::default(), today).unwrap(),
            ((2025, 4), (2026, 3))
        );
        assert!(months_window(&q("2026-13", ""), today).is_err());
        assert!(months_window(&q("2026-3", ""), today).is_err());
        assert!(months_window(&q("2026-03", "2026-01"), today)
            .unwrap_err()
            .message
            .contains("after"));
        assert!(months_window(&q("1990-01", "2026-01"), today).is_err());
    }
}
