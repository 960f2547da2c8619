//! Integration tests of the whole telemetry path against the real stack (`scripts/stack up`):
//! Tansu, ClickHouse 18.16, PostgreSQL, Redis and the schema registry stand-in.

// Rows read back from the stores are compared as plain tuples.
#![allow(clippy::type_complexity)]

mod common;
mod reference;

mod alerts;
mod api_matrix;
mod capacity;
mod commands;
mod communications;
mod crash_recovery;
mod end_to_end;
mod fleet_analytics;
mod golden;
mod health;
mod health_alerts;
mod operations;
mod optimization_runs;
mod outages;
mod performance;
mod poison;
mod replay;
mod reprocess;
mod seed_routes;
mod startup;
mod urgent;
mod zone_demand;
