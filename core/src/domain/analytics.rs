//! fleet-analytics: health scores of vehicles and fleets, efficiency metrics, predictions
//! (failure risk, battery state-of-health threshold), capacity metrics the engine computes,
//! health trends and analytics reports (whose content is rendered on read by
//! [`crate::analytics::health_report`]).
//!
//! Every table but capacity metrics and reports holds two kinds of rows: those clients report
//! through the API (`source` `reported`, `version` 0) and those the health pipeline derives
//! from the stream (`stream`, ids derived from their subject and day, upserted only forward by
//! `version`), so one list shows both. Create bodies carry neither `source` nor `version`;
//! views show them.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::status::status_enum;
use super::validate::format_time;
use super::{
    Check, Fields, Ids, Lookup, NoUpdate, Ops, Reference, Resource, ResourceInfo, ScopeKind,
    Validate, BY_FLEET,
};
use crate::analytics::health::{fault_rates, per, FleetHealth};
pub use crate::analytics::trend::Direction;
use crate::Role;

const TAG: &str = "fleet-analytics";
const MS_PER_DAY: f64 = 86_400_000.0;
const EXAMPLE_START: &str = "2024-05-01T00:00:00Z";
const EXAMPLE_END: &str = "2024-05-02T00:00:00Z";

/// `GET <path>/by-vehicle/{vehicle_id}`.
pub const BY_VEHICLE: Lookup = Lookup {
    segment: "by-vehicle",
    column: "vehicle_id",
};

/// Longest period of an analytics report, days.
pub const MAX_REPORT_DAYS: i64 = 366;
/// Most worst vehicles a report lists.
pub const MAX_WORST_N: i64 = 100;
/// Longest prediction horizon, days.
pub const MAX_HORIZON_DAYS: i64 = 3650;

/// Who wrote a row: the health pipeline (`stream`) or a client through the API (`reported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RowSource {
    Stream,
    Reported,
}

/// The tables' `period_start` / `period_end` and the table CHECKs on a 0..100 component.
fn components(c: &mut Check, parts: [(&str, Option<f64>); 4]) {
    for (name, v) in parts {
        c.opt_range(name, v, 0.0, 100.0);
    }
}

// ---------------------------------------------------------------- health scores

/// A vehicle in a distribution of health scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoredVehicle {
    pub vehicle_id: String,
    /// 0..=100.
    pub score: f64,
}

/// The distribution of a fleet's vehicle health scores (0..100): the `distribution` of a
/// fleet's health score, and the daily and period distributions of the analytics report
/// (quantiles by linear interpolation, see [`crate::analytics::health::fleet_health`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthDistribution {
    /// Vehicles scored.
    pub vehicles: u32,
    pub min: f64,
    pub p10: f64,
    pub median: f64,
    pub mean: f64,
    /// The lowest scores, lowest first.
    pub worst: Vec<ScoredVehicle>,
}

impl From<FleetHealth> for HealthDistribution {
    fn from(f: FleetHealth) -> Self {
        HealthDistribution {
            vehicles: u32::try_from(f.vehicles).unwrap_or(u32::MAX),
            min: f.min,
            p10: f.p10,
            median: f.median,
            mean: f.mean,
            worst: f
                .worst
                .into_iter()
                .map(|(vehicle_id, score)| ScoredVehicle { vehicle_id, score })
                .collect(),
        }
    }
}

impl HealthDistribution {
    fn check(&self, c: &mut Check) {
        const F: &str = "distribution";
        let values = [self.min, self.p10, self.median, self.mean];
        if values.iter().any(|v| !(0.0..=100.0).contains(v)) {
            c.fail(F, "min, p10, median and mean must be between 0 and 100");
        } else if !(self.min <= self.p10 && self.p10 <= self.median && self.min <= self.mean) {
            c.fail(F, "must hold min ≤ p10 ≤ median and min ≤ mean");
        }
        if self.vehicles == 0 {
            c.fail(F, "vehicles must be at least 1");
        }
        if self.worst.len() > self.vehicles as usize {
            c.fail(F, "worst lists more vehicles than were scored");
        }
        for w in &self.worst {
            c.id(F, &w.vehicle_id);
            if !(self.min..=100.0).contains(&w.score) {
                c.fail(F, "a worst score must lie between min and 100");
            }
        }
    }
}

/// A health score 0..100 of a vehicle or (without `vehicle_id`) a fleet over a period, with
/// its components and the battery's state of health.
pub struct HealthScore;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthScoreCreate {
    pub fleet_id: String,
    /// The vehicle scored; absent for the fleet (then `score` is the median of its vehicles').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<String>,
    /// RFC 3339.
    pub period_start: String,
    /// RFC 3339, after `period_start`.
    pub period_end: String,
    /// 0..=100.
    pub score: f64,
    /// Battery component, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<f64>,
    /// 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliability: Option<f64>,
    /// 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<f64>,
    /// 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    /// Battery state of health, % of nominal capacity (0..=150).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soh_pct: Option<f64>,
    /// Standard error of `soh_pct`, ≥ 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soh_stderr_pct: Option<f64>,
    /// A fleet's score only: the distribution of its vehicles' scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<HealthDistribution>,
}

impl Validate for HealthScoreCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("vehicle_id", self.vehicle_id.as_deref());
        c.period(&self.period_start, &self.period_end);
        c.range("score", self.score, 0.0, 100.0);
        components(
            &mut c,
            [
                ("battery", self.battery),
                ("reliability", self.reliability),
                ("efficiency", self.efficiency),
                ("availability", self.availability),
            ],
        );
        c.opt_range("soh_pct", self.soh_pct, 0.0, 150.0);
        c.opt_at_least("soh_stderr_pct", self.soh_stderr_pct, 0.0);
        if let Some(d) = &self.distribution {
            if self.vehicle_id.is_some() {
                c.fail(
                    "distribution",
                    "only a fleet's score (without vehicle_id) has one",
                );
            }
            d.check(&mut c);
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthScoreView {
    pub id: String,
    pub fleet_id: String,
    pub vehicle_id: Option<String>,
    pub period_start: String,
    pub period_end: String,
    pub score: Option<f64>,
    pub battery: Option<f64>,
    pub reliability: Option<f64>,
    pub efficiency: Option<f64>,
    pub availability: Option<f64>,
    pub soh_pct: Option<f64>,
    pub soh_stderr_pct: Option<f64>,
    /// A fleet's score: the distribution of its vehicles' scores as stored (the shape of
    /// `HealthDistribution`).
    pub distribution: Option<serde_json::Value>,
    pub source: RowSource,
    /// The stream's version of the row (0 for reported rows).
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for HealthScore {
    const INFO: ResourceInfo = ResourceInfo {
        name: "health_score",
        plural: "health scores",
        table: "analytics_health_scores",
        path: "/api/v1/fleet-analytics/health-scores",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE_DELETE,
        actions: &[],
        lookups: &[BY_FLEET, BY_VEHICLE],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = HealthScoreCreate;
    type Update = NoUpdate;
    type View = HealthScoreView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "vehicle_id": format!("{fleet_id}-v1"),
               "period_start": EXAMPLE_START, "period_end": EXAMPLE_END, "score": 82.5,
               "battery": 90.0, "reliability": 75.0, "efficiency": 80.0, "availability": 85.0,
               "soh_pct": 96.5, "soh_stderr_pct": 0.8})
    }
}

// ---------------------------------------------------------------- efficiency metrics

/// Utilization, efficiency and reliability of a vehicle (or a fleet) over a period; the rates
/// (kWh/km, its ratio to the fleet median, faults per 1,000 km and per operating hour, fault
/// minutes per 1,000 km) are derived from the reported quantities ([`EfficiencyRates`]).
pub struct EfficiencyMetric;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EfficiencyMetricCreate {
    pub fleet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<String>,
    pub period_start: String,
    pub period_end: String,
    /// ≥ 0.
    pub distance_km: f64,
    /// ≥ 0.
    pub energy_kwh: f64,
    /// Time observed outside offline and maintenance, hours ≥ 0.
    pub operating_hours: f64,
    /// ≥ 0.
    pub faults: i64,
    /// Time in fault, minutes ≥ 0.
    pub fault_minutes: f64,
    /// The fleet's median kWh/km over the same period (≥ 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_median_kwh_per_km: Option<f64>,
    /// 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_pct: Option<f64>,
    /// 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_pct: Option<f64>,
    /// Share of observed time in maintenance, 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_share: Option<f64>,
}

impl Validate for EfficiencyMetricCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("vehicle_id", self.vehicle_id.as_deref());
        c.period(&self.period_start, &self.period_end);
        c.at_least("distance_km", self.distance_km, 0.0);
        c.at_least("energy_kwh", self.energy_kwh, 0.0);
        c.at_least("operating_hours", self.operating_hours, 0.0);
        if self.faults < 0 {
            c.fail("faults", "must be at least 0");
        }
        c.at_least("fault_minutes", self.fault_minutes, 0.0);
        c.opt_at_least("fleet_median_kwh_per_km", self.fleet_median_kwh_per_km, 0.0);
        c.opt_range("utilization_pct", self.utilization_pct, 0.0, 100.0);
        c.opt_range("availability_pct", self.availability_pct, 0.0, 100.0);
        c.opt_range("maintenance_share", self.maintenance_share, 0.0, 1.0);
        c.finish()
    }
}

/// The columns an efficiency metric derives from what was reported; `None` where a
/// denominator is zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EfficiencyRates {
    pub kwh_per_km: Option<f64>,
    /// `kwh_per_km` over the fleet median.
    pub efficiency_ratio: Option<f64>,
    pub faults_per_1000_km: Option<f64>,
    pub faults_per_operating_hour: Option<f64>,
    pub fault_minutes_per_1000_km: Option<f64>,
}

impl EfficiencyMetricCreate {
    pub fn rates(&self) -> EfficiencyRates {
        let kwh_per_km = per(self.energy_kwh, self.distance_km);
        let f = fault_rates(
            self.faults as f64,
            self.fault_minutes,
            self.distance_km,
            self.operating_hours,
        );
        EfficiencyRates {
            kwh_per_km,
            efficiency_ratio: kwh_per_km
                .zip(self.fleet_median_kwh_per_km)
                .and_then(|(v, m)| per(v, m)),
            faults_per_1000_km: f.faults_per_1000_km,
            faults_per_operating_hour: f.faults_per_operating_hour,
            fault_minutes_per_1000_km: f.fault_minutes_per_1000_km,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EfficiencyMetricView {
    pub id: String,
    pub fleet_id: String,
    pub vehicle_id: Option<String>,
    pub period_start: String,
    pub period_end: String,
    pub distance_km: f64,
    pub energy_kwh: f64,
    pub kwh_per_km: Option<f64>,
    pub fleet_median_kwh_per_km: Option<f64>,
    pub efficiency_ratio: Option<f64>,
    pub operating_hours: f64,
    pub utilization_pct: Option<f64>,
    pub availability_pct: Option<f64>,
    pub maintenance_share: Option<f64>,
    pub faults: i64,
    pub fault_minutes: f64,
    pub faults_per_1000_km: Option<f64>,
    pub faults_per_operating_hour: Option<f64>,
    pub fault_minutes_per_1000_km: Option<f64>,
    pub source: RowSource,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for EfficiencyMetric {
    const INFO: ResourceInfo = ResourceInfo {
        name: "efficiency_metric",
        plural: "efficiency metrics",
        table: "analytics_efficiency_metrics",
        path: "/api/v1/fleet-analytics/efficiency-metrics",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE_DELETE,
        actions: &[],
        lookups: &[BY_FLEET, BY_VEHICLE],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = EfficiencyMetricCreate;
    type Update = NoUpdate;
    type View = EfficiencyMetricView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "vehicle_id": format!("{fleet_id}-v1"),
               "period_start": EXAMPLE_START, "period_end": EXAMPLE_END, "distance_km": 180.0,
               "energy_kwh": 36.0, "operating_hours": 9.5, "faults": 1, "fault_minutes": 12.0,
               "fleet_median_kwh_per_km": 0.19, "utilization_pct": 62.0})
    }
}

// ---------------------------------------------------------------- predictions

/// What a prediction predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PredictionKind {
    /// `value` = probability of a failure within `horizon_days` after `as_of`.
    FailureRisk,
    /// `value` = days from `as_of` until the battery's state of health crosses `threshold` %.
    SohThreshold,
}

/// A prediction for a vehicle, with the inputs and model it came from and an interval.
pub struct Prediction;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PredictionCreate {
    pub fleet_id: String,
    pub vehicle_id: String,
    pub kind: PredictionKind,
    /// When the prediction was made (RFC 3339).
    pub as_of: String,
    /// failure_risk (required): the days after `as_of` the probability is about, 1..=3650.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_days: Option<i32>,
    /// failure_risk (required): probability 0..=1; soh_threshold: days from `as_of` until the
    /// state of health crosses `threshold` (≥ 0; absent: no crossing foreseen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Lower end of the interval (probability, or days), ≤ `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    /// Upper end of the interval (probability, or days; absent: beyond the model's reach), ≥ `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
    /// failure_risk: the probability reached the model's threshold (derived from `threshold`
    /// when absent; must agree with it when both are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<bool>,
    /// failure_risk: the model's alarm threshold, 0..=1; soh_threshold (required): the state
    /// of health that calls for a battery replacement, % (0..=150).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// soh_threshold: the state-of-health trajectory, % per month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope_per_month: Option<f64>,
    /// soh_threshold: % per 1,000 km.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope_per_1000_km: Option<f64>,
    /// What the model was given (a JSON object).
    #[serde(default = "empty_object")]
    pub inputs: serde_json::Value,
    /// The model that made it, e.g. `logistic-v3`.
    pub model: String,
}

fn empty_object() -> serde_json::Value {
    json!({})
}

/// What a prediction derives when stored: the date the state of health crosses its threshold
/// (soh_threshold: `as_of` + `value` days) and the alarm (failure_risk: `value ≥ threshold`,
/// when the client gave a threshold and no alarm).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionDerived {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<bool>,
}

impl PredictionCreate {
    /// soh_threshold: `as_of` + `value` days, epoch ms (`None` past year 9999).
    fn crossing_ms(&self) -> Option<i64> {
        let t = crate::clock::parse_rfc3339(&self.as_of)?;
        let at = t.checked_add((self.value? * MS_PER_DAY).round() as i64)?;
        (at <= crate::clock::MAX_INSTANT_MS).then_some(at)
    }

    pub fn derived(&self) -> PredictionDerived {
        match self.kind {
            PredictionKind::FailureRisk => PredictionDerived {
                predicted_at: None,
                alarm: match (self.alarm, self.value, self.threshold) {
                    (None, Some(v), Some(t)) => Some(v >= t),
                    _ => None,
                },
            },
            PredictionKind::SohThreshold => PredictionDerived {
                predicted_at: self.crossing_ms().map(format_time),
                alarm: None,
            },
        }
    }
}

impl Validate for PredictionCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("vehicle_id", &self.vehicle_id);
        c.time("as_of", &self.as_of);
        c.text("model", &self.model, 200);
        if !self.inputs.is_object() {
            c.fail("inputs", "must be a JSON object");
        }
        if let Some(h) = self.horizon_days {
            c.int("horizon_days", h.into(), 1, MAX_HORIZON_DAYS);
        }
        c.opt_finite("slope_per_month", self.slope_per_month);
        c.opt_finite("slope_per_1000_km", self.slope_per_1000_km);
        let unit = match self.kind {
            PredictionKind::FailureRisk => {
                if self.horizon_days.is_none() {
                    c.fail("horizon_days", "required for a failure_risk prediction");
                }
                match self.value {
                    None => c.fail("value", "required: the probability of a failure"),
                    Some(v) => c.range("value", v, 0.0, 1.0),
                }
                c.opt_range("lower", self.lower, 0.0, 1.0);
                c.opt_range("upper", self.upper, 0.0, 1.0);
                c.opt_range("threshold", self.threshold, 0.0, 1.0);
                if let (Some(a), Some(v), Some(t)) = (self.alarm, self.value, self.threshold) {
                    if a != (v >= t) {
                        c.fail("alarm", "must be value ≥ threshold");
                    }
                }
                for (name, v) in [
                    ("slope_per_month", self.slope_per_month),
                    ("slope_per_1000_km", self.slope_per_1000_km),
                ] {
                    if v.is_some() {
                        c.fail(name, "only for a soh_threshold prediction");
                    }
                }
                "probability"
            }
            PredictionKind::SohThreshold => {
                match self.threshold {
                    None => c.fail("threshold", "required: the state of health, %"),
                    Some(t) => c.range("threshold", t, 0.0, 150.0),
                }
                let days = MAX_HORIZON_DAYS as f64 * 10.0;
                c.opt_range("value", self.value, 0.0, days);
                c.opt_range("lower", self.lower, 0.0, days);
                c.opt_range("upper", self.upper, 0.0, days);
                if self.value.is_some_and(|v| (0.0..=days).contains(&v))
                    && crate::clock::parse_rfc3339(&self.as_of).is_some()
                    && self.crossing_ms().is_none()
                {
                    c.fail("value", "the crossing would fall after the year 9999");
                }
                if self.alarm.is_some() {
                    c.fail("alarm", "only for a failure_risk prediction");
                }
                "days"
            }
        };
        let (lo, v, hi) = (self.lower, self.value, self.upper);
        if lo.zip(v).is_some_and(|(lo, v)| lo > v) || lo.zip(hi).is_some_and(|(lo, hi)| lo > hi) {
            c.fail("lower", format!("must not exceed value or upper ({unit})"));
        }
        if v.zip(hi).is_some_and(|(v, hi)| v > hi) {
            c.fail("upper", format!("must not be below value ({unit})"));
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PredictionView {
    pub id: String,
    pub fleet_id: String,
    pub vehicle_id: String,
    pub kind: PredictionKind,
    pub as_of: String,
    pub horizon_days: Option<i32>,
    pub value: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub alarm: Option<bool>,
    pub threshold: Option<f64>,
    /// soh_threshold: when the state of health crosses `threshold`.
    pub predicted_at: Option<String>,
    pub slope_per_month: Option<f64>,
    pub slope_per_1000_km: Option<f64>,
    pub inputs: serde_json::Value,
    pub model: String,
    pub source: RowSource,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Prediction {
    const INFO: ResourceInfo = ResourceInfo {
        name: "prediction",
        plural: "predictions",
        table: "analytics_predictions",
        path: "/api/v1/fleet-analytics/predictions",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE_DELETE,
        actions: &[],
        lookups: &[BY_FLEET, BY_VEHICLE],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = PredictionCreate;
    type Update = NoUpdate;
    type View = PredictionView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "vehicle_id": format!("{fleet_id}-v1"), "kind": "failure_risk",
               "as_of": EXAMPLE_END, "horizon_days": 14, "value": 0.12, "lower": 0.05,
               "upper": 0.22, "alarm": false, "threshold": 0.3,
               "inputs": {"faults_7d": 2, "precursors_7d": 5}, "model": "logistic-v1"})
    }
}

// ---------------------------------------------------------------- capacity metrics

status_enum! {
    /// A capacity computation: queued by the API, run by the engine.
    CapacityStatus {
        Queued = "queued",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
    }
    transitions { Queued => [Running, Failed], Running => [Completed, Failed] }
}

fn default_horizon_hours() -> i32 {
    12
}

fn default_demand_quantile() -> f64 {
    0.9
}

fn default_history_days() -> i32 {
    14
}

/// Vehicles available against the forecast demand of the next hours, per zone of a fleet: a
/// create asks for the computation (status `queued`); the engine sets the status, the hours and
/// the summaries (clients cannot).
pub struct CapacityMetric;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CapacityMetricCreate {
    pub fleet_id: String,
    /// An optimization zone of the fleet; absent: every zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    /// The moment the capacity is computed for (RFC 3339); absent: when the engine runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// Hours ahead, 1..=72 (default 12).
    #[serde(default = "default_horizon_hours")]
    pub horizon_hours: i32,
    /// The quantile of the demand forecast planned for, in (0, 1) (default 0.9).
    #[serde(default = "default_demand_quantile")]
    pub demand_quantile: f64,
    /// Days of demand history the forecast uses, 1..=90 (default 14).
    #[serde(default = "default_history_days")]
    pub history_days: i32,
}

impl Validate for CapacityMetricCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("zone_id", self.zone_id.as_deref());
        c.opt_time("as_of", self.as_of.as_deref());
        c.int("horizon_hours", self.horizon_hours.into(), 1, 72);
        if !(self.demand_quantile > 0.0 && self.demand_quantile < 1.0) {
            c.fail("demand_quantile", "must be between 0 and 1 (exclusive)");
        }
        c.int("history_days", self.history_days.into(), 1, 90);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CapacityMetricView {
    pub id: String,
    pub fleet_id: String,
    pub zone_id: Option<String>,
    pub as_of: Option<String>,
    pub horizon_hours: i32,
    pub demand_quantile: f64,
    pub history_days: i32,
    pub status: CapacityStatus,
    /// Per zone and hour ahead: `[{zone_id, hour_start, available, demand_mean,
    /// demand_planned, shortfall}]`, as the engine wrote it.
    pub hours: Option<serde_json::Value>,
    pub available_vehicles: Option<i32>,
    pub peak_demand: Option<f64>,
    /// The largest shortfall of an hour (vehicles).
    pub max_shortfall: Option<f64>,
    /// Zone-hours with a shortfall.
    pub shortfall_hours: Option<i32>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for CapacityMetric {
    const INFO: ResourceInfo = ResourceInfo {
        name: "capacity_metric",
        plural: "capacity metrics",
        table: "analytics_capacity_metrics",
        path: "/api/v1/fleet-analytics/capacity-metrics",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE_DELETE,
        actions: &[],
        lookups: &[
            BY_FLEET,
            Lookup {
                segment: "by-status",
                column: "status",
            },
        ],
        references: &[Reference {
            field: "zone_id",
            target: "zone",
            same_fleet: true,
        }],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = CapacityMetricCreate;
    type Update = NoUpdate;
    type View = CapacityMetricView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        let mut v = json!({"fleet_id": fleet_id, "as_of": "2024-05-01T06:00:00Z", "horizon_hours": 12,
                           "demand_quantile": 0.9, "history_days": 14});
        if let Some(z) = ids.get("zone").and_then(|v| v.first()) {
            v["zone_id"] = json!(z);
        }
        v
    }
}

// ---------------------------------------------------------------- trends

/// The trend of a vehicle's (or fleet's) health metric over a period: least-squares slope per
/// day with its standard error, per 1,000 km where it applies, the direction and the value now.
pub struct AnalyticsTrend;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalyticsTrendCreate {
    pub fleet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<String>,
    /// The metric, e.g. `soh_pct`, `score`, `kwh_per_km`.
    pub metric: String,
    pub period_start: String,
    pub period_end: String,
    /// Points the trend was fitted to.
    pub points: i32,
    /// Needs 2 or more points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope_per_day: Option<f64>,
    /// Standard error of the slope, ≥ 0 (with a slope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope_se: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope_per_1000_km: Option<f64>,
    pub direction: Direction,
    /// The fitted value at the end of the period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_now: Option<f64>,
}

impl Validate for AnalyticsTrendCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("vehicle_id", self.vehicle_id.as_deref());
        c.id("metric", &self.metric);
        c.period(&self.period_start, &self.period_end);
        c.int("points", self.points.into(), 0, 1_000_000);
        c.opt_finite("slope_per_day", self.slope_per_day);
        c.opt_at_least("slope_se", self.slope_se, 0.0);
        c.opt_finite("slope_per_1000_km", self.slope_per_1000_km);
        c.opt_finite("value_now", self.value_now);
        if self.slope_per_day.is_some() && self.points < 2 {
            c.fail("slope_per_day", "a slope needs 2 or more points");
        }
        if self.slope_se.is_some() && self.slope_per_day.is_none() {
            c.fail("slope_se", "only with slope_per_day");
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalyticsTrendView {
    pub id: String,
    pub fleet_id: String,
    pub vehicle_id: Option<String>,
    pub metric: String,
    pub period_start: String,
    pub period_end: String,
    pub points: i32,
    pub slope_per_day: Option<f64>,
    pub slope_se: Option<f64>,
    pub slope_per_1000_km: Option<f64>,
    pub direction: Direction,
    pub value_now: Option<f64>,
    pub source: RowSource,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for AnalyticsTrend {
    const INFO: ResourceInfo = ResourceInfo {
        name: "analytics_trend",
        plural: "health trends",
        table: "analytics_trends",
        path: "/api/v1/fleet-analytics/trends",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE_DELETE,
        actions: &[],
        // No by-vehicle: the table has no index on vehicle_id (the per-vehicle health read
        // finds a vehicle's trends within its fleet).
        lookups: &[BY_FLEET],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = AnalyticsTrendCreate;
    type Update = NoUpdate;
    type View = AnalyticsTrendView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "vehicle_id": format!("{fleet_id}-v1"), "metric": "soh_pct",
               "period_start": EXAMPLE_START, "period_end": EXAMPLE_END, "points": 30,
               "slope_per_day": -0.01, "slope_se": 0.002, "direction": "declining", "value_now": 96.4})
    }
}

// ---------------------------------------------------------------- reports

fn default_worst_n() -> i32 {
    5
}

/// An analytics report of a fleet over a period; its content (health distribution, worst
/// vehicles, predicted failures, battery replacements, capacity shortfalls) is rendered on
/// read from the rows above: `GET <path>/{id}/content?format=json|csv`.
pub struct AnalyticsReport;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalyticsReportCreate {
    pub fleet_id: String,
    pub title: String,
    pub period_start: String,
    /// At most 366 days after `period_start`.
    pub period_end: String,
    /// Worst vehicles (and, at least, predicted failures) listed, 1..=100 (default 5).
    #[serde(default = "default_worst_n")]
    pub worst_n: i32,
}

impl Validate for AnalyticsReportCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.text("title", &self.title, 200);
        if let Some((s, e)) = c.period(&self.period_start, &self.period_end) {
            if e - s > MAX_REPORT_DAYS * MS_PER_DAY as i64 {
                c.fail(
                    "period_end",
                    format!("the period may span at most {MAX_REPORT_DAYS} days"),
                );
            }
        }
        c.int("worst_n", self.worst_n.into(), 1, MAX_WORST_N);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalyticsReportView {
    pub id: String,
    pub fleet_id: String,
    pub title: String,
    pub period_start: String,
    pub period_end: String,
    pub worst_n: i32,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for AnalyticsReport {
    const INFO: ResourceInfo = ResourceInfo {
        name: "analytics_report",
        plural: "analytics reports",
        table: "analytics_reports",
        path: "/api/v1/fleet-analytics/reports",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE_DELETE,
        actions: &[],
        lookups: &[BY_FLEET],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = AnalyticsReportCreate;
    type Update = NoUpdate;
    type View = AnalyticsReportView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "title": "Weekly fleet health", "period_start": EXAMPLE_START,
               "period_end": "2024-05-08T00:00:00Z", "worst_n": 5})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<T: Validate>(t: &T) -> Vec<String> {
        t.validate().err().unwrap_or_default().into_keys().collect()
    }

    fn prediction(v: serde_json::Value) -> PredictionCreate {
        let mut base = Prediction::example("f", &Ids::new());
        for (k, x) in v.as_object().unwrap() {
            if x.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = x.clone();
            }
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn efficiency_rates_are_derived() {
        let c: EfficiencyMetricCreate =
            serde_json::from_value(EfficiencyMetric::example("f", &Ids::new())).unwrap();
        let r = c.rates();
        assert!((r.kwh_per_km.unwrap() - 0.2).abs() < 1e-12);
        assert!((r.efficiency_ratio.unwrap() - 0.2 / 0.19).abs() < 1e-12);
        assert!((r.faults_per_1000_km.unwrap() - 1000.0 / 180.0).abs() < 1e-12);
        assert!((r.faults_per_operating_hour.unwrap() - 1.0 / 9.5).abs() < 1e-12);
        assert!((r.fault_minutes_per_1000_km.unwrap() - 12_000.0 / 180.0).abs() < 1e-12);
        let idle = EfficiencyMetricCreate {
            distance_km: 0.0,
            operating_hours: 0.0,
            ..c
        };
        let r = idle.rates();
        assert_eq!(
            (
                r.kwh_per_km,
                r.efficiency_ratio,
                r.faults_per_operating_hour
            ),
            (None, None, None)
        );
    }

    #[test]
    fn predictions_follow_their_kind() {
        assert!(fields(&prediction(json!({}))).is_empty());
        // A failure risk needs its probability and horizon; an alarm must agree.
        assert_eq!(
            fields(&prediction(json!({"value": null, "horizon_days": null}))),
            ["horizon_days", "value"]
        );
        assert_eq!(
            fields(&prediction(
                json!({"value": 0.4, "upper": 0.5, "alarm": false})
            )),
            ["alarm"]
        );
        assert_eq!(
            fields(&prediction(
                json!({"value": 1.5, "upper": null, "alarm": null})
            )),
            ["value"]
        );
        assert_eq!(fields(&prediction(json!({"upper": 0.1}))), ["upper"]);
        assert_eq!(
            fields(&prediction(json!({"slope_per_month": -0.2, "inputs": [1]}))),
            ["inputs", "slope_per_month"]
        );
        let p = prediction(json!({"alarm": null, "value": 0.3}));
        assert_eq!(
            p.derived(),
            PredictionDerived {
                predicted_at: None,
                alarm: Some(true)
            }
        );
        // A state-of-health threshold: days to the crossing give its date.
        let soh = prediction(
            json!({"kind": "soh_threshold", "as_of": "2024-05-01T00:00:00Z",
            "horizon_days": null, "alarm": null, "threshold": 80.0, "value": 30.5, "lower": 20.0,
            "upper": 45.0, "slope_per_month": -0.4}),
        );
        assert!(fields(&soh).is_empty(), "{:?}", soh.validate());
        assert_eq!(
            soh.derived().predicted_at.as_deref(),
            Some("2024-05-31T12:00:00.000Z")
        );
        let late = PredictionCreate {
            as_of: "9999-12-20T00:00:00Z".into(),
            ..soh.clone()
        };
        assert_eq!(fields(&late), ["value"], "crosses after the year 9999");
        assert_eq!(late.derived().predicted_at, None);
        let open = PredictionCreate {
            value: None,
            upper: None,
            ..soh.clone()
        };
        assert!(fields(&open).is_empty());
        assert_eq!(open.derived().predicted_at, None);
        assert_eq!(
            fields(&PredictionCreate {
                threshold: None,
                alarm: Some(true),
                lower: Some(50.0),
                ..soh
            }),
            ["alarm", "lower", "threshold"]
        );
    }

    #[test]
    fn health_scores_and_distributions() {
        let mut c: HealthScoreCreate =
            serde_json::from_value(HealthScore::example("f", &Ids::new())).unwrap();
        let d = HealthDistribution::from(
            crate::analytics::health::fleet_health(
                &[("a".into(), 40.0), ("b".into(), 60.0), ("c".into(), 80.0)],
                2,
            )
            .unwrap(),
        );
        assert_eq!((d.vehicles, d.median, d.p10), (3, 60.0, 44.0));
        assert_eq!(d.worst[1].vehicle_id, "b");
        c.distribution = Some(d.clone());
        assert_eq!(fields(&c), ["distribution"], "a vehicle has none");
        c.vehicle_id = None;
        assert!(fields(&c).is_empty());
        c.distribution = Some(HealthDistribution {
            p10: 70.0,
            ..d.clone()
        });
        assert_eq!(fields(&c), ["distribution"]);
        c.distribution = Some(d);
        c.soh_pct = Some(151.0);
        c.soh_stderr_pct = Some(-1.0);
        c.period_end = c.period_start.clone();
        assert_eq!(fields(&c), ["period_end", "soh_pct", "soh_stderr_pct"]);
    }

    #[test]
    fn capacity_trend_and_report_bounds() {
        let mut c: CapacityMetricCreate = serde_json::from_value(json!({"fleet_id": "f"})).unwrap();
        assert_eq!(
            (c.horizon_hours, c.demand_quantile, c.history_days),
            (12, 0.9, 14)
        );
        c.horizon_hours = 73;
        c.demand_quantile = 1.0;
        c.history_days = 0;
        assert_eq!(
            fields(&c),
            ["demand_quantile", "history_days", "horizon_hours"]
        );
        assert!(CapacityStatus::Queued.can_become(CapacityStatus::Running));
        assert!(!CapacityStatus::Completed.can_become(CapacityStatus::Running));
        let t: AnalyticsTrendCreate =
            serde_json::from_value(json!({"fleet_id": "f", "metric": "score",
            "period_start": EXAMPLE_START, "period_end": EXAMPLE_END, "points": 1,
            "slope_per_day": 0.1, "direction": "improving"}))
            .unwrap();
        assert_eq!(fields(&t), ["slope_per_day"]);
        let r: AnalyticsReportCreate = serde_json::from_value(json!({"fleet_id": "f", "title": "t",
            "period_start": "2024-01-01T00:00:00Z", "period_end": "2025-01-02T00:00:00Z", "worst_n": 0}))
        .unwrap();
        assert_eq!(fields(&r), ["period_end", "worst_n"]);
        assert!(serde_json::from_value::<HealthScoreCreate>(json!({"fleet_id": "f",
            "period_start": EXAMPLE_START, "period_end": EXAMPLE_END, "score": 1.0, "source": "stream"}))
        .is_err(), "clients cannot set the source");
    }
}
