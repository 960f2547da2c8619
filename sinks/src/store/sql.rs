//! SQL building blocks of the generic store: the scope predicate, row locks, inserts and
//! updates through `jsonb_populate_record`, keyset pages. Table and column names come only
//! from [`ResourceInfo`] constants and from the keys of serialized domain structs (checked to
//! be plain identifiers); every value is a bind.

use atlasmesh_core::domain::{Cursor, ListQuery, ResourceInfo, ScopeKind};
use atlasmesh_core::Scope;
use serde_json::{Map, Value};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

/// A row as JSON (`to_jsonb(t)`).
pub type Record = Map<String, Value>;

/// Whether `s` is safe to splice into SQL as a column name.
pub(crate) fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `timestamptz` of epoch milliseconds, as SQL around the next bind.
const EPOCH_MS: &str = "(timestamptz 'epoch' + interval '1 millisecond' * ";

/// Appends the scope predicate of `info` for the rows aliased `t`. Reads also see rows shared
/// with a fleet in scope (target fleet) and federations a fleet in scope is a member of;
/// writes need the owning fleet or federation.
pub(crate) fn push_scope(
    qb: &mut QueryBuilder<'_, Postgres>,
    info: &ResourceInfo,
    scope: &Scope,
    write: bool,
) {
    if scope.all {
        qb.push("TRUE");
        return;
    }
    match info.scope {
        ScopeKind::Fleet => {
            qb.push("t.fleet_id = ANY(")
                .push_bind(scope.fleets.clone())
                .push(")");
        }
        ScopeKind::SharedWith(target) => {
            qb.push("(t.fleet_id = ANY(")
                .push_bind(scope.fleets.clone())
                .push(")");
            if !write {
                qb.push(" OR t.")
                    .push(target)
                    .push(" = ANY(")
                    .push_bind(scope.fleets.clone())
                    .push(")");
            }
            qb.push(")");
        }
        ScopeKind::Correspondence { target, federation } => {
            // Only the recipient acts on a message; the sender, the recipient and the
            // federation's own callers read it.
            if write {
                qb.push("t.")
                    .push(target)
                    .push(" = ANY(")
                    .push_bind(scope.fleets.clone())
                    .push(")");
            } else {
                qb.push("(t.fleet_id = ANY(")
                    .push_bind(scope.fleets.clone())
                    .push(") OR t.")
                    .push(target)
                    .push(" = ANY(")
                    .push_bind(scope.fleets.clone())
                    .push(") OR t.")
                    .push(federation)
                    .push(" = ANY(")
                    .push_bind(scope.federations.clone())
                    .push("))");
            }
        }
        ScopeKind::Federation(col) => {
            qb.push("(t.")
                .push(col)
                .push(" = ANY(")
                .push_bind(scope.federations.clone())
                .push(")");
            if !write {
                qb.push(
                    " OR EXISTS (SELECT 1 FROM federation_members m WHERE m.federation_id = t.",
                )
                .push(col)
                .push(" AND m.fleet_id = ANY(")
                .push_bind(scope.fleets.clone())
                .push("))");
            }
            qb.push(")");
        }
    }
}

/// The row `id` of `info` if visible in `scope` (`write`: changeable), locked `FOR UPDATE`
/// when `lock`.
pub(crate) async fn fetch_row(
    conn: &mut PgConnection,
    info: &ResourceInfo,
    scope: &Scope,
    id: &str,
    write: bool,
    lock: bool,
) -> Result<Option<Record>, sqlx::Error> {
    let mut qb = QueryBuilder::new("SELECT to_jsonb(t) FROM ");
    qb.push(info.table)
        .push(" t WHERE t.id = ")
        .push_bind(id.to_string())
        .push(" AND ");
    push_scope(&mut qb, info, scope, write);
    if lock {
        qb.push(" FOR UPDATE");
    }
    let row: Option<Value> = qb.build_query_scalar().fetch_optional(&mut *conn).await?;
    Ok(row.and_then(|v| match v {
        Value::Object(m) => Some(m),
        _ => None,
    }))
}

/// Whether a row with this id exists at all (any scope).
pub(crate) async fn exists(
    conn: &mut PgConnection,
    table: &str,
    id: &str,
) -> Result<Option<Record>, sqlx::Error> {
    let mut qb = QueryBuilder::new("SELECT to_jsonb(t) FROM ");
    qb.push(table)
        .push(" t WHERE t.id = ")
        .push_bind(id.to_string());
    let row: Option<Value> = qb.build_query_scalar().fetch_optional(&mut *conn).await?;
    Ok(row.and_then(|v| v.as_object().cloned()))
}

fn checked_columns(rec: &Record) -> Result<Vec<&str>, sqlx::Error> {
    rec.keys()
        .map(|k| {
            if is_ident(k) && !matches!(k.as_str(), "id" | "created_at" | "updated_at") {
                Ok(k.as_str())
            } else {
                Err(sqlx::Error::Protocol(format!("refusing column name {k:?}")))
            }
        })
        .collect()
}

/// Inserts `rec` (column → value) as row `id`, created at `at_ms`. Columns not in `rec` take
/// their defaults.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    table: &str,
    id: &str,
    at_ms: i64,
    rec: &Record,
) -> Result<(), sqlx::Error> {
    let cols = checked_columns(rec)?;
    let mut qb = QueryBuilder::new("INSERT INTO ");
    qb.push(table).push(" (id, created_at, updated_at");
    for c in &cols {
        qb.push(", ").push(*c);
    }
    qb.push(") SELECT ").push_bind(id.to_string()).push(", ");
    qb.push(EPOCH_MS)
        .push_bind(at_ms)
        .push("), ")
        .push(EPOCH_MS)
        .push_bind(at_ms)
        .push(")");
    for c in &cols {
        qb.push(", r.").push(*c);
    }
    qb.push(" FROM jsonb_populate_record(NULL::")
        .push(table)
        .push(", ");
    qb.push_bind(Value::Object(rec.clone())).push(") r");
    qb.build().execute(&mut *conn).await?;
    Ok(())
}

/// Sets the columns of `changes` (and `updated_at = at_ms`) on row `id`.
pub(crate) async fn update(
    conn: &mut PgConnection,
    table: &str,
    id: &str,
    at_ms: i64,
    changes: &Record,
) -> Result<(), sqlx::Error> {
    let cols = checked_columns(changes)?;
    let mut qb = QueryBuilder::new("UPDATE ");
    qb.push(table).push(" t SET (updated_at");
    for c in &cols {
        qb.push(", ").push(*c);
    }
    qb.push(") = (SELECT GREATEST(t.updated_at, ")
        .push(EPOCH_MS)
        .push_bind(at_ms)
        .push("))");
    for c in &cols {
        qb.push(", r.").push(*c);
    }
    qb.push(" FROM jsonb_populate_record(NULL::")
        .push(table)
        .push(", ");
    qb.push_bind(Value::Object(changes.clone()))
        .push(") r) WHERE t.id = ")
        .push_bind(id.to_string());
    qb.build().execute(&mut *conn).await?;
    Ok(())
}

pub(crate) async fn delete(
    conn: &mut PgConnection,
    table: &str,
    id: &str,
) -> Result<(), sqlx::Error> {
    let mut qb = QueryBuilder::new("DELETE FROM ");
    qb.push(table)
        .push(" WHERE id = ")
        .push_bind(id.to_string());
    qb.build().execute(&mut *conn).await?;
    Ok(())
}

/// One keyset page in the order (created_at, id), scope filter included.
pub(crate) async fn page<'e, E>(
    exec: E,
    info: &ResourceInfo,
    scope: &Scope,
    q: &ListQuery,
) -> Result<(Vec<Value>, Option<String>), sqlx::Error>
where
    E: sqlx::PgExecutor<'e>,
{
    let mut qb = QueryBuilder::new(
        "SELECT to_jsonb(t) AS row, (EXTRACT(EPOCH FROM t.created_at) * 1000000)::bigint AS created_us FROM ",
    );
    qb.push(info.table).push(" t WHERE ");
    push_scope(&mut qb, info, scope, false);
    for (col, value) in &q.filters {
        if !is_ident(col) || info.filter_column(col) != Some(*col) {
            return Err(sqlx::Error::Protocol(format!(
                "{} cannot be filtered by {col}",
                info.name
            )));
        }
        qb.push(" AND t.")
            .push(*col)
            .push(" = ")
            .push_bind(value.clone());
    }
    if let Some(ms) = q.from_ms {
        qb.push(" AND t.created_at >= ")
            .push(EPOCH_MS)
            .push_bind(ms)
            .push(")");
    }
    if let Some(ms) = q.to_ms {
        qb.push(" AND t.created_at < ")
            .push(EPOCH_MS)
            .push_bind(ms)
            .push(")");
    }
    if let Some(c) = &q.after {
        qb.push(" AND (t.created_at, t.id) > (timestamptz 'epoch' + interval '1 microsecond' * ")
            .push_bind(c.created_us)
            .push(", ")
            .push_bind(c.id.clone())
            .push(")");
    }
    let limit = i64::from(q.limit.max(1));
    qb.push(" ORDER BY t.created_at, t.id LIMIT ")
        .push_bind(limit + 1);
    let rows = qb.build().fetch_all(exec).await?;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for row in rows.iter().take(limit as usize) {
        let v: Value = row.try_get("row")?;
        let us: i64 = row.try_get("created_us")?;
        last = Some(Cursor {
            created_us: us,
            id: v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        });
        items.push(v);
    }
    let next = if rows.len() as i64 > limit {
        last.map(|c| c.encode())
    } else {
        None
    };
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_ident("fleet_id"));
        assert!(!is_ident("fleet_id; drop table x"));
        assert!(!is_ident("Fleet"));
        assert!(!is_ident(""));
    }

    #[test]
    fn scope_predicates() {
        use atlasmesh_core::domain::{performance::Benchmark, Resource};
        let sql = |info: &ResourceInfo, scope: &Scope, write| {
            let mut qb = QueryBuilder::<Postgres>::new("");
            push_scope(&mut qb, info, scope, write);
            qb.sql().to_string()
        };
        let fleets = Scope::fleets(["a"]);
        assert_eq!(
            sql(&Benchmark::INFO, &fleets, false),
            "t.fleet_id = ANY($1)"
        );
        assert_eq!(sql(&Benchmark::INFO, &Scope::all(), true), "TRUE");
        let share = atlasmesh_core::domain::coordination::Share::INFO;
        assert_eq!(
            sql(&share, &fleets, false),
            "(t.fleet_id = ANY($1) OR t.target_fleet_id = ANY($2))"
        );
        assert_eq!(sql(&share, &fleets, true), "(t.fleet_id = ANY($1))");
        let fed = atlasmesh_core::domain::coordination::Federation::INFO;
        assert!(sql(&fed, &fleets, false).contains("m.federation_id = t.id"));
        assert_eq!(sql(&fed, &fleets, true), "(t.id = ANY($1))");
    }
}
