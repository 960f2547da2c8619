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

use std::collections::BTreeSet;

use atlasmesh_core::config::{Config, Topics};
use atlasmesh_schemas::{Codec, DeadLetterRecord, MissionEventKind, MissionEventRecord};
use atlasmesh_sinks::clickhouse::{datetime_secs, ClickHouseSink, MissionWindowRow};
use atlasmesh_sinks::kafka::KafkaProducer;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};

use crate::runner::{InMessage, Pipeline, RetryLater};
use crate::telemetry::now_ms;

pub const NAME: &str = "missions";

/// The window containing `ts_ms`: [start, end).
pub fn window_of(ts_ms: i64, window_ms: i64) -> (i64, i64) {
    let start = ts_ms.div_euclid(window_ms) * window_ms;
    (start, start + window_ms)
}

/// The database name of an event kind.
pub fn kind_name(k: MissionEventKind) -> &'static str {
    match k {
        MissionEventKind::Created => "created",
        MissionEventKind::Started => "started",
        MissionEventKind::WaypointReached => "waypoint_reached",
        MissionEventKind::Completed => "completed",
        MissionEventKind::Failed => "failed",
        MissionEventKind::Aborted => "aborted",
        MissionEventKind::SafetyEvent => "safety_event",
    }
}

/// Why an event is refused (it goes to the dead-letter topic).
pub fn invalid(e: &MissionEventRecord) -> Option<String> {
    if e.event_id.is_empty() || e.mission_id.is_empty() || e.fleet_id.is_empty() {
        return Some("event_id, mission_id and fleet_id must not be empty".into());
    }
    if e.ts_ms <= 0 {
        return Some(format!("ts_ms {} is not a valid event time", e.ts_ms));
    }
    if e.kind == MissionEventKind::SafetyEvent
        && !matches!(
            e.severity.as_deref(),
            None | Some("info" | "warning" | "critical")
        )
    {
        return Some(format!("unknown safety severity {:?}", e.severity));
    }
    None
}

/// The windows a partition touched; kept in the checkpoint so an idle partition re-writes its
/// latest windows (their telemetry distance may have arrived since).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MissionsState {
    /// (fleet, window start) of the newest window seen per fleet.
    pub latest: Vec<(String, i64)>,
}

#[derive(Default)]
pub struct MissionsBatch {
    consumed: usize,
    dirty: BTreeSet<(String, i64)>,
    dlq: Vec<DeadLetterRecord>,
}

pub struct MissionsPipeline {
    codec: Codec,
    topics: Topics,
    pool: PgPool,
    clickhouse: ClickHouseSink,
    producer: KafkaProducer,
    window_ms: i64,
}

impl MissionsPipeline {
    pub async fn new(cfg: &Config) -> anyhow::Result<Self> {
        Ok(MissionsPipeline {
            codec: Codec::new(&cfg.schema_registry.url)
                .map_err(|e| anyhow::anyhow!("schema registry: {e}"))?,
            topics: cfg.topics.clone(),
            pool: atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 3).await?,
            clickhouse: ClickHouseSink::new(&cfg.clickhouse),
            producer: KafkaProducer::new(&cfg.kafka)?,
            window_ms: cfg.missions.window_ms,
        })
    }

    /// Records the event and folds it into its mission. Returns false for a duplicate.
    async fn record(&self, e: &MissionEventRecord) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO mission_event_log (event_id, mission_id, fleet_id, vehicle_id, kind, ts_ms, severity, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&e.event_id)
        .bind(&e.mission_id)
        .bind(&e.fleet_id)
        .bind(&e.vehicle_id)
        .bind(kind_name(e.kind))
        .bind(e.ts_ms)
        .bind(&e.severity)
        .bind(&e.detail)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.rollback().await?;
            return Ok(false);
        }
        let (created, started, ended, outcome, safety, critical) = match e.kind {
            MissionEventKind::Created => (Some(e.ts_ms), None, None, None, 0, 0),
            MissionEventKind::Started => (None, Some(e.ts_ms), None, None, 0, 0),
            MissionEventKind::Completed => (None, None, Some(e.ts_ms), Some("completed"), 0, 0),
            MissionEventKind::Failed => (None, None, Some(e.ts_ms), Some("failed"), 0, 0),
            MissionEventKind::Aborted => (None, None, Some(e.ts_ms), Some("aborted"), 0, 0),
            MissionEventKind::SafetyEvent => (
                None,
                None,
                None,
                None,
                1,
                i32::from(e.severity.as_deref() == Some("critical")),
            ),
            MissionEventKind::WaypointReached => (None, None, None, None, 0, 0),
        };
        // The first start/creation and the first end win; counts add up.
        sqlx::query(
            "INSERT INTO mission_runs (mission_id, fleet_id, vehicle_id, created_ms, started_ms, ended_ms, outcome, safety_events, safety_critical)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (mission_id) DO UPDATE SET
                 vehicle_id = coalesce(mission_runs.vehicle_id, excluded.vehicle_id),
                 created_ms = coalesce(mission_runs.created_ms, excluded.created_ms),
                 started_ms = coalesce(mission_runs.started_ms, excluded.started_ms),
                 ended_ms = coalesce(mission_runs.ended_ms, excluded.ended_ms),
                 outcome = coalesce(mission_runs.outcome, excluded.outcome),
                 safety_events = mission_runs.safety_events + excluded.safety_events,
                 safety_critical = mission_runs.safety_critical + excluded.safety_critical,
                 updated_at = now()",
        )
        .bind(&e.mission_id)
        .bind(&e.fleet_id)
        .bind(&e.vehicle_id)
        .bind(created)
        .bind(started)
        .bind(ended)
        .bind(outcome)
        .bind(safety)
        .bind(critical)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The complete row of a fleet window, from PostgreSQL, with its next version.
    async fn window_row(
        &self,
        fleet_id: &str,
        start_ms: i64,
    ) -> atlasmesh_sinks::Result<MissionWindowRow> {
        let end_ms = start_ms + self.window_ms;
        let row = sqlx::query(
            "SELECT
                 (SELECT count(*) FROM mission_event_log WHERE fleet_id = $1 AND kind = 'started' AND ts_ms >= $2 AND ts_ms < $3) AS started,
                 (SELECT count(*) FROM mission_event_log WHERE fleet_id = $1 AND kind = 'safety_event' AND ts_ms >= $2 AND ts_ms < $3) AS safety,
                 (SELECT count(*) FROM mission_event_log WHERE fleet_id = $1 AND kind = 'safety_event' AND severity = 'critical' AND ts_ms >= $2 AND ts_ms < $3) AS critical,
                 count(*) FILTER (WHERE outcome = 'completed') AS completed,
                 count(*) FILTER (WHERE outcome IN ('failed', 'aborted')) AS failed,
                 coalesce(sum(ended_ms - started_ms) FILTER (WHERE started_ms IS NOT NULL AND ended_ms >= started_ms), 0)::bigint AS duration
             FROM mission_runs WHERE fleet_id = $1 AND ended_ms >= $2 AND ended_ms < $3",
        )
        .bind(fleet_id)
        .bind(start_ms)
        .bind(end_ms)
        .fetch_one(&self.pool)
        .await?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO mission_window_versions (fleet_id, window_start_ms, version) VALUES ($1, $2, 1)
             ON CONFLICT (fleet_id, window_start_ms) DO UPDATE SET version = mission_window_versions.version + 1
             RETURNING version",
        )
        .bind(fleet_id)
        .bind(start_ms)
        .fetch_one(&self.pool)
        .await?;
        let distance_m = self.fleet_distance_m(fleet_id, start_ms, end_ms).await?;
        let n = |c: &str| -> u64 { u64::try_from(row.get::<i64, _>(c)).unwrap_or(0) };
        Ok(MissionWindowRow {
            fleet_id: fleet_id.to_string(),
            window_start: datetime_secs(start_ms),
            window_start_ms: start_ms,
            window_end_ms: end_ms,
            version: u32::try_from(version).unwrap_or(u32::MAX),
            missions_started: n("started"),
            missions_completed: n("completed"),
            missions_failed: n("failed"),
            duration_ms_sum: n("duration"),
            planned_duration_ms_sum: 0,
            safety_events: n("safety"),
            safety_critical: n("critical"),
            distance_m,
            emitted_at_ms: now_ms(),
        })
    }

    /// The fleet's driven distance in [start, end) from the telemetry windows in ClickHouse.
    async fn fleet_distance_m(
        &self,
        fleet_id: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> atlasmesh_sinks::Result<u64> {
        let d: u64 = self
            .clickhouse
            .client()
            .query("SELECT toUInt64(sum(distance_m)) FROM fleet_window_metrics WHERE fleet_id = ? AND window_start_ms >= ? AND window_start_ms < ?")
            .bind(fleet_id)
            .bind(start_ms)
            .bind(end_ms)
            .fetch_one()
            .await?;
        Ok(d)
    }
}

impl Pipeline for MissionsPipeline {
    type State = MissionsState;
    type Batch = MissionsBatch;

    fn name(&self) -> &str {
        NAME
    }

    fn topic(&self) -> &str {
        &self.topics.mission_events
    }

    async fn handle(
        &self,
        state: &mut MissionsState,
        msg: &InMessage,
        batch: &mut MissionsBatch,
    ) -> Result<(), RetryLater> {
        let e: MissionEventRecord =
            match crate::dlq::decode_valid(&self.codec, msg, "MissionEvent", invalid).await? {
                Ok(e) => e,
                Err((reason, error)) => {
                    batch.consumed += 1;
                    batch
                        .dlq
                        .push(crate::dlq::dead_letter(NAME, msg, reason, error));
                    return Ok(());
                }
            };
        self.record(&e)
            .await
            .map_err(|err| RetryLater(format!("postgres: {err}")))?;
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

    async fn flush(&self, batch: &mut MissionsBatch) -> atlasmesh_sinks::Result<()> {
        if batch.consumed == 0 {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(batch.dirty.len());
        for (fleet, start) in &batch.dirty {
            rows.push(self.window_row(fleet, *start).await?);
        }
        self.clickhouse.write_mission_windows(&rows).await?;
        let records = crate::dlq::encode_all(&self.codec, &self.topics, &batch.dlq).await?;
        self.producer.send_all("kafka", &records).await
    }

    fn batch_len(&self, batch: &MissionsBatch) -> usize {
        batch.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_validation() {
        assert_eq!(
            window_of(3_600_000 * 5 + 17, 3_600_000),
            (18_000_000, 21_600_000)
        );
        assert_eq!(window_of(-1, 1000), (-1000, 0));
        let mut e = MissionEventRecord {
            event_id: "e".into(),
            mission_id: "m".into(),
            fleet_id: "f".into(),
            vehicle_id: None,
            ts_ms: 5,
            kind: MissionEventKind::SafetyEvent,
            severity: Some("critical".into()),
            detail: None,
        };
        assert_eq!(invalid(&e), None);
        e.severity = Some("apocalyptic".into());
        assert!(invalid(&e).unwrap().contains("severity"));
        e.severity = None;
        e.ts_ms = 0;
        assert!(invalid(&e).unwrap().contains("ts_ms"));
        e.ts_ms = 5;
        e.mission_id.clear();
        assert!(invalid(&e).is_some());
        assert_eq!(
            kind_name(MissionEventKind::WaypointReached),
            "waypoint_reached"
        );
    }
}
