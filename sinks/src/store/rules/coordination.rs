//! fleet-coordination: what a share may lend, and to whom; who may write to whom.

use atlasmesh_core::domain::coordination::{
    Communication, Federation, FederationMetric, Member, Share,
};
use atlasmesh_core::domain::{ActionBody, Resource};
use serde_json::Value;
use sqlx::PgConnection;

use super::{int_field, iso, record, str_field, StoreRules};
use crate::store::sql::{self, Record};
use crate::store::{derived_id, CommandCtx, StoreError, StoreResult};

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

/// The members of `federation` other than `sender`, in id order.
async fn other_members(
    conn: &mut PgConnection,
    federation: &str,
    sender: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT fleet_id FROM federation_members WHERE federation_id = $1 AND fleet_id <> $2 ORDER BY fleet_id",
    )
    .bind(federation)
    .bind(sender)
    .fetch_all(&mut *conn)
    .await
}

impl StoreRules for Communication {
    /// The recipient must be a member (the generic path checked the sender); a message to
    /// the whole federation goes to its first other member here and to the rest in
    /// `after_create`. Delivery (`delivered_at`) is the relay's.
    async fn before_create(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let fed = str_field(rec, "federation_id")
            .unwrap_or_default()
            .to_string();
        let sender = str_field(rec, "fleet_id").unwrap_or_default().to_string();
        let others = other_members(conn, &fed, &sender).await?;
        let target = match str_field(rec, "target_fleet_id") {
            Some(t) if others.iter().any(|o| o == t) => t.to_string(),
            Some(t) => {
                return Err(StoreError::Rejected(format!(
                    "target_fleet_id: fleet {t} is not a member of federation {fed}"
                )))
            }
            None => others.first().cloned().ok_or_else(|| {
                StoreError::Rejected(format!(
                    "federation {fed} has no member besides {sender} to write to"
                ))
            })?,
        };
        // An answer continues a conversation of this federation the sender takes part in.
        if let Some(conversation) = str_field(rec, "conversation_id") {
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM communication_logs WHERE conversation_id = $1
                   AND federation_id = $2 AND (fleet_id = $3 OR target_fleet_id = $3))",
            )
            .bind(conversation)
            .bind(&fed)
            .bind(&sender)
            .fetch_one(&mut *conn)
            .await?;
            if !known {
                return Err(StoreError::Rejected(format!(
                    "conversation_id: fleet {sender} has no conversation {conversation} in federation {fed}"
                )));
            }
        }
        let id = cmd.command_id.to_string();
        rec.insert("target_fleet_id".into(), Value::String(target));
        rec.insert("message_id".into(), Value::String(id.clone()));
        if str_field(rec, "conversation_id").is_none() {
            rec.insert("conversation_id".into(), Value::String(id));
        }
        rec.insert("status".into(), Value::String("sent".into()));
        rec.insert("sent_at".into(), Value::String(iso(cmd.issued_at_ms)));
        Ok(())
    }

    /// A message to the whole federation: one more row per other member.
    async fn after_create(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        id: &str,
        rec: &Record,
    ) -> StoreResult {
        if cmd
            .payload
            .get("target_fleet_id")
            .is_some_and(|t| !t.is_null())
        {
            return Ok(());
        }
        let fed = str_field(rec, "federation_id")
            .unwrap_or_default()
            .to_string();
        let sender = str_field(rec, "fleet_id").unwrap_or_default().to_string();
        let first = str_field(rec, "target_fleet_id")
            .unwrap_or_default()
            .to_string();
        for target in other_members(conn, &fed, &sender).await? {
            if target == first {
                continue;
            }
            let mut copy = rec.clone();
            copy.insert("target_fleet_id".into(), Value::String(target.clone()));
            let copy_id = derived_id(&[id, "communication", &target]);
            sql::insert(
                conn,
                Communication::INFO.table,
                &copy_id,
                cmd.issued_at_ms,
                &copy,
            )
            .await?;
        }
        Ok(())
    }

    /// `acknowledge`, by the recipient (the generic path let only the recipient lock the row),
    /// once. `delivered_at` stays the relay's (a row without it is still to be published).
    async fn action(
        _conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        action: &str,
        old: &Record,
        _body: &ActionBody,
    ) -> StoreResult<Record> {
        if action != "acknowledge" {
            return Err(StoreError::Rejected(format!(
                "communication has no action {action}"
            )));
        }
        if str_field(old, "status") == Some("acknowledged") {
            return Err(StoreError::Rejected(format!(
                "communication {} was acknowledged already",
                str_field(old, "id").unwrap_or_default()
            )));
        }
        Ok(record(serde_json::json!({
            "status": "acknowledged",
            "acknowledged_at": iso(cmd.issued_at_ms),
            "acknowledged_by": cmd.actor,
        })))
    }
}
