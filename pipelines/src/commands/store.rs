//! The command worker's writes: a group of commands applied in one PostgreSQL transaction,
//! each decided once and audited.

use atlasmesh_core::clock::now_ms;
use atlasmesh_core::metric_names as m;
use atlasmesh_core::Scope;
use atlasmesh_schemas::{CommandRecord, CommandStatus};
use atlasmesh_sinks::store::{self, CommandCtx, Outcome};
use atlasmesh_sinks::{postgres_class, ErrorClass};
use sqlx::{PgConnection, PgPool, Row};

/// The decision recorded for a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: CommandStatus,
    pub reason: Option<String>,
    pub entity_id: Option<String>,
    pub applied_at_ms: i64,
}

/// One command of a group, with where it was read from (recorded with its decision).
#[derive(Debug, Clone, Copy)]
pub struct GroupCommand<'a> {
    pub cmd: &'a CommandRecord,
    pub partition: i32,
    pub offset: i64,
}

/// Applies `cmd` in one transaction unless it was decided before; returns its decision.
/// (A group of one, see [`apply_group`].)
pub async fn apply_once(
    pool: &PgPool,
    cmd: &CommandRecord,
    partition: i32,
    offset: i64,
) -> Result<Decision, sqlx::Error> {
    let mut decisions = apply_group(
        pool,
        &[GroupCommand {
            cmd,
            partition,
            offset,
        }],
    )
    .await?;
    Ok(decisions.pop().expect("one decision per command"))
}

/// Applies `group` in order in one transaction, each command unless it was decided before;
/// returns their decisions, in order, once the transaction is committed. A command refused
/// (by a domain rule, the database, or because its idempotency key is another command's) is
/// decided `rejected` without disturbing the others. An error rolls back the whole group:
/// nothing of it is kept, and the caller retries it.
pub async fn apply_group(
    pool: &PgPool,
    group: &[GroupCommand<'_>],
) -> Result<Vec<Decision>, sqlx::Error> {
    try_group(pool, group).await.map_err(|f| f.error)
}

/// Why a group was rolled back: the error, and the command it hit (none: BEGIN or COMMIT).
pub(super) struct GroupFailure {
    pub(super) command_id: Option<String>,
    pub(super) error: sqlx::Error,
}

/// What a decided command adds to the metrics once its group is committed.
enum Counted {
    /// Decided now, with this status.
    Decided(&'static str),
    /// Decided before.
    Replayed,
    /// Not ours to decide (its idempotency key belongs to another command).
    Nothing,
}

pub(super) async fn try_group(
    pool: &PgPool,
    group: &[GroupCommand<'_>],
) -> Result<Vec<Decision>, GroupFailure> {
    let mut tx = pool.begin().await.map_err(|error| GroupFailure {
        command_id: None,
        error,
    })?;
    let mut decided = Vec::with_capacity(group.len());
    for c in group {
        match decide(&mut tx, c.cmd, c.partition, c.offset).await {
            Ok(d) => decided.push(d),
            Err(e) => {
                // Roll back now rather than on drop (should this fail, the drop queues the
                // rollback, as before grouping).
                let _ = tx.rollback().await;
                return Err(GroupFailure {
                    command_id: Some(c.cmd.command_id.clone()),
                    error: e,
                });
            }
        }
    }
    tx.commit().await.map_err(|error| GroupFailure {
        command_id: None,
        error,
    })?;
    Ok(decided
        .into_iter()
        .map(|(decision, counted)| {
            match counted {
                Counted::Decided(status) => {
                    metrics::counter!(m::COMMANDS_APPLIED, "status" => status).increment(1)
                }
                Counted::Replayed => metrics::counter!(m::COMMANDS_REPLAYED).increment(1),
                Counted::Nothing => {}
            }
            decision
        })
        .collect())
}

/// Decides one command inside the group's transaction `conn`: claims and locks it, applies it
/// when still pending and records the decision with its audit row. Leaves the transaction
/// usable unless it returns an error.
async fn decide(
    conn: &mut PgConnection,
    cmd: &CommandRecord,
    partition: i32,
    offset: i64,
) -> Result<(Decision, Counted), sqlx::Error> {
    let payload: serde_json::Value = match serde_json::from_str(&cmd.payload_json) {
        Ok(v) => v,
        Err(e) => serde_json::json!({ "_unparseable": e.to_string() }),
    };
    let request_hash = atlasmesh_core::command::request_hash_json(&cmd.kind, &cmd.payload_json);
    // Record the command if the API did not (one round trip): `ins` returns it when this
    // statement created it (new rows are invisible to `cur` in the same statement); else
    // `cur` returns the existing row, locked. Neither: the idempotency key is another
    // command's.
    let row = sqlx::query(
        "WITH ins AS (
             INSERT INTO command_log (command_id, idempotency_key, actor, kind, aggregate_id, fleet_scope, payload, request_hash, status, issued_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', to_timestamp($9::double precision / 1000))
             ON CONFLICT DO NOTHING
             RETURNING status, reason, entity_id, 0::bigint AS at_ms
         ), cur AS (
             SELECT status, reason, entity_id, (extract(epoch from coalesce(applied_at, now())) * 1000)::bigint AS at_ms
             FROM command_log WHERE command_id = $1 FOR UPDATE
         )
         SELECT status, reason, entity_id, at_ms FROM ins
         UNION ALL
         SELECT status, reason, entity_id, at_ms FROM cur",
    )
    .bind(&cmd.command_id)
    .bind(&cmd.idempotency_key)
    .bind(&cmd.actor)
    .bind(&cmd.kind)
    .bind(payload.get("id").and_then(|v| v.as_str()).unwrap_or(&cmd.command_id))
    .bind(&cmd.fleet_scope)
    .bind(&payload)
    .bind(&request_hash)
    .bind(cmd.issued_at_ms as f64)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        // Another command already holds this actor's idempotency key. The statement wrote
        // nothing, so the rest of the group goes on.
        let decision = Decision {
            status: CommandStatus::Rejected,
            reason: Some(format!(
                "idempotency key {:?} of actor {:?} belongs to another command",
                cmd.idempotency_key, cmd.actor
            )),
            entity_id: None,
            applied_at_ms: now_ms(),
        };
        return Ok((decision, Counted::Nothing));
    };
    let status: String = row.get("status");
    if status != "pending" {
        // Decided before (possibly earlier in this group: a duplicate); nothing to write.
        let decision = Decision {
            status: if status == "applied" {
                CommandStatus::Applied
            } else {
                CommandStatus::Rejected
            },
            reason: row.get("reason"),
            entity_id: row.get("entity_id"),
            applied_at_ms: row.get("at_ms"),
        };
        return Ok((decision, Counted::Replayed));
    }
    let scope = Scope::from_record(&cmd.fleet_scope);
    let outcome = if payload.get("_unparseable").is_some() {
        Outcome::Rejected {
            reason: "payload is not valid JSON".into(),
        }
    } else {
        let ctx = CommandCtx {
            command_id: &cmd.command_id,
            kind: &cmd.kind,
            actor: &cmd.actor,
            scope: &scope,
            issued_at_ms: cmd.issued_at_ms,
            payload: &payload,
        };
        match store::apply(&mut *conn, ctx).await {
            Ok(o) => o,
            Err(e) if postgres_class(&e) == ErrorClass::Retriable => return Err(e),
            Err(e) => {
                // A statement the domain rules did not foresee failed: `apply` rolled back to
                // its own savepoint, so nothing of the command is kept and the group's
                // transaction is usable again; refuse the command with the database's reason.
                // (Had that rollback failed too, the decision below fails, and the group is
                // retried.)
                Outcome::Rejected {
                    reason: format!(
                        "refused by the database: {}",
                        e.as_database_error()
                            .map_or(e.to_string(), |d| d.message().to_string())
                    ),
                }
            }
        }
    };
    let (status, reason, entity_type, entity_id, fleet_id) = match &outcome {
        Outcome::Applied {
            entity_type,
            entity_id,
            fleet_id,
        } => (
            "applied",
            None,
            Some(entity_type.clone()),
            Some(entity_id.clone()),
            fleet_id.clone(),
        ),
        Outcome::Rejected { reason } => ("rejected", Some(reason.clone()), None, None, None),
    };
    // The decision and its audit row, in one round trip.
    let applied_at_ms: i64 = sqlx::query_scalar(
        "WITH decided AS (
             UPDATE command_log SET status = $2, reason = $3, entity_type = $4, entity_id = $5, applied_at = now(),
                    source_partition = $6, source_offset = $7
             WHERE command_id = $1
             RETURNING (extract(epoch from applied_at) * 1000)::bigint AS at_ms
         ), audited AS (
             INSERT INTO audit_log (command_id, actor, kind, outcome, reason, entity_type, entity_id, fleet_id, payload)
             VALUES ($1, $8, $9, $2, $3, $4, $5, $10, $11)
         )
         SELECT at_ms FROM decided",
    )
    .bind(&cmd.command_id)
    .bind(status)
    .bind(&reason)
    .bind(&entity_type)
    .bind(&entity_id)
    .bind(partition)
    .bind(offset)
    .bind(&cmd.actor)
    .bind(&cmd.kind)
    .bind(&fleet_id)
    .bind(&payload)
    .fetch_one(&mut *conn)
    .await?;
    let decision = Decision {
        status: if status == "applied" {
            CommandStatus::Applied
        } else {
            CommandStatus::Rejected
        },
        reason,
        entity_id,
        applied_at_ms,
    };
    Ok((decision, Counted::Decided(status)))
}
