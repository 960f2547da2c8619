//! Redis key layout shared by the writers (pipelines) and the readers (query API).
//!
//! - `<prefix>:fleet:<fleet_id>:vehicles` — HASH vehicle_id → JSON [`crate::TelemetryEvent`],
//!   the newest sample (by event time) of every vehicle of the fleet.
//! - `<prefix>:fleet:<fleet_id>:live` — HASH vehicle_id → [`LiveSample`] (`<ts_ms> <energy_pct>
//!   <status>`), the fields of the same newest sample the fleet's live KPIs use, written beside
//!   the vehicles hash so a KPI read parses ~30 bytes per vehicle instead of a whole event.
//! - `<prefix>:fleet:<fleet_id>:windows` — HASH `<window_start_ms>:<source_partition>` → JSON
//!   [`FleetPartialKpi`], the newest version of each recent closed fleet partial. Readers sum
//!   the partials of a window; the pipeline keeps the newest [`KPI_WINDOWS_KEPT`] windows of a
//!   fleet and deletes every older field, whichever path closed the window.
//! - `<prefix>:fleet:<fleet_id>:window-index` — ZSET source partition → newest window start
//!   among the fleet's kept partials (`ZADD GT`, pruned with them), so a reader finds the
//!   window every partition has reported without listing the windows hash.
//! - `<prefix>:hot-state:telemetry:<partition>` — set once the two above hold everything of
//!   that telemetry partition; when it is missing (Redis restarted empty, or is new) the
//!   pipeline re-publishes the partition's hot state from ClickHouse.

use serde::{Deserialize, Serialize};

use crate::window::Counters;
use crate::{TelemetryEvent, VehicleStatus};

pub const KPI_WINDOWS_KEPT: i64 = 60;

pub fn fleet_vehicles(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:vehicles")
}

pub fn fleet_live(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:live")
}

pub fn fleet_windows(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:windows")
}

pub fn fleet_window_index(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:window-index")
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

/// What the live KPIs read of a vehicle's newest sample, in the `live` hash.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveSample {
    pub ts_ms: i64,
    pub energy_pct: f64,
    pub status: VehicleStatus,
}

impl LiveSample {
    /// `<ts_ms> <energy_pct> <status>`; the float is written in its shortest exact form, so
    /// it parses back to the same value.
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(40);
        self.encode_into(&mut out);
        String::from_utf8(out).expect("ASCII")
    }

    /// [`LiveSample::encode`] appended to `out` (a buffer reused across vehicles).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(self.ts_ms).as_bytes());
        out.push(b' ');
        out.extend_from_slice(ryu::Buffer::new().format(self.energy_pct).as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.status.as_str().as_bytes());
    }

    pub fn parse(s: &str) -> Option<LiveSample> {
        let mut it = s.split(' ');
        let sample = LiveSample {
            ts_ms: it.next()?.parse().ok()?,
            energy_pct: it.next()?.parse().ok()?,
            status: VehicleStatus::parse(it.next()?)?,
        };
        it.next().is_none().then_some(sample)
    }
}

impl From<&TelemetryEvent> for LiveSample {
    fn from(e: &TelemetryEvent) -> Self {
        LiveSample {
            ts_ms: e.ts_ms,
            energy_pct: e.energy_pct,
            status: e.status,
        }
    }
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

    #[test]
    fn live_sample_round_trips_exactly() {
        for (ts_ms, energy_pct, status) in [
            (1_700_000_040_123, 0.1 + 0.2, VehicleStatus::EnRoute),
            (-5, 100.0, VehicleStatus::Fault),
            (0, 1e-300, VehicleStatus::Offline),
            (7, f64::MAX, VehicleStatus::Idle),
            (8, -0.0, VehicleStatus::Idle),
            (9, 5e-324, VehicleStatus::Idle),
        ] {
            let s = LiveSample {
                ts_ms,
                energy_pct,
                status,
            };
            assert_eq!(LiveSample::parse(&s.encode()), Some(s));
        }
        for bad in ["", "1 2", "1 2 flying", "x 2 idle", "1 2 idle extra"] {
            assert_eq!(LiveSample::parse(bad), None, "{bad:?}");
        }
    }
}
