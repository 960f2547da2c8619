//! The command worker: applies each command of `fleet.commands.v1` exactly once.
//!
//! Per command, inside a PostgreSQL transaction: record the command in `command_log` (it is
//! usually there already, `pending`, written by the API), lock it, and when it is still
//! pending apply it with [`atlasmesh_sinks::store::apply`], mark it applied or rejected and
//! write its `audit_log` row. A command already decided (a replay after a crash, a duplicate
//! produce) changes nothing; its result is published again, which consumers tolerate (the
//! result topic is keyed by command id).
//!
//! Group commit: a lane applies the commands queued in it together, up to
//! `commands.group_max` of them, in one transaction, in order ([`apply_group`]). A rejection
//! concerns one command only: `store::apply` rolls back to its own savepoint, the rest of the
//! group goes on. Decisions (and metrics) leave the lane only after the group's commit. Any
//! error (PostgreSQL unavailable, a deadlock, our own SQL failing) rolls back the whole group,
//! which the lane retries as a whole, same commands in the same order, until it commits.
//!
//! Concurrency: `commands.lanes` tasks apply commands side by side, each on its own
//! connection. A command goes to the lane its Kafka key (the entity it is about) hashes to, so
//! commands about one entity keep their log order — the guarantee a partition gives — while
//! commands about different entities overlap their round trips to PostgreSQL. Rules that span
//! entities (pool capacity, the request queue, mission dependencies) take row or advisory
//! locks inside the transaction (held until the group commits); a deadlock or serialization
//! failure is retried by the lane. `flush` waits for every command handed to a lane before
//! anything is checkpointed, so a checkpoint never passes a command that is not decided.
//!
//! Commands commit with `synchronous_commit = off` (set once per connection, see
//! [`atlasmesh_sinks::postgres::connect_async_commit`]): one WAL flush per batch, not per
//! group. Before results leave for Kafka, and before the runner checkpoints, `flush` writes
//! a barrier row with a synchronous commit, which makes every earlier commit durable.

mod store;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use atlasmesh_core::command_signing::{self, SigningKeys};
use atlasmesh_core::config::{Config, Topics};
use atlasmesh_core::metric_names as m;
use atlasmesh_schemas::{
    Codec, CommandRecord, CommandResultRecord, DeadLetterReason, DeadLetterRecord, SchemaKind,
};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use atlasmesh_sinks::postgres_class;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::warn;

pub use store::{apply_group, apply_once, Decision, GroupCommand};

use crate::dlq::Decoded;
use crate::runner::{Background, Cadence, InMessage, Pipeline, RetryPolicy};
use crate::{Error, Result};
use store::{try_group, GroupFailure};

pub const NAME: &str = "commands";

/// How long `handle` waits for room in a full lane before it tells the runner to pause
/// (PostgreSQL is slow or down) and poll meanwhile.
const LANE_WAIT: Duration = Duration::from_secs(1);
/// How long `flush` waits for the lanes before reporting the batch as not yet writable (the
/// runner keeps polling and calls `flush` again).
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// A command handed to a lane, and where its decision goes.
struct Job {
    cmd: CommandRecord,
    partition: i32,
    offset: i64,
    done: oneshot::Sender<Decision>,
}

pub struct CommandPipeline {
    codec: Codec,
    /// Verifies the signature of every command (see `atlasmesh_core::command_signing`).
    signer: SigningKeys,
    topics: Topics,
    pool: PgPool,
    producer: KafkaProducer,
    lanes: Vec<mpsc::Sender<Job>>,
    /// The lanes' ends, until [`Pipeline::background`] runs them.
    lane_receivers: Mutex<Vec<mpsc::Receiver<Job>>>,
    group_max: usize,
    cadence: Cadence,
}

/// Commands in flight, results and dead letters gathered since the last checkpoint.
#[derive(Default)]
pub struct CommandBatch {
    consumed: usize,
    /// In consumption order: (command id, its decision once the lane has applied it).
    inflight: VecDeque<(String, oneshot::Receiver<Decision>)>,
    results: Vec<CommandResultRecord>,
    dlq: Vec<DeadLetterRecord>,
}

/// Applies the commands of one lane in order, in groups: the first command waited for and
/// those queued behind it, up to `group_max` in all, in one transaction. Retries a group with
/// the runner's [`RetryPolicy`] until it commits (or shutdown), then hands out its decisions.
/// Ends when the pipeline (holding the senders) is gone.
async fn run_lane(
    pool: PgPool,
    mut rx: mpsc::Receiver<Job>,
    group_max: usize,
    policy: RetryPolicy,
    mut shutdown: watch::Receiver<bool>,
) {
    let group_max = group_max.max(1);
    let mut jobs: Vec<Job> = Vec::with_capacity(group_max);
    while let Some(job) = rx.recv().await {
        jobs.push(job);
        while jobs.len() < group_max {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut backoff = policy.backoff();
        let group: Vec<GroupCommand<'_>> = jobs
            .iter()
            .map(|j| GroupCommand {
                cmd: &j.cmd,
                partition: j.partition,
                offset: j.offset,
            })
            .collect();
        let decisions = loop {
            match try_group(&pool, &group).await {
                Ok(d) => break d,
                Err(GroupFailure { command_id, error }) => {
                    // Retriable (PostgreSQL down, a deadlock) or our own SQL failing: either
                    // way the whole group was rolled back and is tried again, same commands in
                    // the same order; `flush` (and so the checkpoint) waits for it. Shutdown
                    // stops the retries: the group stays undecided, its commands are consumed
                    // again after the restart.
                    metrics::counter!(m::COMMANDS_RETRIED).increment(jobs.len() as u64);
                    warn!(command_id = command_id.as_deref().unwrap_or("-"), group = jobs.len(), error = %error, class = %postgres_class(&error), attempt = backoff.attempts() + 1, "Applying a group of commands failed; retrying the group.");
                    if !backoff.wait(&mut shutdown).await {
                        return;
                    }
                }
            }
        };
        drop(group);
        // The receiver is gone only when the batch was dropped (shutdown); the decision is
        // in PostgreSQL either way.
        for (job, decision) in jobs.drain(..).zip(decisions) {
            let _ = job.done.send(decision);
        }
    }
}

impl CommandPipeline {
    fn dead_letter(
        &self,
        msg: &InMessage<'_>,
        reason: DeadLetterReason,
        error: String,
        batch: &mut CommandBatch,
    ) {
        batch
            .dlq
            .push(crate::dlq::dead_letter(NAME, msg, reason, error));
    }

    /// The lane of a message: by its key (the entity), else by its command id.
    fn lane_of(&self, msg: &InMessage<'_>, cmd: &CommandRecord) -> usize {
        let h = match msg.key {
            Some(k) => atlasmesh_core::hash::fnv1a64(k),
            None => atlasmesh_core::hash::fnv1a64(cmd.command_id.as_bytes()),
        };
        (h % self.lanes.len() as u64) as usize
    }

    /// Moves every decided command from `inflight` to `results`, waiting at most `wait` for
    /// the rest. Returns whether nothing is left in flight.
    async fn collect_decided(batch: &mut CommandBatch, wait: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + wait;
        while let Some((_, rx)) = batch.inflight.front_mut() {
            let decision = match tokio::time::timeout_at(deadline, rx).await {
                Err(_) => return Ok(false),
                Ok(Ok(d)) => d,
                Ok(Err(_)) => {
                    return Err(Error::Internal(
                        "a command lane stopped with a command in flight".into(),
                    ))
                }
            };
            let (command_id, _) = batch.inflight.pop_front().expect("front exists");
            batch.results.push(CommandResultRecord {
                command_id,
                status: decision.status,
                reason: decision.reason,
                entity_id: decision.entity_id,
                applied_at_ms: decision.applied_at_ms,
            });
        }
        Ok(true)
    }
}

/// Why a command's envelope cannot be recorded, if it cannot: checked before it reaches a lane,
/// so such a record is dead-lettered (`invalid`) and the partition goes on. (Text with NUL is
/// refused for every topic when decoding.)
fn invalid_envelope(c: &CommandRecord) -> Option<String> {
    use atlasmesh_core::clock::{MAX_INSTANT_MS, MIN_INSTANT_MS};
    if c.command_id.trim().is_empty() {
        return Some("command_id is empty".into());
    }
    if !(MIN_INSTANT_MS..=MAX_INSTANT_MS).contains(&c.issued_at_ms) {
        return Some(format!(
            "issued_at_ms {} is outside the years 0001..9999",
            c.issued_at_ms
        ));
    }
    // JSON can carry a NUL only as the escape `\u0000` (a raw one is refused when decoding):
    // parse the payload here only then (the lane parses it anyway).
    if !c.payload_json.contains("\\u0000") {
        return None;
    }
    if let Ok(payload) = serde_json::from_str::<serde_json::Value>(&c.payload_json) {
        if let Some(field) = atlasmesh_core::domain::validate::json_nul_field(&payload) {
            return Some(format!(
                "payload {field}: text contains a NUL character (U+0000), which cannot be stored"
            ));
        }
    }
    None
}

impl Pipeline for CommandPipeline {
    const NAME: &'static str = NAME;
    /// A command's signature travels in a header.
    const HEADERS: bool = true;
    type State = ();
    type Batch = CommandBatch;

    async fn build(cfg: &Config) -> Result<Self> {
        let lanes_n = cfg.commands.lanes.max(1);
        // One connection per lane plus one for the durability barrier.
        let pool =
            atlasmesh_sinks::postgres::connect_async_commit(&cfg.postgres.url, lanes_n as u32 + 1)
                .await?;
        let (lanes, receivers): (Vec<_>, Vec<_>) = (0..lanes_n)
            .map(|_| mpsc::channel(cfg.commands.lane_capacity.max(1)))
            .unzip();
        Ok(CommandPipeline {
            signer: cfg
                .command_signing
                .required_keys()
                .map_err(|e| Error::setup("command signing", e))?,
            codec: Codec::from_config(&cfg.schema_registry)
                .map_err(|e| Error::setup("schema registry", e))?,
            topics: cfg.topics.clone(),
            pool,
            producer: KafkaProducer::new(&cfg.kafka)?,
            lanes,
            lane_receivers: Mutex::new(receivers),
            group_max: cfg.commands.group_max,
            cadence: Cadence::new(cfg, cfg.commands.tick_ms, cfg.commands.idle_flush_ms),
        })
    }

    fn tick_interval(&self) -> Duration {
        self.cadence.tick
    }

    fn idle_flush(&self) -> Duration {
        self.cadence.idle_flush
    }

    /// The lanes. They apply what `handle` queued until the pipeline is gone (its senders
    /// dropped); shutdown only stops a lane's retries.
    fn background(&self, cfg: &Config, shutdown: watch::Receiver<bool>) -> Vec<Background> {
        let policy = RetryPolicy::from_config(&cfg.runner);
        std::mem::take(&mut *self.lane_receivers.lock().expect("lanes lock"))
            .into_iter()
            .map(|rx| {
                Box::pin(run_lane(
                    self.pool.clone(),
                    rx,
                    self.group_max,
                    policy,
                    shutdown.clone(),
                )) as Background
            })
            .collect()
    }

    fn topic(&self) -> &str {
        &self.topics.commands
    }

    async fn handle(
        &self,
        _state: &mut (),
        msg: &InMessage<'_>,
        batch: &mut CommandBatch,
    ) -> Result<()> {
        // The topic is a trust boundary: only what the API signed is decoded at all.
        if let Err(e) = self.signer.verify(
            msg.header(command_signing::HEADER),
            msg.key,
            msg.payload.unwrap_or_default(),
        ) {
            batch.consumed += 1;
            self.dead_letter(msg, DeadLetterReason::Unauthenticated, e.to_string(), batch);
            return Ok(());
        }
        let cmd: CommandRecord = match crate::dlq::decode_valid(
            &self.codec,
            msg,
            SchemaKind::Commands,
            invalid_envelope,
        )
        .await?
        {
            Decoded::Ok(c) => c,
            Decoded::DeadLetter(reason, error) => {
                batch.consumed += 1;
                self.dead_letter(msg, reason, error, batch);
                return Ok(());
            }
        };
        let lane = &self.lanes[self.lane_of(msg, &cmd)];
        // Reserve first: if the lane stays full, nothing has changed when we return.
        let permit = match tokio::time::timeout(LANE_WAIT, lane.reserve()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(Error::Internal("a command lane stopped".into())),
            Err(_) => {
                return Err(Error::Unavailable(
                    "every slot of the command lane is taken (PostgreSQL slow or down)".into(),
                ))
            }
        };
        let (done, rx) = oneshot::channel();
        batch.consumed += 1;
        batch.inflight.push_back((cmd.command_id.clone(), rx));
        permit.send(Job {
            cmd,
            partition: msg.partition,
            offset: msg.offset,
            done,
        });
        Ok(())
    }

    fn on_idle(&self, _state: &mut (), _partition: i32, _batch: &mut CommandBatch) {}

    async fn flush(&self, batch: &mut CommandBatch) -> Result<()> {
        if batch.consumed == 0 {
            return Ok(());
        }
        if !Self::collect_decided(batch, FLUSH_WAIT).await? {
            return Err(Error::Unavailable(format!(
                "{} commands are still being applied (PostgreSQL slow or down)",
                batch.inflight.len()
            )));
        }
        // The durability barrier: a synchronous commit flushes the WAL of every earlier
        // (asynchronous) command commit.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = on")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO command_worker_barrier (id, at) VALUES (TRUE, now()) ON CONFLICT (id) DO UPDATE SET at = excluded.at")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut records = Vec::with_capacity(batch.results.len() + batch.dlq.len());
        for r in &batch.results {
            let payload = self
                .codec
                .encode(&self.topics.command_results, SchemaKind::CommandResults, r)
                .await
                .map_err(|e| Error::encode("command result", &e))?;
            records.push(OutRecord {
                topic: self.topics.command_results.clone(),
                key: Some(r.command_id.clone().into_bytes()),
                payload,
                headers: vec![],
                partition: None,
                timestamp_ms: None,
            });
        }
        records.extend(crate::dlq::encode_all(&self.codec, &self.topics, &batch.dlq).await?);
        Ok(self.producer.send_all("kafka", &records).await?)
    }

    fn batch_len(&self, batch: &CommandBatch) -> usize {
        batch.consumed
    }
}

#[cfg(test)]
mod tests {
    use atlasmesh_schemas::CommandRecord;

    use super::invalid_envelope;

    fn cmd(id: &str, at: i64) -> CommandRecord {
        CommandRecord {
            command_id: id.into(),
            idempotency_key: "k".into(),
            kind: "pools.create".into(),
            fleet_scope: vec!["f1".into()],
            actor: "a".into(),
            issued_at_ms: at,
            payload_json: "{}".into(),
        }
    }

    #[test]
    fn envelopes_that_cannot_be_recorded_are_invalid() {
        assert_eq!(invalid_envelope(&cmd("c1", 1_700_000_000_000)), None);
        assert!(invalid_envelope(&cmd("c1", i64::MAX)).is_some());
        assert!(invalid_envelope(&cmd("c1", i64::MIN)).is_some());
        assert!(invalid_envelope(&cmd(" ", 1_700_000_000_000)).is_some());
        let mut nul = cmd("c1", 1_700_000_000_000);
        nul.payload_json = r#"{"name": "a\u0000b"}"#.into();
        assert!(invalid_envelope(&nul).unwrap().contains("payload name"));
    }
}
