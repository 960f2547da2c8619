//! The security schemes of the OpenAPI document. Guarded operations name them with
//! `security(("bearer_jwt" = []), ("api_key" = []))` in their `#[utoipa::path]` (the macro
//! takes literals only; keep them equal to [`BEARER_SCHEME`] and [`API_KEY_SCHEME`]).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

/// `Authorization: Bearer <JWT>` (HS256 or RS256).
pub const BEARER_SCHEME: &str = "bearer_jwt";
/// `X-API-Key: amk_…` (also accepted as `Authorization: ApiKey amk_…`).
pub const API_KEY_SCHEME: &str = "api_key";

/// Adds [`BEARER_SCHEME`] and [`API_KEY_SCHEME`] to the document's components.
pub struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "JWT signed HS256 (shared secret) or RS256 (public key). Claims: sub, exp, \
                         role (viewer|operator|admin), fleets (ids, \"*\" = all), federations; \
                         iss/aud when configured.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "API key `amk_…` created with `atlasmesh api-key create`; also accepted as \
                 `Authorization: ApiKey amk_…`.",
            ))),
        );
    }
}
