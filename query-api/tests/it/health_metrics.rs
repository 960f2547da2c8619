use std::collections::BTreeMap;

use atlasmesh_query_api::metrics::{compute_lag, read_checkpoints, Checkpoint};
use axum::http::StatusCode;
use sqlx::Connection;
use tower::ServiceExt;

use crate::common::*;

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn health_is_503_and_names_the_failing_dependency() {
    let mut cfg = config("default", &unique("health"));
    cfg.clickhouse.url = format!("http://127.0.0.1:{}", closed_port());
    cfg.kafka.brokers = format!("127.0.0.1:{}", closed_port());
    cfg.schema_registry.url = format!("http://127.0.0.1:{}", closed_port());
    let st = state(&cfg).await;
    let (s, b) = get(&st, "/health").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["status"], "degraded");
    let checks = b["checks"].as_object().unwrap();
    let names: Vec<&str> = checks.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "clickhouse",
            "kafka",
            "postgres",
            "redis",
            "schema_registry"
        ]
    );
    for down in ["clickhouse", "kafka", "schema_registry"] {
        assert_eq!(checks[down]["status"], "down", "{down}: {b}");
        assert!(!checks[down]["error"].as_str().unwrap().is_empty(), "{b}");
    }
    for up in ["postgres", "redis"] {
        assert_eq!(checks[up]["status"], "up", "{up}: {b}");
        assert!(checks[up]["latency_ms"].is_u64());
        assert!(checks[up].get("error").is_none());
    }

    // Without credentials: the same statuses, no error strings.
    let res = atlasmesh_query_api::app(st.clone())
        .oneshot(
            axum::http::Request::get("/health")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let anon: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    for (name, check) in anon["checks"].as_object().unwrap() {
        assert_eq!(check["status"], checks[name]["status"], "{anon}");
        assert!(check.get("error").is_none(), "{anon}");
    }

    let (s, text) = get(&st, "/metrics").await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(
        text.contains("atlasmesh_dependency_up{dependency=\"redis\"}"),
        "{text}"
    );
    assert!(
        text.contains("atlasmesh_dependency_up{dependency=\"clickhouse\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn health_probes_a_real_clickhouse() {
    let st = state(&config("default", &unique("health2"))).await;
    let (_, b) = get(&st, "/health").await;
    assert_eq!(b["checks"]["clickhouse"]["status"], "up", "{b}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let st = state(&config("default", &unique("metrics"))).await;
    let (s, _) = get(&st, "/api/v1/fleets/some-fleet-id/kpis").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = get(&st, "/no/such/route").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "not_found");
    let (_, text) = get(&st, "/metrics").await;
    let text = text.as_str().unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("atlasmesh_http_requests_total{")
                && l.contains("route=\"/api/v1/fleets/{fleet_id}/kpis\"")
                && l.contains("status=\"404\"")
                && l.contains("method=\"GET\"")
        })
        .unwrap_or_else(|| panic!("no request counter in\n{text}"));
    assert!(!line.contains("some-fleet-id"));
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(
        text.contains("atlasmesh_http_request_duration_seconds"),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_lists_every_endpoint() {
    let st = state(&config("default", &unique("openapi"))).await;
    let (s, doc) = get(&st, "/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: std::collections::BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/api/v1/commands/{command_id}",
        "/api/v1/fleet-performance/metrics",
        "/api/v1/fleet-performance/metrics/{fleet_id}",
        "/api/v1/fleets/{fleet_id}/kpis",
        "/api/v1/fleets/{fleet_id}/vehicles/{vehicle_id}/latest",
        "/api/v1/openapi.json",
        "/api/v1/whoami",
        "/health",
        "/metrics",
    ] {
        assert!(paths.contains(p), "{p} missing from {paths:?}");
    }
    // Every resource of the generic layer, its items and its lookups.
    for e in atlasmesh_query_api::resources::catalog() {
        let i = e.info;
        assert!(paths.contains(i.path), "{} missing", i.path);
        assert!(
            paths.contains(i.entity_route().as_str()),
            "{} missing",
            i.entity_route()
        );
        for l in i.lookups {
            let p = format!("{}/{}/{{value}}", i.path, l.segment);
            assert!(paths.contains(p.as_str()), "{p} missing");
        }
    }
    let list = &doc["paths"]["/api/v1/fleet-performance/metrics"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "scope",
            "fleet_id",
            "vehicle_id",
            "from",
            "to",
            "limit",
            "cursor"
        ]
    );
    assert!(list["responses"]["400"].is_object());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "ErrorBody",
        "WindowMetricsPage",
        "WindowMetric",
        "FleetKpis",
        "VehicleLatest",
        "Health",
    ] {
        assert!(schemas.contains_key(s), "{s}");
    }
    assert_eq!(
        doc["components"]["schemas"]["ErrorCode"]["enum"],
        serde_json::json!([
            "bad_request",
            "unauthorized",
            "forbidden",
            "not_found",
            "conflict",
            "unprocessable_entity",
            "too_many_requests",
            "unavailable",
            "internal",
            "method_not_allowed",
            "request_timeout",
            "payload_too_large",
            "unsupported_media_type",
            "request_header_fields_too_large"
        ])
    );
}

#[tokio::test]
async fn lag_monitor_reads_checkpoints_from_postgres() {
    // A private database holding the project's PostgreSQL migrations.
    let name = unique("lag");
    let mut admin = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = url_with_database(&database_url(), &name);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        sqlx::raw_sql(&std::fs::read_to_string(f).unwrap())
            .execute(&pool)
            .await
            .unwrap();
    }
    for (pipeline, partition, offset) in [
        ("telemetry", 1, 40i64),
        ("telemetry", 0, 90),
        ("alerts", 0, 7),
    ] {
        sqlx::query(
            "INSERT INTO stream_checkpoints (pipeline, topic, partition, next_offset, state) \
             VALUES ($1, 'fleet.telemetry.v1', $2, $3, ''::bytea)",
        )
        .bind(pipeline)
        .bind(partition)
        .bind(offset)
        .execute(&pool)
        .await
        .unwrap();
    }
    let cps = read_checkpoints(&pool).await.unwrap();
    let cp = |p: &str, part: i32, off: i64| Checkpoint {
        pipeline: p.into(),
        topic: "fleet.telemetry.v1".into(),
        partition: part,
        next_offset: off,
    };
    assert_eq!(
        cps,
        vec![
            cp("alerts", 0, 7),
            cp("telemetry", 0, 90),
            cp("telemetry", 1, 40)
        ]
    );
    let highs = BTreeMap::from([
        (("fleet.telemetry.v1".to_string(), 0), 100),
        (("fleet.telemetry.v1".to_string(), 1), 40),
    ]);
    let lags: Vec<i64> = compute_lag(&cps, &highs)
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(lags, vec![93, 10, 0]);

    // The monitor itself tolerates a missing Kafka (it logs and retries).
    let mut cfg = config("default", &unique("lag"));
    cfg.postgres.url = url;
    cfg.kafka.brokers = format!("127.0.0.1:{}", closed_port());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let handle = atlasmesh_query_api::spawn_lag_monitor(state(&cfg).await, stop_rx);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!handle.is_finished());
    handle.abort();

    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn serve_answers_over_tcp_and_stops_on_shutdown() {
    let st = state(&config("default", &unique("serve"))).await;
    let port = closed_port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        atlasmesh_query_api::serve(st, &format!("127.0.0.1:{port}"), async {
            let _ = rx.await;
        })
        .await
    });
    let url = format!("http://127.0.0.1:{port}/api/v1/fleets/x/vehicles/y/latest");
    let mut res = None;
    for _ in 0..50 {
        let bearer = token(atlasmesh_core::Role::Viewer, &atlasmesh_core::Scope::all());
        match reqwest::Client::new()
            .get(&url)
            .bearer_auth(bearer)
            .send()
            .await
        {
            Ok(r) => {
                res = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let res = res.expect("server never answered");
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
