//! The web console at `/console/` (interface.md 0.2 "The console"), on the terminal and
//! on the hub: server-rendered pages (askama templates under `templates/console/`, HTML
//! escaped by default), SVG charts drawn here, every asset compiled into the binary. No
//! page needs JavaScript; nothing is loaded from elsewhere.
//!
//! - `session`: the session cookie, the CSRF token, the idle timeout;
//! - `i18n`: the catalogue (zh-CN, en) and how a request's language is chosen;
//! - `charts`: the SVG charts;
//! - `assets`: the stylesheet, served with a long cache life under a content hash;
//! - `pages`: the handlers, one file per area.
//!
//! It sits beside `api`: it uses the engine (which checks every role again) and the
//! views, and the API's password check and lockout. The hub hands it what only the hub
//! has through [`HubOps`], so that nothing here imports the hub.

mod assets;
pub mod charts;
pub mod i18n;
mod pages;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::api::AppState;
use crate::engine::{Actor, At, ConflictView, Engine};
use crate::error::{Code, Error, Result};
use crate::model::Role;
use i18n::Lang;
use session::{Session, Sessions};

/// A terminal stream as the hub's terminals page shows it.
#[derive(Debug, Clone)]
pub struct TerminalRow {
    pub terminal_id: String,
    pub epoch: String,
    pub acked_seq: u64,
    pub records: u64,
    pub duplicates: u64,
    pub skipped: u64,
    pub untrusted_clock: u64,
    /// The last push or pull the hub accepted, if any.
    pub last_contact: Option<String>,
    /// Feed entries past its last pull (None: it never pulled).
    pub records_behind: Option<u64>,
}

/// What the hub gives its console beyond the engine.
pub trait HubOps: Send + Sync {
    fn engine(&self) -> &Engine;
    /// Whether `password` is the operators' token.
    fn operator_token_is(&self, password: &str) -> bool;
    fn terminals(&self) -> Result<Vec<TerminalRow>>;
    fn conflicts(&self) -> Result<Vec<ConflictView>>;
    fn resolve(&self, id: &str, keep: &str, merge: bool, by: Actor) -> Result<ConflictView>;
    /// Validates and publishes a ruleset's TOML: its version.
    fn publish(&self, text: &str) -> Result<u32>;
}

/// The staff id the hub's operator logs in with (the password is the operator token).
pub const OPERATOR: &str = "operator";

pub enum Face {
    Terminal(Arc<AppState>),
    Hub(Arc<dyn HubOps>),
}

pub struct Console {
    pub face: Face,
    pub sessions: Sessions,
    /// Served over HTTPS: cookies get `Secure`.
    pub secure: bool,
}

pub type Shared = Arc<Console>;

impl Console {
    pub fn terminal(api: Arc<AppState>, idle: Duration) -> Console {
        Console {
            face: Face::Terminal(api),
            sessions: Sessions::new(idle),
            secure: false,
        }
    }

    pub fn hub(ops: Arc<dyn HubOps>, idle: Duration, secure: bool) -> Console {
        Console {
            face: Face::Hub(ops),
            sessions: Sessions::new(idle),
            secure,
        }
    }

    pub fn engine(&self) -> &Engine {
        match &self.face {
            Face::Terminal(api) => &api.engine,
            Face::Hub(ops) => ops.engine(),
        }
    }

    pub fn is_hub(&self) -> bool {
        matches!(self.face, Face::Hub(_))
    }

    /// Engine work (reads of sled, commits that wait for an fdatasync, argon2) on the
    /// request's own thread, the runtime's other work moved aside (as the API does).
    pub fn run<T>(&self, f: impl FnOnce(&Engine) -> Result<T>) -> Result<T> {
        let r = tokio::task::block_in_place(|| f(self.engine()));
        if let Err(e) = &r {
            if e.code.is_fault() {
                tracing::error!("console: {e}");
            }
        }
        r
    }

    /// A staff id and password: the role, or why not. The API's lockout counts here too.
    pub fn check_password(&self, staff_id: &str, password: &str) -> Result<(Role, bool)> {
        match &self.face {
            Face::Terminal(api) => {
                tokio::task::block_in_place(|| api.sessions.check(&api.engine, staff_id, password)).map(|r| (r, false))
            }
            Face::Hub(ops) => {
                if staff_id == OPERATOR && ops.operator_token_is(password) {
                    Ok((Role::Owner, true))
                } else {
                    Err(Error::new(Code::Unauthorized, "wrong staff id or password"))
                }
            }
        }
    }
}

/// The console's routes; merged beside the POS API's (or served alone on `[console] listen`).
pub fn router(st: Shared) -> Router {
    use pages::*;
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(dashboard::page))
        .route(assets::CSS_PATH, get(assets::css))
        .route("/console/login", get(auth::form).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/members", get(members::search))
        .route("/console/members/{id}", get(members::detail))
        .route("/console/members/{id}/edit", post(members::edit))
        .route("/console/members/{id}/status", post(members::status))
        .route("/console/members/{id}/pin", post(members::pin))
        .route("/console/members/{id}/points", post(members::points))
        .route("/console/reports", get(reports::page))
        .route("/console/reports/summary.csv", get(reports::summary_csv))
        .route("/console/reports/retention.csv", get(reports::retention_csv))
        .route("/console/reports/campaigns.csv", get(reports::campaigns_csv))
        .route("/console/campaigns", get(campaigns::page))
        .route("/console/campaigns/publish", post(campaigns::publish))
        .route("/console/staff", get(staff::page))
        .route("/console/staff/add", post(staff::add))
        .route("/console/staff/{id}/disable", post(staff::disable))
        .route("/console/staff/{id}/password", post(staff::password))
        .route("/console/terminals", get(hub::terminals))
        .route("/console/conflicts", get(hub::conflicts))
        .route("/console/conflicts/{id}/resolve", post(hub::resolve))
        .route("/console/{*rest}", get(not_found).post(not_found))
        .layer(middleware::from_fn_with_state(st.clone(), frame_layer))
        .with_state(st)
}

async fn not_found(v: Visitor) -> Response {
    pages::error_page(&v, StatusCode::NOT_FOUND, &Error::new(Code::NotFound, "no such page"))
}

/// Picks the request's language (`?lang=`, else the cookie, else Accept-Language),
/// remembers a chosen one in a cookie, and sets the headers every console answer has.
async fn frame_layer(State(st): State<Shared>, mut req: Request, next: Next) -> Response {
    let asked = req.uri().query().and_then(i18n::lang_in_query);
    let lang = asked.unwrap_or_else(|| i18n::negotiate(req.headers()));
    req.extensions_mut().insert(lang);
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let took = started.elapsed();
    let h = resp.headers_mut();
    // The server's share of a page's time, for the benchmark and browsers' dev tools.
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={:.2}", took.as_secs_f64() * 1000.0)) {
        h.insert("server-timing", v);
    }
    if asked.is_some() {
        let c = session::set_cookie(session::LANG_COOKIE, lang.tag(), Some(365 * 24 * 3600), st.secure);
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Anyone on a console page: the language, the path, the headers (the login page, 404s).
pub struct Visitor {
    pub lang: Lang,
    pub path: String,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> std::result::Result<Visitor, Response> {
        Ok(Visitor {
            lang: parts.extensions.get::<Lang>().copied().unwrap_or_default(),
            path: parts.uri.path().to_string(),
            headers: parts.headers.clone(),
        })
    }
}

/// A signed-in staff member (or the hub's operator): the session, checked again against
/// the staff account on every request (disabled: the session ends; the role is the
/// account's now). Without one a page answers with the login page's address.
pub struct Staff {
    pub v: Visitor,
    pub token: String,
    pub s: Session,
}

impl Staff {
    pub fn actor(&self) -> Actor {
        Actor::new(&self.s.staff_id, self.s.role)
    }

    pub fn at(&self, st: &Console) -> At {
        st.engine().at(None).by(self.actor())
    }

    /// Refused with 403 unless the session has `role` (the engine checks again).
    pub fn require(&self, role: Role, what: &str) -> Result<()> {
        if self.s.role >= role {
            return Ok(());
        }
        Err(Error::new(
            Code::Forbidden,
            format!(
                "{what} needs the {} role; {} is {}",
                role.as_str(),
                self.s.staff_id,
                self.s.role.as_str()
            ),
        ))
    }

    /// A form's CSRF token against the session's: a POST without it or with another is
    /// refused with 403 before anything is read from it or changed.
    pub fn check_csrf(&self, sent: &str) -> Result<()> {
        if !sent.is_empty() && crate::service::http::same(sent.as_bytes(), self.s.csrf.as_bytes()) {
            return Ok(());
        }
        Err(Error::new(
            Code::Forbidden,
            "the form's CSRF token is missing or wrong; reload the page",
        ))
    }
}

fn to_login(v: &Visitor) -> Response {
    let next = if v.path.starts_with("/console/") {
        v.path.as_str()
    } else {
        "/console/"
    };
    Redirect::to(&format!("/console/login?next={}", i18n::url_encode(next))).into_response()
}

impl FromRequestParts<Shared> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> std::result::Result<Staff, Response> {
        let v = Visitor::from_request_parts(parts, st).await?;
        let Some(token) = session::cookie(&v.headers, session::SESSION_COOKIE).map(str::to_string) else {
            return Err(to_login(&v));
        };
        let Some(mut s) = st.sessions.get(&token) else {
            return Err(to_login(&v));
        };
        if !s.operator {
            let account = st.run(|e| e.store().staff(&s.staff_id));
            match account {
                Ok(Some(a)) if !a.disabled => match Role::parse(&a.role) {
                    Ok(role) => s.role = role,
                    Err(e) => return Err(pages::error_page(&v, StatusCode::INTERNAL_SERVER_ERROR, &e)),
                },
                Ok(_) => {
                    st.sessions.close(&token);
                    return Err(to_login(&v));
                }
                Err(e) => return Err(pages::error_page(&v, StatusCode::SERVICE_UNAVAILABLE, &e)),
            }
        }
        Ok(Staff { v, token, s })
    }
}
