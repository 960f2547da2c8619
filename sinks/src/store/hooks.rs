//! The domain rules of individual resources, run by the generic store inside the command's
//! transaction: capacity and the request queue of pools, conflict detection, sharing limits,
//! mission dependencies, status transitions and derived values. The decisions themselves are
//! the pure functions of `atlasmesh_core::domain::rules`; this module loads their inputs
//! (locking what it will change) and writes their results.
//!
//! Every hook returns `Ok(Err(reason))` to reject the command; the store then rolls back to
//! its savepoint, so hooks may reject after writing.

use atlasmesh_core::domain::rules::{
    self, AlertStatus, CaseStatus, ExecutionStatus, Interval, Queued, RebalancingStatus,
    RequestStatus, RunStatus,
};
use atlasmesh_core::domain::validate::{format_time, parse_time};
use atlasmesh_core::domain::{ActionBody, ResourceInfo};
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};

use super::sql::{self, Record};
use super::{derived_id, str_field, CommandCtx};

type Hook<T = ()> = Result<Result<T, String>, sqlx::Error>;

const ALLOCATIONS: &str = "resource_allocations";
const REQUESTS: &str = "resource_requests";
const CONFLICTS: &str = "resource_conflicts";

fn iso(ms: i64) -> String {
    format_time(ms)
}

fn int_field(rec: &Record, name: &str) -> i64 {
    rec.get(name).and_then(Value::as_i64).unwrap_or_default()
}

fn f64_field(rec: &Record, name: &str) -> f64 {
    rec.get(name).and_then(Value::as_f64).unwrap_or_default()
}

fn record(v: Value) -> Record {
    v.as_object().cloned().unwrap_or_default()
}

// ---------------------------------------------------------------- locking

/// Locks the rows that must be locked before the row `id` of `info`: the pool of an allocation
/// or request (pool first, everywhere, so concurrent commands cannot deadlock).
pub(super) async fn lock_parents(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    id: &str,
) -> Result<(), sqlx::Error> {
    let table = match info.name {
        "allocation" => ALLOCATIONS,
        "request" => REQUESTS,
        _ => return Ok(()),
    };
    let pool_id: Option<String> =
        sqlx::query_scalar(&format!("SELECT pool_id FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(p) = pool_id {
        lock_pool(conn, &p).await?;
    }
    Ok(())
}

struct PoolState {
    capacity: i64,
    allocated: i64,
    fleet_id: String,
}

async fn lock_pool(
    conn: &mut PgConnection,
    pool_id: &str,
) -> Result<Option<PoolState>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT capacity, allocated, fleet_id FROM resource_pools WHERE id = $1 FOR UPDATE",
    )
    .bind(pool_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(PoolState {
            capacity: r.try_get(0)?,
            allocated: r.try_get(1)?,
            fleet_id: r.try_get(2)?,
        })
    })
    .transpose()
}

async fn add_allocated(
    conn: &mut PgConnection,
    pool_id: &str,
    delta: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE resource_pools SET allocated = allocated + $2 WHERE id = $1")
        .bind(pool_id)
        .bind(delta)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- pools, queue, conflicts

/// Turns pending requests of the pool into allocations in queue order while they fit.
async fn serve_queue(
    conn: &mut PgConnection,
    cmd: &CommandCtx<'_>,
    pool_id: &str,
) -> Result<(), sqlx::Error> {
    let Some(pool) = lock_pool(conn, pool_id).await? else {
        return Ok(());
    };
    let rows = sqlx::query(
        "SELECT to_jsonb(r) AS row, (EXTRACT(EPOCH FROM r.created_at) * 1000000)::bigint AS created_us
         FROM resource_requests r WHERE r.pool_id = $1 AND r.status = 'pending'
         ORDER BY r.priority DESC, r.created_at, r.id FOR UPDATE",
    )
    .bind(pool_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut pending = Vec::with_capacity(rows.len());
    let mut queued = Vec::with_capacity(rows.len());
    for r in &rows {
        let rec = record(r.try_get("row")?);
        queued.push(Queued {
            id: str_field(&rec, "id").unwrap_or_default().to_string(),
            priority: int_field(&rec, "priority") as i32,
            created_us: r.try_get("created_us")?,
            amount: int_field(&rec, "amount"),
        });
        pending.push(rec);
    }
    let at = cmd.issued_at_ms;
    for request_id in rules::serve_queue(pool.capacity - pool.allocated, &queued) {
        let Some(req) = pending
            .iter()
            .find(|r| str_field(r, "id") == Some(request_id.as_str()))
        else {
            continue;
        };
        let alloc_id = derived_id(&[cmd.command_id, "allocation", &request_id]);
        let mut alloc = Record::new();
        for k in [
            "fleet_id",
            "pool_id",
            "amount",
            "holder",
            "resource_id",
            "starts_at",
            "ends_at",
        ] {
            if let Some(v) = req.get(k).filter(|v| !v.is_null()) {
                alloc.insert(k.to_string(), v.clone());
            }
        }
        alloc.insert("request_id".into(), json!(request_id));
        sql::insert(conn, ALLOCATIONS, &alloc_id, at, &alloc).await?;
        add_allocated(conn, pool_id, int_field(req, "amount")).await?;
        let done = record(
            json!({"status": "fulfilled", "allocation_id": alloc_id, "fulfilled_at": iso(at)}),
        );
        sql::update(conn, REQUESTS, &request_id, at, &done).await?;
        detect_double_booking(conn, cmd, &alloc_id, &alloc).await?;
    }
    Ok(())
}

fn interval_of(rec: &Record) -> Option<Interval> {
    let start_ms = parse_time(str_field(rec, "starts_at")?)?;
    let end_ms = str_field(rec, "ends_at").and_then(parse_time);
    Some(Interval { start_ms, end_ms })
}

/// Raises a `double_booking` conflict for every other allocation of the same resource in the
/// pool whose time range overlaps (once per pair: the conflict id derives from the pair).
async fn detect_double_booking(
    conn: &mut PgConnection,
    cmd: &CommandCtx<'_>,
    alloc_id: &str,
    alloc: &Record,
) -> Result<(), sqlx::Error> {
    let (Some(resource_id), Some(pool_id), Some(mine)) = (
        str_field(alloc, "resource_id"),
        str_field(alloc, "pool_id"),
        interval_of(alloc),
    ) else {
        return Ok(());
    };
    let others = sqlx::query(
        "SELECT id, (EXTRACT(EPOCH FROM starts_at) * 1000)::bigint, (EXTRACT(EPOCH FROM ends_at) * 1000)::bigint
         FROM resource_allocations WHERE pool_id = $1 AND resource_id = $2 AND id <> $3 ORDER BY id",
    )
    .bind(pool_id)
    .bind(resource_id)
    .bind(alloc_id)
    .fetch_all(&mut *conn)
    .await?;
    for o in others {
        let other_id: String = o.try_get(0)?;
        let theirs = Interval {
            start_ms: o.try_get(1)?,
            end_ms: o.try_get(2)?,
        };
        if !rules::overlaps(mine, theirs) {
            continue;
        }
        let (a, b) = if alloc_id < other_id.as_str() {
            (alloc_id, other_id.as_str())
        } else {
            (other_id.as_str(), alloc_id)
        };
        let conflict_id = derived_id(&["double_booking", a, b]);
        if sql::exists(conn, CONFLICTS, &conflict_id).await?.is_some() {
            continue;
        }
        let rec = record(json!({
            "fleet_id": str_field(alloc, "fleet_id"),
            "pool_id": pool_id,
            "kind": "double_booking",
            "resource_id": resource_id,
            "allocation_ids": [a, b],
            "description": format!("{resource_id} is booked by allocations {a} and {b} at overlapping times"),
        }));
        sql::insert(conn, CONFLICTS, &conflict_id, cmd.issued_at_ms, &rec).await?;
    }
    Ok(())
}

/// Raises an `over_allocation` conflict when the pool holds more than its capacity.
async fn detect_over_allocation(
    conn: &mut PgConnection,
    cmd: &CommandCtx<'_>,
    pool_id: &str,
) -> Result<(), sqlx::Error> {
    let Some(pool) = lock_pool(conn, pool_id).await? else {
        return Ok(());
    };
    if pool.allocated <= pool.capacity {
        return Ok(());
    }
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM resource_allocations WHERE pool_id = $1 ORDER BY id")
            .bind(pool_id)
            .fetch_all(&mut *conn)
            .await?;
    let rec = record(json!({
        "fleet_id": pool.fleet_id,
        "pool_id": pool_id,
        "kind": "over_allocation",
        "allocation_ids": ids,
        "description": format!("{} units allocated, capacity {}", pool.allocated, pool.capacity),
    }));
    let id = derived_id(&[cmd.command_id, "over_allocation", pool_id]);
    sql::insert(conn, CONFLICTS, &id, cmd.issued_at_ms, &rec).await
}

// ---------------------------------------------------------------- create

pub(super) async fn before_create(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    cmd: &CommandCtx<'_>,
    rec: &mut Record,
) -> Hook {
    let _ = cmd;
    match info.name {
        "score" => {
            let c = ["efficiency", "utilization", "reliability", "safety", "cost"]
                .map(|k| f64_field(rec, k));
            rec.insert("overall".into(), json!(rules::overall_score(c)));
        }
        "trend" => {
            let samples: Vec<f64> = rec
                .get("samples")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect();
            let Some(t) = rules::trend(&samples) else {
                return Ok(Err("samples: need 2 or more finite values".into()));
            };
            rec.insert("slope".into(), json!(t.slope));
            rec.insert("direction".into(), json!(t.direction));
            rec.insert("change_pct".into(), json!(t.change_pct));
            rec.insert("forecast".into(), json!(t.forecast));
        }
        "utilization" => {
            let u = rules::utilization(int_field(rec, "in_use"), int_field(rec, "capacity"));
            rec.insert("utilization".into(), json!(u));
        }
        "report" => {
            let summary: Value = sqlx::query_scalar(
                "WITH p AS (SELECT $1::text AS fleet, $2::timestamptz AS s, $3::timestamptz AS e)
                 SELECT jsonb_build_object(
                   'score_count', (SELECT count(*) FROM perf_scores x, p
                                   WHERE x.fleet_id = p.fleet AND x.period_start >= p.s AND x.period_start < p.e),
                   'avg_overall', (SELECT avg(overall) FROM perf_scores x, p
                                   WHERE x.fleet_id = p.fleet AND x.period_start >= p.s AND x.period_start < p.e),
                   'metrics', COALESCE((SELECT jsonb_object_agg(metric, jsonb_build_object('count', n, 'avg', a))
                                FROM (SELECT x.metric, count(*) AS n, avg(x.value) AS a FROM perf_metrics x, p
                                      WHERE x.fleet_id = p.fleet AND x.period_start >= p.s AND x.period_start < p.e
                                      GROUP BY x.metric) m), '{}'::jsonb),
                   'alerts', jsonb_build_object(
                     'fired', (SELECT count(*) FROM perf_alerts x, p
                               WHERE x.fleet_id = p.fleet AND x.created_at >= p.s AND x.created_at < p.e),
                     'firing', (SELECT count(*) FROM perf_alerts x, p
                                WHERE x.fleet_id = p.fleet AND x.created_at >= p.s AND x.created_at < p.e
                                  AND x.status = 'firing')))",
            )
            .bind(str_field(rec, "fleet_id"))
            .bind(str_field(rec, "period_start"))
            .bind(str_field(rec, "period_end"))
            .fetch_one(&mut *conn)
            .await?;
            rec.insert("summary".into(), summary);
        }
        "request" => {
            // Lock the pool before the insert takes its key-share lock, so that concurrent
            // requests queue here instead of deadlocking when the queue is served.
            lock_pool(conn, str_field(rec, "pool_id").unwrap_or_default()).await?;
        }
        "allocation" => {
            let pool_id = str_field(rec, "pool_id").unwrap_or_default().to_string();
            let Some(pool) = lock_pool(conn, &pool_id).await? else {
                return Ok(Err(format!("no pool {pool_id}")));
            };
            if let Some(e) =
                rules::capacity_error(pool.capacity, pool.allocated, int_field(rec, "amount"))
            {
                return Ok(Err(e));
            }
        }
        "share" => return share_limits(conn, rec, None).await,
        "alert_rule" => return alert_rule_federation(conn, rec).await,
        "optimization_result" | "recommendation" => {
            let run_id = str_field(rec, "run_id").unwrap_or_default();
            let row = sqlx::query(
                "SELECT status, cost_weight, efficiency_weight, coverage_weight FROM optimization_runs
                 WHERE id = $1 FOR SHARE",
            )
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else {
                return Ok(Err(format!("no optimization_run {run_id}")));
            };
            let status: String = row.try_get(0)?;
            if matches!(
                RunStatus::parse(&status),
                Some(RunStatus::Failed | RunStatus::Cancelled)
            ) {
                return Ok(Err(format!("optimization_run {run_id} is {status}")));
            }
            if info.name == "optimization_result" {
                let w = [row.try_get(1)?, row.try_get(2)?, row.try_get(3)?];
                let s = rules::objective_score(
                    w,
                    f64_field(rec, "cost"),
                    f64_field(rec, "efficiency"),
                    f64_field(rec, "coverage"),
                );
                rec.insert("score".into(), json!(s));
            }
        }
        "dependency" => {
            // One dependency change per fleet at a time, so two concurrent edges cannot close a
            // cycle that neither sees.
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended('mission_dependencies:' || $1, 0))",
            )
            .bind(str_field(rec, "fleet_id"))
            .execute(&mut *conn)
            .await?;
            let exec_id = str_field(rec, "execution_id").unwrap_or_default();
            let status: Option<String> = sqlx::query_scalar(
                "SELECT status FROM mission_executions WHERE id = $1 FOR UPDATE",
            )
            .bind(exec_id)
            .fetch_optional(&mut *conn)
            .await?;
            if status.as_deref() != Some("scheduled") {
                return Ok(Err(format!(
                    "execution {exec_id} is {}: dependencies can only be added before it starts",
                    status.unwrap_or_else(|| "missing".into())
                )));
            }
            let edges: Vec<(String, String)> = sqlx::query_as(
                "SELECT execution_id, depends_on_id FROM mission_dependencies WHERE fleet_id = $1",
            )
            .bind(str_field(rec, "fleet_id"))
            .fetch_all(&mut *conn)
            .await?;
            let to = str_field(rec, "depends_on_id").unwrap_or_default();
            if rules::creates_cycle(&edges, exec_id, to) {
                return Ok(Err(format!(
                    "execution {exec_id} depending on {to} would close a cycle"
                )));
            }
        }
        _ => {}
    }
    Ok(Ok(()))
}

pub(super) async fn after_create(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    cmd: &CommandCtx<'_>,
    id: &str,
    rec: &Record,
) -> Hook {
    match info.name {
        "allocation" => {
            add_allocated(
                conn,
                str_field(rec, "pool_id").unwrap_or_default(),
                int_field(rec, "amount"),
            )
            .await?;
            detect_double_booking(conn, cmd, id, rec).await?;
        }
        "request" => serve_queue(conn, cmd, str_field(rec, "pool_id").unwrap_or_default()).await?,
        _ => {}
    }
    Ok(Ok(()))
}

/// A share lends at most its pool's capacity; with a federation, both fleets must be members.
async fn share_limits(conn: &mut PgConnection, rec: &Record, old: Option<&Record>) -> Hook {
    let get = |k: &str| {
        str_field(rec, k)
            .or_else(|| old.and_then(|o| str_field(o, k)))
            .unwrap_or_default()
            .to_string()
    };
    let amount = rec
        .get("amount")
        .and_then(Value::as_i64)
        .or_else(|| old.map(|o| int_field(o, "amount")));
    let pool_id = get("pool_id");
    let capacity: Option<i64> =
        sqlx::query_scalar("SELECT capacity FROM resource_pools WHERE id = $1")
            .bind(&pool_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(capacity) = capacity else {
        return Ok(Err(format!("no pool {pool_id}")));
    };
    if let Some(a) = amount.filter(|a| *a > capacity) {
        return Ok(Err(format!(
            "cannot share {a} units of pool {pool_id} with capacity {capacity}"
        )));
    }
    if old.is_none() {
        if let Some(fed) = str_field(rec, "federation_id") {
            let members: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM federation_members WHERE federation_id = $1 AND fleet_id IN ($2, $3)",
            )
            .bind(fed)
            .bind(get("fleet_id"))
            .bind(get("target_fleet_id"))
            .fetch_one(&mut *conn)
            .await?;
            if members != 2 {
                return Ok(Err(format!(
                    "both fleets must be members of federation {fed}"
                )));
            }
        }
    }
    Ok(Ok(()))
}

/// A federation alert rule's owning fleet must be a member of its federation.
async fn alert_rule_federation(conn: &mut PgConnection, rec: &Record) -> Hook {
    let Some(fed) = str_field(rec, "federation_id") else {
        return Ok(Ok(()));
    };
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM federation_members WHERE federation_id = $1 AND fleet_id = $2)",
    )
    .bind(fed)
    .bind(str_field(rec, "fleet_id"))
    .fetch_one(&mut *conn)
    .await?;
    Ok(if member {
        Ok(())
    } else {
        Err(format!(
            "federation_id: fleet {} is not a member of federation {fed}",
            str_field(rec, "fleet_id").unwrap_or_default()
        ))
    })
}

// ---------------------------------------------------------------- update

fn status_change<S: Copy>(
    old: &Record,
    changes: &Record,
    parse: fn(&str) -> Option<S>,
    check: fn(S, S) -> Option<String>,
) -> Result<Option<S>, String> {
    let Some(to) = str_field(changes, "status") else {
        return Ok(None);
    };
    let from = str_field(old, "status")
        .and_then(parse)
        .ok_or("stored status is unknown")?;
    let to = parse(to).ok_or("unknown status")?;
    match check(from, to) {
        Some(e) => Err(e),
        None => Ok(Some(to)),
    }
}

pub(super) async fn before_update(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    cmd: &CommandCtx<'_>,
    old: &Record,
    changes: &mut Record,
) -> Hook {
    let at = iso(cmd.issued_at_ms);
    match info.name {
        "allocation" => {
            if let Some(amount) = changes.get("amount").and_then(Value::as_i64) {
                let delta = amount - int_field(old, "amount");
                if delta > 0 {
                    let pool_id = str_field(old, "pool_id").unwrap_or_default();
                    let Some(pool) = lock_pool(conn, pool_id).await? else {
                        return Ok(Err(format!("no pool {pool_id}")));
                    };
                    if let Some(e) = rules::capacity_error(pool.capacity, pool.allocated, delta) {
                        return Ok(Err(e));
                    }
                }
            }
        }
        "request" => {
            let status = str_field(old, "status").unwrap_or_default();
            if status != RequestStatus::Pending.as_str() {
                return Ok(Err(format!(
                    "request is {status}: only pending requests change"
                )));
            }
            if let Err(e) = status_change(
                old,
                changes,
                RequestStatus::parse,
                RequestStatus::transition_error,
            ) {
                return Ok(Err(e));
            }
        }
        "share" => return share_limits(conn, changes, Some(old)).await,
        "alert_rule" => {
            let mut merged = old.clone();
            merged.extend(changes.clone());
            if let Err(e) = atlasmesh_core::domain::alerting::validate_rule_row(&merged) {
                return Ok(Err(e));
            }
        }
        "optimization_run" => {
            match status_change(old, changes, RunStatus::parse, RunStatus::transition_error) {
                Err(e) => return Ok(Err(e)),
                Ok(Some(RunStatus::Running)) => {
                    changes.insert("started_at".into(), json!(at));
                }
                Ok(Some(s)) if s.is_final() => {
                    if str_field(old, "started_at").is_none() {
                        changes.insert("started_at".into(), json!(at));
                    }
                    changes.insert("finished_at".into(), json!(at));
                }
                Ok(_) => {}
            }
        }
        "rebalancing" => {
            if let Err(e) = status_change(
                old,
                changes,
                RebalancingStatus::parse,
                RebalancingStatus::transition_error,
            ) {
                return Ok(Err(e));
            }
            if changes.contains_key("vehicle_count") && str_field(old, "status") != Some("proposed")
            {
                return Ok(Err(
                    "vehicle_count changes only while the plan is proposed".into()
                ));
            }
        }
        _ => {}
    }
    Ok(Ok(()))
}

pub(super) async fn after_update(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    cmd: &CommandCtx<'_>,
    old: &Record,
    changes: &Record,
) -> Hook {
    let id = str_field(old, "id").unwrap_or_default();
    match info.name {
        "pool" => {
            if let Some(cap) = changes.get("capacity").and_then(Value::as_i64) {
                if cap > int_field(old, "capacity") {
                    serve_queue(conn, cmd, id).await?;
                }
                detect_over_allocation(conn, cmd, id).await?;
            }
        }
        "allocation" => {
            let pool_id = str_field(old, "pool_id").unwrap_or_default();
            if let Some(amount) = changes.get("amount").and_then(Value::as_i64) {
                let delta = amount - int_field(old, "amount");
                add_allocated(conn, pool_id, delta).await?;
                if delta < 0 {
                    serve_queue(conn, cmd, pool_id).await?;
                }
            }
            if changes.contains_key("ends_at") {
                let mut merged = old.clone();
                merged.extend(changes.clone());
                detect_double_booking(conn, cmd, id, &merged).await?;
            }
        }
        "request" => serve_queue(conn, cmd, str_field(old, "pool_id").unwrap_or_default()).await?,
        _ => {}
    }
    Ok(Ok(()))
}

// ---------------------------------------------------------------- delete

pub(super) async fn before_delete(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    _cmd: &CommandCtx<'_>,
    old: &Record,
) -> Hook {
    if info.name == "pool" {
        let (allocs, pending): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM resource_allocations WHERE pool_id = $1),
                    (SELECT count(*) FROM resource_requests WHERE pool_id = $1 AND status = 'pending')",
        )
        .bind(str_field(old, "id"))
        .fetch_one(&mut *conn)
        .await?;
        if allocs + pending > 0 {
            return Ok(Err(format!(
                "pool still has {allocs} allocations and {pending} pending requests"
            )));
        }
    }
    Ok(Ok(()))
}

pub(super) async fn after_delete(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    cmd: &CommandCtx<'_>,
    old: &Record,
) -> Hook {
    let pool_id = str_field(old, "pool_id").unwrap_or_default();
    match info.name {
        "allocation" => {
            add_allocated(conn, pool_id, -int_field(old, "amount")).await?;
            serve_queue(conn, cmd, pool_id).await?;
        }
        "request" if str_field(old, "status") == Some("pending") => {
            serve_queue(conn, cmd, pool_id).await?
        }
        _ => {}
    }
    Ok(Ok(()))
}

// ---------------------------------------------------------------- actions

/// The changes an action makes to the row `old`.
pub(super) async fn action(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    cmd: &CommandCtx<'_>,
    action: &str,
    old: &Record,
    body: &ActionBody,
) -> Hook<Record> {
    let at = iso(cmd.issued_at_ms);
    let status = str_field(old, "status").unwrap_or_default();
    Ok(match (info.name, action) {
        ("alert", "resolve") => {
            match AlertStatus::parse(status).map(|s| s.transition_error(AlertStatus::Resolved)) {
                Some(None) => Ok(record(
                    json!({"status": "resolved", "resolved_at": at, "resolved_by": cmd.actor,
                                           "resolution_note": body.note}),
                )),
                Some(Some(e)) => Err(format!("alert {e}")),
                None => Err(format!("alert has unknown status {status}")),
            }
        }
        ("alert_instance", "acknowledge" | "resolve") => {
            let acked = str_field(old, "acknowledged_by");
            match atlasmesh_core::domain::alerting::instance_action_error(action, status, acked) {
                Some(e) => Err(e),
                None if action == "acknowledge" => Ok(record(
                    json!({"acknowledged_at": at, "acknowledged_by": cmd.actor}),
                )),
                // The engine publishes the resolve (next seq) and resets the machine.
                None => Ok(record(json!({"status": "resolved", "resolved_at": at,
                                         "resolved_by": cmd.actor, "resolution_note": body.note}))),
            }
        }
        ("conflict" | "safety_event", "resolve") => {
            match CaseStatus::parse(status).map(|s| s.transition_error(CaseStatus::Resolved)) {
                Some(None) => Ok(record(
                    json!({"status": "resolved", "resolved_at": at, "resolved_by": cmd.actor,
                                               "resolution": body.note}),
                )),
                Some(Some(e)) => Err(format!("{} {e}", info.name)),
                None => Err(format!("{} has unknown status {status}", info.name)),
            }
        }
        ("execution", "start") => {
            let from = ExecutionStatus::parse(status).ok_or("unknown status");
            match from.map(|s| s.transition_error(ExecutionStatus::Running)) {
                Err(e) => Err(e.to_string()),
                Ok(Some(e)) => Err(format!("execution {e}")),
                Ok(None) => {
                    let deps: Vec<(String, String)> = sqlx::query_as(
                        "SELECT e.id, e.status FROM mission_dependencies d
                         JOIN mission_executions e ON e.id = d.depends_on_id
                         WHERE d.execution_id = $1 ORDER BY e.id FOR SHARE OF e",
                    )
                    .bind(str_field(old, "id"))
                    .fetch_all(&mut *conn)
                    .await?;
                    let deps: Vec<(String, ExecutionStatus)> = deps
                        .into_iter()
                        .map(|(id, s)| {
                            (
                                id,
                                ExecutionStatus::parse(&s).unwrap_or(ExecutionStatus::Scheduled),
                            )
                        })
                        .collect();
                    let unmet = rules::unmet_dependencies(&deps);
                    if unmet.is_empty() {
                        Ok(record(json!({"status": "running", "started_at": at})))
                    } else {
                        Err(format!("dependencies not completed: {}", unmet.join(", ")))
                    }
                }
            }
        }
        ("execution", "complete") => {
            let to = body
                .outcome
                .as_deref()
                .and_then(ExecutionStatus::parse)
                .ok_or("outcome: required");
            let from = ExecutionStatus::parse(status).ok_or("unknown status");
            match (from, to) {
                (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                (Ok(from), Ok(to)) => match from.transition_error(to) {
                    Some(e) => Err(format!("execution {e}")),
                    None => Ok(record(
                        json!({"status": to.as_str(), "completed_at": at, "note": body.note}),
                    )),
                },
            }
        }
        _ => Err(format!("{} has no action {action}", info.name)),
    })
}
