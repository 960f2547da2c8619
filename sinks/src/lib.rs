//! Sinks: each a batched async write that either fully succeeds or returns an error saying
//! whether a retry can help, plus a healthcheck. Every write is idempotent, so the runner can
//! retry a whole batch and replay after a crash without double counting.

pub mod clickhouse;
pub mod kafka;
pub mod postgres;
pub mod redis;
pub mod store;

use std::time::Instant;

use atlasmesh_core::metric_names;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] ::clickhouse::error::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("postgres migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Whether retrying the same write can succeed (a store down or overloaded).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::ClickHouse(e) => {
                !matches!(
                    e,
                    ::clickhouse::error::Error::InvalidParams(_)
                        | ::clickhouse::error::Error::BadResponse(_)
                ) || e.to_string().contains("Connection refused")
            }
            Error::Postgres(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Tls(_)
                ) || e.as_database_error().is_none()
            }
            Error::Migrate(_) => false,
            Error::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_connection_refusal()
            }
            Error::Kafka(_) => true,
            Error::Other(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Records a sink write's duration and outcome.
pub(crate) fn observe<T>(sink: &'static str, rows: usize, started: Instant, r: &Result<T>) {
    metrics::histogram!(metric_names::SINK_WRITE_SECONDS, "sink" => sink)
        .record(started.elapsed().as_secs_f64());
    match r {
        Ok(_) => metrics::counter!(metric_names::SINK_ROWS, "sink" => sink).increment(rows as u64),
        Err(_) => metrics::counter!(metric_names::SINK_ERRORS, "sink" => sink).increment(1),
    }
}
