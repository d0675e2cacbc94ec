//! The dashboard (managers): the summary of a window (default the last 30 days) with
//! its charts. Each chart's points are summaries of the window's days (or, past 92
//! days, its months) from the engine's report functions, so the figures are the JSON
//! report's by construction.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Datelike, Duration, NaiveDate};
use serde::Deserialize;

use super::{frame, html, money, percent, refused, staff_error, status_of, Frame};
use crate::console::charts;
use crate::console::i18n::{t, Lang};
use crate::console::{Console, Shared, Staff};
use crate::engine::reports::{Summary, MAX_DAYS};
use crate::engine::At;
use crate::error::{Error, Result};
use crate::model::Role;
use crate::store::report::Scope;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WindowQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A figure of the summary as the page shows it; `name` is the JSON report's key.
pub struct Figure {
    pub name: &'static str,
    pub key: &'static str,
    pub value: i64,
    pub shown: String,
}

pub struct Charts {
    pub sales: String,
    pub members: String,
    pub rate: String,
    pub tiers: String,
    pub points: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    f: Frame,
    from: String,
    to: String,
    figures: Vec<Figure>,
    charts: Option<Charts>,
    tiers: Vec<(String, i64)>,
}

/// A date field: blank takes `default`; anything else must be `YYYY-MM-DD`.
pub fn date_field(v: &Option<String>, name: &str, default: NaiveDate) -> Result<NaiveDate> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| Error::invalid(format!("{name} {s:?} is not a date (YYYY-MM-DD)"))),
    }
}

/// The window asked for, checked as the report checks it (from <= to, ten years at most).
pub fn window(q: &WindowQuery, today: NaiveDate) -> Result<(NaiveDate, NaiveDate)> {
    let to = date_field(&q.to, "to", today)?;
    let from = date_field(&q.from, "from", to - Duration::days(29))?;
    if from > to {
        return Err(Error::invalid(format!("from {from} is after to {to}")));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(Error::invalid(format!(
            "from {from} to {to}: a window covers at most {MAX_DAYS} days (ten years)"
        )));
    }
    Ok((from, to))
}

/// The chart's points: days up to 92 days, months (cut to the window) beyond.
pub fn buckets(from: NaiveDate, to: NaiveDate) -> Vec<(String, NaiveDate, NaiveDate)> {
    if (to - from).num_days() < 92 {
        return from
            .iter_days()
            .take_while(|d| *d <= to)
            .map(|d| (d.format("%m-%d").to_string(), d, d))
            .collect();
    }
    months(from, to)
}

/// The months a window touches, each cut to the window.
pub fn months(from: NaiveDate, to: NaiveDate) -> Vec<(String, NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let first = start.with_day(1).unwrap_or(start);
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(to + Duration::days(1));
        let end = (next - Duration::days(1)).min(to);
        out.push((start.format("%Y-%m").to_string(), start, end));
        start = next;
    }
    out
}

pub fn figures(s: &Summary) -> Vec<Figure> {
    let m = |name, key, v: i64| Figure {
        name,
        key,
        value: v,
        shown: money(v),
    };
    let n = |name, key, v: i64| Figure {
        name,
        key,
        value: v,
        shown: v.to_string(),
    };
    vec![
        m("sales", "fig.sales", s.sales),
        n("transactions", "fig.transactions", s.transactions),
        n("new_members", "fig.new_members", s.new_members),
        n("active_members", "fig.active_members", s.active_members),
        n("repeat_members", "fig.repeat_members", s.repeat_members),
        Figure {
            name: "repurchase_rate_bp",
            key: "fig.repurchase_rate",
            value: s.repurchase_rate_bp,
            shown: percent(s.repurchase_rate_bp),
        },
        n("points_issued", "fig.points_issued", s.points_issued),
        n("points_clawed_back", "fig.points_clawed_back", s.points_clawed_back),
        n("points_redeemed", "fig.points_redeemed", s.points_redeemed),
        n("points_expired", "fig.points_expired", s.points_expired),
        n("points_outstanding", "fig.points_outstanding", s.points_outstanding),
        m("liability_minor", "fig.liability", s.liability_minor),
    ]
}

/// The summary of the window and its charts.
pub fn build(st: &Console, at: &At, lang: Lang, from: NaiveDate, to: NaiveDate) -> Result<(Summary, Charts)> {
    st.run(|e| {
        let summary = e.report_summary(from, to, Scope::All, at)?;
        let points = buckets(from, to);
        let mut per = Vec::with_capacity(points.len());
        for (_, f, t) in &points {
            per.push(e.report_summary(*f, *t, Scope::All, at)?);
        }
        let labels: Vec<String> = points.iter().map(|b| b.0.clone()).collect();
        let col = |f: fn(&Summary) -> i64| per.iter().map(f).collect::<Vec<i64>>();
        // Past 92 days the points are the months already: no second pass over them.
        let (rate_labels, rates) = if points.len() == per.len() && (to - from).num_days() >= 92 {
            (labels.clone(), col(|s| s.repurchase_rate_bp))
        } else {
            let mut rate_labels = Vec::new();
            let mut rates = Vec::new();
            for (label, f, t) in months(from, to) {
                rate_labels.push(label);
                rates.push(e.report_summary(f, t, Scope::All, at)?.repurchase_rate_bp);
            }
            (rate_labels, rates)
        };
        let tiers: Vec<(String, i64)> = summary.tier_mix.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let charts = Charts {
            sales: charts::bars(t(lang, "chart.sales"), &labels, &col(|s| s.sales), &|v| money(v)),
            members: charts::lines(
                t(lang, "chart.members"),
                &labels,
                &[
                    (t(lang, "fig.new_members"), col(|s| s.new_members)),
                    (t(lang, "fig.active_members"), col(|s| s.active_members)),
                ],
            ),
            rate: charts::bars(t(lang, "chart.rate"), &rate_labels, &rates, &|v| percent(v)),
            tiers: charts::hbars(t(lang, "chart.tiers"), &tiers),
            points: charts::lines(
                t(lang, "chart.points"),
                &labels,
                &[
                    (t(lang, "fig.points_issued"), col(|s| s.points_issued)),
                    (t(lang, "fig.points_redeemed"), col(|s| s.points_redeemed)),
                    (t(lang, "fig.points_expired"), col(|s| s.points_expired)),
                ],
            ),
        };
        Ok((summary, charts))
    })
}

pub fn today(st: &Console) -> NaiveDate {
    let e = st.engine();
    crate::rules::local_date(&e.rules(), e.at(None).ts)
}

pub async fn page(
    State(st): State<Shared>,
    s: Staff,
    q: std::result::Result<Query<WindowQuery>, QueryRejection>,
) -> Response {
    if s.s.role < Role::Manager {
        return Redirect::to("/console/members").into_response();
    }
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let mut f = frame(&st, &s, "title.dashboard", "/console/");
    let (from_text, to_text) = (q.from.clone().unwrap_or_default(), q.to.clone().unwrap_or_default());
    let result = window(&q, today(&st)).and_then(|(from, to)| {
        let at = s.at(&st);
        build(&st, &at, s.v.lang, from, to).map(|r| (from, to, r))
    });
    match result {
        Ok((from, to, (summary, charts))) => {
            let tiers = summary.tier_mix.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let page = DashboardPage {
                f,
                from: from.to_string(),
                to: to.to_string(),
                figures: figures(&summary),
                charts: Some(charts),
                tiers,
            };
            html(StatusCode::OK, &page)
        }
        Err(e) if e.code == crate::error::Code::InvalidInput => {
            f.notice = Some(refused(&e));
            let page = DashboardPage {
                f,
                from: from_text,
                to: to_text,
                figures: Vec::new(),
                charts: None,
                tiers: Vec::new(),
            };
            html(status_of(&e), &page)
        }
        Err(e) => staff_error(&st, &s, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn windows_are_checked_and_cut_into_points() {
        let today = d("2026-03-31");
        let q = |f: &str, t: &str| WindowQuery {
            from: Some(f.into()),
            to: Some(t.into()),
        };
        assert_eq!(
            window(&WindowQuery::default(), today).unwrap(),
            (d("2026-03-02"), today)
        );
        assert!(window(&q("2026-04-01", "2026-03-01"), today)
            .unwrap_err()
            .message
            .contains("after"));
        assert!(window(&q("2026-02-30", ""), today)
            .unwrap_err()
            .message
            .contains("not a date"));
        assert!(window(&q("1990-01-01", "2026-01-01"), today).is_err());
        assert_eq!(buckets(d("2026-03-01"), d("2026-03-30")).len(), 30);
        let m = months(d("2026-01-15"), d("2026-04-10"));
        assert_eq!(m.len(), 4);
        assert_eq!((m[0].1, m[0].2), (d("2026-01-15"), d("2026-01-31")));
        assert_eq!((m[3].1, m[3].2), (d("2026-04-01"), d("2026-04-10")));
        assert_eq!(buckets(d("2025-01-01"), d("2025-12-31")).len(), 12);
    }
}
