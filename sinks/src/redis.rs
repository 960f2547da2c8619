//! Redis: hot "latest" values (layout in `atlasmesh_core::keys`).

use std::collections::BTreeMap;
use std::time::Instant;

use atlasmesh_core::keys::{self, FleetPartialKpi};
use atlasmesh_core::TelemetryEvent;
use redis::aio::ConnectionManager;

use crate::{observe, Result};

#[derive(Clone)]
pub struct RedisSink {
    conn: ConnectionManager,
    prefix: String,
}

/// What one checkpoint writes to Redis.
#[derive(Debug, Default)]
pub struct RedisBatch {
    /// Newest sample per vehicle (only events that were the vehicle's newest when processed).
    pub latest: BTreeMap<String, TelemetryEvent>,
    /// Newest fleet partial per (fleet, window, partition).
    pub fleet_partials: BTreeMap<(String, i64, i32), FleetPartialKpi>,
    /// Window length, to prune old partials.
    pub window_ms: i64,
}

impl RedisBatch {
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty() && self.fleet_partials.is_empty()
    }

    pub fn clear(&mut self) {
        self.latest.clear();
        self.fleet_partials.clear();
    }
}

impl RedisSink {
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisSink> {
        let client = redis::Client::open(url)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(std::time::Duration::from_secs(3))
            .set_response_timeout(std::time::Duration::from_secs(5))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, cfg).await?;
        Ok(RedisSink {
            conn,
            prefix: prefix.to_string(),
        })
    }

    pub async fn healthcheck(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    /// Writes the batch in one pipeline. Idempotent: the same batch written twice leaves the
    /// same values.
    pub async fn write(&self, batch: &RedisBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut pipe = redis::pipe();
        for e in batch.latest.values() {
            let json = serde_json::to_string(e).expect("event serialises");
            pipe.hset(
                keys::fleet_vehicles(&self.prefix, &e.fleet_id),
                &e.vehicle_id,
                json,
            )
            .ignore();
        }
        for ((fleet, ws, partition), kpi) in &batch.fleet_partials {
            let key = keys::fleet_windows(&self.prefix, fleet);
            let json = serde_json::to_string(kpi).expect("kpi serialises");
            pipe.hset(&key, keys::fleet_window_field(*ws, *partition), json)
                .ignore();
            let old = ws - keys::KPI_WINDOWS_KEPT * batch.window_ms.max(1);
            pipe.hdel(&key, keys::fleet_window_field(old, *partition))
                .ignore();
        }
        let mut c = self.conn.clone();
        let r: Result<()> = pipe.query_async::<()>(&mut c).await.map_err(Into::into);
        observe(
            "redis",
            batch.latest.len() + batch.fleet_partials.len(),
            started,
            &r,
        );
        r
    }
}
