//! The store rules of each entity, run by the generic store inside the command's transaction:
//! capacity and the request queue of pools, conflict detection, sharing limits, mission
//! dependencies, status transitions and derived values.
//!
//! Every [`Resource`] implements [`StoreRules`] (the registry, `for_each_resource!`, makes a
//! forgotten entity a compile error); a hook it does not override does nothing. The files here
//! mirror `atlasmesh_core::domain::<area>`: the pure decisions live with the entity's types
//! there, this side loads their inputs (locking what it will change) and writes their results.
//! A hook refuses a command with [`StoreError::Rejected`]; the store then rolls back to its
//! savepoint, so a hook may refuse after writing.

mod alerting;
mod analytics;
mod coordination;
mod missions;
mod optimization;
mod performance;
mod resources;

use std::future::Future;

use atlasmesh_core::domain::validate::format_time;
use atlasmesh_core::domain::{ActionBody, Resource};
use serde_json::Value;
use sqlx::PgConnection;

use super::sql::Record;
use super::{CommandCtx, StoreError, StoreResult};

/// The rules an entity adds to the generic create / update / delete / action path. Each hook
/// runs on the command's connection, inside its transaction and savepoint.
pub trait StoreRules: Resource {
    /// Locks the rows that must be locked before the row `id` is locked for a change (a pool
    /// before its allocations and requests, so every path takes locks in the same order).
    fn lock_parents(
        conn: &mut PgConnection,
        id: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        let _ = (conn, id);
        async { Ok(()) }
    }

    /// Checks a new row and fills its derived columns before it is inserted.
    fn before_create(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> impl Future<Output = StoreResult> + Send {
        let _ = (conn, cmd, rec);
        async { Ok(()) }
    }

    /// Runs after the row `id` was inserted (e.g. serving a queue it joined).
    fn after_create(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        id: &str,
        rec: &Record,
    ) -> impl Future<Output = StoreResult> + Send {
        let _ = (conn, cmd, id, rec);
        async { Ok(()) }
    }

    /// Checks `changes` to the locked row `old` (and may add derived columns to them).
    fn before_update(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &mut Record,
    ) -> impl Future<Output = StoreResult> + Send {
        let _ = (conn, cmd, old, changes);
        async { Ok(()) }
    }

    /// Runs after `changes` were written to the row `old`.
    fn after_update(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
        changes: &Record,
    ) -> impl Future<Output = StoreResult> + Send {
        let _ = (conn, cmd, old, changes);
        async { Ok(()) }
    }

    /// Checks that the locked row `old` may be deleted.
    fn before_delete(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
    ) -> impl Future<Output = StoreResult> + Send {
        let _ = (conn, cmd, old);
        async { Ok(()) }
    }

    /// Runs after the row `old` was deleted.
    fn after_delete(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        old: &Record,
    ) -> impl Future<Output = StoreResult> + Send {
        let _ = (conn, cmd, old);
        async { Ok(()) }
    }

    /// The changes the action `action` (one of `Self::INFO.actions`, its body already checked
    /// by `Resource::validate_action`) makes to the locked row `old`.
    fn action(
        conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        action: &str,
        old: &Record,
        body: &ActionBody,
    ) -> impl Future<Output = StoreResult<Record>> + Send {
        let _ = (conn, cmd, old, body);
        let reason = format!("{} has no action {action}", Self::INFO.name);
        async move { Err(StoreError::Rejected(reason)) }
    }
}

// ---------------------------------------------------------------- helpers for the hooks

pub(super) fn iso(ms: i64) -> String {
    format_time(ms)
}

pub(super) fn str_field<'r>(rec: &'r Record, name: &str) -> Option<&'r str> {
    rec.get(name).and_then(Value::as_str)
}

pub(super) fn int_field(rec: &Record, name: &str) -> i64 {
    rec.get(name).and_then(Value::as_i64).unwrap_or_default()
}

pub(super) fn f64_field(rec: &Record, name: &str) -> f64 {
    rec.get(name).and_then(Value::as_f64).unwrap_or_default()
}

/// A JSON object as a record (empty for anything else).
pub(super) fn record(v: Value) -> Record {
    v.as_object().cloned().unwrap_or_default()
}

/// The status an update moves to, if it changes `status`, checked against the machine.
pub(super) fn status_change<S: Copy>(
    old: &Record,
    changes: &Record,
    parse: fn(&str) -> Option<S>,
    check: fn(S, S) -> Option<String>,
) -> StoreResult<Option<S>> {
    let Some(to) = str_field(changes, "status") else {
        return Ok(None);
    };
    let from = str_field(old, "status")
        .and_then(parse)
        .ok_or_else(|| StoreError::rejected("stored status is unknown"))?;
    let to = parse(to).ok_or_else(|| StoreError::rejected("unknown status"))?;
    match check(from, to) {
        Some(e) => Err(StoreError::Rejected(e)),
        None => Ok(Some(to)),
    }
}

/// The `resolve` action of an entity with a status machine (alerts, resource conflicts, safety
/// events): the row moves to `resolved` once, stamped with who and when, and `body.note` goes
/// to `note_column`. Any other action, or a status that cannot become `resolved`, is refused.
pub(super) fn resolve<R: StoreRules, S: atlasmesh_core::domain::status::Status>(
    cmd: &CommandCtx<'_>,
    action: &str,
    old: &Record,
    body: &ActionBody,
    resolved: S,
    note_column: &str,
) -> StoreResult<Record> {
    let name = R::INFO.name;
    if action != "resolve" {
        return Err(StoreError::Rejected(format!(
            "{name} has no action {action}"
        )));
    }
    let status = str_field(old, "status").unwrap_or_default();
    match S::parse(status).map(|s| s.transition_error(resolved)) {
        Some(None) => {
            let mut rec = Record::new();
            rec.insert("status".into(), Value::from("resolved"));
            rec.insert("resolved_at".into(), Value::from(iso(cmd.issued_at_ms)));
            rec.insert("resolved_by".into(), Value::from(cmd.actor));
            rec.insert(note_column.into(), body.note.clone().into());
            Ok(rec)
        }
        Some(Some(e)) => Err(StoreError::Rejected(format!("{name} {e}"))),
        None => Err(StoreError::Rejected(format!(
            "{name} has unknown status {status}"
        ))),
    }
}
