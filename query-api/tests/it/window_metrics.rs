use atlasmesh_core::window::{Counters, WindowResult, WindowScope};
use atlasmesh_sinks::clickhouse::{FleetPartialRow, VehicleWindowRow};
use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

const W0: i64 = 1_700_000_040_000; // 2023-11-14T22:14:00Z
const W1: i64 = W0 + 60_000;
const W2: i64 = W0 + 120_000;

/// A window row as the telemetry pipeline writes it (sinks' own row types), with the
/// emission time the fixture needs to tell versions apart.
fn result(
    scope: WindowScope,
    fleet: &str,
    vehicle: &str,
    w: i64,
    version: u32,
    c: &Counters,
) -> WindowResult {
    WindowResult {
        scope,
        fleet_id: fleet.into(),
        vehicle_id: vehicle.into(),
        window_start_ms: w,
        window_end_ms: w + 60_000,
        version,
        counters: c.clone(),
    }
}

fn vrow(fleet: &str, vehicle: &str, w: i64, version: u32, c: &Counters) -> VehicleWindowRow {
    let r = result(WindowScope::Vehicle, fleet, vehicle, w, version, c);
    VehicleWindowRow {
        emitted_at_ms: w + 65_000 + version as i64,
        ..VehicleWindowRow::from_result(&r, 0)
    }
}

fn frow(fleet: &str, w: i64, partition: i32, version: u32, c: &Counters) -> FleetPartialRow {
    let r = result(WindowScope::FleetPartial, fleet, "", w, version, c);
    FleetPartialRow {
        emitted_at_ms: w + 65_000 + version as i64,
        ..FleetPartialRow::from_result(&r, partition)
    }
}

async fn insert<T: clickhouse::RowOwned + clickhouse::RowWrite>(
    client: &clickhouse::Client,
    table: &str,
    rows: Vec<T>,
) {
    let mut ins = client.insert::<T>(table).await.unwrap();
    for r in &rows {
        ins.write(r).await.unwrap();
    }
    ins.end().await.unwrap();
}

fn c(busy: u64, observed: u64, distance_m: u64, energy_wh: u64) -> Counters {
    Counters {
        samples: observed / 1000,
        observed_ms: observed,
        busy_ms: busy,
        available_ms: observed,
        idle_ms: observed - busy,
        distance_m,
        energy_wh,
        moving_samples: 4,
        moving_speed_ckph_sum: 12_000,
        fault_count: 1,
        mission_count: 2,
        active_vehicles: 1,
        vehicles: 1,
        ..Counters::default()
    }
}

/// Loads the fixture. Each batch is its own INSERT (its own part), so the second version of
/// a window only wins through FINAL, not through insertion order inside a part.
async fn fixture(db: &ClickHouseDb) {
    let ch = &db.client;
    // Vehicle windows: fa/v1 W0 twice (version 2 must win), fa/v1 W1, fa/v2 W0, fb/v9 W0.
    insert(
        ch,
        "vehicle_window_metrics",
        vec![vrow("fa", "v1", W0, 1, &c(10_000, 60_000, 1_000, 200))],
    )
    .await;
    insert(
        ch,
        "vehicle_window_metrics",
        vec![
            vrow("fa", "v1", W0, 2, &c(45_000, 60_000, 2_000, 500)),
            vrow("fa", "v1", W1, 1, &c(0, 0, 0, 0)),
            vrow("fa", "v2", W0, 1, &c(15_000, 60_000, 3_000, 1_000)),
            vrow("fb", "v9", W0, 1, &c(60_000, 60_000, 4_000, 1_000)),
        ],
    )
    .await;
    // A stale re-send of version 1 arriving after version 2 must not win either.
    insert(
        ch,
        "vehicle_window_metrics",
        vec![vrow("fa", "v1", W0, 1, &c(1, 60_000, 1, 1))],
    )
    .await;

    // Fleet partials: fa W0 from partitions 0 (versions 1 and 2) and 1; fa W1 from 0; fb W0.
    insert(
        ch,
        "fleet_window_partials",
        vec![frow("fa", W0, 0, 1, &c(10_000, 60_000, 1_000, 200))],
    )
    .await;
    insert(
        ch,
        "fleet_window_partials",
        vec![
            frow("fa", W0, 0, 2, &c(20_000, 60_000, 2_000, 500)),
            frow("fa", W0, 1, 1, &c(40_000, 60_000, 3_000, 1_000)),
            frow("fa", W1, 0, 1, &c(0, 0, 0, 0)),
            frow("fb", W0, 0, 1, &c(60_000, 60_000, 4_000, 1_000)),
        ],
    )
    .await;
}

async fn setup(tag: &str) -> (ClickHouseDb, atlasmesh_query_api::AppState) {
    let db = ClickHouseDb::create(tag).await;
    fixture(&db).await;
    let st = state(&config(&db.name, &unique("unused"))).await;
    (db, st)
}

fn keys(items: &Value) -> Vec<(String, String, i64)> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["fleet_id"].as_str().unwrap().to_string(),
                i["vehicle_id"].as_str().unwrap_or("").to_string(),
                i["window_start_ms"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn k(f: &str, v: &str, w: i64) -> (String, String, i64) {
    (f.to_string(), v.to_string(), w)
}

#[tokio::test]
async fn fleet_scope_sums_newest_partials_exactly() {
    let (db, st) = setup("fleet").await;
    let (s, body) = get(&st, "/api/v1/fleet-performance/metrics").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        keys(&body["items"]),
        vec![k("fa", "", W0), k("fa", "", W1), k("fb", "", W0)]
    );
    assert_eq!(body["next_cursor"], Value::Null);
    // fa W0 = partition 0 version 2 + partition 1 (version 1 of partition 0 is replaced).
    assert_eq!(
        body["items"][0],
        json!({
            "fleet_id": "fa",
            "window_start": "2023-11-14T22:14:00Z",
            "window_start_ms": W0,
            "window_end_ms": W0 + 60_000,
            "partials": 2,
            "samples": 120, "observed_ms": 120_000, "busy_ms": 60_000, "available_ms": 120_000,
            "idle_ms": 60_000, "charging_ms": 0, "maintenance_ms": 0, "fault_ms": 0, "offline_ms": 0,
            "distance_m": 5_000, "energy_wh": 1_500, "moving_samples": 8,
            "moving_speed_ckph_sum": 24_000, "fault_count": 2, "mission_count": 4,
            "active_vehicles": 2, "vehicles": 2,
            "utilization": 0.5, "availability": 1.0, "idle_share": 0.5,
            "distance_km": 5.0, "energy_kwh": 1.5, "kwh_per_km": 0.3, "avg_moving_speed_kph": 30.0
        })
    );
    // A window without observed time or distance: ratios are null, not 0 or NaN.
    let w1 = &body["items"][1];
    assert_eq!(w1["partials"], 1);
    for f in ["utilization", "availability", "idle_share", "kwh_per_km"] {
        assert_eq!(w1[f], Value::Null, "{f}");
    }
    assert_eq!(w1["distance_km"], 0.0);
    assert_eq!(w1["avg_moving_speed_kph"], 30.0);

    // Filters: fleet, time range (RFC 3339 and epoch ms), path form.
    let (_, b) = get(&st, "/api/v1/fleet-performance/metrics?fleet_id=fb").await;
    assert_eq!(keys(&b["items"]), vec![k("fb", "", W0)]);
    assert_eq!(b["items"][0]["utilization"], 1.0);
    assert_eq!(b["items"][0]["kwh_per_km"], 0.25);
    let (_, b) = get(&st, &format!("/api/v1/fleet-performance/metrics?from={W1}")).await;
    assert_eq!(keys(&b["items"]), vec![k("fa", "", W1)]);
    let (_, b) = get(
        &st,
        "/api/v1/fleet-performance/metrics?from=2023-11-14T22:14:00Z&to=2023-11-14T23:15:00%2B01:00",
    )
    .await;
    assert_eq!(keys(&b["items"]), vec![k("fa", "", W0), k("fb", "", W0)]);
    let (_, b) = get(
        &st,
        &format!("/api/v1/fleet-performance/metrics/fa?to={W1}"),
    )
    .await;
    assert_eq!(keys(&b["items"]), vec![k("fa", "", W0)]);
    let (s, b) = get(&st, "/api/v1/fleet-performance/metrics/nope").await;
    assert_eq!(
        (s, b),
        (StatusCode::OK, json!({"items": [], "next_cursor": null}))
    );
    let (_, b) = get(&st, &format!("/api/v1/fleet-performance/metrics?from={W2}")).await;
    assert_eq!(b["items"], json!([]));
    db.drop().await;
}

#[tokio::test]
async fn pagination_walks_every_row_once_in_order() {
    let (db, st) = setup("page").await;
    // Fleet scope, one row per page.
    let mut got = Vec::new();
    let mut uri = "/api/v1/fleet-performance/metrics?limit=1".to_string();
    let mut pages = 0;
    loop {
        let (s, b) = get(&st, &uri).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        pages += 1;
        got.extend(keys(&b["items"]));
        match b["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/fleet-performance/metrics?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(got, vec![k("fa", "", W0), k("fa", "", W1), k("fb", "", W0)]);
    assert_eq!(pages, 3);

    // Vehicle scope, two per page: exactly two full pages, the second without a cursor.
    let (_, b1) = get(
        &st,
        "/api/v1/fleet-performance/metrics?scope=vehicle&limit=2",
    )
    .await;
    assert_eq!(
        keys(&b1["items"]),
        vec![k("fa", "v1", W0), k("fa", "v1", W1)]
    );
    let cursor = b1["next_cursor"].as_str().unwrap();
    let (_, b2) = get(
        &st,
        &format!("/api/v1/fleet-performance/metrics?scope=vehicle&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        keys(&b2["items"]),
        vec![k("fa", "v2", W0), k("fb", "v9", W0)]
    );
    assert_eq!(b2["next_cursor"], Value::Null);

    // The cursor composes with filters (path form).
    let (_, b) = get(
        &st,
        "/api/v1/fleet-performance/metrics/fa?scope=vehicle&limit=1",
    )
    .await;
    assert_eq!(keys(&b["items"]), vec![k("fa", "v1", W0)]);
    let c = b["next_cursor"].as_str().unwrap();
    let (_, b) = get(
        &st,
        &format!("/api/v1/fleet-performance/metrics/fa?scope=vehicle&limit=5&cursor={c}"),
    )
    .await;
    assert_eq!(
        keys(&b["items"]),
        vec![k("fa", "v1", W1), k("fa", "v2", W0)]
    );
    assert_eq!(b["next_cursor"], Value::Null);

    // A fleet cursor is refused in vehicle scope.
    let (_, b) = get(&st, "/api/v1/fleet-performance/metrics?limit=1").await;
    let c = b["next_cursor"].as_str().unwrap();
    let (s, b) = get(
        &st,
        &format!("/api/v1/fleet-performance/metrics?scope=vehicle&cursor={c}"),
    )
    .await;
    assert_bad_request(s, &b, &["cursor"]);
    db.drop().await;
}

#[tokio::test]
async fn vehicle_scope_returns_the_newest_version() {
    let (db, st) = setup("vehicle").await;
    let (s, b) = get(
        &st,
        "/api/v1/fleet-performance/metrics?scope=vehicle&fleet_id=fa&vehicle_id=v1",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        keys(&b["items"]),
        vec![k("fa", "v1", W0), k("fa", "v1", W1)]
    );
    assert_eq!(
        b["items"][0],
        json!({
            "fleet_id": "fa", "vehicle_id": "v1",
            "window_start": "2023-11-14T22:14:00Z", "window_start_ms": W0, "window_end_ms": W0 + 60_000,
            "version": 2,
            "samples": 60, "observed_ms": 60_000, "busy_ms": 45_000, "available_ms": 60_000,
            "idle_ms": 15_000, "charging_ms": 0, "maintenance_ms": 0, "fault_ms": 0, "offline_ms": 0,
            "distance_m": 2_000, "energy_wh": 500, "moving_samples": 4, "moving_speed_ckph_sum": 12_000,
            "fault_count": 1, "mission_count": 2, "active_vehicles": 1, "vehicles": 1,
            "utilization": 0.75, "availability": 1.0, "idle_share": 0.25,
            "distance_km": 2.0, "energy_kwh": 0.5, "kwh_per_km": 0.25, "avg_moving_speed_kph": 30.0
        })
    );
    let (_, b) = get(&st, "/api/v1/fleet-performance/metrics/fa?scope=vehicle").await;
    assert_eq!(
        keys(&b["items"]),
        vec![k("fa", "v1", W0), k("fa", "v1", W1), k("fa", "v2", W0)]
    );
    assert_eq!(b["items"][2]["utilization"], 0.25);
    assert_eq!(b["items"][2]["version"], 1);
    let (_, b) = get(&st, "/api/v1/fleet-performance/metrics?scope=vehicle").await;
    assert_eq!(b["items"].as_array().unwrap().len(), 4);
    // Quotes and backslashes are bound, never spliced into SQL.
    let (s, b) = get(
        &st,
        "/api/v1/fleet-performance/metrics?scope=vehicle&fleet_id=fa%27%20OR%201%3D1%20--%5C",
    )
    .await;
    assert_eq!(
        (s, b),
        (StatusCode::OK, json!({"items": [], "next_cursor": null}))
    );
    db.drop().await;
}

#[tokio::test]
async fn bad_parameters_are_400_with_fields() {
    // No ClickHouse needed: validation answers before any query.
    let st = state(&config("unused", &unique("unused"))).await;
    let base = "/api/v1/fleet-performance/metrics";
    let cases: &[(&str, &[&str])] = &[
        ("?bogus=1", &["bogus"]),
        ("?limit=0", &["limit"]),
        ("?limit=51", &["limit"]),
        ("?limit=ten", &["limit"]),
        ("?limit=1&limit=2", &["limit"]),
        ("?scope=depot", &["scope"]),
        ("?vehicle_id=v1", &["vehicle_id"]),
        ("?scope=fleet&vehicle_id=v1", &["vehicle_id"]),
        ("?from=yesterday", &["from"]),
        ("?to=2023-13-01T00:00:00Z", &["to"]),
        ("?from=1700000100000&to=1700000040000", &["from"]),
        ("?from=1700000040000&to=1700000040000", &["from"]),
        ("?cursor=not-a-cursor", &["cursor"]),
        ("?fleet_id=", &["fleet_id"]),
        ("?limit=0&scope=x&from=y", &["from", "limit", "scope"]),
    ];
    for (q, fields) in cases {
        let (s, b) = get(&st, &format!("{base}{q}")).await;
        assert_bad_request(s, &b, fields);
    }
    // The path form has no fleet_id parameter.
    let (s, b) = get(&st, &format!("{base}/fa?fleet_id=fb")).await;
    assert_bad_request(s, &b, &["fleet_id"]);
    let (s, b) = get(&st, &format!("{base}/fa?limit=-1")).await;
    assert_bad_request(s, &b, &["limit"]);
}

#[tokio::test]
async fn clickhouse_down_is_503_with_generic_body() {
    let mut cfg = config("unused", &unique("unused"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.clickhouse.url = format!("http://127.0.0.1:{port}");
    let st = state(&cfg).await;
    let (s, b) = get(&st, "/api/v1/fleet-performance/metrics").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["error"]["code"], "unavailable");
    assert!(
        !b["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&port.to_string()),
        "{b}"
    );
}

/// A caller scoped to fleet `fa` sees only `fa`'s windows, is refused `fb` (403) and a caller
/// without credentials is refused (401); the same holds for the Redis KPI reads.
#[tokio::test]
async fn reads_are_limited_to_the_callers_fleets() {
    use atlasmesh_core::{Role, Scope};
    use tower::ServiceExt;
    let (_db, st) = setup("scoped").await;
    let fa = Scope::fleets(["fa"]);
    let (s, b) = crate::common::get_as(
        &st,
        "/api/v1/fleet-performance/metrics?scope=vehicle&limit=50",
        Role::Viewer,
        &fa,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let fleets: std::collections::BTreeSet<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["fleet_id"].as_str().unwrap())
        .collect();
    assert_eq!(fleets.into_iter().collect::<Vec<_>>(), ["fa"]);
    let (s, b) = crate::common::get(
        &st,
        "/api/v1/fleet-performance/metrics?scope=vehicle&limit=50",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["fleet_id"] == "fb"),
        "the unrestricted caller sees fb"
    );
    for uri in [
        "/api/v1/fleet-performance/metrics?fleet_id=fb",
        "/api/v1/fleet-performance/metrics/fb",
        "/api/v1/fleets/fb/kpis",
        "/api/v1/fleets/fb/vehicles/v1/latest",
    ] {
        let (s, b) = crate::common::get_as(&st, uri, Role::Viewer, &fa).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{uri}: {b}");
        assert_eq!(b["error"]["code"], "forbidden");
    }
    let (s, b) = crate::common::get_as(
        &st,
        "/api/v1/fleet-performance/metrics",
        Role::Viewer,
        &Scope::default(),
    )
    .await;
    assert_eq!(
        (s, b["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let res = atlasmesh_query_api::app(st.clone())
        .oneshot(
            axum::http::Request::builder()
                .uri("/api/v1/fleets/fa/kpis")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
