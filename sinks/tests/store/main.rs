//! Integration tests of the domain store (`atlasmesh_sinks::store`) against the real
//! PostgreSQL of the local stack (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/`).
//! Every test uses the database `atlasmesh_store_it` (created and migrated on first use) and its
//! own fleet ids, so tests run in parallel without seeing each other's rows.

mod analytics;
mod catalog;
mod checkpoints;
mod common;
mod coordination;
mod missions;
mod optimization;
mod performance;
mod resources;
