//! ClickHouse sink: raw telemetry, vehicle windows and fleet partials, plus migrations.

mod config;
mod rows;
mod sink;

pub use config::client;
pub use rows::{FleetPartialRow, RawTelemetryRow, VehicleWindowRow};
pub use sink::{migrate, migration_statements, ClickHouseSink, MIGRATIONS};
