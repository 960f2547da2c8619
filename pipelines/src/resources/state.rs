//! The resources pipeline's pure part: a resource's occupancy and the conflicts an event
//! reveals, and validation.

use atlasmesh_schemas::{ResourceEventRecord, ResourceState};

/// A resource's occupancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    pub state: ResourceState,
    pub vehicles: Vec<String>,
}

/// A conflict the event reveals: (kind, description).
pub type ConflictDraft = (&'static str, String);

/// The occupancy after `ev`, and the double-booking / out-of-service conflicts it reveals.
pub fn occupy(
    prev: Option<&Occupancy>,
    ev: &ResourceEventRecord,
) -> (Occupancy, Vec<ConflictDraft>) {
    let mut vehicles = prev.map(|p| p.vehicles.clone()).unwrap_or_default();
    let prev_state = prev.map(|p| p.state);
    let mut conflicts = Vec::new();
    let state = match ev.state {
        ResourceState::Occupied => {
            let who = ev
                .vehicle_id
                .clone()
                .unwrap_or_else(|| "unknown vehicle".into());
            if prev_state == Some(ResourceState::OutOfService) {
                conflicts.push((
                    "other",
                    format!("{} occupied by {who} while out of service", ev.resource_id),
                ));
            }
            if !vehicles.contains(&who) {
                if !vehicles.is_empty() {
                    conflicts.push((
                        "double_booking",
                        format!(
                            "{} occupied by {who} while held by {}",
                            ev.resource_id,
                            vehicles.join(", ")
                        ),
                    ));
                }
                vehicles.push(who);
            }
            ResourceState::Occupied
        }
        ResourceState::Free => {
            match &ev.vehicle_id {
                Some(v) => vehicles.retain(|x| x != v),
                None => vehicles.clear(),
            }
            if vehicles.is_empty() {
                ResourceState::Free
            } else {
                ResourceState::Occupied
            }
        }
        ResourceState::OutOfService => {
            vehicles.clear();
            ResourceState::OutOfService
        }
    };
    (Occupancy { state, vehicles }, conflicts)
}

/// Why an event is refused (it goes to the dead-letter topic).
pub fn invalid(e: &ResourceEventRecord) -> Option<String> {
    if e.event_id.is_empty()
        || e.resource_id.is_empty()
        || e.pool_id.is_empty()
        || e.fleet_id.is_empty()
    {
        return Some("event_id, resource_id, pool_id and fleet_id must not be empty".into());
    }
    if e.ts_ms <= 0 {
        return Some(format!("ts_ms {} is not a valid event time", e.ts_ms));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(state: ResourceState, vehicle: Option<&str>) -> ResourceEventRecord {
        ResourceEventRecord {
            event_id: "e".into(),
            resource_id: "charger-1".into(),
            pool_id: "p".into(),
            fleet_id: "f".into(),
            vehicle_id: vehicle.map(str::to_string),
            ts_ms: 1,
            state,
        }
    }

    #[test]
    fn occupancy_and_conflicts() {
        let (a, c) = occupy(None, &ev(ResourceState::Occupied, Some("v1")));
        assert_eq!(
            a,
            Occupancy {
                state: ResourceState::Occupied,
                vehicles: vec!["v1".into()]
            }
        );
        assert!(c.is_empty());
        // The same vehicle again: no conflict.
        let (a, c) = occupy(Some(&a), &ev(ResourceState::Occupied, Some("v1")));
        assert!(c.is_empty());
        // Another vehicle: double booking; both hold it until each frees it.
        let (b, c) = occupy(Some(&a), &ev(ResourceState::Occupied, Some("v2")));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "double_booking");
        assert!(c[0].1.contains("v2") && c[0].1.contains("v1"), "{}", c[0].1);
        let (b, _) = occupy(Some(&b), &ev(ResourceState::Free, Some("v1")));
        assert_eq!(
            b,
            Occupancy {
                state: ResourceState::Occupied,
                vehicles: vec!["v2".into()]
            }
        );
        let (b, _) = occupy(Some(&b), &ev(ResourceState::Free, Some("v2")));
        assert_eq!(b.state, ResourceState::Free);
        // Out of service clears; occupying it then is a conflict of its own.
        let (o, _) = occupy(Some(&a), &ev(ResourceState::OutOfService, None));
        assert_eq!(
            o,
            Occupancy {
                state: ResourceState::OutOfService,
                vehicles: vec![]
            }
        );
        let (_, c) = occupy(Some(&o), &ev(ResourceState::Occupied, Some("v3")));
        assert_eq!(c.iter().map(|c| c.0).collect::<Vec<_>>(), ["other"]);
        // Freed without a vehicle: cleared.
        let (f, _) = occupy(Some(&a), &ev(ResourceState::Free, None));
        assert_eq!(f.state, ResourceState::Free);
        assert_eq!(
            ResourceState::parse(ResourceState::OutOfService.as_str()),
            Some(ResourceState::OutOfService)
        );
        assert!(invalid(&ev(ResourceState::Free, None)).is_none());
        let mut bad = ev(ResourceState::Free, None);
        bad.pool_id.clear();
        assert!(invalid(&bad).is_some());
    }
}
