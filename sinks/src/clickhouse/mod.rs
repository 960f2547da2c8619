//! ClickHouse sink: raw telemetry, vehicle windows and fleet partials, plus migrations.

mod config;
mod history;
mod rows;
mod sink;

pub use config::client;
pub use history::{
    alert_event_action_code, alert_scope_code, alert_severity_code, alert_status_code,
    datetime_secs, score_period_code, trend_direction_code, AlertHistoryRow, CapacityForecastRow,
    FleetHealthRow, MissionWindowRow, PlanMoveRow, PoolUtilizationRow, ScoreHistoryRow,
    TrendHistoryRow, VehicleHealthRow, ZoneDemandRow, ZoneForecastRow,
};
pub use rows::{FleetPartialRow, RawEvent, RawRowRef, RawRows, RawTelemetryRow, VehicleWindowRow};
pub use sink::{migrate, migration_statements, ClickHouseSink, MIGRATIONS};
