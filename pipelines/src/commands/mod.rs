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

use std::collections::VecDeque;
use std::time::Duration;

use atlasmesh_core::config::{Config, Topics};
use atlasmesh_core::metric_names as m;
use atlasmesh_core::Scope;
use atlasmesh_schemas::{
    Codec, CommandRecord, CommandResultRecord, CommandStatus, DeadLetterReason, DeadLetterRecord,
    SchemaKind,
};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use atlasmesh_sinks::store::{self, CommandCtx, Outcome};
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::runner::{InMessage, Pipeline, RetryLater};
use crate::telemetry::now_ms;

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
    topics: Topics,
    pool: PgPool,
    producer: KafkaProducer,
    lanes: Vec<mpsc::Sender<Job>>,
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
/// those queued behind it, up to `group_max` in all, in one transaction. Retries a group until
/// it commits, then hands out its decisions.
async fn run_lane(
    pool: PgPool,
    mut rx: mpsc::Receiver<Job>,
    group_max: usize,
    retry_initial: Duration,
    retry_max: Duration,
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
        let mut backoff = retry_initial;
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
                    // the same order; `flush` (and so the checkpoint) waits for it.
                    metrics::counter!(m::COMMANDS_RETRIED).increment(jobs.len() as u64);
                    warn!(command_id = command_id.as_deref().unwrap_or("-"), group = jobs.len(), error = %error, retriable = retriable(&error), backoff_ms = backoff.as_millis() as u64, "Applying a group of commands failed; retrying the group.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(retry_max);
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
    pub async fn new(cfg: &Config) -> anyhow::Result<Self> {
        let lanes_n = cfg.commands.lanes.max(1);
        // One connection per lane plus one for the durability barrier.
        let pool =
            atlasmesh_sinks::postgres::connect_async_commit(&cfg.postgres.url, lanes_n as u32 + 1)
                .await?;
        let retry_initial = Duration::from_millis(cfg.runner.retry_initial_ms);
        let retry_max = Duration::from_millis(cfg.runner.retry_max_ms);
        let lanes = (0..lanes_n)
            .map(|_| {
                let (tx, rx) = mpsc::channel(cfg.commands.lane_capacity.max(1));
                tokio::spawn(run_lane(
                    pool.clone(),
                    rx,
                    cfg.commands.group_max,
                    retry_initial,
                    retry_max,
                ));
                tx
            })
            .collect();
        Ok(CommandPipeline {
            codec: Codec::new(&cfg.schema_registry.url)
                .map_err(|e| anyhow::anyhow!("schema registry: {e}"))?,
            topics: cfg.topics.clone(),
            pool,
            producer: KafkaProducer::new(&cfg.kafka)?,
            lanes,
        })
    }

    fn dead_letter(
        &self,
        msg: &InMessage,
        reason: DeadLetterReason,
        error: String,
        batch: &mut CommandBatch,
    ) {
        batch
            .dlq
            .push(crate::dlq::dead_letter(NAME, msg, reason, error));
    }

    /// The lane of a message: by its key (the entity), else by its command id.
    fn lane_of(&self, msg: &InMessage, cmd: &CommandRecord) -> usize {
        let h = match &msg.key {
            Some(k) => atlasmesh_core::hash::fnv1a64(k),
            None => atlasmesh_core::hash::fnv1a64(cmd.command_id.as_bytes()),
        };
        (h % self.lanes.len() as u64) as usize
    }

    /// Moves every decided command from `inflight` to `results`, waiting at most `wait` for
    /// the rest. Returns whether nothing is left in flight.
    async fn collect_decided(batch: &mut CommandBatch, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while let Some((_, rx)) = batch.inflight.front_mut() {
            let decision = match tokio::time::timeout_at(deadline, rx).await {
                Err(_) => return false,
                Ok(Ok(d)) => d,
                Ok(Err(_)) => panic!("a command lane stopped with a command in flight"),
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
        true
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
    if let Ok(payload) = serde_json::from_str::<serde_json::Value>(&c.payload_json) {
        if let Some(field) = atlasmesh_core::domain::validate::json_nul_field(&payload) {
            return Some(format!(
                "payload {field}: text contains a NUL character (U+0000), which cannot be stored"
            ));
        }
    }
    None
}

/// Whether a PostgreSQL error is worth retrying (the server is unreachable or overloaded)
/// rather than a verdict on this command.
fn retriable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            // serialization_failure, deadlock_detected, admin shutdown, cannot connect now
            matches!(
                d.code().as_deref(),
                Some("40001" | "40P01" | "57P01" | "57P03" | "53300")
            )
        }
        _ => false,
    }
}

/// The decision recorded for a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: CommandStatus,
    pub reason: Option<String>,
    pub entity_id: Option<String>,
    pub applied_at_ms: i64,
}

/// One command of a group, with where it was read from (recorded with its decision).
#[derive(Debug, Clone, Copy)]
pub struct GroupCommand<'a> {
    pub cmd: &'a CommandRecord,
    pub partition: i32,
    pub offset: i64,
}

/// Applies `cmd` in one transaction unless it was decided before; returns its decision.
/// (A group of one, see [`apply_group`].)
pub async fn apply_once(
    pool: &PgPool,
    cmd: &CommandRecord,
    partition: i32,
    offset: i64,
) -> Result<Decision, sqlx::Error> {
    let mut decisions = apply_group(
        pool,
        &[GroupCommand {
            cmd,
            partition,
            offset,
        }],
    )
    .await?;
    Ok(decisions.pop().expect("one decision per command"))
}

/// Applies `group` in order in one transaction, each command unless it was decided before;
/// returns their decisions, in order, once the transaction is committed. A command refused
/// (by a domain rule, the database, or because its idempotency key is another command's) is
/// decided `rejected` without disturbing the others. An error rolls back the whole group:
/// nothing of it is kept, and the caller retries it.
pub async fn apply_group(
    pool: &PgPool,
    group: &[GroupCommand<'_>],
) -> Result<Vec<Decision>, sqlx::Error> {
    try_group(pool, group).await.map_err(|f| f.error)
}

/// Why a group was rolled back: the error, and the command it hit (none: BEGIN or COMMIT).
struct GroupFailure {
    command_id: Option<String>,
    error: sqlx::Error,
}

/// What a decided command adds to the metrics once its group is committed.
enum Counted {
    /// Decided now, with this status.
    Decided(&'static str),
    /// Decided before.
    Replayed,
    /// Not ours to decide (its idempotency key belongs to another command).
    Nothing,
}

async fn try_group(
    pool: &PgPool,
    group: &[GroupCommand<'_>],
) -> Result<Vec<Decision>, GroupFailure> {
    let mut tx = pool.begin().await.map_err(|error| GroupFailure {
        command_id: None,
        error,
    })?;
    let mut decided = Vec::with_capacity(group.len());
    for c in group {
        match decide(&mut tx, c.cmd, c.partition, c.offset).await {
            Ok(d) => decided.push(d),
            Err(e) => {
                // Roll back now rather than on drop (should this fail, the drop queues the
                // rollback, as before grouping).
                let _ = tx.rollback().await;
                return Err(GroupFailure {
                    command_id: Some(c.cmd.command_id.clone()),
                    error: e,
                });
            }
        }
    }
    tx.commit().await.map_err(|error| GroupFailure {
        command_id: None,
        error,
    })?;
    Ok(decided
        .into_iter()
        .map(|(decision, counted)| {
            match counted {
                Counted::Decided(status) => {
                    metrics::counter!(m::COMMANDS_APPLIED, "status" => status).increment(1)
                }
                Counted::Replayed => metrics::counter!(m::COMMANDS_REPLAYED).increment(1),
                Counted::Nothing => {}
            }
            decision
        })
        .collect())
}

/// Decides one command inside the group's transaction `conn`: claims and locks it, applies it
/// when still pending and records the decision with its audit row. Leaves the transaction
/// usable unless it returns an error.
async fn decide(
    conn: &mut PgConnection,
    cmd: &CommandRecord,
    partition: i32,
    offset: i64,
) -> Result<(Decision, Counted), sqlx::Error> {
    let payload: serde_json::Value = match serde_json::from_str(&cmd.payload_json) {
        Ok(v) => v,
        Err(e) => serde_json::json!({ "_unparseable": e.to_string() }),
    };
    let request_hash = atlasmesh_core::command::request_hash_json(&cmd.kind, &cmd.payload_json);
    // Record the command if the API did not (one round trip): `ins` returns it when this
    // statement created it (new rows are invisible to `cur` in the same statement); else
    // `cur` returns the existing row, locked. Neither: the idempotency key is another
    // command's.
    let row = sqlx::query(
        "WITH ins AS (
             INSERT INTO command_log (command_id, idempotency_key, actor, kind, aggregate_id, fleet_scope, payload, request_hash, status, issued_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', to_timestamp($9::double precision / 1000))
             ON CONFLICT DO NOTHING
             RETURNING status, reason, entity_id, 0::bigint AS at_ms
         ), cur AS (
             SELECT status, reason, entity_id, (extract(epoch from coalesce(applied_at, now())) * 1000)::bigint AS at_ms
             FROM command_log WHERE command_id = $1 FOR UPDATE
         )
         SELECT status, reason, entity_id, at_ms FROM ins
         UNION ALL
         SELECT status, reason, entity_id, at_ms FROM cur",
    )
    .bind(&cmd.command_id)
    .bind(&cmd.idempotency_key)
    .bind(&cmd.actor)
    .bind(&cmd.kind)
    .bind(payload.get("id").and_then(|v| v.as_str()).unwrap_or(&cmd.command_id))
    .bind(&cmd.fleet_scope)
    .bind(&payload)
    .bind(&request_hash)
    .bind(cmd.issued_at_ms as f64)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        // Another command already holds this actor's idempotency key. The statement wrote
        // nothing, so the rest of the group goes on.
        let decision = Decision {
            status: CommandStatus::Rejected,
            reason: Some(format!(
                "idempotency key {:?} of actor {:?} belongs to another command",
                cmd.idempotency_key, cmd.actor
            )),
            entity_id: None,
            applied_at_ms: now_ms(),
        };
        return Ok((decision, Counted::Nothing));
    };
    let status: String = row.get("status");
    if status != "pending" {
        // Decided before (possibly earlier in this group: a duplicate); nothing to write.
        let decision = Decision {
            status: if status == "applied" {
                CommandStatus::Applied
            } else {
                CommandStatus::Rejected
            },
            reason: row.get("reason"),
            entity_id: row.get("entity_id"),
            applied_at_ms: row.get("at_ms"),
        };
        return Ok((decision, Counted::Replayed));
    }
    let scope = Scope::from_record(&cmd.fleet_scope);
    let outcome = if payload.get("_unparseable").is_some() {
        Outcome::Rejected {
            reason: "payload is not valid JSON".into(),
        }
    } else {
        let ctx = CommandCtx {
            command_id: &cmd.command_id,
            kind: &cmd.kind,
            actor: &cmd.actor,
            scope: &scope,
            issued_at_ms: cmd.issued_at_ms,
            payload: &payload,
        };
        match store::apply(&mut *conn, ctx).await {
            Ok(o) => o,
            Err(e) if retriable(&e) => return Err(e),
            Err(e) => {
                // A statement the domain rules did not foresee failed: `apply` rolled back to
                // its own savepoint, so nothing of the command is kept and the group's
                // transaction is usable again; refuse the command with the database's reason.
                // (Had that rollback failed too, the decision below fails, and the group is
                // retried.)
                Outcome::Rejected {
                    reason: format!(
                        "refused by the database: {}",
                        e.as_database_error()
                            .map_or(e.to_string(), |d| d.message().to_string())
                    ),
                }
            }
        }
    };
    let (status, reason, entity_type, entity_id, fleet_id) = match &outcome {
        Outcome::Applied {
            entity_type,
            entity_id,
            fleet_id,
        } => (
            "applied",
            None,
            Some(entity_type.clone()),
            Some(entity_id.clone()),
            fleet_id.clone(),
        ),
        Outcome::Rejected { reason } => ("rejected", Some(reason.clone()), None, None, None),
    };
    // The decision and its audit row, in one round trip.
    let applied_at_ms: i64 = sqlx::query_scalar(
        "WITH decided AS (
             UPDATE command_log SET status = $2, reason = $3, entity_type = $4, entity_id = $5, applied_at = now(),
                    source_partition = $6, source_offset = $7
             WHERE command_id = $1
             RETURNING (extract(epoch from applied_at) * 1000)::bigint AS at_ms
         ), audited AS (
             INSERT INTO audit_log (command_id, actor, kind, outcome, reason, entity_type, entity_id, fleet_id, payload)
             VALUES ($1, $8, $9, $2, $3, $4, $5, $10, $11)
         )
         SELECT at_ms FROM decided",
    )
    .bind(&cmd.command_id)
    .bind(status)
    .bind(&reason)
    .bind(&entity_type)
    .bind(&entity_id)
    .bind(partition)
    .bind(offset)
    .bind(&cmd.actor)
    .bind(&cmd.kind)
    .bind(&fleet_id)
    .bind(&payload)
    .fetch_one(&mut *conn)
    .await?;
    let decision = Decision {
        status: if status == "applied" {
            CommandStatus::Applied
        } else {
            CommandStatus::Rejected
        },
        reason,
        entity_id,
        applied_at_ms,
    };
    Ok((decision, Counted::Decided(status)))
}

impl Pipeline for CommandPipeline {
    type State = ();
    type Batch = CommandBatch;

    fn name(&self) -> &str {
        NAME
    }

    fn topic(&self) -> &str {
        &self.topics.commands
    }

    async fn handle(
        &self,
        _state: &mut (),
        msg: &InMessage,
        batch: &mut CommandBatch,
    ) -> Result<(), RetryLater> {
        let cmd: CommandRecord =
            match crate::dlq::decode_valid(&self.codec, msg, "Command", invalid_envelope).await? {
                Ok(c) => c,
                Err((reason, error)) => {
                    batch.consumed += 1;
                    self.dead_letter(msg, reason, error, batch);
                    return Ok(());
                }
            };
        let lane = &self.lanes[self.lane_of(msg, &cmd)];
        // Reserve first: if the lane stays full, nothing has changed when we return.
        let permit = match tokio::time::timeout(LANE_WAIT, lane.reserve()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => panic!("a command lane stopped"),
            Err(_) => {
                return Err(RetryLater(
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

    async fn flush(&self, batch: &mut CommandBatch) -> atlasmesh_sinks::Result<()> {
        if batch.consumed == 0 {
            return Ok(());
        }
        if !Self::collect_decided(batch, FLUSH_WAIT).await {
            return Err(atlasmesh_sinks::Error::Other(format!(
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
                .map_err(|e| {
                    atlasmesh_sinks::Error::Other(format!("encoding command result: {e}"))
                })?;
            records.push(OutRecord {
                topic: self.topics.command_results.clone(),
                key: Some(r.command_id.clone().into_bytes()),
                payload,
                headers: vec![],
                partition: None,
            });
        }
        records.extend(crate::dlq::encode_all(&self.codec, &self.topics, &batch.dlq).await?);
        self.producer.send_all("kafka", &records).await
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
