//! CPU per telemetry event of the health pipeline's fold (`HealthState::fold`: the vehicle's
//! day counters, the streaming discharge segments, fault/precursor counts, and the closes of
//! the vehicle-days with their predictions) beside the telemetry pipeline's window kernel
//! (`PartitionWindows::ingest`) on the same events, side by side in one run.
//!
//! Events: the simulator with battery ageing and failures (what the health pipeline reads),
//! 100 vehicles in 5 fleets at 1 Hz for 20 minutes of event time around midnight UTC, so one
//! day closes for every vehicle inside the measured stream (a real day holds 86,400 samples
//! per vehicle at 1 Hz per close; here 600, so the close is weighted ×144 against reality).
//!
//!   cargo bench -p atlasmesh-pipelines --bench health_fold

use std::hint::black_box;

use atlasmesh_core::analytics::battery::SohParams;
use atlasmesh_core::analytics::failure::{FailureParams, RiskModel};
use atlasmesh_core::analytics::vehicle_day::DayParams;
use atlasmesh_core::config::TelemetryConfig;
use atlasmesh_core::window::{PartitionWindows, WindowParams};
use atlasmesh_core::TelemetryEvent;
use atlasmesh_pipelines::health::{FoldParams, HealthState};
use atlasmesh_simulator::{BatteryModel, FailureModel, SimConfig, Simulator};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const START_MS: i64 = 1_767_225_600_000 - 600_000; // 2025-12-31T23:50:00Z

fn events() -> Vec<TelemetryEvent> {
    let mut sim = Simulator::new(SimConfig {
        seed: 7,
        fleets: 5,
        vehicles_per_fleet: 20,
        interval_ms: 1_000,
        start_ms: START_MS,
        battery: Some(BatteryModel::default()),
        failures: Some(FailureModel::default()),
        ..SimConfig::default()
    });
    let mut out = Vec::new();
    while sim.now_ms() < START_MS + 1_200_000 {
        out.extend(sim.next_batch().iter().filter_map(|i| i.event().cloned()));
    }
    out
}

fn fold_params() -> FoldParams {
    let t = TelemetryConfig::default();
    let failure = FailureParams::default();
    FoldParams {
        day: DayParams {
            max_gap_ms: t.max_gap_ms,
            soh: SohParams::default(),
            precursor_prefix: failure.precursor_prefix.clone(),
            failure_prefix: failure.failure_prefix.clone(),
        },
        close_lag_ms: t.out_of_orderness_ms + 300_000,
        soh_threshold_pct: 80.0,
        soh_history_days: 180,
        soh_min_days: 7,
        fault_days: failure.lookback_days() as usize,
        failure,
    }
}

fn bench(c: &mut Criterion) {
    let events = events();
    let wp = WindowParams::from(&TelemetryConfig::default());
    let fp = fold_params();
    let model = RiskModel::builtin();
    let nominal = |_: &str| Some(75.0);
    // The stream closes one day per vehicle.
    let mut probe = HealthState::default();
    let mut closed = Vec::new();
    for e in &events {
        probe.fold(e, &fp, &model, &nominal, &mut closed);
    }
    assert_eq!(closed.len(), 100, "one closed day per vehicle");

    let mut g = c.benchmark_group("per_event");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("telemetry_window_kernel", |b| {
        b.iter(|| {
            let mut w = PartitionWindows::default();
            let mut out = Vec::new();
            for e in &events {
                black_box(w.ingest(&wp, e, &mut out));
            }
            black_box(out.len())
        })
    });
    g.bench_function("health_fold", |b| {
        b.iter(|| {
            let mut s = HealthState::default();
            let mut out = Vec::new();
            for e in &events {
                black_box(s.fold(e, &fp, &model, &nominal, &mut out));
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
