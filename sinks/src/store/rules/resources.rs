//! fleet-resources: pool capacity, the request queue, double booking and over-allocation.

use atlasmesh_core::clock::parse_rfc3339;
use atlasmesh_core::domain::resources::{
    self as domain, Allocation, Conflict, Interval, Plan, Pool, Queued, Request, RequestStatus,
    Utilization,
};
use atlasmesh_core::domain::status::CaseStatus;
use atlasmesh_core::domain::ActionBody;
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};

use super::{int_field, iso, record, resolve, status_change, str_field, StoreRules};
use crate::store::sql::{self, Record};
use crate::store::{derived_id, CommandCtx, StoreError, StoreResult};

const ALLOCATIONS: &str = "resource_allocations";
const REQUESTS: &str = "resource_requests";
const CONFLICTS: &str = "resource_conflicts";

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

/// Locks the pool of the row `id` of `table` (pool first, everywhere, so concurrent commands
/// cannot deadlock).
async fn lock_pool_of(
    conn: &mut PgConnection,
    table: &'static str,
    id: &str,
) -> Result<(), sqlx::Error> {
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

/// Refuses `amount` more units of the locked pool `pool_id` when they do not fit.
async fn check_capacity(conn: &mut PgConnection, pool_id: &str, amount: i64) -> StoreResult {
    let Some(pool) = lock_pool(conn, pool_id).await? else {
        return Err(StoreError::Rejected(format!("no pool {pool_id}")));
    };
    match domain::capacity_error(pool.capacity, pool.allocated, amount) {
        Some(e) => Err(StoreError::Rejected(e)),
        None => Ok(()),
    }
}

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
            priority: i32::try_from(int_field(&rec, "priority")).unwrap_or_default(),
            created_us: r.try_get("created_us")?,
            amount: int_field(&rec, "amount"),
        });
        pending.push(rec);
    }
    let at = cmd.issued_at_ms;
    for request_id in domain::serve_queue(pool.capacity - pool.allocated, &queued) {
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
    let start_ms = parse_rfc3339(str_field(rec, "starts_at")?)?;
    let end_ms = str_field(rec, "ends_at").and_then(parse_rfc3339);
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
        if !domain::overlaps(mine, theirs) {
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

impl StoreRules for Pool {
    async fn after_update(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &Record,
    ) -> StoreResult {
        let id = str_field(old, "id").unwrap_or_default();
        if let Some(cap) = changes.get("capacity").and_then(Value::as_i64) {
            if cap > int_field(old, "capacity") {
                serve_queue(conn, cmd, id).await?;
            }
            detect_over_allocation(conn, cmd, id).await?;
        }
        Ok(())
    }

    async fn before_delete(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        old: &Record,
    ) -> StoreResult {
        let (allocs, pending): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM resource_allocations WHERE pool_id = $1),
                    (SELECT count(*) FROM resource_requests WHERE pool_id = $1 AND status = 'pending')",
        )
        .bind(str_field(old, "id"))
        .fetch_one(&mut *conn)
        .await?;
        if allocs + pending > 0 {
            return Err(StoreError::Rejected(format!(
                "pool still has {allocs} allocations and {pending} pending requests"
            )));
        }
        Ok(())
    }
}

impl StoreRules for Allocation {
    async fn lock_parents(conn: &mut PgConnection, id: &str) -> Result<(), sqlx::Error> {
        lock_pool_of(conn, ALLOCATIONS, id).await
    }

    async fn before_create(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let pool_id = str_field(rec, "pool_id").unwrap_or_default().to_string();
        check_capacity(conn, &pool_id, int_field(rec, "amount")).await
    }

    async fn after_create(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        id: &str,
        rec: &Record,
    ) -> StoreResult {
        let pool_id = str_field(rec, "pool_id").unwrap_or_default();
        add_allocated(conn, pool_id, int_field(rec, "amount")).await?;
        detect_double_booking(conn, cmd, id, rec).await?;
        Ok(())
    }

    async fn before_update(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &mut Record,
    ) -> StoreResult {
        if let Some(amount) = changes.get("amount").and_then(Value::as_i64) {
            let delta = amount - int_field(old, "amount");
            if delta > 0 {
                check_capacity(conn, str_field(old, "pool_id").unwrap_or_default(), delta).await?;
            }
        }
        Ok(())
    }

    async fn after_update(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &Record,
    ) -> StoreResult {
        let id = str_field(old, "id").unwrap_or_default();
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
        Ok(())
    }

    async fn after_delete(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
    ) -> StoreResult {
        let pool_id = str_field(old, "pool_id").unwrap_or_default();
        add_allocated(conn, pool_id, -int_field(old, "amount")).await?;
        serve_queue(conn, cmd, pool_id).await?;
        Ok(())
    }
}

impl StoreRules for Request {
    async fn lock_parents(conn: &mut PgConnection, id: &str) -> Result<(), sqlx::Error> {
        lock_pool_of(conn, REQUESTS, id).await
    }

    async fn before_create(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        // Lock the pool before the insert takes its key-share lock, so that concurrent
        // requests queue here instead of deadlocking when the queue is served.
        lock_pool(conn, str_field(rec, "pool_id").unwrap_or_default()).await?;
        Ok(())
    }

    async fn after_create(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        _id: &str,
        rec: &Record,
    ) -> StoreResult {
        serve_queue(conn, cmd, str_field(rec, "pool_id").unwrap_or_default()).await?;
        Ok(())
    }

    async fn before_update(
        _conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &mut Record,
    ) -> StoreResult {
        let status = str_field(old, "status").unwrap_or_default();
        if status != RequestStatus::Pending.as_str() {
            return Err(StoreError::Rejected(format!(
                "request is {status}: only pending requests change"
            )));
        }
        status_change(
            old,
            changes,
            RequestStatus::parse,
            RequestStatus::transition_error,
        )?;
        Ok(())
    }

    async fn after_update(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
        _changes: &Record,
    ) -> StoreResult {
        serve_queue(conn, cmd, str_field(old, "pool_id").unwrap_or_default()).await?;
        Ok(())
    }

    async fn after_delete(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
    ) -> StoreResult {
        if str_field(old, "status") == Some(RequestStatus::Pending.as_str()) {
            serve_queue(conn, cmd, str_field(old, "pool_id").unwrap_or_default()).await?;
        }
        Ok(())
    }
}

impl StoreRules for Utilization {
    async fn before_create(
        _conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let u = domain::utilization(int_field(rec, "in_use"), int_field(rec, "capacity"));
        rec.insert("utilization".into(), json!(u));
        Ok(())
    }
}

impl StoreRules for Plan {}

impl StoreRules for Conflict {
    async fn action(
        _conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        action: &str,
        old: &Record,
        body: &ActionBody,
    ) -> StoreResult<Record> {
        resolve::<Self, _>(cmd, action, old, body, CaseStatus::Resolved, "resolution")
    }
}
