//! The missions pipeline's writes: events into PostgreSQL, fleet windows recomputed from
//! there for ClickHouse.

use atlasmesh_core::clock::now_ms;
use atlasmesh_schemas::{MissionEventKind, MissionEventRecord};
use atlasmesh_sinks::clickhouse::{datetime_secs, MissionWindowRow, ZoneDemandRow};
use sqlx::Row;

use super::MissionsPipeline;
use crate::Result;

impl MissionsPipeline {
    /// Records the event and folds it into its mission. Returns the zone bucket the event
    /// changes (its origin zone and request time for requested / assigned / expired, its zone
    /// and time for a completed mission with a zone), also for a duplicate (re-written
    /// harmlessly).
    pub(super) async fn record(&self, e: &MissionEventRecord) -> Result<Option<(String, i64)>> {
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO mission_event_log (event_id, mission_id, fleet_id, vehicle_id, kind, ts_ms, severity, detail, zone_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&e.event_id)
        .bind(&e.mission_id)
        .bind(&e.fleet_id)
        .bind(&e.vehicle_id)
        .bind(e.kind.as_str())
        .bind(e.ts_ms)
        .bind(&e.severity)
        .bind(&e.detail)
        .bind(&e.zone_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.rollback().await?;
            // A duplicate re-writes its bucket; only a decision needs its request's time.
            let requested_at: Option<i64> = match e.kind {
                MissionEventKind::Assigned | MissionEventKind::Expired => sqlx::query_scalar(
                    "SELECT requested_ms FROM mission_runs WHERE mission_id = $1",
                )
                .bind(&e.mission_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
                _ => None,
            };
            return Ok(zone_bucket_of(e, requested_at));
        }
        let (requested, assigned, expired) = match e.kind {
            MissionEventKind::Requested => (Some(e.ts_ms), None, None),
            MissionEventKind::Assigned => (None, Some(e.ts_ms), None),
            MissionEventKind::Expired => (None, None, Some(e.ts_ms)),
            _ => (None, None, None),
        };
        // The request's zone is the origin; a completed mission's zone is where it ended.
        let origin = requested.or(assigned).or(expired).and(e.zone_id.as_deref());
        let (created, started, ended, outcome, safety, critical) = match e.kind {
            MissionEventKind::Requested
            | MissionEventKind::Assigned
            | MissionEventKind::Expired => (None, None, None, None, 0, 0),
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
        let requested_at: Option<i64> = sqlx::query_scalar(
            "INSERT INTO mission_runs (mission_id, fleet_id, vehicle_id, created_ms, started_ms, ended_ms, outcome, safety_events, safety_critical, zone_id, requested_ms, assigned_ms, expired_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (mission_id) DO UPDATE SET
                 zone_id = coalesce(mission_runs.zone_id, excluded.zone_id),
                 requested_ms = coalesce(mission_runs.requested_ms, excluded.requested_ms),
                 assigned_ms = coalesce(mission_runs.assigned_ms, excluded.assigned_ms),
                 expired_ms = coalesce(mission_runs.expired_ms, excluded.expired_ms),
                 vehicle_id = coalesce(mission_runs.vehicle_id, excluded.vehicle_id),
                 created_ms = coalesce(mission_runs.created_ms, excluded.created_ms),
                 started_ms = coalesce(mission_runs.started_ms, excluded.started_ms),
                 ended_ms = coalesce(mission_runs.ended_ms, excluded.ended_ms),
                 outcome = coalesce(mission_runs.outcome, excluded.outcome),
                 safety_events = mission_runs.safety_events + excluded.safety_events,
                 safety_critical = mission_runs.safety_critical + excluded.safety_critical,
                 updated_at = now()
             RETURNING requested_ms",
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
        .bind(origin)
        .bind(requested)
        .bind(assigned)
        .bind(expired)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(zone_bucket_of(e, requested_at))
    }

    /// The complete `zone_demand` row of a bucket, from PostgreSQL, with its next version.
    pub(super) async fn zone_row(
        &self,
        fleet_id: &str,
        zone_id: &str,
        start_ms: i64,
    ) -> Result<ZoneDemandRow> {
        let end_ms = start_ms + self.zone_bucket_ms;
        let row = sqlx::query(
            "SELECT
                 count(*) AS requests,
                 count(*) FILTER (WHERE assigned_ms IS NOT NULL) AS served,
                 count(*) FILTER (WHERE assigned_ms IS NULL AND expired_ms IS NOT NULL) AS expired,
                 coalesce(sum(greatest(assigned_ms - requested_ms, 0)) FILTER (WHERE assigned_ms IS NOT NULL), 0)::bigint AS wait,
                 (SELECT count(*) FROM mission_event_log
                  WHERE fleet_id = $1 AND zone_id = $2 AND kind = 'completed' AND ts_ms >= $3 AND ts_ms < $4) AS arrivals
             FROM mission_runs
             WHERE fleet_id = $1 AND zone_id = $2 AND requested_ms >= $3 AND requested_ms < $4",
        )
        .bind(fleet_id)
        .bind(zone_id)
        .bind(start_ms)
        .bind(end_ms)
        .fetch_one(&self.pool)
        .await?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO zone_demand_versions (fleet_id, zone_id, bucket_start_ms, version) VALUES ($1, $2, $3, 1)
             ON CONFLICT (fleet_id, zone_id, bucket_start_ms) DO UPDATE SET version = zone_demand_versions.version + 1
             RETURNING version",
        )
        .bind(fleet_id)
        .bind(zone_id)
        .bind(start_ms)
        .fetch_one(&self.pool)
        .await?;
        let n = |c: &str| -> u64 { u64::try_from(row.get::<i64, _>(c)).unwrap_or(0) };
        let idle_vehicles: u64 = self
            .clickhouse
            .client()
            .query(
                "SELECT uniqExactIf(vehicle_id, status = 'idle') FROM telemetry_raw \
                 WHERE fleet_id = ? AND zone_id = ? AND ts_ms >= ? AND ts_ms < ?",
            )
            .bind(fleet_id)
            .bind(zone_id)
            .bind(start_ms)
            .bind(end_ms)
            .fetch_one()
            .await
            .map_err(atlasmesh_sinks::Error::from)?;
        Ok(ZoneDemandRow {
            fleet_id: fleet_id.to_string(),
            zone_id: zone_id.to_string(),
            bucket_start: datetime_secs(start_ms),
            bucket_start_ms: start_ms,
            bucket_end_ms: end_ms,
            version: u32::try_from(version).unwrap_or(u32::MAX),
            requests: n("requests"),
            served: n("served"),
            expired: n("expired"),
            wait_ms_sum: n("wait"),
            arrivals: n("arrivals"),
            idle_vehicles,
            emitted_at_ms: now_ms(),
        })
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

/// The zone and time whose bucket `e` changes (see [`MissionsPipeline::record`]): requests and
/// arrivals their own; a decision (assigned / expired) its request's, `requested_at` (its own
/// time if the request was never seen).
fn zone_bucket_of(e: &MissionEventRecord, requested_at: Option<i64>) -> Option<(String, i64)> {
    let zone = e.zone_id.clone()?;
    match e.kind {
        MissionEventKind::Requested | MissionEventKind::Completed => Some((zone, e.ts_ms)),
        MissionEventKind::Assigned | MissionEventKind::Expired => {
            Some((zone, requested_at.unwrap_or(e.ts_ms)))
        }
        _ => None,
    }
}
