//! fleet-optimization: run and plan lifecycles, results and recommendations of live runs.

use atlasmesh_core::domain::optimization::{
    self as domain, OptimizationMetric, Rebalancing, RebalancingStatus, Recommendation, Run,
    RunResult, RunStatus, ServiceZone,
};
use atlasmesh_core::domain::{ActionBody, Resource};
use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{f64_field, iso, record, status_change, str_field, StoreRules};
use crate::store::sql::{self, Record};
use crate::store::{derived_id, CommandCtx, StoreError, StoreResult};

/// The neighbours a zone lists must be other zones of its fleet.
async fn check_neighbours(
    conn: &mut PgConnection,
    fleet: &str,
    zone: Option<&str>,
    neighbours: Option<&serde_json::Value>,
) -> StoreResult {
    let Some(list) = neighbours.and_then(serde_json::Value::as_array) else {
        return Ok(());
    };
    let ids: Vec<String> = list
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if let Some(z) = zone.filter(|z| ids.iter().any(|i| i == z)) {
        return Err(StoreError::Rejected(format!(
            "neighbours: zone {z} cannot be its own neighbour"
        )));
    }
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM optimization_zones WHERE fleet_id = $1 AND id = ANY($2)",
    )
    .bind(fleet)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let missing: Vec<&String> = ids.iter().filter(|i| !known.contains(i)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!(
            "neighbours: no zones {missing:?} in fleet {fleet}"
        )))
    }
}

impl StoreRules for ServiceZone {
    async fn before_create(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let fleet = str_field(rec, "fleet_id").unwrap_or_default().to_string();
        check_neighbours(conn, &fleet, None, rec.get("neighbours")).await
    }

    async fn before_update(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &mut Record,
    ) -> StoreResult {
        let fleet = str_field(old, "fleet_id").unwrap_or_default().to_string();
        check_neighbours(
            conn,
            &fleet,
            str_field(old, "id"),
            changes.get("neighbours"),
        )
        .await
    }

    /// A zone another zone lists as its neighbour stays until it is taken off those lists.
    async fn before_delete(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        old: &Record,
    ) -> StoreResult {
        let id = str_field(old, "id").unwrap_or_default();
        let listing: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM optimization_zones WHERE neighbours ? $1 AND id <> $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        if listing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Rejected(format!(
                "zone {id} is a neighbour of zones {listing:?}; take it off their lists first"
            )))
        }
    }
}

impl StoreRules for Run {
    async fn before_update(
        _conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &mut Record,
    ) -> StoreResult {
        let at = iso(cmd.issued_at_ms);
        match status_change(old, changes, RunStatus::parse, RunStatus::transition_error)? {
            Some(RunStatus::Running) => {
                changes.insert("started_at".into(), json!(at));
            }
            Some(s) if s.is_final() => {
                if str_field(old, "started_at").is_none() {
                    changes.insert("started_at".into(), json!(at));
                }
                changes.insert("finished_at".into(), json!(at));
            }
            _ => {}
        }
        Ok(())
    }
}

impl StoreRules for Rebalancing {
    async fn before_update(
        _conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &mut Record,
    ) -> StoreResult {
        status_change(
            old,
            changes,
            RebalancingStatus::parse,
            RebalancingStatus::transition_error,
        )?;
        if changes.contains_key("vehicle_count")
            && str_field(old, "status") != Some(RebalancingStatus::Proposed.as_str())
        {
            return Err(StoreError::rejected(
                "vehicle_count changes only while the plan is proposed",
            ));
        }
        Ok(())
    }
}

impl StoreRules for RunResult {
    async fn before_create(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let run = live_run(conn, rec).await?;
        let weights = [run.try_get(1)?, run.try_get(2)?, run.try_get(3)?];
        let s = domain::objective_score(
            weights,
            f64_field(rec, "cost"),
            f64_field(rec, "efficiency"),
            f64_field(rec, "coverage"),
        );
        rec.insert("score".into(), json!(s));
        Ok(())
    }
}

impl StoreRules for Recommendation {
    async fn before_create(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        live_run(conn, rec).await.map(|_| ())
    }

    /// `accept` creates the approved rebalancing plan of the move; both decide the
    /// recommendation once and update the run's `adoption_rate` (accepted ÷ issued).
    async fn action(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        action: &str,
        old: &Record,
        _body: &ActionBody,
    ) -> StoreResult<Record> {
        let status = str_field(old, "status").unwrap_or_default();
        if let Some(e) = domain::recommendation_action_error(action, status, old.get("details")) {
            return Err(StoreError::Rejected(e));
        }
        let at = iso(cmd.issued_at_ms);
        let id = str_field(old, "id").unwrap_or_default().to_string();
        let run_id = str_field(old, "run_id").unwrap_or_default().to_string();
        let mut changes = record(
            json!({"status": if action == "accept" { "accepted" } else { "rejected" },
                                        "decided_at": at, "decided_by": cmd.actor}),
        );
        if action == "accept" {
            let d = old.get("details").cloned().unwrap_or_default();
            let plan_id = derived_id(&[&id, "rebalancing"]);
            let plan = record(json!({
                "fleet_id": old.get("fleet_id"),
                "run_id": run_id,
                "from_zone": d["from_zone"],
                "to_zone": d["to_zone"],
                "vehicle_count": d["vehicles"],
                "reason": old.get("action"),
                "status": "approved",
                "approved_at": at,
            }));
            sql::insert(
                conn,
                Rebalancing::INFO.table,
                &plan_id,
                cmd.issued_at_ms,
                &plan,
            )
            .await?;
            changes.insert("rebalancing_id".into(), json!(plan_id));
        }
        // The run's adoption rate with this decision counted (the row is updated after).
        let (issued, accepted): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status = 'accepted' OR id = $2)
             FROM optimization_recommendations WHERE run_id = $1",
        )
        .bind(&run_id)
        .bind(if action == "accept" { id.as_str() } else { "" })
        .fetch_one(&mut *conn)
        .await?;
        let fleet = str_field(old, "fleet_id").unwrap_or_default();
        crate::store::set_optimization_metric(
            conn,
            fleet,
            Some(&run_id),
            "adoption_rate",
            accepted as f64 / issued.max(1) as f64,
        )
        .await?;
        Ok(changes)
    }
}

impl StoreRules for OptimizationMetric {}

/// The run `rec` belongs to (status, then the cost, efficiency and coverage weights), which
/// must exist and not have failed or been cancelled (locked for share while the command runs).
async fn live_run(conn: &mut PgConnection, rec: &Record) -> StoreResult<PgRow> {
    let run_id = str_field(rec, "run_id").unwrap_or_default();
    let row = sqlx::query(
        "SELECT status, cost_weight, efficiency_weight, coverage_weight FROM optimization_runs
         WHERE id = $1 FOR SHARE",
    )
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(StoreError::Rejected(format!(
            "no optimization_run {run_id}"
        )));
    };
    let status: String = row.try_get(0)?;
    if matches!(
        RunStatus::parse(&status),
        Some(RunStatus::Failed | RunStatus::Cancelled)
    ) {
        return Err(StoreError::Rejected(format!(
            "optimization_run {run_id} is {status}"
        )));
    }
    Ok(row)
}
