//! The metrics an alert rule can name, each defined once in [`METRICS`] with its unit and
//! where its values come from ([`Source`]).
//!
//! - **Window metrics** ([`Source::Window`]) are functions of one closed telemetry window's
//!   [`Counters`] (`fleet.metrics.v1`): any rule scope, trends, benchmarks and reports. The
//!   shares and rates are `Counters`' own methods (the window kernel's definitions) and the
//!   score is [`score::score`] with the given [`ScoreParams`]; nothing here re-derives them.
//! - **Daily vehicle health metrics** ([`Source::DailyHealth`]) are the health pipeline's
//!   per-vehicle outputs of a closed UTC day (its streamed PostgreSQL rows): a vehicle's health
//!   score ([`crate::analytics::health`]), its failure risk ([`crate::analytics::failure`]) and
//!   the days until its battery's state of health crosses the threshold
//!   ([`crate::analytics::battery`]). They exist per vehicle only, so only `vehicle` rules may
//!   name them ([`Metric::allows_scope`]); the alerts pipeline judges them once per vehicle-day
//!   (`pipelines/src/alerts/health.rs`), not per window.
//!
//! A metric that is undefined for a window (nothing observed, no distance, no moving sample)
//! or a vehicle-day (a NULL value) is `None`: an alert treats that as "no data" and does not
//! change state.

use crate::analytics::alert::AlertScope;
use crate::analytics::score::{self, ScoreParams};
use crate::window::Counters;

/// The value of a window metric for one window's counters (`None`: undefined).
pub type WindowFn = fn(&Counters, &ScoreParams) -> Option<f64>;

/// Where a metric's values come from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A function of one closed telemetry window's counters: fleet, vehicle and federation
    /// rules, evaluated on every closed (vehicle) or settled (fleet, federation) window.
    Window(WindowFn),
    /// One value per vehicle and closed UTC day from the health pipeline: vehicle rules only.
    DailyHealth(HealthSeries),
}

/// The daily vehicle health series a [`Source::DailyHealth`] metric reads. The storage of
/// each (table, column, kind) is the alerts pipeline's business (`alerts/health.rs`); this
/// says what the value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HealthSeries {
    /// The vehicle's health score of a day, 0..100 (`analytics_health_scores.score`), stamped
    /// with the end of that day.
    Score,
    /// The probability of a failure within the model's horizon after the end of the day the
    /// prediction was made, 0..1 (`analytics_predictions`, kind `failure_risk`), stamped with
    /// that day's end (`as_of`).
    FailureRisk,
    /// Days from the end of the day the prediction was made until the battery's state of
    /// health crosses the threshold (`analytics_predictions`, kind `soh_threshold`), stamped
    /// with that day's end; NULL (not degrading) is no data.
    DaysToSohThreshold,
}

/// One metric an alert rule can name.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    /// Unit and definition, for docs and error messages.
    pub unit: &'static str,
    pub source: Source,
}

impl Metric {
    /// Whether a rule of `scope` may watch this metric: window metrics any scope, daily
    /// vehicle health metrics `vehicle` only.
    pub fn allows_scope(&self, scope: AlertScope) -> bool {
        match self.source {
            Source::Window(_) => true,
            Source::DailyHealth(_) => scope == AlertScope::Vehicle,
        }
    }

    /// The window extractor, for window metrics.
    pub fn window_fn(&self) -> Option<WindowFn> {
        match self.source {
            Source::Window(f) => Some(f),
            Source::DailyHealth(_) => None,
        }
    }

    /// The daily health series, for daily vehicle health metrics.
    pub fn health_series(&self) -> Option<HealthSeries> {
        match self.source {
            Source::Window(_) => None,
            Source::DailyHealth(h) => Some(h),
        }
    }
}

const fn window(name: &'static str, unit: &'static str, f: WindowFn) -> Metric {
    Metric {
        name,
        unit,
        source: Source::Window(f),
    }
}

const fn daily(name: &'static str, unit: &'static str, h: HealthSeries) -> Metric {
    Metric {
        name,
        unit,
        source: Source::DailyHealth(h),
    }
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Every metric a rule can name, each defined once.
pub const METRICS: &[Metric] = &[
    window(
        "utilization",
        "share 0..1: busy_ms / observed_ms",
        |c, _| c.utilization(),
    ),
    window(
        "availability",
        "share 0..1: available_ms / observed_ms",
        |c, _| c.availability(),
    ),
    window("idle_share", "share 0..1: idle_ms / observed_ms", |c, _| {
        c.idle_share()
    }),
    window(
        "charging_share",
        "share 0..1: charging_ms / observed_ms",
        |c, _| share(c.charging_ms, c.observed_ms),
    ),
    window(
        "maintenance_share",
        "share 0..1: maintenance_ms / observed_ms",
        |c, _| share(c.maintenance_ms, c.observed_ms),
    ),
    window(
        "fault_share",
        "share 0..1: fault_ms / observed_ms",
        |c, _| share(c.fault_ms, c.observed_ms),
    ),
    window(
        "offline_share",
        "share 0..1: offline_ms / observed_ms",
        |c, _| share(c.offline_ms, c.observed_ms),
    ),
    window(
        "avg_speed_kph",
        "km/h: mean speed of moving samples",
        |c, _| c.avg_moving_speed_kph(),
    ),
    window("kwh_per_km", "kWh/km: energy_wh / distance_m", |c, _| {
        c.kwh_per_km()
    }),
    window("distance_km", "km in the window", |c, _| {
        Some(c.distance_km())
    }),
    window("energy_kwh", "kWh in the window", |c, _| {
        Some(c.energy_kwh())
    }),
    window("fault_count", "fault onsets in the window", |c, _| {
        Some(c.fault_count as f64)
    }),
    window(
        "mission_count",
        "distinct missions in the window",
        |c, _| Some(c.mission_count as f64),
    ),
    window(
        "active_vehicles",
        "vehicles with a non-offline sample",
        |c, _| Some(c.active_vehicles as f64),
    ),
    window("vehicles", "vehicles with data", |c, _| {
        Some(c.vehicles as f64)
    }),
    window("samples", "telemetry samples", |c, _| {
        Some(c.samples as f64)
    }),
    window(
        "score",
        "performance score 0..100 (weighted components)",
        |c, p| score::score(c, p).ok().and_then(|s| s.total),
    ),
    daily(
        "vehicle_health_score",
        "health score 0..100 of a vehicle's closed UTC day (vehicle rules only)",
        HealthSeries::Score,
    ),
    daily(
        "failure_risk",
        "probability 0..1 of a failure within the model's horizon, predicted at the end of a \
         vehicle's closed UTC day (vehicle rules only)",
        HealthSeries::FailureRisk,
    ),
    daily(
        "days_to_soh_threshold",
        "days until the battery's state of health crosses its threshold, predicted at the end \
         of a vehicle's closed UTC day; none when not degrading (vehicle rules only)",
        HealthSeries::DaysToSohThreshold,
    ),
];

/// The metric named `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// Whether `name` is a metric a rule can name (of any source).
pub fn is_known(name: &str) -> bool {
    find(name).is_some()
}

/// Whether `name` is a window metric ([`metric_value`] computes it from window counters):
/// what trends, benchmarks and reports can use.
pub fn is_window_metric(name: &str) -> bool {
    find(name).is_some_and(|m| m.window_fn().is_some())
}

/// The daily health series of metric `name`, if it is a daily vehicle health metric.
pub fn health_series(name: &str) -> Option<HealthSeries> {
    find(name).and_then(Metric::health_series)
}

/// The value of window metric `name` for one window's counters; `None` when the metric is
/// unknown, not a window metric, or undefined for this window. Never NaN or infinite.
pub fn metric_value(name: &str, c: &Counters, score_params: &ScoreParams) -> Option<f64> {
    find(name)?.window_fn()?(c, score_params).filter(|x| x.is_finite())
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
        for m in METRICS.iter().filter(|m| m.window_fn().is_some()) {
            assert!(is_known(m.name) && is_window_metric(m.name));
            assert!(v(m.name).is_some(), "{} defined for a full window", m.name);
        }
        assert!(!is_known("nope"));
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "each name once");
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

    #[test]
    fn daily_health_metrics_are_vehicle_only_and_not_window_values() {
        let c = counters();
        let p = ScoreParams::default();
        for (name, series) in [
            ("vehicle_health_score", HealthSeries::Score),
            ("failure_risk", HealthSeries::FailureRisk),
            ("days_to_soh_threshold", HealthSeries::DaysToSohThreshold),
        ] {
            let m = find(name).unwrap();
            assert!(is_known(name) && !is_window_metric(name), "{name}");
            assert_eq!(health_series(name), Some(series));
            assert_eq!(
                metric_value(name, &c, &p),
                None,
                "{name} is no window metric"
            );
            assert!(m.allows_scope(AlertScope::Vehicle));
            assert!(!m.allows_scope(AlertScope::Fleet));
            assert!(!m.allows_scope(AlertScope::Federation));
        }
        let u = find("utilization").unwrap();
        assert!([
            AlertScope::Fleet,
            AlertScope::Vehicle,
            AlertScope::Federation
        ]
        .into_iter()
        .all(|s| u.allows_scope(s)));
        assert_eq!(health_series("utilization"), None);
        assert_eq!(health_series("nope"), None);
    }
}
