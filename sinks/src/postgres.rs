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
        .acquire_timeout(std::time::Duration::from_secs(5))
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
    pub state: Vec<u8>,
}

#[derive(Clone)]
pub struct CheckpointStore {
    pool: PgPool,
    pipeline: String,
}

impl CheckpointStore {
    pub fn new(pool: PgPool, pipeline: impl Into<String>) -> Self {
        CheckpointStore {
            pool,
            pipeline: pipeline.into(),
        }
    }

    pub async fn load(&self, topic: &str, partition: i32) -> Result<Option<Checkpoint>> {
        let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT next_offset, state FROM stream_checkpoints WHERE pipeline = $1 AND topic = $2 AND partition = $3",
        )
        .bind(&self.pipeline)
        .bind(topic)
        .bind(partition)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(next_offset, state)| Checkpoint {
            topic: topic.into(),
            partition,
            next_offset,
            state,
        }))
    }

    /// Saves several partitions in one transaction. A row only moves forward, so a worker that
    /// lost the partition in a rebalance can never overwrite its new owner's progress.
    pub async fn save(&self, checkpoints: &[Checkpoint]) -> Result<()> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let r = async {
            let mut tx = self.pool.begin().await?;
            for c in checkpoints {
                sqlx::query(
                    "INSERT INTO stream_checkpoints (pipeline, topic, partition, next_offset, state, updated_at)
                     VALUES ($1, $2, $3, $4, $5, now())
                     ON CONFLICT (pipeline, topic, partition) DO UPDATE
                       SET next_offset = EXCLUDED.next_offset, state = EXCLUDED.state, updated_at = now()
                       WHERE stream_checkpoints.next_offset <= EXCLUDED.next_offset",
                )
                .bind(&self.pipeline)
                .bind(&c.topic)
                .bind(c.partition)
                .bind(c.next_offset)
                .bind(&c.state)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
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
