//! Vehicle health: reliability from faults, a 0..100 health score from its components with
//! configurable weights, and a fleet's health as the distribution of its vehicles' scores.
//!
//! Definitions (per vehicle, over a period of UTC days):
//! - **reliability**: faults per 1,000 km and per operating hour (time observed outside
//!   offline and maintenance), fault minutes per 1,000 km, and the share of observed time in
//!   maintenance; `None` where the denominator is zero.
//! - **components** (each 0..100, `None` when its input is missing):
//!   - battery: `100·(SoH − floor)/(100 − floor)`, clamped, `floor` = [`HealthParams::soh_floor_pct`];
//!   - reliability: `100·exp(−faults per 1,000 km / scale)`, `scale` =
//!     [`HealthParams::faults_per_1000_km_scale`] (one scale's worth of faults → 36.8);
//!   - efficiency: the vehicle's kWh/km over the fleet's median for the same period, `r`:
//!     100 at `r ≤ 1`, falling linearly to 0 at `r = 1 + efficiency_span`;
//!   - availability: `100·` the share of observed time neither in fault, maintenance nor offline.
//! - **score**: the weighted mean of the components present, the weights of the missing ones
//!   left out (renormalized); `None` when no component is present.
//! - **fleet health**: min, p10, median (linear interpolation between order statistics, as
//!   numpy's default), mean and the `worst_n` lowest vehicles (ties by vehicle id).
//!
//! Pure; undefined values are `None`, never NaN.

use serde::{Deserialize, Serialize};

use crate::window::Counters;

/// Tunables of the components and their weights (`analytics.health` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthParams {
    pub soh_floor_pct: f64,
    pub faults_per_1000_km_scale: f64,
    pub efficiency_span: f64,
    pub weight_battery: f64,
    pub weight_reliability: f64,
    pub weight_efficiency: f64,
    pub weight_availability: f64,
}

impl Default for HealthParams {
    fn default() -> Self {
        HealthParams {
            soh_floor_pct: 70.0,
            faults_per_1000_km_scale: 5.0,
            efficiency_span: 0.5,
            weight_battery: 0.35,
            weight_reliability: 0.30,
            weight_efficiency: 0.15,
            weight_availability: 0.20,
        }
    }
}

/// Fault rates of a vehicle over a period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    pub faults: u64,
    pub distance_km: f64,
    pub operating_hours: f64,
    pub faults_per_1000_km: Option<f64>,
    pub faults_per_operating_hour: Option<f64>,
    pub fault_minutes_per_1000_km: Option<f64>,
    pub maintenance_share: Option<f64>,
}

/// Fault rates over a distance and operating time; `None` where the denominator is zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaultRates {
    pub faults_per_1000_km: Option<f64>,
    pub faults_per_operating_hour: Option<f64>,
    pub fault_minutes_per_1000_km: Option<f64>,
}

/// `faults` (and `fault_minutes` of fault time) per 1,000 km of `distance_km` and per hour of
/// `operating_hours`.
pub fn fault_rates(
    faults: f64,
    fault_minutes: f64,
    distance_km: f64,
    operating_hours: f64,
) -> FaultRates {
    FaultRates {
        faults_per_1000_km: per(faults * 1000.0, distance_km),
        faults_per_operating_hour: per(faults, operating_hours),
        fault_minutes_per_1000_km: per(fault_minutes * 1000.0, distance_km),
    }
}

/// `x / d`, `None` unless `d > 0` and the quotient is finite.
pub fn per(x: f64, d: f64) -> Option<f64> {
    (d > 0.0).then(|| x / d).filter(|q| q.is_finite())
}

/// The reliability of a vehicle from its window counters over the period (summed).
pub fn reliability(c: &Counters) -> Reliability {
    let km = c.distance_km();
    let operating_ms = c
        .observed_ms
        .saturating_sub(c.offline_ms + c.maintenance_ms);
    let hours = operating_ms as f64 / 3_600_000.0;
    let rates = fault_rates(
        c.fault_count as f64,
        c.fault_ms as f64 / 60_000.0,
        km,
        hours,
    );
    Reliability {
        faults: c.fault_count,
        distance_km: km,
        operating_hours: hours,
        faults_per_1000_km: rates.faults_per_1000_km,
        faults_per_operating_hour: rates.faults_per_operating_hour,
        fault_minutes_per_1000_km: rates.fault_minutes_per_1000_km,
        maintenance_share: per(c.maintenance_ms as f64, c.observed_ms as f64),
    }
}

/// The four components of a vehicle's health, 0..100 each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthComponents {
    pub battery: Option<f64>,
    pub reliability: Option<f64>,
    pub efficiency: Option<f64>,
    pub availability: Option<f64>,
}

/// A vehicle's health score with what it was made of.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthScore {
    pub score: Option<f64>,
    pub components: HealthComponents,
}

/// What a vehicle's health is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthInputs<'a> {
    pub counters: &'a Counters,
    /// Latest state of health, %.
    pub soh_pct: Option<f64>,
    /// The fleet's median kWh/km over the same period.
    pub fleet_median_kwh_per_km: Option<f64>,
}

/// The components and the score (see the module docs).
pub fn health_score(i: &HealthInputs<'_>, p: &HealthParams) -> HealthScore {
    let finite = |x: f64| x.is_finite().then_some(x);
    let battery = i.soh_pct.and_then(finite).and_then(|soh| {
        let span = 100.0 - p.soh_floor_pct;
        (span > 0.0).then(|| (100.0 * (soh - p.soh_floor_pct) / span).clamp(0.0, 100.0))
    });
    let rel = reliability(i.counters);
    let reliability = rel.faults_per_1000_km.and_then(|f| {
        (p.faults_per_1000_km_scale > 0.0).then(|| 100.0 * (-f / p.faults_per_1000_km_scale).exp())
    });
    let efficiency = match (i.counters.kwh_per_km(), i.fleet_median_kwh_per_km) {
        (Some(v), Some(m)) if m > 0.0 && p.efficiency_span > 0.0 => {
            let r = v / m;
            Some((100.0 * (1.0 - (r - 1.0) / p.efficiency_span)).clamp(0.0, 100.0))
        }
        _ => None,
    };
    let c = i.counters;
    let availability = (c.observed_ms > 0).then(|| {
        let down = (c.fault_ms + c.maintenance_ms + c.offline_ms).min(c.observed_ms);
        100.0 * (c.observed_ms - down) as f64 / c.observed_ms as f64
    });
    let components = HealthComponents {
        battery,
        reliability,
        efficiency,
        availability,
    };
    let parts = [
        (battery, p.weight_battery),
        (reliability, p.weight_reliability),
        (efficiency, p.weight_efficiency),
        (availability, p.weight_availability),
    ];
    let (sum, weight) = parts
        .iter()
        .filter_map(|(v, w)| v.map(|v| (v * w.max(0.0), w.max(0.0))))
        .fold((0.0, 0.0), |(s, t), (v, w)| (s + v, t + w));
    HealthScore {
        score: (weight > 0.0).then(|| sum / weight),
        components,
    }
}

/// A fleet's health: the distribution of its vehicles' scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetHealth {
    pub vehicles: usize,
    pub min: f64,
    pub p10: f64,
    pub median: f64,
    pub mean: f64,
    /// The lowest scores, lowest first.
    pub worst: Vec<(String, f64)>,
}

/// The distribution of `scores` (vehicle id, score); `None` without a finite score.
pub fn fleet_health(scores: &[(String, f64)], worst_n: usize) -> Option<FleetHealth> {
    let mut s: Vec<(String, f64)> = scores
        .iter()
        .filter(|(_, v)| v.is_finite())
        .cloned()
        .collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let values: Vec<f64> = s.iter().map(|(_, v)| *v).collect();
    Some(FleetHealth {
        vehicles: values.len(),
        min: values[0],
        p10: quantile(&values, 0.10),
        median: quantile(&values, 0.5),
        mean: values.iter().sum::<f64>() / values.len() as f64,
        worst: s.into_iter().take(worst_n).collect(),
    })
}

/// Linear interpolation between order statistics of sorted `v` (numpy's default, type 7).
fn quantile(v: &[f64], q: f64) -> f64 {
    let h = (v.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters() -> Counters {
        Counters {
            observed_ms: 10 * 3_600_000,
            fault_ms: 30 * 60_000,
            maintenance_ms: 3_600_000,
            offline_ms: 3_600_000,
            distance_m: 400_000,
            energy_wh: 80_000,
            fault_count: 2,
            ..Counters::default()
        }
    }

    #[test]
    fn reliability_rates() {
        let r = reliability(&counters());
        assert_eq!(r.distance_km, 400.0);
        assert_eq!(r.operating_hours, 8.0);
        assert_eq!(r.faults_per_1000_km, Some(5.0));
        assert_eq!(r.faults_per_operating_hour, Some(0.25));
        assert_eq!(r.fault_minutes_per_1000_km, Some(75.0));
        assert_eq!(r.maintenance_share, Some(0.1));
        let none = reliability(&Counters::default());
        assert_eq!(none.faults_per_1000_km, None);
        assert_eq!(none.maintenance_share, None);
    }

    #[test]
    fn score_is_the_weighted_mean_of_present_components() {
        let c = counters();
        let p = HealthParams::default();
        let h = health_score(
            &HealthInputs {
                counters: &c,
                soh_pct: Some(91.0),
                fleet_median_kwh_per_km: Some(0.16),
            },
            &p,
        );
        let comp = h.components;
        assert!((comp.battery.unwrap() - 70.0).abs() < 1e-9); // (91-70)/30
        assert!((comp.reliability.unwrap() - 100.0 * (-1.0f64).exp()).abs() < 1e-9);
        // 0.2 kWh/km against 0.16: r = 1.25, half of the 0.5 span.
        assert!((comp.efficiency.unwrap() - 50.0).abs() < 1e-9);
        // 0.5 + 1 + 1 hours down of 10.
        assert!((comp.availability.unwrap() - 75.0).abs() < 1e-9);
        let want = 0.35 * 70.0 + 0.30 * 100.0 * (-1.0f64).exp() + 0.15 * 50.0 + 0.20 * 75.0;
        assert!((h.score.unwrap() - want).abs() < 1e-9);
        // Without a battery estimate or a fleet median, the others are renormalized.
        let h = health_score(
            &HealthInputs {
                counters: &c,
                soh_pct: None,
                fleet_median_kwh_per_km: None,
            },
            &p,
        );
        let want = (0.30 * 100.0 * (-1.0f64).exp() + 0.20 * 75.0) / 0.5;
        assert!((h.score.unwrap() - want).abs() < 1e-9);
        let empty = Counters::default();
        let none = health_score(
            &HealthInputs {
                counters: &empty,
                soh_pct: None,
                fleet_median_kwh_per_km: None,
            },
            &p,
        );
        assert_eq!(none.score, None);
    }

    #[test]
    fn fleet_distribution() {
        let scores: Vec<(String, f64)> = [
            ("e", 90.0),
            ("b", 40.0),
            ("a", 40.0),
            ("d", 80.0),
            ("c", 70.0),
        ]
        .iter()
        .map(|(v, s)| (v.to_string(), *s))
        .chain([("nan".to_string(), f64::NAN)])
        .collect();
        let f = fleet_health(&scores, 2).unwrap();
        assert_eq!(f.vehicles, 5);
        assert_eq!(f.min, 40.0);
        assert!((f.p10 - 40.0).abs() < 1e-9); // h = 0.4 between 40 and 40
        assert_eq!(f.median, 70.0);
        assert_eq!(f.mean, 64.0);
        assert_eq!(
            f.worst,
            vec![("a".to_string(), 40.0), ("b".to_string(), 40.0)]
        );
        let q = quantile(&[10.0, 20.0, 30.0, 40.0], 0.10); // h = 0.3
        assert!((q - 13.0).abs() < 1e-9);
        assert!(fleet_health(&[], 3).is_none());
    }
}
