//! PostgreSQL: migrations and the per-partition checkpoint store (operator state + offset).

use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::{observe, Result};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Creates the database named in `url` when missing (connecting to `postgres` to do so).
pub async fn ensure_database(url: &str) -> Result<()> {
    let opts: PgConnectOptions = url.parse()?;
    let Some(db) = opts.get_database().map(str::to_string) else {
        return Ok(());
    };
    let mut admin = opts.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&db)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", db.replace('"', "\"\""));
        if let Err(e) = sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            // A concurrent creator won the race: fine. PostgreSQL reports it as
            // duplicate_database (42P04) or, when both inserts race in the catalog, as a
            // unique violation (23505) on pg_database_datname_index.
            let code = e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.to_string());
            if !matches!(code.as_deref(), Some("42P04" | "23505"))
                && !e.to_string().contains("already exists")
            {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// What a process that owns the schema does first: creates the database when missing, connects
/// (`max_connections`) and applies the migrations.
pub async fn prepare(url: &str, max_connections: u32) -> Result<PgPool> {
    ensure_database(url).await?;
    let pool = connect(url, max_connections).await?;
    migrate(&pool).await?;
    Ok(pool)
}

pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    connect_with(url.parse()?, max_connections).await
}

/// Like [`connect`], but the connections commit without waiting for the WAL flush
/// (`synchronous_commit = off`). A later synchronous commit on the same server makes every
/// earlier one durable (the WAL is flushed in order): the caller must issue one before it
/// reports the writes as done.
pub async fn connect_async_commit(url: &str, max_connections: u32) -> Result<PgPool> {
    let opts: PgConnectOptions = url.parse()?;
    connect_with(
        opts.options([("synchronous_commit", "off")]),
        max_connections,
    )
    .await
}

async fn connect_with(opts: PgConnectOptions, max_connections: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        // Short: after a PostgreSQL restart a pool may wait out this whole timeout on
        // connections that died with the server; the runner retries at once (its probe saw
        // the server back), so a short timeout is what makes progress resume within seconds.
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_with(opts)
        .await?)
}

pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// One partition's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
    /// The partition's full state; with `delta`, the changes since the full state `base_id`.
    pub state: Vec<u8>,
    /// `state` is a delta: appended onto the full state `base_id` (when that is still the
    /// stored one), not written over it.
    pub delta: bool,
    /// The full state this checkpoint is or builds on; 0 for rows saved before deltas.
    pub base_id: i64,
    /// On load: the deltas saved after the full `state`, in order.
    pub deltas: Vec<Vec<u8>>,
    /// Also keep a copy in `checkpoint_snapshots` (for `reset --to-time`); full states only.
    pub snapshot: bool,
}

impl Checkpoint {
    /// A full state to save.
    pub fn full(
        topic: &str,
        partition: i32,
        next_offset: i64,
        state: Vec<u8>,
        base_id: i64,
        snapshot: bool,
    ) -> Self {
        Checkpoint {
            topic: topic.into(),
            partition,
            next_offset,
            state,
            delta: false,
            base_id,
            deltas: Vec::new(),
            snapshot,
        }
    }

    /// The changes since the full state `base_id`, to append onto it.
    pub fn delta(
        topic: &str,
        partition: i32,
        next_offset: i64,
        delta: Vec<u8>,
        base_id: i64,
    ) -> Self {
        Checkpoint {
            delta: true,
            ..Checkpoint::full(topic, partition, next_offset, delta, base_id, false)
        }
    }

    /// A stored `(next_offset, state)` row of `topic`/`partition`.
    fn of_row(
        topic: &str,
        partition: i32,
        (next_offset, state): (i64, Vec<u8>),
        snapshot: bool,
    ) -> Self {
        Checkpoint::full(topic, partition, next_offset, state, 0, snapshot)
    }
}

#[derive(Clone)]
pub struct CheckpointStore {
    pool: PgPool,
    pipeline: String,
    /// Manual assignment: checkpoints are saved only while this owner holds the partitions'
    /// leases ([`LeaseStore`]).
    lease_owner: Option<String>,
    /// Snapshots older than this are deleted when a new one is saved.
    snapshot_retention_hours: u64,
}

/// A partition leased by another worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    pub partition: i32,
    pub owner: String,
    /// Milliseconds until it expires, by the database's clock (negative: expired).
    pub expires_in_ms: i64,
}

/// Partition leases of one pipeline (migrations/postgres/0010_partition_leases.sql).
#[derive(Clone)]
pub struct LeaseStore {
    pool: PgPool,
    pipeline: String,
    owner: String,
}

impl LeaseStore {
    pub fn new(pool: PgPool, pipeline: impl Into<String>, owner: impl Into<String>) -> Self {
        LeaseStore {
            pool,
            pipeline: pipeline.into(),
            owner: owner.into(),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes the leases of `partitions` for `ttl_ms`, all or none: a partition whose lease is
    /// another owner's and has not expired is returned (and nothing is taken).
    pub async fn acquire(
        &self,
        topic: &str,
        partitions: &[i32],
        ttl_ms: u64,
    ) -> Result<Vec<HeldLease>> {
        let mut tx = self.pool.begin().await?;
        let mut held = Vec::new();
        for &p in partitions {
            let took: Option<i32> = sqlx::query_scalar(
                "INSERT INTO partition_leases (pipeline, topic, partition, owner, expires_at)
                 VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')
                 ON CONFLICT (pipeline, topic, partition) DO UPDATE
                   SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at,
                       acquired_at = CASE WHEN partition_leases.owner = EXCLUDED.owner
                                          THEN partition_leases.acquired_at ELSE now() END
                   WHERE partition_leases.owner = EXCLUDED.owner
                      OR partition_leases.expires_at < now()
                 RETURNING partition",
            )
            .bind(&self.pipeline)
            .bind(topic)
            .bind(p)
            .bind(&self.owner)
            .bind(ttl_ms as i64)
            .fetch_optional(&mut *tx)
            .await?;
            if took.is_none() {
                let (owner, expires_in_ms): (String, i64) = sqlx::query_as(
                    "SELECT owner, (extract(epoch FROM expires_at - now()) * 1000)::bigint
                     FROM partition_leases WHERE pipeline = $1 AND topic = $2 AND partition = $3",
                )
                .bind(&self.pipeline)
                .bind(topic)
                .bind(p)
                .fetch_one(&mut *tx)
                .await?;
                held.push(HeldLease {
                    partition: p,
                    owner,
                    expires_in_ms,
                });
            }
        }
        if held.is_empty() {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(held)
    }

    /// Extends this owner's leases of `topic` by `ttl_ms`; returns the partitions it still
    /// holds.
    pub async fn renew(&self, topic: &str, ttl_ms: u64) -> Result<Vec<i32>> {
        Ok(sqlx::query_scalar(
            "UPDATE partition_leases SET expires_at = now() + $4 * interval '1 millisecond'
             WHERE pipeline = $1 AND topic = $2 AND owner = $3 RETURNING partition",
        )
        .bind(&self.pipeline)
        .bind(topic)
        .bind(&self.owner)
        .bind(ttl_ms as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Gives this owner's leases of `topic` up (at shutdown).
    pub async fn release(&self, topic: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM partition_leases WHERE pipeline = $1 AND topic = $2 AND owner = $3",
        )
        .bind(&self.pipeline)
        .bind(topic)
        .bind(&self.owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl CheckpointStore {
    pub fn new(pool: PgPool, pipeline: impl Into<String>) -> Self {
        CheckpointStore {
            pool,
            pipeline: pipeline.into(),
            lease_owner: None,
            snapshot_retention_hours: 24,
        }
    }

    /// Keeps checkpoint snapshots this long.
    pub fn with_snapshot_retention_hours(mut self, hours: u64) -> Self {
        self.snapshot_retention_hours = hours;
        self
    }

    /// Deletes every checkpoint of the pipeline, state and offsets together, so its workers
    /// start again from the configured position with empty state. Refused (nothing deleted,
    /// the leases returned) while a worker holds a live lease of the pipeline; with `force`,
    /// also when a checkpoint changed within `busy_ms` (a worker in group mode, which leases
    /// nothing, is probably running). Returns the number of checkpoints deleted.
    ///
    /// With `to_time` (a timestamp PostgreSQL reads, e.g. RFC 3339), each partition is put
    /// back to its newest snapshot taken at or before it (state and offset as they were
    /// then; snapshots after it are dropped) and partitions without one start from the
    /// beginning. Returns the number of partitions reset.
    pub async fn reset(
        &self,
        to_time: Option<&str>,
        force: bool,
        busy_ms: u64,
    ) -> Result<Result<u64, String>> {
        let mut tx = self.pool.begin().await?;
        let live: Vec<(String, i32, String)> = sqlx::query_as(
            "SELECT topic, partition, owner FROM partition_leases
             WHERE pipeline = $1 AND expires_at > now() ORDER BY topic, partition FOR UPDATE",
        )
        .bind(&self.pipeline)
        .fetch_all(&mut *tx)
        .await?;
        if !live.is_empty() {
            let held: Vec<String> = live
                .iter()
                .map(|(t, p, o)| format!("{t}/{p} by {o}"))
                .collect();
            return Ok(Err(format!(
                "workers of pipeline {} are running (leases: {}); stop them first",
                self.pipeline,
                held.join(", ")
            )));
        }
        if !force {
            let recent: Option<f64> = sqlx::query_scalar(
                "SELECT extract(epoch FROM now() - max(updated_at))::float8 FROM stream_checkpoints
                 WHERE pipeline = $1",
            )
            .bind(&self.pipeline)
            .fetch_one(&mut *tx)
            .await?;
            if let Some(ago) = recent.filter(|a| *a * 1000.0 < busy_ms as f64) {
                return Ok(Err(format!(
                    "a checkpoint of pipeline {} was saved {ago:.1} s ago: a worker (in group mode) \
                     seems to be running; stop it first, or pass --force",
                    self.pipeline
                )));
            }
        }
        let deleted = sqlx::query("DELETE FROM stream_checkpoints WHERE pipeline = $1")
            .bind(&self.pipeline)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let Some(t) = to_time {
            sqlx::query(
                "INSERT INTO stream_checkpoints (pipeline, topic, partition, next_offset, state, updated_at)
                 SELECT DISTINCT ON (topic, partition) pipeline, topic, partition, next_offset, state, now()
                 FROM checkpoint_snapshots WHERE pipeline = $1 AND taken_at <= $2::timestamptz
                 ORDER BY topic, partition, taken_at DESC",
            )
            .bind(&self.pipeline)
            .bind(t)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM checkpoint_snapshots WHERE pipeline = $1 AND taken_at > $2::timestamptz",
            )
            .bind(&self.pipeline)
            .bind(t)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("DELETE FROM checkpoint_snapshots WHERE pipeline = $1")
                .bind(&self.pipeline)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM partition_leases WHERE pipeline = $1")
            .bind(&self.pipeline)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(deleted))
    }

    /// Saves only while `owner` holds the leases of the saved partitions (manual assignment):
    /// a worker that lost a lease can never write over its successor's progress.
    pub fn fenced_by(mut self, owner: impl Into<String>) -> Self {
        self.lease_owner = Some(owner.into());
        self
    }

    /// The sum of the checkpointed next offsets of `topic`'s partitions (the messages the
    /// pipeline has checkpointed, when every partition starts at offset 0): one small row,
    /// no state read, for a progress poll.
    pub async fn checkpointed_total(&self, topic: &str) -> Result<i64> {
        let (sum,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(SUM(next_offset), 0)::BIGINT FROM stream_checkpoints
             WHERE pipeline = $1 AND topic = $2",
        )
        .bind(&self.pipeline)
        .bind(topic)
        .fetch_one(&self.pool)
        .await?;
        Ok(sum)
    }

    /// A partition's checkpoint: its full state with the deltas saved after it (in order).
    pub async fn load(&self, topic: &str, partition: i32) -> Result<Option<Checkpoint>> {
        let mut tx = self.pool.begin().await?;
        // One snapshot for both reads: a full save in between cannot swap the deltas.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let row: Option<(i64, Vec<u8>, Option<i64>, i32)> = sqlx::query_as(
            "SELECT next_offset, state, base_id, deltas FROM stream_checkpoints
             WHERE pipeline = $1 AND topic = $2 AND partition = $3",
        )
        .bind(&self.pipeline)
        .bind(topic)
        .bind(partition)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((next_offset, state, base_id, deltas)) = row else {
            return Ok(None);
        };
        let mut c = Checkpoint::full(
            topic,
            partition,
            next_offset,
            state,
            base_id.unwrap_or(0),
            false,
        );
        if deltas > 0 {
            c.deltas = sqlx::query_scalar(
                "SELECT delta FROM stream_checkpoint_deltas
                 WHERE pipeline = $1 AND topic = $2 AND partition = $3 AND seq <= $4 ORDER BY seq",
            )
            .bind(&self.pipeline)
            .bind(topic)
            .bind(partition)
            .bind(deltas)
            .fetch_all(&mut *tx)
            .await?;
            if c.deltas.len() != deltas as usize {
                return Err(crate::Error::Other(format!(
                    "checkpoint of {topic}/{partition} names {deltas} deltas, {} are stored",
                    c.deltas.len()
                )));
            }
        }
        tx.commit().await?;
        Ok(Some(c))
    }

    /// The newest snapshot of `partition` whose offset is at or before `offset` (the state the
    /// message at `offset` met, give or take the messages after the snapshot): where
    /// `atlasmesh replay` starts. Of snapshots at the same offset, the last taken (it holds
    /// what an idle close changed without consuming anything).
    pub async fn snapshot_at_or_before(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<Checkpoint>> {
        let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT next_offset, state FROM checkpoint_snapshots
             WHERE pipeline = $1 AND topic = $2 AND partition = $3 AND next_offset <= $4
             ORDER BY next_offset DESC, taken_at DESC LIMIT 1",
        )
        .bind(&self.pipeline)
        .bind(topic)
        .bind(partition)
        .bind(offset)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Checkpoint::of_row(topic, partition, r, true)))
    }

    /// Saves several partitions in one transaction. A row only moves forward, so a worker that
    /// lost the partition in a rebalance can never overwrite its new owner's progress. A delta
    /// is appended only when its base is the stored full state; the partitions whose delta was
    /// refused for that are returned (nothing of them was saved: save their full state).
    pub async fn save(&self, checkpoints: &[Checkpoint]) -> Result<Vec<i32>> {
        let mut refused = Vec::new();
        if checkpoints.is_empty() {
            return Ok(refused);
        }
        let started = Instant::now();
        let r = async {
            let mut tx = self.pool.begin().await?;
            if let Some(owner) = &self.lease_owner {
                let topic = &checkpoints[0].topic;
                let partitions: Vec<i32> = checkpoints.iter().map(|c| c.partition).collect();
                // FOR SHARE: the leases cannot change hands before this transaction commits.
                let held: Vec<i32> = sqlx::query_scalar(
                    "SELECT partition FROM partition_leases
                     WHERE pipeline = $1 AND topic = $2 AND owner = $3 AND partition = ANY($4)
                     FOR SHARE",
                )
                .bind(&self.pipeline)
                .bind(topic)
                .bind(owner)
                .bind(&partitions)
                .fetch_all(&mut *tx)
                .await?;
                if held.len() != partitions.len() {
                    return Err(crate::Error::Other(format!(
                        "lost the lease of a partition of {topic} among {partitions:?} \
                         (another worker took it over); not saving over its progress"
                    )));
                }
            }
            for c in checkpoints {
                if c.delta {
                    let seq: Option<i32> = sqlx::query_scalar(
                        "UPDATE stream_checkpoints
                         SET next_offset = $4, deltas = deltas + 1, updated_at = now()
                         WHERE pipeline = $1 AND topic = $2 AND partition = $3 AND base_id = $5
                           AND next_offset <= $4
                         RETURNING deltas",
                    )
                    .bind(&self.pipeline)
                    .bind(&c.topic)
                    .bind(c.partition)
                    .bind(c.next_offset)
                    .bind(c.base_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match seq {
                        Some(seq) => {
                            sqlx::query(
                                "INSERT INTO stream_checkpoint_deltas
                                   (pipeline, topic, partition, seq, next_offset, delta)
                                 VALUES ($1, $2, $3, $4, $5, $6)",
                            )
                            .bind(&self.pipeline)
                            .bind(&c.topic)
                            .bind(c.partition)
                            .bind(seq)
                            .bind(c.next_offset)
                            .bind(&c.state)
                            .execute(&mut *tx)
                            .await?;
                        }
                        None => refused.push(c.partition),
                    }
                    continue;
                }
                let written = sqlx::query(
                    "INSERT INTO stream_checkpoints
                       (pipeline, topic, partition, next_offset, state, base_id, deltas, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 0, now())
                     ON CONFLICT (pipeline, topic, partition) DO UPDATE
                       SET next_offset = EXCLUDED.next_offset, state = EXCLUDED.state,
                           base_id = EXCLUDED.base_id, deltas = 0, updated_at = now()
                       WHERE stream_checkpoints.next_offset <= EXCLUDED.next_offset",
                )
                .bind(&self.pipeline)
                .bind(&c.topic)
                .bind(c.partition)
                .bind(c.next_offset)
                .bind(&c.state)
                .bind(c.base_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if written > 0 {
                    sqlx::query(
                        "DELETE FROM stream_checkpoint_deltas
                         WHERE pipeline = $1 AND topic = $2 AND partition = $3",
                    )
                    .bind(&self.pipeline)
                    .bind(&c.topic)
                    .bind(c.partition)
                    .execute(&mut *tx)
                    .await?;
                }
                if c.snapshot {
                    sqlx::query(
                        "INSERT INTO checkpoint_snapshots (pipeline, topic, partition, next_offset, state)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(&self.pipeline)
                    .bind(&c.topic)
                    .bind(c.partition)
                    .bind(c.next_offset)
                    .bind(&c.state)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            if checkpoints.iter().any(|c| c.snapshot) {
                sqlx::query(
                    "DELETE FROM checkpoint_snapshots
                     WHERE pipeline = $1 AND taken_at < now() - $2 * interval '1 hour'",
                )
                .bind(&self.pipeline)
                .bind(self.snapshot_retention_hours as f64)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(refused)
        }
        .await;
        observe("postgres", checkpoints.len(), started, &r);
        r
    }

    pub async fn healthcheck(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
