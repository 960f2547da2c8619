//! The resources pipeline: occupancy, pool utilization and conflicts from
//! `fleet.resource-events.v1`.
//!
//! Per event, in one PostgreSQL transaction: record it in `resource_event_log` by event id (a
//! duplicate or replay changes nothing), lock the pool (`resource_pools`, which must exist —
//! an event for an unknown pool goes to the dead-letter topic), fold the event into the
//! resource's `resource_occupancy` row with [`occupy`], and raise conflicts in
//! `resource_conflicts` (the same table the API serves and resolves):
//! - `double_booking`: a resource occupied by a vehicle while another vehicle holds it;
//! - `over_allocation`: more of the pool's resources in use than its capacity (raised when the
//!   count crosses the capacity);
//! - `other`: a resource occupied while reported out of service.
//!
//! One resource's events share a partition and apply in order, so double booking is exact.
//! Events of different resources have no order between them on the topic: the pool's in-use
//! count (hence over-allocation and the utilization sample) is evaluated in the order this
//! pipeline applies them, and is exact once every resource has reported.
//!
//! Conflict ids derive from the event id, so a replay raises nothing new. The pool's state
//! after the event (capacity, resources in use, requests waiting) is stored with the event and
//! written on `flush` to ClickHouse `resource_pool_utilization` as one sample at the event's
//! time (`allocated` = resources in use; utilization = in use / capacity); a replayed event
//! writes the same sample again, which the ReplacingMergeTree key collapses.

pub mod coordination;

use atlasmesh_core::config::{Config, Topics};
use atlasmesh_schemas::{
    Codec, DeadLetterReason, DeadLetterRecord, ResourceEventRecord, ResourceState,
};
use atlasmesh_sinks::clickhouse::{ClickHouseSink, PoolUtilizationRow};
use atlasmesh_sinks::kafka::KafkaProducer;
use atlasmesh_sinks::store::derived_id;
use sqlx::{PgPool, Row};

use crate::runner::{InMessage, Pipeline, RetryLater};

pub const NAME: &str = "resources";

/// A resource's occupancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    pub state: ResourceState,
    pub vehicles: Vec<String>,
}

/// A conflict the event reveals: (kind, description).
pub type ConflictDraft = (&'static str, String);

pub fn state_name(s: ResourceState) -> &'static str {
    match s {
        ResourceState::Occupied => "occupied",
        ResourceState::Free => "free",
        ResourceState::OutOfService => "out_of_service",
    }
}

pub fn parse_state(s: &str) -> Option<ResourceState> {
    match s {
        "occupied" => Some(ResourceState::Occupied),
        "free" => Some(ResourceState::Free),
        "out_of_service" => Some(ResourceState::OutOfService),
        _ => None,
    }
}

/// The occupancy after `ev`, and the double-booking / out-of-service conflicts it reveals.
pub fn occupy(
    prev: Option<&Occupancy>,
    ev: &ResourceEventRecord,
) -> (Occupancy, Vec<ConflictDraft>) {
    let mut vehicles = prev.map(|p| p.vehicles.clone()).unwrap_or_default();
    let prev_state = prev.map(|p| p.state);
    let mut conflicts = Vec::new();
    let state = match ev.state {
        ResourceState::Occupied => {
            let who = ev
                .vehicle_id
                .clone()
                .unwrap_or_else(|| "unknown vehicle".into());
            if prev_state == Some(ResourceState::OutOfService) {
                conflicts.push((
                    "other",
                    format!("{} occupied by {who} while out of service", ev.resource_id),
                ));
            }
            if !vehicles.contains(&who) {
                if !vehicles.is_empty() {
                    conflicts.push((
                        "double_booking",
                        format!(
                            "{} occupied by {who} while held by {}",
                            ev.resource_id,
                            vehicles.join(", ")
                        ),
                    ));
                }
                vehicles.push(who);
            }
            ResourceState::Occupied
        }
        ResourceState::Free => {
            match &ev.vehicle_id {
                Some(v) => vehicles.retain(|x| x != v),
                None => vehicles.clear(),
            }
            if vehicles.is_empty() {
                ResourceState::Free
            } else {
                ResourceState::Occupied
            }
        }
        ResourceState::OutOfService => {
            vehicles.clear();
            ResourceState::OutOfService
        }
    };
    (Occupancy { state, vehicles }, conflicts)
}

/// Why an event is refused (it goes to the dead-letter topic).
pub fn invalid(e: &ResourceEventRecord) -> Option<String> {
    if e.event_id.is_empty()
        || e.resource_id.is_empty()
        || e.pool_id.is_empty()
        || e.fleet_id.is_empty()
    {
        return Some("event_id, resource_id, pool_id and fleet_id must not be empty".into());
    }
    if e.ts_ms <= 0 {
        return Some(format!("ts_ms {} is not a valid event time", e.ts_ms));
    }
    None
}

/// The outcome of recording one event.
enum Recorded {
    /// The pool sample after the event (also for a duplicate: the stored one).
    Sample(PoolUtilizationRow),
    /// The pool is not registered.
    UnknownPool,
}

#[derive(Default)]
pub struct ResourcesBatch {
    consumed: usize,
    samples: Vec<PoolUtilizationRow>,
    dlq: Vec<DeadLetterRecord>,
}

pub struct ResourcesPipeline {
    codec: Codec,
    topics: Topics,
    pool: PgPool,
    clickhouse: ClickHouseSink,
    producer: KafkaProducer,
}

impl ResourcesPipeline {
    pub async fn new(cfg: &Config) -> anyhow::Result<Self> {
        Ok(ResourcesPipeline {
            codec: Codec::new(&cfg.schema_registry.url)
                .map_err(|e| anyhow::anyhow!("schema registry: {e}"))?,
            topics: cfg.topics.clone(),
            pool: atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 3).await?,
            clickhouse: ClickHouseSink::new(&cfg.clickhouse),
            producer: KafkaProducer::new(&cfg.kafka)?,
        })
    }

    /// The pipeline's PostgreSQL pool (shared with the coordination metrics task).
    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    async fn record(&self, e: &ResourceEventRecord) -> Result<Recorded, sqlx::Error> {
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
            state: parse_state(&r.get::<String, _>("state")).unwrap_or(ResourceState::Free),
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
        .bind(state_name(next.state))
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
        .bind(state_name(e.state))
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

impl Pipeline for ResourcesPipeline {
    type State = ();
    type Batch = ResourcesBatch;

    fn name(&self) -> &str {
        NAME
    }

    fn topic(&self) -> &str {
        &self.topics.resource_events
    }

    async fn handle(
        &self,
        _state: &mut (),
        msg: &InMessage,
        batch: &mut ResourcesBatch,
    ) -> Result<(), RetryLater> {
        let e: ResourceEventRecord =
            match crate::dlq::decode_valid(&self.codec, msg, "ResourceEvent", invalid).await? {
                Ok(e) => e,
                Err((reason, error)) => {
                    batch.consumed += 1;
                    batch
                        .dlq
                        .push(crate::dlq::dead_letter(NAME, msg, reason, error));
                    return Ok(());
                }
            };
        match self
            .record(&e)
            .await
            .map_err(|err| RetryLater(format!("postgres: {err}")))?
        {
            Recorded::Sample(s) => batch.samples.push(s),
            Recorded::UnknownPool => batch.dlq.push(crate::dlq::dead_letter(
                NAME,
                msg,
                DeadLetterReason::Invalid,
                format!(
                    "pool {:?} is not registered (create it through the API first)",
                    e.pool_id
                ),
            )),
        }
        batch.consumed += 1;
        Ok(())
    }

    fn on_idle(&self, _state: &mut (), _partition: i32, _batch: &mut ResourcesBatch) {}

    async fn flush(&self, batch: &mut ResourcesBatch) -> atlasmesh_sinks::Result<()> {
        if batch.consumed == 0 {
            return Ok(());
        }
        self.clickhouse
            .write_pool_utilization(&batch.samples)
            .await?;
        let records = crate::dlq::encode_all(&self.codec, &self.topics, &batch.dlq).await?;
        self.producer.send_all("kafka", &records).await
    }

    fn batch_len(&self, batch: &ResourcesBatch) -> usize {
        batch.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(state: ResourceState, vehicle: Option<&str>) -> ResourceEventRecord {
        ResourceEventRecord {
            event_id: "e".into(),
            resource_id: "charger-1".into(),
            pool_id: "p".into(),
            fleet_id: "f".into(),
            vehicle_id: vehicle.map(str::to_string),
            ts_ms: 1,
            state,
        }
    }

    #[test]
    fn occupancy_and_conflicts() {
        let (a, c) = occupy(None, &ev(ResourceState::Occupied, Some("v1")));
        assert_eq!(
            a,
            Occupancy {
                state: ResourceState::Occupied,
                vehicles: vec!["v1".into()]
            }
        );
        assert!(c.is_empty());
        // The same vehicle again: no conflict.
        let (a, c) = occupy(Some(&a), &ev(ResourceState::Occupied, Some("v1")));
        assert!(c.is_empty());
        // Another vehicle: double booking; both hold it until each frees it.
        let (b, c) = occupy(Some(&a), &ev(ResourceState::Occupied, Some("v2")));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "double_booking");
        assert!(c[0].1.contains("v2") && c[0].1.contains("v1"), "{}", c[0].1);
        let (b, _) = occupy(Some(&b), &ev(ResourceState::Free, Some("v1")));
        assert_eq!(
            b,
            Occupancy {
                state: ResourceState::Occupied,
                vehicles: vec!["v2".into()]
            }
        );
        let (b, _) = occupy(Some(&b), &ev(ResourceState::Free, Some("v2")));
        assert_eq!(b.state, ResourceState::Free);
        // Out of service clears; occupying it then is a conflict of its own.
        let (o, _) = occupy(Some(&a), &ev(ResourceState::OutOfService, None));
        assert_eq!(
            o,
            Occupancy {
                state: ResourceState::OutOfService,
                vehicles: vec![]
            }
        );
        let (_, c) = occupy(Some(&o), &ev(ResourceState::Occupied, Some("v3")));
        assert_eq!(c.iter().map(|c| c.0).collect::<Vec<_>>(), ["other"]);
        // Freed without a vehicle: cleared.
        let (f, _) = occupy(Some(&a), &ev(ResourceState::Free, None));
        assert_eq!(f.state, ResourceState::Free);
        assert_eq!(
            parse_state(state_name(ResourceState::OutOfService)),
            Some(ResourceState::OutOfService)
        );
        assert!(invalid(&ev(ResourceState::Free, None)).is_none());
        let mut bad = ev(ResourceState::Free, None);
        bad.pool_id.clear();
        assert!(invalid(&bad).is_some());
    }
}
