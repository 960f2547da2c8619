//! Throughput of the telemetry window kernel (`PartitionWindows::ingest`) over a realistic
//! stream, next to a trivial per-vehicle fold as a baseline.
//!
//! Stream: 100 vehicles in 5 fleets, one sample per vehicle per second, 10 minutes of event
//! time (60 000 events), Markov status changes, odometer/energy counters, missions. Two
//! variants: in order, and with 2% of samples emitted 1–4 s late (within the default 5 s
//! out-of-orderness, so they are reordered but never "late" in the window sense).
//!
//!   cargo bench -p atlasmesh-core --bench window_kernel

use std::collections::HashMap;
use std::hint::black_box;

use atlasmesh_core::config::TelemetryConfig;
use atlasmesh_core::telemetry::{TelemetryEvent, VehicleStatus};
use atlasmesh_core::window::{Ingest, PartitionWindows, WindowParams};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VEHICLES: usize = 100;
const FLEETS: usize = 5;
const SECONDS: i64 = 600;
const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn next_status(rng: &mut ChaCha8Rng, s: VehicleStatus) -> VehicleStatus {
    // Mostly stay; otherwise move along a plausible cycle, with rare faults.
    if rng.gen_bool(0.97) {
        return s;
    }
    if rng.gen_bool(0.02) {
        return VehicleStatus::Fault;
    }
    match s {
        VehicleStatus::Offline => VehicleStatus::Idle,
        VehicleStatus::Idle => {
            if rng.gen_bool(0.6) {
                VehicleStatus::EnRoute
            } else {
                VehicleStatus::Charging
            }
        }
        VehicleStatus::EnRoute => VehicleStatus::OnMission,
        VehicleStatus::OnMission => VehicleStatus::Idle,
        VehicleStatus::Charging => VehicleStatus::Idle,
        VehicleStatus::Maintenance => VehicleStatus::Idle,
        VehicleStatus::Fault => VehicleStatus::Maintenance,
    }
}

/// Events in emission order. `ooo_pct`: share of samples emitted 1–4 s after their slot.
fn stream(seed: u64, ooo_pct: f64) -> Vec<TelemetryEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    struct V {
        status: VehicleStatus,
        odo_km: f64,
        energy_kwh: f64,
        mission: u64,
    }
    let mut vs: Vec<V> = (0..VEHICLES)
        .map(|_| V {
            status: VehicleStatus::Idle,
            odo_km: rng.gen_range(1000.0..50_000.0),
            energy_kwh: 0.0,
            mission: 0,
        })
        .collect();
    // (emit_at_ms, tie-breaker, event)
    let mut out: Vec<(i64, u64, TelemetryEvent)> = Vec::with_capacity(VEHICLES * SECONDS as usize);
    let mut n = 0u64;
    for sec in 0..SECONDS {
        for (i, v) in vs.iter_mut().enumerate() {
            let prev = v.status;
            v.status = next_status(&mut rng, v.status);
            if v.status == VehicleStatus::OnMission && prev != VehicleStatus::OnMission {
                v.mission += 1;
            }
            let speed = if v.status.is_busy() {
                rng.gen_range(5.0..60.0)
            } else {
                0.0
            };
            v.odo_km += speed / 3600.0;
            v.energy_kwh += 0.002 + speed * 0.00005;
            let ts = START_MS + sec * 1000 + (i as i64 * 7) % 1000;
            let ev = TelemetryEvent {
                event_id: format!("e-{i}-{sec}"),
                fleet_id: format!("fleet-{}", i % FLEETS),
                vehicle_id: format!("veh-{i:04}"),
                ts_ms: ts,
                seq: sec,
                lat: 52.5 + rng.gen_range(-0.1..0.1),
                lon: 13.4 + rng.gen_range(-0.1..0.1),
                speed_kph: speed,
                odometer_km: v.odo_km,
                energy_pct: 80.0,
                energy_used_kwh: v.energy_kwh,
                status: v.status,
                mission_id: (v.status == VehicleStatus::OnMission)
                    .then(|| format!("m-{i}-{}", v.mission)),
                zone_id: Some(format!("zone-{}", i % 10)),
                payload_kg: 0.0,
                fault_codes: vec![],
            };
            let emit = if rng.gen_bool(ooo_pct) {
                ts + rng.gen_range(1000..4000)
            } else {
                ts
            };
            out.push((emit, n, ev));
            n += 1;
        }
    }
    out.sort_by_key(|(emit, n, _)| (*emit, *n));
    out.into_iter().map(|(_, _, e)| e).collect()
}

fn run_kernel(p: &WindowParams, events: &[TelemetryEvent]) -> (usize, usize) {
    let mut w = PartitionWindows::default();
    let mut out = Vec::new();
    let mut accepted = 0;
    for ev in events {
        if let Ingest::Accepted { .. } = w.ingest(p, ev, &mut out) {
            accepted += 1;
        }
        // The pipeline drains results into its batch after each event.
        out.clear();
    }
    w.flush_idle(p, &mut out);
    (accepted, out.len())
}

fn run_baseline(events: &[TelemetryEvent]) -> usize {
    // Trivial fold: distance-ish sum per vehicle, keyed by vehicle id like the kernel.
    let mut m: HashMap<String, f64> = HashMap::new();
    for ev in events {
        match m.get_mut(ev.vehicle_id.as_str()) {
            Some(v) => *v += ev.odometer_km,
            None => {
                m.insert(ev.vehicle_id.clone(), ev.odometer_km);
            }
        }
    }
    m.len()
}

fn bench(c: &mut Criterion) {
    let p = WindowParams::from(&TelemetryConfig::default());
    let mut g = c.benchmark_group("window_ingest");
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(8));
    g.warm_up_time(std::time::Duration::from_secs(2));
    for (label, ooo) in [("in_order", 0.0), ("ooo_2pct", 0.02)] {
        let events = stream(7, ooo);
        let (accepted, _) = run_kernel(&p, &events);
        assert_eq!(
            accepted,
            events.len(),
            "every event is accepted (none too late, none duplicate)"
        );
        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_with_input(BenchmarkId::new("kernel", label), &events, |b, ev| {
            b.iter(|| black_box(run_kernel(&p, black_box(ev))))
        });
        g.bench_with_input(
            BenchmarkId::new("baseline_hashmap_fold", label),
            &events,
            |b, ev| b.iter(|| black_box(run_baseline(black_box(ev)))),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
