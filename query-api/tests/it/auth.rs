//! Authentication, authorisation and rate limiting through the router, with API keys in a
//! private PostgreSQL database carrying the project's migrations.

use std::time::Duration;

use atlasmesh_core::config::Config;
use atlasmesh_core::{Role, Scope};
use atlasmesh_query_api::auth::{self, Auth, Caller};
use atlasmesh_query_api::{app, ApiError, AppState};
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use crate::common::*;

const SECRET: &str = "integration-test-secret-0123456789abcdef";
const RS_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt_rs256_private.pem");

fn auth_config(db: &PgDb) -> Config {
    let mut cfg = config("default", &unique("auth"));
    cfg.postgres.url = db.url.clone();
    cfg.auth.hs256_secret = Some(SECRET.into());
    cfg
}

fn jwt(sub: &str, role: Role, scope: &Scope) -> String {
    auth::issue_hs256(SECRET, sub, role, scope, Duration::from_secs(300))
}

/// GET `uri` through `router` with `headers`; status, response headers and JSON body.
async fn call(
    router: Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let head = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, head, body)
}

async fn whoami(state: &AppState, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Value) {
    call(app(state.clone()), "/api/v1/whoami", headers).await
}

fn assert_unauthorized(status: StatusCode, head: &HeaderMap, body: &Value, message: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(message),
        "{body}"
    );
    assert_eq!(head.get("www-authenticate").unwrap(), "Bearer");
}

/// A route guarded like a domain route: fleet scope, then role.
fn fleet_router(state: AppState) -> Router {
    async fn read(caller: Caller, Path(fleet): Path<String>) -> Result<String, ApiError> {
        caller.require_fleet(&fleet)?;
        Ok(format!("{} reads {fleet}", caller.actor()))
    }
    async fn delete(caller: Caller, Path(fleet): Path<String>) -> Result<String, ApiError> {
        caller.require_fleet(&fleet)?;
        caller.require(Role::Admin)?;
        Ok(format!("{} deletes {fleet}", caller.actor()))
    }
    Router::new()
        .route("/fleets/{fleet}", get(read).delete(delete))
        .with_state(state)
}

#[tokio::test]
async fn missing_or_invalid_credentials_are_401() {
    let db = PgDb::create("auth401").await;
    let st = state(&auth_config(&db)).await;

    let (s, h, b) = whoami(&st, &[]).await;
    assert_unauthorized(s, &h, &b, "missing credentials");
    let (s, h, b) = whoami(&st, &[("authorization", "Bearer not.a.jwt")]).await;
    assert_unauthorized(s, &h, &b, "malformed bearer token");
    let forged = auth::issue_hs256(
        "wrong-secret",
        "eve",
        Role::Admin,
        &Scope::all(),
        Duration::from_secs(60),
    );
    let (s, h, b) = whoami(&st, &[("authorization", &format!("Bearer {forged}"))]).await;
    assert_unauthorized(s, &h, &b, "invalid token signature");
    let mut claims = auth::Claims::new("alice", Role::Viewer, &Scope::all(), Duration::ZERO);
    claims.exp -= 3600;
    let expired = auth::sign_hs256(SECRET, &claims);
    let (s, h, b) = whoami(&st, &[("authorization", &format!("Bearer {expired}"))]).await;
    assert_unauthorized(s, &h, &b, "token expired");
    let (s, h, b) = whoami(&st, &[("authorization", "Basic YTpi")]).await;
    assert_unauthorized(s, &h, &b, "unsupported Authorization scheme");
    let (s, h, b) = whoami(&st, &[("x-api-key", "amk_doesnotexist0000000000000000000")]).await;
    assert_unauthorized(s, &h, &b, "unknown API key");

    // Public routes stay public; the document names both security schemes.
    let (s, _, doc) = call(app(st.clone()), "/api/v1/openapi.json", &[]).await;
    assert_eq!(s, StatusCode::OK);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer_jwt"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["api_key"]["in"], "header", "{schemes}");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key", "{schemes}");
    assert!(doc["paths"]["/api/v1/whoami"]["get"]["security"].is_array());
    let (s, _, _) = call(app(st.clone()), "/metrics", &[]).await;
    assert_eq!(s, StatusCode::OK);
    db.drop().await;
}

#[tokio::test]
async fn valid_jwts_are_200_with_their_claims() {
    let db = PgDb::create("authjwt").await;
    let dir = std::env::temp_dir().join(unique("rs256"));
    std::fs::create_dir_all(&dir).unwrap();
    let pubkey = dir.join("public.pem");
    std::fs::write(&pubkey, include_str!("../fixtures/jwt_rs256_public.pem")).unwrap();
    let mut cfg = auth_config(&db);
    cfg.auth.rs256_public_key_file = Some(pubkey);
    let st = state(&cfg).await;

    let scope = Scope::fleets(["fleet-a", "fleet-b"]).with_federations(["fed-1"]);
    let token = jwt("alice", Role::Operator, &scope);
    let (s, _, b) = whoami(&st, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        serde_json::json!({"subject": "alice", "actor": "jwt:alice", "role": "operator", "all": false,
            "fleets": ["fleet-a", "fleet-b"], "federations": ["fed-1"]})
    );

    let claims = auth::Claims::new(
        "svc-rs",
        Role::Admin,
        &Scope::all(),
        Duration::from_secs(60),
    );
    let rs = auth::sign_rs256(RS_PRIVATE, &claims).unwrap();
    let (s, _, b) = whoami(&st, &[("authorization", &format!("Bearer {rs}"))]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["subject"].as_str(),
            b["role"].as_str(),
            b["all"].as_bool()
        ),
        (Some("svc-rs"), Some("admin"), Some(true))
    );

    // Scope and role: 403 (authenticated, not allowed), never 401.
    let r = || fleet_router(st.clone());
    let auth_h = format!("Bearer {token}");
    let h = [("authorization", auth_h.as_str())];
    let (s, _, b) = call(r(), "/fleets/fleet-a", &h).await;
    assert_eq!(
        (s, b.as_str()),
        (StatusCode::OK, Some("jwt:alice reads fleet-a"))
    );
    let (s, _, b) = call(r(), "/fleets/fleet-c", &h).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "forbidden");
    let res = r()
        .oneshot(
            Request::delete("/fleets/fleet-a")
                .header("authorization", &auth_h)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (s, _, _) = call(r(), "/fleets/fleet-a", &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    db.drop().await;
}

#[tokio::test]
async fn api_keys_are_stored_hashed_and_authenticate() {
    let db = PgDb::create("authkey").await;
    let st = state(&auth_config(&db)).await;
    let scope = Scope::fleets(["fleet-a"]).with_federations(["fed-9"]);
    let (id, key) = auth::create_api_key(&db.pool, "grafana", Role::Viewer, &scope)
        .await
        .unwrap();
    assert!(key.starts_with("amk_"), "{key}");

    // Only the hash and a display prefix are stored.
    let (hash, prefix, used): (String, String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT key_hash, key_prefix, last_used_at FROM api_keys WHERE id = $1")
            .bind(&id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(hash, auth::api_key::hash_key(&key));
    assert_eq!(prefix, key[..12]);
    assert!(used.is_none());
    let plaintext_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE key_hash = $1 OR key_prefix = $1 OR name = $1",
    )
    .bind(&key)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(plaintext_rows, 0);

    for h in [
        ("x-api-key", key.clone()),
        ("authorization", format!("ApiKey {key}")),
        ("authorization", format!("Bearer {key}")),
    ] {
        let (s, _, b) = whoami(&st, &[(h.0, &h.1)]).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(
            b,
            serde_json::json!({"subject": "grafana", "actor": "key:grafana", "role": "viewer", "all": false,
                "fleets": ["fleet-a"], "federations": ["fed-9"]})
        );
    }
    let used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(&id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(used.is_some());

    // Names are unique.
    let err = auth::create_api_key(&db.pool, "grafana", Role::Admin, &Scope::all())
        .await
        .unwrap_err();
    assert!(auth::api_key::is_unique_violation(&err), "{err}");
    let keys = auth::list_api_keys(&db.pool).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (
            keys[0].name.as_str(),
            keys[0].role,
            &keys[0].scope,
            keys[0].revoked
        ),
        ("grafana", Role::Viewer, &scope, false)
    );
    db.drop().await;
}

#[tokio::test]
async fn revoked_keys_are_401() {
    let db = PgDb::create("authrevoke").await;
    let st = state(&auth_config(&db)).await;
    let (_, key) = auth::create_api_key(&db.pool, "ci", Role::Operator, &Scope::all())
        .await
        .unwrap();
    let h = [("x-api-key", key.as_str())];
    let (s, _, b) = whoami(&st, &h).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    assert!(auth::revoke_api_key(&db.pool, "ci").await.unwrap());
    assert!(!auth::revoke_api_key(&db.pool, "ci").await.unwrap());
    // The verified key is cached (no PostgreSQL round-trip per request) until the cache
    // forgets it; then the revocation applies.
    let (s, _, _) = whoami(&st, &h).await;
    assert_eq!(s, StatusCode::OK);
    st.auth.clear_key_cache();
    let (s, hd, b) = whoami(&st, &h).await;
    assert_unauthorized(s, &hd, &b, "API key revoked");

    // Without a cache, a revocation applies on the next request.
    let mut uncached = st.clone();
    uncached.make_mut().auth = std::sync::Arc::new(
        Auth::from_config(&st.config.auth)
            .unwrap()
            .with_key_cache_ttl(Duration::ZERO),
    );
    let (_, key2) = auth::create_api_key(&db.pool, "ci-2", Role::Viewer, &Scope::fleets(["f"]))
        .await
        .unwrap();
    let h2 = [("x-api-key", key2.as_str())];
    assert_eq!(whoami(&uncached, &h2).await.0, StatusCode::OK);
    auth::revoke_api_key(&db.pool, "ci-2").await.unwrap();
    let (s, hd, b) = whoami(&uncached, &h2).await;
    assert_unauthorized(s, &hd, &b, "API key revoked");
    db.drop().await;
}

#[tokio::test]
async fn callers_are_rate_limited_separately() {
    let db = PgDb::create("authrate").await;
    let mut cfg = auth_config(&db);
    cfg.auth.rate_limit_per_s = 1;
    cfg.auth.rate_limit_burst = 3;
    let st = state(&cfg).await;
    let a = format!("Bearer {}", jwt("a", Role::Viewer, &Scope::all()));
    let b = format!("Bearer {}", jwt("b", Role::Viewer, &Scope::all()));
    for _ in 0..3 {
        let (s, _, body) = whoami(&st, &[("authorization", &a)]).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, h, body) = whoami(&st, &[("authorization", &a)]).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert_eq!(h.get("retry-after").unwrap(), "1");
    // Another caller has its own budget; unauthenticated requests are 401, not 429.
    let (s, _, _) = whoami(&st, &[("authorization", &b)]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = whoami(&st, &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The budget refills at the configured rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, body) = whoami(&st, &[("authorization", &a)]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    db.drop().await;
}

#[tokio::test]
async fn without_jwt_keys_only_api_keys_work() {
    let db = PgDb::create("authnojwt").await;
    let mut cfg = auth_config(&db);
    cfg.auth.hs256_secret = None;
    let st = state(&cfg).await;
    assert!(!st.auth.jwt_configured());
    let token = jwt("alice", Role::Admin, &Scope::all());
    let (s, h, b) = whoami(&st, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_unauthorized(s, &h, &b, "JWT auth not configured");
    let (_, key) = auth::create_api_key(&db.pool, "only-key", Role::Admin, &Scope::all())
        .await
        .unwrap();
    let (s, _, b) = whoami(&st, &[("x-api-key", &key)]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["all"], true);
    db.drop().await;
}

#[tokio::test]
async fn postgres_down_is_503_not_401() {
    let mut cfg = config("default", &unique("authpgdown"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.postgres.url = format!("postgres://postgres@127.0.0.1:{port}/none");
    let st = state(&cfg).await;
    let (s, _, b) = whoami(
        &st,
        &[("x-api-key", "amk_0123456789abcdef0123456789abcdef")],
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["error"]["code"], "unavailable");
}
