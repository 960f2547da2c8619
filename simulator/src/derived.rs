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
//!
//! With [`Deriver::with_demand`], also the demand the fleet serves ([`DemandConfig`]): per
//! fleet and zone (the telemetry's `zone_id`s), riders request a vehicle as Poisson arrivals
//! (minute by minute, an hourly daily profile and a weekly factor per zone, seeded), on the
//! fleet's event-time clock (its newest sample): `requested` (mission `<fleet>-req-<n>`, the
//! origin zone); when a vehicle of the fleet starts a mission in that zone it takes the oldest
//! waiting request there: `assigned` (the vehicle, at its start); a request no vehicle took
//! within `max_wait_ms` is `expired`. A `completed` mission carries the zone the vehicle ended
//! in (an arrival there). The telemetry does not react to requests (the simulated vehicles
//! start missions on their own), so this is demand as observed: served where vehicles were
//! idle and started, expired where none did.

use std::collections::{HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

/// The demand model of [`Deriver::with_demand`].
#[derive(Debug, Clone, PartialEq)]
pub struct DemandConfig {
    pub seed: u64,
    /// Requests per hour per zone at the daily peak (profile 1.0), before the zone's weight.
    pub peak_per_hour: f64,
    /// Weight per zone, in the order of the simulator's zones (centre, north, east, south,
    /// west); zones not listed weigh 1.
    pub zone_weights: Vec<f64>,
    /// 24 hourly factors (UTC), linear in between.
    pub daily_profile: Vec<f64>,
    /// 7 daily factors, Monday first.
    pub weekly: Vec<f64>,
    /// A request no vehicle took within this long expires.
    pub max_wait_ms: i64,
}

impl Default for DemandConfig {
    fn default() -> Self {
        DemandConfig {
            seed: 7,
            peak_per_hour: 12.0,
            zone_weights: vec![2.0, 1.0, 0.6, 1.0, 0.6],
            daily_profile: vec![
                0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.6, 0.95, 1.0, 0.8, 0.6, 0.6, 0.65, 0.6, 0.6,
                0.7, 0.85, 1.0, 0.9, 0.7, 0.55, 0.45, 0.35, 0.25,
            ],
            weekly: vec![1.0, 1.0, 1.0, 1.0, 1.05, 0.75, 0.6],
            max_wait_ms: 600_000,
        }
    }
}

impl DemandConfig {
    /// Expected requests per minute in zone `zone` (index) at `ts_ms`.
    pub fn rate_per_minute(&self, zone: usize, ts_ms: i64) -> f64 {
        const DAY: i64 = 86_400_000;
        let in_day = ts_ms.rem_euclid(DAY) as f64 / 3_600_000.0;
        let h = in_day.floor() as usize % 24;
        let frac = in_day - in_day.floor();
        let p = |i: usize| self.daily_profile.get(i % 24).copied().unwrap_or(1.0);
        let daily = p(h) * (1.0 - frac) + p(h + 1) * frac;
        // 1970-01-01 was a Thursday: Monday = 0.
        let dow = ((ts_ms.div_euclid(DAY) + 3).rem_euclid(7)) as usize;
        let weekly = self.weekly.get(dow).copied().unwrap_or(1.0);
        let w = self.zone_weights.get(zone).copied().unwrap_or(1.0);
        (self.peak_per_hour * w * daily * weekly / 60.0).max(0.0)
    }
}

/// One fleet's demand clock and waiting requests.
#[derive(Debug)]
struct FleetDemand {
    rng: ChaCha8Rng,
    /// Requests are generated for every minute before this one (epoch ms, minute-aligned).
    until_ms: i64,
    next: u64,
    /// Waiting requests per zone id: (mission id, requested at).
    waiting: HashMap<String, VecDeque<(String, i64)>>,
}

/// Derives mission and resource events from a vehicle's telemetry.
#[derive(Debug, Default)]
pub struct Deriver {
    vehicles: HashMap<String, VehicleTrack>,
    demand: Option<DemandConfig>,
    fleets: HashMap<String, FleetDemand>,
}

/// A Poisson draw (Knuth's method; the rates here are small).
fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let l = (-lambda).exp();
    let (mut k, mut p) = (0u32, 1.0f64);
    loop {
        p *= rng.gen::<f64>();
        if p <= l || k >= 1000 {
            return k;
        }
        k += 1;
    }
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

    /// A deriver that also emits the fleets' zone demand (see the module docs).
    pub fn with_demand(cfg: DemandConfig) -> Self {
        Deriver {
            demand: Some(cfg),
            ..Self::default()
        }
    }

    /// Requests up to `now_ms` for the fleet and the expiries due by then.
    fn advance_demand(&mut self, fleet: &str, now_ms: i64, out: &mut Vec<MissionEventRecord>) {
        let Some(cfg) = &self.demand else {
            return;
        };
        let f = self.fleets.entry(fleet.to_string()).or_insert_with(|| {
            let mut h: u64 = cfg.seed;
            for b in fleet.bytes() {
                h = h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(b));
            }
            FleetDemand {
                rng: ChaCha8Rng::seed_from_u64(h),
                until_ms: now_ms.div_euclid(60_000) * 60_000,
                next: 0,
                waiting: HashMap::new(),
            }
        });
        let request =
            |mission: &str, at: i64, kind: MissionEventKind, zone: &str| MissionEventRecord {
                event_id: format!("{mission}:{}", kind.as_str()),
                mission_id: mission.to_string(),
                fleet_id: fleet.to_string(),
                vehicle_id: None,
                ts_ms: at,
                kind,
                severity: None,
                detail: None,
                zone_id: Some(zone.to_string()),
            };
        while f.until_ms + 60_000 <= now_ms {
            let minute = f.until_ms;
            for zi in 0..crate::vehicle::ZONES.len() {
                let zone = &crate::vehicle::zone_id(fleet, zi);
                let n = poisson(&mut f.rng, cfg.rate_per_minute(zi, minute));
                for k in 0..n {
                    let at = minute + i64::from(k) * 60_000 / i64::from(n);
                    let mission = format!("{fleet}-req-{}", f.next);
                    f.next += 1;
                    out.push(request(&mission, at, MissionEventKind::Requested, zone));
                    f.waiting
                        .entry(zone.to_string())
                        .or_default()
                        .push_back((mission, at));
                }
            }
            f.until_ms += 60_000;
        }
        let mut zones: Vec<&String> = f.waiting.keys().collect();
        zones.sort();
        let mut expired = Vec::new();
        for zone in zones {
            let q = &f.waiting[zone];
            for (mission, at) in q.iter() {
                if at + cfg.max_wait_ms <= now_ms {
                    expired.push((zone.clone(), mission.clone(), at + cfg.max_wait_ms));
                } else {
                    break;
                }
            }
        }
        for (zone, mission, at) in expired {
            if let Some(q) = f.waiting.get_mut(&zone) {
                q.pop_front();
            }
            out.push(request(&mission, at, MissionEventKind::Expired, &zone));
        }
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
        let demand = self.demand.is_some();
        let mut requests = Vec::new();
        self.advance_demand(&ev.fleet_id, ev.ts_ms, &mut requests);
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
                    _ => out.missions.push(MissionEventRecord {
                        // With demand: an arrival in the zone the vehicle ended in.
                        zone_id: ev.zone_id.clone().filter(|_| demand),
                        ..mission(MissionEventKind::Completed, m, None, None, "end")
                    }),
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
                // It takes the oldest request waiting in its zone.
                let taken = ev.zone_id.as_deref().and_then(|z| {
                    let f = self.fleets.get_mut(&ev.fleet_id)?;
                    f.waiting.get_mut(z)?.pop_front()
                });
                if let (Some((request, _)), Some(zone)) = (taken, &ev.zone_id) {
                    requests.push(MissionEventRecord {
                        event_id: format!("{request}:assigned"),
                        mission_id: request,
                        zone_id: Some(zone.clone()),
                        ..mission(MissionEventKind::Assigned, m, None, None, "assigned")
                    });
                }
            }
        }
        out.missions.extend(requests);
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

    /// A vehicle idle in the centre that starts a 5-minute mission every 20 minutes, for
    /// `hours`, one sample a minute; the demand events derived from it.
    fn demand_day(seed: u64, hours: i64) -> Vec<MissionEventRecord> {
        let mut d = Deriver::with_demand(DemandConfig {
            seed,
            ..DemandConfig::default()
        });
        let t0 = 1_767_225_600_000 + 7 * 3_600_000; // 2026-01-01 07:00 UTC
        let mut out = Vec::new();
        for m in 0..hours * 60 {
            let on = m % 20 < 5;
            let mut e = ev(m + 1, VehicleStatus::Idle, None);
            e.ts_ms = t0 + m * 60_000;
            e.zone_id = Some("fleet-001-zone-central".into());
            if on {
                e.status = VehicleStatus::OnMission;
                e.mission_id = Some(format!("m{}", m / 20));
            }
            out.extend(d.observe(&e).missions);
        }
        out
    }

    #[test]
    fn demand_requests_are_assigned_on_mission_starts_or_expire() {
        let events = demand_day(3, 6);
        assert_eq!(events, demand_day(3, 6), "deterministic per seed");
        assert_ne!(events, demand_day(4, 6));
        let cfg = DemandConfig::default();
        let mut requested: HashMap<&str, (i64, &str)> = HashMap::new();
        let (mut assigned, mut expired) = (0, 0);
        for e in &events {
            match e.kind {
                MissionEventKind::Requested => {
                    let zone = e.zone_id.as_deref().unwrap();
                    assert!(zone.starts_with("fleet-001-zone-"), "{e:?}");
                    assert!(requested.insert(&e.mission_id, (e.ts_ms, zone)).is_none());
                }
                MissionEventKind::Assigned | MissionEventKind::Expired => {
                    let (at, zone) = requested
                        .remove(e.mission_id.as_str())
                        .expect("decided once, after its request");
                    assert_eq!(e.zone_id.as_deref(), Some(zone));
                    if e.kind == MissionEventKind::Assigned {
                        assigned += 1;
                        assert_eq!(
                            zone, "fleet-001-zone-central",
                            "only where the vehicle started"
                        );
                        assert!(e.ts_ms - at < cfg.max_wait_ms && e.ts_ms >= at);
                        assert!(e.vehicle_id.is_some());
                    } else {
                        expired += 1;
                        assert_eq!(e.ts_ms, at + cfg.max_wait_ms);
                    }
                }
                MissionEventKind::Completed => {
                    assert_eq!(
                        e.zone_id.as_deref(),
                        Some("fleet-001-zone-central"),
                        "an arrival"
                    );
                }
                _ => {}
            }
        }
        // One vehicle starts 3 missions an hour: 18 assignments at most in 6 hours; the
        // rest of the ~250 requests expire (or still wait).
        assert!((10..=18).contains(&assigned), "{assigned}");
        let total = assigned + expired + requested.len();
        let expected: f64 = (0..6 * 60)
            .map(|m| {
                (0..5)
                    .map(|z| cfg.rate_per_minute(z, 1_767_225_600_000 + 7 * 3_600_000 + m * 60_000))
                    .sum::<f64>()
            })
            .sum();
        assert!(
            (total as f64 - expected).abs() < 4.0 * expected.sqrt(),
            "{total} requests, {expected:.0} expected"
        );
        assert!(expired > 100, "{expired}");
        // Without demand, nothing of it.
        let mut plain = Deriver::new();
        let mut e = ev(1, VehicleStatus::OnMission, Some("m"));
        e.zone_id = Some("fleet-001-zone-central".into());
        assert!(plain
            .observe(&e)
            .missions
            .iter()
            .all(|m| m.zone_id.is_none()));
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
