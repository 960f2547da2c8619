//! Redis: hot "latest" values (layout in `atlasmesh_core::keys`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atlasmesh_core::keys::{self, FleetPartialKpi};
use atlasmesh_core::TelemetryEvent;
use redis::aio::ConnectionManager;

use crate::{observe, Result};

#[derive(Clone)]
pub struct RedisSink {
    conn: ConnectionManager,
    prefix: String,
    /// Per fleet-windows key, the cutoff it was last pruned to (this process).
    pruned: Arc<Mutex<HashMap<String, i64>>>,
}

/// Deletes every field of the fleet-windows hash `KEYS[1]` whose window starts before
/// `ARGV[1]`, whatever path wrote it: windows closed by the idle flush, skipped windows and
/// those of other partitions alike. Returns how many it deleted.
const PRUNE_FLEET_WINDOWS: &str = r"
local cutoff = tonumber(ARGV[1])
local n = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  local ws = tonumber(string.match(f, '^(-?%d+):'))
  if ws ~= nil and ws < cutoff then
    redis.call('HDEL', KEYS[1], f)
    n = n + 1
  end
end
return n
";

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
            pruned: Arc::default(),
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
        // Per fleet key: the newest window written decides what is too old to keep.
        let mut newest: BTreeMap<String, i64> = BTreeMap::new();
        for ((fleet, ws, partition), kpi) in &batch.fleet_partials {
            let key = keys::fleet_windows(&self.prefix, fleet);
            let json = serde_json::to_string(kpi).expect("kpi serialises");
            pipe.hset(&key, keys::fleet_window_field(*ws, *partition), json)
                .ignore();
            let n = newest.entry(key).or_insert(*ws);
            *n = (*n).max(*ws);
        }
        // Prune a key when its cutoff moved (once per window per fleet, not per flush).
        let mut pruning = Vec::new();
        {
            let pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            for (key, ws) in newest {
                let cutoff = ws - (keys::KPI_WINDOWS_KEPT - 1) * batch.window_ms.max(1);
                if pruned.get(&key).is_none_or(|c| *c < cutoff) {
                    pipe.cmd("EVAL")
                        .arg(PRUNE_FLEET_WINDOWS)
                        .arg(1)
                        .arg(&key)
                        .arg(cutoff)
                        .ignore();
                    pruning.push((key, cutoff));
                }
            }
        }
        let mut c = self.conn.clone();
        let r: Result<()> = pipe.query_async::<()>(&mut c).await.map_err(Into::into);
        if r.is_ok() {
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if pruned.len() > 100_000 {
                pruned.clear();
            }
            pruned.extend(pruning);
        }
        observe(
            "redis",
            batch.latest.len() + batch.fleet_partials.len(),
            started,
            &r,
        );
        r
    }
}
