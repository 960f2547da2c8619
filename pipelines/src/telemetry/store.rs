//! The telemetry pipeline's writes: the batch of outputs and its staged flush to ClickHouse,
//! Redis and Kafka.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use atlasmesh_core::clock::{now_ms, FutureBoundClock};
use atlasmesh_core::config::Topics;
use atlasmesh_core::TelemetryEvent;
use atlasmesh_schemas::{Codec, DeadLetterRecord, LastWriter, SchemaKind, WindowMetricsRecord};
use atlasmesh_sinks::clickhouse::{
    ClickHouseSink, FleetPartialRow, RawEvent, RawRows, VehicleWindowRow,
};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use atlasmesh_sinks::redis::{
    rebuild_from_clickhouse, EncodedLatest, LatestEntry, RedisBatch, RedisSink,
};

use crate::dlq::Decoded;
use crate::runner::InMessage;
use crate::{Error, Result};

/// Outputs gathered since the last checkpoint. `flush` writes ClickHouse then Redis and, at
/// the same time, the closed windows and dead letters then the watermarks to Kafka,
/// remembering which stages are done so a retry does not repeat them.
#[derive(Default)]
pub struct TelemetryBatch {
    pub consumed: usize,
    /// The message being handled, decoded (its text buffers reused from message to message,
    /// so an event costs no allocation), and where it was read once accepted. Nothing of it
    /// is kept but what it is encoded into when accepted: the batch holds no events, so the
    /// memory a checkpoint's events pass through is a few buffers written in order
    /// (BENCHMARKS §3m).
    next: RawEvent,
    /// The accepted events' `telemetry_raw` rows, encoded as they are accepted.
    raw_rows: RawRows,
    /// The latest values (what Redis stores of a vehicle's newest sample) of the accepted
    /// events that were their vehicle's newest, encoded as they are accepted; a vehicle's
    /// later sample in the same batch supersedes its entry.
    encoded: EncodedLatest,
    /// Each vehicle's newest entry in `encoded`, found by the vehicle id the entry holds.
    latest: hashbrown::HashTable<usize>,
    ids: hashbrown::DefaultHashBuilder,
    pub vehicle_rows: Vec<VehicleWindowRow>,
    pub fleet_rows: Vec<FleetPartialRow>,
    pub redis: RedisBatch,
    pub metrics: Vec<WindowMetricsRecord>,
    pub dlq: Vec<DeadLetterRecord>,
    /// Source partition → (closed through, idle): its watermark after this batch.
    pub marks: BTreeMap<i32, (i64, bool)>,
    /// Windows closed for the first time in this batch (not re-emissions): what alert rules
    /// and dashboards wait for.
    pub first_closes: usize,
    /// The events of the batch as the pipeline's counters count them.
    pub counts: EventCounts,
    /// The processing clock events are validated against (kept across batches).
    pub clock: FutureBoundClock,
    /// The writer schema of the last message decoded (kept across batches).
    writer: LastWriter,
    clickhouse_done: bool,
    redis_done: bool,
    windows_done: bool,
}

/// Accepted (late among them) and duplicate events of a batch, added to
/// `atlasmesh_events_accepted_total`, `..._late_accepted_total` and `..._duplicate_total` once the
/// batch is written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventCounts {
    pub accepted: u64,
    pub late_accepted: u64,
    pub duplicate: u64,
}

impl TelemetryBatch {
    /// Empty again, its buffers kept.
    pub fn clear(&mut self) {
        self.consumed = 0;
        self.counts = EventCounts::default();
        self.raw_rows.clear();
        self.latest.clear();
        self.encoded.clear();
        self.vehicle_rows.clear();
        self.fleet_rows.clear();
        self.redis.clear();
        self.metrics.clear();
        self.dlq.clear();
        self.marks.clear();
        self.first_closes = 0;
        self.clickhouse_done = false;
        self.redis_done = false;
        self.windows_done = false;
    }

    /// The accepted events' `telemetry_raw` rows.
    pub fn raw_rows(&self) -> &RawRows {
        &self.raw_rows
    }

    /// Decodes `msg` over the last message's event (its text buffers reused); on
    /// `Decoded::Ok` [`TelemetryBatch::next_event`] is the message's event.
    pub async fn decode_next(&mut self, codec: &Codec, msg: &InMessage<'_>) -> Result<Decoded<()>> {
        let ev = &mut self.next.event;
        crate::dlq::decode_telemetry_into(codec, &mut self.writer, msg, ev).await
    }

    /// The event [`TelemetryBatch::decode_next`] decoded last.
    pub fn next_event(&self) -> &TelemetryEvent {
        &self.next.event
    }

    /// Accepts the event [`TelemetryBatch::decode_next`] decoded last, read at
    /// `partition`/`offset`: its raw row, and its latest value if `newest` (the newest of its
    /// vehicle so far), encoded while it is at hand.
    pub fn accept_next(&mut self, partition: i32, offset: i64, newest: bool) {
        self.next.partition = partition;
        self.next.offset = offset;
        self.raw_rows.push(&self.next);
        if newest {
            let i = self.encoded.push(&self.next.event);
            let (encoded, ids) = (&self.encoded, &self.ids);
            let vehicle = self.next.event.vehicle_id.as_str();
            match self.latest.entry(
                ids.hash_one(vehicle),
                |&j| encoded.get(j).vehicle_id == vehicle,
                |&j| ids.hash_one(encoded.get(j).vehicle_id),
            ) {
                hashbrown::hash_table::Entry::Occupied(mut o) => {
                    let replaced = std::mem::replace(o.get_mut(), i);
                    self.encoded.supersede(replaced);
                }
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
    }

    /// The latest values to write: each vehicle's newest entry, in the order accepted.
    fn latest_values(&self) -> impl Iterator<Item = LatestEntry<'_>> {
        self.encoded.newest()
    }

    /// Drops what a replay does not rewrite: Redis (the newest state, which a past range
    /// cannot change) and the topic.
    pub(super) fn keep_clickhouse_only(&mut self) {
        self.latest.clear();
        self.encoded.clear();
        self.redis.clear();
        self.metrics.clear();
        self.dlq.clear();
        self.marks.clear();
    }

    pub(super) async fn flush(
        &mut self,
        ch: &ClickHouseSink,
        redis: &RedisSink,
        producer: &KafkaProducer,
        codec: &Codec,
        topics: &Topics,
        (source_partitions, metrics_partitions): (i32, i32),
    ) -> Result<()> {
        let now = now_ms();
        if !self.clickhouse_done {
            self.raw_rows.set_ingested_at(now);
            self.raw_rows.share();
            for r in &mut self.vehicle_rows {
                r.emitted_at_ms = now;
            }
            for r in &mut self.fleet_rows {
                r.emitted_at_ms = now;
            }
        }
        // The stores (ClickHouse, then Redis, which may be rebuilt from ClickHouse) and the
        // topic (closed windows, then watermarks) at once: the alerts and performance
        // pipelines read the topic, not the stores, so a closed window does not wait for the
        // inserts. The offsets are stored only after both.
        let this = &*self;
        let (stores, topic) = tokio::join!(
            this.write_stores(ch, redis),
            this.send_topic(
                producer,
                codec,
                topics,
                (source_partitions, metrics_partitions)
            ),
        );
        let (clickhouse_done, stores) = stores;
        let (windows_done, topic) = topic;
        self.clickhouse_done |= clickhouse_done;
        self.redis_done |= stores.is_ok();
        self.windows_done |= windows_done;
        stores?;
        topic
    }

    /// ClickHouse (its three tables at once), then Redis; the first of the pair says whether
    /// ClickHouse holds the batch (done now or before), whatever Redis did.
    async fn write_stores(&self, ch: &ClickHouseSink, redis: &RedisSink) -> (bool, Result<()>) {
        if !self.clickhouse_done {
            // Three tables, three inserts at once (each idempotent: a retry writes all three).
            if let Err(e) = tokio::try_join!(
                ch.write_raw(&self.raw_rows),
                ch.write_vehicle_windows(&self.vehicle_rows),
                ch.write_fleet_partials(&self.fleet_rows),
            ) {
                return (false, Err(e.into()));
            }
        }
        if self.redis_done {
            return (true, Ok(()));
        }
        (true, self.write_redis(ch, redis).await)
    }

    async fn write_redis(&self, ch: &ClickHouseSink, redis: &RedisSink) -> Result<()> {
        // The partitions this batch speaks for (every one this worker consumes sends a
        // watermark at least once per checkpoint interval, idle or not).
        let partitions: Vec<i32> = self.marks.keys().copied().collect();
        let missing = redis.missing_hot_state(&partitions).await?;
        let latest = || self.latest_values();
        if missing.is_empty() {
            return Ok(redis.write_with_latest(latest(), &self.redis).await?);
        }
        // ClickHouse holds everything up to this batch (written before): re-publish it, then
        // this batch on top, then say the partitions are complete.
        let started = std::time::Instant::now();
        let rebuilt = rebuild_from_clickhouse(ch, &missing, self.redis.window_ms).await?;
        redis.write(&rebuilt).await?;
        redis.write_with_latest(latest(), &self.redis).await?;
        redis.mark_hot_state(&missing).await?;
        tracing::info!(
            partitions = ?missing,
            vehicles = rebuilt.latest.len(),
            fleet_partials = rebuilt.fleet_partials.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Redis did not hold the hot state of these partitions (restarted empty or new); re-published it from ClickHouse."
        );
        Ok(())
    }

    /// The closed windows and the dead letters, then the watermarks, each acknowledged; the
    /// first of the pair says whether the windows are on the topic (now or before).
    async fn send_topic(
        &self,
        producer: &KafkaProducer,
        codec: &Codec,
        topics: &Topics,
        (source_partitions, metrics_partitions): (i32, i32),
    ) -> (bool, Result<()>) {
        if !self.windows_done {
            if let Err(e) = self.send_windows(producer, codec, topics).await {
                return (false, Err(e));
            }
        }
        // Watermarks only once every window they vouch for is acknowledged: a settler must
        // never read a watermark before the partials it covers.
        let r = async {
            let mut records =
                Vec::with_capacity(self.marks.len() * metrics_partitions.max(0) as usize);
            for (&source, &(closed_until, idle)) in &self.marks {
                let r =
                    WindowMetricsRecord::watermark(source, source_partitions, closed_until, idle);
                let payload = codec
                    .encode(&topics.metrics, SchemaKind::Metrics, &r)
                    .await
                    .map_err(|e| Error::encode("watermark", &e))?;
                for partition in 0..metrics_partitions {
                    records.push(OutRecord {
                        topic: topics.metrics.clone(),
                        key: None,
                        payload: payload.clone(),
                        headers: vec![],
                        partition: Some(partition),
                        timestamp_ms: None,
                    });
                }
            }
            Ok(producer.send_all("kafka", &records).await?)
        };
        (true, r.await)
    }

    /// The closed windows and the dead letters, acknowledged.
    async fn send_windows(
        &self,
        producer: &KafkaProducer,
        codec: &Codec,
        topics: &Topics,
    ) -> Result<()> {
        let mut records = Vec::with_capacity(self.metrics.len() + self.dlq.len());
        for r in &self.metrics {
            let payload = codec
                .encode(&topics.metrics, SchemaKind::Metrics, r)
                .await
                .map_err(|e| Error::encode("metrics record", &e))?;
            records.push(OutRecord {
                topic: topics.metrics.clone(),
                key: Some(r.fleet_id.clone().into_bytes()),
                payload,
                headers: vec![],
                partition: None,
                timestamp_ms: None,
            });
        }
        for d in &self.dlq {
            records.push(crate::dlq::encode(codec, topics, d).await?);
        }
        Ok(producer.send_all("kafka", &records).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use atlasmesh_core::keys::encode_latest;
    use atlasmesh_core::{TelemetryEvent, VehicleStatus};

    use super::TelemetryBatch;

    fn event(vehicle: usize, ts_ms: i64) -> TelemetryEvent {
        TelemetryEvent {
            event_id: format!("v{vehicle}-{ts_ms}"),
            fleet_id: format!("fleet-{}", vehicle % 2),
            vehicle_id: format!("v{vehicle}"),
            ts_ms,
            seq: ts_ms,
            lat: 45.5,
            lon: -73.5,
            speed_kph: 10.0 + ts_ms as f64,
            odometer_km: 100.0,
            energy_pct: 50.0,
            energy_used_kwh: 1.0,
            status: VehicleStatus::EnRoute,
            mission_id: None,
            zone_id: Some("z1".into()),
            payload_kg: 0.0,
            fault_codes: vec![],
        }
    }

    /// Accepts `e` as the runner's decode and the kernel would.
    fn accept(batch: &mut TelemetryBatch, e: TelemetryEvent, offset: i64, newest: bool) {
        batch.next.event = e;
        batch.accept_next(0, offset, newest);
    }

    /// What the flush writes to the `vehicles` hashes: vehicle → (fleet, stored value).
    fn written(batch: &TelemetryBatch) -> BTreeMap<String, (String, Vec<u8>)> {
        let written: BTreeMap<_, _> = batch
            .latest_values()
            .map(|e| {
                let entry = (e.fleet_id.to_string(), e.value.to_vec());
                (e.vehicle_id.to_string(), entry)
            })
            .collect();
        assert_eq!(
            written.len(),
            batch.latest_values().count(),
            "one per vehicle"
        );
        written
    }

    /// Each vehicle's newest accepted event is what Redis gets (a later sample supersedes
    /// its entry, a late one does not), and every accepted event has its raw row, batch after
    /// batch with the buffers reused.
    #[test]
    fn latest_values_are_the_newest_events_and_every_event_a_row() {
        let mut batch = TelemetryBatch::default();
        let mut ts = 0;
        for (round, per_vehicle) in [3, 1, 2, 1].into_iter().enumerate() {
            let (mut expected, mut offset) = (BTreeMap::new(), 0);
            for _ in 0..per_vehicle {
                ts += 1000;
                for v in 0..4 {
                    let e = event(v, ts);
                    let value = encode_latest(&e);
                    expected.insert(e.vehicle_id.clone(), (e.fleet_id.clone(), value));
                    accept(&mut batch, e, offset, true);
                    offset += 1;
                }
                // A late sample the kernel accepts but is no vehicle's newest.
                accept(&mut batch, event(0, ts - 500), offset, false);
                offset += 1;
            }
            assert_eq!(written(&batch), expected, "round {round}");
            assert_eq!(batch.raw_rows().len(), offset as usize, "round {round}");
            batch.clear();
            assert!(written(&batch).is_empty() && batch.raw_rows().is_empty());
        }
    }
}
