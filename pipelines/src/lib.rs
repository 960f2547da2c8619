//! Pipelines and the one generic Kafka runner that drives them.
//!
//! A pipeline is pure logic plus a flush: `handle` folds a message into per-partition state
//! and a batch of outputs, `flush` writes the batch idempotently to its sinks. The runner
//! stores offsets (with the state, in PostgreSQL) only after `flush` succeeded, and pauses
//! consumption while a sink is down.

pub mod alerts;
pub mod commands;
pub mod dlq;
mod error;
pub mod health;
pub mod missions;
pub mod optimization;
pub mod performance;
pub mod ready;
pub mod resources;
pub mod runner;
pub mod settle;
pub mod telemetry;

use std::sync::Arc;

use atlasmesh_core::config::Config;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tracing::error;

pub use error::{Error, Result};
pub use runner::Pipeline;

/// A pipeline that runs: built, its background tasks started, ready to consume.
pub type Running = BoxFuture<'static, Result<()>>;

/// How a registered pipeline is started (see [`runner::start`]).
pub type StartFn = fn(Arc<Config>, watch::Receiver<bool>) -> BoxFuture<'static, Result<Running>>;

/// How a registered pipeline replays a range of its input (see [`runner::replay`]).
pub type ReplayFn = for<'a> fn(
    &'a Config,
    runner::replay::ReplayRange,
    watch::Receiver<bool>,
    &'a mut (dyn FnMut(&runner::replay::ReplayProgress) + Send),
) -> BoxFuture<'a, Result<runner::replay::ReplaySummary>>;

/// One entry of [`PIPELINES`]: a pipeline's name and how to start or replay it.
pub struct Registered {
    pub name: &'static str,
    pub start: StartFn,
    pub replay: ReplayFn,
}

impl Registered {
    pub const fn of<P: Pipeline>() -> Registered {
        Registered {
            name: P::NAME,
            start: start_boxed::<P>,
            replay: replay_boxed::<P>,
        }
    }
}

fn replay_boxed<'a, P: Pipeline>(
    cfg: &'a Config,
    range: runner::replay::ReplayRange,
    shutdown: watch::Receiver<bool>,
    progress: &'a mut (dyn FnMut(&runner::replay::ReplayProgress) + Send),
) -> BoxFuture<'a, Result<runner::replay::ReplaySummary>> {
    Box::pin(runner::replay::replay::<P>(cfg, range, shutdown, progress))
}

fn start_boxed<P: Pipeline>(
    cfg: Arc<Config>,
    shutdown: watch::Receiver<bool>,
) -> BoxFuture<'static, Result<Running>> {
    Box::pin(async move {
        let running = runner::start::<P>(cfg, shutdown).await?;
        Ok(Box::pin(running) as Running)
    })
}

/// The pipelines a worker can run, in the default order. A new pipeline is one folder plus
/// one line here.
pub const PIPELINES: &[Registered] = &[
    Registered::of::<telemetry::TelemetryPipeline>(),
    Registered::of::<commands::CommandPipeline>(),
    Registered::of::<alerts::AlertsPipeline>(),
    Registered::of::<missions::MissionsPipeline>(),
    Registered::of::<resources::ResourcesPipeline>(),
    Registered::of::<performance::PerformancePipeline>(),
    Registered::of::<health::HealthPipeline>(),
];

/// The names of every registered pipeline, in [`PIPELINES`] order.
pub fn names() -> impl Iterator<Item = &'static str> {
    PIPELINES.iter().map(|r| r.name)
}

/// The registered pipeline called `name`.
pub fn lookup(name: &str) -> Option<&'static Registered> {
    PIPELINES.iter().find(|r| r.name == name)
}

/// `atlasmesh reset --pipeline NAME`: deletes the pipeline's checkpoints (its state and its
/// offsets together), so its workers reprocess its topic from the configured start
/// (`auto.offset.reset`, earliest by default) and recompute every result; the sinks' upserts
/// by key and version leave the same rows as the first run. Refused while its workers run.
///
/// With `to_time`, state and offsets are put back to the partitions' newest snapshots taken at
/// or before it (`runner.snapshot_interval_ms` apart, kept `snapshot_retention_hours`), so
/// what came after is reprocessed from exactly the state it first met.
pub async fn reset(
    cfg: &Config,
    name: &str,
    to_time: Option<&str>,
    force: bool,
) -> anyhow::Result<u64> {
    let r = lookup(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown pipeline {name:?}; known: {:?}",
            names().collect::<Vec<_>>()
        )
    })?;
    let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 1).await?;
    let store = atlasmesh_sinks::postgres::CheckpointStore::new(pool, r.name);
    // A running worker saves a checkpoint at least this often while it has work.
    let busy_ms = cfg.runner.checkpoint_interval_ms * 2 + 10_000;
    store
        .reset(to_time, force, busy_ms)
        .await?
        .map_err(|refused| anyhow::anyhow!("reset refused: {refused}"))
}

/// `atlasmesh replay --pipeline NAME --from T --to T`: see [`runner::replay`].
pub async fn replay(
    cfg: &Config,
    name: &str,
    range: runner::replay::ReplayRange,
    shutdown: watch::Receiver<bool>,
    progress: &mut (dyn FnMut(&runner::replay::ReplayProgress) + Send),
) -> anyhow::Result<runner::replay::ReplaySummary> {
    let r = lookup(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown pipeline {name:?}; known: {:?}",
            names().collect::<Vec<_>>()
        )
    })?;
    Ok((r.replay)(cfg, range, shutdown, progress).await?)
}

/// Prepares the stores (databases, migrations, topics, schemas) every pipeline needs.
pub async fn prepare(cfg: &Config) -> anyhow::Result<()> {
    use anyhow::Context;
    atlasmesh_sinks::postgres::prepare(&cfg.postgres.url, 2)
        .await
        .context("PostgreSQL: database and migrations")?;
    atlasmesh_sinks::clickhouse::migrate(&cfg.clickhouse)
        .await
        .context("ClickHouse migrations")?;
    let t = &cfg.topics;
    atlasmesh_sinks::kafka::ensure_topics(
        &cfg.kafka,
        &[
            &t.telemetry,
            &t.metrics,
            &t.dlq,
            &t.alerts,
            &t.commands,
            &t.command_results,
            &t.mission_events,
            &t.resource_events,
            &t.coordination,
        ],
        cfg.kafka.partitions,
    )
    .await
    .context("creating Kafka topics")?;
    let codec = atlasmesh_schemas::Codec::from_config(&cfg.schema_registry)
        .context("schema registry client")?;
    let ids = codec
        .register_all(&cfg.topics)
        .await
        .map_err(|e| anyhow::anyhow!("registering schemas: {e}"))?;
    for (subject, id) in ids {
        tracing::info!(subject = %subject, id, "Schema registered.");
    }
    Ok(())
}

/// Runs the named pipelines until `shutdown` turns true.
///
/// Every pipeline is built first (an unknown name or a pipeline that cannot be set up is an
/// error before anything runs). A pipeline that stops on a non-retriable error makes the
/// others stop too, each after its final checkpoint, and its error is returned, so the
/// process exits with it and its supervisor restarts it.
pub async fn run_pipelines(
    cfg: Arc<Config>,
    names: &[String],
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let mut running = Vec::with_capacity(names.len());
    for name in names {
        let r = lookup(name).ok_or_else(|| {
            Error::Setup(format!(
                "unknown pipeline {name:?}; known: {:?}",
                self::names().collect::<Vec<_>>()
            ))
        })?;
        running.push((r.name, (r.start)(cfg.clone(), stop.clone()).await?));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (name, run) in running {
        tasks.spawn(async move { (name, run.await) });
    }
    let mut external = shutdown;
    let mut first_error = None;
    loop {
        tokio::select! {
            _ = runner::requested(&mut external), if !*stop_tx.borrow() => {
                let _ = stop_tx.send(true);
            }
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok((_, Ok(())))) => {}
                Some(Ok((name, Err(e)))) => {
                    error!(pipeline = name, error = %e, "Pipeline failed; stopping the others.");
                    first_error.get_or_insert(e);
                    let _ = stop_tx.send(true);
                }
                Some(Err(e)) => {
                    error!(error = %e, "A pipeline task panicked; stopping the others.");
                    first_error.get_or_insert(Error::Internal(format!("pipeline task: {e}")));
                    let _ = stop_tx.send(true);
                }
            },
        }
    }
    first_error.map_or(Ok(()), Err)
}
