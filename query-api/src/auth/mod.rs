//! Authentication and authorisation of API callers.
//!
//! A handler that takes a [`Caller`] argument is authenticated, rate limited per caller and may
//! then check role ([`Caller::require`]) and scope ([`Caller::require_fleet`],
//! [`Caller::require_federation`]). Credentials, in this order of headers:
//!
//! - `Authorization: Bearer <JWT>` — HS256 (configured secret) or RS256 (configured public
//!   key), see [`jwt`];
//! - `Authorization: ApiKey amk_…`, `Authorization: Bearer amk_…` or `X-API-Key: amk_…` — an
//!   API key stored hashed in PostgreSQL, see [`api_key`].
//!
//! Missing, malformed, expired, revoked or unverifiable credentials are 401 (with
//! `WWW-Authenticate`) and are charged to the client address's failure budget
//! ([`crate::limits`]); a valid caller lacking the role or scope is 403; a caller over its rate
//! ([`rate_limit`]) is 429 with `Retry-After`.
//!
//! A caller is identified by its credential kind, issuer and subject together
//! ([`Caller::actor`]): an API key named `x`, a token with `sub: x` and a token of another
//! issuer with `sub: x` are three callers, with their own commands, idempotency keys and
//! rate-limit budgets.

pub mod api_key;
pub mod jwt;
pub mod openapi;
pub mod rate_limit;

use std::time::Duration;

use atlasmesh_core::config::AuthConfig;
use atlasmesh_core::{Role, Scope};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

pub use api_key::{create_api_key, list_api_keys, revoke_api_key, ApiKeyInfo};
pub use jwt::{issue_hs256, sign_hs256, sign_rs256, Claims};

use crate::error::{ApiError, Result};
use crate::limits::ClientAddress;
use crate::state::AppState;

/// Header carrying an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// How a caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    /// An API key; the subject is its name.
    ApiKey,
    /// A JWT; the subject is its `sub`, issued by `iss` when the token names one.
    Jwt { issuer: Option<String> },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token subject or API key name (unique only within its kind and issuer: see
    /// [`Caller::actor`]).
    pub subject: String,
    pub kind: CallerKind,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "requires role {}",
                role.as_str()
            )))
        }
    }

    /// The caller's identity, written as the actor of its commands and the audit log and
    /// compared wherever something is owned by a caller (commands, idempotency keys,
    /// rate-limit buckets): `key:<name>`, `jwt:<sub>` or `jwt:<iss>:<sub>`. `%` and `:` inside
    /// the parts are percent-escaped, so no two callers share an actor.
    pub fn actor(&self) -> String {
        let subject = escape_actor_part(&self.subject);
        match &self.kind {
            CallerKind::ApiKey => format!("key:{subject}"),
            CallerKind::Jwt { issuer: None } => format!("jwt:{subject}"),
            CallerKind::Jwt {
                issuer: Some(issuer),
            } => format!("jwt:{}:{subject}", escape_actor_part(issuer)),
        }
    }

    /// 403 unless the caller's scope includes fleet `fleet_id`.
    pub fn require_fleet(&self, fleet_id: &str) -> Result<(), ApiError> {
        if self.scope.allows_fleet(fleet_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "fleet {fleet_id} is outside the caller's scope"
            )))
        }
    }

    /// 403 unless the caller's scope includes federation `federation_id`.
    pub fn require_federation(&self, federation_id: &str) -> Result<(), ApiError> {
        if self.scope.allows_federation(federation_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "federation {federation_id} is outside the caller's scope"
            )))
        }
    }
}

/// `%` → `%25`, `:` → `%3A`: an actor part without separators, decodable and injective.
fn escape_actor_part(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['%', ':']) {
        s.replace('%', "%25").replace(':', "%3A").into()
    } else {
        s.into()
    }
}

/// Who the credentials of a request authenticate.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// Token subject or API key name.
    pub subject: String,
    /// The caller's identity (`key:<name>`, `jwt:<sub>` or `jwt:<iss>:<sub>`): the actor of
    /// its commands, which only it can read.
    pub actor: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// Every fleet and federation (`"*"`).
    pub all: bool,
    pub fleets: Vec<String>,
    pub federations: Vec<String>,
}

/// The authenticated caller: subject, role and scope (counts against the caller's rate limit).
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "auth",
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The caller", body = WhoAmI),
        (status = 401, description = "Missing or invalid credentials", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limit exceeded (see Retry-After)", body = crate::error::ErrorBody),
    )
)]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        actor: caller.actor(),
        subject: caller.subject,
        role: caller.role.as_str().to_string(),
        all: caller.scope.all,
        fleets: caller.scope.fleets,
        federations: caller.scope.federations,
    })
}

/// Presented credentials, before verification.
#[derive(Debug, PartialEq, Eq)]
enum Credential<'a> {
    Jwt(&'a str),
    ApiKey(&'a str),
}

/// Verifies credentials and limits each caller's request rate. Built once from the config.
#[derive(Debug)]
pub struct Auth {
    jwt: jwt::JwtVerifier,
    keys: api_key::ApiKeyCache,
    limiter: rate_limit::RateLimiter,
}

impl Auth {
    /// The JWT keys (a configured but malformed key is an error), an empty API key cache
    /// ([`api_key::DEFAULT_CACHE_TTL`]) and the per-caller rate limiter.
    pub fn from_config(cfg: &AuthConfig) -> Result<Auth> {
        Ok(Auth {
            jwt: jwt::JwtVerifier::from_config(cfg)?,
            keys: api_key::ApiKeyCache::new(api_key::DEFAULT_CACHE_TTL),
            limiter: rate_limit::RateLimiter::new(cfg.rate_limit_per_s, cfg.rate_limit_burst),
        })
    }

    /// The same with verified API keys trusted for `ttl` (zero: ask PostgreSQL every time).
    pub fn with_key_cache_ttl(mut self, ttl: Duration) -> Auth {
        self.keys = api_key::ApiKeyCache::new(ttl);
        self
    }

    /// Whether bearer JWTs can be verified (a secret or public key is configured).
    pub fn jwt_configured(&self) -> bool {
        self.jwt.is_configured()
    }

    /// Forgets cached API key look-ups (call after revoking a key in this process).
    pub fn clear_key_cache(&self) {
        self.keys.clear();
    }

    /// The caller the request headers authenticate (not rate limited).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        pool: &PgPool,
    ) -> Result<Caller, ApiError> {
        match credential(headers)? {
            Credential::Jwt(token) => self.jwt.verify(token),
            Credential::ApiKey(key) => self.keys.verify(pool, key).await,
        }
    }

    /// PostgreSQL look-ups of API keys made so far (cache misses, known or not).
    pub fn key_lookups(&self) -> u64 {
        self.keys.lookups()
    }

    /// Takes one request from `caller`'s budget (keyed by [`Caller::actor`]); 429 when
    /// exhausted.
    pub fn rate_limit(&self, caller: &Caller) -> Result<(), ApiError> {
        self.limiter
            .check(&caller.actor())
            .map_err(ApiError::too_many_requests)
    }

    /// Authenticates, then rate limits, the request.
    pub async fn admit(&self, headers: &HeaderMap, pool: &PgPool) -> Result<Caller, ApiError> {
        let caller = self.authenticate(headers, pool).await?;
        self.rate_limit(&caller)?;
        Ok(caller)
    }
}

/// The credential the headers present; 401 when none, ambiguous or malformed.
fn credential(headers: &HeaderMap) -> Result<Credential<'_>, ApiError> {
    let text = |name| {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(str::trim)
                    .map_err(|_| ApiError::unauthorized("credentials are not valid ASCII"))
            })
            .transpose()
    };
    let authorization = text(header::AUTHORIZATION.as_str())?;
    let api_key = text(API_KEY_HEADER)?;
    match (authorization, api_key) {
        (None, None) => Err(ApiError::unauthorized(
            "missing credentials: send Authorization: Bearer <JWT> or X-API-Key: <key>",
        )),
        (Some(_), Some(_)) => Err(ApiError::unauthorized(
            "send either Authorization or X-API-Key, not both",
        )),
        (None, Some(key)) => Ok(Credential::ApiKey(key)),
        (Some(auth), None) => {
            let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
            let value = value.trim();
            if value.is_empty() {
                return Err(ApiError::unauthorized("empty Authorization credentials"));
            }
            if scheme.eq_ignore_ascii_case("bearer") {
                if api_key::looks_like_key(value) {
                    Ok(Credential::ApiKey(value))
                } else {
                    Ok(Credential::Jwt(value))
                }
            } else if scheme.eq_ignore_ascii_case("apikey") {
                Ok(Credential::ApiKey(value))
            } else {
                Err(ApiError::unauthorized(format!(
                    "unsupported Authorization scheme {scheme:?}: use Bearer or ApiKey"
                )))
            }
        }
    }
}

/// Authenticated and rate limited once per request (later extractions reuse the result). A
/// failed authentication (401) is charged to the client address ([`crate::limits`]).
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = match state.auth.admit(&parts.headers, &state.postgres).await {
            Ok(caller) => caller,
            Err(e) => {
                if let (ApiError::Unauthorized(_), Some(ClientAddress(address))) =
                    (&e, parts.extensions.get::<ClientAddress>())
                {
                    state.addresses.record_failure(address);
                }
                return Err(e);
            }
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn unauthorized<T: std::fmt::Debug>(r: Result<T, ApiError>) -> String {
        match r {
            Err(ApiError::Unauthorized(m)) => m,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn credentials_from_headers() {
        let h = headers(&[("authorization", "Bearer eyJ.x.y")]);
        assert_eq!(credential(&h).unwrap(), Credential::Jwt("eyJ.x.y"));
        let h = headers(&[("authorization", "bearer  eyJ.x.y ")]);
        assert_eq!(credential(&h).unwrap(), Credential::Jwt("eyJ.x.y"));
        let h = headers(&[("authorization", "Bearer amk_abc")]);
        assert_eq!(credential(&h).unwrap(), Credential::ApiKey("amk_abc"));
        let h = headers(&[("authorization", "ApiKey amk_abc")]);
        assert_eq!(credential(&h).unwrap(), Credential::ApiKey("amk_abc"));
        let h = headers(&[("x-api-key", "amk_abc")]);
        assert_eq!(credential(&h).unwrap(), Credential::ApiKey("amk_abc"));

        assert!(unauthorized(credential(&HeaderMap::new())).starts_with("missing credentials"));
        let h = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert!(unauthorized(credential(&h)).contains("Basic"));
        let h = headers(&[("authorization", "Bearer")]);
        assert_eq!(
            unauthorized(credential(&h)),
            "empty Authorization credentials"
        );
        let h = headers(&[
            ("authorization", "Bearer eyJ.x.y"),
            ("x-api-key", "amk_abc"),
        ]);
        assert!(unauthorized(credential(&h)).contains("not both"));
    }

    fn caller(subject: &str, kind: CallerKind) -> Caller {
        Caller {
            subject: subject.into(),
            kind,
            role: Role::Viewer,
            scope: Scope::default(),
        }
    }

    fn jwt(issuer: Option<&str>) -> CallerKind {
        CallerKind::Jwt {
            issuer: issuer.map(str::to_string),
        }
    }

    #[test]
    fn role_and_scope_checks_are_403() {
        let c = Caller {
            role: Role::Operator,
            scope: Scope::fleets(["f1"]).with_federations(["fed"]),
            ..caller("op", jwt(None))
        };
        assert!(c.require(Role::Viewer).is_ok() && c.require(Role::Operator).is_ok());
        assert!(matches!(
            c.require(Role::Admin),
            Err(ApiError::Forbidden(_))
        ));
        assert!(c.require_fleet("f1").is_ok());
        assert!(matches!(c.require_fleet("f2"), Err(ApiError::Forbidden(_))));
        assert!(c.require_federation("fed").is_ok());
        assert!(matches!(
            c.require_federation("other"),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn actors_name_kind_issuer_and_subject() {
        assert_eq!(caller("x", CallerKind::ApiKey).actor(), "key:x");
        assert_eq!(caller("x", jwt(None)).actor(), "jwt:x");
        assert_eq!(
            caller("x", jwt(Some("https://idp.example"))).actor(),
            "jwt:https%3A//idp.example:x"
        );
        // Subjects and issuers that would forge a separator cannot collide.
        let all = [
            caller("x", CallerKind::ApiKey),
            caller("x", jwt(None)),
            caller("x", jwt(Some("a"))),
            caller("a:x", jwt(None)),
            caller("x", jwt(Some("a:x"))),
            caller("a:x", jwt(Some("a"))),
            caller("x", jwt(Some("a%3Ax"))),
            caller("a%3Ax", jwt(None)),
            caller("jwt:x", CallerKind::ApiKey),
            caller("", jwt(Some(""))),
            caller("", jwt(None)),
            caller(":", jwt(None)),
            caller("", jwt(Some(":"))),
        ];
        let actors: std::collections::BTreeSet<String> = all.iter().map(Caller::actor).collect();
        assert_eq!(actors.len(), all.len(), "{actors:?}");
        assert_eq!(caller("a:x", jwt(None)).actor(), "jwt:a%3Ax");
        assert_eq!(caller("a%3Ax", jwt(None)).actor(), "jwt:a%253Ax");
    }

    #[test]
    fn rate_limit_is_per_actor() {
        let auth = Auth::from_config(&AuthConfig {
            rate_limit_per_s: 1,
            rate_limit_burst: 2,
            ..AuthConfig::default()
        })
        .unwrap();
        let c = caller("a", jwt(None));
        assert!(auth.rate_limit(&c).is_ok());
        assert!(auth.rate_limit(&c).is_ok());
        match auth.rate_limit(&c) {
            Err(ApiError::TooManyRequests { retry_after_s }) => assert_eq!(retry_after_s, 1),
            other => panic!("expected 429, got {other:?}"),
        }
        // An API key named like a token subject, or the subject of another issuer, has its
        // own bucket.
        assert!(auth.rate_limit(&caller("a", CallerKind::ApiKey)).is_ok());
        assert!(auth.rate_limit(&caller("a", jwt(Some("other")))).is_ok());
    }

    #[tokio::test]
    async fn jwt_and_keys_share_one_entry_point() {
        let secret = "entry-point-secret";
        let auth = Auth::from_config(&AuthConfig {
            hs256_secret: Some(secret.into()),
            ..AuthConfig::default()
        })
        .unwrap();
        assert!(auth.jwt_configured());
        // Never connects: neither path below reaches PostgreSQL.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let token = issue_hs256(
            secret,
            "alice",
            Role::Admin,
            &Scope::all(),
            Duration::from_secs(60),
        );
        let h = headers(&[("authorization", &format!("Bearer {token}"))]);
        let c = auth.admit(&h, &pool).await.unwrap();
        assert_eq!((c.subject.as_str(), c.role), ("alice", Role::Admin));
        assert_eq!(c.actor(), "jwt:alice");
        let h = headers(&[("x-api-key", "not-a-key")]);
        assert_eq!(
            unauthorized(auth.admit(&h, &pool).await),
            "malformed API key"
        );
        let no_jwt = Auth::from_config(&AuthConfig::default()).unwrap();
        let h = headers(&[("authorization", &format!("Bearer {token}"))]);
        assert_eq!(
            unauthorized(no_jwt.admit(&h, &pool).await),
            "JWT auth not configured"
        );
    }
}
