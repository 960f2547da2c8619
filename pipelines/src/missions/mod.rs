//! The missions pipeline: mission metrics from `fleet.mission-events.v1`.
//!
//! Per event, in one PostgreSQL transaction: record it in `mission_event_log` by event id (a
//! duplicate or replay stops here) and fold it into its mission's row in `mission_runs`
//! (created / started / first end decides the outcome / safety events counted). Events are
//! keyed by mission id, so one mission's events arrive in order on one partition.
//!
//! A fleet's missions are spread over every partition, so fleet windows are not summed in
//! memory: on `flush` each fleet window an event touched is recomputed from PostgreSQL (which
//! holds every partition's events) and written to ClickHouse `mission_window_metrics` with the
//! next version of that window (`mission_window_versions`), so the newest row is always the
//! complete one. Window length: `missions.window_ms` (1 hour).
//!
//! Definitions (per fleet window, by event time): started = `started` events in the window;
//! completed / failed = missions whose first end event (`completed` / `failed` or `aborted`)
//! lies in the window; duration = end − start of those missions (when the start was seen);
//! success rate = completed / (completed + failed); safety events (and critical ones) in the
//! window; distance = the fleet's telemetry distance in the window from ClickHouse
//! `fleet_window_metrics` at the time of writing (the window is written again when it is
//! touched again and when the partition goes idle, so it converges once telemetry is in).
//! planned_duration_ms_sum stays 0: mission events carry no plan.
//!
//! Zone demand (the optimization engine's input): `requested` / `assigned` / `expired` events
//! carry the request's origin zone, `completed` ones the zone the mission ended in. Per fleet,
//! zone and bucket (`missions.zone_bucket_ms`, 15 min) a row of ClickHouse `zone_demand` is
//! recomputed from PostgreSQL the same way (`zone_demand_versions`): requests made in the
//! bucket, of those served (assigned) and expired, their summed wait to assignment, arrivals
//! (missions completed in the zone), and the vehicles seen idle in the zone during the bucket
//! (ClickHouse `telemetry_raw` when the row is written). Served and expired count by request time, so an assignment
//! re-writes the bucket of its request.

mod state;
mod store;

use std::collections::BTreeSet;
use std::time::Duration;

use atlasmesh_core::config::{Config, Topics};
use atlasmesh_schemas::{Codec, DeadLetterRecord, MissionEventRecord, SchemaKind};
use atlasmesh_sinks::clickhouse::ClickHouseSink;
use atlasmesh_sinks::kafka::KafkaProducer;
use sqlx::PgPool;

pub use state::{invalid, window_of, MissionsState};

use crate::runner::{Cadence, InMessage, Pipeline};
use crate::{Error, Result};

pub const NAME: &str = "missions";

#[derive(Default)]
pub struct MissionsBatch {
    consumed: usize,
    dirty: BTreeSet<(String, i64)>,
    /// (fleet, zone, bucket start) of the zone demand buckets to re-write.
    dirty_zones: BTreeSet<(String, String, i64)>,
    dlq: Vec<DeadLetterRecord>,
}

pub struct MissionsPipeline {
    codec: Codec,
    topics: Topics,
    pool: PgPool,
    clickhouse: ClickHouseSink,
    producer: KafkaProducer,
    window_ms: i64,
    zone_bucket_ms: i64,
    cadence: Cadence,
}

impl Pipeline for MissionsPipeline {
    const NAME: &'static str = NAME;
    type State = MissionsState;
    type Batch = MissionsBatch;

    async fn build(cfg: &Config) -> Result<Self> {
        Ok(MissionsPipeline {
            codec: Codec::from_config(&cfg.schema_registry)
                .map_err(|e| Error::setup("schema registry", e))?,
            topics: cfg.topics.clone(),
            pool: atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 3).await?,
            clickhouse: ClickHouseSink::new(&cfg.clickhouse),
            producer: KafkaProducer::new(&cfg.kafka)?,
            window_ms: cfg.missions.window_ms,
            zone_bucket_ms: cfg.missions.zone_bucket_ms,
            cadence: Cadence::new(cfg, cfg.missions.tick_ms, cfg.missions.idle_flush_ms),
        })
    }

    fn tick_interval(&self) -> Duration {
        self.cadence.tick
    }

    fn idle_flush(&self) -> Duration {
        self.cadence.idle_flush
    }

    fn topic(&self) -> &str {
        &self.topics.mission_events
    }

    async fn handle(
        &self,
        state: &mut MissionsState,
        msg: &InMessage<'_>,
        batch: &mut MissionsBatch,
    ) -> Result<()> {
        let decoded = crate::dlq::decode_or_dead_letter(
            NAME,
            &self.codec,
            msg,
            SchemaKind::MissionEvents,
            invalid,
            &mut batch.dlq,
        )
        .await?;
        let Some(e): Option<MissionEventRecord> = decoded else {
            batch.consumed += 1;
            return Ok(());
        };
        if let Some((zone, at)) = self.record(&e).await? {
            let (bucket, _) = window_of(at, self.zone_bucket_ms);
            batch.dirty_zones.insert((e.fleet_id.clone(), zone, bucket));
        }
        // Recorded (or a duplicate, whose window is re-written harmlessly).
        batch.consumed += 1;
        let (start, _) = window_of(e.ts_ms, self.window_ms);
        batch.dirty.insert((e.fleet_id.clone(), start));
        match state.latest.iter_mut().find(|(f, _)| *f == e.fleet_id) {
            Some((_, s)) => *s = (*s).max(start),
            None => state.latest.push((e.fleet_id.clone(), start)),
        }
        Ok(())
    }

    fn on_idle(&self, state: &mut MissionsState, _partition: i32, batch: &mut MissionsBatch) {
        // Re-write the newest windows once the partition is caught up: the fleet's telemetry
        // distance may have arrived after they were last written.
        for (fleet, start) in &state.latest {
            batch.dirty.insert((fleet.clone(), *start));
            batch.consumed += 1;
        }
    }

    async fn flush(&self, batch: &mut MissionsBatch) -> Result<()> {
        if batch.consumed == 0 {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(batch.dirty.len());
        for (fleet, start) in &batch.dirty {
            rows.push(self.window_row(fleet, *start).await?);
        }
        self.clickhouse.write_mission_windows(&rows).await?;
        let mut zone_rows = Vec::with_capacity(batch.dirty_zones.len());
        for (fleet, zone, start) in &batch.dirty_zones {
            zone_rows.push(self.zone_row(fleet, zone, *start).await?);
        }
        self.clickhouse.write_zone_demand(&zone_rows).await?;
        let records = crate::dlq::encode_all(&self.codec, &self.topics, &batch.dlq).await?;
        Ok(self.producer.send_all("kafka", &records).await?)
    }

    fn batch_len(&self, batch: &MissionsBatch) -> usize {
        batch.consumed
    }
}
