//! The description `GET /v1/openapi.json` serves, beyond what the handlers' attributes
//! and the types' derives give: the document's head, the parameters the handlers read
//! by hand, and what every route shares (the bearer scheme and its 401, 413 on a body,
//! 500 on a fault).

use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::IntoParams;

use super::CardEvent;
use crate::service::http::ErrorDoc;
use crate::views::schema;

/// The name of the bearer scheme in the description.
pub(super) const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "loyaltyd POS API",
        description = "The terminal's POS API (interface.md). Money and points are integers \
            (minor units, points), written without a fraction; instants are RFC 3339 strings \
            with an offset. Every answer that is not 2xx carries the error document, except \
            /v1/health's 503.",
    ),
    components(schemas(ErrorDoc, CardEvent))
)]
pub(super) struct ApiDoc;

/// The optional `Idempotency-Key` header of a change (described here, read by
/// `idempotency_key`).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct KeyHeader {
    /// The same key with the same request answers the first answer again (same status,
    /// `replayed: true` where the shape has it); with another request, 409
    /// `idempotency_conflict`. 1 to 128 characters, no control characters.
    #[param(rename = "Idempotency-Key", value_type = String, required = false, min_length = 1, max_length = 128)]
    key: Option<String>,
}

/// The `Idempotency-Key` header a checkout needs (400 `invalid_input` without it).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct RequiredKeyHeader {
    /// The same key with the same sale answers the first receipt again with
    /// `replayed: true`; with another sale, 409 `idempotency_conflict`. 1 to 128
    /// characters, no control characters.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 128)]
    key: String,
}

/// A card number in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct CardParam {
    /// Canonicalised as interface.md says: separators stripped, letters upper case.
    #[param(schema_with = schema::card, required = true)]
    card: String,
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

fn refusal(description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(<ErrorDoc as utoipa::ToSchema>::name())))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
        .into()
}

fn answers(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| refusal(description));
}

/// Operations behind the bearer token: the scheme, and its refusal.
pub fn guarded(doc: &mut OpenApi, scheme: &str) {
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            op.security = Some(vec![SecurityRequirement::new(scheme, Vec::<String>::new())]);
            answers(op, "401", "`unauthorized`: the bearer token is missing or wrong.");
        }
    }
}

/// Operations that never call the engine, so never answer 500.
const NO_FAULT: [&str; 3] = ["openapi_json", "events", "metrics"];

/// Answers every operation may give; path parameters are required (OpenAPI says
/// so, and a route without one is another route); the bearer scheme itself.
pub fn finish(doc: &mut OpenApi, scheme: &str) {
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            for p in op.parameters.iter_mut().flatten() {
                if p.parameter_in == ParameterIn::Path {
                    p.required = Required::True;
                }
            }
            if op.request_body.is_some() {
                answers(op, "413", "`invalid_input`: the body is over 64 KiB.");
            }
            if !op.operation_id.as_deref().is_some_and(|id| NO_FAULT.contains(&id)) {
                answers(op, "500", "`internal`: a fault of the machine, not of the request.");
            }
        }
    }
    let components = doc.components.get_or_insert_with(Components::new);
    components.add_security_scheme(
        scheme,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
}
