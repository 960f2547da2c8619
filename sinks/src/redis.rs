//! Redis: hot "latest" values (layout in `atlasmesh_core::keys`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atlasmesh_core::keys::{self, FleetPartialKpi};
use atlasmesh_core::TelemetryEvent;
use redis::aio::ConnectionManager;

use crate::{observe, Result};

mod bulk;

/// Vehicles per `HSET` of the latest values (a command stays a few hundred KB).
const LATEST_PER_HSET: usize = 1_000;

#[derive(Clone)]
pub struct RedisSink {
    conn: ConnectionManager,
    /// The latest values' writer ([`bulk`]); `None` on TLS, where they go through `conn`.
    bulk: Option<Arc<tokio::sync::Mutex<bulk::Bulk>>>,
    prefix: String,
    /// Per fleet-windows key, the cutoff it was last pruned to (this process).
    pruned: Arc<Mutex<HashMap<String, i64>>>,
}

/// Deletes every field of the fleet-windows hash `KEYS[1]` whose window starts before
/// `ARGV[1]`, whatever path wrote it: windows closed by the idle flush, skipped windows and
/// those of other partitions alike; and from the window index `KEYS[2]` the partitions whose
/// newest window is that old (they have no field left). Returns how many fields it deleted.
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
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
return n
";

/// `PING` on a connection of its own (a probe): a refused connection is an answer at once,
/// where a connection manager would keep reconnecting.
pub async fn ping(url: &str) -> Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    if pong != "PONG" {
        return Err(crate::Error::Other(format!(
            "unexpected PING answer {pong:?}"
        )));
    }
    Ok(())
}

/// The events of a fleet's `vehicles` hash entries (vehicle id → stored value,
/// [`keys::decode_latest`]), skipping, and logging, those that do not decode.
pub fn readable_latest<'a>(
    fleet: &'a str,
    entries: impl IntoIterator<Item = (&'a String, &'a Vec<u8>)> + 'a,
) -> impl Iterator<Item = TelemetryEvent> + 'a {
    entries
        .into_iter()
        .filter_map(move |(vehicle_id, v)| match keys::decode_latest(v) {
            Ok(e) => Some(e),
            Err(error) => {
                tracing::warn!(
                    fleet,
                    vehicle_id,
                    error,
                    "Skipping unreadable vehicle state."
                );
                None
            }
        })
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
    pub fn clear(&mut self) {
        self.latest.clear();
        self.fleet_partials.clear();
    }
}

/// Vehicles' newest samples as Redis stores them, one after another in two buffers: per
/// vehicle its fleet and vehicle ids, the `vehicles` hash's value ([`keys::encode_latest`])
/// and the `live` hash's sample ([`keys::LiveSample`]). Filled while the events are at hand
/// (a pipeline may encode each newest sample as it accepts it, while the event is in the
/// cache), written by [`RedisSink::write_with_latest`] without reading the events again.
#[derive(Debug, Default)]
pub struct EncodedLatest {
    ids: String,
    bytes: Vec<u8>,
    entries: Vec<EntryAt>,
}

/// Where an entry of [`EncodedLatest`] is: `ids[ids..fleet_end]` the fleet,
/// `ids[fleet_end..ids_end]` the vehicle, `bytes[bytes..value_end]` the value,
/// `bytes[value_end..bytes_end]` the sample.
#[derive(Debug, Clone, Copy)]
struct EntryAt {
    ids: usize,
    fleet_end: usize,
    ids_end: usize,
    bytes: usize,
    value_end: usize,
    bytes_end: usize,
    /// A later entry of the same vehicle replaces this one ([`EncodedLatest::supersede`]).
    superseded: bool,
}

/// One vehicle's newest sample as [`EncodedLatest`] holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatestEntry<'a> {
    pub fleet_id: &'a str,
    pub vehicle_id: &'a str,
    /// The `vehicles` hash's value.
    pub value: &'a [u8],
    /// The `live` hash's value.
    pub sample: &'a [u8],
}

impl EncodedLatest {
    /// Encodes `e`; returns its entry's index ([`EncodedLatest::get`]).
    pub fn push(&mut self, e: &TelemetryEvent) -> usize {
        let (ids, bytes) = (self.ids.len(), self.bytes.len());
        self.ids.push_str(&e.fleet_id);
        let fleet_end = self.ids.len();
        self.ids.push_str(&e.vehicle_id);
        keys::encode_latest_into(e, &mut self.bytes);
        let value_end = self.bytes.len();
        keys::LiveSample::from(e).encode_into(&mut self.bytes);
        self.entries.push(EntryAt {
            ids,
            fleet_end,
            ids_end: self.ids.len(),
            bytes,
            value_end,
            bytes_end: self.bytes.len(),
            superseded: false,
        });
        self.entries.len() - 1
    }

    /// The entry [`EncodedLatest::push`] numbered `i`.
    pub fn get(&self, i: usize) -> LatestEntry<'_> {
        let at = self.entries[i];
        LatestEntry {
            fleet_id: &self.ids[at.ids..at.fleet_end],
            vehicle_id: &self.ids[at.fleet_end..at.ids_end],
            value: &self.bytes[at.bytes..at.value_end],
            sample: &self.bytes[at.value_end..at.bytes_end],
        }
    }

    /// Every entry, in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = LatestEntry<'_>> {
        (0..self.entries.len()).map(|i| self.get(i))
    }

    /// Marks entry `i` as replaced by a later one: [`EncodedLatest::newest`] skips it.
    pub fn supersede(&mut self, i: usize) {
        self.entries[i].superseded = true;
    }

    /// The entries not superseded, in the order pushed (read in order, not in the order a
    /// hash table holds them: the buffers stream through the cache once).
    pub fn newest(&self) -> impl Iterator<Item = LatestEntry<'_>> {
        (0..self.entries.len())
            .filter(|&i| !self.entries[i].superseded)
            .map(|i| self.get(i))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Empty again, its buffers kept.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.bytes.clear();
        self.entries.clear();
    }
}

impl RedisSink {
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisSink> {
        let client = redis::Client::open(url)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(std::time::Duration::from_secs(3))
            .set_response_timeout(std::time::Duration::from_secs(5))
            .set_number_of_retries(1);
        let bulk = bulk::Bulk::for_connection(client.get_connection_info(), prefix)
            .map(|b| Arc::new(tokio::sync::Mutex::new(b)));
        let conn = ConnectionManager::new_with_config(client, cfg).await?;
        Ok(RedisSink {
            conn,
            bulk,
            prefix: prefix.to_string(),
            pruned: Arc::default(),
        })
    }

    /// The name of the connection writing the latest values (`CLIENT LIST` shows it).
    pub fn bulk_client_name(prefix: &str) -> String {
        bulk::client_name(prefix)
    }

    /// The same sink writing the latest values through the `redis` crate's connection, as
    /// it does on TLS (tests compare the two paths).
    pub fn without_bulk_writer(mut self) -> RedisSink {
        self.bulk = None;
        self
    }

    pub async fn healthcheck(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    /// The newest sample of every vehicle of `fleet`, in vehicle id order (entries that do not
    /// decode are skipped and logged).
    pub async fn fleet_latest(&self, fleet: &str) -> Result<Vec<TelemetryEvent>> {
        let mut c = self.conn.clone();
        let all: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(keys::fleet_vehicles(&self.prefix, fleet))
            .query_async(&mut c)
            .await?;
        Ok(readable_latest(fleet, &all).collect())
    }

    /// Writes the batch in one pipeline. Idempotent: the same batch written twice leaves the
    /// same values.
    pub async fn write(&self, batch: &RedisBatch) -> Result<()> {
        let mut latest = EncodedLatest::default();
        for e in batch.latest.values() {
            latest.push(e);
        }
        self.write_with_latest(latest.iter(), batch).await
    }

    /// [`Self::write`] with `latest` (one newest sample per vehicle, encoded) in place of
    /// `batch.latest`: a pipeline that keeps its events elsewhere encodes them while it has
    /// them at hand.
    pub async fn write_with_latest<'e>(
        &self,
        latest: impl IntoIterator<Item = LatestEntry<'e>>,
        batch: &RedisBatch,
    ) -> Result<()> {
        // Per fleet, one HSET of many vehicles into each hash (at most `LATEST_PER_HSET` per
        // command): the keys are formatted once, and Redis parses a few commands, not two per
        // vehicle. Grouped by hash (the fleets' order does not matter: each writes its own
        // keys), not by comparing fleet ids in an ordered map; with hashbrown's foldhash
        // (seeded per process, as the window kernel's vehicles), a fraction of SipHash's cost.
        let mut by_fleet: hashbrown::HashMap<&str, Vec<LatestEntry<'e>>> = Default::default();
        let mut n_latest = 0;
        for e in latest {
            by_fleet.entry(e.fleet_id).or_default().push(e);
            n_latest += 1;
        }
        if n_latest == 0 && batch.fleet_partials.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut pipe = redis::pipe();
        let mut pipe_commands = 0;
        let mut bulk = match &self.bulk {
            Some(b) => Some(b.lock().await),
            None => None,
        };
        if let Some(b) = bulk.as_mut() {
            b.begin();
        }
        let mut bulk_commands = 0;
        for (fleet, events) in by_fleet {
            let (vehicles_key, live_key) = (
                keys::fleet_vehicles(&self.prefix, fleet),
                keys::fleet_live(&self.prefix, fleet),
            );
            for chunk in events.chunks(LATEST_PER_HSET) {
                if let Some(bulk) = bulk.as_mut() {
                    let out = bulk.commands_appended();
                    let ids = |e: &LatestEntry<'e>| e.vehicle_id.as_bytes();
                    bulk::put_hset(out, &vehicles_key, chunk.iter().map(|e| (ids(e), e.value)));
                    bulk::put_hset(out, &live_key, chunk.iter().map(|e| (ids(e), e.sample)));
                    bulk_commands += 2;
                    continue;
                }
                let mut vehicles = redis::cmd("HSET");
                vehicles.arg(&vehicles_key);
                let mut live = redis::cmd("HSET");
                live.arg(&live_key);
                for e in chunk {
                    vehicles.arg(e.vehicle_id).arg(e.value);
                    live.arg(e.vehicle_id).arg(e.sample);
                }
                pipe.add_command(vehicles)
                    .ignore()
                    .add_command(live)
                    .ignore();
                pipe_commands += 2;
            }
        }
        // Per fleet key: the newest window written decides what is too old to keep.
        let mut newest: BTreeMap<String, (i64, &str)> = BTreeMap::new();
        for ((fleet, ws, partition), kpi) in &batch.fleet_partials {
            let key = keys::fleet_windows(&self.prefix, fleet);
            let json = serde_json::to_string(kpi).expect("kpi serialises");
            pipe.hset(&key, keys::fleet_window_field(*ws, *partition), json)
                .ignore()
                .cmd("ZADD")
                .arg(keys::fleet_window_index(&self.prefix, fleet))
                .arg("GT")
                .arg(*ws)
                .arg(*partition)
                .ignore();
            pipe_commands += 2;
            let n = newest.entry(key).or_insert((*ws, fleet));
            n.0 = n.0.max(*ws);
        }
        // Prune a key when its cutoff moved (once per window per fleet, not per flush).
        let mut pruning = Vec::new();
        {
            let pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            for (key, (ws, fleet)) in newest {
                let cutoff = ws - (keys::KPI_WINDOWS_KEPT - 1) * batch.window_ms.max(1);
                if pruned.get(&key).is_none_or(|c| *c < cutoff) {
                    pipe.cmd("EVAL")
                        .arg(PRUNE_FLEET_WINDOWS)
                        .arg(2)
                        .arg(&key)
                        .arg(keys::fleet_window_index(&self.prefix, fleet))
                        .arg(cutoff)
                        .ignore();
                    pipe_commands += 1;
                    pruning.push((key, cutoff));
                }
            }
        }
        let mut c = self.conn.clone();
        let piped = async {
            if pipe_commands == 0 {
                return Ok(());
            }
            pipe.query_async::<()>(&mut c).await.map_err(Into::into)
        };
        let sent = async {
            match bulk.as_mut() {
                Some(bulk) => bulk.send(bulk_commands).await,
                None => Ok(()),
            }
        };
        let (piped, sent): (Result<()>, Result<()>) = tokio::join!(piped, sent);
        let r = sent.and(piped);
        if r.is_ok() {
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if pruned.len() > 100_000 {
                pruned.clear();
            }
            pruned.extend(pruning);
        }
        observe("redis", n_latest + batch.fleet_partials.len(), started, &r);
        r
    }

    /// The marker saying the hot state of telemetry partition `partition` is in this Redis.
    fn hot_state_marker(&self, partition: i32) -> String {
        keys::hot_state_marker(&self.prefix, partition)
    }

    /// Of `partitions`, those whose hot state this Redis does not hold: their marker is gone
    /// (the server restarted empty, was flushed or failed over to a replica without it) or was
    /// never set (a fresh Redis). One round trip.
    pub async fn missing_hot_state(&self, partitions: &[i32]) -> Result<Vec<i32>> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let markers: Vec<String> = partitions
            .iter()
            .map(|p| self.hot_state_marker(*p))
            .collect();
        let mut c = self.conn.clone();
        let found: Vec<Option<String>> =
            redis::cmd("MGET").arg(&markers).query_async(&mut c).await?;
        Ok(partitions
            .iter()
            .zip(found)
            .filter(|(_, f)| f.is_none())
            .map(|(p, _)| *p)
            .collect())
    }

    /// Records that the hot state of `partitions` is complete in this Redis.
    pub async fn mark_hot_state(&self, partitions: &[i32]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for p in partitions {
            pipe.set(self.hot_state_marker(*p), "1").ignore();
        }
        let mut c = self.conn.clone();
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }
}

/// The hot state of telemetry `partitions` as ClickHouse holds it — the newest sample of each
/// of their vehicles and the newest version of their fleet partials of the newest
/// [`keys::KPI_WINDOWS_KEPT`] windows — as a batch that [`RedisSink::write`] re-publishes.
pub async fn rebuild_from_clickhouse(
    ch: &crate::clickhouse::ClickHouseSink,
    partitions: &[i32],
    window_ms: i64,
) -> Result<RedisBatch> {
    let mut batch = RedisBatch {
        window_ms,
        ..RedisBatch::default()
    };
    for &p in partitions {
        for row in ch.latest_raw_rows(p).await? {
            if let Some(e) = row.to_event() {
                batch.latest.insert(e.vehicle_id.clone(), e);
            }
        }
        for row in ch
            .recent_fleet_partials(p, keys::KPI_WINDOWS_KEPT, window_ms)
            .await?
        {
            let kpi = FleetPartialKpi {
                window_start_ms: row.window_start_ms,
                window_end_ms: row.window_end_ms,
                source_partition: row.source_partition,
                version: row.version,
                counters: row.counters(),
            };
            batch
                .fleet_partials
                .insert((row.fleet_id, row.window_start_ms, p), kpi);
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use atlasmesh_core::keys::{decode_latest, LiveSample};
    use atlasmesh_core::{TelemetryEvent, VehicleStatus};

    use super::EncodedLatest;

    fn event(fleet: &str, vehicle: &str, ts_ms: i64) -> TelemetryEvent {
        TelemetryEvent {
            event_id: format!("{vehicle}-{ts_ms}"),
            fleet_id: fleet.into(),
            vehicle_id: vehicle.into(),
            ts_ms,
            seq: ts_ms / 1000,
            lat: 45.5,
            lon: -73.5,
            speed_kph: 31.25,
            odometer_km: 1234.5,
            energy_pct: 80.125,
            energy_used_kwh: 1.5,
            status: VehicleStatus::EnRoute,
            mission_id: Some("m1".into()),
            zone_id: None,
            payload_kg: 12.0,
            fault_codes: vec!["P0A80".into()],
        }
    }

    /// Each entry gives back its ids, the stored value (which decodes to the event) and the
    /// live sample, whatever was pushed around it; clearing keeps nothing.
    #[test]
    fn encoded_latest_gives_back_each_entry() {
        let events = [
            event("fleet-001", "f001-v0001", 1_700_000_000_000),
            event("fleet-ß", "vé", 1_700_000_001_000),
            event("", "", 0),
            event("fleet-001", "f001-v0002", -5),
        ];
        let mut enc = EncodedLatest::default();
        for round in 0..2 {
            assert!(enc.is_empty());
            let at: Vec<usize> = events.iter().map(|e| enc.push(e)).collect();
            assert_eq!(enc.len(), events.len());
            for (e, i) in events.iter().zip(at) {
                let got = enc.get(i);
                assert_eq!(
                    (got.fleet_id, got.vehicle_id),
                    (&*e.fleet_id, &*e.vehicle_id)
                );
                assert_eq!(decode_latest(got.value).as_ref(), Ok(e), "round {round}");
                let sample = std::str::from_utf8(got.sample).unwrap();
                assert_eq!(LiveSample::parse(sample), Some(LiveSample::from(e)));
            }
            assert_eq!(enc.iter().count(), events.len());
            assert_eq!(enc.newest().count(), events.len());
            enc.supersede(1);
            let newest: Vec<_> = enc.newest().map(|e| e.vehicle_id).collect();
            assert_eq!(newest, ["f001-v0001", "", "f001-v0002"]);
            enc.clear();
        }
    }
}
