//! The missions pipeline's pure part: windows, validation and the checkpointed state.

use atlasmesh_schemas::{MissionEventKind, MissionEventRecord};
use serde::{Deserialize, Serialize};

/// The window containing `ts_ms`: [start, end).
pub fn window_of(ts_ms: i64, window_ms: i64) -> (i64, i64) {
    let start = ts_ms.div_euclid(window_ms) * window_ms;
    (start, start + window_ms)
}

/// Why an event is refused (it goes to the dead-letter topic).
pub fn invalid(e: &MissionEventRecord) -> Option<String> {
    if e.event_id.is_empty() || e.mission_id.is_empty() || e.fleet_id.is_empty() {
        return Some("event_id, mission_id and fleet_id must not be empty".into());
    }
    if e.ts_ms <= 0 {
        return Some(format!("ts_ms {} is not a valid event time", e.ts_ms));
    }
    if e.kind == MissionEventKind::SafetyEvent
        && !matches!(
            e.severity.as_deref(),
            None | Some("info" | "warning" | "critical")
        )
    {
        return Some(format!("unknown safety severity {:?}", e.severity));
    }
    if matches!(
        e.kind,
        MissionEventKind::Requested | MissionEventKind::Assigned | MissionEventKind::Expired
    ) && e.zone_id.as_deref().is_none_or(str::is_empty)
    {
        return Some(format!(
            "a {} event needs its origin zone_id",
            e.kind.as_str()
        ));
    }
    if e.kind == MissionEventKind::Assigned && e.vehicle_id.as_deref().is_none_or(str::is_empty) {
        return Some("an assigned event needs the vehicle_id that took the request".into());
    }
    None
}

/// The windows a partition touched; kept in the checkpoint so an idle partition re-writes its
/// latest windows (their telemetry distance may have arrived since).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MissionsState {
    /// (fleet, window start) of the newest window seen per fleet.
    pub latest: Vec<(String, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_validation() {
        assert_eq!(
            window_of(3_600_000 * 5 + 17, 3_600_000),
            (18_000_000, 21_600_000)
        );
        assert_eq!(window_of(-1, 1000), (-1000, 0));
        let mut e = MissionEventRecord {
            event_id: "e".into(),
            mission_id: "m".into(),
            fleet_id: "f".into(),
            vehicle_id: None,
            ts_ms: 5,
            kind: MissionEventKind::SafetyEvent,
            severity: Some("critical".into()),
            detail: None,
            zone_id: None,
        };
        assert_eq!(invalid(&e), None);
        e.severity = Some("apocalyptic".into());
        assert!(invalid(&e).unwrap().contains("severity"));
        e.severity = None;
        e.ts_ms = 0;
        assert!(invalid(&e).unwrap().contains("ts_ms"));
        e.ts_ms = 5;
        e.mission_id.clear();
        assert!(invalid(&e).is_some());
        e.mission_id = "m".into();
        e.kind = MissionEventKind::Requested;
        assert!(invalid(&e).unwrap().contains("zone_id"));
        e.zone_id = Some("zone-north".into());
        assert_eq!(invalid(&e), None);
        e.kind = MissionEventKind::Assigned;
        assert!(invalid(&e).unwrap().contains("vehicle_id"));
        e.vehicle_id = Some("v1".into());
        assert_eq!(invalid(&e), None);
        assert_eq!(
            MissionEventKind::WaypointReached.as_str(),
            "waypoint_reached"
        );
    }
}
