//! CPU of one `GET /api/v1/fleets/{id}/kpis` read past the network: decoding the Redis
//! replies (RESP bytes, as the redis client parses them) and computing the live and window
//! KPIs — the read before issue 12 item 5 (HGETALL of the whole vehicles and windows hashes,
//! every value parsed as it arrives), the scan (HGETALL of the compact live hash + HKEYS of the
//! windows, then HMGET of the chosen window's partials; the path for state without a window
//! index) and the read now (the compact live hash + the window index, then HMGET), side by side
//! in one run on the same fleet state.
//!
//! Fleet state: 4 telemetry partitions × the 60 windows kept, and 20 (the local stack's
//! default) or 1,000 vehicles, each value as the pipeline writes it.
//!
//!   cargo bench -p atlasmesh-query-api --bench kpi_read

use std::collections::HashMap;
use std::hint::black_box;

use atlasmesh_core::keys::{self, FleetPartialKpi, LiveSample, KPI_WINDOWS_KEPT};
use atlasmesh_core::window::Counters;
use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use atlasmesh_query_api::kpis;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const W: i64 = 60_000;
const T0: i64 = 1_767_225_600_000;
const PARTITIONS: i32 = 4;

/// RESP encoding of what Redis answers.
fn bulk(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(format!("${}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn array<'a>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a String>) {
    out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
    for s in items {
        bulk(out, s);
    }
}

fn hash(out: &mut Vec<u8>, h: &[(String, String)]) {
    out.extend_from_slice(format!("*{}\r\n", h.len() * 2).as_bytes());
    for (k, v) in h {
        bulk(out, k);
        bulk(out, v);
    }
}

struct Fleet {
    vehicles: Vec<(String, String)>,
    live: Vec<(String, String)>,
    windows: Vec<(String, String)>,
}

fn fleet(n: usize) -> Fleet {
    let statuses = VehicleStatus::ALL;
    let mut vehicles = Vec::new();
    let mut live = Vec::new();
    for i in 0..n {
        let e = TelemetryEvent {
            event_id: format!("fleet-001-v{i:04}-{}", T0 + i as i64),
            fleet_id: "fleet-001".into(),
            vehicle_id: format!("fleet-001-v{i:04}"),
            ts_ms: T0 + 59 * W + i as i64,
            seq: 3_540 + i as i64,
            lat: 52.52 + i as f64 * 1e-4,
            lon: 13.405 - i as f64 * 1e-4,
            speed_kph: 37.25,
            odometer_km: 12_345.678,
            energy_pct: 81.5 - (i % 50) as f64,
            energy_used_kwh: 4_321.125,
            status: statuses[i % statuses.len()],
            mission_id: (i % 2 == 0).then(|| format!("m-{i}")),
            zone_id: Some("fleet-001-z3".into()),
            payload_kg: 120.0,
            fault_codes: vec![],
        };
        live.push((e.vehicle_id.clone(), LiveSample::from(&e).encode()));
        vehicles.push((e.vehicle_id.clone(), serde_json::to_string(&e).unwrap()));
    }
    let mut windows = Vec::new();
    for w in 0..KPI_WINDOWS_KEPT {
        for p in 0..PARTITIONS {
            let ws = T0 + w * W;
            let kpi = FleetPartialKpi {
                window_start_ms: ws,
                window_end_ms: ws + W,
                source_partition: p,
                version: 1,
                counters: Counters {
                    samples: 300,
                    observed_ms: 300_000,
                    busy_ms: 120_000,
                    available_ms: 280_000,
                    idle_ms: 100_000,
                    distance_m: 4_500,
                    energy_wh: 900,
                    moving_samples: 120,
                    moving_speed_ckph_sum: 420_000,
                    vehicles: 5,
                    active_vehicles: 3,
                    ..Counters::default()
                },
            };
            windows.push((
                keys::fleet_window_field(ws, p),
                serde_json::to_string(&kpi).unwrap(),
            ));
        }
    }
    Fleet {
        vehicles,
        live,
        windows,
    }
}

/// Before: one pipeline of two HGETALLs, every value of both hashes decoded.
fn read_before(reply: &[u8]) -> kpis::FleetKpis {
    let v = redis::parse_redis_value(reply).unwrap();
    let (vehicles, windows): (HashMap<String, Vec<u8>>, HashMap<String, String>) =
        redis::from_redis_value(&v).unwrap();
    kpis::FleetKpis {
        fleet_id: "fleet-001".into(),
        live: kpis::live_kpis("fleet-001", &vehicles),
        window: kpis::complete_window("fleet-001", &windows),
    }
}

/// Scan: HLEN + HGETALL live + HKEYS windows, then HMGET of the chosen fields (the path for
/// state without a window index; the second reply is built once, as Redis would answer it).
fn read_scan(first: &[u8], second: &[u8]) -> kpis::FleetKpis {
    let v = redis::parse_redis_value(first).unwrap();
    let (n, live, names): (usize, HashMap<String, String>, Vec<String>) =
        redis::from_redis_value(&v).unwrap();
    assert!(live.len() >= n);
    let live = kpis::live_kpis_compact("fleet-001", &live);
    let fields = kpis::window_fields("fleet-001", names.iter());
    let mut unreadable = Vec::new();
    let (window, chosen) = kpis::choose_window(&fields, &unreadable).unwrap();
    let v = redis::parse_redis_value(second).unwrap();
    let values: Vec<Option<String>> = redis::from_redis_value(&v).unwrap();
    let partials =
        kpis::read_partials("fleet-001", &chosen, values.into_iter(), &mut unreadable).unwrap();
    kpis::FleetKpis {
        fleet_id: "fleet-001".into(),
        live,
        window: Some(kpis::sum_window(window, &partials)),
    }
}

/// Now: HLEN + HGETALL live + HLEN windows + ZRANGE of the window index, then HMGET of the
/// window's partial of each indexed partition.
fn read_now(first: &[u8], second: &[u8]) -> kpis::FleetKpis {
    let v = redis::parse_redis_value(first).unwrap();
    type First = (usize, HashMap<String, String>, usize, Vec<(i32, f64)>);
    let (n, live, n_windows, index): First = redis::from_redis_value(&v).unwrap();
    assert!(live.len() >= n && n_windows > 0);
    let live = kpis::live_kpis_compact("fleet-001", &live);
    let (ws, chosen) = kpis::indexed_window(&index).unwrap();
    let v = redis::parse_redis_value(second).unwrap();
    let values: Vec<Option<String>> = redis::from_redis_value(&v).unwrap();
    let partials = kpis::indexed_partials("fleet-001", &chosen, values).unwrap();
    kpis::FleetKpis {
        fleet_id: "fleet-001".into(),
        live,
        window: Some(kpis::sum_window(ws, &partials)),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("kpi_read");
    for n in [20usize, 1_000] {
        let f = fleet(n);
        let mut before = b"*2\r\n".to_vec();
        hash(&mut before, &f.vehicles);
        hash(&mut before, &f.windows);
        let mut scan = b"*3\r\n".to_vec();
        scan.extend_from_slice(format!(":{}\r\n", f.vehicles.len()).as_bytes());
        hash(&mut scan, &f.live);
        array(
            &mut scan,
            f.windows
                .iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
                .into_iter(),
        );
        let newest = T0 + (KPI_WINDOWS_KEPT - 1) * W;
        let chosen: Vec<String> = f
            .windows
            .iter()
            .filter(|(k, _)| keys::parse_fleet_window_field(k).unwrap().0 == newest)
            .map(|(_, v)| v.clone())
            .collect();
        let mut second = Vec::new();
        array(&mut second, chosen.iter());
        let mut first = b"*4\r\n".to_vec();
        first.extend_from_slice(format!(":{}\r\n", f.vehicles.len()).as_bytes());
        hash(&mut first, &f.live);
        first.extend_from_slice(format!(":{}\r\n", f.windows.len()).as_bytes());
        let index: Vec<String> = (0..PARTITIONS)
            .flat_map(|p| [p.to_string(), newest.to_string()])
            .collect();
        array(&mut first, index.iter());
        // Both reads give the same answer (the mean up to summation order).
        assert_eq!(read_scan(&scan, &second), read_now(&first, &second));
        let (mut a, mut b) = (read_before(&before), read_now(&first, &second));
        let (ma, mb) = (
            a.live.mean_energy_pct.take().unwrap(),
            b.live.mean_energy_pct.take().unwrap(),
        );
        assert!((ma - mb).abs() < 1e-9);
        assert_eq!(a, b);
        assert_eq!(b.window.as_ref().unwrap().window_start_ms, newest);
        eprintln!(
            "kpi_read {n} vehicles: reply bytes before {} / scan {} + {} / now {} + {}",
            before.len(),
            scan.len(),
            second.len(),
            first.len(),
            second.len()
        );
        g.bench_with_input(BenchmarkId::new("before", n), &before, |bch, r| {
            bch.iter(|| black_box(read_before(black_box(r))))
        });
        g.bench_with_input(
            BenchmarkId::new("scan", n),
            &(scan, second.clone()),
            |bch, (a, b)| bch.iter(|| black_box(read_scan(black_box(a), black_box(b)))),
        );
        g.bench_with_input(
            BenchmarkId::new("now", n),
            &(first, second),
            |bch, (a, b)| bch.iter(|| black_box(read_now(black_box(a), black_box(b)))),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
