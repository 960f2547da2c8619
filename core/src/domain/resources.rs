//! fleet-resources: pools with capacity, allocations, the request priority queue, utilization,
//! capacity planning and conflicts (double booking, over-allocation).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::status::{status_enum, CaseStatus};
use super::{
    Action, Check, Fields, Ids, Lookup, NoUpdate, Ops, Reference, Resource, ResourceInfo,
    ScopeKind, Validate, BY_FLEET,
};
use crate::Role;

const TAG: &str = "fleet-resources";
/// Upper bound of capacities and amounts.
pub const MAX_UNITS: i64 = 1_000_000_000;
const BY_POOL: Lookup = Lookup {
    segment: "by-pool",
    column: "pool_id",
};
const BY_STATUS: Lookup = Lookup {
    segment: "by-status",
    column: "status",
};
const POOL_REF: Reference = Reference {
    field: "pool_id",
    target: "pool",
    same_fleet: true,
};

fn range(c: &mut Check, start_name: &str, start: &str, end_name: &str, end: Option<&str>) {
    let s = c.time(start_name, start);
    let e = c.opt_time(end_name, end);
    c.before(end_name, s, e);
}

// ---------------------------------------------------------------- pools

/// A pool of interchangeable resources (chargers, bays, vehicles, drivers) with a capacity.
/// `allocated` is maintained by the store: the sum of the pool's allocations.
pub struct Pool;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PoolCreate {
    pub fleet_id: String,
    pub name: String,
    /// What the units are, e.g. `charger`, `bay`, `vehicle`, `driver`.
    pub resource_type: String,
    /// Units available, 0..=1e9.
    pub capacity: i64,
}

impl Validate for PoolCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.text("name", &self.name, 200);
        c.id("resource_type", &self.resource_type);
        c.int("capacity", self.capacity, 0, MAX_UNITS);
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PoolUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A raise serves queued requests; a cut below `allocated` is accepted and raises an
    /// `over_allocation` conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
}

impl Validate for PoolUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_text("name", self.name.as_deref(), 200);
        c.opt_int("capacity", self.capacity, 0, MAX_UNITS);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PoolView {
    pub id: String,
    pub fleet_id: String,
    pub name: String,
    pub resource_type: String,
    pub capacity: i64,
    /// Sum of the amounts of the pool's allocations.
    pub allocated: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Pool {
    const INFO: ResourceInfo = ResourceInfo {
        name: "pool",
        plural: "resource pools",
        table: "resource_pools",
        path: "/api/v1/fleet-resources/pools",
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
    type Create = PoolCreate;
    type Update = PoolUpdate;
    type View = PoolView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "name": "Depot A chargers", "resource_type": "charger", "capacity": 10})
    }
}

// ---------------------------------------------------------------- allocations

/// Units of a pool held by someone (a vehicle, mission, driver) over a time range. Refused
/// when over capacity; two allocations of the same `resource_id` with overlapping ranges
/// raise a `double_booking` conflict.
pub struct Allocation;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AllocationCreate {
    pub fleet_id: String,
    pub pool_id: String,
    /// Units, 1..=1e9.
    pub amount: i64,
    /// Who holds it (vehicle, mission or driver id).
    pub holder: String,
    /// The individual resource (e.g. charger id), for double-booking detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    pub starts_at: String,
    /// Absent: open-ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

impl Validate for AllocationCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("pool_id", &self.pool_id);
        c.int("amount", self.amount, 1, MAX_UNITS);
        c.id("holder", &self.holder);
        c.opt_id("resource_id", self.resource_id.as_deref());
        range(
            &mut c,
            "starts_at",
            &self.starts_at,
            "ends_at",
            self.ends_at.as_deref(),
        );
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AllocationUpdate {
    /// A cut frees capacity for queued requests; a raise must fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

impl Validate for AllocationUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_int("amount", self.amount, 1, MAX_UNITS);
        c.opt_time("ends_at", self.ends_at.as_deref());
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AllocationView {
    pub id: String,
    pub fleet_id: String,
    pub pool_id: String,
    pub amount: i64,
    pub holder: String,
    pub resource_id: Option<String>,
    pub starts_at: String,
    pub ends_at: Option<String>,
    /// The request this allocation served, if it came from the queue.
    pub request_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Allocation {
    const INFO: ResourceInfo = ResourceInfo {
        name: "allocation",
        plural: "resource allocations",
        table: "resource_allocations",
        path: "/api/v1/fleet-resources/allocations",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CRUD,
        actions: &[],
        lookups: &[BY_FLEET, BY_POOL],
        references: &[POOL_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Operator,
    };
    type Create = AllocationCreate;
    type Update = AllocationUpdate;
    type View = AllocationView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "pool_id": super::id_of(ids, "pool", 0), "amount": 2,
               "holder": "vehicle-007", "resource_id": "charger-3", "starts_at": "2024-05-01T08:00:00Z",
               "ends_at": "2024-05-01T10:00:00Z"})
    }
}

// ---------------------------------------------------------------- requests

/// A request for units of a pool. Served at once when it fits and nobody is ahead of it,
/// otherwise queued: when capacity frees, pending requests become allocations in order of
/// priority (highest first), then age, while they fit.
pub struct Request;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestCreate {
    pub fleet_id: String,
    pub pool_id: String,
    pub amount: i64,
    /// 0..=1000, higher is served first.
    pub priority: i32,
    pub holder: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    pub starts_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

impl Validate for RequestCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("pool_id", &self.pool_id);
        c.int("amount", self.amount, 1, MAX_UNITS);
        c.int("priority", self.priority.into(), 0, 1000);
        c.id("holder", &self.holder);
        c.opt_id("resource_id", self.resource_id.as_deref());
        range(
            &mut c,
            "starts_at",
            &self.starts_at,
            "ends_at",
            self.ends_at.as_deref(),
        );
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestUpdate {
    /// Pending requests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Pending requests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// Only `cancelled` (of a pending request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RequestStatus>,
}

impl Validate for RequestUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_int("priority", self.priority.map(i64::from), 0, 1000);
        c.opt_int("amount", self.amount, 1, MAX_UNITS);
        // `pending` is what a pending request has (a PUT repeats it: no change); fulfilment
        // is the queue's, never the client's.
        if self
            .status
            .is_some_and(|s| !matches!(s, RequestStatus::Cancelled | RequestStatus::Pending))
        {
            c.fail("status", "may only be set to cancelled (or stay pending)");
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestView {
    pub id: String,
    pub fleet_id: String,
    pub pool_id: String,
    pub amount: i64,
    pub priority: i32,
    pub holder: String,
    pub resource_id: Option<String>,
    pub starts_at: String,
    pub ends_at: Option<String>,
    pub status: RequestStatus,
    /// The allocation that served it.
    pub allocation_id: Option<String>,
    pub fulfilled_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Request {
    const INFO: ResourceInfo = ResourceInfo {
        name: "request",
        plural: "resource requests",
        table: "resource_requests",
        path: "/api/v1/fleet-resources/requests",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CRUD,
        actions: &[],
        lookups: &[BY_FLEET, BY_POOL, BY_STATUS],
        references: &[POOL_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Operator,
    };
    type Create = RequestCreate;
    type Update = RequestUpdate;
    type View = RequestView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "pool_id": super::id_of(ids, "pool", 0), "amount": 1,
               "priority": 50, "holder": "vehicle-012", "starts_at": "2024-05-01T09:00:00Z"})
    }
}

// ---------------------------------------------------------------- utilization

/// A utilization sample of a pool.
pub struct Utilization;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UtilizationCreate {
    pub fleet_id: String,
    pub pool_id: String,
    pub measured_at: String,
    pub in_use: i64,
    pub capacity: i64,
}

impl Validate for UtilizationCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("pool_id", &self.pool_id);
        c.time("measured_at", &self.measured_at);
        c.int("capacity", self.capacity, 0, MAX_UNITS);
        c.int("in_use", self.in_use, 0, MAX_UNITS);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UtilizationView {
    pub id: String,
    pub fleet_id: String,
    pub pool_id: String,
    pub measured_at: String,
    pub in_use: i64,
    pub capacity: i64,
    /// in_use / capacity; `null` for a zero capacity.
    pub utilization: Option<f64>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Utilization {
    const INFO: ResourceInfo = ResourceInfo {
        name: "utilization",
        plural: "utilization samples",
        table: "resource_utilization",
        path: "/api/v1/fleet-resources/utilization",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FLEET, BY_POOL],
        references: &[POOL_REF],
        item_key: Some("pool_id"),
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = UtilizationCreate;
    type Update = NoUpdate;
    type View = UtilizationView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "pool_id": super::id_of(ids, "pool", 0),
               "measured_at": "2024-05-01T09:00:00Z", "in_use": 6, "capacity": 10})
    }
}

// ---------------------------------------------------------------- planning

/// A capacity plan over a time horizon.
pub struct Plan;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanCreate {
    pub fleet_id: String,
    /// The pool planned for; absent for a fleet-wide plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
    pub name: String,
    pub horizon_start: String,
    pub horizon_end: String,
    pub planned_capacity: i64,
    pub expected_demand: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl Validate for PlanCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("pool_id", self.pool_id.as_deref());
        c.text("name", &self.name, 200);
        range(
            &mut c,
            "horizon_start",
            &self.horizon_start,
            "horizon_end",
            Some(&self.horizon_end),
        );
        c.int("planned_capacity", self.planned_capacity, 0, MAX_UNITS);
        c.int("expected_demand", self.expected_demand, 0, MAX_UNITS);
        c.opt_text("notes", self.notes.as_deref(), 4000);
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_demand: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl Validate for PlanUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_text("name", self.name.as_deref(), 200);
        let s = c.opt_time("horizon_start", self.horizon_start.as_deref());
        let e = c.opt_time("horizon_end", self.horizon_end.as_deref());
        c.before("horizon_end", s, e);
        c.opt_int("planned_capacity", self.planned_capacity, 0, MAX_UNITS);
        c.opt_int("expected_demand", self.expected_demand, 0, MAX_UNITS);
        c.opt_text("notes", self.notes.as_deref(), 4000);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanView {
    pub id: String,
    pub fleet_id: String,
    pub pool_id: Option<String>,
    pub name: String,
    pub horizon_start: String,
    pub horizon_end: String,
    pub planned_capacity: i64,
    pub expected_demand: i64,
    pub notes: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Plan {
    const INFO: ResourceInfo = ResourceInfo {
        name: "plan",
        plural: "capacity plans",
        table: "resource_plans",
        path: "/api/v1/fleet-resources/planning",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CRUD,
        actions: &[],
        lookups: &[BY_FLEET, BY_POOL],
        references: &[POOL_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = PlanCreate;
    type Update = PlanUpdate;
    type View = PlanView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        let mut v = json!({"fleet_id": fleet_id, "name": "Q3 charger plan", "horizon_start": "2024-07-01T00:00:00Z",
               "horizon_end": "2024-10-01T00:00:00Z", "planned_capacity": 14, "expected_demand": 12});
        if let Some(p) = ids.get("pool").and_then(|v| v.first()) {
            v["pool_id"] = json!(p);
        }
        v
    }
}

// ---------------------------------------------------------------- conflicts

/// What kind of conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// Two allocations of one resource with overlapping time ranges.
    DoubleBooking,
    /// A pool holds more than its capacity (after a capacity cut).
    OverAllocation,
    /// Reported by a person or another system.
    Other,
}

/// A resource conflict: raised automatically (double booking, over-allocation) or reported,
/// open until resolved.
pub struct Conflict;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConflictCreate {
    pub fleet_id: String,
    pub pool_id: String,
    pub kind: ConflictKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Allocations involved.
    #[serde(default)]
    pub allocation_ids: Vec<String>,
    pub description: String,
}

impl Validate for ConflictCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("pool_id", &self.pool_id);
        c.opt_id("resource_id", self.resource_id.as_deref());
        if self.allocation_ids.len() > 100 {
            c.fail("allocation_ids", "at most 100");
        }
        for a in &self.allocation_ids {
            c.id("allocation_ids", a);
        }
        c.text("description", &self.description, 2000);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConflictView {
    pub id: String,
    pub fleet_id: String,
    pub pool_id: String,
    pub kind: ConflictKind,
    pub resource_id: Option<String>,
    pub allocation_ids: Vec<String>,
    pub description: String,
    pub status: CaseStatus,
    pub resolution: Option<String>,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Conflict {
    const INFO: ResourceInfo = ResourceInfo {
        name: "conflict",
        plural: "resource conflicts",
        table: "resource_conflicts",
        path: "/api/v1/fleet-resources/conflicts",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CREATE,
        actions: &[Action {
            name: "resolve",
            summary: "Resolve an open conflict",
        }],
        lookups: &[BY_FLEET, BY_POOL, BY_STATUS],
        references: &[POOL_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = ConflictCreate;
    type Update = NoUpdate;
    type View = ConflictView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "pool_id": super::id_of(ids, "pool", 0), "kind": "other",
               "allocation_ids": [], "description": "Charger 3 reported broken while booked"})
    }
}

// ---------------------------------------------------------------- rules: capacity, queue, overlap

/// Whether `amount` more fits into a pool of `capacity` with `allocated` in use.
pub fn fits(capacity: i64, allocated: i64, amount: i64) -> bool {
    amount >= 0
        && allocated
            .checked_add(amount)
            .is_some_and(|total| total <= capacity)
}

/// Why an allocation of `amount` is refused, if it is.
pub fn capacity_error(capacity: i64, allocated: i64, amount: i64) -> Option<String> {
    (!fits(capacity, allocated, amount)).then(|| {
        format!(
            "over capacity: {amount} requested, {} free of {capacity}",
            (capacity - allocated).max(0)
        )
    })
}

/// A pending resource request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    /// Higher is served first.
    pub priority: i32,
    /// Creation time (epoch microseconds); older is served first among equal priorities.
    pub created_us: i64,
    pub amount: i64,
}

/// The requests to turn into allocations when `free` capacity is available: in queue order
/// (priority descending, then oldest, then id), as long as each fits. The queue stops at the
/// first request that does not fit, so a large high-priority request is never starved by
/// smaller ones behind it.
pub fn serve_queue(free: i64, pending: &[Queued]) -> Vec<String> {
    let mut order: Vec<&Queued> = pending.iter().collect();
    order.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.created_us.cmp(&b.created_us))
            .then(a.id.cmp(&b.id))
    });
    let mut left = free;
    let mut served = Vec::new();
    for q in order {
        if q.amount > left {
            break;
        }
        left -= q.amount;
        served.push(q.id.clone());
    }
    served
}

/// A half-open time range `[start, end)`; no end = open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

/// Whether two ranges share any instant.
pub fn overlaps(a: Interval, b: Interval) -> bool {
    let a_before_b_ends = b.end_ms.is_none_or(|e| a.start_ms < e);
    let b_before_a_ends = a.end_ms.is_none_or(|e| b.start_ms < e);
    a_before_b_ends && b_before_a_ends
}

/// In-use share of a capacity; `None` for a zero capacity.
pub fn utilization(in_use: i64, capacity: i64) -> Option<f64> {
    (capacity > 0).then(|| in_use as f64 / capacity as f64)
}

status_enum! {
    /// A resource request waits in the pool's queue until served or cancelled.
    RequestStatus { Pending = "pending", Fulfilled = "fulfilled", Cancelled = "cancelled" }
    transitions { Pending => [Fulfilled, Cancelled] }
}

#[cfg(test)]
mod rules_tests {
    use super::*;

    fn q(id: &str, priority: i32, created_us: i64, amount: i64) -> Queued {
        Queued {
            id: id.into(),
            priority,
            created_us,
            amount,
        }
    }

    #[test]
    fn capacity() {
        assert!(fits(10, 7, 3));
        assert!(!fits(10, 7, 4));
        assert!(!fits(10, 12, 0), "already over capacity");
        assert!(!fits(10, 0, -1));
        assert!(!fits(i64::MAX, i64::MAX, 1), "no overflow");
        assert_eq!(capacity_error(10, 7, 3), None);
        assert_eq!(
            capacity_error(10, 7, 5).unwrap(),
            "over capacity: 5 requested, 3 free of 10"
        );
    }

    #[test]
    fn queue_serves_highest_priority_then_oldest_while_it_fits() {
        let pending = [
            q("low-old", 1, 1, 1),
            q("high-new", 9, 5, 2),
            q("high-old", 9, 2, 2),
            q("mid", 5, 0, 1),
        ];
        assert_eq!(
            serve_queue(10, &pending),
            ["high-old", "high-new", "mid", "low-old"]
        );
        assert_eq!(serve_queue(4, &pending), ["high-old", "high-new"]);
        assert_eq!(serve_queue(5, &pending), ["high-old", "high-new", "mid"]);
        assert!(
            serve_queue(1, &pending).is_empty(),
            "head of line does not fit: nobody jumps it"
        );
        assert!(serve_queue(0, &[]).is_empty());
        // Same priority and time: id decides, so the order is total.
        assert_eq!(
            serve_queue(2, &[q("b", 1, 1, 1), q("a", 1, 1, 1)]),
            ["a", "b"]
        );
    }

    #[test]
    fn overlap_is_half_open() {
        let i = |s, e| Interval {
            start_ms: s,
            end_ms: e,
        };
        assert!(overlaps(i(0, Some(10)), i(5, Some(15))));
        assert!(overlaps(i(5, Some(15)), i(0, Some(10))));
        assert!(
            !overlaps(i(0, Some(10)), i(10, Some(20))),
            "touching ends do not overlap"
        );
        assert!(overlaps(i(0, None), i(100, Some(200))), "open-ended");
        assert!(!overlaps(i(300, None), i(100, Some(200))));
        assert!(overlaps(i(0, None), i(5, None)));
        assert!(overlaps(i(0, Some(100)), i(10, Some(20))), "containment");
    }

    #[test]
    fn utilization_of_capacity() {
        assert_eq!(utilization(3, 4), Some(0.75));
        assert_eq!(utilization(3, 0), None);
    }
}
