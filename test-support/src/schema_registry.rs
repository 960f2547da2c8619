//! A small, honest stand-in for the Confluent Schema Registry REST API (Avro only).
//!
//! It implements the subset of the API that `schema_registry_converter` 6 and operators use:
//! registration with real compatibility checks (apache-avro's `schema_compatibility`), lookup,
//! fetch by id / subject+version, compatibility checks, config (global and per subject) and
//! subject deletion. State is optionally persisted as a single JSON file, rewritten atomically
//! (temp file + rename) after every change.
//!
//! Semantics follow Confluent:
//! - schema ids are global; the same schema registered in two subjects gets the same id;
//! - registering a schema that is already a (non-deleted) version of the subject returns its id
//!   without a compatibility check;
//! - "the same schema" means the same JSON document after parsing (key order and whitespace do
//!   not matter) plus the same references. We deliberately do NOT compare only the Avro Parsing
//!   Canonical Form: it strips `default`s, so two schemas differing only in a field default would
//!   be conflated and the default silently lost (Confluent compares the full schema string too).
//! - compatibility: BACKWARD (default), BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL,
//!   FULL_TRANSITIVE, NONE. "Partial" compatibility from apache-avro (e.g. a reader enum missing a
//!   writer symbol, a reader union that does not cover the writer union) counts as incompatible.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Content type of every response, as Confluent's registry sends it.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

const LEVELS: &[&str] = &[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
];

/// A reference from one schema to another registered subject/version (Confluent `references`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSchema {
    schema: String,
    #[serde(default)]
    references: Vec<SchemaReference>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionEntry {
    version: u32,
    id: u32,
    #[serde(default)]
    deleted: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Subject {
    #[serde(default)]
    versions: Vec<VersionEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compatibility: Option<String>,
}

impl Subject {
    fn live(&self) -> impl DoubleEndedIterator<Item = &VersionEntry> {
        self.versions.iter().filter(|v| !v.deleted)
    }
    fn latest(&self) -> Option<&VersionEntry> {
        self.live().next_back()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Store {
    #[serde(default = "default_level")]
    compatibility: String,
    #[serde(default)]
    next_id: u32,
    #[serde(default)]
    schemas: BTreeMap<u32, StoredSchema>,
    #[serde(default)]
    subjects: BTreeMap<String, Subject>,
}

fn default_level() -> String {
    "BACKWARD".to_owned()
}

impl Default for Store {
    fn default() -> Self {
        Store {
            compatibility: default_level(),
            next_id: 1,
            schemas: BTreeMap::new(),
            subjects: BTreeMap::new(),
        }
    }
}

struct Inner {
    store: Mutex<Store>,
    data: Option<PathBuf>,
}

/// Shared registry state; cheap to clone.
#[derive(Clone)]
pub struct RegistryState {
    inner: Arc<Inner>,
}

impl RegistryState {
    /// Empty, not persisted.
    pub fn in_memory() -> Self {
        RegistryState {
            inner: Arc::new(Inner {
                store: Mutex::new(Store::default()),
                data: None,
            }),
        }
    }

    /// Loads `data` if it exists (else starts empty) and persists every change to it.
    /// `None` = in memory only.
    pub fn open(data: Option<PathBuf>) -> anyhow::Result<Self> {
        let store = match &data {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading registry state {}", path.display()))?;
                let mut store: Store = serde_json::from_str(&text)
                    .with_context(|| format!("parsing registry state {}", path.display()))?;
                let max = store.schemas.keys().next_back().copied().unwrap_or(0);
                store.next_id = store.next_id.max(max + 1);
                store
            }
            _ => Store::default(),
        };
        Ok(RegistryState {
            inner: Arc::new(Inner {
                store: Mutex::new(store),
                data,
            }),
        })
    }

    /// The file the state is persisted to, if any.
    pub fn data_path(&self) -> Option<&Path> {
        self.inner.data.as_deref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self, store: &Store) -> Result<(), ApiError> {
        let Some(path) = &self.inner.data else {
            return Ok(());
        };
        write_atomically(path, store).map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "persisting schema registry state failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                50001,
                format!("Error while persisting the registry state: {e:#}"),
            )
        })
    }
}

fn write_atomically(path: &Path, store: &Store) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let bytes = serde_json::to_vec_pretty(store)?;
    {
        use std::io::Write as _;
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn subject_not_found(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }
    fn version_not_found(version: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found."),
        )
    }
    fn schema_not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("Schema {what} not found"),
        )
    }
    fn invalid_schema(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Result<Response, ApiError> {
    Ok(reply(StatusCode::OK, body))
}

// ---------------------------------------------------------------------------------------------
// Schema handling

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
}

fn parse_request(body: &Bytes) -> Result<SchemaRequest, ApiError> {
    let req: SchemaRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            422,
            format!("Unrecognized request body: {e}"),
        )
    })?;
    match req.schema_type.as_deref() {
        None | Some("AVRO") => Ok(req),
        Some(other) => Err(ApiError::invalid_schema(format!(
            "Invalid schema type {other}: this registry stand-in supports AVRO only"
        ))),
    }
}

/// A parsed candidate or registered schema.
struct Parsed {
    schema: Schema,
    /// The named schemas its references define, needed to resolve it.
    _deps: Vec<Schema>,
}

/// Identity used to decide whether two registrations are "the same schema".
fn identity(schema: &str, references: &[SchemaReference]) -> Option<String> {
    let value: Value = serde_json::from_str(schema).ok()?;
    Some(format!(
        "{}|{}",
        value,
        serde_json::to_string(references).unwrap_or_default()
    ))
}

/// Texts of all schemas `references` point at (transitively, dependencies first).
fn reference_texts(
    store: &Store,
    references: &[SchemaReference],
    out: &mut Vec<String>,
    depth: usize,
) -> Result<(), ApiError> {
    if depth > 32 {
        return Err(ApiError::invalid_schema(
            "Schema references nest too deeply",
        ));
    }
    for r in references {
        let entry = store
            .subjects
            .get(&r.subject)
            .and_then(|s| s.versions.iter().find(|v| v.version == r.version))
            .ok_or_else(|| {
                ApiError::invalid_schema(format!(
                    "Invalid schema: reference {} points to unknown subject '{}' version {}",
                    r.name, r.subject, r.version
                ))
            })?;
        let stored = &store.schemas[&entry.id];
        reference_texts(store, &stored.references, out, depth + 1)?;
        if !out.contains(&stored.schema) {
            out.push(stored.schema.clone());
        }
    }
    Ok(())
}

fn parse_schema(
    store: &Store,
    schema: &str,
    references: &[SchemaReference],
) -> Result<Parsed, ApiError> {
    let mut deps = Vec::new();
    reference_texts(store, references, &mut deps, 0)?;
    let result = if deps.is_empty() {
        Schema::parse_str(schema).map(|s| (s, Vec::new()))
    } else {
        Schema::parse_str_with_list(schema, &deps)
    };
    let (schema, deps) =
        result.map_err(|e| ApiError::invalid_schema(format!("Invalid schema: {e}")))?;
    Ok(Parsed {
        schema,
        _deps: deps,
    })
}

fn parse_stored(store: &Store, id: u32) -> Result<Parsed, ApiError> {
    let stored = &store.schemas[&id];
    parse_schema(store, &stored.schema, &stored.references)
}

/// `Ok(())` when a reader of `reader` can read everything written with `writer`.
fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(
            "only partially compatible (e.g. a reader enum lacks a writer symbol or a reader \
             union does not cover the writer union)"
                .to_owned(),
        ),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks `candidate` against `existing` (ids, oldest first) per `level`.
/// Returns the list of incompatibility messages (empty = compatible).
fn check_compatibility(
    store: &Store,
    level: &str,
    candidate: &Schema,
    existing: &[(u32, u32)],
) -> Result<Vec<String>, ApiError> {
    let (transitive, backward, forward) = match level {
        "NONE" => return Ok(Vec::new()),
        "BACKWARD" => (false, true, false),
        "BACKWARD_TRANSITIVE" => (true, true, false),
        "FORWARD" => (false, false, true),
        "FORWARD_TRANSITIVE" => (true, false, true),
        "FULL" => (false, true, true),
        "FULL_TRANSITIVE" => (true, true, true),
        other => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                50001,
                format!("Unknown compatibility level {other}"),
            ))
        }
    };
    let against: Vec<(u32, u32)> = if transitive {
        existing.to_vec()
    } else {
        existing.last().copied().into_iter().collect()
    };
    let mut problems = Vec::new();
    for (version, id) in against {
        let old = parse_stored(store, id)?;
        if backward {
            if let Err(e) = can_read(&old.schema, candidate) {
                problems.push(format!(
                    "new schema cannot read data written with version {version} (id {id}): {e}"
                ));
            }
        }
        if forward {
            if let Err(e) = can_read(candidate, &old.schema) {
                problems.push(format!(
                    "version {version} (id {id}) cannot read data written with the new schema: {e}"
                ));
            }
        }
    }
    Ok(problems)
}

fn level_of(store: &Store, subject: &str) -> String {
    store
        .subjects
        .get(subject)
        .and_then(|s| s.compatibility.clone())
        .unwrap_or_else(|| store.compatibility.clone())
}

fn schema_body(store: &Store, subject: &str, entry: &VersionEntry) -> Value {
    let stored = &store.schemas[&entry.id];
    let mut body = json!({
        "subject": subject,
        "version": entry.version,
        "id": entry.id,
        "schema": stored.schema,
    });
    if !stored.references.is_empty() {
        body["references"] = json!(stored.references);
    }
    body
}

fn resolve_version<'a>(
    subject: &'a Subject,
    version: &str,
    include_deleted: bool,
) -> Result<&'a VersionEntry, ApiError> {
    if version == "latest" || version == "-1" {
        return subject
            .latest()
            .ok_or_else(|| ApiError::version_not_found(version));
    }
    let n: u32 = version.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are \
                 between [1, 2^31-1] and the string \"latest\""
            ),
        )
    })?;
    subject
        .versions
        .iter()
        .find(|v| v.version == n && (include_deleted || !v.deleted))
        .ok_or_else(|| ApiError::version_not_found(version))
}

// ---------------------------------------------------------------------------------------------
// Handlers

#[derive(Debug, Default, Deserialize)]
struct DeletedQuery {
    #[serde(default)]
    deleted: Option<bool>,
    #[serde(default)]
    permanent: Option<bool>,
}

async fn health() -> Response {
    reply(StatusCode::OK, json!({}))
}

async fn register(
    State(state): State<RegistryState>,
    UrlPath(subject): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_request(&body)?;
    let references = req.references.unwrap_or_default();
    let mut store = state.lock();
    let parsed = parse_schema(&store, &req.schema, &references)?;
    let key = identity(&req.schema, &references)
        .ok_or_else(|| ApiError::invalid_schema("Invalid schema: not JSON"))?;

    // Already a live version of this subject: return its id, no check.
    if let Some(s) = store.subjects.get(&subject) {
        for v in s.live() {
            let stored = &store.schemas[&v.id];
            if identity(&stored.schema, &stored.references).as_deref() == Some(key.as_str()) {
                return ok(json!({"id": v.id}));
            }
        }
    }

    let existing: Vec<(u32, u32)> = store
        .subjects
        .get(&subject)
        .map(|s| s.live().map(|v| (v.version, v.id)).collect())
        .unwrap_or_default();
    let level = level_of(&store, &subject);
    let problems = check_compatibility(&store, &level, &parsed.schema, &existing)?;
    if !problems.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \
                 \"{subject}\" ({level}), details: [{}]",
                problems.join("; ")
            ),
        ));
    }

    let id = match store
        .schemas
        .iter()
        .find(|(_, s)| identity(&s.schema, &s.references).as_deref() == Some(key.as_str()))
    {
        Some((id, _)) => *id,
        None => {
            let id = store.next_id.max(1);
            store.next_id = id + 1;
            store.schemas.insert(
                id,
                StoredSchema {
                    schema: req.schema.clone(),
                    references: references.clone(),
                },
            );
            id
        }
    };
    let subj = store.subjects.entry(subject.clone()).or_default();
    let version = subj.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
    subj.versions.push(VersionEntry {
        version,
        id,
        deleted: false,
    });
    state.persist(&store)?;
    tracing::info!(%subject, id, version, "registered schema");
    ok(json!({"id": id}))
}

async fn lookup(
    State(state): State<RegistryState>,
    UrlPath(subject): UrlPath<String>,
    Query(q): Query<DeletedQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_request(&body)?;
    let references = req.references.unwrap_or_default();
    let store = state.lock();
    let s = store
        .subjects
        .get(&subject)
        .filter(|s| q.deleted == Some(true) || s.latest().is_some())
        .ok_or_else(|| ApiError::subject_not_found(&subject))?;
    parse_schema(&store, &req.schema, &references)?;
    let key = identity(&req.schema, &references);
    let found = s.versions.iter().rev().find(|v| {
        (q.deleted == Some(true) || !v.deleted) && {
            let stored = &store.schemas[&v.id];
            identity(&stored.schema, &stored.references) == key
        }
    });
    match found {
        Some(v) => ok(schema_body(&store, &subject, v)),
        None => Err(ApiError::schema_not_found("")),
    }
}

async fn schema_by_id(
    State(state): State<RegistryState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let store = state.lock();
    let stored = id
        .parse::<u32>()
        .ok()
        .and_then(|n| store.schemas.get(&n))
        .ok_or_else(|| ApiError::schema_not_found(&id))?;
    let mut body = json!({"schema": stored.schema});
    if !stored.references.is_empty() {
        body["references"] = json!(stored.references);
    }
    ok(body)
}

async fn schema_string_by_id(
    State(state): State<RegistryState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let store = state.lock();
    let stored = id
        .parse::<u32>()
        .ok()
        .and_then(|n| store.schemas.get(&n))
        .ok_or_else(|| ApiError::schema_not_found(&id))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        stored.schema.clone(),
    )
        .into_response())
}

async fn schema_versions_by_id(
    State(state): State<RegistryState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let store = state.lock();
    let n = id
        .parse::<u32>()
        .ok()
        .filter(|n| store.schemas.contains_key(n))
        .ok_or_else(|| ApiError::schema_not_found(&id))?;
    let list: Vec<Value> = store
        .subjects
        .iter()
        .flat_map(|(name, s)| {
            s.live()
                .filter(|v| v.id == n)
                .map(move |v| json!({"subject": name, "version": v.version}))
        })
        .collect();
    ok(json!(list))
}

async fn schema_types() -> Response {
    reply(StatusCode::OK, json!(["AVRO"]))
}

async fn list_subjects(
    State(state): State<RegistryState>,
    Query(q): Query<DeletedQuery>,
) -> Result<Response, ApiError> {
    let store = state.lock();
    let names: Vec<&String> = store
        .subjects
        .iter()
        .filter(|(_, s)| {
            if q.deleted == Some(true) {
                !s.versions.is_empty()
            } else {
                s.latest().is_some()
            }
        })
        .map(|(n, _)| n)
        .collect();
    ok(json!(names))
}

async fn list_versions(
    State(state): State<RegistryState>,
    UrlPath(subject): UrlPath<String>,
    Query(q): Query<DeletedQuery>,
) -> Result<Response, ApiError> {
    let store = state.lock();
    let s = store
        .subjects
        .get(&subject)
        .ok_or_else(|| ApiError::subject_not_found(&subject))?;
    let versions: Vec<u32> = s
        .versions
        .iter()
        .filter(|v| q.deleted == Some(true) || !v.deleted)
        .map(|v| v.version)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::subject_not_found(&subject));
    }
    ok(json!(versions))
}

async fn get_version(
    State(state): State<RegistryState>,
    UrlPath((subject, version)): UrlPath<(String, String)>,
    Query(q): Query<DeletedQuery>,
) -> Result<Response, ApiError> {
    let store = state.lock();
    let s = store
        .subjects
        .get(&subject)
        .filter(|s| q.deleted == Some(true) || s.latest().is_some())
        .ok_or_else(|| ApiError::subject_not_found(&subject))?;
    let v = resolve_version(s, &version, q.deleted == Some(true))?;
    ok(schema_body(&store, &subject, v))
}

async fn get_version_schema(
    State(state): State<RegistryState>,
    UrlPath((subject, version)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let store = state.lock();
    let s = store
        .subjects
        .get(&subject)
        .filter(|s| s.latest().is_some())
        .ok_or_else(|| ApiError::subject_not_found(&subject))?;
    let v = resolve_version(s, &version, false)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        store.schemas[&v.id].schema.clone(),
    )
        .into_response())
}

async fn delete_subject(
    State(state): State<RegistryState>,
    UrlPath(subject): UrlPath<String>,
    Query(q): Query<DeletedQuery>,
) -> Result<Response, ApiError> {
    let mut store = state.lock();
    let s = store
        .subjects
        .get_mut(&subject)
        .ok_or_else(|| ApiError::subject_not_found(&subject))?;
    let deleted: Vec<u32> = if q.permanent == Some(true) {
        let all = s.versions.iter().map(|v| v.version).collect();
        store.subjects.remove(&subject);
        all
    } else {
        let live: Vec<u32> = s.live().map(|v| v.version).collect();
        if live.is_empty() {
            return Err(ApiError::subject_not_found(&subject));
        }
        for v in &mut s.versions {
            v.deleted = true;
        }
        live
    };
    state.persist(&store)?;
    ok(json!(deleted))
}

async fn delete_version(
    State(state): State<RegistryState>,
    UrlPath((subject, version)): UrlPath<(String, String)>,
    Query(q): Query<DeletedQuery>,
) -> Result<Response, ApiError> {
    let mut store = state.lock();
    let s = store
        .subjects
        .get_mut(&subject)
        .ok_or_else(|| ApiError::subject_not_found(&subject))?;
    let n = resolve_version(s, &version, q.permanent == Some(true))?.version;
    if q.permanent == Some(true) {
        s.versions.retain(|v| v.version != n);
    } else {
        for v in s.versions.iter_mut().filter(|v| v.version == n) {
            v.deleted = true;
        }
    }
    state.persist(&store)?;
    ok(json!(n))
}

async fn compatibility_latest(
    State(state): State<RegistryState>,
    UrlPath(subject): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    compatibility(state, subject, None, body)
}

async fn compatibility_version(
    State(state): State<RegistryState>,
    UrlPath((subject, version)): UrlPath<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    compatibility(state, subject, Some(version), body)
}

/// Without a version: checks per the subject's level against the relevant registered versions
/// (all of them for *_TRANSITIVE). With a version: against that version only, in the level's
/// direction(s).
fn compatibility(
    state: RegistryState,
    subject: String,
    version: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_request(&body)?;
    let references = req.references.unwrap_or_default();
    let store = state.lock();
    let parsed = parse_schema(&store, &req.schema, &references)?;
    let level = level_of(&store, &subject);
    let existing: Vec<(u32, u32)> = match (&version, store.subjects.get(&subject)) {
        (None, None) => Vec::new(),
        (Some(_), None) => return Err(ApiError::subject_not_found(&subject)),
        (None, Some(s)) => s.live().map(|v| (v.version, v.id)).collect(),
        (Some(version), Some(s)) => {
            let v = resolve_version(s, version, false)?;
            vec![(v.version, v.id)]
        }
    };
    let problems = check_compatibility(&store, &level, &parsed.schema, &existing)?;
    let mut body = json!({"is_compatible": problems.is_empty()});
    if !problems.is_empty() {
        body["messages"] = json!(problems);
    }
    ok(body)
}

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

fn parse_level(body: &Bytes) -> Result<String, ApiError> {
    let req: ConfigRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!("Invalid compatibility level: {e}"),
        )
    })?;
    let level = req.compatibility.to_ascii_uppercase();
    if !LEVELS.contains(&level.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!(
                "Invalid compatibility level {}. Valid values are {}",
                req.compatibility,
                LEVELS.join(", ")
            ),
        ));
    }
    Ok(level)
}

async fn get_global_config(State(state): State<RegistryState>) -> Result<Response, ApiError> {
    let store = state.lock();
    ok(json!({"compatibilityLevel": store.compatibility}))
}

async fn put_global_config(
    State(state): State<RegistryState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let level = parse_level(&body)?;
    let mut store = state.lock();
    store.compatibility = level.clone();
    state.persist(&store)?;
    ok(json!({"compatibility": level}))
}

/// Falls back to the global level when the subject has none (like `?defaultToGlobal=true`).
async fn get_subject_config(
    State(state): State<RegistryState>,
    UrlPath(subject): UrlPath<String>,
) -> Result<Response, ApiError> {
    let store = state.lock();
    ok(json!({"compatibilityLevel": level_of(&store, &subject)}))
}

async fn put_subject_config(
    State(state): State<RegistryState>,
    UrlPath(subject): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let level = parse_level(&body)?;
    let mut store = state.lock();
    store.subjects.entry(subject).or_default().compatibility = Some(level.clone());
    state.persist(&store)?;
    ok(json!({"compatibility": level}))
}

async fn delete_subject_config(
    State(state): State<RegistryState>,
    UrlPath(subject): UrlPath<String>,
) -> Result<Response, ApiError> {
    let mut store = state.lock();
    let previous = store
        .subjects
        .get_mut(&subject)
        .and_then(|s| s.compatibility.take())
        .ok_or_else(|| ApiError::subject_not_found(&subject))?;
    state.persist(&store)?;
    ok(json!({"compatibilityLevel": previous}))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
}

/// The registry's HTTP API.
pub fn router(state: RegistryState) -> Router {
    Router::new()
        .route("/", get(health))
        .route("/health", get(health))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_string_by_id))
        .route("/schemas/ids/{id}/versions", get(schema_versions_by_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_latest),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_version),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .fallback(not_found)
        .with_state(state)
}

/// Serves the registry on `listener` until the task is dropped/aborted (or the server fails).
pub async fn serve(listener: tokio::net::TcpListener, data: Option<PathBuf>) -> anyhow::Result<()> {
    let state = RegistryState::open(data)?;
    axum::serve(listener, router(state))
        .await
        .context("schema registry server failed")
}

/// Starts an in-memory registry on `127.0.0.1:<free port>`. Returns its base URL (no trailing
/// slash, e.g. `http://127.0.0.1:41234`) and the server task; abort the task to stop it.
pub async fn spawn_ephemeral() -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    spawn_with_data(None).await
}

/// Like [`spawn_ephemeral`] but persisting to (and loading from) `data` when given.
pub async fn spawn_with_data(
    data: Option<PathBuf>,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = RegistryState::open(data)?;
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "ephemeral schema registry stopped");
        }
    });
    Ok((format!("http://{addr}"), handle))
}
