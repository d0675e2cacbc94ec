//! Campaigns: the ruleset's promotions, coupon types, activities, triggers and group
//! buys (every role). On the hub an operator edits the ruleset's TOML and publishes a
//! new version, validated as the CLI validates a ruleset (the same messages).

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{csrf_refused, frame, html, money, refused, staff_error, status_of, Frame, Notice};
use crate::console::{Face, Shared, Staff};
use crate::error::{Code, Error};
use crate::model::Role;

/// One line of a table: an id and what it does, in the ruleset's own terms.
pub struct Row {
    pub id: String,
    pub what: String,
}

#[derive(Template)]
#[template(path = "console/campaigns.html")]
struct CampaignsPage {
    f: Frame,
    version: u32,
    /// (title key, rows) per kind of campaign.
    sections: Vec<(&'static str, Vec<Row>)>,
    /// The hub's editor: the TOML shown (the published text, or what was sent).
    editor: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Done {
    done: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PublishForm {
    csrf: String,
    ruleset: String,
}

/// A campaign window as a line: dates, weekdays, tiers; "always" when unbounded.
fn window_text(w: &crate::rules::ruleset::Window) -> String {
    let mut parts = Vec::new();
    match (w.starts, w.ends) {
        (None, None) => {}
        (s, e) => parts.push(format!(
            "{} .. {}",
            s.map(|d| d.to_string()).unwrap_or_default(),
            e.map(|d| d.to_string()).unwrap_or_default()
        )),
    }
    if !w.weekdays.is_empty() {
        parts.push(w.weekdays.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" "));
    }
    if !w.tiers.is_empty() {
        parts.push(format!("tiers {}", w.tiers.join(", ")));
    }
    if parts.is_empty() {
        "always".to_string()
    } else {
        parts.join("; ")
    }
}

fn page_of(st: &Shared, s: &Staff, notice: Option<Notice>, status: StatusCode, sent: Option<String>) -> Response {
    let rules = st.engine().rules();
    let rows = |v: Vec<(String, String)>| v.into_iter().map(|(id, what)| Row { id, what }).collect();
    let editor = match &st.face {
        Face::Hub(_) if s.s.role >= Role::Owner => Some(match sent {
            Some(t) => t,
            None => match st.run(|e| e.store().published_ruleset()) {
                Ok(Some((text, _))) => text,
                Ok(None) => String::new(),
                Err(e) => return staff_error(st, s, &e),
            },
        }),
        _ => None,
    };
    let mut f = frame(st, s, "title.campaigns", "/console/campaigns");
    f.notice = notice;
    let page = CampaignsPage {
        f,
        version: rules.version,
        sections: vec![
            (
                "campaigns.promotions",
                rows(
                    rules
                        .promotions
                        .iter()
                        .map(|p| {
                            (
                                p.id.clone(),
                                format!("{:?}; {:?}; {}", p.kind, p.scope, window_text(&p.window)),
                            )
                        })
                        .collect(),
                ),
            ),
            (
                "campaigns.coupons",
                rows(
                    rules
                        .coupon_types
                        .iter()
                        .map(|c| {
                            let exchange = c
                                .exchange_points
                                .map(|p| format!("; exchange {p} points"))
                                .unwrap_or_default();
                            (
                                c.id.clone(),
                                format!(
                                    "{:?}; min {}; {} days{exchange}",
                                    c.value,
                                    money(c.min_minor),
                                    c.valid_days
                                ),
                            )
                        })
                        .collect(),
                ),
            ),
            (
                "campaigns.activities",
                rows(
                    rules
                        .activities
                        .iter()
                        .map(|a| {
                            (
                                a.id.clone(),
                                format!("{} points; {}/day; {} in all", a.points, a.max_per_day, a.max_total),
                            )
                        })
                        .collect(),
                ),
            ),
            (
                "campaigns.triggers",
                rows(
                    rules
                        .triggers
                        .iter()
                        .map(|t| (t.id.clone(), format!("{:?} -> coupon {}", t.on, t.coupon)))
                        .collect(),
                ),
            ),
            (
                "campaigns.group_buys",
                rows(
                    rules
                        .group_buys
                        .iter()
                        .map(|g| {
                            (
                                g.id.clone(),
                                format!(
                                    "{} at {} for {} within {} h",
                                    g.sku,
                                    money(g.group_price_minor),
                                    g.size,
                                    g.window_hours
                                ),
                            )
                        })
                        .collect(),
                ),
            ),
            (
                "campaigns.campaigns",
                rows(
                    rules
                        .campaigns
                        .iter()
                        .map(|c| {
                            (
                                c.id.clone(),
                                format!(
                                    "x{} bp, +{} points; {}",
                                    c.multiplier_bp,
                                    c.bonus_points,
                                    window_text(&c.window)
                                ),
                            )
                        })
                        .collect(),
                ),
            ),
        ],
        editor,
    };
    html(status, &page)
}

pub async fn page(
    State(st): State<Shared>,
    s: Staff,
    q: std::result::Result<axum::extract::Query<Done>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let notice = q.ok().and_then(|q| q.0.done).map(|v| Notice {
        ok: true,
        text: format!("{} {v}", s.v.lang.t("done.published")),
    });
    page_of(&st, &s, notice, StatusCode::OK, None)
}

pub async fn publish(
    State(st): State<Shared>,
    s: Staff,
    form: std::result::Result<Form<PublishForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if s.check_csrf(&form.csrf).is_err() {
        return csrf_refused(&st, &s);
    }
    let Face::Hub(ops) = &st.face else {
        return staff_error(
            &st,
            &s,
            &Error::new(Code::Forbidden, "a terminal takes its ruleset from the hub"),
        );
    };
    if let Err(e) = s.require(Role::Owner, "publishing a ruleset") {
        return staff_error(&st, &s, &e);
    }
    // Browsers send a textarea's line breaks as CRLF.
    let text = form.ruleset.replace("\r\n", "\n");
    match tokio::task::block_in_place(|| ops.publish(&text)) {
        Ok(version) => {
            tracing::info!("console: {} published ruleset version {version}", s.s.staff_id);
            Redirect::to(&format!("/console/campaigns?done={version}")).into_response()
        }
        Err(e) if !e.code.is_fault() => page_of(&st, &s, Some(refused(&e)), status_of(&e), Some(text)),
        Err(e) => staff_error(&st, &s, &e),
    }
}
