//! A fresh ClickHouse database per test on the stack's server (CLICKHOUSE_URL, default
//! http://127.0.0.1:8123), dropped whatever the test did.

use std::future::Future;

use atlasmesh_core::config::ClickHouseConfig;
use atlasmesh_sinks::clickhouse::{client, migrate};

/// The configuration of a database named `it_<what>_<pid>_<nanos>`, not created yet.
pub fn config(what: &str) -> ClickHouseConfig {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    ClickHouseConfig {
        url: env("CLICKHOUSE_URL").unwrap_or_else(|| "http://127.0.0.1:8123".into()),
        database: format!("it_{what}_{}_{}", std::process::id(), nanos % 1_000_000_000),
        user: env("CLICKHOUSE_USER").unwrap_or_else(|| "default".into()),
        password: env("CLICKHOUSE_PASSWORD").unwrap_or_default(),
        // The stack's server is 18.16: validation off unless told otherwise.
        validation: env("CLICKHOUSE_VALIDATION").is_some_and(|v| v == "true"),
        ..ClickHouseConfig::default()
    }
}

/// Migrates `cfg`'s database, runs `test` on it, then drops it (also when `test` panics).
pub async fn with_database<F, Fut>(cfg: &ClickHouseConfig, test: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    migrate(cfg).await.expect("migrate");
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(test())).await;
    let mut server = cfg.clone();
    server.database = "default".into();
    client(&server)
        .query("DROP DATABASE IF EXISTS ?")
        .bind(::clickhouse::sql::Identifier(&cfg.database))
        .execute()
        .await
        .expect("drop database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
