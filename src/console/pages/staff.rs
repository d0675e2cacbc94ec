//! Staff accounts (owners, on the terminal): list, add, disable, set a password. A
//! disabled account's sessions end at once, in the console and in the API.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{csrf_refused, frame, html, refused, staff_error, status_of, Frame, Notice};
use crate::console::{Face, Shared, Staff};
use crate::engine::StaffView;
use crate::error::{Code, Error, Result};
use crate::model::Role;

#[derive(Template)]
#[template(path = "console/staff.html")]
struct StaffPage {
    f: Frame,
    staff: Vec<StaffView>,
    new_id: String,
    new_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DoneQuery {
    done: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct StaffForm {
    csrf: String,
    staff_id: String,
    name: String,
    role: String,
    password: String,
}

fn allowed(st: &Shared, s: &Staff) -> Result<()> {
    if st.is_hub() {
        return Err(Error::new(Code::NotFound, "staff accounts are kept at each terminal"));
    }
    s.require(Role::Owner, "managing staff")
}

fn staff_page(
    st: &Shared,
    s: &Staff,
    notice: Option<Notice>,
    status: StatusCode,
    sent: Option<&StaffForm>,
) -> Response {
    let at = s.at(st);
    let staff = match st.run(|e| e.list_staff(&at)) {
        Ok(v) => v,
        Err(e) => return staff_error(st, s, &e),
    };
    let mut f = frame(st, s, "title.staff", "/console/staff");
    f.notice = notice;
    let page = StaffPage {
        f,
        staff,
        new_id: sent.map(|x| x.staff_id.clone()).unwrap_or_default(),
        new_name: sent.map(|x| x.name.clone()).unwrap_or_default(),
    };
    html(status, &page)
}

pub async fn page(
    State(st): State<Shared>,
    s: Staff,
    q: std::result::Result<axum::extract::Query<DoneQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(e) = allowed(&st, &s) {
        return staff_error(&st, &s, &e);
    }
    let done = q.ok().and_then(|q| q.0.done);
    let notice = done.map(|_| Notice {
        ok: true,
        text: s.v.lang.t("done.other").to_string(),
    });
    staff_page(&st, &s, notice, StatusCode::OK, None)
}

/// The API's sessions of a staff id end too (a disabled account, a new password).
fn end_sessions(st: &Shared, staff_id: &str) {
    st.sessions.close_all(staff_id);
    if let Face::Terminal(api) = &st.face {
        api.sessions.close_all(staff_id);
    }
}

fn act(
    st: &Shared,
    s: &Staff,
    form: std::result::Result<Form<StaffForm>, FormRejection>,
    f: impl FnOnce(&StaffForm) -> Result<()>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if s.check_csrf(&form.csrf).is_err() {
        return csrf_refused(st, s);
    }
    if let Err(e) = allowed(st, s) {
        return staff_error(st, s, &e);
    }
    match f(&form) {
        Ok(()) => Redirect::to("/console/staff?done=1").into_response(),
        Err(e) if !e.code.is_fault() && e.code != Code::Forbidden => {
            staff_page(st, s, Some(refused(&e)), status_of(&e), Some(&form))
        }
        Err(e) => staff_error(st, s, &e),
    }
}

pub async fn add(
    State(st): State<Shared>,
    s: Staff,
    form: std::result::Result<Form<StaffForm>, FormRejection>,
) -> Response {
    let at = s.at(&st);
    act(&st, &s, form, |f| {
        let role = Role::parse(f.role.trim())?;
        st.run(|e| e.add_staff(f.staff_id.trim(), &f.name, role, &f.password, at))
            .map(|_| ())
    })
}

pub async fn disable(
    State(st): State<Shared>,
    s: Staff,
    Path(id): Path<String>,
    form: std::result::Result<Form<StaffForm>, FormRejection>,
) -> Response {
    let at = s.at(&st);
    act(&st, &s, form, |_| {
        st.run(|e| e.disable_staff(&id, at))?;
        end_sessions(&st, &id);
        Ok(())
    })
}

pub async fn password(
    State(st): State<Shared>,
    s: Staff,
    Path(id): Path<String>,
    form: std::result::Result<Form<StaffForm>, FormRejection>,
) -> Response {
    let at = s.at(&st);
    act(&st, &s, form, |f| {
        st.run(|e| e.set_staff_password(&id, &f.password, at))?;
        end_sessions(&st, &id);
        Ok(())
    })
}
