//! History tables the analytics pipelines write and the Grafana dashboards read
//! (migrations/clickhouse/0004..0007): performance scores, trends, alert transitions, resource
//! pool utilization samples and mission windows.
//!
//! Every table is a ReplacingMergeTree keyed so that re-writing the same rows after a crash or
//! retry changes nothing (scores and mission windows also carry a version: the highest wins).
//! Enum8 columns are written as their codes (the `*_code` helpers), DateTime('UTC') columns as
//! epoch seconds, so the rows work with `with_validation(false)` against ClickHouse 18.16.

use serde::Serialize;

use super::ClickHouseSink;
use crate::Result;

/// Epoch seconds of an epoch-ms time, for a DateTime('UTC') column (clamped to its range).
pub fn datetime_secs(ms: i64) -> u32 {
    ms.div_euclid(1000).clamp(0, u32::MAX as i64) as u32
}

/// `performance_score_history.period` code.
pub fn score_period_code(period: &str) -> Option<i8> {
    match period {
        "window" => Some(1),
        "hour" => Some(2),
        "day" => Some(3),
        _ => None,
    }
}

/// `trend_history.direction` code.
pub fn trend_direction_code(direction: &str) -> Option<i8> {
    match direction {
        "declining" => Some(-1),
        "stable" => Some(0),
        "improving" => Some(1),
        _ => None,
    }
}

/// `alert_history.scope` code.
pub fn alert_scope_code(scope: &str) -> Option<i8> {
    match scope {
        "fleet" => Some(1),
        "vehicle" => Some(2),
        "federation" => Some(3),
        _ => None,
    }
}

/// `alert_history.severity` code.
pub fn alert_severity_code(severity: &str) -> Option<i8> {
    match severity {
        "info" => Some(1),
        "warning" => Some(2),
        "error" => Some(3),
        "critical" => Some(4),
        _ => None,
    }
}

/// `alert_history.status` code (the transition kind).
pub fn alert_status_code(status: &str) -> Option<i8> {
    match status {
        "pending" => Some(1),
        "cancelled" => Some(2),
        "firing" => Some(3),
        "resent" => Some(4),
        "resolved" => Some(5),
        _ => None,
    }
}

/// `alert_history.event_action` code: what the pager heard of a transition of this status
/// (trigger for firing/resent, resolve for resolved, none otherwise).
pub fn alert_event_action_code(status: &str) -> i8 {
    match status {
        "firing" | "resent" => 1,
        "resolved" => 2,
        _ => 0,
    }
}

/// Row of `performance_score_history` (0004). `vehicle_id` is empty for a fleet score.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
pub struct ScoreHistoryRow {
    pub fleet_id: String,
    pub vehicle_id: String,
    /// Enum8 code, see [`score_period_code`].
    pub period: i8,
    /// DateTime('UTC') as epoch seconds.
    pub period_start: u32,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub version: u32,
    pub total: f64,
    pub efficiency: f64,
    pub utilization: f64,
    pub reliability: f64,
    pub safety: f64,
    pub cost: f64,
    pub benchmark_id: String,
    pub benchmark_pct: f64,
    pub computed_at_ms: i64,
}

/// Row of `trend_history` (0005).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
pub struct TrendHistoryRow {
    pub fleet_id: String,
    pub metric: String,
    /// Span of the fitted series, e.g. `1h`, `24h`, `7d`.
    pub horizon: String,
    /// DateTime('UTC') as epoch seconds.
    pub computed_at: u32,
    pub computed_at_ms: i64,
    /// Per hour.
    pub slope: f64,
    /// Enum8 code, see [`trend_direction_code`].
    pub direction: i8,
    pub change_pct: Option<f64>,
    pub forecast: f64,
    pub lower: f64,
    pub upper: f64,
    pub r2: f64,
    pub n: u32,
}

/// Row of `alert_history` (0006): one transition of one (rule, subject).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
pub struct AlertHistoryRow {
    pub dedup_key: String,
    pub rule_id: String,
    /// Enum8 code, see [`alert_scope_code`].
    pub scope: i8,
    pub subject: String,
    pub fleet_id: String,
    pub metric: String,
    /// Enum8 code, see [`alert_severity_code`].
    pub severity: i8,
    /// Enum8 code, see [`alert_status_code`].
    pub status: i8,
    /// Enum8 code, see [`alert_event_action_code`].
    pub event_action: i8,
    pub value: f64,
    pub threshold: f64,
    /// DateTime('UTC') as epoch seconds.
    pub at: u32,
    pub at_ms: i64,
    pub starts_at_ms: i64,
    /// 0 unless resolved.
    pub ends_at_ms: i64,
    pub summary: String,
    pub label_names: Vec<String>,
    pub label_values: Vec<String>,
}

impl AlertHistoryRow {
    /// Sets the two label arrays from name/value pairs.
    pub fn with_labels<'a>(mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let (names, values) = labels
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .unzip();
        self.label_names = names;
        self.label_values = values;
        self
    }
}

/// Row of `resource_pool_utilization` (0007).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
pub struct PoolUtilizationRow {
    pub pool_id: String,
    pub fleet_id: String,
    pub pool_kind: String,
    /// DateTime('UTC') as epoch seconds.
    pub ts: u32,
    pub ts_ms: i64,
    pub capacity: f64,
    pub allocated: f64,
    /// allocated / capacity, 0 when capacity is 0.
    pub utilization: f64,
    pub queued: u32,
}

impl PoolUtilizationRow {
    pub fn new(
        pool_id: &str,
        fleet_id: &str,
        pool_kind: &str,
        ts_ms: i64,
        capacity: f64,
        allocated: f64,
        queued: u32,
    ) -> Self {
        PoolUtilizationRow {
            pool_id: pool_id.into(),
            fleet_id: fleet_id.into(),
            pool_kind: pool_kind.into(),
            ts: datetime_secs(ts_ms),
            ts_ms,
            capacity,
            allocated,
            utilization: if capacity > 0.0 {
                allocated / capacity
            } else {
                0.0
            },
            queued,
        }
    }
}

/// Row of `mission_window_metrics` (0007).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
pub struct MissionWindowRow {
    pub fleet_id: String,
    /// DateTime('UTC') as epoch seconds.
    pub window_start: u32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub version: u32,
    pub missions_started: u64,
    pub missions_completed: u64,
    pub missions_failed: u64,
    pub duration_ms_sum: u64,
    pub planned_duration_ms_sum: u64,
    pub safety_events: u64,
    pub safety_critical: u64,
    pub distance_m: u64,
    pub emitted_at_ms: i64,
}

/// Row of `zone_demand` (0008).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
pub struct ZoneDemandRow {
    pub fleet_id: String,
    pub zone_id: String,
    /// DateTime('UTC') as epoch seconds.
    pub bucket_start: u32,
    pub bucket_start_ms: i64,
    pub bucket_end_ms: i64,
    pub version: u32,
    pub requests: u64,
    pub served: u64,
    pub expired: u64,
    pub wait_ms_sum: u64,
    pub arrivals: u64,
    pub idle_vehicles: u64,
    pub emitted_at_ms: i64,
}

/// Row of `zone_demand_forecast` (0008).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
pub struct ZoneForecastRow {
    pub fleet_id: String,
    pub run_id: String,
    pub zone_id: String,
    /// DateTime('UTC') as epoch seconds.
    pub bucket_start: u32,
    pub bucket_start_ms: i64,
    pub method: String,
    pub mean: f64,
    pub upper80: f64,
    pub upper95: f64,
    pub planned: u32,
    pub created_at_ms: i64,
}

/// Row of `vehicle_health_daily` (0009): one vehicle's UTC day as the health pipeline closed it.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, serde::Deserialize)]
pub struct VehicleHealthRow {
    pub fleet_id: String,
    pub vehicle_id: String,
    /// DateTime('UTC') as epoch seconds.
    pub day_start: u32,
    pub day_ms: i64,
    pub version: u32,
    pub samples: u32,
    pub distance_km: f64,
    pub energy_kwh: f64,
    pub kwh_per_km: Option<f64>,
    pub fleet_median_kwh_per_km: Option<f64>,
    pub observed_hours: f64,
    pub operating_hours: f64,
    pub busy_hours: f64,
    pub maintenance_hours: f64,
    pub faults: u32,
    pub fault_minutes: f64,
    pub precursors: u32,
    pub failures: u32,
    pub soh_pct: Option<f64>,
    pub soh_stderr_pct: Option<f64>,
    pub soh_segments: u32,
    pub score: Option<f64>,
    pub battery: Option<f64>,
    pub reliability: Option<f64>,
    pub efficiency: Option<f64>,
    pub availability: Option<f64>,
    pub failure_risk: Option<f64>,
    pub failure_risk_low: Option<f64>,
    pub failure_risk_high: Option<f64>,
    pub failure_alarm: u8,
    pub soh_per_month: Option<f64>,
    pub soh_per_1000_km: Option<f64>,
    pub soh_crosses_at_ms: Option<i64>,
    pub days_to_soh_threshold: Option<f64>,
    pub emitted_at_ms: i64,
}

/// Row of `fleet_health_daily` (0009): the distribution of a fleet's vehicle scores on a day.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, serde::Deserialize)]
pub struct FleetHealthRow {
    pub fleet_id: String,
    /// DateTime('UTC') as epoch seconds.
    pub day_start: u32,
    pub day_ms: i64,
    pub version: u32,
    pub vehicles: u32,
    pub scored: u32,
    pub min_score: Option<f64>,
    pub p10_score: Option<f64>,
    pub median_score: Option<f64>,
    pub mean_score: Option<f64>,
    pub worst_vehicles: Vec<String>,
    pub worst_scores: Vec<f64>,
    pub alarms: u32,
    pub emitted_at_ms: i64,
}

/// Row of `capacity_forecast` (0009): one zone-hour of a computed capacity metric.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
pub struct CapacityForecastRow {
    pub fleet_id: String,
    pub metric_id: String,
    pub zone_id: String,
    /// DateTime('UTC') as epoch seconds.
    pub hour_start: u32,
    pub hour_ms: i64,
    pub available: u32,
    pub demand_mean: f64,
    pub demand_planned: f64,
    pub shortfall: f64,
    pub created_at_ms: i64,
}

impl ClickHouseSink {
    pub async fn write_vehicle_health(&self, rows: &[VehicleHealthRow]) -> Result<()> {
        self.insert("vehicle_health_daily", rows).await
    }

    pub async fn write_fleet_health(&self, rows: &[FleetHealthRow]) -> Result<()> {
        self.insert("fleet_health_daily", rows).await
    }

    pub async fn write_capacity_forecast(&self, rows: &[CapacityForecastRow]) -> Result<()> {
        self.insert("capacity_forecast", rows).await
    }
}

/// Row of `optimization_plan_moves` (0008).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
pub struct PlanMoveRow {
    pub fleet_id: String,
    pub run_id: String,
    pub from_zone: String,
    pub to_zone: String,
    /// DateTime('UTC') as epoch seconds.
    pub depart_at: u32,
    pub depart_ms: i64,
    pub vehicles: u32,
    pub created_at_ms: i64,
}

impl ClickHouseSink {
    pub async fn write_plan_moves(&self, rows: &[PlanMoveRow]) -> Result<()> {
        self.insert("optimization_plan_moves", rows).await
    }

    pub async fn write_zone_demand(&self, rows: &[ZoneDemandRow]) -> Result<()> {
        self.insert("zone_demand", rows).await
    }

    pub async fn write_zone_forecasts(&self, rows: &[ZoneForecastRow]) -> Result<()> {
        self.insert("zone_demand_forecast", rows).await
    }

    pub async fn write_score_history(&self, rows: &[ScoreHistoryRow]) -> Result<()> {
        self.insert("performance_score_history", rows).await
    }

    pub async fn write_trend_history(&self, rows: &[TrendHistoryRow]) -> Result<()> {
        self.insert("trend_history", rows).await
    }

    pub async fn write_alert_history(&self, rows: &[AlertHistoryRow]) -> Result<()> {
        self.insert("alert_history", rows).await
    }

    pub async fn write_pool_utilization(&self, rows: &[PoolUtilizationRow]) -> Result<()> {
        self.insert("resource_pool_utilization", rows).await
    }

    pub async fn write_mission_windows(&self, rows: &[MissionWindowRow]) -> Result<()> {
        self.insert("mission_window_metrics", rows).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes match the Enum8 definitions of the migrations.
    #[test]
    fn enum_codes_match_migrations() {
        let sql = [
            include_str!("../../../migrations/clickhouse/0004_performance_history.sql"),
            include_str!("../../../migrations/clickhouse/0005_trend_history.sql"),
            include_str!("../../../migrations/clickhouse/0006_alert_history.sql"),
        ]
        .concat();
        let has = |name: &str, code: Option<i8>| {
            sql.contains(&format!("'{name}' = {}", code.expect(name)))
        };
        for p in ["window", "hour", "day"] {
            assert!(has(p, score_period_code(p)), "{p}");
        }
        for d in ["declining", "stable", "improving"] {
            assert!(has(d, trend_direction_code(d)), "{d}");
        }
        for s in ["fleet", "vehicle", "federation"] {
            assert!(has(s, alert_scope_code(s)), "{s}");
        }
        for s in ["info", "warning", "error", "critical"] {
            assert!(has(s, alert_severity_code(s)), "{s}");
        }
        for s in ["pending", "cancelled", "firing", "resent", "resolved"] {
            assert!(has(s, alert_status_code(s)), "{s}");
            let a = ["none", "trigger", "resolve"][alert_event_action_code(s) as usize];
            assert!(has(a, Some(alert_event_action_code(s))), "{a}");
        }
        assert_eq!(score_period_code("week"), None);
        assert_eq!(datetime_secs(1_700_000_000_999), 1_700_000_000);
        assert_eq!(datetime_secs(-5), 0);
        assert_eq!(
            PoolUtilizationRow::new("p", "f", "bay", 0, 0.0, 0.0, 0).utilization,
            0.0
        );
    }
}
