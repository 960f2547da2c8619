//! Commands belong to a caller identity — credential kind, issuer and subject — not to a
//! subject string (issue 10, item 12): a token with `sub: x` and an API key named `x` (or a
//! token of another issuer with `sub: x`) neither read each other's commands nor share
//! idempotency keys. Through the router, PostgreSQL (a private database), the broker and the
//! schema registry (a private commands topic); no command worker runs, so commands stay pending.

use std::time::Duration;

use atlasmesh_core::{Role, Scope};
use atlasmesh_query_api::auth;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::common::{config, state, unique, PgDb, TEST_SECRET};

async fn send(st: &atlasmesh_query_api::AppState, req: Request<Body>) -> (StatusCode, Value) {
    let res = atlasmesh_query_api::app(st.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post_pool(credential: (&str, &str), idempotency_key: &str, fleet: &str) -> Request<Body> {
    let body = json!({"fleet_id": fleet, "name": unique("pool"), "resource_type": "charger", "capacity": 4});
    Request::post("/api/v1/fleet-resources/pools")
        .header(credential.0, credential.1)
        .header("content-type", "application/json")
        .header("idempotency-key", idempotency_key)
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get_command(credential: (&str, &str), id: &str) -> Request<Body> {
    Request::get(format!("/api/v1/commands/{id}"))
        .header(credential.0, credential.1)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_token_subject_and_a_key_name_are_different_owners() {
    let db = PgDb::create("owners").await;
    let mut cfg = config("unused", &unique("owners"));
    cfg.postgres.url = db.url.clone();
    cfg.topics.commands = unique("owners-commands");
    atlasmesh_sinks::kafka::ensure_topics(&cfg.kafka, &[cfg.topics.commands.as_str()], 1)
        .await
        .unwrap();
    let st = state(&cfg).await;

    // Two callers named x: a token for fleet A, an API key for fleet B.
    let ttl = Duration::from_secs(300);
    let token = auth::issue_hs256(
        TEST_SECRET,
        "x",
        Role::Operator,
        &Scope::fleets(["fleet-a"]),
        ttl,
    );
    let bearer = format!("Bearer {token}");
    let jwt = ("authorization", bearer.as_str());
    let (_, api_key) =
        auth::create_api_key(&db.pool, "x", Role::Operator, &Scope::fleets(["fleet-b"]))
            .await
            .unwrap();
    let key = ("x-api-key", api_key.as_str());
    // And x of another issuer (no issuer is configured, so any is accepted).
    let claims = auth::Claims::new("x", Role::Operator, &Scope::fleets(["fleet-a"]), ttl)
        .with_issuer(Some("other-idp".into()));
    let other_bearer = format!("Bearer {}", auth::sign_hs256(TEST_SECRET, &claims));
    let other = ("authorization", other_bearer.as_str());

    // The same Idempotency-Key, different requests: each caller gets its own command.
    let (s, by_jwt) = send(&st, post_pool(jwt, "shared-key", "fleet-a")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{by_jwt}");
    let (s, by_key) = send(&st, post_pool(key, "shared-key", "fleet-b")).await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "the key's request hit the token's idempotency key: {by_key}"
    );
    let (s, by_other) = send(&st, post_pool(other, "shared-key", "fleet-a")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{by_other}");
    let ids: Vec<&str> = [&by_jwt, &by_key, &by_other]
        .iter()
        .map(|v| v["command_id"].as_str().unwrap())
        .collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );

    // Each reads its own command only; the others' are 404.
    for (i, who) in [jwt, key, other].into_iter().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            let (s, v) = send(&st, get_command(who, id)).await;
            if i == j {
                assert_eq!(s, StatusCode::OK, "{v}");
                assert_eq!(v["command_id"], *id);
            } else {
                assert_eq!(s, StatusCode::NOT_FOUND, "caller {i} read command {j}: {v}");
                assert_eq!(v["error"]["code"], "not_found");
            }
        }
    }
    // The stored actors say who.
    let mut actors: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM command_log ORDER BY actor")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    actors.sort();
    assert_eq!(actors, ["jwt:other-idp:x", "jwt:x", "key:x"]);

    // Within one caller the key still means the same command.
    let (s, again) = send(&st, post_pool(key, "shared-key", "fleet-b")).await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a different body under a used key: {again}"
    );
    db.drop().await;
}
