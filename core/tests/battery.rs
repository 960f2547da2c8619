//! Golden scenario of the battery state-of-health estimator: four vehicles whose batteries lose
//! capacity linearly with distance at known, different rates (one with heavy DC fast charging),
//! driven for 120 days with noisy state-of-charge readings, charging sessions between trips,
//! unreported top-ups and a reset of one vehicle's energy counter mid-trip. The truth is the
//! generator's own parameters — the capacity it drew every sample's energy against — never a
//! second run of the code under test: each day's estimate must be within 1 percentage point of
//! the true state of health, and the degradation slope within 10 %.

use atlasmesh_core::analytics::battery::{
    daily_soh, discharge_segments, trajectory, BatterySample, SohParams, MONTH_DAYS,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DAY_MS: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;
const DAYS: i64 = 120;

/// One simulated vehicle: its battery and how it is used.
struct Vehicle {
    nominal_kwh: f64,
    /// State of health at odometer 0 km of the scenario, %.
    soh0_pct: f64,
    /// Loss per 1,000 km, percentage points.
    loss_per_1000_km: f64,
    /// Mean consumption, kWh/km.
    kwh_per_km: f64,
    /// Day on which its energy counter resets to zero mid-trip.
    counter_reset_day: Option<i64>,
}

impl Vehicle {
    /// The true state of health after `km` kilometres of the scenario.
    fn soh_at(&self, km: f64) -> f64 {
        self.soh0_pct - self.loss_per_1000_km * km / 1000.0
    }
}

/// The samples of one vehicle and, per UTC day, the true state of health at that day's mean
/// driving odometer.
fn simulate(v: &Vehicle, seed: u64) -> (Vec<BatterySample>, Vec<(i64, f64, f64)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut truth = Vec::new();
    let (mut km, mut energy, mut soc) = (0.0f64, 1_234.0f64, 92.0f64);
    for day in 0..DAYS {
        let day_ms = START_MS + day * DAY_MS;
        let (mut km_sum, mut km_n) = (0.0, 0usize);
        // Two trips a day (07:00 and 15:00), each until the battery is low, then a charge.
        for (trip, hour) in [7i64, 15].into_iter().enumerate() {
            let mut t = day_ms + hour * 3_600_000;
            let target = rng.gen_range(20.0..35.0);
            let reset_here = v.counter_reset_day == Some(day) && trip == 0;
            let mut step = 0;
            while soc > target {
                // Two minutes at 35–55 km/h.
                let dkm = rng.gen_range(35.0..55.0) / 30.0;
                let de = dkm * v.kwh_per_km * rng.gen_range(0.9..1.1);
                let capacity = v.nominal_kwh * v.soh_at(km) / 100.0;
                km += dkm;
                energy += de;
                soc -= de / capacity * 100.0;
                if reset_here && step == 20 {
                    energy = 0.0; // the telematics unit was swapped
                }
                step += 1;
                t += 120_000;
                km_sum += km;
                km_n += 1;
                // Wh resolution on the counter, ±0.3 pp noise and 0.1 pp steps on the SoC.
                let noisy_soc = ((soc + rng.gen_range(-0.3..0.3)) * 10.0).round() / 10.0;
                out.push(BatterySample {
                    ts_ms: t,
                    soc_pct: noisy_soc,
                    energy_used_kwh: (energy * 1000.0).round() / 1000.0,
                    odometer_km: (km * 1000.0).round() / 1000.0,
                    charging: false,
                });
            }
            // Charging: reported as such, back to 85–95 %; the counter does not move.
            let full = rng.gen_range(85.0..95.0);
            let steps = 6;
            for i in 1..=steps {
                t += 600_000;
                out.push(BatterySample {
                    ts_ms: t,
                    soc_pct: soc + (full - soc) * i as f64 / steps as f64,
                    energy_used_kwh: (energy * 1000.0).round() / 1000.0,
                    odometer_km: (km * 1000.0).round() / 1000.0,
                    charging: true,
                });
            }
            soc = full;
            // Now and then an unreported top-up at a depot (no charging status): a small rise.
            if rng.gen_bool(0.2) {
                soc = (soc + 4.0).min(100.0);
            }
        }
        truth.push((day_ms, km_sum / km_n as f64, v.soh_at(km_sum / km_n as f64)));
    }
    (out, truth)
}

#[test]
fn state_of_health_and_its_slope_are_recovered() {
    let vehicles = [
        Vehicle {
            nominal_kwh: 60.0,
            soh0_pct: 99.0,
            loss_per_1000_km: 0.10,
            kwh_per_km: 0.17,
            counter_reset_day: None,
        },
        Vehicle {
            nominal_kwh: 75.0,
            soh0_pct: 96.5,
            loss_per_1000_km: 0.16,
            kwh_per_km: 0.19,
            counter_reset_day: Some(40),
        },
        // Heavy DC fast charging: faster loss.
        Vehicle {
            nominal_kwh: 82.0,
            soh0_pct: 97.0,
            loss_per_1000_km: 0.25,
            kwh_per_km: 0.20,
            counter_reset_day: None,
        },
        Vehicle {
            nominal_kwh: 100.0,
            soh0_pct: 91.0,
            loss_per_1000_km: 0.06,
            kwh_per_km: 0.22,
            counter_reset_day: Some(90),
        },
    ];
    let params = SohParams::default();
    for (i, v) in vehicles.iter().enumerate() {
        let (samples, truth) = simulate(v, 7 + i as u64);
        let segments = discharge_segments(&samples, &params);
        let days = daily_soh(&segments, v.nominal_kwh);
        assert_eq!(
            days.len(),
            truth.len(),
            "vehicle {i}: a state of health every day"
        );
        let mut worst: f64 = 0.0;
        for (d, (day_ms, _, soh)) in days.iter().zip(&truth) {
            assert_eq!(d.day_ms, *day_ms);
            let err = (d.soh_pct - soh).abs();
            worst = worst.max(err);
            assert!(
                err <= 1.0,
                "vehicle {i}, day {}: estimated {:.3} %, true {:.3} % (± {:.3})",
                (day_ms - START_MS) / DAY_MS,
                d.soh_pct,
                soh,
                d.stderr_pct
            );
            assert!(d.stderr_pct > 0.0 && d.stderr_pct < 1.0, "a confidence");
        }
        let t = trajectory(&days, 80.0).expect("a trajectory");
        let want_km = -v.loss_per_1000_km;
        let km_per_day = (truth.last().unwrap().1 - truth[0].1) / (DAYS - 1) as f64;
        let want_month = want_km * km_per_day / 1000.0 * MONTH_DAYS;
        eprintln!(
            "vehicle {i}: worst daily error {worst:.3} pp; slope {:.4} pp/1000 km (true {want_km:.4}), \
             {:.4} pp/month (true {want_month:.4}); 80 % on day {:?}",
            t.per_1000_km,
            t.per_month,
            t.crosses_at_ms.map(|ms| (ms - START_MS) / DAY_MS)
        );
        assert!(
            (t.per_1000_km - want_km).abs() <= 0.1 * want_km.abs(),
            "vehicle {i}: slope {} pp/1000 km, true {want_km}",
            t.per_1000_km
        );
        assert!(
            (t.per_month - want_month).abs() <= 0.1 * want_month.abs(),
            "vehicle {i}: slope {} pp/month, true {want_month}",
            t.per_month
        );
        // The true crossing of 80 % (the generator's line, extended at the same mileage) lies
        // within the estimate's interval.
        let (last_day_ms, _, last_soh) = *truth.last().unwrap();
        let days_left = (last_soh - 80.0) / (v.loss_per_1000_km * km_per_day / 1000.0);
        let true_cross = last_day_ms + (days_left * DAY_MS as f64) as i64;
        let (earliest, latest) = t.crosses_between_ms.expect("degrading");
        assert!(
            earliest <= true_cross && latest.is_none_or(|l| true_cross <= l),
            "vehicle {i}: true crossing (day {}) outside the interval {:?}..{:?}",
            (true_cross - START_MS) / DAY_MS,
            (earliest - START_MS) / DAY_MS,
            latest.map(|l| (l - START_MS) / DAY_MS)
        );
    }
}
