//! atlasmesh-test-support: helpers for integration tests and the local stack.
//!
//! - [`schema_registry`]: a Confluent-API-compatible schema registry stand-in (Avro, real
//!   compatibility checks), also shipped as the `atlasmesh-schema-registry` binary.
//! - [`clickhouse_server`]: a private ClickHouse server from `deploy/clickhouse`.
//! - [`tansu_broker`]: a private Tansu (Kafka) broker that a test may start late or stop.
//! - [`postgres_server`], [`redis_server`]: private PostgreSQL and Redis servers a test may
//!   stop and restart (on [`daemon`]).

pub mod clickhouse_server;
pub mod daemon;
pub mod postgres_server;
pub mod redis_server;
pub mod schema_registry;
pub mod tansu_broker;

pub use clickhouse_server::ClickHouseServer;
pub use postgres_server::PostgresServer;
pub use redis_server::RedisServer;
pub use schema_registry::{router, serve, spawn_ephemeral, RegistryState};
pub use tansu_broker::TansuBroker;
