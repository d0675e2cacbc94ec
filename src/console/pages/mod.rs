//! The console's pages: what every page shares (the frame around it, notices, the
//! error page, money and dates as shown), then one file per area.

pub mod auth;
pub mod campaigns;
pub mod dashboard;
pub mod hub;
pub mod members;
pub mod reports;
pub mod staff;

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::i18n::{self, Lang};
use super::{Shared, Staff, Visitor};
use crate::error::{Code, Error};
use crate::model::Role;

pub struct Nav {
    pub href: &'static str,
    pub key: &'static str,
    pub current: bool,
}

/// A line above a page's content: what a form did, or why it was refused.
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

impl Notice {
    pub fn class(&self) -> &'static str {
        if self.ok {
            "ok"
        } else {
            "bad"
        }
    }
}

/// What the frame of every page shows: who, the navigation for that role, the CSRF
/// token for its forms, the language.
pub struct Frame {
    pub lang: Lang,
    pub path: String,
    pub title: &'static str,
    pub who: String,
    pub role: Option<Role>,
    pub csrf: String,
    pub hub: bool,
    pub nav: Vec<Nav>,
    pub notice: Option<Notice>,
}

impl Frame {
    pub fn t(&self, key: &str) -> &'static str {
        i18n::t(self.lang, key)
    }

    pub fn lang_tag(&self) -> &'static str {
        self.lang.tag()
    }

    pub fn css(&self) -> String {
        super::assets::css_href()
    }

    pub fn signed_in(&self) -> bool {
        self.role.is_some()
    }

    pub fn role_key(&self) -> &'static str {
        match self.role {
            Some(Role::Owner) if self.hub => "role.operator",
            Some(r) => role_key(r),
            None => "role.none",
        }
    }

    pub fn face_key(&self) -> &'static str {
        if self.hub {
            "face.hub"
        } else {
            "face.terminal"
        }
    }

    /// A form needs a manager's approval fields for this role.
    pub fn needs_approval(&self) -> bool {
        self.role.is_some_and(|r| r < Role::Manager)
    }

    /// The same page in the other language.
    pub fn lang_href(&self, tag: &str) -> String {
        format!("{}?lang={tag}", self.path)
    }
}

pub fn role_key(r: Role) -> &'static str {
    match r {
        Role::Cashier => "role.cashier",
        Role::Manager => "role.manager",
        Role::Owner => "role.owner",
    }
}

/// A frame for a signed-in page.
pub fn frame(st: &Shared, s: &Staff, title: &'static str, current: &str) -> Frame {
    let hub = st.is_hub();
    let role = s.s.role;
    let mut nav = Vec::new();
    let mut add = |href: &'static str, key: &'static str| {
        nav.push(Nav {
            href,
            key,
            current: href == current,
        })
    };
    if role >= Role::Manager {
        add("/console/", "nav.dashboard");
    }
    add("/console/members", "nav.members");
    add("/console/campaigns", "nav.campaigns");
    if role >= Role::Manager {
        add("/console/reports", "nav.reports");
    }
    if role >= Role::Owner && !hub {
        add("/console/staff", "nav.staff");
    }
    if hub {
        add("/console/terminals", "nav.terminals");
        add("/console/conflicts", "nav.conflicts");
    }
    Frame {
        lang: s.v.lang,
        path: s.v.path.clone(),
        title,
        who: s.s.staff_id.clone(),
        role: Some(role),
        csrf: s.s.csrf.clone(),
        hub,
        nav,
        notice: None,
    }
}

/// A frame for a page seen without a session (login, a 404 before login).
pub fn bare_frame(v: &Visitor, title: &'static str) -> Frame {
    Frame {
        lang: v.lang,
        path: v.path.clone(),
        title,
        who: String::new(),
        role: None,
        csrf: String::new(),
        hub: false,
        nav: Vec::new(),
        notice: None,
    }
}

/// A rendered page with its status.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("console: a template failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error: a template failed").into_response()
        }
    }
}

/// An error as a reader sees it: the code's phrase in their language, then the detail.
pub fn error_text(lang: Lang, e: &Error) -> String {
    let key = format!("err.{}", e.code.as_str());
    let phrase = i18n::lookup(lang, &key).unwrap_or_else(|| i18n::t(lang, "err.other"));
    format!("{phrase}: {}", e.message)
}

pub fn status_of(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub fn refused(e: &Error) -> Notice {
    Notice {
        ok: false,
        text: e.message.clone(),
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    f: Frame,
    message: String,
}

/// The error page for a visitor (signed in or not).
pub fn error_page(v: &Visitor, status: StatusCode, e: &Error) -> Response {
    let f = bare_frame(v, "title.error");
    let message = error_text(v.lang, e);
    html(status, &ErrorPage { f, message })
}

/// The error page inside the signed-in frame.
pub fn staff_error(st: &Shared, s: &Staff, e: &Error) -> Response {
    let f = frame(st, s, "title.error", "");
    let message = error_text(s.v.lang, e);
    html(status_of(e), &ErrorPage { f, message })
}

/// A CSRF refusal (403): nothing was read from the form or changed.
pub fn csrf_refused(st: &Shared, s: &Staff) -> Response {
    staff_error(
        st,
        s,
        &Error::new(
            Code::Forbidden,
            "the form's CSRF token is missing or wrong; reload the page",
        ),
    )
}

/// Money in minor units as shown: `1234.56`, integer arithmetic.
pub fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let a = minor.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// A basis-point rate as a percentage with two decimals.
pub fn percent(bp: i64) -> String {
    let sign = if bp < 0 { "-" } else { "" };
    let a = bp.unsigned_abs();
    format!("{sign}{}.{:02}%", a / 100, a % 100)
}

/// An absent form field, or a blank one.
pub fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|v| v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_rates_are_integers_shown() {
        assert_eq!(money(123456), "1234.56");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(0), "0.00");
        assert_eq!(percent(3333), "33.33%");
    }
}
