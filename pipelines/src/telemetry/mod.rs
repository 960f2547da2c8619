//! The telemetry pipeline: raw rows, per-vehicle event-time windows, fleet partials, latest
//! values, closed windows to `fleet.metrics.v1`, bad input to `fleet.dlq.v1`.

mod store;

use std::time::Duration;

use atlasmesh_core::config::{Config, Topics};
use atlasmesh_core::keys::FleetPartialKpi;
use atlasmesh_core::metric_names as m;
use atlasmesh_core::telemetry::{validate, ValidationLimits};
use atlasmesh_core::window::{
    Ingest, PartitionWindows, WindowParams, WindowResult, WindowScope, WindowsDelta,
};
use atlasmesh_schemas::{Codec, DeadLetterReason, WindowMetricsRecord};
use atlasmesh_sinks::clickhouse::{ClickHouseSink, FleetPartialRow, VehicleWindowRow};
use atlasmesh_sinks::kafka::KafkaProducer;
use atlasmesh_sinks::redis::RedisSink;

pub use store::{EventCounts, TelemetryBatch};

use crate::dlq::Decoded;
use crate::runner::{Cadence, InMessage, Pipeline};
use crate::{Error, Result};

pub const NAME: &str = "telemetry";

pub struct TelemetryPipeline {
    codec: Codec,
    params: WindowParams,
    limits: ValidationLimits,
    topics: Topics,
    clickhouse: ClickHouseSink,
    redis: RedisSink,
    producer: KafkaProducer,
    /// Partitions of the telemetry topic (every watermark carries it) and of the metrics topic
    /// (every watermark goes to each).
    source_partitions: i32,
    metrics_partitions: i32,
    cadence: Cadence,
    counters: Counters,
}

/// The pipeline's event counters, registered once (a lookup costs more than the increment)
/// and incremented per batch written ([`EventCounts`]).
struct Counters {
    accepted: metrics::Counter,
    late_accepted: metrics::Counter,
    duplicate: metrics::Counter,
    windows: metrics::Counter,
}

impl Counters {
    fn register() -> Counters {
        Counters {
            accepted: metrics::counter!(m::EVENTS_ACCEPTED, "pipeline" => NAME),
            late_accepted: metrics::counter!(m::EVENTS_LATE_ACCEPTED, "pipeline" => NAME),
            duplicate: metrics::counter!(m::EVENTS_DUPLICATE, "pipeline" => NAME),
            windows: metrics::counter!(m::WINDOWS_EMITTED, "pipeline" => NAME),
        }
    }
}

impl TelemetryPipeline {
    fn dead_letter(
        &self,
        msg: &InMessage<'_>,
        reason: DeadLetterReason,
        error: String,
        batch: &mut TelemetryBatch,
    ) {
        batch
            .dlq
            .push(crate::dlq::dead_letter(NAME, msg, reason, error));
    }

    fn push_results(&self, partition: i32, results: Vec<WindowResult>, batch: &mut TelemetryBatch) {
        if results.is_empty() {
            return;
        }
        self.counters.windows.increment(results.len() as u64);
        for r in results {
            batch.first_closes += usize::from(r.version == 1);
            batch
                .metrics
                .push(WindowMetricsRecord::from_result(&r, partition));
            match r.scope {
                WindowScope::Vehicle => batch
                    .vehicle_rows
                    .push(VehicleWindowRow::from_result(&r, partition)),
                WindowScope::FleetPartial => {
                    batch
                        .fleet_rows
                        .push(FleetPartialRow::from_result(&r, partition));
                    batch.redis.fleet_partials.insert(
                        (r.fleet_id.clone(), r.window_start_ms, partition),
                        FleetPartialKpi {
                            window_start_ms: r.window_start_ms,
                            window_end_ms: r.window_end_ms,
                            source_partition: partition,
                            version: r.version,
                            counters: r.counters,
                        },
                    );
                }
            }
        }
    }
}

impl Pipeline for TelemetryPipeline {
    const NAME: &'static str = NAME;
    type State = PartitionWindows;
    type Batch = TelemetryBatch;

    async fn build(cfg: &Config) -> Result<Self> {
        let limits = ValidationLimits {
            max_future_ms: cfg.telemetry.max_future_ms,
            ..ValidationLimits::default()
        };
        let producer = KafkaProducer::new(&cfg.kafka)?;
        let source_partitions = producer.partition_count(&cfg.topics.telemetry).await?;
        let metrics_partitions = producer.partition_count(&cfg.topics.metrics).await?;
        Ok(TelemetryPipeline {
            codec: Codec::from_config(&cfg.schema_registry)
                .map_err(|e| Error::setup("schema registry", e))?,
            params: WindowParams::from(&cfg.telemetry),
            limits,
            topics: cfg.topics.clone(),
            clickhouse: ClickHouseSink::new(&cfg.clickhouse),
            redis: RedisSink::connect(&cfg.redis.url, &cfg.redis.key_prefix).await?,
            producer,
            source_partitions,
            metrics_partitions,
            cadence: Cadence::new(
                cfg,
                cfg.telemetry.tick_ms,
                Some(cfg.telemetry.idle_flush_ms),
            ),
            counters: Counters::register(),
        })
    }

    fn topic(&self) -> &str {
        &self.topics.telemetry
    }

    fn tick_interval(&self) -> Duration {
        self.cadence.tick
    }

    fn idle_flush(&self) -> Duration {
        self.cadence.idle_flush
    }

    async fn handle(
        &self,
        state: &mut PartitionWindows,
        msg: &InMessage<'_>,
        batch: &mut TelemetryBatch,
    ) -> Result<()> {
        batch.redis.window_ms = self.params.window_ms;
        batch.consumed += 1;
        // Decoded into the batch's next slot; kept there only if the kernel accepts it.
        match batch.decode_next(&self.codec, msg).await? {
            Decoded::Ok(()) => {}
            Decoded::DeadLetter(reason, error) => {
                self.dead_letter(msg, reason, error, batch);
                return Ok(());
            }
        }
        let now = batch
            .clock
            .now_for(batch.next_event().ts_ms, self.limits.max_future_ms);
        let ev = batch.next_event();
        if let Err(e) = validate(ev, now, &self.limits) {
            self.dead_letter(msg, DeadLetterReason::Invalid, e.to_string(), batch);
            return Ok(());
        }
        let ts_ms = ev.ts_ms;
        let mut results = Vec::new();
        match state.ingest(&self.params, ev, &mut results) {
            Ingest::Accepted { late, newest } => {
                batch.counts.accepted += 1;
                batch.counts.late_accepted += u64::from(late);
                batch.accept_next(msg.partition, msg.offset, newest);
            }
            Ingest::Duplicate => {
                batch.counts.duplicate += 1;
            }
            Ingest::TooLate { closed_until_ms } => {
                let behind = closed_until_ms - ts_ms;
                self.dead_letter(
                    msg,
                    DeadLetterReason::Late,
                    format!(
                        "event time {} is {} ms behind the closed window frontier {}, beyond the allowed lateness of {} ms",
                        ts_ms, behind, closed_until_ms, self.params.allowed_lateness_ms
                    ),
                    batch,
                );
            }
        }
        self.push_results(msg.partition, results, batch);
        batch.marks.insert(
            msg.partition,
            (state.closed_until_ms().unwrap_or(i64::MIN), false),
        );
        Ok(())
    }

    /// Caught up: close every window the partition holds and tell every metrics partition
    /// that this source holds nothing open.
    fn on_idle(&self, state: &mut PartitionWindows, partition: i32, batch: &mut TelemetryBatch) {
        batch.redis.window_ms = self.params.window_ms;
        let mut results = Vec::new();
        state.flush_idle(&self.params, &mut results);
        self.push_results(partition, results, batch);
        batch.marks.insert(
            partition,
            (state.closed_until_ms().unwrap_or(i64::MIN), true),
        );
    }

    /// Still caught up: repeat the idle watermark, so the settlers move this source along with
    /// the others (see `crate::settle`).
    fn on_still_idle(
        &self,
        state: &mut PartitionWindows,
        partition: i32,
        batch: &mut TelemetryBatch,
    ) -> bool {
        batch.redis.window_ms = self.params.window_ms;
        batch.marks.insert(
            partition,
            (state.closed_until_ms().unwrap_or(i64::MIN), true),
        );
        false
    }

    async fn flush(&self, batch: &mut TelemetryBatch) -> Result<()> {
        let parts = (self.source_partitions, self.metrics_partitions);
        batch
            .flush(
                &self.clickhouse,
                &self.redis,
                &self.producer,
                &self.codec,
                &self.topics,
                parts,
            )
            .await?;
        // Counted per batch, once it is written (an increment per event costs more than
        // the count).
        let counts = std::mem::take(&mut batch.counts);
        self.counters.accepted.increment(counts.accepted);
        self.counters.late_accepted.increment(counts.late_accepted);
        self.counters.duplicate.increment(counts.duplicate);
        Ok(())
    }

    fn batch_len(&self, batch: &TelemetryBatch) -> usize {
        batch.consumed + batch.marks.len()
    }

    fn recycle(&self, batch: &mut TelemetryBatch) {
        batch.clear();
    }

    /// Windows closed for the first time: the alerts pipeline and the dashboards wait for
    /// them.
    fn urgent(&self, batch: &TelemetryBatch) -> bool {
        batch.first_closes > 0
    }

    const REPLAY: Option<&'static str> =
        Some("ClickHouse raw rows, vehicle windows and fleet partials (versioned upserts)");

    /// A replay rewrites the ClickHouse rows only: Redis holds the newest state (a past range
    /// cannot change it), and the windows, watermarks and dead letters on the topics were
    /// sent when the range was first processed.
    fn keep_for_replay(&self, batch: &mut TelemetryBatch) {
        batch.keep_clickhouse_only();
    }

    /// This release's layout, or the unbounded kernel's (earlier releases), upgraded.
    fn decode_state(&self, bytes: &[u8]) -> Result<PartitionWindows> {
        PartitionWindows::decode(bytes, &self.params)
            .map_err(|e| Error::Internal(format!("unreadable window state: {e}")))
    }

    fn start_delta(&self, state: &mut PartitionWindows) {
        state.start_journal();
    }

    /// The kernel's journal (accepted samples, versions, frontier), varint-encoded: its size
    /// follows the events since the last checkpoint, not the vehicles held.
    fn take_delta(&self, state: &mut PartitionWindows) -> Option<Vec<u8>> {
        state.take_delta_encoded()
    }

    fn apply_delta(&self, state: &mut PartitionWindows, delta: &[u8]) -> Result<()> {
        let delta = WindowsDelta::decode(delta).map_err(Error::Internal)?;
        state.apply_delta(&self.params, delta);
        Ok(())
    }
}
