//! Redis key layout shared by the writers (pipelines) and the readers (query API).
//!
//! - `<prefix>:fleet:<fleet_id>:vehicles` — HASH vehicle_id → JSON [`crate::TelemetryEvent`],
//!   the newest sample (by event time) of every vehicle of the fleet.
//! - `<prefix>:fleet:<fleet_id>:windows` — HASH `<window_start_ms>:<source_partition>` → JSON
//!   [`FleetPartialKpi`], the newest version of each recent closed fleet partial. Readers sum
//!   the partials of a window; the pipeline keeps the newest [`KPI_WINDOWS_KEPT`] windows of a
//!   fleet and deletes every older field, whichever path closed the window.
//! - `<prefix>:hot-state:telemetry:<partition>` — set once the two above hold everything of
//!   that telemetry partition; when it is missing (Redis restarted empty, or is new) the
//!   pipeline re-publishes the partition's hot state from ClickHouse.

use serde::{Deserialize, Serialize};

use crate::window::Counters;

pub const KPI_WINDOWS_KEPT: i64 = 60;

pub fn fleet_vehicles(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:vehicles")
}

pub fn fleet_windows(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:windows")
}

/// Present while Redis holds the hot state of telemetry partition `partition`; the telemetry
/// pipeline re-publishes that state from ClickHouse when it is missing.
pub fn hot_state_marker(prefix: &str, partition: i32) -> String {
    format!("{prefix}:hot-state:telemetry:{partition}")
}

pub fn fleet_window_field(window_start_ms: i64, partition: i32) -> String {
    format!("{window_start_ms}:{partition}")
}

/// Parses a `fleet_windows` field back into (window_start_ms, partition).
pub fn parse_fleet_window_field(field: &str) -> Option<(i64, i32)> {
    let (w, p) = field.split_once(':')?;
    Some((w.parse().ok()?, p.parse().ok()?))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetPartialKpi {
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub source_partition: i32,
    pub version: u32,
    pub counters: Counters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_round_trips() {
        let f = fleet_window_field(1_700_000_040_000, 3);
        assert_eq!(parse_fleet_window_field(&f), Some((1_700_000_040_000, 3)));
        assert_eq!(parse_fleet_window_field("x"), None);
    }
}
