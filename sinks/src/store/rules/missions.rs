//! missions: dependencies without cycles, the execution lifecycle, safety events.

use atlasmesh_core::domain::missions::{
    self as domain, Dependency, Execution, ExecutionStatus, MissionLog, MissionMetric, SafetyEvent,
    Template,
};
use atlasmesh_core::domain::status::CaseStatus;
use atlasmesh_core::domain::ActionBody;
use serde_json::json;
use sqlx::PgConnection;

use super::{iso, record, str_field, StoreRules};
use crate::store::sql::Record;
use crate::store::{CommandCtx, StoreError, StoreResult};

impl StoreRules for Template {}

impl StoreRules for MissionLog {}

impl StoreRules for MissionMetric {}

impl StoreRules for Dependency {
    async fn before_create(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        // One dependency change per fleet at a time, so two concurrent edges cannot close a
        // cycle that neither sees.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('mission_dependencies:' || $1, 0))",
        )
        .bind(str_field(rec, "fleet_id"))
        .execute(&mut *conn)
        .await?;
        let exec_id = str_field(rec, "execution_id").unwrap_or_default();
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM mission_executions WHERE id = $1 FOR UPDATE")
                .bind(exec_id)
                .fetch_optional(&mut *conn)
                .await?;
        if status.as_deref() != Some(ExecutionStatus::Scheduled.as_str()) {
            return Err(StoreError::Rejected(format!(
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
        if domain::creates_cycle(&edges, exec_id, to) {
            return Err(StoreError::Rejected(format!(
                "execution {exec_id} depending on {to} would close a cycle"
            )));
        }
        Ok(())
    }
}

impl StoreRules for Execution {
    async fn action(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        action: &str,
        old: &Record,
        body: &ActionBody,
    ) -> StoreResult<Record> {
        let at = iso(cmd.issued_at_ms);
        let status = str_field(old, "status").unwrap_or_default();
        let from =
            ExecutionStatus::parse(status).ok_or_else(|| StoreError::rejected("unknown status"))?;
        match action {
            "start" => {
                if let Some(e) = from.transition_error(ExecutionStatus::Running) {
                    return Err(StoreError::Rejected(format!("execution {e}")));
                }
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
                        let s = ExecutionStatus::parse(&s).unwrap_or(ExecutionStatus::Scheduled);
                        (id, s)
                    })
                    .collect();
                let unmet = domain::unmet_dependencies(&deps);
                if !unmet.is_empty() {
                    return Err(StoreError::Rejected(format!(
                        "dependencies not completed: {}",
                        unmet.join(", ")
                    )));
                }
                Ok(record(json!({"status": "running", "started_at": at})))
            }
            "complete" => {
                let to = body
                    .outcome
                    .as_deref()
                    .and_then(ExecutionStatus::parse)
                    .ok_or_else(|| StoreError::rejected("outcome: required"))?;
                if let Some(e) = from.transition_error(to) {
                    return Err(StoreError::Rejected(format!("execution {e}")));
                }
                Ok(record(
                    json!({"status": to.as_str(), "completed_at": at, "note": body.note}),
                ))
            }
            _ => Err(StoreError::Rejected(format!(
                "execution has no action {action}"
            ))),
        }
    }
}

impl StoreRules for SafetyEvent {
    async fn action(
        _conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        action: &str,
        old: &Record,
        body: &ActionBody,
    ) -> StoreResult<Record> {
        super::resolve::<Self, _>(cmd, action, old, body, CaseStatus::Resolved, "resolution")
    }
}
