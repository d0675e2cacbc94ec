//! Sessions and staff accounts over the API (interface.md 0.2 "Staff and roles").

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{Busy, StaffParam};
use super::sessions::Opened;
use super::{blocking, reply, Asked, Caller, Nothing, Shared, BODY_LIMIT};
use crate::engine::StaffView;
use crate::error::{Code, Error};
use crate::model::Role;
use crate::service::http;
use crate::service::openapi::ErrorDoc;
use crate::views::schema;

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(list, add))
        .routes(routes!(disable))
        .routes(routes!(password))
}

/// What `check_password` takes: 8 to 128 characters, none of them a control character.
fn password_schema() -> Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(crate::engine::PASSWORD_MIN))
        .max_length(Some(crate::engine::PASSWORD_MAX))
        .pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))
        .build()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub staff_id: String,
    pub password: String,
}

/// `POST /v1/sessions`: needs no bearer token.
#[utoipa::path(post, path = "/v1/sessions", operation_id = "login",
    description = "Trades a staff id and password for a session token that acts with that staff member's role for 8 hours; needs no bearer token. 5 wrong passwords in a row lock the staff id for 15 minutes.",
    request_body = LoginBody,
    responses(
        (status = 200, description = "The session.", body = Opened),
        (status = 400, description = "`invalid_input`: the body.", body = ErrorDoc),
        (status = 401, description = "`unauthorized`: wrong staff id or password (or a disabled account).", body = ErrorDoc),
        (status = 423, description = "`staff_locked`.", body = ErrorDoc),
    ))]
pub async fn login(
    State(st): State<Shared>,
    b: std::result::Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b = match b {
        Ok(Json(b)) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let e = Error::invalid(format!("request body over {BODY_LIMIT} bytes"));
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(e.to_json())).into_response();
        }
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
#[utoipa::path(delete, path = "/v1/sessions/current", operation_id = "logout",
    description = "Ends the session whose token the request carries.",
    responses(
        (status = 204, description = "Ended."),
        (status = 400, description = "`invalid_input`: the token is not a session's (the POS token, say).", body = ErrorDoc),
    ))]
async fn logout(State(st): State<Shared>, headers: HeaderMap) -> Response {
    match http::bearer(&headers) {
        Some(t) if st.sessions.close(t) => StatusCode::NO_CONTENT.into_response(),
        _ => Error::invalid("this request did not come with a session token").into_response(),
    }
}

fn role_schema() -> Object {
    schema::string_enum([Role::Cashier, Role::Manager, Role::Owner].map(Role::as_str))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffBody {
    /// Not `pos`, `cli`, `system` or `hub`.
    #[schema(schema_with = schema::staff_id)]
    pub staff_id: String,
    #[schema(schema_with = schema::name)]
    pub name: String,
    #[schema(schema_with = role_schema)]
    pub role: String,
    #[schema(schema_with = password_schema)]
    pub password: String,
}

#[utoipa::path(post, path = "/v1/staff", operation_id = "add_staff",
    description = "A new staff account (owner); the password is kept only as an argon2id hash.",
    request_body = StaffBody,
    responses(
        (status = 201, description = "The account.", body = StaffView),
        (status = 400, description = "`invalid_input`: a reserved or malformed id, the name, role or password.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs the owner.", body = ErrorDoc),
        (status = 409, description = "`member_exists`: the staff id exists already.", body = ErrorDoc),
        Busy,
    ))]
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

#[derive(Serialize, ToSchema)]
struct StaffList {
    staff: Vec<StaffView>,
}

#[utoipa::path(get, path = "/v1/staff", operation_id = "list_staff",
    description = "Every staff account (owner).",
    responses(
        (status = 200, description = "The accounts.", body = StaffList),
        (status = 403, description = "`forbidden`: needs the owner.", body = ErrorDoc),
    ))]
async fn list(State(st): State<Shared>, c: Caller) -> Response {
    reply(blocking(&st, move |e| {
        Ok(StaffList {
            staff: e.list_staff(&e.at(None).by(c.actor))?,
        })
    }))
}

#[utoipa::path(post, path = "/v1/staff/{id}/disable", operation_id = "disable_staff",
    description = "Disables a staff account (owner) and ends its sessions. The body is optional: only an `approval`.",
    params(StaffParam),
    request_body = Option<Nothing>,
    responses(
        (status = 200, description = "The account.", body = StaffView),
        (status = 400, description = "`invalid_input`: the body.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs the owner.", body = ErrorDoc),
        (status = 404, description = "`not_found`: no such staff id.", body = ErrorDoc),
        Busy,
    ))]
async fn disable(State(st): State<Shared>, Path(id): Path<String>, a: Asked<Nothing>) -> Response {
    let st2 = st.clone();
    reply(blocking(&st, move |e| {
        let v = e.disable_staff(&id, e.at(None).by(a.actor))?;
        st2.sessions.close_all(&id);
        Ok(v)
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    #[schema(schema_with = password_schema)]
    pub password: String,
}

#[utoipa::path(post, path = "/v1/staff/{id}/password", operation_id = "set_staff_password",
    description = "Sets a staff member's password (owner) and ends their sessions.",
    params(StaffParam),
    request_body = PasswordBody,
    responses(
        (status = 200, description = "The account.", body = StaffView),
        (status = 400, description = "`invalid_input`: the password, the body.", body = ErrorDoc),
        (status = 403, description = "`forbidden`: needs the owner.", body = ErrorDoc),
        (status = 404, description = "`not_found`: no such staff id.", body = ErrorDoc),
        Busy,
    ))]
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
