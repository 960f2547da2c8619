//! Integration tests for atlasmesh-test-support (single test binary).

mod clickhouse;
mod schema_registry;
