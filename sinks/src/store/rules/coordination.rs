//! fleet-coordination: what a share may lend, and to whom.

use atlasmesh_core::domain::coordination::{Federation, FederationMetric, Member, Share};
use serde_json::Value;
use sqlx::PgConnection;

use super::{int_field, str_field, StoreRules};
use crate::store::sql::Record;
use crate::store::{CommandCtx, StoreError, StoreResult};

impl StoreRules for Federation {}

impl StoreRules for Member {
    /// A fleet's numbers appear in its federation's totals, so joining it needs the consent of
    /// the fleet: the caller must hold a claim on the fleet as well as on the federation (the
    /// generic scope check covers the federation).
    async fn before_create(
        _conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let fleet = str_field(rec, "fleet_id").unwrap_or_default();
        if cmd.scope.allows_fleet(fleet) {
            Ok(())
        } else {
            Err(StoreError::Rejected(format!(
                "fleet_id: adding fleet {fleet} to a federation needs a claim on that fleet \
                 (its operator's consent)"
            )))
        }
    }
}

impl StoreRules for FederationMetric {}

impl StoreRules for Share {
    async fn before_create(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        share_limits(conn, rec, None).await
    }

    async fn before_update(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &mut Record,
    ) -> StoreResult {
        share_limits(conn, changes, Some(old)).await
    }
}

/// A share lends at most its pool's capacity; with a federation, both fleets must be members.
async fn share_limits(conn: &mut PgConnection, rec: &Record, old: Option<&Record>) -> StoreResult {
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
        return Err(StoreError::Rejected(format!("no pool {pool_id}")));
    };
    if let Some(a) = amount.filter(|a| *a > capacity) {
        return Err(StoreError::Rejected(format!(
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
                return Err(StoreError::Rejected(format!(
                    "both fleets must be members of federation {fed}"
                )));
            }
        }
    }
    Ok(())
}
