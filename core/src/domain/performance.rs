//! fleet-performance: benchmarks, scores, stored performance metrics, reports, alerts, trends.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::status::status_enum;
use super::{
    Action, Check, Fields, Ids, NoUpdate, Ops, Reference, Resource, ResourceInfo, ScopeKind,
    Validate, BY_FLEET,
};
use crate::Role;

const TAG: &str = "fleet-performance";
const EXAMPLE_START: &str = "2024-05-01T00:00:00Z";
const EXAMPLE_END: &str = "2024-05-02T00:00:00Z";

/// How bad an alert or safety event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

// ---------------------------------------------------------------- benchmarks

/// A target value of a metric that scores are measured against.
pub struct Benchmark;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BenchmarkCreate {
    pub fleet_id: String,
    /// Unique within the fleet.
    pub name: String,
    /// The metric compared, e.g. `utilization`.
    pub metric: String,
    pub target_value: f64,
    /// Whether values above the target are better (else below).
    pub higher_is_better: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Validate for BenchmarkCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.text("name", &self.name, 200);
        c.id("metric", &self.metric);
        c.finite("target_value", self.target_value);
        c.opt_text("description", self.description.as_deref(), 2000);
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BenchmarkUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub higher_is_better: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Validate for BenchmarkUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_text("name", self.name.as_deref(), 200);
        if let Some(v) = self.target_value {
            c.finite("target_value", v);
        }
        c.opt_text("description", self.description.as_deref(), 2000);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BenchmarkView {
    pub id: String,
    pub fleet_id: String,
    pub name: String,
    pub metric: String,
    pub target_value: f64,
    pub higher_is_better: bool,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Benchmark {
    const INFO: ResourceInfo = ResourceInfo {
        name: "benchmark",
        plural: "benchmarks",
        table: "perf_benchmarks",
        path: "/api/v1/fleet-performance/benchmarks",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CRUD,
        actions: &[],
        lookups: &[BY_FLEET],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = BenchmarkCreate;
    type Update = BenchmarkUpdate;
    type View = BenchmarkView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "name": "Utilization target", "metric": "utilization",
               "target_value": 0.8, "higher_is_better": true})
    }
}

// ---------------------------------------------------------------- scores

/// A performance score of a fleet (or one vehicle) over a period, with its components.
pub struct Score;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScoreCreate {
    pub fleet_id: String,
    /// Only this vehicle; absent for the whole fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<String>,
    /// The benchmark the score was measured against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark_id: Option<String>,
    /// RFC 3339.
    pub period_start: String,
    /// RFC 3339, after `period_start`.
    pub period_end: String,
    /// 0..=100.
    pub efficiency: f64,
    /// 0..=100.
    pub utilization: f64,
    /// 0..=100.
    pub reliability: f64,
    /// 0..=100.
    pub safety: f64,
    /// 0..=100 (100 = cheapest).
    pub cost: f64,
}

impl ScoreCreate {
    pub fn components(&self) -> [f64; 5] {
        [
            self.efficiency,
            self.utilization,
            self.reliability,
            self.safety,
            self.cost,
        ]
    }
}

impl Validate for ScoreCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("vehicle_id", self.vehicle_id.as_deref());
        c.opt_id("benchmark_id", self.benchmark_id.as_deref());
        c.period(&self.period_start, &self.period_end);
        for (name, v) in SCORE_WEIGHTS.iter().map(|(n, _)| *n).zip(self.components()) {
            c.range(name, v, 0.0, 100.0);
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScoreView {
    pub id: String,
    pub fleet_id: String,
    pub vehicle_id: Option<String>,
    pub benchmark_id: Option<String>,
    pub period_start: String,
    pub period_end: String,
    pub efficiency: f64,
    pub utilization: f64,
    pub reliability: f64,
    pub safety: f64,
    pub cost: f64,
    /// Weighted: efficiency 25 %, utilization 20 %, reliability 20 %, safety 25 %, cost 10 %.
    pub overall: f64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Score {
    const INFO: ResourceInfo = ResourceInfo {
        name: "score",
        plural: "scores",
        table: "perf_scores",
        path: "/api/v1/fleet-performance/scores",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FLEET],
        references: &[Reference {
            field: "benchmark_id",
            target: "benchmark",
            same_fleet: true,
        }],
        item_key: Some("fleet_id"),
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = ScoreCreate;
    type Update = NoUpdate;
    type View = ScoreView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        let mut v = json!({"fleet_id": fleet_id, "period_start": EXAMPLE_START, "period_end": EXAMPLE_END,
               "efficiency": 80.0, "utilization": 60.0, "reliability": 90.0, "safety": 100.0, "cost": 50.0});
        if let Some(b) = ids.get("benchmark").and_then(|v| v.first()) {
            v["benchmark_id"] = json!(b);
        }
        v
    }
}

// ---------------------------------------------------------------- performance metrics

/// A stored performance metric value of a fleet or vehicle over a period (unlike the
/// ClickHouse window metrics of `GET /api/v1/fleet-performance/metrics`).
pub struct PerformanceMetric;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PerformanceMetricCreate {
    pub fleet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<String>,
    pub metric: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub period_start: String,
    pub period_end: String,
}

impl Validate for PerformanceMetricCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("vehicle_id", self.vehicle_id.as_deref());
        c.id("metric", &self.metric);
        c.finite("value", self.value);
        c.opt_text("unit", self.unit.as_deref(), 32);
        c.period(&self.period_start, &self.period_end);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PerformanceMetricView {
    pub id: String,
    pub fleet_id: String,
    pub vehicle_id: Option<String>,
    pub metric: String,
    pub value: f64,
    pub unit: Option<String>,
    pub period_start: String,
    pub period_end: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for PerformanceMetric {
    const INFO: ResourceInfo = ResourceInfo {
        name: "performance_metric",
        plural: "performance metrics",
        table: "perf_metrics",
        path: "/api/v1/fleet-performance/performance-metrics",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FLEET],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: Some("/api/v1/fleet-performance/metrics"),
        delete_role: Role::Admin,
    };
    type Create = PerformanceMetricCreate;
    type Update = NoUpdate;
    type View = PerformanceMetricView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "metric": "kwh_per_km", "value": 0.21, "unit": "kWh/km",
               "period_start": EXAMPLE_START, "period_end": EXAMPLE_END})
    }
}

// ---------------------------------------------------------------- reports

/// A report over a period; its summary is computed from the stored scores, metrics and alerts
/// of the fleet when the report is created.
pub struct Report;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReportCreate {
    pub fleet_id: String,
    pub title: String,
    pub period_start: String,
    pub period_end: String,
}

impl Validate for ReportCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.text("title", &self.title, 200);
        c.period(&self.period_start, &self.period_end);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReportView {
    pub id: String,
    pub fleet_id: String,
    pub title: String,
    pub period_start: String,
    pub period_end: String,
    /// `{"score_count", "avg_overall", "metrics": {metric: {"count", "avg"}}, "alerts": {"fired", "firing"}}`
    /// over scores and metrics whose period starts within the report period and alerts created
    /// within it.
    pub summary: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Report {
    const INFO: ResourceInfo = ResourceInfo {
        name: "report",
        plural: "reports",
        table: "perf_reports",
        path: "/api/v1/fleet-performance/reports",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FLEET],
        references: &[],
        item_key: Some("fleet_id"),
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = ReportCreate;
    type Update = NoUpdate;
    type View = ReportView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "title": "Daily report", "period_start": EXAMPLE_START,
               "period_end": EXAMPLE_END})
    }
}

// ---------------------------------------------------------------- alerts

/// An alert with its lifecycle: firing until resolved.
pub struct Alert;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertCreate {
    pub fleet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    pub severity: Severity,
    pub message: String,
    /// The observed value that fired the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

impl Validate for AlertCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("vehicle_id", self.vehicle_id.as_deref());
        c.opt_id("metric", self.metric.as_deref());
        c.text("message", &self.message, 2000);
        if let Some(v) = self.value {
            c.finite("value", v);
        }
        if let Some(v) = self.threshold {
            c.finite("threshold", v);
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertView {
    pub id: String,
    pub fleet_id: String,
    pub vehicle_id: Option<String>,
    pub metric: Option<String>,
    pub severity: Severity,
    pub message: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub status: AlertStatus,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Alert {
    const INFO: ResourceInfo = ResourceInfo {
        name: "alert",
        plural: "alerts",
        table: "perf_alerts",
        path: "/api/v1/fleet-performance/alerts",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[Action {
            name: "resolve",
            summary: "Resolve a firing alert",
        }],
        lookups: &[
            BY_FLEET,
            super::Lookup {
                segment: "by-status",
                column: "status",
            },
        ],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = AlertCreate;
    type Update = NoUpdate;
    type View = AlertView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "metric": "utilization", "severity": "warning",
               "message": "Utilization below 50 % for 30 minutes", "value": 0.42, "threshold": 0.5})
    }
}

// ---------------------------------------------------------------- trends

/// A trend of a metric: the least-squares slope of an evenly spaced series, its direction,
/// change and a one-step forecast (computed when created).
pub struct Trend;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrendCreate {
    pub fleet_id: String,
    pub metric: String,
    pub period_start: String,
    pub period_end: String,
    /// 2..=1000 evenly spaced samples over the period.
    pub samples: Vec<f64>,
}

impl Validate for TrendCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("metric", &self.metric);
        c.period(&self.period_start, &self.period_end);
        if !(2..=1000).contains(&self.samples.len()) {
            c.fail("samples", "must hold 2 to 1000 values");
        } else if self.samples.iter().any(|v| !v.is_finite()) {
            c.fail("samples", "must be finite numbers");
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrendView {
    pub id: String,
    pub fleet_id: String,
    pub metric: String,
    pub period_start: String,
    pub period_end: String,
    pub samples: Vec<f64>,
    /// Per sample step.
    pub slope: f64,
    pub direction: Direction,
    pub change_pct: Option<f64>,
    pub forecast: f64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Trend {
    const INFO: ResourceInfo = ResourceInfo {
        name: "trend",
        plural: "trends",
        table: "perf_trends",
        path: "/api/v1/fleet-performance/trends",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FLEET],
        references: &[],
        item_key: Some("fleet_id"),
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = TrendCreate;
    type Update = NoUpdate;
    type View = TrendView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "metric": "utilization", "period_start": EXAMPLE_START,
               "period_end": EXAMPLE_END, "samples": [0.61, 0.64, 0.66, 0.7]})
    }
}

// ---------------------------------------------------------------- rules: overall score, trend, alert lifecycle

status_enum! {
    /// Alert lifecycle (the alerts pipeline raises `firing`; people resolve).
    AlertStatus { Firing = "firing", Resolved = "resolved" }
    transitions { Firing => [Resolved] }
}

/// Weights of the performance score components (sum 1).
pub const SCORE_WEIGHTS: [(&str, f64); 5] = [
    ("efficiency", 0.25),
    ("utilization", 0.20),
    ("reliability", 0.20),
    ("safety", 0.25),
    ("cost", 0.10),
];

/// The overall score 0..=100 of components 0..=100, in the order of [`SCORE_WEIGHTS`].
pub fn overall_score(components: [f64; 5]) -> f64 {
    let s: f64 = components
        .iter()
        .zip(SCORE_WEIGHTS)
        .map(|(v, (_, w))| v * w)
        .sum();
    (s * 100.0).round() / 100.0
}

/// Direction of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
    Flat,
}

/// The statistics of an evenly spaced series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendStats {
    /// Least-squares slope per step.
    pub slope: f64,
    pub direction: Direction,
    /// Change from the first to the last fitted value, percent of the first; `None` when it
    /// is zero.
    pub change_pct: Option<f64>,
    /// The fitted value one step after the last sample.
    pub forecast: f64,
}

/// Least-squares trend of `values` (at least two). A slope whose fitted change over the series
/// is under 1 % of the mean magnitude counts as flat.
pub fn trend(values: &[f64]) -> Option<TrendStats> {
    let n = values.len();
    if n < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let nf = n as f64;
    let mean_x = (nf - 1.0) / 2.0;
    let mean_y = values.iter().sum::<f64>() / nf;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let first = intercept;
    let last = intercept + slope * (nf - 1.0);
    let scale = values.iter().map(|v| v.abs()).sum::<f64>() / nf;
    let direction = if (last - first).abs() <= 0.01 * scale || slope == 0.0 {
        Direction::Flat
    } else if slope > 0.0 {
        Direction::Up
    } else {
        Direction::Down
    };
    let change_pct = (first != 0.0).then(|| (last - first) / first.abs() * 100.0);
    Some(TrendStats {
        slope,
        direction,
        change_pct,
        forecast: intercept + slope * nf,
    })
}

#[cfg(test)]
mod rules_tests {
    use super::*;

    #[test]
    fn derived_numbers() {
        assert_eq!(overall_score([100.0; 5]), 100.0);
        assert_eq!(overall_score([80.0, 60.0, 90.0, 100.0, 50.0]), 80.0);
        let t = trend(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((t.slope - 1.0).abs() < 1e-12);
        assert_eq!(t.direction, Direction::Up);
        assert!((t.change_pct.unwrap() - 300.0).abs() < 1e-9);
        assert!((t.forecast - 5.0).abs() < 1e-12);
        assert_eq!(trend(&[5.0, 5.0, 5.0]).unwrap().direction, Direction::Flat);
        assert_eq!(trend(&[10.0, 8.0, 6.0]).unwrap().direction, Direction::Down);
        assert_eq!(trend(&[0.0, 0.0]).unwrap().change_pct, None);
        assert!(trend(&[1.0]).is_none());
        assert!(trend(&[1.0, f64::NAN]).is_none());
    }
}
