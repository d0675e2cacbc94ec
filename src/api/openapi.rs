//! The terminal's description, beyond what the handlers' attributes and the types'
//! derives give: the document's head, the parameters the handlers read by hand, the
//! manager approval every JSON body may carry, and the answers shared by many routes.

use std::collections::BTreeMap;

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, OpenApi, Ref, RefOr, Required, Response};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::ask::Approval;
use super::CardEvent;
use crate::service::openapi::{self as shared, ErrorDoc};
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
            /v1/health's 503. The bearer token is the POS token of the config (it acts as \
            staff `pos` with `[api] pos_role`, cashier by default) or a staff session's \
            (POST /v1/sessions). A JSON body may carry `approval` \
            ({\"staff_id\", \"password\"}): the request then acts with that staff member's \
            role (manager approval at the till).",
    ),
    components(schemas(ErrorDoc, CardEvent, Approval))
)]
pub(super) struct ApiDoc;

/// The optional `Idempotency-Key` header of a change.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct KeyHeader {
    /// The same key with the same request answers the first answer again (same status,
    /// `replayed: true` where the shape has it); with another request, of any kind,
    /// 409 `idempotency_conflict`. 1 to 128 characters, no control characters, not
    /// only spaces (it is trimmed).
    #[param(rename = "Idempotency-Key", value_type = String, required = false, min_length = 1, max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f]*[^\\u0000-\\u0020\\u007f][^\\u0000-\\u001f\\u007f]*$")]
    key: Option<String>,
}

/// The `Idempotency-Key` header a checkout needs (400 `invalid_input` without it).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct RequiredKeyHeader {
    /// The same key with the same sale answers the first receipt again with
    /// `replayed: true`; with another request, 409 `idempotency_conflict`. 1 to 128
    /// characters, no control characters.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001f\\u007f]*[^\\u0000-\\u0020\\u007f][^\\u0000-\\u001f\\u007f]*$"
    )]
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

/// A member id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct MemberParam {
    /// As the Member shape gives it (`m-` and 16 hex digits).
    #[param(required = true)]
    id: String,
}

/// A transaction id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct TxParam {
    /// As a receipt gives it; at most 80 characters.
    #[param(required = true, max_length = 80)]
    tx_id: String,
}

/// A staff id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct StaffParam {
    #[param(required = true)]
    id: String,
}

/// The 503 of a change: the writer is closed while the daemon stops.
pub(super) struct Busy;

impl IntoResponses for Busy {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut op = Operation::new();
        shared::answers(
            &mut op,
            "503",
            "`store_busy`: the daemon is stopping; try again in a moment.",
        );
        op.responses.responses
    }
}

/// Operations whose JSON body the `Asked` extractor reads may carry `approval`: the
/// property on their body's schema, and the refusals a wrong approval gets.
pub(super) fn approvable(doc: &mut OpenApi) {
    let mut bodies = Vec::new();
    for item in doc.paths.paths.values_mut() {
        for op in shared::operations(item) {
            let Some(body) = op.request_body.as_mut() else { continue };
            let optional = body.required != Some(Required::True);
            let Some(json) = body.content.get_mut("application/json") else {
                continue;
            };
            // An optional body (`Option<T>`) is described as `oneOf [null, T]`; an absent
            // body reads as `{}`, and `null` is refused: the body is T, not required.
            if let Some(RefOr::T(Schema::OneOf(one))) = &json.schema {
                if let Some(r) = one.items.iter().find(|i| matches!(i, RefOr::Ref(_))) {
                    json.schema = Some(r.clone());
                }
            }
            if optional {
                body.required = Some(Required::False);
            }
            if let Some(RefOr::Ref(r)) = &json.schema {
                bodies.push(r.ref_location.rsplit('/').next().unwrap_or_default().to_string());
            }
            op.responses.responses.insert(
                "401".into(),
                shared::refusal(
                    "`unauthorized`: the bearer token is missing, wrong or expired, or the `approval`'s \
                     staff id or password is wrong.",
                ),
            );
            shared::answers(
                op,
                "423",
                "`staff_locked`: the approving staff id is locked after 5 wrong passwords (15 min).",
            );
        }
    }
    let components = doc.components.get_or_insert_with(Components::new);
    for name in bodies {
        if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(&name) {
            o.properties
                .insert("approval".into(), Ref::from_schema_name(Approval::name()).into());
        }
    }
}

/// The bearer scheme itself.
pub(super) fn bearer_scheme(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Components::new);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
}

#[cfg(test)]
mod tests {
    use crate::service::openapi::problems;

    #[test]
    fn every_refusal_names_codes_its_status_answers() {
        let doc = super::super::description();
        assert_eq!(problems(&doc), Vec::<String>::new());
    }
}
