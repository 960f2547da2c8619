//! An independent reference of the window metrics, computed directly from the full list of
//! counted events (no incremental state, no watermarks, no lateness): what the pipeline must
//! arrive at, whatever the arrival order, crashes or outages.

use std::collections::{BTreeMap, BTreeSet};

use atlasmesh_core::window::Counters;
use atlasmesh_core::{TelemetryEvent, VehicleStatus};

pub const WINDOW_MS: i64 = 60_000;
pub const MAX_GAP_MS: i64 = 60_000;

fn m(x: f64) -> i64 {
    (x * 1000.0).round() as i64
}

fn floor(ts: i64) -> i64 {
    ts.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// (vehicle_id, window_start_ms) → counters.
pub fn vehicle_windows(events: &[&TelemetryEvent]) -> BTreeMap<(String, i64), Counters> {
    let mut by_vehicle: BTreeMap<&str, Vec<&TelemetryEvent>> = BTreeMap::new();
    for e in events {
        by_vehicle.entry(&e.vehicle_id).or_default().push(e);
    }
    let mut out: BTreeMap<(String, i64), Counters> = BTreeMap::new();
    let mut missions: BTreeMap<(String, i64), BTreeSet<String>> = BTreeMap::new();
    for (vehicle, mut evs) in by_vehicle {
        evs.sort_by_key(|e| (e.ts_ms, e.seq));
        evs.dedup_by_key(|e| (e.ts_ms, e.seq));
        for (i, e) in evs.iter().enumerate() {
            // status time: [t, t + min(next - t, max_gap)) split across windows
            let len = evs
                .get(i + 1)
                .map_or(MAX_GAP_MS, |n| (n.ts_ms - e.ts_ms).min(MAX_GAP_MS));
            let (start, end) = (e.ts_ms, e.ts_ms + len);
            let mut w = floor(start);
            while w < end {
                let ms = (end.min(w + WINDOW_MS) - start.max(w)) as u64;
                if ms > 0 {
                    let c = out.entry((vehicle.to_string(), w)).or_default();
                    c.observed_ms += ms;
                    match e.status {
                        VehicleStatus::EnRoute | VehicleStatus::OnMission => c.busy_ms += ms,
                        VehicleStatus::Idle => c.idle_ms += ms,
                        VehicleStatus::Charging => c.charging_ms += ms,
                        VehicleStatus::Maintenance => c.maintenance_ms += ms,
                        VehicleStatus::Fault => c.fault_ms += ms,
                        VehicleStatus::Offline => c.offline_ms += ms,
                    }
                    if !matches!(
                        e.status,
                        VehicleStatus::Maintenance | VehicleStatus::Fault | VehicleStatus::Offline
                    ) {
                        c.available_ms += ms;
                    }
                }
                w += WINDOW_MS;
            }
            // per-sample counters in the sample's own window
            let key = (vehicle.to_string(), floor(e.ts_ms));
            let c = out.entry(key.clone()).or_default();
            c.samples += 1;
            if i > 0 {
                let p = evs[i - 1];
                c.distance_m += (m(e.odometer_km) - m(p.odometer_km)).max(0) as u64;
                c.energy_wh += (m(e.energy_used_kwh) - m(p.energy_used_kwh)).max(0) as u64;
            }
            let entering_fault = e.status == VehicleStatus::Fault
                && (i == 0 || evs[i - 1].status != VehicleStatus::Fault);
            c.fault_count += u64::from(entering_fault);
            let ckph = (e.speed_kph * 100.0).round() as i64;
            if ckph > 50 {
                c.moving_samples += 1;
                c.moving_speed_ckph_sum += ckph as u64;
            }
            if e.status != VehicleStatus::Offline {
                c.active_vehicles = 1;
            }
            if let Some(mid) = e.mission_id.as_ref().filter(|s| !s.is_empty()) {
                missions.entry(key).or_default().insert(mid.clone());
            }
        }
    }
    for (k, c) in out.iter_mut() {
        c.mission_count = missions.get(k).map_or(0, |s| s.len() as u64);
        c.vehicles = 1;
    }
    out
}

/// (fleet_id, window_start_ms) → counters summed over the fleet's vehicles.
pub fn fleet_windows(
    events: &[&TelemetryEvent],
    vehicles: &BTreeMap<(String, i64), Counters>,
) -> BTreeMap<(String, i64), Counters> {
    let fleet_of: BTreeMap<&str, &str> = events
        .iter()
        .map(|e| (e.vehicle_id.as_str(), e.fleet_id.as_str()))
        .collect();
    let mut out: BTreeMap<(String, i64), Counters> = BTreeMap::new();
    for ((v, w), c) in vehicles {
        out.entry((fleet_of[v.as_str()].to_string(), *w))
            .or_default()
            .add(c);
    }
    out
}
