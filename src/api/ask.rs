//! What every handler starts from: who asks (the bearer token's staff member, or a
//! manager who approved inside the request), the `Idempotency-Key`, and the body.
//!
//! `auth` (the middleware) names the caller; [`Caller`] hands it to a handler without a
//! body, [`Asked`] with a JSON body. A body may carry `"approval": {"staff_id",
//! "password"}`: the request then acts with the approver's role, the approver as `by`
//! and the caller as `requested_by` (manager approval at the till).

use std::any::TypeId;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use super::{Shared, BODY_LIMIT};
use crate::engine::Actor;
use crate::error::{Error, Result};

/// The caller of a request without a body.
pub struct Caller {
    pub actor: Actor,
    pub key: Option<String>,
}

/// The caller of a request with a JSON body, the body, and the key.
pub struct Asked<T> {
    pub body: T,
    pub actor: Actor,
    pub key: Option<String>,
}

fn actor_of(parts: &Parts) -> Result<Actor> {
    parts
        .extensions
        .get::<Actor>()
        .cloned()
        .ok_or_else(|| Error::internal("a route without the auth layer asked who calls"))
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &Shared) -> Result<Caller, Response> {
        Ok(Caller {
            actor: actor_of(parts).map_err(IntoResponse::into_response)?,
            key: idempotency_key(&parts.headers).map_err(IntoResponse::into_response)?,
        })
    }
}

/// A manager's (or owner's) approval inside a request body: the request acts with
/// their role, as them, and the record names the caller as `requested_by`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Approval {
    #[schema(schema_with = crate::views::schema::staff_id)]
    staff_id: String,
    password: String,
}

impl<T: DeserializeOwned + Send + 'static> FromRequest<Shared> for Asked<T> {
    type Rejection = Response;

    async fn from_request(req: Request, st: &Shared) -> Result<Asked<T>, Response> {
        let (mut parts, body) = req.into_parts();
        let caller = Caller::from_request_parts(&mut parts, st).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), st)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    let e = Error::invalid(format!("request body over {BODY_LIMIT} bytes"));
                    (StatusCode::PAYLOAD_TOO_LARGE, Json(e.to_json())).into_response()
                } else {
                    Error::invalid(r.body_text()).into_response()
                }
            })?;
        let bad = |e: serde_json::Error| Error::invalid(format!("bad JSON body: {e}")).into_response();
        // No body at all reads as `{}` where the body is optional (a POST that needs
        // nothing but may carry an approval); elsewhere it is refused, as the description
        // says the body is required (an empty PATCH is a client's mistake, not a no-op).
        let optional = TypeId::of::<T>() == TypeId::of::<Nothing>();
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        let mut value: serde_json::Value = if blank && optional {
            serde_json::Value::Object(Default::default())
        } else if blank {
            return Err(Error::invalid("this request needs a JSON body").into_response());
        } else {
            serde_json::from_slice(&bytes).map_err(bad)?
        };
        let approval = match value.as_object_mut().and_then(|o| o.remove("approval")) {
            None => None,
            Some(a) => Some(serde_json::from_value::<Approval>(a).map_err(|e| {
                Error::invalid(format!("approval must be {{\"staff_id\", \"password\"}}: {e}")).into_response()
            })?),
        };
        let body: T = serde_json::from_value(value).map_err(bad)?;
        let actor = match approval {
            None => caller.actor,
            Some(a) => {
                // argon2: off the async threads, like every engine call.
                let role = tokio::task::block_in_place(|| st.sessions.check(&st.engine, &a.staff_id, &a.password))
                    .map_err(|e| {
                        st.metrics.refusal(e.code);
                        e.into_response()
                    })?;
                Actor {
                    by: a.staff_id,
                    role,
                    requested_by: Some(caller.actor.by),
                }
            }
        };
        Ok(Asked {
            body,
            actor,
            key: caller.key,
        })
    }
}

/// The `Idempotency-Key` a request must carry (a checkout's): without it the request is
/// refused before its body is read, so that no approval inside it is checked (and a
/// wrong one counted towards the approver's lock) for a request that cannot go ahead.
pub struct RequiredKey(pub String);

impl FromRequestParts<Shared> for RequiredKey {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<RequiredKey, Response> {
        let refused = match idempotency_key(&parts.headers) {
            Ok(Some(k)) => return Ok(RequiredKey(k)),
            Ok(None) => Error::invalid("the Idempotency-Key header is required"),
            Err(e) => e,
        };
        st.metrics.refusal(refused.code);
        Err(refused.into_response())
    }
}

/// The body of a POST that needs none (it may still carry an approval).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

/// The `Idempotency-Key` header: none, or the key (any UTF-8 text without control
/// characters; the engine bounds its length).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match std::str::from_utf8(v.as_bytes()) {
        Ok(k) if !k.trim().is_empty() => Ok(Some(k.trim().to_string())),
        Ok(_) => Err(Error::invalid("the Idempotency-Key header is empty")),
        Err(_) => Err(Error::invalid("the Idempotency-Key header is not UTF-8 text")),
    }
}
