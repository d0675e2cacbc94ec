//! Login and logout. The login form carries a CSRF token too (double submit: the same
//! random value in a cookie and in the form), so that another site cannot sign a
//! browser in as someone else.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{bare_frame, csrf_refused, error_text, html, Frame, Notice};
use crate::console::session::{self, random_token, LOGIN_COOKIE, SESSION_COOKIE};
use crate::console::{Shared, Staff, Visitor};
use crate::error::{Code, Error};
use crate::model::Role;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    f: Frame,
    csrf: String,
    next: String,
    staff_id: String,
    hub: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    staff_id: String,
    password: String,
    csrf: String,
    next: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfForm {
    pub csrf: String,
}

/// Only a console page of this server: never elsewhere, whatever `next` says.
fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with("/console/") && !next.contains("//") && !next.contains('\\');
    ok.then_some(next)
}

fn login_page(
    st: &Shared,
    v: &Visitor,
    status: StatusCode,
    next: &str,
    staff_id: &str,
    notice: Option<Notice>,
) -> Response {
    let token = random_token();
    let mut f = bare_frame(v, "title.login");
    f.hub = st.is_hub();
    f.notice = notice;
    let page = LoginPage {
        f,
        csrf: token.clone(),
        next: next.to_string(),
        staff_id: staff_id.to_string(),
        hub: st.is_hub(),
    };
    let mut resp = html(status, &page);
    let c = session::set_cookie(LOGIN_COOKIE, &token, Some(3600), st.secure);
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn form(State(st): State<Shared>, v: Visitor, q: Result<Query<NextQuery>, QueryRejection>) -> Response {
    let next = q.ok().and_then(|Query(q)| q.next).unwrap_or_default();
    let next = safe_next(&next).unwrap_or("").to_string();
    login_page(&st, &v, StatusCode::OK, &next, "", None)
}

pub async fn login(State(st): State<Shared>, v: Visitor, form: Result<Form<LoginForm>, FormRejection>) -> Response {
    let f = form.map(|Form(f)| f).unwrap_or_default();
    let expected = session::cookie(&v.headers, LOGIN_COOKIE).unwrap_or("");
    if f.csrf.is_empty() || !crate::service::http::same(f.csrf.as_bytes(), expected.as_bytes()) {
        let e = Error::new(
            Code::Forbidden,
            "the login form's CSRF token is missing or wrong; reload the page",
        );
        let notice = Notice {
            ok: false,
            text: error_text(v.lang, &e),
        };
        return login_page(&st, &v, StatusCode::FORBIDDEN, &f.next, &f.staff_id, Some(notice));
    }
    let staff_id = f.staff_id.trim().to_string();
    let (role, operator) = match st.check_password(&staff_id, &f.password) {
        Ok(x) => x,
        Err(e) => {
            let status = super::status_of(&e);
            let notice = Notice {
                ok: false,
                text: error_text(v.lang, &e),
            };
            return login_page(&st, &v, status, &f.next, &staff_id, Some(notice));
        }
    };
    let token = st.sessions.open(&staff_id, role, operator);
    tracing::info!("console: {staff_id} signed in ({})", role.as_str());
    let home = if role >= Role::Manager {
        "/console/"
    } else {
        "/console/members"
    };
    let to = safe_next(&f.next).unwrap_or(home);
    let mut resp = Redirect::to(to).into_response();
    let h = resp.headers_mut();
    for c in [
        session::set_cookie(SESSION_COOKIE, &token, None, st.secure),
        session::set_cookie(LOGIN_COOKIE, "", Some(0), st.secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

pub async fn logout(State(st): State<Shared>, s: Staff, form: Result<Form<CsrfForm>, FormRejection>) -> Response {
    let f = form.map(|Form(f)| f).unwrap_or_default();
    if s.check_csrf(&f.csrf).is_err() {
        return csrf_refused(&st, &s);
    }
    st.sessions.close(&s.token);
    let mut resp = Redirect::to("/console/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(SESSION_COOKIE, "", Some(0), st.secure)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(safe_next("/console/members"), Some("/console/members"));
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/console//evil",
            "/v1/members",
            "/console/\\x",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }
}
