//! `GET /metrics`, the request-metrics middleware and the consumer-lag monitor.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlasmesh_core::metric_names;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::state::AppState;

/// PostgreSQL look-ups of presented API keys (cache misses), by `outcome`
/// (`active` | `revoked` | `unknown` | `error`).
pub const API_KEY_LOOKUPS: &str = "atlasmesh_api_key_lookups_total";
/// Requests refused with 429 before authentication because their client address was over its
/// request or failed-authentication budget.
pub const API_ADDRESS_REFUSED: &str = "atlasmesh_api_address_refused_total";
/// Connections the API is serving.
pub const API_CONNECTIONS_OPEN: &str = "atlasmesh_api_connections_open";

/// Prometheus text exposition of every metric of the process.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.prometheus.render(),
    )
}

/// Counts requests by method, matched route template (bounded) and status, and times them.
/// The `method` label: the standard methods by name, anything else as `other`, so a client
/// cannot grow `/metrics` by inventing methods. (`route` is the matched template or
/// `unmatched`, and `status` a status code: both bounded too.)
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!(metric_names::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(metric_names::HTTP_REQUEST_SECONDS, &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// How often the lag monitor samples.
pub const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// One row of `stream_checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Checkpoint {
    pub pipeline: String,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

pub async fn read_checkpoints(pool: &sqlx::PgPool) -> Result<Vec<Checkpoint>> {
    let rows = sqlx::query_as::<_, Checkpoint>(
        "SELECT pipeline, topic, partition, next_offset FROM stream_checkpoints \
         ORDER BY pipeline, topic, partition",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Messages behind per checkpoint: `high watermark − next_offset`, never negative (a
/// checkpoint can be momentarily ahead of a stale watermark). Checkpoints whose partition has
/// no known watermark are left out.
pub fn compute_lag(
    checkpoints: &[Checkpoint],
    high_watermarks: &BTreeMap<(String, i32), i64>,
) -> Vec<(Checkpoint, i64)> {
    checkpoints
        .iter()
        .filter_map(|c| {
            let high = high_watermarks.get(&(c.topic.clone(), c.partition))?;
            Some((c.clone(), (high - c.next_offset).max(0)))
        })
        .collect()
}

async fn sample_lag(state: &AppState) -> Result<usize> {
    let checkpoints = read_checkpoints(&state.postgres).await?;
    if checkpoints.is_empty() {
        return Ok(0);
    }
    let wanted: Vec<(String, i32)> = {
        let mut v: Vec<_> = checkpoints
            .iter()
            .map(|c| (c.topic.clone(), c.partition))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let consumer = state.kafka.clone();
    let highs = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        // Serve queued client events (errors, logs) of the never-subscribed consumer.
        let _ = consumer.poll(Duration::ZERO);
        let mut highs = BTreeMap::new();
        let mut last_err = None;
        for (topic, partition) in wanted {
            match consumer.fetch_watermarks(&topic, partition, Duration::from_secs(2)) {
                Ok((_low, high)) => {
                    highs.insert((topic, partition), high);
                }
                Err(e) => last_err = Some(e),
            }
        }
        match (highs.is_empty(), last_err) {
            (true, Some(e)) => Err(Error::Kafka(e)),
            _ => Ok(highs),
        }
    })
    .await
    .map_err(|e| Error::Internal(format!("watermark task: {e}")))??;
    let lags = compute_lag(&checkpoints, &highs);
    for (c, lag) in &lags {
        metrics::gauge!(
            metric_names::CONSUMER_LAG,
            "pipeline" => c.pipeline.clone(),
            "topic" => c.topic.clone(),
            "partition" => c.partition.to_string(),
        )
        .set(*lag as f64);
    }
    Ok(lags.len())
}

/// Every [`LAG_INTERVAL`]: read `stream_checkpoints` from PostgreSQL, fetch the high watermarks
/// from Kafka and set `atlasmesh_consumer_lag_messages{pipeline,topic,partition}`. Runs until
/// `shutdown` turns true (or the handle is aborted); failures are logged and retried on the
/// next tick.
pub fn spawn_lag_monitor(state: AppState, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LAG_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                biased;
                _ = stop_requested(&mut shutdown) => return,
                _ = tick.tick() => {}
            }
            match sample_lag(&state).await {
                Ok(n) => {
                    if failing {
                        tracing::info!(partitions = n, "Consumer lag sampling recovered.");
                    }
                    failing = false;
                }
                Err(e) => {
                    // Log the first failure of a streak at warn, the rest at debug.
                    if failing {
                        tracing::debug!(error = %e, "Consumer lag sampling failed.");
                    } else {
                        tracing::warn!(error = %e, "Consumer lag sampling failed.");
                    }
                    failing = true;
                }
            }
        }
    })
}

/// Resolves once `shutdown` is true; never when its sender is gone first.
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(p: &str, t: &str, part: i32, off: i64) -> Checkpoint {
        Checkpoint {
            pipeline: p.into(),
            topic: t.into(),
            partition: part,
            next_offset: off,
        }
    }

    #[test]
    fn lag_is_high_minus_next_offset_clamped() {
        let cps = vec![
            cp("telemetry", "t", 0, 90),
            cp("telemetry", "t", 1, 120),
            cp("alerts", "t", 2, 5),
        ];
        let mut highs = BTreeMap::new();
        highs.insert(("t".to_string(), 0), 100);
        highs.insert(("t".to_string(), 1), 110);
        let lags = compute_lag(&cps, &highs);
        assert_eq!(lags, vec![(cps[0].clone(), 10), (cps[1].clone(), 0)]);
    }
}

#[cfg(test)]
mod label_tests {
    #[test]
    fn invented_methods_share_one_label() {
        let m = |s: &str| axum::http::Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(super::method_label(&m("GET")), "GET");
        assert_eq!(super::method_label(&m("PATCH")), "PATCH");
        assert_eq!(super::method_label(&m("XABCDEF")), "other");
        assert_eq!(super::method_label(&m("XABCDEG")), "other");
    }
}
