//! The domain store in PostgreSQL: scoped reads and command application.
//!
//! `apply` runs inside the command worker's transaction (the caller begins and commits it,
//! together with the command log and audit rows), so it must do all its writes on `conn`.
//!
//! One generic path serves every [`Resource`] of `atlasmesh_core::domain`: decode and validate
//! the payload, check the scope and the references, run the entity's [`StoreRules`] (capacity,
//! the request queue, conflicts, dependencies, status transitions, derived values), then one
//! `INSERT` / `UPDATE` / `DELETE` built from the resource's table.
//! Everything runs under a savepoint: a rejection (or a constraint violation) rolls back
//! whatever the command wrote, leaving the caller's transaction usable.
//!
//! Entity ids: a create's entity id is the command id; entities a command creates on the side
//! (allocations served from the queue, conflicts) get ids derived from the command id (or from
//! the allocations in conflict), so a replayed command produces the same ids.

mod rules;
mod sql;

use atlasmesh_core::domain::validate::describe;
use atlasmesh_core::domain::{
    self, ActionBody, Fields, ListQuery, Page, Resource, ResourceInfo, ScopeKind, Validate,
};
use atlasmesh_core::Scope;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

pub use rules::StoreRules;
pub use sql::Record;

/// One command to apply, decoded from fleet.commands.v1.
#[derive(Debug, Clone, Copy)]
pub struct CommandCtx<'a> {
    pub command_id: &'a str,
    /// `<resource>.<operation>`, e.g. `benchmark.create`, `allocation.delete`, `alert.resolve`.
    pub kind: &'a str,
    pub actor: &'a str,
    /// The scope of the actor that issued the command; every statement must respect it.
    pub scope: &'a Scope,
    pub issued_at_ms: i64,
    pub payload: &'a serde_json::Value,
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; the entity created or changed (and its fleet, for the audit log).
    Applied {
        entity_type: String,
        entity_id: String,
        fleet_id: Option<String>,
    },
    /// Refused by a domain rule, a reference, the scope or validation; nothing was written.
    Rejected { reason: String },
}

/// Why a command was not applied: a rule refused it (the command's fault, final), or the
/// database failed (retried by the command worker).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rejected: {0}")]
    Rejected(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn rejected(reason: impl Into<String>) -> StoreError {
        StoreError::Rejected(reason.into())
    }
}

/// What a step of applying a command gives: `T`, or why the command stops.
pub type StoreResult<T = ()> = Result<T, StoreError>;

fn reject(reason: impl Into<String>) -> Result<Outcome, sqlx::Error> {
    Ok(Outcome::Rejected {
        reason: reason.into(),
    })
}

/// Sets the engine-computed optimization metric `metric` of `run` (or of the fleet, without a
/// run) to `value`: one row per (run or fleet, metric), its id derived from them, overwritten
/// when computed again. The one writer of the system's optimization metrics (clients' own
/// `POST …/metrics` rows go through the command path).
pub async fn set_optimization_metric(
    conn: &mut PgConnection,
    fleet: &str,
    run: Option<&str>,
    metric: &str,
    value: f64,
) -> Result<(), sqlx::Error> {
    let id = match run {
        Some(r) => derived_id(&[r, "metric", metric]),
        None => derived_id(&[fleet, "optimization", metric]),
    };
    sqlx::query(
        "INSERT INTO optimization_metrics (id, fleet_id, run_id, metric, value)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated_at = now()",
    )
    .bind(id)
    .bind(fleet)
    .bind(run)
    .bind(metric)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A stable id derived from `parts` (UUID-shaped hex of their SHA-256).
pub fn derived_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Applies one command on `conn` (inside the caller's transaction).
pub async fn apply(
    conn: &mut sqlx::PgConnection,
    cmd: CommandCtx<'_>,
) -> Result<Outcome, sqlx::Error> {
    let Some((name, op)) = domain::split_kind(cmd.kind) else {
        return reject(format!("unknown command kind {}", cmd.kind));
    };
    sqlx::query("SAVEPOINT atlasmesh_store_apply")
        .execute(&mut *conn)
        .await?;
    match dispatch(conn, cmd, name, op).await {
        Ok(applied) => {
            sqlx::query("RELEASE SAVEPOINT atlasmesh_store_apply")
                .execute(&mut *conn)
                .await?;
            Ok(applied)
        }
        Err(StoreError::Rejected(reason)) => {
            rollback(conn).await?;
            reject(reason)
        }
        Err(StoreError::Db(e)) => match rule_violation(&e) {
            Some(reason) => {
                rollback(conn).await?;
                reject(reason)
            }
            None => {
                // Leave the transaction usable if we can; the caller sees the error either way.
                let _ = rollback(conn).await;
                Err(e)
            }
        },
    }
}

async fn rollback(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("ROLLBACK TO SAVEPOINT atlasmesh_store_apply")
        .execute(&mut *conn)
        .await?;
    sqlx::query("RELEASE SAVEPOINT atlasmesh_store_apply")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A database error caused by the command's data (constraint, bad value) rather than the
/// database being unavailable, as a rejection reason.
fn rule_violation(e: &sqlx::Error) -> Option<String> {
    let db = e.as_database_error()?;
    let code = db.code()?;
    // 23: integrity constraint violation; 22: data exception (bad value, out of range).
    if !(code.starts_with("23") || code.starts_with("22")) {
        return None;
    }
    Some(match db.constraint() {
        Some(c) => format!("violates {c}: {}", db.message()),
        None => format!("invalid data: {}", db.message()),
    })
}

/// Applies `cmd` to the resource called `name` (looked up in the registry).
async fn dispatch(conn: &mut PgConnection, cmd: CommandCtx<'_>, name: &str, op: &str) -> Applied {
    macro_rules! arms {
        ($($r:ty),* $(,)?) => {
            $(
                if name == <$r as Resource>::INFO.name {
                    return apply_to::<$r>(conn, cmd, op).await;
                }
            )*
        };
    }
    atlasmesh_core::for_each_resource!(arms);
    Err(unknown_kind(&cmd))
}

/// The outcome of a command that went through: what it changed.
type Applied = StoreResult<Outcome>;

fn unknown_kind(cmd: &CommandCtx<'_>) -> StoreError {
    StoreError::Rejected(format!("unknown command kind {}", cmd.kind))
}

async fn apply_to<R: StoreRules>(
    conn: &mut PgConnection,
    cmd: CommandCtx<'_>,
    op: &str,
) -> Applied {
    let info = &R::INFO;
    match op {
        "create" if info.ops.create => create::<R>(conn, cmd).await,
        "update" if info.ops.update => update::<R>(conn, cmd).await,
        "delete" if info.ops.delete => delete::<R>(conn, cmd).await,
        action if info.action(action).is_some() => act::<R>(conn, cmd, action).await,
        _ => Err(unknown_kind(&cmd)),
    }
}

fn applied(info: &ResourceInfo, id: &str, rec: &Record) -> Applied {
    Ok(Outcome::Applied {
        entity_type: info.name.to_string(),
        entity_id: id.to_string(),
        fleet_id: rec
            .get("fleet_id")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Decodes and validates a body, or says why not.
fn decode<T: serde::de::DeserializeOwned + Validate>(v: Value) -> StoreResult<T> {
    let t: T = serde_json::from_value(v)
        .map_err(|e| StoreError::Rejected(format!("invalid payload: {e}")))?;
    t.validate()
        .map_err(|f| StoreError::Rejected(format!("invalid fields: {}", describe(&f))))?;
    Ok(t)
}

/// Splits `{"id": ..., ...rest}`.
fn split_id(payload: &Value) -> StoreResult<(String, Value)> {
    let mut m = payload
        .as_object()
        .cloned()
        .ok_or_else(|| StoreError::rejected("payload must be a JSON object"))?;
    match m.remove("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok((id, Value::Object(m))),
        _ => Err(StoreError::rejected(
            "payload needs the entity id as \"id\"",
        )),
    }
}

fn to_record<T: serde::Serialize>(t: &T) -> Result<Record, sqlx::Error> {
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(sqlx::Error::Protocol(
            "a domain type did not serialize to an object".into(),
        )),
        Err(e) => Err(sqlx::Error::Encode(Box::new(e))),
    }
}

/// Why a new row `rec` of `info` may not be written in `scope`, if so.
pub fn scope_violation(info: &ResourceInfo, scope: &Scope, rec: &Record) -> Option<String> {
    if scope.all {
        return None;
    }
    let col = info.scope_column();
    match info.scope {
        ScopeKind::Federation("id") => {
            Some("creating a federation needs an unrestricted scope".into())
        }
        ScopeKind::Federation(_) => {
            let f = rec.get(col).and_then(Value::as_str).unwrap_or_default();
            (!scope.allows_federation(f)).then(|| format!("federation {f} is not in scope"))
        }
        ScopeKind::Fleet | ScopeKind::SharedWith(_) | ScopeKind::Correspondence { .. } => {
            let f = rec.get(col).and_then(Value::as_str).unwrap_or_default();
            (!scope.allows_fleet(f)).then(|| format!("fleet {f} is not in scope"))
        }
    }
}

/// Whether a caller with `scope` takes part in federation `federation_id`: the federation is
/// in its scope, or one of its fleets is a member.
pub async fn in_federation(
    conn: &mut PgConnection,
    scope: &Scope,
    federation_id: &str,
) -> Result<bool, sqlx::Error> {
    if scope.all || scope.allows_federation(federation_id) {
        return Ok(true);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM federation_members WHERE federation_id = $1 AND fleet_id = ANY($2))",
    )
    .bind(federation_id)
    .bind(&scope.fleets)
    .fetch_one(&mut *conn)
    .await
}

/// For resources whose rows are messages between members of a federation
/// ([`ScopeKind::Correspondence`]): why a caller with `scope` must be refused (403) for
/// federation `federation_id` — it takes no part in it — or `None`.
pub async fn outsider(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    scope: &Scope,
    federation_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    if !matches!(info.scope, ScopeKind::Correspondence { .. }) {
        return Ok(None);
    }
    Ok(
        (!in_federation(conn, scope, federation_id).await?).then(|| {
            format!(
            "none of your fleets is a member of federation {federation_id}: its {} are not yours",
            info.plural
        )
        }),
    )
}

/// For a new row of a [`ScopeKind::Correspondence`] resource: why its sender (`fleet_id`)
/// may not send in its federation — it is not a member — or `None` (the API answers 403).
pub async fn sender_outside(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    rec: &Record,
) -> Result<Option<String>, sqlx::Error> {
    let ScopeKind::Correspondence { federation, .. } = info.scope else {
        return Ok(None);
    };
    let fed = rec
        .get(federation)
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sender = rec
        .get("fleet_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM federation_members WHERE federation_id = $1 AND fleet_id = $2)",
    )
    .bind(fed)
    .bind(sender)
    .fetch_one(&mut *conn)
    .await?;
    Ok((!member).then(|| format!("fleet {sender} is not a member of federation {fed}")))
}

/// The federation a list of a [`ScopeKind::Correspondence`] resource is about, when its
/// filters name one: the `federation` filter, or the federation of the conversation filtered
/// by (`conversation_id`). `None` for other resources and unfiltered lists.
pub async fn listed_federation(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    q: &ListQuery,
) -> Result<Option<String>, sqlx::Error> {
    let ScopeKind::Correspondence { federation, .. } = info.scope else {
        return Ok(None);
    };
    for (col, v) in &q.filters {
        if *col == federation {
            return Ok(Some(v.clone()));
        }
    }
    for (col, v) in &q.filters {
        if *col == "conversation_id" {
            let mut qb = sqlx::QueryBuilder::new("SELECT ");
            qb.push(federation)
                .push(" FROM ")
                .push(info.table)
                .push(" WHERE conversation_id = ")
                .push_bind(v.clone())
                .push(" LIMIT 1");
            return qb.build_query_scalar().fetch_optional(&mut *conn).await;
        }
    }
    Ok(None)
}

/// The federation of row `id` of a [`ScopeKind::Correspondence`] resource whatever the
/// scope (to tell an outsider, 403, from a member the row is not addressed to, 404).
pub async fn federation_of(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let ScopeKind::Correspondence { federation, .. } = info.scope else {
        return Ok(None);
    };
    let mut qb = sqlx::QueryBuilder::new("SELECT ");
    qb.push(federation)
        .push(" FROM ")
        .push(info.table)
        .push(" WHERE id = ")
        .push_bind(id.to_string());
    qb.build_query_scalar().fetch_optional(&mut *conn).await
}

/// Checks the references of a new row: each must name an entity that exists in `scope`
/// (changeable by it) and, where required, belongs to the same fleet. Returns field → reason.
pub async fn check_references(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    scope: &Scope,
    rec: &Record,
) -> Result<Fields, sqlx::Error> {
    let mut bad = Fields::new();
    for r in info.references {
        let Some(id) = rec.get(r.field).and_then(Value::as_str) else {
            continue;
        };
        let Some(target) = domain::info(r.target) else {
            return Err(sqlx::Error::Protocol(format!(
                "{} references unknown resource {}",
                info.name, r.target
            )));
        };
        match sql::fetch_row(conn, target, scope, id, true, false).await? {
            None => {
                bad.insert(
                    r.field.to_string(),
                    format!("no {} {id} in scope", target.name),
                );
            }
            Some(row) if r.same_fleet && row.get("fleet_id") != rec.get("fleet_id") => {
                bad.insert(
                    r.field.to_string(),
                    format!("{} {id} belongs to another fleet", target.name),
                );
            }
            Some(_) => {}
        }
    }
    Ok(bad)
}

async fn create<R: StoreRules>(conn: &mut PgConnection, cmd: CommandCtx<'_>) -> Applied {
    let info = &R::INFO;
    let input: R::Create = decode(cmd.payload.clone())?;
    let mut rec = to_record(&input)?;
    let id = cmd.command_id.to_string();
    // A replayed create: the entity exists with the id of this command.
    if let Some(existing) = sql::exists(conn, info.table, &id).await? {
        return applied(info, &id, &existing);
    }
    if let Some(reason) = scope_violation(info, cmd.scope, &rec) {
        return Err(StoreError::Rejected(reason));
    }
    if let Some(reason) = sender_outside(conn, info, &rec).await? {
        return Err(StoreError::Rejected(reason));
    }
    let bad = check_references(conn, info, cmd.scope, &rec).await?;
    if !bad.is_empty() {
        return Err(StoreError::Rejected(format!(
            "invalid references: {}",
            describe(&bad)
        )));
    }
    R::before_create(conn, &cmd, &mut rec).await?;
    sql::insert(conn, info.table, &id, cmd.issued_at_ms, &rec).await?;
    R::after_create(conn, &cmd, &id, &rec).await?;
    applied(info, &id, &rec)
}

/// Locks the row to change, after the rows that must be locked before it (a pool before its
/// allocations and requests, so every path takes locks in the same order).
async fn lock_for_write<R: StoreRules>(
    conn: &mut PgConnection,
    scope: &Scope,
    id: &str,
) -> StoreResult<Record> {
    R::lock_parents(conn, id).await?;
    sql::fetch_row(conn, &R::INFO, scope, id, true, true)
        .await?
        .ok_or_else(|| StoreError::Rejected(format!("no {} {id} in scope", R::INFO.name)))
}

async fn update<R: StoreRules>(conn: &mut PgConnection, cmd: CommandCtx<'_>) -> Applied {
    let info = &R::INFO;
    let (id, rest) = split_id(cmd.payload)?;
    let changes: R::Update = decode(rest)?;
    let mut changes = to_record(&changes)?;
    let old = lock_for_write::<R>(conn, cmd.scope, &id).await?;
    // A field given with the value it has is no change (a PUT repeats every mutable field):
    // it passes no status machine or rule about changes.
    changes.retain(|k, v| old.get(k) != Some(v));
    R::before_update(conn, &cmd, &old, &mut changes).await?;
    sql::update(conn, info.table, &id, cmd.issued_at_ms, &changes).await?;
    R::after_update(conn, &cmd, &old, &changes).await?;
    applied(info, &id, &old)
}

async fn delete<R: StoreRules>(conn: &mut PgConnection, cmd: CommandCtx<'_>) -> Applied {
    let info = &R::INFO;
    let (id, rest) = split_id(cmd.payload)?;
    if rest.as_object().is_some_and(|m| !m.is_empty()) {
        return Err(StoreError::rejected("a delete takes only the id"));
    }
    let old = lock_for_write::<R>(conn, cmd.scope, &id).await?;
    R::before_delete(conn, &cmd, &old).await?;
    sql::delete(conn, info.table, &id).await?;
    R::after_delete(conn, &cmd, &old).await?;
    applied(info, &id, &old)
}

async fn act<R: StoreRules>(conn: &mut PgConnection, cmd: CommandCtx<'_>, action: &str) -> Applied {
    let info = &R::INFO;
    let (id, rest) = split_id(cmd.payload)?;
    let body: ActionBody = serde_json::from_value(rest)
        .map_err(|e| StoreError::Rejected(format!("invalid payload: {e}")))?;
    R::validate_action(action, &body)
        .map_err(|f| StoreError::Rejected(format!("invalid fields: {}", describe(&f))))?;
    let old = lock_for_write::<R>(conn, cmd.scope, &id).await?;
    let changes = R::action(conn, &cmd, action, &old, &body).await?;
    sql::update(conn, info.table, &id, cmd.issued_at_ms, &changes).await?;
    applied(info, &id, &old)
}

// ---------------------------------------------------------------- reads

/// One page of `R` visible in `scope`.
pub async fn list<R: Resource>(
    pool: &PgPool,
    scope: &Scope,
    q: &ListQuery,
) -> Result<Page<R::View>, sqlx::Error> {
    let (items, next_cursor) = sql::page(pool, &R::INFO, scope, q).await?;
    let items = items
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, next_cursor })
}

/// One page of the resource `info` as JSON rows.
pub async fn list_json(
    pool: &PgPool,
    info: &ResourceInfo,
    scope: &Scope,
    q: &ListQuery,
) -> Result<Page<Value>, sqlx::Error> {
    let (items, next_cursor) = sql::page(pool, info, scope, q).await?;
    Ok(Page { items, next_cursor })
}

/// Entity `id` of `R` if visible in `scope`.
pub async fn get<R: Resource>(
    pool: &PgPool,
    scope: &Scope,
    id: &str,
) -> Result<Option<R::View>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    match sql::fetch_row(&mut conn, &R::INFO, scope, id, false, false).await? {
        None => Ok(None),
        Some(rec) => serde_json::from_value(Value::Object(rec))
            .map(Some)
            .map_err(|e| sqlx::Error::Decode(Box::new(e))),
    }
}

/// How an entity relates to a scope, for answering 404 vs 403 before producing a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Not visible (or does not exist).
    Hidden,
    /// Visible but not changeable (e.g. a share seen by its target fleet).
    ReadOnly(Record),
    Writable(Record),
}

pub async fn access(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    scope: &Scope,
    id: &str,
) -> Result<Access, sqlx::Error> {
    if let Some(row) = sql::fetch_row(conn, info, scope, id, true, false).await? {
        return Ok(Access::Writable(row));
    }
    Ok(
        match sql::fetch_row(conn, info, scope, id, false, false).await? {
            Some(row) => Access::ReadOnly(row),
            None => Access::Hidden,
        },
    )
}

/// Every command kind the store applies, e.g. `benchmark.create` (for docs and tests).
pub fn kinds() -> Vec<String> {
    let mut out = Vec::new();
    for e in domain::catalog() {
        let i = e.info;
        let ops = [
            ("create", i.ops.create),
            ("update", i.ops.update),
            ("delete", i.ops.delete),
        ];
        out.extend(
            ops.iter()
                .filter(|(_, on)| *on)
                .map(|(op, _)| format!("{}.{op}", i.name)),
        );
        out.extend(i.actions.iter().map(|a| format!("{}.{}", i.name, a.name)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derived_id(&["cmd-1", "allocation", "req-1"]);
        assert_eq!(a, derived_id(&["cmd-1", "allocation", "req-1"]));
        assert_ne!(a, derived_id(&["cmd-1", "allocation", "req-2"]));
        assert_ne!(derived_id(&["ab", "c"]), derived_id(&["a", "bc"]));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn kinds_cover_the_domain() {
        let k = kinds();
        for kind in [
            "benchmark.create",
            "benchmark.update",
            "benchmark.delete",
            "alert.resolve",
            "execution.start",
        ] {
            assert!(k.iter().any(|x| x == kind), "{kind}");
        }
        assert!(!k.iter().any(|x| x == "score.delete"));
    }

    #[test]
    fn payload_ids() {
        assert_eq!(
            split_id(&serde_json::json!({"id": "x", "a": 1})).unwrap().0,
            "x"
        );
        assert!(split_id(&serde_json::json!({"a": 1})).is_err());
        assert!(split_id(&serde_json::json!([1])).is_err());
    }
}
