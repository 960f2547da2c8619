//! The resources pipeline's writes: each event folded into PostgreSQL (occupancy, conflicts,
//! the event log) in one transaction.

use atlasmesh_schemas::{ResourceEventRecord, ResourceState};
use atlasmesh_sinks::clickhouse::PoolUtilizationRow;
use atlasmesh_sinks::store::derived_id;
use sqlx::Row;

use super::state::{occupy, Occupancy};
use super::ResourcesPipeline;
use crate::Result;

/// The outcome of recording one event.
pub(super) enum Recorded {
    /// The pool sample after the event (also for a duplicate: the stored one).
    Sample(PoolUtilizationRow),
    /// The pool is not registered.
    UnknownPool,
}

impl ResourcesPipeline {
    pub(super) async fn record(&self, e: &ResourceEventRecord) -> Result<Recorded> {
        let mut tx = self.pool.begin().await?;
        let pool = sqlx::query(
            "SELECT capacity, resource_type FROM resource_pools WHERE id = $1 FOR UPDATE",
        )
        .bind(&e.pool_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(pool) = pool else {
            tx.rollback().await?;
            return Ok(Recorded::UnknownPool);
        };
        let capacity: i64 = pool.get("capacity");
        let kind: String = pool.get("resource_type");
        let sample = |capacity: i64, occupied: i64, queued: i64| {
            PoolUtilizationRow::new(
                &e.pool_id,
                &e.fleet_id,
                &kind,
                e.ts_ms,
                capacity as f64,
                occupied as f64,
                u32::try_from(queued).unwrap_or(u32::MAX),
            )
        };
        if let Some(seen) = sqlx::query("SELECT pool_capacity, pool_occupied, pool_queued FROM resource_event_log WHERE event_id = $1")
            .bind(&e.event_id)
            .fetch_optional(&mut *tx)
            .await?
        {
            // A duplicate or a replay: the same sample again, nothing else.
            tx.rollback().await?;
            return Ok(Recorded::Sample(sample(seen.get("pool_capacity"), seen.get("pool_occupied"), seen.get("pool_queued"))));
        }
        let prev = sqlx::query(
            "SELECT state, vehicle_ids FROM resource_occupancy WHERE resource_id = $1 FOR UPDATE",
        )
        .bind(&e.resource_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| Occupancy {
            state: ResourceState::parse(&r.get::<String, _>("state"))
                .unwrap_or(ResourceState::Free),
            vehicles: r.get("vehicle_ids"),
        });
        let in_use_before: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM resource_occupancy WHERE pool_id = $1 AND state = 'occupied'",
        )
        .bind(&e.pool_id)
        .fetch_one(&mut *tx)
        .await?;
        let (next, mut conflicts) = occupy(prev.as_ref(), e);
        let was_in_use = prev
            .as_ref()
            .is_some_and(|p| p.state == ResourceState::Occupied);
        let now_in_use = next.state == ResourceState::Occupied;
        let in_use = in_use_before + i64::from(now_in_use) - i64::from(was_in_use);
        if in_use > capacity && in_use_before <= capacity {
            conflicts.push((
                "over_allocation",
                format!(
                    "{in_use} resources of pool {} in use, capacity {capacity}",
                    e.pool_id
                ),
            ));
        }
        sqlx::query(
            "INSERT INTO resource_occupancy (resource_id, pool_id, fleet_id, state, vehicle_ids, since_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (resource_id) DO UPDATE SET pool_id = excluded.pool_id, fleet_id = excluded.fleet_id,
                 state = excluded.state, vehicle_ids = excluded.vehicle_ids,
                 since_ms = CASE WHEN resource_occupancy.state = excluded.state THEN resource_occupancy.since_ms ELSE excluded.since_ms END,
                 updated_at = now()",
        )
        .bind(&e.resource_id)
        .bind(&e.pool_id)
        .bind(&e.fleet_id)
        .bind(next.state.as_str())
        .bind(&next.vehicles)
        .bind(e.ts_ms)
        .execute(&mut *tx)
        .await?;
        for (kind, description) in conflicts {
            let id = derived_id(&["resource_event", &e.event_id, kind]);
            sqlx::query(
                "INSERT INTO resource_conflicts (id, fleet_id, pool_id, kind, resource_id, description, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::double precision / 1000))
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(&e.fleet_id)
            .bind(&e.pool_id)
            .bind(kind)
            .bind(&e.resource_id)
            .bind(&description)
            .bind(e.ts_ms as f64)
            .execute(&mut *tx)
            .await?;
            metrics::counter!(atlasmesh_core::metric_names::RESOURCE_CONFLICTS, "kind" => kind)
                .increment(1);
        }
        let queued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM resource_requests WHERE pool_id = $1 AND status = 'pending'",
        )
        .bind(&e.pool_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO resource_event_log (event_id, resource_id, pool_id, fleet_id, vehicle_id, state, ts_ms, pool_capacity, pool_occupied, pool_queued)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&e.event_id)
        .bind(&e.resource_id)
        .bind(&e.pool_id)
        .bind(&e.fleet_id)
        .bind(&e.vehicle_id)
        .bind(e.state.as_str())
        .bind(e.ts_ms)
        .bind(capacity)
        .bind(in_use)
        .bind(queued)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Recorded::Sample(sample(capacity, in_use, queued)))
    }
}
