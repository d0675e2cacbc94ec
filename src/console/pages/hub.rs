//! The hub's own pages: its terminals (what each has pushed, clock trust) and the
//! conflicts of offline enrolments, with their resolution.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{csrf_refused, frame, html, refused, staff_error, status_of, Frame, Notice};
use crate::console::{Face, HubOps, Shared, Staff, TerminalRow};
use crate::engine::ConflictView;
use crate::error::{Code, Error, Result};
use crate::model::Role;

#[derive(Template)]
#[template(path = "console/terminals.html")]
struct TerminalsPage {
    f: Frame,
    terminals: Vec<TerminalRow>,
}

#[derive(Template)]
#[template(path = "console/conflicts.html")]
struct ConflictsPage {
    f: Frame,
    conflicts: Vec<ConflictView>,
}

impl ConflictsPage {
    fn member_href(&self, id: &str) -> String {
        super::members::member_href(id)
    }

    fn action(&self, id: &str) -> String {
        format!("/console/conflicts/{}/resolve", crate::console::i18n::url_encode(id))
    }
}

fn ops<'a>(st: &'a Shared, s: &Staff) -> Result<&'a dyn HubOps> {
    match &st.face {
        Face::Hub(ops) => {
            s.require(Role::Owner, "the hub's operator pages")?;
            Ok(ops.as_ref())
        }
        Face::Terminal(_) => Err(Error::new(Code::NotFound, "this page is the hub's")),
    }
}

pub async fn terminals(State(st): State<Shared>, s: Staff) -> Response {
    let r = ops(&st, &s).and_then(|o| tokio::task::block_in_place(|| o.terminals()));
    match r {
        Ok(terminals) => {
            let f = frame(&st, &s, "title.terminals", "/console/terminals");
            html(StatusCode::OK, &TerminalsPage { f, terminals })
        }
        Err(e) => staff_error(&st, &s, &e),
    }
}

fn conflicts_page(st: &Shared, s: &Staff, notice: Option<Notice>, status: StatusCode) -> Response {
    let r = ops(st, s).and_then(|o| tokio::task::block_in_place(|| o.conflicts()));
    match r {
        Ok(conflicts) => {
            let mut f = frame(st, s, "title.conflicts", "/console/conflicts");
            f.notice = notice;
            html(status, &ConflictsPage { f, conflicts })
        }
        Err(e) => staff_error(st, s, &e),
    }
}

pub async fn conflicts(State(st): State<Shared>, s: Staff) -> Response {
    conflicts_page(&st, &s, None, StatusCode::OK)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResolveForm {
    csrf: String,
    keep: String,
    merge: Option<String>,
}

pub async fn resolve(
    State(st): State<Shared>,
    s: Staff,
    Path(id): Path<String>,
    form: std::result::Result<Form<ResolveForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if s.check_csrf(&form.csrf).is_err() {
        return csrf_refused(&st, &s);
    }
    let o = match ops(&st, &s) {
        Ok(o) => o,
        Err(e) => return staff_error(&st, &s, &e),
    };
    let merge = form.merge.is_some();
    match tokio::task::block_in_place(|| o.resolve(&id, form.keep.trim(), merge, s.actor())) {
        Ok(_) => Redirect::to("/console/conflicts").into_response(),
        Err(e) if !e.code.is_fault() => {
            let status = status_of(&e);
            conflicts_page(&st, &s, Some(refused(&e)), status)
        }
        Err(e) => staff_error(&st, &s, &e),
    }
}
