//! The labelled examples failure prediction is fitted and measured on: the simulator's failure
//! process ([`FailureModel`]) over months of telemetry at 10-minute samples, seen through
//! `atlasmesh_core::analytics::failure` (telemetry only), labelled from
//! [`Simulator::failure_truth`]. Every vehicle-day after a 28-day warm-up is one prediction
//! made at the end of the day: a failure within the horizon or not.
//!
//! `simulator/tests/failure_prediction.rs` measures the model on held-out seeds with these;
//! `cargo run --release -p atlasmesh-simulator --example fit_failure_model` fits the built-in
//! model of the health pipeline on [`TRAIN_SEED`] (core/src/analytics/failure_model.json),
//! and that test checks the file is still what the fit gives.

use atlasmesh_core::analytics::failure::{
    failure_within, risk_inputs, FailureParams, FaultDays, RiskInputs,
};

use crate::{FailureModel, SimConfig, Simulator};

const DAY_MS: i64 = 86_400_000;
/// Simulated days per seed.
pub const DAYS: i64 = 150;
pub const WARM_UP_DAYS: i64 = 28;
pub const INTERVAL_MS: i64 = 600_000;
/// The seed the built-in model is fitted on (never one it is measured on).
pub const TRAIN_SEED: u64 = 1_001;

/// `(inputs, failure within the horizon)` per vehicle-day of `seed` (4 fleets × 25 vehicles),
/// and the number of failures generated.
pub fn failure_examples(seed: u64, p: &FailureParams) -> (Vec<(RiskInputs, bool)>, usize) {
    let cfg = SimConfig {
        seed,
        fleets: 4,
        vehicles_per_fleet: 25,
        interval_ms: INTERVAL_MS,
        failures: Some(FailureModel::default()),
        ..SimConfig::default()
    };
    let start = cfg.start_ms;
    let mut sim = Simulator::new(cfg);
    let mut days = FaultDays::new(p);
    for _ in 0..DAYS * DAY_MS / INTERVAL_MS {
        for it in sim.next_batch() {
            days.process(it.event().expect("no malformed items configured"));
        }
    }
    let mut out = Vec::new();
    let mut failures = 0;
    for v in sim.vehicle_ids() {
        let truth = sim.failure_truth(&v).expect("failure truth");
        failures += truth.failures.len();
        let times: Vec<i64> = truth.failures.iter().map(|f| f.ts_ms).collect();
        let vd = days.days(&v);
        // Predictions whose horizon lies inside the simulated period.
        for d in WARM_UP_DAYS..DAYS - i64::from(p.horizon_days) - 1 {
            let day_ms = start + d * DAY_MS;
            if let Some(i) = risk_inputs(&vd, day_ms, p) {
                out.push((i, failure_within(&times, day_ms, p.horizon_days)));
            }
        }
    }
    (out, failures)
}
