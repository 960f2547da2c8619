use atlasmesh_core::keys::{self, FleetPartialKpi};
use atlasmesh_core::window::Counters;
use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

const W0: i64 = 1_700_000_040_000;
const W1: i64 = W0 + 60_000;

fn event(
    fleet: &str,
    vehicle: &str,
    ts_ms: i64,
    status: VehicleStatus,
    energy_pct: f64,
) -> TelemetryEvent {
    TelemetryEvent {
        event_id: format!("{vehicle}-{ts_ms}"),
        fleet_id: fleet.into(),
        vehicle_id: vehicle.into(),
        ts_ms,
        seq: 7,
        lat: 52.5,
        lon: 13.25,
        speed_kph: 36.5,
        odometer_km: 1234.5,
        energy_pct,
        energy_used_kwh: 55.125,
        status,
        mission_id: Some("m-1".into()),
        zone_id: None,
        payload_kg: 120.0,
        fault_codes: vec!["P0001".into()],
    }
}

fn partial(
    w: i64,
    partition: i32,
    version: u32,
    busy: u64,
    distance_m: u64,
    energy_wh: u64,
) -> FleetPartialKpi {
    FleetPartialKpi {
        window_start_ms: w,
        window_end_ms: w + 60_000,
        source_partition: partition,
        version,
        counters: Counters {
            samples: 60,
            observed_ms: 60_000,
            busy_ms: busy,
            available_ms: 50_000,
            idle_ms: 60_000 - busy,
            distance_m,
            energy_wh,
            moving_samples: 10,
            moving_speed_ckph_sum: 25_000,
            fault_count: 1,
            mission_count: 1,
            active_vehicles: 2,
            vehicles: 3,
            ..Counters::default()
        },
    }
}

struct Redis {
    conn: redis::aio::MultiplexedConnection,
    keys: Vec<String>,
}

impl Redis {
    async fn connect() -> Redis {
        let client = redis::Client::open(env_or("REDIS_URL", "redis://127.0.0.1:6379")).unwrap();
        Redis {
            conn: client.get_multiplexed_async_connection().await.unwrap(),
            keys: vec![],
        }
    }

    async fn hset(&mut self, key: &str, field: &str, value: impl redis::ToRedisArgs) {
        let _: () = redis::cmd("HSET")
            .arg(key)
            .arg(field)
            .arg(value)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        self.keys.push(key.to_string());
    }

    async fn cleanup(mut self) {
        for k in &self.keys {
            let _: () = redis::cmd("DEL")
                .arg(k)
                .query_async(&mut self.conn)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn fleet_kpis_from_redis_hashes() {
    let prefix = unique("kpi");
    let st = state(&config("unused", &prefix)).await;
    let mut r = Redis::connect().await;
    let vk = keys::fleet_vehicles(&prefix, "f1");
    let wk = keys::fleet_windows(&prefix, "f1");
    for ev in [
        event("f1", "v1", W1 + 1_000, VehicleStatus::EnRoute, 80.0),
        event("f1", "v2", W1 + 5_500, VehicleStatus::Charging, 60.0),
        event("f1", "v3", W1 + 2_000, VehicleStatus::EnRoute, 70.0),
    ] {
        // v2 in the JSON form written before the binary one: both are read.
        let value = match ev.vehicle_id.as_str() {
            "v2" => serde_json::to_vec(&ev).unwrap(),
            _ => keys::encode_latest(&ev),
        };
        r.hset(&vk, &ev.vehicle_id, value).await;
    }
    r.hset(&vk, "broken", "{not json").await;
    // Partition 0 has closed W0 and W1, partition 1 only W0: the complete window is W0.
    for p in [
        partial(W0, 0, 2, 30_000, 2_000, 500),
        partial(W0, 1, 1, 15_000, 3_000, 1_000),
        partial(W1, 0, 1, 60_000, 9_999, 9_999),
    ] {
        let field = keys::fleet_window_field(p.window_start_ms, p.source_partition);
        r.hset(&wk, &field, &serde_json::to_string(&p).unwrap())
            .await;
    }

    let (s, b) = get(&st, "/api/v1/fleets/f1/kpis").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({
            "fleet_id": "f1",
            "live": {
                "vehicles": 3,
                "by_status": {"offline": 0, "idle": 0, "en_route": 2, "on_mission": 0,
                              "charging": 1, "maintenance": 0, "fault": 0},
                "mean_energy_pct": 70.0,
                "newest_ts_ms": W1 + 5_500,
                "newest_ts": "2023-11-14T22:15:05.500Z"
            },
            "window": {
                "window_start": "2023-11-14T22:14:00Z",
                "window_start_ms": W0,
                "window_end_ms": W0 + 60_000,
                "partitions": 2,
                "samples": 120, "observed_ms": 120_000, "busy_ms": 45_000, "available_ms": 100_000,
                "idle_ms": 75_000, "charging_ms": 0, "maintenance_ms": 0, "fault_ms": 0, "offline_ms": 0,
                "distance_m": 5_000, "energy_wh": 1_500, "moving_samples": 20,
                "moving_speed_ckph_sum": 50_000, "fault_count": 2, "mission_count": 2,
                "active_vehicles": 4, "vehicles": 6,
                "utilization": 0.375, "availability": 100_000.0 / 120_000.0, "idle_share": 0.625,
                "distance_km": 5.0, "energy_kwh": 1.5, "kwh_per_km": 0.3, "avg_moving_speed_kph": 25.0
            }
        })
    );

    // Once partition 1 closes W1 too, W1 is the complete window.
    let p = partial(W1, 1, 1, 0, 1, 1);
    r.hset(
        &wk,
        &keys::fleet_window_field(W1, 1),
        &serde_json::to_string(&p).unwrap(),
    )
    .await;
    let (_, b) = get(&st, "/api/v1/fleets/f1/kpis").await;
    assert_eq!(b["window"]["window_start_ms"], W1);
    assert_eq!(b["window"]["busy_ms"], 60_000);
    assert_eq!(b["window"]["distance_m"], 10_000);
    assert_eq!(b["window"]["energy_wh"], 10_000);
    assert_eq!(b["window"]["kwh_per_km"], 1.0);
    r.cleanup().await;
}

/// The live KPIs come from the compact live hash when it holds every vehicle, and from the
/// whole events when it lacks some (state written before the live hash existed).
#[tokio::test]
async fn live_kpis_read_the_compact_hash_when_it_holds_every_vehicle() {
    let prefix = unique("kpilive");
    let st = state(&config("unused", &prefix)).await;
    let mut r = Redis::connect().await;
    let vk = keys::fleet_vehicles(&prefix, "f4");
    let lk = keys::fleet_live(&prefix, "f4");
    for ev in [
        event("f4", "v1", W1, VehicleStatus::Idle, 10.0),
        event("f4", "v2", W1, VehicleStatus::Idle, 20.0),
    ] {
        r.hset(&vk, &ev.vehicle_id, keys::encode_latest(&ev)).await;
    }
    // Only v1 in the live hash: the whole events are read.
    let v1 = keys::LiveSample {
        ts_ms: W1 + 7,
        energy_pct: 50.5,
        status: VehicleStatus::Charging,
    };
    r.hset(&lk, "v1", &v1.encode()).await;
    let (s, b) = get(&st, "/api/v1/fleets/f4/kpis").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["live"]["by_status"]["idle"], 2);
    assert_eq!(b["live"]["mean_energy_pct"], 15.0);
    // Both there: the compact values are the ones read.
    let v2 = keys::LiveSample {
        ts_ms: W1 + 9,
        energy_pct: 30.5,
        status: VehicleStatus::Fault,
    };
    r.hset(&lk, "v2", &v2.encode()).await;
    let (s, b) = get(&st, "/api/v1/fleets/f4/kpis").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["live"],
        json!({
            "vehicles": 2,
            "by_status": {"offline": 0, "idle": 0, "en_route": 0, "on_mission": 0,
                          "charging": 1, "maintenance": 0, "fault": 1},
            "mean_energy_pct": 40.5,
            "newest_ts_ms": W1 + 9,
            "newest_ts": "2023-11-14T22:15:00.009Z"
        })
    );
    assert_eq!(b["window"], Value::Null);
    r.cleanup().await;
}

/// The window index gives the window a scan of the field names gives; an unreadable partial
/// it points at sends the read back to the scan, which leaves that partial out.
#[tokio::test]
async fn window_from_the_index_is_the_window_of_the_scan() {
    let prefix = unique("kpiidx");
    let st = state(&config("unused", &prefix)).await;
    let mut r = Redis::connect().await;
    // Partition 0 closed W0 and W1, partition 1 only W0; fleet f5 has the index, f6 not.
    for fleet in ["f5", "f6"] {
        let wk = keys::fleet_windows(&prefix, fleet);
        for p in [
            partial(W0, 0, 2, 30_000, 2_000, 500),
            partial(W0, 1, 1, 15_000, 3_000, 1_000),
            partial(W1, 0, 1, 60_000, 9_999, 9_999),
        ] {
            let field = keys::fleet_window_field(p.window_start_ms, p.source_partition);
            r.hset(&wk, &field, &serde_json::to_string(&p).unwrap())
                .await;
        }
    }
    let ik = keys::fleet_window_index(&prefix, "f5");
    let _: () = redis::cmd("ZADD")
        .arg(&ik)
        .arg(W1)
        .arg(0)
        .arg(W0)
        .arg(1)
        .query_async(&mut r.conn)
        .await
        .unwrap();
    r.keys.push(ik);
    let (s5, b5) = get(&st, "/api/v1/fleets/f5/kpis").await;
    let (s6, b6) = get(&st, "/api/v1/fleets/f6/kpis").await;
    assert_eq!((s5, s6), (StatusCode::OK, StatusCode::OK), "{b5} {b6}");
    assert_eq!(b5["window"]["window_start_ms"], W0);
    assert_eq!(b5["window"]["partitions"], 2);
    assert_eq!(b5["window"], b6["window"]);
    // A damaged partial where the index points: the scan leaves it out and partition 1 has
    // nothing else, so W1 of partition 0 is the window.
    r.hset(
        &keys::fleet_windows(&prefix, "f5"),
        &keys::fleet_window_field(W0, 1),
        "not json",
    )
    .await;
    let (s, b) = get(&st, "/api/v1/fleets/f5/kpis").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["window"]["window_start_ms"], W1);
    assert_eq!(b["window"]["partitions"], 1);
    assert_eq!(b["window"]["busy_ms"], 60_000);
    r.cleanup().await;
}

#[tokio::test]
async fn fleet_with_only_vehicles_has_null_window_and_unknown_fleet_is_404() {
    let prefix = unique("kpi2");
    let st = state(&config("unused", &prefix)).await;
    let mut r = Redis::connect().await;
    let ev = event("f2", "v1", W0, VehicleStatus::Fault, 12.5);
    r.hset(
        &keys::fleet_vehicles(&prefix, "f2"),
        "v1",
        keys::encode_latest(&ev),
    )
    .await;

    let (s, b) = get(&st, "/api/v1/fleets/f2/kpis").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["window"], Value::Null);
    assert_eq!(b["live"]["vehicles"], 1);
    assert_eq!(b["live"]["by_status"]["fault"], 1);
    assert_eq!(b["live"]["mean_energy_pct"], 12.5);

    let (s, b) = get(&st, "/api/v1/fleets/nope/kpis").await;
    assert_not_found(s, &b);
    r.cleanup().await;
}

#[tokio::test]
async fn vehicle_latest_returns_the_stored_event() {
    let prefix = unique("latest");
    let st = state(&config("unused", &prefix)).await;
    let mut r = Redis::connect().await;
    let ev = event("f3", "v 1/é", W0 + 123, VehicleStatus::OnMission, 99.5);
    r.hset(
        &keys::fleet_vehicles(&prefix, "f3"),
        &ev.vehicle_id,
        keys::encode_latest(&ev),
    )
    .await;
    // The JSON form written before the binary one reads the same.
    let mut old = ev.clone();
    old.vehicle_id = "v-json".into();
    r.hset(
        &keys::fleet_vehicles(&prefix, "f3"),
        &old.vehicle_id,
        serde_json::to_vec(&old).unwrap(),
    )
    .await;
    r.hset(&keys::fleet_vehicles(&prefix, "f3"), "bad", "[]")
        .await;
    r.hset(
        &keys::fleet_vehicles(&prefix, "f3"),
        "truncated",
        &keys::encode_latest(&ev)[..20],
    )
    .await;

    let (s, b) = get(&st, "/api/v1/fleets/f3/vehicles/v%201%2F%C3%A9/latest").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, serde_json::to_value(&ev).unwrap());
    assert_eq!(b["status"], "on_mission");

    let (s, b) = get(&st, "/api/v1/fleets/f3/vehicles/v-json/latest").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, serde_json::to_value(&old).unwrap());

    let (s, b) = get(&st, "/api/v1/fleets/f3/vehicles/v2/latest").await;
    assert_not_found(s, &b);
    let (s, b) = get(&st, "/api/v1/fleets/other/vehicles/v1/latest").await;
    assert_not_found(s, &b);
    // A corrupt stored value (unknown form, or a truncated binary one) is a 500 with a
    // generic message.
    for bad in ["bad", "truncated"] {
        let (s, b) = get(&st, &format!("/api/v1/fleets/f3/vehicles/{bad}/latest")).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{bad}: {b}");
        assert_eq!(
            b,
            json!({"error": {"code": "internal", "message": "internal error"}})
        );
    }
    r.cleanup().await;
}

#[tokio::test]
async fn redis_down_is_503() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config("unused", &unique("down"));
    cfg.redis.url = format!("redis://127.0.0.1:{port}");
    let st = state(&cfg).await;
    let (s, b) = get(&st, "/api/v1/fleets/f1/kpis").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["error"]["code"], "unavailable");
}
