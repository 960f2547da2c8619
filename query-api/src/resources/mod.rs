//! The generic resource layer of the API: every [`Resource`] of `atlasmesh_core::domain` gets
//! the same endpoints from [`resource_routes`], served by the generic handlers below, and the
//! same OpenAPI paths from [`openapi::document`].
//!
//! For a resource at `PATH` (see [`atlasmesh_core::domain::catalog`] for all of them):
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET PATH?fleet_id&<lookup column>&from&to&limit&cursor` | viewer | a page in the order (created_at, id) |
//! | `GET PATH/<lookup>/{value}` (e.g. `by-fleet/{fleet_id}`) | viewer | the same, filtered by one column |
//! | `GET PATH/{id}` | viewer | one entity (404 when not visible) |
//! | `GET PATH/{column}` | viewer | for resources with an `item_key` (scores, trends, reports, performance metrics: `{fleet_id}`; utilization: `{pool_id}`): the rows with that column, like `by-*`; the entity is then at `PATH/by-id/{id}` (and so are its writes) |
//! | `POST PATH[?wait=true]` | operator | create command (`<name>.create`) |
//! | `PATCH PATH/{id}[?wait=true]` | operator | update command (`<name>.update`), absent fields unchanged |
//! | `PUT PATH/{id}[?wait=true]` | operator | the same update command, replacing the mutable fields: each one every entity has is required (optional ones absent stay as they are) |
//! | `GET, POST PARENT/{id}/<segment>` | viewer, operator | children of a parent entity (`nested`): federation members, run results and recommendations; the parent id comes from the path (404 when the parent is not visible) |
//! | `POST <create_also_at>` | operator | the create command at a second path (`POST …/fleet-performance/metrics` creates a performance metric; `GET` there is the window metrics) |
//! | `DELETE PARENT/{id}/<segment>/{key}` | as DELETE | the child of the parent with that key (`…/federations/{id}/members/{fleet_id}`) |
//! | `DELETE PATH/{id}[?wait=true]` | admin (operator for allocations, requests, members, dependencies, shares) | delete command |
//! | `POST PATH/{id}/<action>[?wait=true]` | operator | action command (`<name>.<action>`), body [`ActionBody`] |
//!
//! Writes are validated here before a command is produced: malformed JSON → 400; unknown
//! fields, wrong types and invalid values → 422 with `fields`; a body fleet (or federation)
//! outside the caller's scope → 403; references that do not exist in scope → 422 naming the
//! field; an entity that is not visible → 404, visible but not changeable → 403. The command
//! worker re-checks all of it ([`atlasmesh_sinks::store::apply`]). Reads of a fleet outside the
//! scope: an entity → 404, a list filtered by that fleet → 403.

pub mod openapi;

use std::collections::BTreeMap;

use atlasmesh_core::clock::parse_instant;
use atlasmesh_core::domain::{
    self, ActionBody, Cursor, ListQuery, Nested, Page, Resource, ResourceInfo, ScopeKind, Validate,
};
use atlasmesh_core::Role;
use atlasmesh_sinks::store::{self, Access};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{delete as delete_route, get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::commands::{self, Submission, WaitQuery};
use crate::error::{ApiError, Error};
use crate::params::StrictQuery;
use crate::state::AppState;

/// Every resource with its name, path and valid example create bodies, in creation order: what
/// HTTP tests of the full command path iterate over.
pub use atlasmesh_core::domain::{catalog, CatalogEntry};

/// Default and maximum page size of resource lists (capped by `api.max_page_size`).
pub const DEFAULT_LIMIT: u32 = 100;

/// Every resource's routes.
pub fn router() -> Router<AppState> {
    let mut r = Router::new();
    macro_rules! add {
        ($($t:ty),* $(,)?) => { $( r = r.merge(resource_routes::<$t>()); )* };
    }
    atlasmesh_core::for_each_resource!(add);
    r
}

/// The routes of one resource (see the module docs).
pub fn resource_routes<R: Resource>() -> Router<AppState>
where
    R::Update: ToSchema,
    R::View: ToSchema,
{
    let i = &R::INFO;
    let mut collection: MethodRouter<AppState> = get(list::<R>);
    if i.ops.create {
        collection = collection.post(create::<R>);
    }
    let mut item: MethodRouter<AppState> = get(get_one::<R>);
    if i.ops.update {
        item = item.patch(update::<R>).put(replace::<R>);
    }
    if i.ops.delete {
        item = item.delete(delete::<R>);
    }
    let mut r = Router::new()
        .route(i.path, collection)
        .route(&i.entity_route(), item);
    let lookups = i
        .lookups
        .iter()
        .map(|l| (format!("{}/{}/{{value}}", i.path, l.segment), l.column))
        .chain(i.item_key.map(|col| (format!("{}/{{{col}}}", i.path), col)));
    for (route, column) in lookups {
        r = r.route(
            &route,
            get(
                move |state: State<AppState>,
                      caller: Caller,
                      Path(value): Path<String>,
                      q: Query<Vec<(String, String)>>| {
                    lookup::<R>(state, caller, column, value, q)
                },
            ),
        );
    }
    for a in i.actions {
        let name = a.name;
        r = r.route(
            &format!("{}/{}", i.entity_route(), a.name),
            post(
                move |state: State<AppState>,
                      caller: Caller,
                      Path(id): Path<String>,
                      wait: StrictQuery<WaitQuery>,
                      headers: HeaderMap,
                      body: JsonBody| {
                    act::<R>(state, caller, name, id, wait, headers, body)
                },
            ),
        );
    }
    if let Some(n) = i.nested {
        r = r.merge(nested_routes::<R>(n));
    }
    if let (Some(path), true) = (i.create_also_at, i.ops.create) {
        // Merged into the other endpoint's GET of this path by `crate::app`.
        r = r.route(path, post(create::<R>));
    }
    r
}

/// `PARENT/{id}/<segment>` (and `/{key}`) of a nested resource (see the module docs).
fn nested_routes<R: Resource>(n: Nested) -> Router<AppState> {
    let mut collection: MethodRouter<AppState> = get(
        move |state: State<AppState>,
              caller: Caller,
              Path(parent): Path<String>,
              q: Query<Vec<(String, String)>>| async move {
            caller.require(Role::Viewer)?;
            parent_visible(&state, &caller, n, &parent).await?;
            page::<R>(state, caller, Some((n.column, parent)), q).await
        },
    );
    if R::INFO.ops.create {
        collection = collection.post(
            move |state: State<AppState>,
                  caller: Caller,
                  Path(parent): Path<String>,
                  wait: StrictQuery<WaitQuery>,
                  headers: HeaderMap,
                  JsonBody(body): JsonBody| async move {
                caller.require(Role::Operator)?;
                parent_visible(&state, &caller, n, &parent).await?;
                let body = with_path_field(&body, n.column, &parent)?;
                create_from::<R>(&state, &caller, wait, &headers, &body).await
            },
        );
    }
    let mut r = Router::new().route(&n.collection_route(), collection);
    if let (Some(route), Some(key), true) = (n.member_route(), n.key, R::INFO.ops.delete) {
        r = r.route(
            &route,
            delete_route(
                move |state: State<AppState>,
                      caller: Caller,
                      Path((parent, value)): Path<(String, String)>,
                      wait: StrictQuery<WaitQuery>,
                      headers: HeaderMap| async move {
                    caller.require(R::INFO.delete_role)?;
                    parent_visible(&state, &caller, n, &parent).await?;
                    let q = ListQuery {
                        filters: vec![(n.column, parent.clone()), (key, value.clone())],
                        limit: 1,
                        ..ListQuery::default()
                    };
                    let found = store::list::<R>(&state.postgres, &caller.scope, &q)
                        .await
                        .map_err(internal)?;
                    let id = found
                        .items
                        .first()
                        .and_then(|v| serde_json::to_value(v).ok())
                        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
                        .ok_or_else(|| {
                            ApiError::not_found(format!(
                                "no {} with {key} {value} in {} {parent}",
                                R::INFO.name,
                                n.parent
                            ))
                        })?;
                    delete_id::<R>(&state, &caller, id, wait, &headers).await
                },
            ),
        );
    }
    r
}

/// 404 unless the parent entity of a nested route is visible to the caller.
async fn parent_visible(
    state: &AppState,
    caller: &Caller,
    n: Nested,
    id: &str,
) -> Result<(), ApiError> {
    let parent = domain::info(n.parent)
        .ok_or_else(|| ApiError::Internal(Error::Internal(format!("no resource {}", n.parent))))?;
    match store::access(&mut *conn(state).await?, parent, &caller.scope, id)
        .await
        .map_err(internal)?
    {
        Access::Hidden => Err(ApiError::not_found(format!("no {} {id}", parent.name))),
        _ => Ok(()),
    }
}

/// The body with `field` set to the id from the path: absent → added, the same → kept,
/// another value → 422.
fn with_path_field(body: &[u8], field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    let mut v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?
    };
    let Some(m) = v.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    match m.get(field) {
        None => {
            m.insert(field.to_string(), Value::String(value.to_string()));
        }
        Some(Value::String(s)) if s == value => {}
        Some(_) => {
            return Err(ApiError::unprocessable(BTreeMap::from([(
                field.to_string(),
                format!("must be absent or {value:?}, the id in the path"),
            )])))
        }
    }
    Ok(v.to_string().into_bytes())
}

fn internal(e: sqlx::Error) -> ApiError {
    ApiError::from(Error::from(e))
}

// ---------------------------------------------------------------- reads

/// Turns list parameters into a [`ListQuery`]; `fixed` is the filter of a lookup route.
pub fn list_query(
    info: &ResourceInfo,
    caller: &Caller,
    params: &[(String, String)],
    fixed: Option<(&'static str, String)>,
    max_page_size: u32,
) -> Result<ListQuery, ApiError> {
    let mut bad = BTreeMap::new();
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT.min(max_page_size.max(1)),
        ..ListQuery::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    if let Some((col, v)) = fixed {
        seen.insert(col.to_string());
        q.filters.push((col, v));
    }
    for (k, v) in params {
        if !seen.insert(k.clone()) {
            bad.insert(k.clone(), "given more than once".to_string());
            continue;
        }
        match k.as_str() {
            "from" | "to" => match parse_instant(v) {
                Some(ms) if k == "from" => q.from_ms = Some(ms),
                Some(ms) => q.to_ms = Some(ms),
                None => {
                    bad.insert(k.clone(), "must be RFC 3339 or epoch milliseconds".into());
                }
            },
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=max_page_size.max(1)).contains(&n) => q.limit = n,
                _ => {
                    bad.insert(
                        k.clone(),
                        format!("must be an integer in 1..={}", max_page_size.max(1)),
                    );
                }
            },
            "cursor" => match Cursor::decode(v) {
                Some(c) => q.after = Some(c),
                None => {
                    bad.insert(k.clone(), "is not a cursor of this API".into());
                }
            },
            other => match info.filter_column(other) {
                Some(col) if !v.is_empty() => q.filters.push((col, v.clone())),
                Some(_) => {
                    bad.insert(k.clone(), "must not be empty".into());
                }
                None => {
                    bad.insert(k.clone(), "unknown parameter".into());
                }
            },
        }
    }
    if let (Some(f), Some(t)) = (q.from_ms, q.to_ms) {
        if f >= t {
            bad.insert("from".into(), "must be before `to`".into());
        }
    }
    if !bad.is_empty() {
        return Err(ApiError::invalid_fields(bad));
    }
    // Filtering by a fleet outside the scope is refused rather than answered empty.
    for (col, v) in &q.filters {
        let fleet_col = *col == "fleet_id"
            || matches!(info.scope, ScopeKind::SharedWith(t) | ScopeKind::Correspondence { target: t, .. } if t == *col);
        if fleet_col && !caller.scope.allows_fleet(v) {
            return Err(ApiError::forbidden(format!(
                "fleet {v} is not in your scope"
            )));
        }
    }
    Ok(q)
}

async fn list<R: Resource>(
    state: State<AppState>,
    caller: Caller,
    params: Query<Vec<(String, String)>>,
) -> Result<Json<Page<R::View>>, ApiError> {
    page::<R>(state, caller, None, params).await
}

async fn lookup<R: Resource>(
    state: State<AppState>,
    caller: Caller,
    column: &'static str,
    value: String,
    params: Query<Vec<(String, String)>>,
) -> Result<Json<Page<R::View>>, ApiError> {
    page::<R>(state, caller, Some((column, value)), params).await
}

/// One page of `R` visible to the caller; `fixed` is the filter of a lookup route.
async fn page<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    fixed: Option<(&'static str, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Page<R::View>>, ApiError> {
    caller.require(Role::Viewer)?;
    let q = list_query(
        &R::INFO,
        &caller,
        &params,
        fixed,
        state.config.api.max_page_size,
    )?;
    refuse_outsider(&state, &R::INFO, &caller, Concerning::List(&q)).await?;
    Ok(Json(
        store::list::<R>(&state.postgres, &caller.scope, &q)
            .await
            .map_err(internal)?,
    ))
}

async fn get_one<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<R::View>, ApiError> {
    caller.require(Role::Viewer)?;
    match store::get::<R>(&state.postgres, &caller.scope, &id)
        .await
        .map_err(internal)?
    {
        Some(v) => Ok(Json(v)),
        None => {
            refuse_outsider(&state, &R::INFO, &caller, Concerning::Row(&id)).await?;
            Err(ApiError::not_found(format!("no {} {id}", R::INFO.name)))
        }
    }
}

/// What [`refuse_outsider`] finds the federation of.
enum Concerning<'a> {
    /// A list with these filters (the federation or conversation it names).
    List(&'a ListQuery),
    /// One row.
    Row(&'a str),
}

/// 403 when the federation a request concerns is one the caller takes no part in
/// ([`ScopeKind::Correspondence`] resources; others pass without a query).
async fn refuse_outsider(
    state: &AppState,
    info: &ResourceInfo,
    caller: &Caller,
    what: Concerning<'_>,
) -> Result<(), ApiError> {
    if !matches!(info.scope, ScopeKind::Correspondence { .. }) || caller.scope.all {
        return Ok(());
    }
    let mut c = conn(state).await?;
    let fed = match what {
        Concerning::List(q) => store::listed_federation(&mut c, info, q).await,
        Concerning::Row(id) => store::federation_of(&mut c, info, id).await,
    }
    .map_err(internal)?;
    let Some(fed) = fed else {
        return Ok(());
    };
    match store::outsider(&mut c, info, &caller.scope, &fed)
        .await
        .map_err(internal)?
    {
        Some(reason) => Err(ApiError::forbidden(reason)),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------- writes

/// Parses a JSON body into `T`: malformed JSON → 400, shape errors → 422, invalid values → 422.
pub fn parse_body<T: serde::de::DeserializeOwned + serde::Serialize + Validate>(
    body: &[u8],
) -> Result<(T, Value), ApiError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    if let Some(field) = atlasmesh_core::domain::validate::json_nul_field(&v) {
        return Err(ApiError::unprocessable(BTreeMap::from([(
            field,
            "must not contain a NUL character (U+0000)".to_string(),
        )])));
    }
    let t: T = serde_json::from_value(v)
        .map_err(|e| ApiError::unprocessable(shape_error(&e.to_string())))?;
    t.validate().map_err(ApiError::unprocessable)?;
    // The normalized body (as the command carries it).
    let normalized =
        serde_json::to_value(&t).map_err(|e| ApiError::Internal(Error::Internal(e.to_string())))?;
    Ok((t, normalized))
}

/// A serde message as `fields`, naming the field where serde does.
fn shape_error(msg: &str) -> BTreeMap<String, String> {
    let quoted = |marker: &str| -> Option<String> {
        let rest = &msg[msg.find(marker)? + marker.len()..];
        Some(rest[..rest.find('`')?].to_string())
    };
    let field = quoted("unknown field `")
        .or_else(|| quoted("missing field `"))
        .unwrap_or_else(|| "body".into());
    let reason = if msg.starts_with("unknown field") {
        "unknown field".to_string()
    } else if msg.starts_with("missing field") {
        "required".to_string()
    } else {
        msg.to_string()
    };
    BTreeMap::from([(field, reason)])
}

async fn conn(state: &AppState) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, ApiError> {
    state.postgres.acquire().await.map_err(internal)
}

async fn create<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    wait: StrictQuery<WaitQuery>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    create_from::<R>(&state, &caller, wait, &headers, &body).await
}

/// The create command of `body` (shared by `POST PATH` and nested `POST PARENT/{id}/<segment>`).
async fn create_from<R: Resource>(
    state: &AppState,
    caller: &Caller,
    wait: StrictQuery<WaitQuery>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let wait = wait.0.parse()?;
    let info = &R::INFO;
    let (_, payload) = parse_body::<R::Create>(body)?;
    let rec = payload.as_object().cloned().unwrap_or_default();
    if let Some(reason) = store::scope_violation(info, &caller.scope, &rec) {
        return Err(ApiError::forbidden(reason));
    }
    if matches!(info.scope, ScopeKind::Correspondence { .. }) {
        if let Some(reason) = store::sender_outside(&mut *conn(state).await?, info, &rec)
            .await
            .map_err(internal)?
        {
            return Err(ApiError::forbidden(reason));
        }
    }
    let bad = store::check_references(&mut *conn(state).await?, info, &caller.scope, &rec)
        .await
        .map_err(internal)?;
    if !bad.is_empty() {
        return Err(ApiError::unprocessable(bad));
    }
    // Commands on one parent (e.g. allocations of a pool) share a Kafka key, so they apply in
    // the order they were submitted. A create without a parent is about an entity nothing can
    // refer to yet: its own new key, so such creates spread over partitions and worker lanes.
    let aggregate_id = info
        .references
        .iter()
        .find_map(|r| rec.get(r.field).and_then(Value::as_str))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let fleet_id = rec
        .get("fleet_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    commands::submit(
        state,
        caller,
        Submission {
            kind: format!("{}.create", info.name),
            aggregate_id,
            fleet_id,
            payload,
            idempotency_key: commands::idempotency_key(headers)?,
            wait,
        },
    )
    .await
}

/// The entity to change: 404 when not visible, 403 when visible but not changeable.
async fn writable(
    state: &AppState,
    info: &ResourceInfo,
    caller: &Caller,
    id: &str,
) -> Result<Value, ApiError> {
    match store::access(&mut *conn(state).await?, info, &caller.scope, id)
        .await
        .map_err(internal)?
    {
        Access::Writable(row) => Ok(Value::Object(row)),
        Access::ReadOnly(_) => Err(ApiError::forbidden(format!(
            "{} {id} is read-only for you",
            info.name
        ))),
        Access::Hidden => {
            refuse_outsider(state, info, caller, Concerning::Row(id)).await?;
            Err(ApiError::not_found(format!("no {} {id}", info.name)))
        }
    }
}

/// The command kind and entity of a write on an existing entity.
struct Target<'a> {
    info: &'a ResourceInfo,
    op: &'a str,
    id: String,
    /// The entity as stored (its fleet labels the command).
    row: Value,
}

async fn submit_on(
    state: &AppState,
    caller: &Caller,
    target: Target<'_>,
    changes: Value,
    headers: &HeaderMap,
    wait: bool,
) -> Result<Response, ApiError> {
    let Target { info, op, id, row } = target;
    let mut payload = changes.as_object().cloned().unwrap_or_default();
    payload.insert("id".into(), Value::String(id.clone()));
    commands::submit(
        state,
        caller,
        Submission {
            kind: format!("{}.{op}", info.name),
            aggregate_id: id,
            fleet_id: row
                .get("fleet_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            payload: Value::Object(payload),
            idempotency_key: commands::idempotency_key(headers)?,
            wait,
        },
    )
    .await
}

/// `PATCH PATH/{id}`: the fields given change, the others stay.
async fn update<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    wait: StrictQuery<WaitQuery>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    update_from::<R>(&state, &caller, id, wait, &headers, &body, &[]).await
}

/// `PUT PATH/{id}`: replaces the mutable fields, so each that every entity has is required
/// ([`openapi::replace_required`]); otherwise the same `<name>.update` command as PATCH.
async fn replace<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    wait: StrictQuery<WaitQuery>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError>
where
    R::Update: ToSchema,
    R::View: ToSchema,
{
    let fields = openapi::replace_required::<R>();
    update_from::<R>(&state, &caller, id, wait, &headers, &body, &fields).await
}

/// The update command of `body`; `required` are the fields it must give (PUT).
async fn update_from<R: Resource>(
    state: &AppState,
    caller: &Caller,
    id: String,
    wait: StrictQuery<WaitQuery>,
    headers: &HeaderMap,
    body: &[u8],
    required: &[String],
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let wait = wait.0.parse()?;
    let (_, changes) = parse_body::<R::Update>(body)?;
    let missing: BTreeMap<String, String> = required
        .iter()
        .filter(|f| changes.get(f.as_str()).is_none_or(Value::is_null))
        .map(|f| {
            (
                f.clone(),
                "required: PUT replaces the mutable fields (PATCH changes some)".to_string(),
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::unprocessable(missing));
    }
    let row = writable(state, &R::INFO, caller, &id).await?;
    submit_on(
        state,
        caller,
        Target {
            info: &R::INFO,
            op: "update",
            id,
            row,
        },
        changes,
        headers,
        wait,
    )
    .await
}

async fn delete<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    wait: StrictQuery<WaitQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete_id::<R>(&state, &caller, id, wait, &headers).await
}

async fn delete_id<R: Resource>(
    state: &AppState,
    caller: &Caller,
    id: String,
    wait: StrictQuery<WaitQuery>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(R::INFO.delete_role)?;
    let wait = wait.0.parse()?;
    let row = writable(state, &R::INFO, caller, &id).await?;
    submit_on(
        state,
        caller,
        Target {
            info: &R::INFO,
            op: "delete",
            id,
            row,
        },
        Value::Null,
        headers,
        wait,
    )
    .await
}

async fn act<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    action: &'static str,
    id: String,
    wait: StrictQuery<WaitQuery>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let wait = wait.0.parse()?;
    let (b, normalized) = parse_body::<ActionBody>(&body)?;
    R::validate_action(action, &b).map_err(ApiError::unprocessable)?;
    let row = writable(&state, &R::INFO, &caller, &id).await?;
    submit_on(
        &state,
        &caller,
        Target {
            info: &R::INFO,
            op: action,
            id,
            row,
        },
        normalized,
        &headers,
        wait,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlasmesh_core::{domain, Scope};

    fn caller(scope: Scope) -> Caller {
        Caller {
            subject: "t".into(),
            kind: crate::auth::CallerKind::ApiKey,
            role: Role::Viewer,
            scope,
        }
    }

    #[test]
    fn every_route_registers_without_overlap() {
        // axum panics on conflicting routes when they are added.
        let _ = router();
    }

    #[test]
    fn list_parameters() {
        let info = &domain::resources::Allocation::INFO;
        let c = caller(Scope::fleets(["f1"]));
        let p = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let q = list_query(
            info,
            &c,
            &p(&[("fleet_id", "f1"), ("pool_id", "p"), ("limit", "5")]),
            None,
            1000,
        )
        .unwrap();
        assert_eq!(
            q.filters,
            vec![("fleet_id", "f1".to_string()), ("pool_id", "p".to_string())]
        );
        assert_eq!(q.limit, 5);
        let q = list_query(
            info,
            &c,
            &p(&[("from", "2024-05-01T00:00:00Z"), ("to", "1714600000000")]),
            None,
            1000,
        )
        .unwrap();
        assert_eq!(
            (q.from_ms, q.to_ms),
            (Some(1_714_521_600_000), Some(1_714_600_000_000))
        );
        let bad = |v: &[(&str, &str)]| match list_query(info, &c, &p(v), None, 1000) {
            Err(ApiError::BadRequest { fields, .. }) => fields.keys().cloned().collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bad(&[("status", "x")]),
            ["status"],
            "not a filter of allocations"
        );
        assert_eq!(
            bad(&[("limit", "0"), ("cursor", "zz")]),
            ["cursor", "limit"]
        );
        assert_eq!(bad(&[("pool_id", "a"), ("pool_id", "b")]), ["pool_id"]);
        assert_eq!(
            bad(&[
                ("from", "2024-05-02T00:00:00Z"),
                ("to", "2024-05-01T00:00:00Z")
            ]),
            ["from"]
        );
        match list_query(info, &c, &p(&[("fleet_id", "f2")]), None, 1000) {
            Err(ApiError::Forbidden(_)) => {}
            other => panic!("{other:?}"),
        }
        match list_query(info, &c, &[], Some(("fleet_id", "f2".into())), 1000) {
            Err(ApiError::Forbidden(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bodies() {
        use domain::performance::BenchmarkCreate;
        let ok = br#"{"fleet_id":"f1","name":"n","metric":"m","target_value":1,"higher_is_better":true}"#;
        assert!(parse_body::<BenchmarkCreate>(ok).is_ok());
        assert!(matches!(
            parse_body::<BenchmarkCreate>(b"{"),
            Err(ApiError::BadRequest { .. })
        ));
        assert!(matches!(
            parse_body::<BenchmarkCreate>(b"[1]"),
            Err(ApiError::BadRequest { .. })
        ));
        let unknown = br#"{"fleet_id":"f1","name":"n","metric":"m","target_value":1,"higher_is_better":true,"x":1}"#;
        match parse_body::<BenchmarkCreate>(unknown) {
            Err(ApiError::Unprocessable { fields, .. }) => assert_eq!(fields["x"], "unknown field"),
            other => panic!("{other:?}"),
        }
        match parse_body::<BenchmarkCreate>(br#"{"fleet_id":"f1"}"#) {
            Err(ApiError::Unprocessable { fields, .. }) => assert_eq!(fields["name"], "required"),
            other => panic!("{other:?}"),
        }
        let invalid = br#"{"fleet_id":"f 1","name":" ","metric":"m","target_value":1,"higher_is_better":true}"#;
        match parse_body::<BenchmarkCreate>(invalid) {
            Err(ApiError::Unprocessable { fields, .. }) => {
                assert_eq!(fields.keys().collect::<Vec<_>>(), ["fleet_id", "name"])
            }
            other => panic!("{other:?}"),
        }
        // Actions may have an empty body.
        assert_eq!(
            parse_body::<ActionBody>(b"").unwrap().0,
            ActionBody::default()
        );
    }
}
