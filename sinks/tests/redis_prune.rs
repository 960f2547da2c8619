//! The fleet-windows hash in Redis keeps the newest `KPI_WINDOWS_KEPT` windows of a fleet,
//! whichever path closed them (issue 17 item 5): windows skipped or closed by the idle flush
//! used to leave their fields behind for good. Needs Redis (`REDIS_URL`, default loopback).

use atlasmesh_core::keys::{self, FleetPartialKpi, KPI_WINDOWS_KEPT};
use atlasmesh_sinks::redis::{RedisBatch, RedisSink};

const W: i64 = 60_000;

fn partial(ws: i64, partition: i32) -> FleetPartialKpi {
    FleetPartialKpi {
        window_start_ms: ws,
        window_end_ms: ws + W,
        source_partition: partition,
        version: 1,
        counters: Default::default(),
    }
}

#[tokio::test]
async fn only_the_newest_windows_stay_whatever_closed_them() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!(
        "it:prune:{}:{}",
        std::process::id(),
        atlasmesh_core::clock::now_ms()
    );
    let sink = RedisSink::connect(&url, &prefix).await.unwrap();
    let t0 = 1_717_200_000_000;
    // 200 windows, written one flush at a time like the pipeline does, for two partitions;
    // partition 1 skips every third window and sometimes flushes two windows at once (an idle
    // flush closing what was open), so the field exactly 60 windows back often does not exist.
    let mut i = 0;
    while i < 200 {
        let mut b = RedisBatch {
            window_ms: W,
            ..RedisBatch::default()
        };
        let ws = t0 + i * W;
        b.fleet_partials.insert(("f".into(), ws, 0), partial(ws, 0));
        if i % 3 != 0 {
            b.fleet_partials.insert(("f".into(), ws, 1), partial(ws, 1));
        }
        if i % 7 == 0 && i + 1 < 200 {
            let next = ws + W;
            b.fleet_partials
                .insert(("f".into(), next, 1), partial(next, 1));
            b.fleet_partials
                .insert(("f".into(), next, 0), partial(next, 0));
            i += 1;
        }
        sink.write(&b).await.unwrap();
        i += 1;
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let key = keys::fleet_windows(&prefix, "f");
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    let newest = t0 + 199 * W;
    let oldest_kept = newest - (KPI_WINDOWS_KEPT - 1) * W;
    let starts: Vec<(i64, i32)> = fields
        .iter()
        .map(|f| keys::parse_fleet_window_field(f).unwrap())
        .collect();
    assert!(
        starts.iter().all(|(ws, _)| *ws >= oldest_kept),
        "fields older than the newest {KPI_WINDOWS_KEPT} windows remain: {:?}",
        starts
            .iter()
            .filter(|(ws, _)| *ws < oldest_kept)
            .collect::<Vec<_>>()
    );
    let p0 = starts.iter().filter(|(_, p)| *p == 0).count() as i64;
    assert_eq!(p0, KPI_WINDOWS_KEPT, "partition 0 writes every window");
    // The index: each partition's newest window among the kept fields.
    let index: Vec<(i32, f64)> = redis::cmd("ZRANGE")
        .arg(keys::fleet_window_index(&prefix, "f"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut c)
        .await
        .unwrap();
    let newest_of = |p: i32| starts.iter().filter(|s| s.1 == p).map(|s| s.0).max();
    let mut want: Vec<(i32, f64)> = [0, 1]
        .into_iter()
        .filter_map(|p| newest_of(p).map(|ws| (p, ws as f64)))
        .collect();
    want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    assert_eq!(index, want);
    let _: () = redis::cmd("DEL")
        .arg(keys::fleet_window_index(&prefix, "f"))
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// Each vehicle's newest sample goes to the whole-event hash and, as the fields the live KPIs
/// read, to the compact live hash, in the same write.
#[tokio::test]
async fn latest_samples_go_to_both_hashes() {
    use atlasmesh_core::{TelemetryEvent, VehicleStatus};
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!(
        "it:live:{}:{}",
        std::process::id(),
        atlasmesh_core::clock::now_ms()
    );
    let sink = RedisSink::connect(&url, &prefix).await.unwrap();
    let mut b = RedisBatch {
        window_ms: W,
        ..RedisBatch::default()
    };
    for (i, status) in VehicleStatus::ALL.into_iter().enumerate() {
        let e = TelemetryEvent {
            event_id: format!("e{i}"),
            fleet_id: "f".into(),
            vehicle_id: format!("v{i}"),
            ts_ms: 1_717_200_000_000 + i as i64,
            seq: 1,
            lat: 0.0,
            lon: 0.0,
            speed_kph: 0.0,
            odometer_km: 0.0,
            energy_pct: 100.0 / (i as f64 + 3.0),
            energy_used_kwh: 0.0,
            status,
            mission_id: None,
            zone_id: None,
            payload_kg: 0.0,
            fault_codes: vec![],
        };
        b.latest.insert(e.vehicle_id.clone(), e);
    }
    sink.write(&b).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let live: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::fleet_live(&prefix, "f"))
        .query_async(&mut c)
        .await
        .unwrap();
    let whole: std::collections::HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(keys::fleet_vehicles(&prefix, "f"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(live.len(), VehicleStatus::ALL.len());
    for (id, e) in &b.latest {
        assert_eq!(
            keys::LiveSample::parse(&live[id]),
            Some(keys::LiveSample::from(e))
        );
        assert_eq!(whole[id][0], keys::LATEST_BINARY_V1);
        assert_eq!(&keys::decode_latest(&whole[id]).unwrap(), e);
    }
    let _: () = redis::cmd("DEL")
        .arg(keys::fleet_live(&prefix, "f"))
        .arg(keys::fleet_vehicles(&prefix, "f"))
        .query_async(&mut c)
        .await
        .unwrap();
}
