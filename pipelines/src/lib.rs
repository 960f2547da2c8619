//! Pipelines and the one generic Kafka runner that drives them.
//!
//! A pipeline is pure logic plus a flush: `handle` folds a message into per-partition state
//! and a batch of outputs, `flush` writes the batch idempotently to its sinks. The runner
//! stores offsets (with the state, in PostgreSQL) only after `flush` succeeded, and pauses
//! consumption while a sink is down.

pub mod alerts;
pub mod commands;
pub mod dlq;
pub mod missions;
pub mod performance;
pub mod ready;
pub mod resources;
pub mod runner;
pub mod settle;
pub mod telemetry;

use std::sync::Arc;

use atlasmesh_core::config::Config;
use tokio::sync::watch;

/// The pipelines a worker can run: name → runner future. A new pipeline is one folder plus
/// one line here.
pub const PIPELINES: &[&str] = &[
    "telemetry",
    "commands",
    "alerts",
    "missions",
    "resources",
    "performance",
];

/// Prepares the stores (databases, migrations, topics, schemas) every pipeline needs.
pub async fn prepare(cfg: &Config) -> anyhow::Result<()> {
    use anyhow::Context;
    atlasmesh_sinks::postgres::ensure_database(&cfg.postgres.url)
        .await
        .context("creating PostgreSQL database")?;
    let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 2)
        .await
        .context("connecting to PostgreSQL")?;
    atlasmesh_sinks::postgres::migrate(&pool)
        .await
        .context("PostgreSQL migrations")?;
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
        ],
        cfg.kafka.partitions,
    )
    .await
    .context("creating Kafka topics")?;
    let codec = atlasmesh_schemas::Codec::new(&cfg.schema_registry.url)
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
pub async fn run_pipelines(
    cfg: Arc<Config>,
    names: &[String],
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        match name.as_str() {
            "telemetry" => {
                let p = telemetry::TelemetryPipeline::new(&cfg).await?;
                let cfg = cfg.clone();
                let sd = shutdown.clone();
                tasks.spawn(async move { runner::run(Arc::new(p), &cfg, sd).await });
            }
            "commands" => {
                let p = Arc::new(commands::CommandPipeline::new(&cfg).await?);
                let cfg = cfg.clone();
                let sd = shutdown.clone();
                tasks.spawn(async move { runner::run(p, &cfg, sd).await });
            }
            "alerts" => {
                let p = Arc::new(alerts::AlertsPipeline::new(&cfg).await?);
                let cfg = cfg.clone();
                let sd = shutdown.clone();
                tasks.spawn(async move { runner::run(p, &cfg, sd).await });
            }
            "missions" => {
                let p = Arc::new(missions::MissionsPipeline::new(&cfg).await?);
                let cfg = cfg.clone();
                let sd = shutdown.clone();
                tasks.spawn(async move { runner::run(p, &cfg, sd).await });
            }
            "resources" => {
                let p = Arc::new(resources::ResourcesPipeline::new(&cfg).await?);
                let every =
                    std::time::Duration::from_millis(cfg.resources.coordination_interval_ms);
                let (pool, sd) = (p.pool(), shutdown.clone());
                tasks.spawn(async move {
                    resources::coordination::run(pool, every, sd).await;
                    Ok(())
                });
                let cfg = cfg.clone();
                let sd = shutdown.clone();
                tasks.spawn(async move { runner::run(p, &cfg, sd).await });
            }
            "performance" => {
                let p = Arc::new(performance::PerformancePipeline::new(&cfg).await?);
                let cfg = cfg.clone();
                let sd = shutdown.clone();
                tasks.spawn(async move { runner::run(p, &cfg, sd).await });
            }
            other => anyhow::bail!("unknown pipeline {other:?}; known: {PIPELINES:?}"),
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}
