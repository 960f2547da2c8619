//! Sinks: each a batched async write that either fully succeeds or returns an error whose
//! [`ErrorClass`] says whether a retry can help, plus a healthcheck. Every write is idempotent, so the runner can
//! retry a whole batch and replay after a crash without double counting.

pub mod clickhouse;
mod error;
pub mod kafka;
pub mod postgres;
pub mod redis;
pub mod store;

use std::time::Instant;

use atlasmesh_core::metric_names;

pub use atlasmesh_core::{Classify, ErrorClass};
pub use error::{clickhouse_class, postgres_class, redis_class, Error, Result};

/// Records a sink write's duration and outcome.
pub(crate) fn observe<T>(sink: &'static str, rows: usize, started: Instant, r: &Result<T>) {
    metrics::histogram!(metric_names::SINK_WRITE_SECONDS, "sink" => sink)
        .record(started.elapsed().as_secs_f64());
    match r {
        Ok(_) => metrics::counter!(metric_names::SINK_ROWS, "sink" => sink).increment(rows as u64),
        Err(_) => metrics::counter!(metric_names::SINK_ERRORS, "sink" => sink).increment(1),
    }
}
