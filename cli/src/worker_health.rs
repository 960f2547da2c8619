//! The worker's own `GET /health` (beside its `/metrics`): every dependency a worker needs,
//! probed concurrently on connections of its own with the start-up probes
//! ([`atlasmesh_pipelines::ready::Dependency::probe`]), bounded by `runner.retry_probe_timeout_ms`
//! and cached for `api.health_cache_ms`. Same body as the API's `/health`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlasmesh_core::config::Config;
use atlasmesh_pipelines::ready::Dependency;
use atlasmesh_query_api::health::{Check, CheckStatus, Health, HealthStatus};
use axum::http::StatusCode;
use axum::Json;
use tokio::sync::Mutex;

/// Probes with a short-lived cache; cheap to clone.
#[derive(Clone)]
pub struct WorkerHealth {
    cfg: Arc<Config>,
    cached: Arc<Mutex<Option<(Instant, Health)>>>,
}

impl WorkerHealth {
    pub fn new(cfg: Arc<Config>) -> WorkerHealth {
        WorkerHealth {
            cfg,
            cached: Arc::default(),
        }
    }

    /// 200 when every dependency answers, else 503; the body names each one's status.
    pub async fn answer(&self) -> (StatusCode, Json<Health>) {
        let h = self.check().await;
        let code = match h.status {
            HealthStatus::Ok => StatusCode::OK,
            HealthStatus::Degraded => StatusCode::SERVICE_UNAVAILABLE,
        };
        (code, Json(h))
    }

    async fn check(&self) -> Health {
        let max_age = Duration::from_millis(self.cfg.api.health_cache_ms);
        let mut cached = self.cached.lock().await;
        if let Some((at, h)) = cached.as_ref() {
            if at.elapsed() < max_age {
                return h.clone();
            }
        }
        let timeout = Duration::from_millis(self.cfg.runner.retry_probe_timeout_ms.max(100));
        let probes = Dependency::ALL.map(|d| {
            let cfg = self.cfg.clone();
            async move {
                let started = Instant::now();
                let r = d.probe(&cfg, timeout).await;
                let latency_ms = started.elapsed().as_millis() as u64;
                let check = match r {
                    Ok(()) => Check {
                        status: CheckStatus::Up,
                        latency_ms,
                        error: None,
                    },
                    Err(e) => Check {
                        status: CheckStatus::Down,
                        latency_ms,
                        error: Some(e),
                    },
                };
                (d.name().to_string(), check)
            }
        });
        let checks: BTreeMap<String, Check> = futures::future::join_all(probes)
            .await
            .into_iter()
            .collect();
        let status = if checks.values().all(|c| c.status == CheckStatus::Up) {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        };
        let h = Health { status, checks };
        *cached = Some((Instant::now(), h.clone()));
        h
    }
}
