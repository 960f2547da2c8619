//! simulator → Tansu → worker → ClickHouse / Redis / Kafka → API, with every kind of bad input.

use std::collections::BTreeMap;
use std::time::Duration;

use atlasmesh_schemas::{Codec, DeadLetterRecord};
use atlasmesh_simulator::{valid_counted_events, EventKind, SimConfig, Simulator};
use axum::body::Body;
use http_body_util::BodyExt;
use rdkafka::message::{Headers, Message};
use tower::ServiceExt;

use crate::common::{sigterm, TestEnv};
use crate::reference;

async fn get_json(app: &axum::Router, uri: &str) -> (u16, serde_json::Value) {
    let token = atlasmesh_query_api::auth::issue_hs256(
        crate::common::JWT_SECRET,
        "e2e",
        atlasmesh_core::Role::Viewer,
        &atlasmesh_core::Scope::all(),
        std::time::Duration::from_secs(600),
    );
    let req = axum::http::Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_matches_independent_reference_and_bad_input_reaches_the_dlq() {
    let env = TestEnv::new("e2e");
    env.migrate();
    let schema_id = env.telemetry_schema_id().await;
    let sim_cfg = SimConfig {
        seed: 7,
        fleets: 2,
        vehicles_per_fleet: 6,
        out_of_order_pct: 0.02,
        duplicate_pct: 0.01,
        malformed_pct: 0.003,
        invalid_pct: 0.003,
        late_pct: 0.001,
        offline_backlog_pct: 0.001,
        ..SimConfig::default()
    };
    let items = Simulator::new(sim_cfg)
        .with_schema_id(schema_id)
        .take(20_000);
    let count = |k: EventKind| items.iter().filter(|i| i.kind() == Some(k)).count();
    let malformed = items
        .iter()
        .filter(|i| matches!(i, atlasmesh_simulator::Emitted::Malformed { .. }))
        .count();
    let (invalid, too_late, duplicates, backlog) = (
        count(EventKind::Invalid),
        count(EventKind::TooLate),
        count(EventKind::Duplicate),
        count(EventKind::Backlog),
    );
    assert!(
        malformed > 0 && invalid > 0 && too_late > 0 && duplicates > 0 && backlog > 0,
        "scenario covers every injection"
    );
    let counted = valid_counted_events(&items);
    let want_vehicle = reference::vehicle_windows(&counted);
    let want_fleet = reference::fleet_windows(&counted, &want_vehicle);

    env.produce(&items).await;
    let metrics_listen = format!(
        "127.0.0.1:{}",
        atlasmesh_test_support::tansu_broker::free_port().unwrap()
    );
    let worker_started = std::time::Instant::now();
    let mut worker =
        env.spawn_worker_with(0, &[("ATLASMESH_RUNNER__METRICS_LISTEN", &metrics_listen)]);
    let pg = env.pg().await;
    env.wait_checkpointed(&pg, items.len() as i64, Duration::from_secs(120))
        .await;
    env.assert_windows(&want_vehicle, &want_fleet, Duration::from_secs(30))
        .await;
    assert_eq!(
        env.raw_count().await,
        counted.len() as u64,
        "every valid event stored once"
    );

    // Dead letters: one per malformed, invalid and too-late message, with the reason.
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let consumer = env.consumer(&env.cfg.topics.dlq, "dlq-check");
    let expected = malformed + invalid + too_late;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = 0;
    while seen < expected {
        // The first message also waits for the new consumer group to be joined (slow on a
        // local broker holding a whole test run's topics).
        let wait = Duration::from_secs(if seen == 0 { 180 } else { 30 });
        let m = tokio::time::timeout(wait, consumer.recv())
            .await
            .expect("DLQ message")
            .unwrap();
        let header_reason = m
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == "reason")
                    .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).to_string()))
            })
            .expect("reason header");
        let (_, value) = codec.decode_value(m.payload().unwrap()).await.unwrap();
        let rec: DeadLetterRecord = apache_avro::from_value(&value).unwrap();
        assert_eq!(rec.reason.as_str(), header_reason);
        assert!(rec.original_value.is_some() && !rec.error.is_empty());
        assert_eq!(rec.source_topic, env.cfg.topics.telemetry);
        *reasons.entry(header_reason).or_default() += 1;
        seen += 1;
    }
    assert_eq!(
        reasons.get("undecodable").copied().unwrap_or(0),
        malformed,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.get("invalid").copied().unwrap_or(0),
        invalid,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.get("late").copied().unwrap_or(0),
        too_late,
        "{reasons:?}"
    );
    // ... and nothing more: a DLQ'd message shows up exactly once.
    assert!(
        tokio::time::timeout(Duration::from_secs(3), consumer.recv())
            .await
            .is_err(),
        "no extra dead letters"
    );

    // Counted by topic and reason in Prometheus; logged at a bounded rate with the offset.
    let text = reqwest::get(format!("http://{metrics_listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (reason, n) in [
        ("undecodable", malformed),
        ("invalid", invalid),
        ("late", too_late),
    ] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("atlasmesh_dlq_messages_total{")
                    && l.contains(&format!("topic=\"{}\"", env.cfg.topics.telemetry))
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .unwrap_or_else(|| panic!("no DLQ counter for {reason} in:\n{text}"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(value as usize, n, "{line}");
    }
    let log = std::fs::read_to_string(env.log_dir.join("worker-0.log")).unwrap();
    let logged: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "Message dead-lettered.")
        .collect();
    let secs = worker_started.elapsed().as_secs() + 1;
    assert!(
        !logged.is_empty() && logged.len() as u64 <= 10 * secs,
        "{} dead-letter log lines in {secs} s",
        logged.len()
    );
    assert!(logged.iter().all(|v| v["offset"].is_i64()
        && v["reason"].is_string()
        && v["topic"] == env.cfg.topics.telemetry.as_str()));
    let suppressed: u64 = logged
        .iter()
        .map(|v| v["suppressed_since_last"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        logged.len() as u64 + suppressed <= expected as u64,
        "logged {} + suppressed {suppressed} > {expected}",
        logged.len()
    );

    // The API serves the same numbers: latest vehicle state and fleet KPIs from Redis, window
    // metrics from ClickHouse.
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let state = atlasmesh_query_api::AppState::connect(&env.cfg, handle)
        .await
        .unwrap();
    let app = atlasmesh_query_api::app(state);
    let mut newest: BTreeMap<&str, &atlasmesh_core::TelemetryEvent> = BTreeMap::new();
    for e in &counted {
        let slot = newest.entry(&e.vehicle_id).or_insert(e);
        if (e.ts_ms, e.seq) > (slot.ts_ms, slot.seq) {
            *slot = e;
        }
    }
    for (v, e) in &newest {
        let (status, body) = get_json(
            &app,
            &format!("/api/v1/fleets/{}/vehicles/{v}/latest", e.fleet_id),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["ts_ms"], e.ts_ms);
        assert_eq!(body["seq"], e.seq);
        assert_eq!(body["odometer_km"], e.odometer_km);
    }
    let (status, kpis) = get_json(&app, "/api/v1/fleets/fleet-001/kpis").await;
    assert_eq!(status, 200, "{kpis}");
    assert_eq!(kpis["live"]["vehicles"], 6, "{kpis}");
    let ws = kpis["window"]["window_start_ms"]
        .as_i64()
        .expect("a closed window");
    let want = &want_fleet[&("fleet-001".to_string(), ws)];
    assert_eq!(kpis["window"]["observed_ms"], want.observed_ms, "{kpis}");
    assert_eq!(kpis["window"]["distance_m"], want.distance_m, "{kpis}");
    assert_eq!(kpis["window"]["busy_ms"], want.busy_ms, "{kpis}");
    let first = want_fleet.keys().find(|(f, _)| f == "fleet-001").unwrap().1;
    let (status, page) = get_json(
        &app,
        &format!(
            "/api/v1/fleet-performance/metrics/fleet-001?from={first}&to={}&limit=3",
            first + 180_000
        ),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let items_json = page["items"].as_array().unwrap();
    assert_eq!(items_json.len(), 3);
    for (i, it) in items_json.iter().enumerate() {
        let w = &want_fleet[&("fleet-001".to_string(), first + i as i64 * 60_000)];
        assert_eq!(it["window_start_ms"], first + i as i64 * 60_000);
        assert_eq!(it["busy_ms"], w.busy_ms);
        assert_eq!(it["energy_wh"], w.energy_wh);
        assert_eq!(it["samples"], w.samples);
    }
    let (status, err) = get_json(&app, "/api/v1/fleet-performance/metrics?limit=0").await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "bad_request");
    sigterm(&mut worker);
}
