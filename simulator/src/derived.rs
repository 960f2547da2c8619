//! Mission and resource events derived from the simulated telemetry, as the fleet's mission
//! planner and depot systems would report them.
//!
//! Per vehicle, from its status changes (in event-time order; older or repeated samples are
//! ignored):
//! - entering `on_mission` with a new mission id: `created` then `started`; leaving it: to
//!   `fault` → `safety_event` (severity `critical`, the fault codes) then `failed`; to
//!   `offline` → `aborted`; otherwise `completed`. A fault outside a mission is a
//!   `safety_event` of severity `warning` only if the vehicle was moving (en route).
//! - entering `charging`: the charger `<fleet>-charger-<n>` (pool `<fleet>-chargers`) is
//!   `occupied`; leaving it: `free`. Same for `maintenance` with bays (`<fleet>-bay-<n>`, pool
//!   `<fleet>-bays`). Vehicles share chargers and bays (`n` = vehicle number modulo the
//!   resources per fleet), so two vehicles can occupy one charger at once — the double bookings
//!   the resources pipeline must detect.
//!
//! Event ids are derived from the vehicle's sample (`<vehicle>:<seq>:<what>`), so re-deriving
//! the same telemetry gives the same events.

use std::collections::HashMap;

use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use atlasmesh_schemas::{MissionEventKind, MissionEventRecord, ResourceEventRecord, ResourceState};

/// Chargers per fleet (vehicles share them).
pub const CHARGERS_PER_FLEET: u32 = 4;
/// Maintenance bays per fleet.
pub const BAYS_PER_FLEET: u32 = 2;

#[derive(Debug, Clone)]
struct VehicleTrack {
    ts_ms: i64,
    status: VehicleStatus,
    mission_id: Option<String>,
}

/// What one telemetry sample adds to the mission and resource topics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DerivedEvents {
    pub missions: Vec<MissionEventRecord>,
    pub resources: Vec<ResourceEventRecord>,
}

/// Derives mission and resource events from a vehicle's telemetry.
#[derive(Debug, Default)]
pub struct Deriver {
    vehicles: HashMap<String, VehicleTrack>,
}

/// The numeric suffix of a vehicle id (`f001-v0007` → 7), 0 when there is none.
fn vehicle_no(vehicle_id: &str) -> u32 {
    let digits: String = vehicle_id
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .chars()
        .rev()
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// The resource a vehicle uses in `status`, if any: (resource id, pool id).
pub fn resource_for(
    fleet_id: &str,
    vehicle_id: &str,
    status: VehicleStatus,
) -> Option<(String, String)> {
    let n = vehicle_no(vehicle_id);
    match status {
        VehicleStatus::Charging => Some((
            format!("{fleet_id}-charger-{}", n % CHARGERS_PER_FLEET),
            format!("{fleet_id}-chargers"),
        )),
        VehicleStatus::Maintenance => Some((
            format!("{fleet_id}-bay-{}", n % BAYS_PER_FLEET),
            format!("{fleet_id}-bays"),
        )),
        _ => None,
    }
}

impl Deriver {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events `ev` causes. Samples not newer than the vehicle's last one add nothing.
    pub fn observe(&mut self, ev: &TelemetryEvent) -> DerivedEvents {
        let mut out = DerivedEvents::default();
        let prev = match self.vehicles.get(&ev.vehicle_id) {
            Some(t) if ev.ts_ms <= t.ts_ms => return out,
            Some(t) => Some(t.clone()),
            None => None,
        };
        let mission = |kind: MissionEventKind,
                       mission_id: &str,
                       severity: Option<&str>,
                       detail: Option<String>,
                       tag: &str| MissionEventRecord {
            event_id: format!("{}:{}:{tag}", ev.vehicle_id, ev.seq),
            mission_id: mission_id.to_string(),
            fleet_id: ev.fleet_id.clone(),
            vehicle_id: Some(ev.vehicle_id.clone()),
            ts_ms: ev.ts_ms,
            kind,
            severity: severity.map(str::to_string),
            detail,
            zone_id: None,
        };
        let (prev_status, prev_mission) = match &prev {
            Some(p) => (Some(p.status), p.mission_id.clone()),
            None => (None, None),
        };
        // Mission ended?
        if let Some(m) = prev_mission.as_deref() {
            let same_mission =
                ev.status == VehicleStatus::OnMission && ev.mission_id.as_deref() == Some(m);
            if !same_mission {
                match ev.status {
                    VehicleStatus::Fault => {
                        out.missions.push(mission(
                            MissionEventKind::SafetyEvent,
                            m,
                            Some("critical"),
                            Some(fault_detail(ev)),
                            "safety",
                        ));
                        out.missions.push(mission(
                            MissionEventKind::Failed,
                            m,
                            None,
                            Some(fault_detail(ev)),
                            "end",
                        ));
                    }
                    VehicleStatus::Offline => out.missions.push(mission(
                        MissionEventKind::Aborted,
                        m,
                        None,
                        Some("vehicle went offline".into()),
                        "end",
                    )),
                    _ => out.missions.push(mission(
                        MissionEventKind::Completed,
                        m,
                        None,
                        None,
                        "end",
                    )),
                }
            }
        } else if ev.status == VehicleStatus::Fault && prev_status == Some(VehicleStatus::EnRoute) {
            // A fault while driving without a mission: a safety event of no mission; keyed by
            // a per-vehicle pseudo mission so it still counts for the fleet.
            let pseudo = format!("{}-unassigned", ev.vehicle_id);
            out.missions.push(mission(
                MissionEventKind::SafetyEvent,
                &pseudo,
                Some("warning"),
                Some(fault_detail(ev)),
                "safety",
            ));
        }
        // Mission started?
        let current_mission = if ev.status == VehicleStatus::OnMission {
            ev.mission_id.clone()
        } else {
            None
        };
        if let Some(m) = current_mission.as_deref() {
            if prev_mission.as_deref() != Some(m) {
                out.missions
                    .push(mission(MissionEventKind::Created, m, None, None, "created"));
                out.missions
                    .push(mission(MissionEventKind::Started, m, None, None, "start"));
            }
        }
        // Resources: free the old one, occupy the new one.
        let old = prev_status.and_then(|s| resource_for(&ev.fleet_id, &ev.vehicle_id, s));
        let new = resource_for(&ev.fleet_id, &ev.vehicle_id, ev.status);
        if old != new {
            let resource = |(resource_id, pool_id): (String, String),
                            state: ResourceState,
                            tag: &str| ResourceEventRecord {
                event_id: format!("{}:{}:{tag}", ev.vehicle_id, ev.seq),
                resource_id,
                pool_id,
                fleet_id: ev.fleet_id.clone(),
                vehicle_id: Some(ev.vehicle_id.clone()),
                ts_ms: ev.ts_ms,
                state,
            };
            if let Some(r) = old {
                out.resources.push(resource(r, ResourceState::Free, "free"));
            }
            if let Some(r) = new {
                out.resources
                    .push(resource(r, ResourceState::Occupied, "occupy"));
            }
        }
        self.vehicles.insert(
            ev.vehicle_id.clone(),
            VehicleTrack {
                ts_ms: ev.ts_ms,
                status: ev.status,
                mission_id: current_mission,
            },
        );
        out
    }
}

fn fault_detail(ev: &TelemetryEvent) -> String {
    if ev.fault_codes.is_empty() {
        "fault".to_string()
    } else {
        format!("fault {}", ev.fault_codes.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64, status: VehicleStatus, mission: Option<&str>) -> TelemetryEvent {
        TelemetryEvent {
            event_id: format!("e{seq}"),
            fleet_id: "fleet-001".into(),
            vehicle_id: "f001-v0005".into(),
            ts_ms: 1_000 * seq,
            seq,
            lat: 0.0,
            lon: 0.0,
            speed_kph: 0.0,
            odometer_km: 0.0,
            energy_pct: 50.0,
            energy_used_kwh: 0.0,
            status,
            mission_id: mission.map(str::to_string),
            zone_id: None,
            payload_kg: 0.0,
            fault_codes: vec!["B1".into()],
        }
    }

    fn kinds(d: &DerivedEvents) -> Vec<MissionEventKind> {
        d.missions.iter().map(|m| m.kind).collect()
    }

    #[test]
    fn mission_lifecycle_from_status_changes() {
        let mut d = Deriver::new();
        assert!(d
            .observe(&ev(1, VehicleStatus::Idle, None))
            .missions
            .is_empty());
        let s = d.observe(&ev(2, VehicleStatus::OnMission, Some("m1")));
        assert_eq!(
            kinds(&s),
            [MissionEventKind::Created, MissionEventKind::Started]
        );
        assert_eq!(s.missions[1].event_id, "f001-v0005:2:start");
        assert!(d
            .observe(&ev(3, VehicleStatus::OnMission, Some("m1")))
            .missions
            .is_empty());
        // A new mission id without leaving on_mission: the old one completes, the new starts.
        let s = d.observe(&ev(4, VehicleStatus::OnMission, Some("m2")));
        assert_eq!(
            kinds(&s),
            [
                MissionEventKind::Completed,
                MissionEventKind::Created,
                MissionEventKind::Started
            ]
        );
        assert_eq!(s.missions[0].mission_id, "m1");
        let s = d.observe(&ev(5, VehicleStatus::Fault, None));
        assert_eq!(
            kinds(&s),
            [MissionEventKind::SafetyEvent, MissionEventKind::Failed]
        );
        assert_eq!(s.missions[0].severity.as_deref(), Some("critical"));
        assert_eq!(s.missions[0].detail.as_deref(), Some("fault B1"));
        // Older and repeated samples add nothing.
        assert_eq!(
            d.observe(&ev(5, VehicleStatus::OnMission, Some("m3"))),
            DerivedEvents::default()
        );
        assert_eq!(
            d.observe(&ev(3, VehicleStatus::Idle, None)),
            DerivedEvents::default()
        );
        d.observe(&ev(6, VehicleStatus::OnMission, Some("m4")));
        let s = d.observe(&ev(7, VehicleStatus::Offline, None));
        assert_eq!(kinds(&s), [MissionEventKind::Aborted]);
        // A fault while en route without a mission is a warning-level safety event.
        d.observe(&ev(8, VehicleStatus::EnRoute, None));
        let s = d.observe(&ev(9, VehicleStatus::Fault, None));
        assert_eq!(kinds(&s), [MissionEventKind::SafetyEvent]);
        assert_eq!(s.missions[0].severity.as_deref(), Some("warning"));
        // But not when idle.
        d.observe(&ev(10, VehicleStatus::Idle, None));
        assert!(d
            .observe(&ev(11, VehicleStatus::Fault, None))
            .missions
            .is_empty());
    }

    #[test]
    fn chargers_and_bays_are_occupied_and_freed() {
        let mut d = Deriver::new();
        d.observe(&ev(1, VehicleStatus::Idle, None));
        let s = d.observe(&ev(2, VehicleStatus::Charging, None));
        assert_eq!(s.resources.len(), 1);
        assert_eq!(s.resources[0].resource_id, "fleet-001-charger-1"); // 5 % 4
        assert_eq!(s.resources[0].pool_id, "fleet-001-chargers");
        assert_eq!(s.resources[0].state, ResourceState::Occupied);
        assert!(d
            .observe(&ev(3, VehicleStatus::Charging, None))
            .resources
            .is_empty());
        let s = d.observe(&ev(4, VehicleStatus::Maintenance, None));
        let got: Vec<_> = s
            .resources
            .iter()
            .map(|r| (r.resource_id.as_str(), r.state))
            .collect();
        assert_eq!(
            got,
            [
                ("fleet-001-charger-1", ResourceState::Free),
                ("fleet-001-bay-1", ResourceState::Occupied)
            ]
        );
        let s = d.observe(&ev(5, VehicleStatus::Idle, None));
        assert_eq!(s.resources[0].state, ResourceState::Free);
        assert_eq!(vehicle_no("f001-v0012"), 12);
        assert_eq!(vehicle_no("x"), 0);
    }
}
