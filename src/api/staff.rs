//! Sessions and staff accounts over the API (interface.md 0.2 "Staff and roles").

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{blocking, reply, Asked, Caller, Nothing, Shared};
use crate::error::{Code, Error};
use crate::model::Role;
use crate::service::http;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/sessions/current", axum::routing::delete(logout))
        .route("/v1/staff", get(list).post(add))
        .route("/v1/staff/{id}/disable", post(disable))
        .route("/v1/staff/{id}/password", post(password))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub staff_id: String,
    pub password: String,
}

/// `POST /v1/sessions`: needs no bearer token.
pub async fn login(
    State(st): State<Shared>,
    b: std::result::Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b = match b {
        Ok(Json(b)) => b,
        Err(e) => return Error::invalid(format!("bad JSON body: {}", e.body_text())).into_response(),
    };
    let st2 = st.clone();
    reply(blocking(&st, move |e| {
        let role = st2.sessions.check(e, &b.staff_id, &b.password)?;
        let rules = e.rules();
        Ok(st2.sessions.open(&b.staff_id, role, e.now(), &rules.timezone))
    }))
}

/// `DELETE /v1/sessions/current`: ends the session the request came with.
async fn logout(State(st): State<Shared>, headers: HeaderMap) -> Response {
    match http::bearer(&headers) {
        Some(t) if st.sessions.close(t) => StatusCode::NO_CONTENT.into_response(),
        _ => Error::invalid("this request did not come with a session token").into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffBody {
    pub staff_id: String,
    pub name: String,
    pub role: String,
    pub password: String,
}

async fn add(State(st): State<Shared>, a: Asked<StaffBody>) -> Response {
    let b = a.body;
    let role = match Role::parse(&b.role) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match blocking(&st, move |e| {
        e.add_staff(&b.staff_id, &b.name, role, &b.password, e.at(None).by(a.actor))
    }) {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list(State(st): State<Shared>, c: Caller) -> Response {
    reply(blocking(&st, move |e| {
        Ok(serde_json::json!({ "staff": e.list_staff(&e.at(None).by(c.actor))? }))
    }))
}

async fn disable(State(st): State<Shared>, Path(id): Path<String>, a: Asked<Nothing>) -> Response {
    let st2 = st.clone();
    reply(blocking(&st, move |e| {
        let v = e.disable_staff(&id, e.at(None).by(a.actor))?;
        st2.sessions.close_all(&id);
        Ok(v)
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub password: String,
}

async fn password(State(st): State<Shared>, Path(id): Path<String>, a: Asked<PasswordBody>) -> Response {
    let st2 = st.clone();
    reply(blocking(&st, move |e| {
        if id.is_empty() {
            return Err(Error::new(Code::NotFound, "no staff id"));
        }
        let v = e.set_staff_password(&id, &a.body.password, e.at(None).by(a.actor))?;
        st2.sessions.close_all(&id);
        Ok(v)
    }))
}
