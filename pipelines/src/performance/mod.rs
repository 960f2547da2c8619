//! The performance pipeline: fleet performance scores, benchmark comparison, federation ranks
//! and trends from the closed windows of `fleet.metrics.v1`.
//!
//! - [`state`] (pure, checkpointed with the offsets): settles fleet windows like the alert
//!   engine ([`crate::settle`]), scores every settled window and the UTC hour and day so far, fits the
//!   trends of the configured metrics over sliding horizons (last N windows, last N days).
//! - `flush` (I/O): looks up each fleet's `score` benchmark in `perf_benchmarks` (first by
//!   name) for `benchmark_pct`; writes the history to ClickHouse (`performance_score_history`,
//!   `trend_history`, ReplacingMergeTree: rewriting the same rows changes nothing) and, in one
//!   PostgreSQL transaction, the latest values (`perf_score_latest`, `perf_trend_latest`,
//!   upserts guarded by the event-time key) and the daily federation ranks
//!   (`perf_federation_ranks`, membership from `federation_members`, ranked with
//!   [`atlasmesh_core::analytics::score::rank_among`]); then dead letters to the DLQ.
//!
//! Delivery: the runner checkpoints state and offsets only after `flush` succeeded; a replay
//! from the checkpoint produces the same rows (outputs are stamped with event time), which the
//! idempotent writes absorb. Undefined score components are NaN in ClickHouse (its Float64
//! columns are not nullable) and NULL in PostgreSQL; a window without any defined component
//! is not scored.

pub mod state;
mod store;

use std::collections::BTreeSet;
use std::time::Duration;

use atlasmesh_core::config::{Config, Topics};
use atlasmesh_schemas::{Codec, DeadLetterRecord, SchemaKind, WindowMetricsRecord};
use atlasmesh_sinks::clickhouse::{ClickHouseSink, ScoreHistoryRow, TrendHistoryRow};
use atlasmesh_sinks::kafka::KafkaProducer;
use sqlx::PgPool;
use tracing::info;

pub use state::{Outputs, PerformanceState, Period, ScoreOut, Settings, TrendOut};

use crate::dlq::Decoded;
use crate::runner::{Cadence, InMessage, Pipeline};
use crate::{Error, Result};
use store::{score_row, trend_row};

pub const NAME: &str = "performance";

pub struct PerformancePipeline {
    codec: Codec,
    topics: Topics,
    pool: PgPool,
    clickhouse: ClickHouseSink,
    producer: KafkaProducer,
    settings: Settings,
    cadence: Cadence,
}

/// Outputs and dead letters gathered since the last checkpoint.
#[derive(Default)]
pub struct PerformanceBatch {
    consumed: usize,
    out: Outputs,
    dlq: Vec<DeadLetterRecord>,
}

impl Pipeline for PerformancePipeline {
    const NAME: &'static str = NAME;
    type State = PerformanceState;
    type Batch = PerformanceBatch;

    async fn build(cfg: &Config) -> Result<Self> {
        cfg.performance
            .validate()
            .map_err(|e| Error::setup("performance", e))?;
        let settings = Settings::from_config(&cfg.performance);
        info!(pipeline = NAME, metrics = ?settings.trend_metrics, window_horizons = ?settings.window_horizons, day_horizons = ?settings.day_horizons, "Performance settings loaded.");
        Ok(PerformancePipeline {
            codec: Codec::from_config(&cfg.schema_registry)
                .map_err(|e| Error::setup("schema registry", e))?,
            topics: cfg.topics.clone(),
            pool: atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 4).await?,
            clickhouse: ClickHouseSink::new(&cfg.clickhouse),
            producer: KafkaProducer::new(&cfg.kafka)?,
            settings,
            cadence: Cadence::new(cfg, cfg.performance.tick_ms, cfg.performance.idle_flush_ms),
        })
    }

    fn tick_interval(&self) -> Duration {
        self.cadence.tick
    }

    fn idle_flush(&self) -> Duration {
        self.cadence.idle_flush
    }

    fn topic(&self) -> &str {
        &self.topics.metrics
    }

    async fn handle(
        &self,
        state: &mut PerformanceState,
        msg: &InMessage<'_>,
        batch: &mut PerformanceBatch,
    ) -> Result<()> {
        batch.consumed += 1;
        let rec: WindowMetricsRecord =
            match crate::dlq::decode(&self.codec, msg, SchemaKind::Metrics).await? {
                Decoded::Ok(r) => r,
                Decoded::DeadLetter(reason, error) => {
                    batch
                        .dlq
                        .push(crate::dlq::dead_letter(NAME, msg, reason, error));
                    return Ok(());
                }
            };
        state.on_record(&self.settings, &rec, &mut batch.out);
        Ok(())
    }

    /// Nothing: time is event time, and an idle metrics partition has no new windows.
    fn on_idle(
        &self,
        _state: &mut PerformanceState,
        _partition: i32,
        _batch: &mut PerformanceBatch,
    ) {
    }

    async fn flush(&self, batch: &mut PerformanceBatch) -> Result<()> {
        let out = &batch.out;
        if !out.scores.is_empty() || !out.trends.is_empty() {
            let fleets: Vec<String> = out
                .scores
                .iter()
                .map(|o| o.fleet_id.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let benches = self.benchmarks(&fleets).await?;
            let scores: Vec<ScoreHistoryRow> = out
                .scores
                .iter()
                .filter_map(|o| score_row(o, benches.get(&o.fleet_id)))
                .collect();
            let trends: Vec<TrendHistoryRow> = out.trends.iter().map(trend_row).collect();
            self.clickhouse.write_score_history(&scores).await?;
            self.clickhouse.write_trend_history(&trends).await?;
            self.write_postgres(out, &benches).await?;
            metrics::counter!(atlasmesh_core::metric_names::PERFORMANCE_SCORES)
                .increment(scores.len() as u64);
            metrics::counter!(atlasmesh_core::metric_names::PERFORMANCE_TRENDS)
                .increment(trends.len() as u64);
        }
        if !batch.dlq.is_empty() {
            let records = crate::dlq::encode_all(&self.codec, &self.topics, &batch.dlq).await?;
            self.producer.send_all("kafka", &records).await?;
        }
        Ok(())
    }

    fn batch_len(&self, batch: &PerformanceBatch) -> usize {
        batch.consumed
    }
}
