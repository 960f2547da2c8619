//! Integration tests of the query API against real servers on loopback:
//! ClickHouse (`CLICKHOUSE_URL`, default http://127.0.0.1:8123; `CLICKHOUSE_VALIDATION`
//! default false, as the local server is 18.16), Redis (`REDIS_URL`), PostgreSQL
//! (`DATABASE_URL`). Kafka and the schema registry are not needed (health reports them down).
//! Each test uses its own ClickHouse database, Redis key prefix and PostgreSQL database.

mod auth;
mod command_owners;
mod common;
mod health_metrics;
mod hostile_input;
mod http_limits;
mod kpis;
mod window_metrics;
