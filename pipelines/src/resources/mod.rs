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
pub mod relay;
mod state;
mod store;

use std::time::Duration;

use atlasmesh_core::config::{Config, Topics};
use atlasmesh_schemas::{
    Codec, DeadLetterReason, DeadLetterRecord, ResourceEventRecord, SchemaKind,
};
use atlasmesh_sinks::clickhouse::{ClickHouseSink, PoolUtilizationRow};
use atlasmesh_sinks::kafka::KafkaProducer;
use sqlx::PgPool;
use tokio::sync::watch;

pub use state::{invalid, occupy, ConflictDraft, Occupancy};

use crate::runner::{Background, Cadence, InMessage, Pipeline};
use crate::{Error, Result};
use store::Recorded;

pub const NAME: &str = "resources";

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
    coordination_every: Duration,
    relay_every: Duration,
    optimization_every: Duration,
    reoptimize_every: Duration,
    redis: atlasmesh_sinks::redis::RedisSink,
    cadence: Cadence,
}

impl Pipeline for ResourcesPipeline {
    const NAME: &'static str = NAME;
    type State = ();
    type Batch = ResourcesBatch;

    async fn build(cfg: &Config) -> Result<Self> {
        Ok(ResourcesPipeline {
            codec: Codec::from_config(&cfg.schema_registry)
                .map_err(|e| Error::setup("schema registry", e))?,
            topics: cfg.topics.clone(),
            pool: atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 3).await?,
            clickhouse: ClickHouseSink::new(&cfg.clickhouse),
            producer: KafkaProducer::new(&cfg.kafka)?,
            coordination_every: Duration::from_millis(cfg.resources.coordination_interval_ms),
            relay_every: Duration::from_millis(cfg.resources.relay_interval_ms),
            optimization_every: Duration::from_millis(cfg.resources.optimization_interval_ms),
            reoptimize_every: Duration::from_millis(cfg.resources.reoptimize_interval_ms),
            redis: atlasmesh_sinks::redis::RedisSink::connect(
                &cfg.redis.url,
                &cfg.redis.key_prefix,
            )
            .await?,
            cadence: Cadence::new(cfg, cfg.resources.tick_ms, cfg.resources.idle_flush_ms),
        })
    }

    fn tick_interval(&self) -> Duration {
        self.cadence.tick
    }

    fn idle_flush(&self) -> Duration {
        self.cadence.idle_flush
    }

    /// The federation coordination metrics, every `resources.coordination_interval_ms`, the
    /// relay of inter-fleet messages to `topics.coordination`, and the optimization run
    /// executor (`crate::optimization`).
    fn background(&self, cfg: &Config, shutdown: watch::Receiver<bool>) -> Vec<Background> {
        let (pool, every) = (self.pool.clone(), self.coordination_every);
        vec![
            Box::pin(coordination::run(pool.clone(), every, shutdown.clone())),
            Box::pin(crate::optimization::run(
                pool.clone(),
                self.redis.clone(),
                self.clickhouse.clone(),
                crate::optimization::Cadence {
                    look: self.optimization_every,
                    reoptimize: self.reoptimize_every,
                    zone_bucket_ms: cfg.missions.zone_bucket_ms,
                },
                shutdown.clone(),
            )),
            Box::pin(relay::run(
                pool,
                self.producer.clone(),
                self.codec.clone(),
                self.topics.coordination.clone(),
                self.relay_every,
                shutdown,
            )),
        ]
    }

    fn topic(&self) -> &str {
        &self.topics.resource_events
    }

    async fn handle(
        &self,
        _state: &mut (),
        msg: &InMessage<'_>,
        batch: &mut ResourcesBatch,
    ) -> Result<()> {
        let decoded = crate::dlq::decode_or_dead_letter(
            NAME,
            &self.codec,
            msg,
            SchemaKind::ResourceEvents,
            invalid,
            &mut batch.dlq,
        )
        .await?;
        let Some(e): Option<ResourceEventRecord> = decoded else {
            batch.consumed += 1;
            return Ok(());
        };
        match self.record(&e).await? {
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

    async fn flush(&self, batch: &mut ResourcesBatch) -> Result<()> {
        if batch.consumed == 0 {
            return Ok(());
        }
        self.clickhouse
            .write_pool_utilization(&batch.samples)
            .await?;
        let records = crate::dlq::encode_all(&self.codec, &self.topics, &batch.dlq).await?;
        Ok(self.producer.send_all("kafka", &records).await?)
    }

    fn batch_len(&self, batch: &ResourcesBatch) -> usize {
        batch.consumed
    }
}
