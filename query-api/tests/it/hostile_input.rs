//! Hostile input to the API (issue 10): time parameters and cursors are bounded (years
//! 0001..9999), so values that would overflow instant arithmetic are a 400 naming the parameter,
//! never a 503 or a panic; invented HTTP methods do not grow `/metrics`.

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use crate::common::{assert_bad_request, config, get, state, unique};

/// A window-metrics cursor (hex of its JSON) whose instant is `w`.
fn cursor_at(w: i64) -> String {
    format!(r#"{{"s":"fleet","f":"f1","w":{w}}}"#)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn overflowing_instants_are_bad_requests() {
    let st = state(&config("unused", &unique("tb"))).await;
    let max = i64::MAX;
    let min = i64::MIN;
    for (uri, field) in [
        (format!("/api/v1/missions/executions?from={max}"), "from"),
        (format!("/api/v1/missions/executions?to={min}"), "to"),
        (
            format!("/api/v1/fleet-performance/metrics/f1?from={max}"),
            "from",
        ),
        (format!("/api/v1/fleet-performance/metrics?to={min}"), "to"),
        (format!("/api/v1/fleets/f1/report?to={min}"), "to"),
        (format!("/api/v1/fleets/f1/report?from={min}"), "from"),
        (
            "/api/v1/fleets/f1/report?to=99999999999999999999".to_string(),
            "to",
        ),
        (
            format!(
                "/api/v1/fleet-performance/metrics/f1?cursor={}",
                cursor_at(max)
            ),
            "cursor",
        ),
    ] {
        let (s, b) = get(&st, &uri).await;
        assert_bad_request(s, &b, &[field]);
    }
}

#[tokio::test]
async fn invented_methods_do_not_grow_metrics() {
    let st = state(&config("unused", &unique("meth"))).await;
    let app = atlasmesh_query_api::app(st.clone());
    let render_metrics = |app: axum::Router| async move {
        let res = app
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(res.into_body(), 16 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let send = |m: String| {
        let app = app.clone();
        async move {
            app.oneshot(
                Request::builder()
                    .method(m.as_str())
                    .uri("/health")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
        }
    };
    send("XWARMUP".into()).await;
    let before = render_metrics(app.clone()).await;
    for i in 0..50 {
        let status = send(format!("XABC{i}")).await;
        assert!(status.is_client_error(), "{status}");
    }
    let after = render_metrics(app.clone()).await;
    assert!(!after.contains("XABC"), "a made-up method became a label");
    assert!(after.contains("method=\"other\""));
    // The registry is shared by the tests of this binary: compare only this test's series.
    let other = |t: &str| t.lines().filter(|l| l.contains("method=\"other\"")).count();
    assert!(other(&before) > 0);
    assert_eq!(
        other(&before),
        other(&after),
        "50 made-up methods added series"
    );
}

#[tokio::test]
async fn nul_in_a_path_id_filter_or_body_is_a_field_error() {
    let st = state(&config("unused", &unique("nul"))).await;
    let (s, b) = get(&st, "/api/v1/missions/executions/a%00b").await;
    assert_bad_request(s, &b, &["path"]);
    let (s, b) = get(&st, "/api/v1/missions/executions?fleet_id=f%001").await;
    assert_bad_request(s, &b, &["fleet_id"]);
    let (s, b) = get(&st, "/api/v1/fleet-performance/metrics/f1?cursor=%00").await;
    assert_bad_request(s, &b, &["cursor"]);

    let token = crate::common::token(atlasmesh_core::Role::Admin, &atlasmesh_core::Scope::all());
    let res = atlasmesh_query_api::app(st.clone())
        .oneshot(
            Request::post("/api/v1/fleet-resources/pools")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(
                    r#"{"fleet_id":"f1","name":"a\u0000b","resource_type":"charger","capacity":4}"#,
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(body["error"]["fields"]["name"].is_string(), "{body}");
}
