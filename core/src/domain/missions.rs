//! missions: templates, executions (start, complete, monitor), dependencies between
//! executions, logs, metrics and safety events.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::performance::Severity;
use super::status::{status_enum, CaseStatus};
use super::{
    Action, ActionBody, Check, Fields, Ids, Lookup, NoUpdate, Ops, Reference, Resource,
    ResourceInfo, ScopeKind, Validate, BY_FLEET,
};
use crate::Role;

const TAG: &str = "missions";
const BY_EXECUTION: Lookup = Lookup {
    segment: "by-execution",
    column: "execution_id",
};
const EXECUTION_REF: Reference = Reference {
    field: "execution_id",
    target: "execution",
    same_fleet: true,
};

// ---------------------------------------------------------------- templates

/// A reusable mission definition.
pub struct Template;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateCreate {
    pub fleet_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Ordered step names, 1..=100.
    pub steps: Vec<String>,
    /// Expected duration in seconds.
    pub estimated_duration_s: i64,
}

fn steps(c: &mut Check, steps: &[String]) {
    if !(1..=100).contains(&steps.len()) {
        c.fail("steps", "must hold 1 to 100 steps");
    }
    for s in steps {
        c.text("steps", s, 200);
    }
}

impl Validate for TemplateCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.text("name", &self.name, 200);
        c.opt_text("description", self.description.as_deref(), 4000);
        steps(&mut c, &self.steps);
        c.int(
            "estimated_duration_s",
            self.estimated_duration_s,
            1,
            30 * 86_400,
        );
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_duration_s: Option<i64>,
}

impl Validate for TemplateUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_text("name", self.name.as_deref(), 200);
        c.opt_text("description", self.description.as_deref(), 4000);
        if let Some(s) = &self.steps {
            steps(&mut c, s);
        }
        c.opt_int(
            "estimated_duration_s",
            self.estimated_duration_s,
            1,
            30 * 86_400,
        );
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateView {
    pub id: String,
    pub fleet_id: String,
    pub name: String,
    pub description: Option<String>,
    pub steps: Vec<String>,
    pub estimated_duration_s: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Template {
    const INFO: ResourceInfo = ResourceInfo {
        name: "template",
        plural: "mission templates",
        table: "mission_templates",
        path: "/api/v1/missions/templates",
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
    type Create = TemplateCreate;
    type Update = TemplateUpdate;
    type View = TemplateView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "name": "Depot to hub delivery", "steps": ["load", "drive", "unload"],
               "estimated_duration_s": 5400})
    }
}

// ---------------------------------------------------------------- executions

/// One run of a mission by a vehicle: scheduled → running (`start`, only once every
/// dependency completed) → completed / failed / aborted (`complete`).
pub struct Execution;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecutionCreate {
    pub fleet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    pub vehicle_id: String,
    /// When it is planned to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<String>,
}

impl Validate for ExecutionCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("template_id", self.template_id.as_deref());
        c.id("vehicle_id", &self.vehicle_id);
        c.opt_time("scheduled_for", self.scheduled_for.as_deref());
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecutionView {
    pub id: String,
    pub fleet_id: String,
    pub template_id: Option<String>,
    pub vehicle_id: String,
    pub scheduled_for: Option<String>,
    pub status: ExecutionStatus,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub note: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Execution {
    const INFO: ResourceInfo = ResourceInfo {
        name: "execution",
        plural: "mission executions",
        table: "mission_executions",
        path: "/api/v1/missions/executions",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[
            Action {
                name: "start",
                summary: "Start a scheduled execution (its dependencies must have completed)",
            },
            Action {
                name: "complete",
                summary: "Finish a running execution with an outcome",
            },
        ],
        lookups: &[
            BY_FLEET,
            Lookup {
                segment: "by-status",
                column: "status",
            },
        ],
        references: &[Reference {
            field: "template_id",
            target: "template",
            same_fleet: true,
        }],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = ExecutionCreate;
    type Update = NoUpdate;
    type View = ExecutionView;
    const EXAMPLE_COUNT: usize = 2;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        let mut v = json!({"fleet_id": fleet_id, "vehicle_id": "vehicle-007", "scheduled_for": "2024-05-01T08:00:00Z"});
        if let Some(t) = ids.get("template").and_then(|v| v.first()) {
            v["template_id"] = json!(t);
        }
        v
    }

    fn validate_action(action: &str, body: &ActionBody) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_text("note", body.note.as_deref(), 2000);
        match (action, body.outcome.as_deref()) {
            ("complete", None) => c.fail("outcome", "required: completed, failed or aborted"),
            ("complete", Some(o)) => c.one_of("outcome", o, &["completed", "failed", "aborted"]),
            (_, Some(_)) => c.fail("outcome", "only for complete"),
            _ => {}
        }
        c.finish()
    }
}

// ---------------------------------------------------------------- dependencies

/// `execution_id` may start only after `depends_on_id` completed. Cycles are refused.
pub struct Dependency;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DependencyCreate {
    pub fleet_id: String,
    pub execution_id: String,
    pub depends_on_id: String,
}

impl Validate for DependencyCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("execution_id", &self.execution_id);
        c.id("depends_on_id", &self.depends_on_id);
        if self.execution_id == self.depends_on_id {
            c.fail("depends_on_id", "an execution cannot depend on itself");
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DependencyView {
    pub id: String,
    pub fleet_id: String,
    pub execution_id: String,
    pub depends_on_id: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Dependency {
    const INFO: ResourceInfo = ResourceInfo {
        name: "dependency",
        plural: "mission dependencies",
        table: "mission_dependencies",
        path: "/api/v1/missions/dependencies",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE_DELETE,
        actions: &[],
        lookups: &[BY_FLEET, BY_EXECUTION],
        references: &[
            EXECUTION_REF,
            Reference {
                field: "depends_on_id",
                target: "execution",
                same_fleet: true,
            },
        ],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Operator,
    };
    type Create = DependencyCreate;
    type Update = NoUpdate;
    type View = DependencyView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        // The second execution depends on the first (see `EXAMPLE_COUNT` of executions).
        json!({"fleet_id": fleet_id, "execution_id": super::id_of(ids, "execution", 1),
               "depends_on_id": super::id_of(ids, "execution", 0)})
    }
}

// ---------------------------------------------------------------- logs

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// A log line of an execution.
pub struct MissionLog;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MissionLogCreate {
    pub fleet_id: String,
    pub execution_id: String,
    pub level: LogLevel,
    pub message: String,
    pub logged_at: String,
}

impl Validate for MissionLogCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("execution_id", &self.execution_id);
        c.text("message", &self.message, 4000);
        c.time("logged_at", &self.logged_at);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MissionLogView {
    pub id: String,
    pub fleet_id: String,
    pub execution_id: String,
    pub level: LogLevel,
    pub message: String,
    pub logged_at: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for MissionLog {
    const INFO: ResourceInfo = ResourceInfo {
        name: "mission_log",
        plural: "mission logs",
        table: "mission_logs",
        path: "/api/v1/missions/logs",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FLEET, BY_EXECUTION],
        references: &[EXECUTION_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = MissionLogCreate;
    type Update = NoUpdate;
    type View = MissionLogView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "execution_id": super::id_of(ids, "execution", 0),
               "level": "info", "message": "Loading finished", "logged_at": "2024-05-01T08:20:00Z"})
    }
}

// ---------------------------------------------------------------- metrics

/// A metric value of an execution (duration, distance, energy, ...).
pub struct MissionMetric;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MissionMetricCreate {
    pub fleet_id: String,
    pub execution_id: String,
    pub metric: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl Validate for MissionMetricCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("execution_id", &self.execution_id);
        c.id("metric", &self.metric);
        c.finite("value", self.value);
        c.opt_text("unit", self.unit.as_deref(), 32);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MissionMetricView {
    pub id: String,
    pub fleet_id: String,
    pub execution_id: String,
    pub metric: String,
    pub value: f64,
    pub unit: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for MissionMetric {
    const INFO: ResourceInfo = ResourceInfo {
        name: "mission_metric",
        plural: "mission metrics",
        table: "mission_metrics",
        path: "/api/v1/missions/metrics",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FLEET, BY_EXECUTION],
        references: &[EXECUTION_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = MissionMetricCreate;
    type Update = NoUpdate;
    type View = MissionMetricView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "execution_id": super::id_of(ids, "execution", 0),
               "metric": "distance_km", "value": 42.5, "unit": "km"})
    }
}

// ---------------------------------------------------------------- safety events

/// A safety event (hard brake, near miss, geofence breach ...), open until resolved.
pub struct SafetyEvent;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SafetyEventCreate {
    pub fleet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    pub vehicle_id: String,
    pub severity: Severity,
    /// e.g. `hard_brake`, `near_miss`, `geofence_breach`.
    pub kind: String,
    pub description: String,
    pub occurred_at: String,
}

impl Validate for SafetyEventCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("execution_id", self.execution_id.as_deref());
        c.id("vehicle_id", &self.vehicle_id);
        c.id("kind", &self.kind);
        c.text("description", &self.description, 4000);
        c.time("occurred_at", &self.occurred_at);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SafetyEventView {
    pub id: String,
    pub fleet_id: String,
    pub execution_id: Option<String>,
    pub vehicle_id: String,
    pub severity: Severity,
    pub kind: String,
    pub description: String,
    pub occurred_at: String,
    pub status: CaseStatus,
    pub resolution: Option<String>,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for SafetyEvent {
    const INFO: ResourceInfo = ResourceInfo {
        name: "safety_event",
        plural: "safety events",
        table: "mission_safety_events",
        path: "/api/v1/missions/safety-events",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[Action {
            name: "resolve",
            summary: "Resolve an open safety event",
        }],
        lookups: &[
            BY_FLEET,
            BY_EXECUTION,
            Lookup {
                segment: "by-status",
                column: "status",
            },
        ],
        references: &[EXECUTION_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = SafetyEventCreate;
    type Update = NoUpdate;
    type View = SafetyEventView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        let mut v = json!({"fleet_id": fleet_id, "vehicle_id": "vehicle-007", "severity": "critical",
               "kind": "hard_brake", "description": "Deceleration of 0.9 g near junction 4",
               "occurred_at": "2024-05-01T08:40:00Z"});
        if let Some(e) = ids.get("execution").and_then(|v| v.first()) {
            v["execution_id"] = json!(e);
        }
        v
    }
}

// ---------------------------------------------------------------- rules: dependencies, lifecycle

/// The dependencies (id, status) that are not completed yet, which keep an execution from
/// starting.
pub fn unmet_dependencies(deps: &[(String, ExecutionStatus)]) -> Vec<String> {
    deps.iter()
        .filter(|(_, s)| *s != ExecutionStatus::Completed)
        .map(|(id, _)| id.clone())
        .collect()
}

/// Whether adding the edge `from` depends on `to` to `edges` (pairs execution → dependency)
/// closes a cycle (including `from == to`).
pub fn creates_cycle(edges: &[(String, String)], from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a.as_str()).or_default().push(b.as_str());
    }
    // A cycle exists when `from` is reachable from `to`.
    let mut seen = BTreeSet::new();
    let mut stack = vec![to];
    while let Some(n) = stack.pop() {
        if n == from {
            return true;
        }
        if seen.insert(n) {
            stack.extend(next.get(n).into_iter().flatten().copied());
        }
    }
    false
}

status_enum! {
    /// Mission execution: scheduled → running → completed / failed / aborted.
    ExecutionStatus {
        Scheduled = "scheduled",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Aborted = "aborted",
    }
    transitions { Scheduled => [Running, Aborted], Running => [Completed, Failed, Aborted] }
}

#[cfg(test)]
mod rules_tests {
    use super::*;

    #[test]
    fn dependencies_and_cycles() {
        use ExecutionStatus::*;
        let deps = vec![
            ("a".to_string(), Completed),
            ("b".to_string(), Running),
            ("c".to_string(), Failed),
        ];
        assert_eq!(unmet_dependencies(&deps), ["b", "c"]);
        assert!(unmet_dependencies(&deps[..1]).is_empty());
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        let edges = vec![e("a", "b"), e("b", "c")];
        assert!(creates_cycle(&edges, "c", "a"));
        assert!(creates_cycle(&edges, "a", "a"));
        assert!(!creates_cycle(&edges, "a", "c"), "redundant edge, no cycle");
        assert!(!creates_cycle(&edges, "d", "a"));
    }
}
