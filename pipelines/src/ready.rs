//! Start-up readiness: before a process prepares or runs anything it waits for each dependency
//! it needs, probing it with capped exponential backoff and saying what it waits for, up to a
//! configured deadline (`[startup]`); only then does it fail, naming the dependency and its last
//! error. A slow broker or a database that starts after the worker is normal on a busy machine.

use std::time::{Duration, Instant};

use atlasmesh_core::config::Config;
use tokio::sync::watch;

use crate::runner::{requested, RetryPolicy};

/// Something a process needs before it can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Postgres,
    ClickHouse,
    Kafka,
    SchemaRegistry,
    Redis,
}

impl Dependency {
    /// Every dependency, in the order a worker waits for them.
    pub const ALL: [Dependency; 5] = [
        Dependency::Postgres,
        Dependency::ClickHouse,
        Dependency::Kafka,
        Dependency::SchemaRegistry,
        Dependency::Redis,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dependency::Postgres => "postgres",
            Dependency::ClickHouse => "clickhouse",
            Dependency::Kafka => "kafka",
            Dependency::SchemaRegistry => "schema_registry",
            Dependency::Redis => "redis",
        }
    }

    /// One probe of the dependency, bounded by `timeout`: the cheapest request that shows it
    /// answers (PostgreSQL: the database exists or was created; ClickHouse: `SELECT 1`; Kafka:
    /// the metadata of one topic; the registry: its subject list; Redis: `PING`), each on a
    /// connection of its own.
    pub async fn probe(self, cfg: &Config, timeout: Duration) -> Result<(), String> {
        let work = async {
            match self {
                Dependency::Postgres => {
                    atlasmesh_sinks::postgres::ensure_database(&cfg.postgres.url)
                        .await
                        .map_err(|e| e.to_string())
                }
                Dependency::ClickHouse => atlasmesh_sinks::clickhouse::client(&cfg.clickhouse)
                    .with_database("default")
                    .query("SELECT 1")
                    .execute()
                    .await
                    .map_err(|e| e.to_string()),
                Dependency::Kafka => kafka_metadata(cfg, timeout).await,
                Dependency::SchemaRegistry => {
                    let url = format!("{}/subjects", cfg.schema_registry.url.trim_end_matches('/'));
                    let client = reqwest::Client::builder()
                        .timeout(timeout)
                        .build()
                        .map_err(|e| e.to_string())?;
                    client
                        .get(url)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                Dependency::Redis => atlasmesh_sinks::redis::ping(&cfg.redis.url)
                    .await
                    .map_err(|e| e.to_string()),
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }
}

/// Metadata of the telemetry topic only: answers fast whatever the number of topics on the
/// broker (an unknown topic is an answer too; consumers do not auto-create topics).
async fn kafka_metadata(cfg: &Config, timeout: Duration) -> Result<(), String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut c = atlasmesh_sinks::kafka::client_config(&cfg.kafka);
    c.set("group.id", format!("{}.ready", cfg.kafka.group_prefix));
    let consumer: BaseConsumer = c.create().map_err(|e| e.to_string())?;
    let topic = cfg.topics.telemetry.clone();
    tokio::task::spawn_blocking(move || {
        consumer
            .fetch_metadata(Some(&topic), timeout)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("kafka probe task: {e}"))?
}

/// Waits until every dependency in `deps` answers, one after the other, each with the runner's
/// capped exponential backoff (`startup.backoff_initial_ms` .. `backoff_max_ms`), up to
/// `startup.deadline_secs` in all. Returns early with an error when `shutdown` turns true.
pub async fn wait_for(
    cfg: &Config,
    deps: &[Dependency],
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let s = &cfg.startup;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(s.deadline_secs);
    let probe_timeout = Duration::from_millis(s.probe_timeout_ms.max(100));
    let policy = RetryPolicy {
        initial: Duration::from_millis(s.backoff_initial_ms.max(1)),
        max: Duration::from_millis(s.backoff_max_ms.max(1)),
    };
    for &dep in deps {
        let mut backoff = policy.backoff();
        loop {
            let err = match dep.probe(cfg, probe_timeout).await {
                Ok(()) => {
                    if backoff.attempts() > 0 {
                        tracing::info!(
                            dependency = dep.name(),
                            attempts = backoff.attempts() + 1,
                            waited_ms = started.elapsed().as_millis() as u64,
                            "Dependency answers; going on."
                        );
                    }
                    break;
                }
                Err(e) => e,
            };
            let now = Instant::now();
            if now >= deadline {
                anyhow::bail!(
                    "{} did not answer within the start-up deadline of {} s \
                     (startup.deadline_secs; {} attempts); last error: {err}",
                    dep.name(),
                    s.deadline_secs,
                    backoff.attempts() + 1
                );
            }
            let sleep = backoff.next_delay().min(deadline - now);
            tracing::warn!(
                dependency = dep.name(),
                attempt = backoff.attempts(),
                error = %err,
                retry_in_ms = sleep.as_millis() as u64,
                deadline_in_s = (deadline - now).as_secs(),
                "Waiting for a dependency at start-up."
            );
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = requested(shutdown) => {
                    anyhow::bail!("shut down while waiting for {}", dep.name());
                }
            }
        }
    }
    Ok(())
}
