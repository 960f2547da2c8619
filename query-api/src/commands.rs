//! The command path of the API: every write request becomes a command on fleet.commands.v1.
//!
//! [`submit`] records the command as `pending` in `command_log` (idempotent per actor and
//! `Idempotency-Key`), produces it to Kafka and answers `202 Accepted` with
//! `Location: /api/v1/commands/{id}` and an `X-Consistency-Token`. With `wait`, it waits (up
//! to `api.command_wait_ms`) for the command worker's decision and answers like a synchronous
//! API: 201 (created) / 200 (changed) / 4xx (rejected). `GET /api/v1/commands/{id}` shows the
//! state. A read that carries `X-Consistency-Token` waits until that command is decided
//! ([`read_your_writes`]), so a client reads its own writes.

use std::time::{Duration, Instant};

use atlasmesh_core::command_signing::HEADER;
use atlasmesh_core::metric_names as m;
use atlasmesh_schemas::{CommandRecord, SchemaKind};
use atlasmesh_sinks::kafka::OutRecord;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, Error};
use crate::params::StrictQuery;
use crate::state::AppState;

pub const CONSISTENCY_HEADER: &str = "x-consistency-token";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 200;
const POLL: Duration = Duration::from_millis(10);

/// A write request, validated by its handler, on its way to become a command.
#[derive(Debug, Clone)]
pub struct Submission {
    /// `<resource>.<operation>`, e.g. `benchmark.create`.
    pub kind: String,
    /// The Kafka key: the entity the command is about (a new id for creates).
    pub aggregate_id: String,
    /// The fleet the command touches, when it touches one (metrics label, audit).
    pub fleet_id: Option<String>,
    pub payload: serde_json::Value,
    /// From the `Idempotency-Key` header; generated when absent.
    pub idempotency_key: Option<String>,
    /// `?wait=true`: answer with the outcome (bounded wait).
    pub wait: bool,
}

/// The state of a command, as `GET /api/v1/commands/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandView {
    pub command_id: String,
    pub kind: String,
    /// `pending`, `applied` or `rejected`.
    pub status: String,
    /// Why a rejected command was refused.
    pub reason: Option<String>,
    pub entity_type: Option<String>,
    /// The entity created or changed by an applied command.
    pub entity_id: Option<String>,
    pub idempotency_key: String,
    pub issued_at_ms: i64,
    pub applied_at_ms: Option<i64>,
}

/// `?wait=true` on writes and command reads; any other parameter is a 400 (read it with
/// [`StrictQuery`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    pub wait: Option<String>,
}

impl WaitQuery {
    pub fn parse(&self) -> Result<bool, ApiError> {
        match self.wait.as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(other) => Err(ApiError::invalid_fields(
                [(
                    "wait".to_string(),
                    format!("must be true or false, got {other:?}"),
                )]
                .into(),
            )),
        }
    }
}

/// The `Idempotency-Key` header, if any (400 when malformed).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?
        .trim();
    if s.is_empty() || s.len() > MAX_KEY_LEN {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1..={MAX_KEY_LEN} characters"
        )));
    }
    Ok(Some(s.to_string()))
}

const VIEW_COLUMNS: &str =
    "command_id, kind, status, reason, entity_type, entity_id, idempotency_key,
    (extract(epoch from issued_at) * 1000)::bigint AS issued_at_ms,
    (extract(epoch from applied_at) * 1000)::bigint AS applied_at_ms";

fn view_of(r: &sqlx::postgres::PgRow) -> CommandView {
    CommandView {
        command_id: r.get("command_id"),
        kind: r.get("kind"),
        status: r.get("status"),
        reason: r.get("reason"),
        entity_type: r.get("entity_type"),
        entity_id: r.get("entity_id"),
        idempotency_key: r.get("idempotency_key"),
        issued_at_ms: r.get("issued_at_ms"),
        applied_at_ms: r.get("applied_at_ms"),
    }
}

/// Turns a validated write into a command; see the module docs for the answers.
pub async fn submit(
    state: &AppState,
    caller: &Caller,
    s: Submission,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let key = s
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let payload_json = s.payload.to_string();
    let hash = atlasmesh_core::command::request_hash_value(&s.kind, &s.payload);
    let scope = caller.scope.to_record();
    let issued_at_ms = atlasmesh_core::clock::now_ms();
    let fresh_id = uuid::Uuid::new_v4().to_string();
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO command_log (command_id, idempotency_key, actor, kind, aggregate_id, fleet_scope, payload, request_hash, status, issued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', to_timestamp($9::double precision / 1000))
         ON CONFLICT (actor, idempotency_key) DO NOTHING
         RETURNING command_id",
    )
    .bind(&fresh_id)
    .bind(&key)
    .bind(&actor)
    .bind(&s.kind)
    .bind(&s.aggregate_id)
    .bind(&scope)
    .bind(&s.payload)
    .bind(&hash)
    .bind(issued_at_ms as f64)
    .fetch_optional(&state.postgres)
    .await
    .map_err(Error::from)?;
    let record = match inserted {
        Some(command_id) => CommandRecord {
            command_id,
            idempotency_key: key,
            kind: s.kind.clone(),
            fleet_scope: scope,
            actor,
            issued_at_ms,
            payload_json,
        },
        None => {
            // The key was used before by this actor: the same request gets the same command.
            let row = sqlx::query(
                "SELECT command_id, kind, request_hash, status, fleet_scope, payload::text AS payload_json, aggregate_id,
                        (extract(epoch from issued_at) * 1000)::bigint AS issued_at_ms
                 FROM command_log WHERE actor = $1 AND idempotency_key = $2",
            )
            .bind(&actor)
            .bind(&key)
            .fetch_one(&state.postgres)
            .await
            .map_err(Error::from)?;
            let stored_hash: String = row.get("request_hash");
            if stored_hash != hash {
                return Err(ApiError::conflict(format!(
                    "Idempotency-Key {key:?} was already used for a different request"
                )));
            }
            let command_id: String = row.get("command_id");
            let status: String = row.get("status");
            if status != "pending" {
                return answer(state, &command_id, s.wait).await;
            }
            // Still pending: the first attempt may have failed before Kafka took it, so
            // produce it again (the worker applies a command id once).
            CommandRecord {
                command_id,
                idempotency_key: key,
                kind: row.get("kind"),
                fleet_scope: row.get("fleet_scope"),
                actor,
                issued_at_ms: row.get("issued_at_ms"),
                payload_json: row.get("payload_json"),
            }
        }
    };
    produce(state, &record, &s.aggregate_id).await?;
    metrics::counter!(m::COMMANDS_SUBMITTED, "kind" => record.kind.clone()).increment(1);
    answer(state, &record.command_id, s.wait).await
}

async fn produce(
    state: &AppState,
    record: &CommandRecord,
    aggregate_id: &str,
) -> Result<(), ApiError> {
    let topic = &state.config.topics.commands;
    let payload = state
        .codec
        .encode(topic, SchemaKind::Commands, record)
        .await
        .map_err(|e| ApiError::Unavailable(Error::Internal(format!("encoding command: {e}"))))?;
    let key = aggregate_id.as_bytes().to_vec();
    let signature = state
        .signer
        .sign(Some(&key), &payload)
        .expect("AppState::connect requires a signing key");
    let out = OutRecord {
        topic: topic.clone(),
        key: Some(key),
        payload,
        headers: vec![(HEADER.to_string(), signature.into_bytes())],
        partition: None,
        timestamp_ms: None,
    };
    state
        .producer
        .send_all("kafka", std::slice::from_ref(&out))
        .await
        .map_err(|e| ApiError::Unavailable(Error::Internal(format!("producing command: {e}"))))
}

async fn load(state: &AppState, command_id: &str) -> Result<Option<CommandView>, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {VIEW_COLUMNS} FROM command_log WHERE command_id = $1"
    ))
    .bind(command_id)
    .fetch_optional(&state.postgres)
    .await
    .map_err(Error::from)?;
    Ok(row.as_ref().map(view_of))
}

/// Polls until the command is decided or `timeout` passes; returns the last view.
async fn wait_decided(
    state: &AppState,
    command_id: &str,
    timeout: Duration,
) -> Result<Option<CommandView>, ApiError> {
    let started = Instant::now();
    loop {
        let v = load(state, command_id).await?;
        match &v {
            Some(c) if c.status == "pending" && started.elapsed() < timeout => {
                tokio::time::sleep(POLL).await
            }
            _ => return Ok(v),
        }
    }
}

/// 202 for a pending command; with `wait`, the synchronous answer once it is decided.
async fn answer(state: &AppState, command_id: &str, wait: bool) -> Result<Response, ApiError> {
    let timeout = Duration::from_millis(if wait {
        state.config.api.command_wait_ms
    } else {
        0
    });
    let view = wait_decided(state, command_id, timeout)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(Error::Internal(format!("command {command_id} vanished")))
        })?;
    let location = format!("/api/v1/commands/{command_id}");
    let status = match view.status.as_str() {
        "pending" => StatusCode::ACCEPTED,
        "applied" if !wait => StatusCode::ACCEPTED,
        "applied" if view.kind.ends_with(".create") => StatusCode::CREATED,
        "applied" => StatusCode::OK,
        _ if !wait => StatusCode::ACCEPTED,
        _ => return Err(rejection(&view)),
    };
    let mut res = (status, Json(&view)).into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(axum::http::header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(command_id) {
        h.insert(CONSISTENCY_HEADER, v);
    }
    Ok(res)
}

/// The 4xx of a rejected command: 404 for a missing reference, 403 for scope, 409 otherwise
/// (a domain rule refused it against the current state).
fn rejection(view: &CommandView) -> ApiError {
    let reason = view.reason.clone().unwrap_or_else(|| "rejected".into());
    let lower = reason.to_ascii_lowercase();
    if lower.starts_with("not found") || lower.contains(" not found") {
        ApiError::not_found(reason)
    } else if lower.contains("scope") || lower.contains("forbidden") {
        ApiError::forbidden(reason)
    } else {
        ApiError::conflict(reason)
    }
}

/// `GET /api/v1/commands/{command_id}`: the caller's own commands (admins with every fleet:
/// all commands). `?wait=true` waits for the decision like a write does.
#[utoipa::path(
    get,
    path = "/api/v1/commands/{command_id}",
    tag = "commands",
    params(("command_id" = String, Path, description = "Command id from a 202 answer"),
           ("wait" = Option<bool>, Query, description = "Wait (bounded) until the command is decided")),
    responses(
        (status = 200, description = "The command's state", body = CommandView),
        (status = 400, description = "Unknown or invalid parameters", body = crate::error::ErrorBody),
        (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown command (or another caller's: commands belong to the caller identity that submitted them, see whoami's actor)", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limit of the caller or of its client address exceeded (see Retry-After)", body = crate::error::ErrorBody),
    ),
    security(("bearer_jwt" = []), ("api_key" = []))
)]
pub async fn get_command(
    State(state): State<AppState>,
    caller: Caller,
    Path(command_id): Path<String>,
    StrictQuery(w): StrictQuery<WaitQuery>,
) -> Result<Json<CommandView>, ApiError> {
    let wait = w.parse()?;
    let actor: Option<String> =
        sqlx::query_scalar("SELECT actor FROM command_log WHERE command_id = $1")
            .bind(&command_id)
            .fetch_optional(&state.postgres)
            .await
            .map_err(Error::from)?;
    match actor {
        Some(a)
            if a == caller.actor()
                || (caller.scope.all && caller.role >= atlasmesh_core::Role::Admin) => {}
        _ => return Err(ApiError::not_found(format!("no command {command_id}"))),
    }
    let timeout = Duration::from_millis(if wait {
        state.config.api.command_wait_ms
    } else {
        0
    });
    let v = wait_decided(&state, &command_id, timeout)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no command {command_id}")))?;
    Ok(Json(v))
}

/// Middleware: a request carrying `X-Consistency-Token: <command id>` is served only after
/// that command is decided (bounded by `api.command_wait_ms`), so it sees its own write.
pub async fn read_your_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = req
        .headers()
        .get(CONSISTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    {
        let timeout = Duration::from_millis(state.config.api.command_wait_ms);
        match wait_decided(&state, &token, timeout).await {
            Ok(Some(v)) if v.status == "pending" => {
                return ApiError::Unavailable(Error::Timeout(
                    "waiting for the consistency token's command",
                ))
                .into_response()
            }
            Ok(_) => {}
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequestParts;
    use axum::http::Request;

    use super::*;

    async fn wait_of(uri: &str) -> Result<bool, ApiError> {
        let (mut parts, ()) = Request::get(uri).body(()).unwrap().into_parts();
        let StrictQuery(w) = StrictQuery::<WaitQuery>::from_request_parts(&mut parts, &()).await?;
        w.parse()
    }

    #[tokio::test]
    async fn wait_parses_and_unknown_parameters_are_400_with_a_json_body() {
        assert!(!wait_of("/api/v1/commands/c").await.unwrap());
        assert!(wait_of("/api/v1/commands/c?wait=true").await.unwrap());
        assert!(wait_of("/api/v1/commands/c?wait").await.unwrap());
        assert!(!wait_of("/api/v1/commands/c?wait=0").await.unwrap());

        let bad = wait_of("/api/v1/commands/c?wait=maybe").await.unwrap_err();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

        let e = wait_of("/api/v1/commands/c?wait=true&bogus=1")
            .await
            .unwrap_err();
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["fields"]["bogus"], "unknown parameter");
    }
}
