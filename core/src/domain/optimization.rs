//! fleet-optimization: multi-objective optimization runs (cost, efficiency, coverage), their
//! results and recommendations, rebalancing plans and metrics.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::status::status_enum;
use super::{
    Action, Check, Fields, Ids, Lookup, Nested, NoUpdate, Ops, Reference, Resource, ResourceInfo,
    ScopeKind, Validate, BY_FLEET,
};
use crate::Role;

const TAG: &str = "fleet-optimization";
const BY_RUN: Lookup = Lookup {
    segment: "by-run",
    column: "run_id",
};
const RUN_REF: Reference = Reference {
    field: "run_id",
    target: "optimization_run",
    same_fleet: true,
};

// ---------------------------------------------------------------- zones

/// Most neighbours a zone may list.
pub const MAX_NEIGHBOURS: usize = 200;

/// A zone of a fleet's service area that vehicles idle in and are rebalanced between (the
/// optimization engine's nodes): its centroid, how many vehicles may idle in it, and optionally
/// the zones a move may go to (absent: every zone of the fleet).
pub struct ServiceZone;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ZoneCreate {
    pub fleet_id: String,
    pub name: String,
    /// Centroid latitude, degrees.
    pub lat: f64,
    /// Centroid longitude, degrees.
    pub lon: f64,
    /// Vehicles that may idle in the zone at once.
    pub vehicle_capacity: i64,
    /// Ids of zones of the same fleet a move from this one may go to; absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<Vec<String>>,
}

fn check_neighbours(c: &mut Check, v: Option<&[String]>) {
    let Some(n) = v else { return };
    if n.len() > MAX_NEIGHBOURS {
        c.fail("neighbours", format!("at most {MAX_NEIGHBOURS} zones"));
    }
    for id in n {
        c.id("neighbours", id);
    }
    let distinct: std::collections::BTreeSet<&String> = n.iter().collect();
    if distinct.len() != n.len() {
        c.fail("neighbours", "lists a zone twice");
    }
}

impl Validate for ZoneCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.text("name", &self.name, 200);
        c.range("lat", self.lat, -90.0, 90.0);
        c.range("lon", self.lon, -180.0, 180.0);
        c.int("vehicle_capacity", self.vehicle_capacity, 0, 1_000_000);
        check_neighbours(&mut c, self.neighbours.as_deref());
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ZoneUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<Vec<String>>,
}

impl Validate for ZoneUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_text("name", self.name.as_deref(), 200);
        c.opt_range("lat", self.lat, -90.0, 90.0);
        c.opt_range("lon", self.lon, -180.0, 180.0);
        c.opt_int("vehicle_capacity", self.vehicle_capacity, 0, 1_000_000);
        check_neighbours(&mut c, self.neighbours.as_deref());
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ZoneView {
    pub id: String,
    pub fleet_id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub vehicle_capacity: i64,
    pub neighbours: Option<Vec<String>>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for ServiceZone {
    const INFO: ResourceInfo = ResourceInfo {
        name: "zone",
        plural: "zones",
        table: "optimization_zones",
        path: "/api/v1/fleet-optimization/zones",
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
    type Create = ZoneCreate;
    type Update = ZoneUpdate;
    type View = ZoneView;

    /// Two zones; the second lists the first as a neighbour.
    const EXAMPLE_COUNT: usize = 2;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        match ids.get("zone").and_then(|v| v.first()) {
            None => json!({"fleet_id": fleet_id, "name": "Zone north", "lat": 52.54, "lon": 13.40,
                           "vehicle_capacity": 40}),
            Some(first) => json!({"fleet_id": fleet_id, "name": "Zone centre", "lat": 52.52,
                                  "lon": 13.41, "vehicle_capacity": 60, "neighbours": [first]}),
        }
    }
}

// ---------------------------------------------------------------- runs

/// An optimization run with objective weights; queued → running → completed / failed, or
/// cancelled. `started_at` / `finished_at` are set by the status changes.
pub struct Run;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunCreate {
    pub fleet_id: String,
    pub name: String,
    /// Weight of cost (lower is better), 0..=1.
    pub cost_weight: f64,
    /// Weight of efficiency, 0..=1.
    pub efficiency_weight: f64,
    /// Weight of coverage, 0..=1.
    pub coverage_weight: f64,
    /// Solver parameters (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

impl Validate for RunCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.text("name", &self.name, 200);
        c.range("cost_weight", self.cost_weight, 0.0, 1.0);
        c.range("efficiency_weight", self.efficiency_weight, 0.0, 1.0);
        c.range("coverage_weight", self.coverage_weight, 0.0, 1.0);
        if self.cost_weight + self.efficiency_weight + self.coverage_weight <= 0.0 {
            c.fail("cost_weight", "at least one weight must be positive");
        }
        if self.parameters.as_ref().is_some_and(|p| !p.is_object()) {
            c.fail("parameters", "must be a JSON object");
        }
        c.finish()
    }
}

impl RunCreate {
    pub fn weights(&self) -> [f64; 3] {
        [
            self.cost_weight,
            self.efficiency_weight,
            self.coverage_weight,
        ]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Must be a valid transition from the current status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// Why a run failed (with status `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Validate for RunUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_text("name", self.name.as_deref(), 200);
        c.opt_text("error", self.error.as_deref(), 4000);
        if self.error.is_some() && self.status != Some(RunStatus::Failed) {
            c.fail("error", "only with status failed");
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunView {
    pub id: String,
    pub fleet_id: String,
    pub name: String,
    pub cost_weight: f64,
    pub efficiency_weight: f64,
    pub coverage_weight: f64,
    pub parameters: Option<serde_json::Value>,
    pub status: RunStatus,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Run {
    const INFO: ResourceInfo = ResourceInfo {
        name: "optimization_run",
        plural: "optimization runs",
        table: "optimization_runs",
        path: "/api/v1/fleet-optimization/runs",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CRUD,
        actions: &[],
        lookups: &[
            BY_FLEET,
            Lookup {
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
    type Create = RunCreate;
    type Update = RunUpdate;
    type View = RunView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "name": "Morning rebalance", "cost_weight": 0.3, "efficiency_weight": 0.3,
               "coverage_weight": 0.4, "parameters": {"horizon_h": 4}})
    }
}

// ---------------------------------------------------------------- rebalancing

/// A plan to move vehicles between zones: proposed → approved → executed, or rejected.
pub struct Rebalancing;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RebalancingCreate {
    pub fleet_id: String,
    /// The run that proposed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub from_zone: String,
    pub to_zone: String,
    pub vehicle_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Validate for RebalancingCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("run_id", self.run_id.as_deref());
        c.id("from_zone", &self.from_zone);
        c.id("to_zone", &self.to_zone);
        if self.from_zone == self.to_zone {
            c.fail("to_zone", "must differ from from_zone");
        }
        c.int("vehicle_count", self.vehicle_count, 1, 100_000);
        c.opt_text("reason", self.reason.as_deref(), 2000);
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RebalancingUpdate {
    /// Proposed plans only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_count: Option<i64>,
    /// Must be a valid transition from the current status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RebalancingStatus>,
}

impl Validate for RebalancingUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_int("vehicle_count", self.vehicle_count, 1, 100_000);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RebalancingView {
    pub id: String,
    pub fleet_id: String,
    pub run_id: Option<String>,
    pub from_zone: String,
    pub to_zone: String,
    pub vehicle_count: i64,
    pub reason: Option<String>,
    pub status: RebalancingStatus,
    /// When an accepted recommendation approved it (plans made that way follow the vehicles).
    pub approved_at: Option<String>,
    /// Vehicles seen to go from `from_zone` to `to_zone` since `approved_at`.
    pub moved_vehicles: i64,
    /// When `moved_vehicles` reached `vehicle_count` (status `executed`).
    pub executed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Rebalancing {
    const INFO: ResourceInfo = ResourceInfo {
        name: "rebalancing",
        plural: "rebalancing plans",
        table: "optimization_rebalancing",
        path: "/api/v1/fleet-optimization/rebalancing",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CRUD,
        actions: &[],
        lookups: &[
            BY_FLEET,
            BY_RUN,
            Lookup {
                segment: "by-status",
                column: "status",
            },
        ],
        references: &[RUN_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = RebalancingCreate;
    type Update = RebalancingUpdate;
    type View = RebalancingView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        let mut v = json!({"fleet_id": fleet_id, "from_zone": "zone-north", "to_zone": "zone-centre", "vehicle_count": 3});
        if let Some(r) = ids.get("optimization_run").and_then(|v| v.first()) {
            v["run_id"] = json!(r);
        }
        v
    }
}

// ---------------------------------------------------------------- results

/// An evaluated candidate of a run: normalized cost, efficiency and coverage, and the score
/// under the run's weights (computed when stored).
pub struct RunResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunResultCreate {
    pub fleet_id: String,
    pub run_id: String,
    /// Normalized cost, 0..=1, lower is better.
    pub cost: f64,
    /// 0..=1.
    pub efficiency: f64,
    /// 0..=1.
    pub coverage: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Validate for RunResultCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("run_id", &self.run_id);
        c.range("cost", self.cost, 0.0, 1.0);
        c.range("efficiency", self.efficiency, 0.0, 1.0);
        c.range("coverage", self.coverage, 0.0, 1.0);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunResultView {
    pub id: String,
    pub fleet_id: String,
    pub run_id: String,
    pub cost: f64,
    pub efficiency: f64,
    pub coverage: f64,
    pub details: Option<serde_json::Value>,
    /// Weighted objective 0..=1 under the run's weights.
    pub score: f64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for RunResult {
    const INFO: ResourceInfo = ResourceInfo {
        name: "optimization_result",
        plural: "optimization results",
        table: "optimization_results",
        path: "/api/v1/fleet-optimization/results",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FLEET, BY_RUN],
        references: &[RUN_REF],
        item_key: None,
        nested: Some(Nested {
            parent: "optimization_run",
            parent_path: Run::INFO.path,
            segment: "results",
            column: "run_id",
            key: None,
        }),
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = RunResultCreate;
    type Update = NoUpdate;
    type View = RunResultView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "run_id": super::id_of(ids, "optimization_run", 0), "cost": 0.2,
               "efficiency": 0.6, "coverage": 0.5})
    }
}

// ---------------------------------------------------------------- recommendations

/// An action recommended by a run.
pub struct Recommendation;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecommendationCreate {
    pub fleet_id: String,
    pub run_id: String,
    /// What to do, e.g. `move 3 vehicles from zone-north to zone-centre`.
    pub action: String,
    /// 0..=100, higher first.
    pub priority: i32,
    /// Expected improvement of the objective.
    pub expected_gain: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Validate for RecommendationCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("run_id", &self.run_id);
        c.text("action", &self.action, 2000);
        c.int("priority", self.priority.into(), 0, 100);
        c.finite("expected_gain", self.expected_gain);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecommendationView {
    pub id: String,
    pub fleet_id: String,
    pub run_id: String,
    pub action: String,
    pub priority: i32,
    pub expected_gain: f64,
    pub details: Option<serde_json::Value>,
    /// `issued`, then `accepted` or `rejected` (the actions).
    pub status: String,
    pub decided_at: Option<String>,
    /// Who accepted or rejected it (the caller's actor).
    pub decided_by: Option<String>,
    /// The rebalancing plan its acceptance created.
    pub rebalancing_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Why a recommendation in `status` cannot take `action` (`accept` or `reject`), if so; an
/// accepted one also needs a move (`details.from_zone`, `to_zone`, `vehicles`, as the engine
/// writes them) to become a rebalancing plan.
pub fn recommendation_action_error(
    action: &str,
    status: &str,
    details: Option<&serde_json::Value>,
) -> Option<String> {
    if status != "issued" {
        return Some(format!("the recommendation was {status} already"));
    }
    let is_move = details.is_some_and(|d| {
        d.get("from_zone").and_then(|v| v.as_str()).is_some()
            && d.get("to_zone").and_then(|v| v.as_str()).is_some()
            && d.get("vehicles")
                .and_then(|v| v.as_i64())
                .is_some_and(|n| n > 0)
    });
    (action == "accept" && !is_move).then(|| {
        "the recommendation is no move (details.from_zone, to_zone and vehicles): nothing to plan"
            .to_string()
    })
}

impl Resource for Recommendation {
    const INFO: ResourceInfo = ResourceInfo {
        name: "recommendation",
        plural: "optimization recommendations",
        table: "optimization_recommendations",
        path: "/api/v1/fleet-optimization/recommendations",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[
            Action {
                name: "accept",
                summary: "Accept the move: creates its rebalancing plan (approved) and counts towards the run's adoption rate",
            },
            Action {
                name: "reject",
                summary: "Reject the move (counts towards the run's adoption rate)",
            },
        ],
        lookups: &[BY_FLEET, BY_RUN],
        references: &[RUN_REF],
        item_key: None,
        nested: Some(Nested {
            parent: "optimization_run",
            parent_path: Run::INFO.path,
            segment: "recommendations",
            column: "run_id",
            key: None,
        }),
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = RecommendationCreate;
    type Update = NoUpdate;
    type View = RecommendationView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "run_id": super::id_of(ids, "optimization_run", 0),
               "action": "move 3 vehicles from zone-north to zone-centre", "priority": 80, "expected_gain": 0.07})
    }
}

// ---------------------------------------------------------------- metrics

/// A metric value of the optimization of a fleet (optionally of one run).
pub struct OptimizationMetric;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OptimizationMetricCreate {
    pub fleet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub metric: String,
    pub value: f64,
}

impl Validate for OptimizationMetricCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("run_id", self.run_id.as_deref());
        c.id("metric", &self.metric);
        c.finite("value", self.value);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OptimizationMetricView {
    pub id: String,
    pub fleet_id: String,
    pub run_id: Option<String>,
    pub metric: String,
    pub value: f64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for OptimizationMetric {
    const INFO: ResourceInfo = ResourceInfo {
        name: "optimization_metric",
        plural: "optimization metrics",
        table: "optimization_metrics",
        path: "/api/v1/fleet-optimization/metrics",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FLEET, BY_RUN],
        references: &[RUN_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = OptimizationMetricCreate;
    type Update = NoUpdate;
    type View = OptimizationMetricView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        let mut v = json!({"fleet_id": fleet_id, "metric": "solve_seconds", "value": 12.5});
        if let Some(r) = ids.get("optimization_run").and_then(|v| v.first()) {
            v["run_id"] = json!(r);
        }
        v
    }
}

// ---------------------------------------------------------------- rules: run lifecycle, objective

status_enum! {
    /// Optimization run: queued → running → completed / failed; cancellable until finished.
    RunStatus {
        Queued = "queued",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
    transitions { Queued => [Running, Cancelled], Running => [Completed, Failed, Cancelled] }
}

status_enum! {
    /// Rebalancing plan: proposed → approved → executed, or rejected.
    RebalancingStatus {
        Proposed = "proposed",
        Approved = "approved",
        Executed = "executed",
        Rejected = "rejected",
    }
    transitions { Proposed => [Approved, Rejected], Approved => [Executed, Rejected] }
}

/// Weighted objective of an optimization result: `efficiency` and `coverage` in 0..=1 higher is
/// better, `cost` in 0..=1 lower is better. Weights need not sum to 1 (at least one > 0).
pub fn objective_score(weights: [f64; 3], cost: f64, efficiency: f64, coverage: f64) -> f64 {
    let [wc, we, wv] = weights;
    let total = wc + we + wv;
    if total <= 0.0 {
        return 0.0;
    }
    (wc * (1.0 - cost) + we * efficiency + wv * coverage) / total
}

#[cfg(test)]
mod rules_tests {
    use super::*;

    #[test]
    fn objective() {
        assert!((objective_score([1.0, 1.0, 2.0], 0.2, 0.6, 0.5) - 0.6).abs() < 1e-12);
        assert_eq!(objective_score([0.0, 0.0, 0.0], 0.0, 1.0, 1.0), 0.0);
    }
}
