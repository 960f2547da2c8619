//! JWT bearer tokens: verification (HS256 with the configured secret, RS256 with the configured
//! public key) and issuing (for the CLI, tests and benches).
//!
//! Claims: `sub` and `exp` required; `iat` optional; `iss` / `aud` required and checked when
//! configured; `role` (`viewer` | `operator` | `admin`) required; `fleets` (fleet ids, `"*"` =
//! every fleet and federation) and `federations` (federation ids) optional, empty when absent.
//!
//! The verifying key is chosen by the token's `alg` and is only ever used with its own
//! algorithm: an HS256 token is checked with the HS256 secret only (never with the RSA public
//! key as an HMAC secret), `alg: none` and every other algorithm is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atlasmesh_core::config::AuthConfig;
use atlasmesh_core::{Role, Scope};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Caller;
use crate::error::{ApiError, Error, Result};

/// The claims of a token AtlasMesh issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub role: Role,
    /// Fleet ids; `"*"` grants every fleet and federation.
    #[serde(default)]
    pub fleets: Vec<String>,
    #[serde(default)]
    pub federations: Vec<String>,
}

impl Claims {
    /// Claims for `sub` with `role` and `scope`, valid for `ttl` from now.
    pub fn new(sub: impl Into<String>, role: Role, scope: &Scope, ttl: Duration) -> Claims {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut fleets = Vec::new();
        if scope.all {
            fleets.push("*".to_string());
        }
        fleets.extend(scope.fleets.iter().cloned());
        Claims {
            sub: sub.into(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
            iss: None,
            aud: None,
            role,
            fleets,
            federations: scope.federations.clone(),
        }
    }

    pub fn with_issuer(mut self, iss: Option<String>) -> Claims {
        self.iss = iss;
        self
    }

    pub fn with_audience(mut self, aud: Option<String>) -> Claims {
        self.aud = aud;
        self
    }
}

/// Signs `claims` with the HS256 `secret`.
pub fn sign_hs256(secret: &str, claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    // HMAC over serialisable claims cannot fail.
    .expect("HS256 signing")
}

/// Signs `claims` with an RSA private key (PEM, PKCS#1 or PKCS#8).
pub fn sign_rs256(private_key_pem: &[u8], claims: &Claims) -> Result<String> {
    let key = EncodingKey::from_rsa_pem(private_key_pem)
        .map_err(|e| Error::Config(format!("RS256 private key: {e}")))?;
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key)
        .map_err(|e| Error::Internal(format!("RS256 signing: {e}")))
}

/// An HS256 token for `sub` with `role` and `scope`, valid for `ttl`.
pub fn issue_hs256(secret: &str, sub: &str, role: Role, scope: &Scope, ttl: Duration) -> String {
    sign_hs256(secret, &Claims::new(sub, role, scope, ttl))
}

/// What a verified token may carry; `iss`, `aud` and `exp` are checked by `jsonwebtoken`.
#[derive(Debug, Deserialize)]
struct TokenClaims {
    /// Presence is checked by the validation (a clearer error than a JSON one).
    #[serde(default)]
    sub: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    fleets: Vec<String>,
    #[serde(default)]
    federations: Vec<String>,
    /// Checked here for its type: RFC 7519 4.1.1 makes `iss` one StringOrURI, not a list.
    #[serde(default)]
    iss: Option<serde_json::Value>,
    /// Checked here for its type (NumericDate); its value by `jsonwebtoken`.
    #[serde(default)]
    nbf: Option<serde_json::Value>,
}

/// Verifies bearer tokens with the configured keys.
pub struct JwtVerifier {
    hs256: Option<(DecodingKey, Validation)>,
    rs256: Option<(DecodingKey, Validation)>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .finish()
    }
}

impl JwtVerifier {
    /// Keys from the config; a configured but unreadable or malformed key is an error.
    pub fn from_config(cfg: &AuthConfig) -> Result<JwtVerifier> {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            let mut required = vec!["exp", "sub"];
            if let Some(iss) = &cfg.issuer {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            match &cfg.audience {
                Some(aud) => {
                    v.set_audience(&[aud]);
                    required.push("aud");
                }
                // Without a configured audience, tokens naming one are accepted.
                None => v.validate_aud = false,
            }
            v.set_required_spec_claims(&required);
            // RFC 7519 4.1.5: a token must not be accepted before `nbf` (60 s leeway).
            v.validate_nbf = true;
            v
        };
        let hs256 = match cfg.hs256_secret.as_deref() {
            None => None,
            Some("") => return Err(Error::Config("auth.hs256_secret is empty".into())),
            Some(secret) => Some((
                DecodingKey::from_secret(secret.as_bytes()),
                validation(Algorithm::HS256),
            )),
        };
        let pem = match (&cfg.rs256_public_key_pem, &cfg.rs256_public_key_file) {
            (Some(pem), _) => Some(pem.clone().into_bytes()),
            (None, Some(path)) => Some(std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "auth.rs256_public_key_file {}: {e}",
                    path.display()
                ))
            })?),
            (None, None) => None,
        };
        let rs256 = match pem {
            None => None,
            Some(pem) => Some((
                DecodingKey::from_rsa_pem(&pem)
                    .map_err(|e| Error::Config(format!("auth RS256 public key: {e}")))?,
                validation(Algorithm::RS256),
            )),
        };
        Ok(JwtVerifier { hs256, rs256 })
    }

    /// Whether any JWT key is configured.
    pub fn is_configured(&self) -> bool {
        self.hs256.is_some() || self.rs256.is_some()
    }

    /// The caller a bearer token names; 401 for anything not verifiably valid.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        if !self.is_configured() {
            return Err(ApiError::unauthorized("JWT auth not configured"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::unauthorized("malformed bearer token"))?;
        let (key, validation) = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::unauthorized(format!("token algorithm {:?} is not accepted", header.alg))
        })?;
        let data = jsonwebtoken::decode::<TokenClaims>(token, key, validation).map_err(|e| {
            ApiError::unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".to_string(),
                ErrorKind::ImmatureSignature => "token not valid yet (nbf)".to_string(),
                ErrorKind::InvalidSignature => "invalid token signature".to_string(),
                ErrorKind::InvalidIssuer => "token issuer not accepted".to_string(),
                ErrorKind::InvalidAudience => "token audience not accepted".to_string(),
                ErrorKind::MissingRequiredClaim(c) => format!("token lacks the {c} claim"),
                ErrorKind::Json(_) => "token claims malformed".to_string(),
                _ => "invalid bearer token".to_string(),
            })
        })?;
        let c = data.claims;
        if c.iss.as_ref().is_some_and(|v| !v.is_string()) {
            return Err(ApiError::unauthorized("token issuer must be one string"));
        }
        if c.nbf.as_ref().is_some_and(|v| !v.is_number()) {
            return Err(ApiError::unauthorized("token nbf must be a number"));
        }
        if c.sub.is_empty() {
            return Err(ApiError::unauthorized("token subject is empty"));
        }
        let role = match c.role.as_deref() {
            None => return Err(ApiError::unauthorized("token lacks the role claim")),
            Some(r) => Role::parse(r)
                .ok_or_else(|| ApiError::unauthorized(format!("token role {r:?} is unknown")))?,
        };
        let issuer = c.iss.and_then(|v| v.as_str().map(str::to_string));
        Ok(Caller {
            subject: c.sub,
            kind: super::CallerKind::Jwt { issuer },
            role,
            scope: scope_of(&c.fleets, &c.federations),
        })
    }
}

/// The scope of `fleets` (fleet ids, `"*"`) and `federations` (federation ids, optionally
/// written `federation:<id>`) claims. A federation id of `"*"` names nothing: only `"*"` among
/// the fleets grants everything.
pub(crate) fn scope_of(fleets: &[String], federations: &[String]) -> Scope {
    let mut scope = Scope::from_record(fleets);
    scope.federations.extend(
        federations
            .iter()
            .map(|f| f.strip_prefix("federation:").unwrap_or(f))
            .filter(|f| !f.is_empty() && *f != "*")
            .map(str::to_string),
    );
    scope
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret-with-enough-entropy-0123456789";
    const PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/jwt_rs256_private.pem");
    const PUBLIC: &str = include_str!("../../tests/fixtures/jwt_rs256_public.pem");
    const OTHER_PUBLIC: &str = include_str!("../../tests/fixtures/jwt_rs256_other_public.pem");

    fn hs_only() -> JwtVerifier {
        JwtVerifier::from_config(&AuthConfig {
            hs256_secret: Some(SECRET.into()),
            ..AuthConfig::default()
        })
        .unwrap()
    }

    fn both() -> JwtVerifier {
        JwtVerifier::from_config(&AuthConfig {
            hs256_secret: Some(SECRET.into()),
            rs256_public_key_pem: Some(PUBLIC.into()),
            ..AuthConfig::default()
        })
        .unwrap()
    }

    fn unauthorized(r: Result<Caller, ApiError>) -> String {
        match r {
            Err(ApiError::Unauthorized(m)) => m,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn raw_hs256(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn valid_hs256() {
        let scope = Scope::fleets(["fleet-a", "fleet-b"]).with_federations(["fed-1"]);
        let token = issue_hs256(
            SECRET,
            "alice",
            Role::Operator,
            &scope,
            Duration::from_secs(60),
        );
        let c = hs_only().verify(&token).unwrap();
        assert_eq!(c.subject, "alice");
        assert_eq!(c.role, Role::Operator);
        assert_eq!(c.scope, scope);
        assert!(c.scope.allows_fleet("fleet-b") && !c.scope.allows_fleet("fleet-c"));
        assert!(c.scope.allows_federation("fed-1") && !c.scope.allows_federation("fed-2"));
    }

    #[test]
    fn star_grants_everything() {
        let token = issue_hs256(
            SECRET,
            "root",
            Role::Admin,
            &Scope::all(),
            Duration::from_secs(60),
        );
        let c = hs_only().verify(&token).unwrap();
        assert!(c.scope.all && c.scope.allows_fleet("any") && c.scope.allows_federation("any"));
        // "*" among federations grants nothing; a missing scope is empty.
        let token = raw_hs256(
            serde_json::json!({"sub": "s", "exp": now() + 60, "role": "viewer",
            "federations": ["*"]}),
        );
        let c = hs_only().verify(&token).unwrap();
        assert_eq!(c.scope, Scope::default());
        assert!(!c.scope.allows_fleet("any") && !c.scope.allows_federation("*x"));
    }

    #[test]
    fn valid_rs256() {
        let claims = Claims::new(
            "svc",
            Role::Viewer,
            &Scope::fleets(["f1"]),
            Duration::from_secs(60),
        );
        let token = sign_rs256(PRIVATE, &claims).unwrap();
        let c = both().verify(&token).unwrap();
        assert_eq!((c.subject.as_str(), c.role), ("svc", Role::Viewer));
        assert_eq!(c.scope, Scope::fleets(["f1"]));
        // The key may also come from a file.
        let dir = std::env::temp_dir().join(format!("am-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pub.pem");
        std::fs::write(&file, PUBLIC).unwrap();
        let v = JwtVerifier::from_config(&AuthConfig {
            rs256_public_key_file: Some(file),
            ..AuthConfig::default()
        })
        .unwrap();
        assert_eq!(v.verify(&token).unwrap().subject, "svc");
        // Signed by the wrong key pair.
        let other = JwtVerifier::from_config(&AuthConfig {
            rs256_public_key_pem: Some(OTHER_PUBLIC.into()),
            ..AuthConfig::default()
        })
        .unwrap();
        assert_eq!(
            unauthorized(other.verify(&token)),
            "invalid token signature"
        );
    }

    #[test]
    fn expired() {
        let mut claims = Claims::new("alice", Role::Viewer, &Scope::all(), Duration::ZERO);
        claims.exp = now() - 3600;
        let token = sign_hs256(SECRET, &claims);
        assert_eq!(unauthorized(hs_only().verify(&token)), "token expired");
    }

    #[test]
    fn bad_signature() {
        let token = issue_hs256(
            "another-secret",
            "alice",
            Role::Admin,
            &Scope::all(),
            Duration::from_secs(60),
        );
        assert_eq!(
            unauthorized(hs_only().verify(&token)),
            "invalid token signature"
        );
        // A tampered payload (role raised) fails the signature too.
        let good = issue_hs256(
            SECRET,
            "alice",
            Role::Viewer,
            &Scope::all(),
            Duration::from_secs(60),
        );
        let evil = raw_hs256(
            serde_json::json!({"sub": "alice", "exp": now() + 60, "role": "admin", "fleets": ["*"]}),
        );
        let parts: Vec<&str> = good.split('.').collect();
        let evil_payload = evil.split('.').nth(1).unwrap();
        let forged = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
        assert_eq!(
            unauthorized(hs_only().verify(&forged)),
            "invalid token signature"
        );
    }

    #[test]
    fn wrong_alg() {
        // RS256 token while only HS256 is configured.
        let claims = Claims::new("svc", Role::Viewer, &Scope::all(), Duration::from_secs(60));
        let rs = sign_rs256(PRIVATE, &claims).unwrap();
        assert!(unauthorized(hs_only().verify(&rs)).contains("RS256"));
        // HS256 token "signed" with the RSA public key as HMAC secret (key confusion).
        let confused = sign_hs256(PUBLIC, &claims);
        let rs_only = JwtVerifier::from_config(&AuthConfig {
            rs256_public_key_pem: Some(PUBLIC.into()),
            ..AuthConfig::default()
        })
        .unwrap();
        assert!(unauthorized(rs_only.verify(&confused)).contains("HS256"));
        assert_eq!(
            unauthorized(both().verify(&confused)),
            "invalid token signature"
        );
        // alg none (unsigned).
        let none = format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#),
            base64_url(
                format!(
                    r#"{{"sub":"x","exp":{},"role":"admin","fleets":["*"]}}"#,
                    now() + 60
                )
                .as_bytes()
            )
        );
        assert_eq!(unauthorized(both().verify(&none)), "malformed bearer token");
        // HS512 with the right secret is still refused.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(unauthorized(both().verify(&hs512)).contains("HS512"));
    }

    /// Unpadded base64url, as in a JWT.
    fn base64_url(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            }
        }
        out
    }

    #[test]
    fn missing_or_unknown_role() {
        let token =
            raw_hs256(serde_json::json!({"sub": "alice", "exp": now() + 60, "fleets": ["*"]}));
        assert_eq!(
            unauthorized(hs_only().verify(&token)),
            "token lacks the role claim"
        );
        let token =
            raw_hs256(serde_json::json!({"sub": "alice", "exp": now() + 60, "role": "root"}));
        assert!(unauthorized(hs_only().verify(&token)).contains("root"));
    }

    #[test]
    fn missing_exp_or_sub() {
        let token = raw_hs256(serde_json::json!({"sub": "alice", "role": "admin"}));
        assert_eq!(
            unauthorized(hs_only().verify(&token)),
            "token lacks the exp claim"
        );
        let token = raw_hs256(serde_json::json!({"exp": now() + 60, "role": "admin"}));
        assert_eq!(
            unauthorized(hs_only().verify(&token)),
            "token lacks the sub claim"
        );
        let token = raw_hs256(serde_json::json!({"sub": "", "exp": now() + 60, "role": "admin"}));
        assert_eq!(
            unauthorized(hs_only().verify(&token)),
            "token subject is empty"
        );
    }

    #[test]
    fn not_before_and_issuer_per_rfc_7519() {
        let v = hs_only();
        let claims = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"sub": "s", "exp": now() + 7200, "role": "admin", "fleets": ["*"]});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            raw_hs256(c)
        };
        assert_eq!(
            unauthorized(v.verify(&claims(serde_json::json!({"nbf": now() + 3600})))),
            "token not valid yet (nbf)"
        );
        assert!(v
            .verify(&claims(serde_json::json!({"nbf": now() - 10})))
            .is_ok());
        assert_eq!(
            unauthorized(v.verify(&claims(serde_json::json!({"nbf": "soon"})))),
            "token nbf must be a number"
        );
        assert_eq!(
            unauthorized(v.verify(&claims(serde_json::json!({"iss": ["idp", "evil"]})))),
            "token issuer must be one string"
        );
        assert!(v.verify(&claims(serde_json::json!({"iss": "idp"}))).is_ok());
        // With an issuer configured, a list naming it is refused too.
        let strict = JwtVerifier::from_config(&AuthConfig {
            hs256_secret: Some(SECRET.into()),
            issuer: Some("idp".into()),
            ..AuthConfig::default()
        })
        .unwrap();
        assert!(strict
            .verify(&claims(serde_json::json!({"iss": ["idp"]})))
            .is_err());
        // RS256 goes through the same validation.
        let rs = both();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &serde_json::json!({
                "sub": "s", "exp": now() + 7200, "nbf": now() + 3600, "role": "viewer"
            }),
            &EncodingKey::from_rsa_pem(PRIVATE).unwrap(),
        )
        .unwrap();
        assert_eq!(unauthorized(rs.verify(&token)), "token not valid yet (nbf)");
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let v = JwtVerifier::from_config(&AuthConfig {
            hs256_secret: Some(SECRET.into()),
            issuer: Some("idp".into()),
            audience: Some("atlasmesh".into()),
            ..AuthConfig::default()
        })
        .unwrap();
        let base = Claims::new(
            "alice",
            Role::Viewer,
            &Scope::all(),
            Duration::from_secs(60),
        );
        let ok = base
            .clone()
            .with_issuer(Some("idp".into()))
            .with_audience(Some("atlasmesh".into()));
        let c = v.verify(&sign_hs256(SECRET, &ok)).unwrap();
        assert_eq!(
            c.kind,
            super::super::CallerKind::Jwt {
                issuer: Some("idp".into())
            }
        );
        assert_eq!(c.actor(), "jwt:idp:alice");
        let no_iss = base.clone().with_audience(Some("atlasmesh".into()));
        assert_eq!(
            unauthorized(v.verify(&sign_hs256(SECRET, &no_iss))),
            "token lacks the iss claim"
        );
        let bad_iss = ok.clone().with_issuer(Some("evil".into()));
        assert_eq!(
            unauthorized(v.verify(&sign_hs256(SECRET, &bad_iss))),
            "token issuer not accepted"
        );
        let bad_aud = ok.clone().with_audience(Some("other".into()));
        assert_eq!(
            unauthorized(v.verify(&sign_hs256(SECRET, &bad_aud))),
            "token audience not accepted"
        );
        let no_aud = ok.with_audience(None);
        assert_eq!(
            unauthorized(v.verify(&sign_hs256(SECRET, &no_aud))),
            "token lacks the aud claim"
        );
        // Unconfigured: iss and aud are not checked.
        let any = base
            .with_issuer(Some("whoever".into()))
            .with_audience(Some("whatever".into()));
        assert!(hs_only().verify(&sign_hs256(SECRET, &any)).is_ok());
    }

    #[test]
    fn not_configured_or_garbage() {
        let none = JwtVerifier::from_config(&AuthConfig::default()).unwrap();
        assert!(!none.is_configured());
        let token = issue_hs256(
            SECRET,
            "a",
            Role::Viewer,
            &Scope::all(),
            Duration::from_secs(60),
        );
        assert_eq!(unauthorized(none.verify(&token)), "JWT auth not configured");
        assert_eq!(
            unauthorized(hs_only().verify("not-a-jwt")),
            "malformed bearer token"
        );
        // Bad key material fails at start-up, not per request.
        let err = JwtVerifier::from_config(&AuthConfig {
            rs256_public_key_pem: Some(
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
            ),
            ..AuthConfig::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        let err = JwtVerifier::from_config(&AuthConfig {
            rs256_public_key_file: Some("/nonexistent/key.pem".into()),
            ..AuthConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/key.pem"), "{err}");
    }
}
