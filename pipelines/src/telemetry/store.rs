//! The telemetry pipeline's writes: the batch of outputs and its staged flush to ClickHouse,
//! Redis and Kafka.

use std::collections::BTreeMap;

use atlasmesh_core::clock::now_ms;
use atlasmesh_core::config::Topics;
use atlasmesh_schemas::{Codec, DeadLetterRecord, SchemaKind, WindowMetricsRecord};
use atlasmesh_sinks::clickhouse::{
    ClickHouseSink, FleetPartialRow, RawTelemetryRow, VehicleWindowRow,
};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use atlasmesh_sinks::redis::{rebuild_from_clickhouse, RedisBatch, RedisSink};

use crate::{Error, Result};

/// Outputs gathered since the last checkpoint. `flush` writes them in order ClickHouse →
/// Redis → Kafka (windows and dead letters, then watermarks), remembering which stages are
/// done so a retry does not repeat them.
#[derive(Default)]
pub struct TelemetryBatch {
    pub consumed: usize,
    pub raw: Vec<RawTelemetryRow>,
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
    clickhouse_done: bool,
    redis_done: bool,
    windows_done: bool,
}

impl TelemetryBatch {
    /// Empty again, its buffers kept.
    pub fn clear(&mut self) {
        self.consumed = 0;
        self.raw.clear();
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

    pub(super) async fn flush(
        &mut self,
        ch: &ClickHouseSink,
        redis: &RedisSink,
        producer: &KafkaProducer,
        codec: &Codec,
        topics: &Topics,
        (source_partitions, metrics_partitions): (i32, i32),
    ) -> Result<()> {
        if !self.clickhouse_done {
            let now = now_ms();
            for r in &mut self.raw {
                r.ingested_at_ms = now;
            }
            for r in &mut self.vehicle_rows {
                r.emitted_at_ms = now;
            }
            for r in &mut self.fleet_rows {
                r.emitted_at_ms = now;
            }
            // Three tables, three inserts at once (each idempotent: a retry writes all three).
            tokio::try_join!(
                ch.write_raw(&self.raw),
                ch.write_vehicle_windows(&self.vehicle_rows),
                ch.write_fleet_partials(&self.fleet_rows),
            )?;
            self.clickhouse_done = true;
        }
        if !self.redis_done {
            // The partitions this batch speaks for (every one this worker consumes sends a
            // watermark at least once per checkpoint interval, idle or not).
            let partitions: Vec<i32> = self.marks.keys().copied().collect();
            let missing = redis.missing_hot_state(&partitions).await?;
            if !missing.is_empty() {
                // ClickHouse holds everything up to this batch (written above): re-publish
                // it, then this batch on top, then say the partitions are complete.
                let started = std::time::Instant::now();
                let rebuilt = rebuild_from_clickhouse(ch, &missing, self.redis.window_ms).await?;
                redis.write(&rebuilt).await?;
                redis.write(&self.redis).await?;
                redis.mark_hot_state(&missing).await?;
                tracing::info!(
                    partitions = ?missing,
                    vehicles = rebuilt.latest.len(),
                    fleet_partials = rebuilt.fleet_partials.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Redis did not hold the hot state of these partitions (restarted empty or new); re-published it from ClickHouse."
                );
            } else {
                redis.write(&self.redis).await?;
            }
            self.redis_done = true;
        }
        if !self.windows_done {
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
            producer.send_all("kafka", &records).await?;
            self.windows_done = true;
        }
        // Watermarks only once every window they vouch for is acknowledged: a settler must
        // never read a watermark before the partials it covers.
        let mut records = Vec::with_capacity(self.marks.len() * metrics_partitions.max(0) as usize);
        for (&source, &(closed_until, idle)) in &self.marks {
            let r = WindowMetricsRecord::watermark(source, source_partitions, closed_until, idle);
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
        producer.send_all("kafka", &records).await?;
        Ok(())
    }
}
