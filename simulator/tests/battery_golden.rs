//! Golden scenario of battery state of health, end to end at the pure level: the simulator
//! ages six batteries at known, different rates (per-vehicle calendar and cycle fade, DC fast
//! charging habits from 0 to 80 % of sessions), reports a noisy state of charge (±0.3 pp), goes
//! through AC and DC charging sessions and resets energy counters now and then; the estimator
//! in `atlasmesh_core::analytics::battery` sees only the emitted telemetry.
//!
//! Why the expectations are independent of the code under test: the truth is the generator's
//! own state — the usable capacity against which it computed every sample's state of charge
//! (`nominal × SoH / 100`), integrated from its fade parameters — read back through
//! `Simulator::battery_truth`. Nothing of the estimator (segmenting, least squares, daily
//! pooling) enters it, and the truth slopes are fitted here with a separate few-line least
//! squares on the truth trace. A Python re-derivation would have to re-implement the ChaCha8
//! streams of the generator to reproduce the same vehicles, so none is kept.
//!
//! Ageing is time-lapsed: `acceleration = 10`, so the defaults' 1.5–3.4 %/year become
//! 15–34 %/year and four months show a slope that can be measured to 10 % (at real-time rates
//! 0.5–1.1 pp over four months would drown in the per-day noise of about 0.1–0.3 pp).
//! Samples every 5 minutes (coarse intervals keep four months to seconds).

use atlasmesh_core::analytics::battery::{
    daily_soh, discharge_segments, trajectory, BatterySample, SohParams, MONTH_DAYS,
};
use atlasmesh_core::VehicleStatus;
use atlasmesh_simulator::{BatteryModel, BatteryTruth, EventKind, SimConfig, Simulator};
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 120;
const INTERVAL_MS: i64 = 300_000;

/// Least-squares slope of y on x (test-local, independent of `analytics::trend`).
fn ols_slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

fn run() -> (Vec<BatteryTruth>, BTreeMap<String, Vec<BatterySample>>) {
    let cfg = SimConfig {
        seed: 2024,
        fleets: 2,
        vehicles_per_fleet: 3,
        interval_ms: INTERVAL_MS,
        battery: Some(BatteryModel {
            acceleration: 10.0,
            counter_resets_per_day: 0.02,
            ..BatteryModel::default()
        }),
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(cfg);
    let mut samples: BTreeMap<String, Vec<BatterySample>> = BTreeMap::new();
    for _ in 0..DAYS * DAY_MS / INTERVAL_MS {
        for it in sim.next_batch() {
            assert_eq!(it.kind(), Some(EventKind::Normal));
            let e = it.event().unwrap();
            samples
                .entry(e.vehicle_id.clone())
                .or_default()
                .push(BatterySample {
                    ts_ms: e.ts_ms,
                    soc_pct: e.energy_pct,
                    energy_used_kwh: e.energy_used_kwh,
                    odometer_km: e.odometer_km,
                    charging: e.status == VehicleStatus::Charging,
                });
        }
    }
    let truth = sim
        .vehicle_ids()
        .iter()
        .map(|v| sim.battery_truth(v).unwrap())
        .collect();
    (truth, samples)
}

#[test]
fn state_of_health_and_its_slope_are_recovered_from_simulated_telemetry() {
    let (truths, samples) = run();
    let params = SohParams::default();
    // The scenario has what it claims: resets, both kinds of sessions, distinct habits.
    let resets: usize = truths.iter().map(|t| t.counter_resets_ms.len()).sum();
    assert!(resets >= 2, "counter resets in the scenario: {resets}");
    assert!(truths.iter().all(|t| t.sessions.0 + t.sessions.1 >= 20));
    assert!(truths.iter().any(|t| t.dc_fast_share > 0.5));
    assert!(truths.iter().any(|t| t.dc_fast_share < 0.2));

    for t in &truths {
        let s = &samples[&t.vehicle_id];
        let days = daily_soh(&discharge_segments(s, &params), t.nominal_kwh);
        assert!(
            days.len() as i64 >= DAYS * 9 / 10,
            "{}: estimates on {} of {DAYS} days",
            t.vehicle_id,
            days.len()
        );
        let mut worst: f64 = 0.0;
        let mut truth_by_day = Vec::new();
        let mut truth_by_km = Vec::new();
        for d in &days {
            let noon = d.day_ms + DAY_MS / 2;
            let want = t.soh_at(noon).expect("truth covers the day");
            worst = worst.max((d.soh_pct - want).abs());
            assert!(
                (d.soh_pct - want).abs() <= 1.0,
                "{} day {}: estimated {:.3} %, true {:.3} %",
                t.vehicle_id,
                d.day_ms,
                d.soh_pct,
                want
            );
            truth_by_day.push((noon as f64 / DAY_MS as f64, want));
        }
        // The truth per 1,000 km: its trace against its own odometer, over the same span.
        let (first, last) = (days[0].day_ms, days[days.len() - 1].day_ms + DAY_MS);
        for p in t
            .trace
            .iter()
            .filter(|p| p.ts_ms >= first && p.ts_ms < last)
        {
            truth_by_km.push((p.odometer_km / 1000.0, p.soh_pct));
        }
        let want_month = ols_slope(&truth_by_day) * MONTH_DAYS;
        let want_km = ols_slope(&truth_by_km);
        let got = trajectory(&days, 80.0).expect("a trajectory");
        let rel_month = (got.per_month - want_month).abs() / want_month.abs();
        let rel_km = (got.per_1000_km - want_km).abs() / want_km.abs();
        println!(
            "{} nominal {:.1} kWh, DC share {:.2}, SoH {:.2} -> {:.2} %: worst day error {:.3} pp; \
             per month {:.3} (true {:.3}, {:.1} %), per 1,000 km {:.4} (true {:.4}, {:.1} %)",
            t.vehicle_id,
            t.nominal_kwh,
            t.dc_fast_share,
            t.soh0_pct,
            t.soh_now_pct,
            worst,
            got.per_month,
            want_month,
            100.0 * rel_month,
            got.per_1000_km,
            want_km,
            100.0 * rel_km
        );
        assert!(want_month < 0.0 && want_km < 0.0);
        assert!(
            rel_month <= 0.10,
            "{}: slope per month off by {:.1} %",
            t.vehicle_id,
            100.0 * rel_month
        );
        assert!(
            rel_km <= 0.10,
            "{}: slope per 1,000 km off by {:.1} %",
            t.vehicle_id,
            100.0 * rel_km
        );
    }
}
