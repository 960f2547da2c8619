//! The missions pipeline's writes: events into PostgreSQL, fleet windows recomputed from
//! there for ClickHouse.

use atlasmesh_core::clock::now_ms;
use atlasmesh_schemas::{MissionEventKind, MissionEventRecord};
use atlasmesh_sinks::clickhouse::{datetime_secs, MissionWindowRow};
use sqlx::Row;

use super::MissionsPipeline;
use crate::Result;

impl MissionsPipeline {
    /// Records the event and folds it into its mission. Returns false for a duplicate.
    pub(super) async fn record(&self, e: &MissionEventRecord) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO mission_event_log (event_id, mission_id, fleet_id, vehicle_id, kind, ts_ms, severity, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&e.event_id)
        .bind(&e.mission_id)
        .bind(&e.fleet_id)
        .bind(&e.vehicle_id)
        .bind(e.kind.as_str())
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
    pub(super) async fn window_row(
        &self,
        fleet_id: &str,
        start_ms: i64,
    ) -> Result<MissionWindowRow> {
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
    async fn fleet_distance_m(&self, fleet_id: &str, start_ms: i64, end_ms: i64) -> Result<u64> {
        let d: u64 = self
            .clickhouse
            .client()
            .query("SELECT toUInt64(sum(distance_m)) FROM fleet_window_metrics WHERE fleet_id = ? AND window_start_ms >= ? AND window_start_ms < ?")
            .bind(fleet_id)
            .bind(start_ms)
            .bind(end_ms)
            .fetch_one()
            .await
            .map_err(atlasmesh_sinks::Error::from)?;
        Ok(d)
    }
}
