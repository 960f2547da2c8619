//! The telemetry pipeline's writes: the batch of outputs and its staged flush to ClickHouse,
//! Redis and Kafka.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use atlasmesh_core::clock::{now_ms, FutureBoundClock};
use atlasmesh_core::config::Topics;
use atlasmesh_core::TelemetryEvent;
use atlasmesh_schemas::{Codec, DeadLetterRecord, LastWriter, SchemaKind, WindowMetricsRecord};
use atlasmesh_sinks::clickhouse::{ClickHouseSink, FleetPartialRow, RawEvent, VehicleWindowRow};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use atlasmesh_sinks::redis::{rebuild_from_clickhouse, RedisBatch, RedisSink};

use crate::dlq::Decoded;
use crate::runner::InMessage;
use crate::{Error, Result};

/// Outputs gathered since the last checkpoint. `flush` writes ClickHouse then Redis and, at
/// the same time, the closed windows and dead letters then the watermarks to Kafka,
/// remembering which stages are done so a retry does not repeat them.
#[derive(Default)]
pub struct TelemetryBatch {
    pub consumed: usize,
    /// Accepted events, in order, in `raw[..accepted]`: the raw rows, and the latest values
    /// they hold. The slots after them are buffers kept from earlier batches: the next
    /// message is decoded into `raw[accepted]` (its text buffers reused, so an event costs no
    /// allocation once the batch has been as large before) and kept by counting it.
    raw: Vec<RawEvent>,
    accepted: usize,
    /// Index in `raw` of each vehicle's newest event (the latest value Redis gets), found by
    /// the vehicle id of the event it points at: no id is copied.
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
        self.accepted = 0;
        self.latest.clear();
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

    /// The accepted events, in order.
    pub fn raw(&self) -> &[RawEvent] {
        &self.raw[..self.accepted]
    }

    /// Decodes `msg` into the next slot, overwriting what it held (its text buffers reused);
    /// on `Decoded::Ok` [`TelemetryBatch::next_event`] is the message's event.
    pub async fn decode_next(&mut self, codec: &Codec, msg: &InMessage<'_>) -> Result<Decoded<()>> {
        if self.raw.len() == self.accepted {
            self.raw.push(RawEvent::default());
        }
        let ev = &mut self.raw[self.accepted].event;
        crate::dlq::decode_telemetry_into(codec, &mut self.writer, msg, ev).await
    }

    /// The event [`TelemetryBatch::decode_next`] decoded last.
    pub fn next_event(&self) -> &TelemetryEvent {
        &self.raw[self.accepted].event
    }

    /// Keeps the event [`TelemetryBatch::decode_next`] decoded last as accepted, read at
    /// `partition`/`offset`; `newest`: the newest of its vehicle so far (its latest value).
    pub fn accept_next(&mut self, partition: i32, offset: i64, newest: bool) {
        let i = self.accepted;
        let raw = &mut self.raw[i];
        raw.partition = partition;
        raw.offset = offset;
        if newest {
            let (raws, ids) = (&self.raw, &self.ids);
            let vehicle = raws[i].event.vehicle_id.as_str();
            let id_of = |j: &usize| ids.hash_one(raws[*j].event.vehicle_id.as_str());
            match self.latest.entry(
                ids.hash_one(vehicle),
                |j| raws[*j].event.vehicle_id == vehicle,
                id_of,
            ) {
                hashbrown::hash_table::Entry::Occupied(mut o) => *o.get_mut() = i,
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        self.accepted += 1;
    }

    /// Drops what a replay does not rewrite: Redis (the newest state, which a past range
    /// cannot change) and the topic.
    pub(super) fn keep_clickhouse_only(&mut self) {
        self.latest.clear();
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
            this.write_stores(ch, redis, now),
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
    async fn write_stores(
        &self,
        ch: &ClickHouseSink,
        redis: &RedisSink,
        ingested_at_ms: i64,
    ) -> (bool, Result<()>) {
        if !self.clickhouse_done {
            // Three tables, three inserts at once (each idempotent: a retry writes all three).
            if let Err(e) = tokio::try_join!(
                ch.write_raw(self.raw(), ingested_at_ms),
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
        let latest = || self.latest.iter().map(|&i| &self.raw[i].event);
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
