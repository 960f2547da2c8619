//! The command-driven domain of the API: one [`Resource`] per entity (its wire types, table,
//! collection path, scope, operations, actions and references) and the pure rules the command
//! worker enforces (beside each entity in its area file; status machines in [`status`]).
//!
//! A resource is data, not code: the generic store (`atlasmesh_sinks::store`) and the generic
//! HTTP layer (`atlasmesh_query_api::resources`) read [`ResourceInfo`] and the associated types,
//! so adding an entity is its types, its table and one line in [`for_each_resource!`](crate::for_each_resource).

pub mod alerting;
pub mod analytics;
pub mod coordination;
pub mod missions;
pub mod optimization;
pub mod performance;
pub mod resources;
pub mod status;
pub mod validate;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Role;

pub use validate::{Check, Fields, Validate};

/// Whose rows a table holds, which decides the scope predicate of every statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// Rows belong to the fleet in `fleet_id`.
    Fleet,
    /// Rows belong to the fleet in `fleet_id` (the owner, who alone may change them) and are
    /// visible read-only to the fleet named in this column (the target).
    SharedWith(&'static str),
    /// Rows belong to the federation named in this column (`id` for the federations table);
    /// callers with that federation in scope may change them, member fleets may read them.
    Federation(&'static str),
    /// Messages between member fleets of a federation: sent by the fleet in `fleet_id` (who
    /// creates them) to the fleet in `target` (who alone may act on them, e.g. acknowledge);
    /// both read them, and so do callers with the `federation` in scope. Every fleet involved
    /// must be a member of the federation; a caller that is not is refused with 403.
    Correspondence {
        target: &'static str,
        federation: &'static str,
    },
}

/// Which writes a resource accepts (list and get always exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ops {
    pub create: bool,
    pub update: bool,
    pub delete: bool,
}

impl Ops {
    pub const CRUD: Ops = Ops {
        create: true,
        update: true,
        delete: true,
    };
    pub const CREATE: Ops = Ops {
        create: true,
        update: false,
        delete: false,
    };
    pub const CREATE_DELETE: Ops = Ops {
        create: true,
        update: false,
        delete: true,
    };
}

/// `GET <path>/<segment>/{value}`: the collection filtered by one column (e.g. `by-fleet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    pub segment: &'static str,
    pub column: &'static str,
}

pub const BY_FLEET: Lookup = Lookup {
    segment: "by-fleet",
    column: "fleet_id",
};

/// A body field naming another entity, which must exist and be in the caller's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    pub field: &'static str,
    /// [`ResourceInfo::name`] of the referenced resource.
    pub target: &'static str,
    /// Whether the referenced entity must belong to the same fleet (`fleet_id`) as this one.
    pub same_fleet: bool,
}

/// An operation on one entity besides update and delete: `POST <path>/{id}/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub name: &'static str,
    pub summary: &'static str,
}

/// Everything about a resource that is not a type.
#[derive(Debug, Clone, Copy)]
pub struct ResourceInfo {
    /// Singular, snake_case: the prefix of command kinds (`benchmark.create`) and the entity
    /// type of the audit log.
    pub name: &'static str,
    /// Plural words for documentation (`benchmarks`).
    pub plural: &'static str,
    /// The PostgreSQL table (a constant, never input).
    pub table: &'static str,
    /// The collection path, e.g. `/api/v1/fleet-performance/benchmarks`.
    pub path: &'static str,
    /// The OpenAPI tag.
    pub tag: &'static str,
    pub scope: ScopeKind,
    pub ops: Ops,
    pub actions: &'static [Action],
    pub lookups: &'static [Lookup],
    pub references: &'static [Reference],
    /// `GET <path>/{column}` lists the rows with this column instead of reading one entity
    /// (the seed specs' `GET …/scores/{fleet_id}`, `GET …/utilization/{pool_id}`); the entity
    /// by id, and its writes, are then at `<path>/by-id/{id}` ([`ResourceInfo::entity_route`]).
    pub item_key: Option<&'static str>,
    /// Also served under its parent entity (`…/federations/{id}/members`, `…/runs/{id}/results`).
    pub nested: Option<Nested>,
    /// Another path where `POST` creates one (the seed specs' `POST …/fleet-performance/metrics`,
    /// whose `GET` is the stream's window metrics).
    pub create_also_at: Option<&'static str>,
    /// Role needed for `DELETE` (writes need operator, reads viewer).
    pub delete_role: Role,
}

/// The routes of a child resource under its parent entity, `<parent path>/{id}/<segment>`:
/// `GET` lists the children whose `column` is the parent id, `POST` creates one with `column`
/// taken from the path, and with `key`, `DELETE <…>/<segment>/{key}` deletes the child of the
/// parent whose `key` column has that value (a federation's member by fleet id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nested {
    /// [`ResourceInfo::name`] of the parent resource (declared earlier in the registry).
    pub parent: &'static str,
    /// The parent's collection path.
    pub parent_path: &'static str,
    pub segment: &'static str,
    /// The child's column holding the parent id.
    pub column: &'static str,
    pub key: Option<&'static str>,
}

impl Nested {
    /// `<parent path>/{id}/<segment>` (an axum / OpenAPI path template).
    pub fn collection_route(&self) -> String {
        format!("{}/{{id}}/{}", self.parent_path, self.segment)
    }

    /// `<parent path>/{id}/<segment>/{key column}`, when there is a key.
    pub fn member_route(&self) -> Option<String> {
        self.key
            .map(|k| format!("{}/{{{k}}}", self.collection_route()))
    }
}

impl ResourceInfo {
    /// The path template of one entity, with `{id}`: `<path>/{id}`, or `<path>/by-id/{id}`
    /// when `<path>/{…}` is the [`item_key`](ResourceInfo::item_key) lookup.
    pub fn entity_route(&self) -> String {
        match self.item_key {
            None => format!("{}/{{id}}", self.path),
            Some(_) => format!("{}/by-id/{{id}}", self.path),
        }
    }

    /// The path of the entity `id` (see [`ResourceInfo::entity_route`]).
    pub fn entity_path(&self, id: &str) -> String {
        self.entity_route().replace("{id}", id)
    }

    /// The column that holds the owning scope (fleet or federation).
    pub fn scope_column(&self) -> &'static str {
        match self.scope {
            ScopeKind::Fleet | ScopeKind::SharedWith(_) | ScopeKind::Correspondence { .. } => {
                "fleet_id"
            }
            ScopeKind::Federation(col) => col,
        }
    }

    /// Whether `action` is one of this resource's actions.
    pub fn action(&self, name: &str) -> Option<&'static Action> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// The column of a filter given by a caller (`fleet_id`, a lookup column), if allowed.
    pub fn filter_column(&self, name: &str) -> Option<&'static str> {
        self.lookups
            .iter()
            .find(|l| l.column == name)
            .map(|l| l.column)
    }
}

/// Payload of an action (`resolve`, `start`, `complete`); which fields an action needs is
/// checked by [`Resource::validate_action`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Free text recorded with the action (e.g. how an alert or conflict was resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `complete` of a mission execution: `completed`, `failed` or `aborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl Validate for ActionBody {
    /// Shape only; what an action needs is [`Resource::validate_action`].
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_text("note", self.note.as_deref(), 2000);
        c.finish()
    }
}

/// Update type of resources that cannot be updated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NoUpdate {}

impl Validate for NoUpdate {
    fn validate(&self) -> Result<(), Fields> {
        Ok(())
    }
}

/// One entity type. Implementations are declarations only: the types and [`ResourceInfo`].
pub trait Resource: Send + Sync + 'static {
    const INFO: ResourceInfo;
    /// The body of a create: every client-set field, including the owning `fleet_id` (or
    /// federation). Unknown fields are refused.
    type Create: Validate + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The body of an update: the changeable fields, each optional (absent = unchanged).
    type Update: Validate + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// A stored row as the API returns it (the table's columns).
    type View: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// How many entities of this resource a full example set holds (2 where another resource
    /// references two of them, like a dependency between two executions).
    const EXAMPLE_COUNT: usize = 1;

    /// A valid create body for `fleet_id`, with references taken from `ids` (resource name →
    /// ids of existing entities, in creation order); see [`catalog`].
    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value;

    /// Checks an action's body (defaults: no fields needed besides an optional note).
    fn validate_action(_action: &str, body: &ActionBody) -> Result<(), Fields> {
        let mut c = Check::new();
        if body.outcome.is_some() {
            c.fail("outcome", "not used by this action");
        }
        c.opt_text("note", body.note.as_deref(), 2000);
        c.finish()
    }
}

/// Calls `$m! { Type, Type, ... }` with every resource, parents before children (an entity's
/// references come earlier in the list). The single registry of the domain.
#[macro_export]
macro_rules! for_each_resource {
    ($m:ident) => {
        $m! {
            $crate::domain::performance::Benchmark,
            $crate::domain::performance::Score,
            $crate::domain::performance::PerformanceMetric,
            $crate::domain::performance::Report,
            $crate::domain::performance::Alert,
            $crate::domain::performance::Trend,
            $crate::domain::resources::Pool,
            $crate::domain::resources::Allocation,
            $crate::domain::resources::Request,
            $crate::domain::resources::Utilization,
            $crate::domain::resources::Plan,
            $crate::domain::resources::Conflict,
            $crate::domain::coordination::Federation,
            $crate::domain::coordination::Member,
            $crate::domain::coordination::Share,
            $crate::domain::coordination::FederationMetric,
            $crate::domain::coordination::Communication,
            $crate::domain::optimization::ServiceZone,
            $crate::domain::optimization::Run,
            $crate::domain::optimization::Rebalancing,
            $crate::domain::optimization::RunResult,
            $crate::domain::optimization::Recommendation,
            $crate::domain::optimization::OptimizationMetric,
            $crate::domain::missions::Template,
            $crate::domain::missions::Execution,
            $crate::domain::missions::Dependency,
            $crate::domain::missions::MissionLog,
            $crate::domain::missions::MissionMetric,
            $crate::domain::missions::SafetyEvent,
            $crate::domain::alerting::AlertRuleResource,
            $crate::domain::alerting::AlertInstance,
            $crate::domain::analytics::HealthScore,
            $crate::domain::analytics::EfficiencyMetric,
            $crate::domain::analytics::Prediction,
            $crate::domain::analytics::CapacityMetric,
            $crate::domain::analytics::AnalyticsTrend,
            $crate::domain::analytics::AnalyticsReport,
        }
    };
}

/// Ids of existing entities by resource name, in creation order (see [`catalog`]).
pub type Ids = BTreeMap<&'static str, Vec<String>>;

/// The `n`th id of `name` in `ids` (empty when missing, which fails validation).
pub fn id_of(ids: &Ids, name: &str, n: usize) -> String {
    ids.get(name)
        .and_then(|v| v.get(n))
        .cloned()
        .unwrap_or_default()
}

/// One resource of the [`catalog`].
#[derive(Clone, Copy)]
pub struct CatalogEntry {
    pub info: &'static ResourceInfo,
    /// See [`Resource::EXAMPLE_COUNT`].
    pub example_count: usize,
    /// See [`Resource::example`].
    pub example: fn(&str, &Ids) -> serde_json::Value,
}

impl std::fmt::Debug for CatalogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogEntry")
            .field("name", &self.info.name)
            .field("path", &self.info.path)
            .finish()
    }
}

/// Every resource, parents before children. Creating `example_count` examples of each in this
/// order, appending each new id to `ids` under its resource name, yields valid bodies only.
pub fn catalog() -> Vec<CatalogEntry> {
    macro_rules! entries {
        ($($r:ty),* $(,)?) => {
            vec![$(CatalogEntry {
                info: &<$r as Resource>::INFO,
                example_count: <$r as Resource>::EXAMPLE_COUNT,
                example: <$r as Resource>::example,
            }),*]
        };
    }
    for_each_resource!(entries)
}

/// The resource called `name`.
pub fn info(name: &str) -> Option<&'static ResourceInfo> {
    catalog()
        .into_iter()
        .find(|e| e.info.name == name)
        .map(|e| e.info)
}

/// Splits a command kind `<resource>.<operation>`.
pub fn split_kind(kind: &str) -> Option<(&str, &str)> {
    let (r, op) = kind.split_once('.')?;
    (!r.is_empty() && !op.is_empty()).then_some((r, op))
}

/// A validated list request (the store turns it into one SQL statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Equality filters on allowed columns ([`ResourceInfo::filter_column`]).
    pub filters: Vec<(&'static str, String)>,
    /// `created_at >= from`.
    pub from_ms: Option<i64>,
    /// `created_at < to`.
    pub to_ms: Option<i64>,
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            filters: Vec::new(),
            from_ms: None,
            to_ms: None,
            limit: 100,
            after: None,
        }
    }
}

/// Position after the last row of a page in the stable order `(created_at, id)`. Clients see
/// it only as an opaque string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` in epoch microseconds.
    pub created_us: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let raw = format!("{}.{}", self.created_us, self.id);
        raw.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        if !s.len().is_multiple_of(2) || s.len() > 2048 {
            return None;
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let raw = String::from_utf8(bytes).ok()?;
        let (t, id) = raw.split_once('.')?;
        Some(Cursor {
            created_us: t.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            created_us: 1_700_000_000_123_456,
            id: "a.b-c".into(),
        };
        let s = c.encode();
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(Cursor::decode(&s), Some(c));
        assert_eq!(Cursor::decode("zz"), None);
        assert_eq!(Cursor::decode("313233"), None, "no separator");
        assert_eq!(Cursor::decode("é"), None);
    }

    #[test]
    fn kinds_split() {
        assert_eq!(split_kind("alert.resolve"), Some(("alert", "resolve")));
        assert_eq!(split_kind("alert"), None);
        assert_eq!(split_kind(".create"), None);
    }

    #[test]
    fn catalog_is_consistent() {
        let entries = catalog();
        let mut names = BTreeSet::new();
        let mut paths = BTreeSet::new();
        let mut tables = BTreeSet::new();
        let mut ids = Ids::new();
        for e in &entries {
            let i = e.info;
            assert!(names.insert(i.name), "duplicate name {}", i.name);
            assert!(paths.insert(i.path), "duplicate path {}", i.path);
            assert!(tables.insert(i.table), "duplicate table {}", i.table);
            assert!(i.path.starts_with("/api/v1/"), "{}", i.path);
            assert!(
                i.table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                i.table
            );
            for r in i.references {
                // Parents come first, so examples can be created in catalog order.
                assert!(
                    ids.contains_key(r.target),
                    "{} references {} declared later",
                    i.name,
                    r.target
                );
            }
            let ex = (e.example)("fleet-a", &ids);
            assert!(ex.is_object(), "{}", i.name);
            ids.entry(i.name).or_default().push(format!("{}-1", i.name));
        }
        for e in &entries {
            let i = e.info;
            if let Some(col) = i.item_key {
                // `<path>/{id}/<action>` would clash with `<path>/{col}`.
                assert!(i.actions.is_empty(), "{}", i.name);
                assert!(
                    i.filter_column(col).is_some(),
                    "{}: {col} is no lookup",
                    i.name
                );
            }
            if let Some(n) = i.nested {
                let parent = info(n.parent).unwrap_or_else(|| panic!("{}", n.parent));
                assert_eq!(parent.path, n.parent_path, "{}", i.name);
                assert!(parent.item_key.is_none(), "{}", i.name);
                assert!(i.filter_column(n.column).is_some(), "{}", i.name);
                if let Some(k) = n.key {
                    assert!(i.filter_column(k).is_some(), "{}", i.name);
                }
            }
        }
        assert_eq!(info("pool").map(|i| i.table), Some("resource_pools"));
        assert!(info("nope").is_none());
    }

    #[test]
    fn examples_are_valid_creates_and_round_trip() {
        macro_rules! check {
            ($($r:ty),* $(,)?) => {{
                let mut ids = Ids::new();
                $({
                    let name = <$r as Resource>::INFO.name;
                    for n in 0..<$r as Resource>::EXAMPLE_COUNT {
                        let ex = <$r as Resource>::example("fleet-a", &ids);
                        let c: <$r as Resource>::Create = serde_json::from_value(ex.clone())
                            .unwrap_or_else(|e| panic!("{name}: example does not parse: {e}"));
                        c.validate().unwrap_or_else(|f| panic!("{name}: example invalid: {f:?}"));
                        assert_eq!(serde_json::to_value(&c).unwrap(), ex, "{name}: example round-trips");
                        ids.entry(name).or_default().push(format!("{name}-{n}"));
                    }
                })*
            }};
        }
        for_each_resource!(check);
    }
}
