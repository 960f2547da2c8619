//! `GET /health`: one probe per dependency, run concurrently, each bounded by a short timeout.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use atlasmesh_core::metric_names;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::state::{AppState, PROBE_TIMEOUT};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Up,
    Down,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    pub status: CheckStatus,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Degraded,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    /// One entry per dependency: kafka, clickhouse, postgres, redis, schema_registry.
    pub checks: BTreeMap<String, Check>,
}

async fn probe<F>(name: &'static str, f: F) -> (&'static str, Check)
where
    F: Future<Output = Result<()>>,
{
    let started = Instant::now();
    let res = match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(name)),
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let up = res.is_ok();
    metrics::gauge!(metric_names::DEPENDENCY_UP, "dependency" => name).set(if up {
        1.0
    } else {
        0.0
    });
    let check = match res {
        Ok(()) => Check {
            status: CheckStatus::Up,
            latency_ms,
            error: None,
        },
        Err(e) => {
            tracing::warn!(dependency = name, error = %e, "Health check failed.");
            Check {
                status: CheckStatus::Down,
                latency_ms,
                error: Some(e.to_string()),
            }
        }
    };
    (name, check)
}

/// Metadata of the telemetry topic only: answers fast however many topics the broker has.
async fn kafka(state: &AppState) -> Result<()> {
    let consumer = state.kafka.clone();
    let topic = state.config.topics.telemetry.clone();
    // The blocking call gets a slightly shorter budget than the probe so it rarely outlives it.
    let budget = PROBE_TIMEOUT.saturating_sub(Duration::from_millis(200));
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        let _ = consumer.poll(Duration::ZERO);
        consumer.fetch_metadata(Some(&topic), budget).map(|_| ())
    })
    .await
    .map_err(|e| Error::Internal(format!("kafka probe task: {e}")))??;
    Ok(())
}

async fn clickhouse(state: &AppState) -> Result<()> {
    state.clickhouse.query("SELECT 1").execute().await?;
    Ok(())
}

/// A connection of its own, not one of the pool: the answer is PostgreSQL's now, not that of
/// a pooled connection opened before an outage.
async fn postgres(state: &AppState) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&state.config.postgres.url).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    let _ = conn.close().await;
    Ok(())
}

/// A connection of its own (see [`postgres`]).
async fn redis(state: &AppState) -> Result<()> {
    atlasmesh_sinks::redis::ping(&state.config.redis.url)
        .await
        .map_err(|e| match e {
            atlasmesh_sinks::Error::Redis(r) => Error::Redis(r),
            other => Error::Internal(other.to_string()),
        })
}

async fn schema_registry(state: &AppState) -> Result<()> {
    let url = format!(
        "{}/subjects",
        state.config.schema_registry.url.trim_end_matches('/')
    );
    state.http.get(url).send().await?.error_for_status()?;
    Ok(())
}

/// The probes' answer, run again once older than `api.health_cache_ms`; concurrent callers
/// share one run.
pub async fn check_all(state: &AppState) -> Health {
    let max_age = Duration::from_millis(state.config.api.health_cache_ms);
    let mut cached = state.health.lock().await;
    if let Some((at, h)) = cached.as_ref() {
        if at.elapsed() < max_age {
            return h.clone();
        }
    }
    let h = probe_all(state).await;
    *cached = Some((Instant::now(), h.clone()));
    h
}

/// Runs every probe and sets `atlasmesh_dependency_up{dependency}`.
async fn probe_all(state: &AppState) -> Health {
    let results = tokio::join!(
        probe("kafka", kafka(state)),
        probe("clickhouse", clickhouse(state)),
        probe("postgres", postgres(state)),
        probe("redis", redis(state)),
        probe("schema_registry", schema_registry(state)),
    );
    let checks: BTreeMap<String, Check> = [results.0, results.1, results.2, results.3, results.4]
        .into_iter()
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    let status = if checks.values().all(|c| c.status == CheckStatus::Up) {
        HealthStatus::Ok
    } else {
        HealthStatus::Degraded
    };
    Health { status, checks }
}

/// Dependency health: 200 when every dependency is up, else 503. Each check's `error` is
/// shown to authenticated callers only.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Every dependency is up", body = Health),
        (status = 503, description = "At least one dependency is down", body = Health),
    )
)]
pub async fn health(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> (StatusCode, Json<Health>) {
    let mut h = check_all(&state).await;
    // The status of each dependency is public (load balancers, `scripts/run`); what its error
    // says (addresses, server messages) only an authenticated caller sees, or the logs.
    let authenticated = headers.contains_key(axum::http::header::AUTHORIZATION)
        && state
            .auth
            .authenticate(&headers, &state.postgres)
            .await
            .is_ok();
    if !authenticated {
        for c in h.checks.values_mut() {
            c.error = None;
        }
    }
    let code = match h.status {
        HealthStatus::Ok => StatusCode::OK,
        HealthStatus::Degraded => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(h))
}
