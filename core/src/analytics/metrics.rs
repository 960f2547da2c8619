//! The metrics an alert rule can name, each defined once as a function of window [`Counters`].
//!
//! The shares and rates are `Counters`' own methods (the window kernel's definitions) and the
//! score is [`score::score`] with the given [`ScoreParams`]; nothing here re-derives them.
//! A metric that is undefined for a window (nothing observed, no distance, no moving sample)
//! is `None`: an alert treats that as "no data" and does not change state.

use crate::analytics::score::{self, ScoreParams};
use crate::window::Counters;

/// Every metric name [`metric_value`] knows, with its unit (for docs and validation).
pub const METRICS: &[(&str, &str)] = &[
    ("utilization", "share 0..1: busy_ms / observed_ms"),
    ("availability", "share 0..1: available_ms / observed_ms"),
    ("idle_share", "share 0..1: idle_ms / observed_ms"),
    ("charging_share", "share 0..1: charging_ms / observed_ms"),
    (
        "maintenance_share",
        "share 0..1: maintenance_ms / observed_ms",
    ),
    ("fault_share", "share 0..1: fault_ms / observed_ms"),
    ("offline_share", "share 0..1: offline_ms / observed_ms"),
    ("avg_speed_kph", "km/h: mean speed of moving samples"),
    ("kwh_per_km", "kWh/km: energy_wh / distance_m"),
    ("distance_km", "km in the window"),
    ("energy_kwh", "kWh in the window"),
    ("fault_count", "fault onsets in the window"),
    ("mission_count", "distinct missions in the window"),
    ("active_vehicles", "vehicles with a non-offline sample"),
    ("vehicles", "vehicles with data"),
    ("samples", "telemetry samples"),
    ("score", "performance score 0..100 (weighted components)"),
];

/// Whether `name` is a metric [`metric_value`] knows.
pub fn is_known(name: &str) -> bool {
    METRICS.iter().any(|(n, _)| *n == name)
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The value of metric `name` for one window's counters; `None` when the metric is unknown or
/// undefined for this window. Never NaN or infinite.
pub fn metric_value(name: &str, c: &Counters, score_params: &ScoreParams) -> Option<f64> {
    let v = match name {
        "utilization" => c.utilization(),
        "availability" => c.availability(),
        "idle_share" => c.idle_share(),
        "charging_share" => share(c.charging_ms, c.observed_ms),
        "maintenance_share" => share(c.maintenance_ms, c.observed_ms),
        "fault_share" => share(c.fault_ms, c.observed_ms),
        "offline_share" => share(c.offline_ms, c.observed_ms),
        "avg_speed_kph" => c.avg_moving_speed_kph(),
        "kwh_per_km" => c.kwh_per_km(),
        "distance_km" => Some(c.distance_km()),
        "energy_kwh" => Some(c.energy_kwh()),
        "fault_count" => Some(c.fault_count as f64),
        "mission_count" => Some(c.mission_count as f64),
        "active_vehicles" => Some(c.active_vehicles as f64),
        "vehicles" => Some(c.vehicles as f64),
        "samples" => Some(c.samples as f64),
        "score" => score::score(c, score_params).ok().and_then(|s| s.total),
        _ => None,
    };
    v.filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters() -> Counters {
        Counters {
            samples: 12,
            observed_ms: 60_000,
            busy_ms: 45_000,
            available_ms: 54_000,
            idle_ms: 9_000,
            charging_ms: 0,
            maintenance_ms: 6_000,
            fault_ms: 0,
            offline_ms: 0,
            distance_m: 1_500,
            energy_wh: 300,
            moving_samples: 8,
            moving_speed_ckph_sum: 8 * 4_000,
            fault_count: 1,
            mission_count: 2,
            active_vehicles: 3,
            vehicles: 3,
        }
    }

    #[test]
    fn every_metric_is_defined_once() {
        let c = counters();
        let p = ScoreParams::default();
        let v = |n: &str| metric_value(n, &c, &p);
        assert_eq!(v("utilization"), Some(0.75));
        assert_eq!(v("availability"), Some(0.9));
        assert_eq!(v("idle_share"), Some(0.15));
        assert_eq!(v("maintenance_share"), Some(0.1));
        assert_eq!(v("charging_share"), Some(0.0));
        assert_eq!(v("avg_speed_kph"), Some(40.0));
        assert_eq!(v("kwh_per_km"), Some(0.2));
        assert_eq!(v("distance_km"), Some(1.5));
        assert_eq!(v("energy_kwh"), Some(0.3));
        assert_eq!(v("fault_count"), Some(1.0));
        assert_eq!(v("active_vehicles"), Some(3.0));
        assert_eq!(v("mission_count"), Some(2.0));
        let s = v("score").unwrap();
        assert!((0.0..=100.0).contains(&s), "{s}");
        assert_eq!(Some(s), score::score(&c, &p).unwrap().total);
        assert_eq!(v("nope"), None);
        for (name, _) in METRICS {
            assert!(is_known(name));
            assert!(v(name).is_some(), "{name} defined for a full window");
        }
        assert!(!is_known("nope"));
    }

    #[test]
    fn undefined_is_none_not_nan() {
        let empty = Counters::default();
        let p = ScoreParams::default();
        for n in [
            "utilization",
            "availability",
            "idle_share",
            "avg_speed_kph",
            "kwh_per_km",
            "score",
        ] {
            assert_eq!(metric_value(n, &empty, &p), None, "{n}");
        }
        assert_eq!(metric_value("fault_count", &empty, &p), Some(0.0));
    }
}
