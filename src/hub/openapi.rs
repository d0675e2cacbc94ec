//! The hub's description, beyond the handlers' attributes: the document's head, the two
//! schemes (operators' bearer token, terminals' signatures), the parameters read by hand.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, OpenApi};
use utoipa::{IntoParams, ToSchema};

use crate::service::openapi::ErrorDoc;

/// The operators' bearer token.
pub(super) const BEARER: &str = "bearer";
/// A terminal's signature over a sync request.
pub(super) const SIGNED: &str = "terminal_signature";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "loyaltyd hub API",
        description = "The chain's hub (`loyaltyd hub serve`): sync for terminals (postcard \
            bodies, each request signed with the terminal's secret, sync.md) and read-only \
            endpoints for operators (the bearer token of the hub's config), plus conflict \
            resolution and ruleset publishing. Money and points are integers; instants are \
            RFC 3339 strings. Every answer that is not 2xx carries the error document, \
            except /v1/health's 503.",
    ),
    components(schemas(ErrorDoc))
)]
pub(super) struct HubDoc;

/// A sync body or answer: postcard bytes of sync.md's types.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub(super) struct Postcard(Vec<u8>);

/// A member id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct MemberParam {
    #[param(required = true)]
    member_id: String,
}

/// A transaction id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct TxParam {
    /// At most 80 characters.
    #[param(required = true, max_length = 80)]
    tx_id: String,
}

/// A group-buy group id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct GroupParam {
    #[param(required = true)]
    group_id: String,
}

/// A deal id of the published ruleset in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct DealParam {
    #[param(required = true)]
    deal: String,
}

/// A conflict id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct ConflictParam {
    /// `card-<number>` or `phone-<digits>`.
    #[param(required = true)]
    id: String,
}

/// Both schemes.
pub(super) fn schemes(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Components::new);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    let signed = ApiKeyValue::with_description(
        "Authorization",
        "`LOYALTYD-HMAC terminal=<id>,sig=<hex>`: HMAC-SHA256 with the terminal's secret over \
         its id, the path and the body (sync.md). Checked before the body is read: an \
         unknown terminal is refused unread.",
    );
    components.add_security_scheme(SIGNED, SecurityScheme::ApiKey(ApiKey::Header(signed)));
}

#[cfg(test)]
mod tests {
    use crate::service::openapi::problems;

    #[test]
    fn every_refusal_names_codes_its_status_answers() {
        let doc = super::super::api::description();
        assert_eq!(problems(&doc), Vec::<String>::new());
    }
}
