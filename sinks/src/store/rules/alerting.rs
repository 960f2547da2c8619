//! alerting: rules of federations need a member owner; people act on alert instances.

use atlasmesh_core::domain::alerting::{self as domain, AlertInstance, AlertRuleResource};
use atlasmesh_core::domain::ActionBody;
use serde_json::json;
use sqlx::PgConnection;

use super::{iso, record, str_field, StoreRules};
use crate::store::sql::Record;
use crate::store::{CommandCtx, StoreError, StoreResult};

impl StoreRules for AlertRuleResource {
    /// A federation alert rule's owning fleet must be a member of its federation.
    /// Its instance shows the federation's total (other fleets' data), so the caller needs a
    /// claim on the federation itself, not only on the owning fleet.
    async fn before_create(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let Some(fed) = str_field(rec, "federation_id") else {
            return Ok(());
        };
        let member: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM federation_members WHERE federation_id = $1 AND fleet_id = $2)",
        )
        .bind(fed)
        .bind(str_field(rec, "fleet_id"))
        .fetch_one(&mut *conn)
        .await?;
        if !member {
            return Err(StoreError::Rejected(format!(
                "federation_id: fleet {} is not a member of federation {fed}",
                str_field(rec, "fleet_id").unwrap_or_default()
            )));
        }
        federation_claim(cmd, fed)
    }

    async fn before_update(
        _conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &mut Record,
    ) -> StoreResult {
        let mut merged = old.clone();
        merged.extend(changes.clone());
        domain::validate_rule_row(&merged).map_err(StoreError::Rejected)?;
        if let (Some(from), Some(to)) = (str_field(old, "metric"), str_field(&merged, "metric")) {
            if let Some(e) = domain::metric_change_error(from, to) {
                return Err(StoreError::Rejected(e));
            }
        }
        match str_field(&merged, "federation_id") {
            Some(fed) => federation_claim(cmd, fed),
            None => Ok(()),
        }
    }
}

/// Refuses a federation rule to a caller without a claim on the federation.
fn federation_claim(cmd: &CommandCtx<'_>, fed: &str) -> StoreResult {
    if cmd.scope.allows_federation(fed) {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!(
            "federation_id: a federation rule shows the whole federation {fed}; it needs a \
             claim on that federation"
        )))
    }
}

impl StoreRules for AlertInstance {
    async fn action(
        _conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        action: &str,
        old: &Record,
        body: &ActionBody,
    ) -> StoreResult<Record> {
        let at = iso(cmd.issued_at_ms);
        let status = str_field(old, "status").unwrap_or_default();
        let acked = str_field(old, "acknowledged_by");
        if let Some(e) = domain::instance_action_error(action, status, acked) {
            return Err(StoreError::Rejected(e));
        }
        Ok(match action {
            "acknowledge" => record(json!({"acknowledged_at": at, "acknowledged_by": cmd.actor})),
            // The engine publishes the resolve (next seq) and resets the machine.
            _ => record(json!({"status": "resolved", "resolved_at": at,
                               "resolved_by": cmd.actor, "resolution_note": body.note})),
        })
    }
}
