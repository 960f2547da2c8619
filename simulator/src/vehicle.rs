//! One simulated vehicle: status state machine, motion, odometer and energy counters.
//!
//! Counters are kept as whole metres / whole Wh (plus a fractional carry), so the reported
//! `odometer_km` and `energy_used_kwh` are exact at metre / Wh resolution and never decrease.

use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Fault codes a vehicle can report; `faults` bitmasks index into this list.
pub(crate) const FAULT_CODES: [&str; 6] = ["E101", "E202", "E305", "E417", "W110", "E501"];
/// Index of the battery-critical code, used only when the battery runs flat.
const BATTERY_FAULT: usize = 5;

/// City centres the fleets operate around (fleet n uses `CITIES[(n - 1) % len]`).
const CITIES: [(f64, f64); 6] = [
    (52.5200, 13.4050), // Berlin
    (48.1372, 11.5756), // Munich
    (53.5511, 9.9937),  // Hamburg
    (52.3676, 4.9041),  // Amsterdam
    (48.8566, 2.3522),  // Paris
    (45.7640, 4.8357),  // Lyon
];
pub(crate) const ZONES: [&str; 5] = [
    "zone-central",
    "zone-north",
    "zone-east",
    "zone-south",
    "zone-west",
];
const CENTRAL_RADIUS_M: f64 = 2_500.0;
const MAX_RADIUS_M: f64 = 12_000.0;
const M_PER_DEG_LAT: f64 = 111_320.0;

pub(crate) const MIN_MOVING_KPH: f64 = 20.0;
pub(crate) const MAX_MOVING_KPH: f64 = 60.0;
/// Below this state of charge an idle / finishing vehicle heads to a charger.
const LOW_PCT: f64 = 25.0;
/// Fault hazard per second while idle or moving (≈ one fault per 40 min of operation).
const FAULT_HAZARD_PER_S: f64 = 1.0 / 2_400.0;

pub(crate) fn round_to(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// The reportable state of a vehicle at one sample time, compact enough to keep a history of
/// (used to build plausible too-late events for a past instant).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub ts: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_kph: f64,
    pub odo_m: i64,
    pub used_wh: i64,
    pub energy_pct: f64,
    pub status: VehicleStatus,
    pub mission_no: Option<u32>,
    pub payload_kg: f64,
    pub faults: u8,
    pub zone: Option<u8>,
}

pub(crate) struct Vehicle {
    pub fleet_no: u32,
    pub vehicle_no: u32,
    pub fleet_id: String,
    pub vehicle_id: String,
    /// Offset of this vehicle's samples inside each interval.
    pub phase_ms: i64,
    phys: ChaCha8Rng,

    status: VehicleStatus,
    dwell_ms: i64,
    to_charger: bool,
    last_ts: Option<i64>,
    speed_kph: f64,
    cruise_kph: f64,
    centre: (f64, f64),
    lat: f64,
    lon: f64,
    heading: f64,
    odo_m: i64,
    odo_frac: f64,
    used_wh: i64,
    used_frac: f64,
    capacity_wh: f64,
    remaining_wh: f64,
    charge_kw: f64,
    charge_target_pct: f64,
    eff_kwh_per_km: f64,
    aux_kw: f64,
    mission_no: Option<u32>,
    missions_started: u32,
    payload_kg: f64,
    faults: u8,
}

impl Vehicle {
    pub fn new(fleet_no: u32, vehicle_no: u32, interval_ms: i64, mut phys: ChaCha8Rng) -> Self {
        let centre = CITIES[((fleet_no as usize).saturating_sub(1)) % CITIES.len()];
        // Start somewhere within 8 km of the centre.
        let r = 8_000.0 * phys.gen::<f64>().sqrt();
        let a = phys.gen_range(0.0..std::f64::consts::TAU);
        let lat = centre.0 + r * a.cos() / M_PER_DEG_LAT;
        let lon = centre.1 + r * a.sin() / (M_PER_DEG_LAT * centre.0.to_radians().cos());
        let capacity_wh = phys.gen_range(50_000.0..90_000.0);
        let pct0 = phys.gen_range(20.0..100.0);
        let odo_m = phys.gen_range(1_000_000..80_000_000i64);
        let eff = phys.gen_range(0.16..0.22);
        let used_wh = (odo_m as f64 / 1000.0 * eff * 1.1) as i64;
        let max_phase = (interval_ms * 3 / 4).max(1);
        let phase_ms = phys.gen_range(0..max_phase);
        let mut v = Vehicle {
            fleet_no,
            vehicle_no,
            fleet_id: format!("fleet-{fleet_no:03}"),
            vehicle_id: format!("f{fleet_no:03}-v{vehicle_no:04}"),
            phase_ms,
            status: VehicleStatus::Idle,
            dwell_ms: 0,
            to_charger: false,
            last_ts: None,
            speed_kph: 0.0,
            cruise_kph: 0.0,
            centre,
            lat,
            lon,
            heading: phys.gen_range(0.0..std::f64::consts::TAU),
            odo_m,
            odo_frac: 0.0,
            used_wh,
            used_frac: 0.0,
            capacity_wh,
            remaining_wh: capacity_wh * pct0 / 100.0,
            charge_kw: phys.gen_range(60.0..150.0),
            charge_target_pct: 90.0,
            eff_kwh_per_km: eff,
            aux_kw: phys.gen_range(0.3..1.0),
            mission_no: None,
            missions_started: 0,
            payload_kg: 0.0,
            faults: 0,
            phys,
        };
        let initial = match v.phys.gen_range(0..100) {
            0..=29 => VehicleStatus::Idle,
            30..=54 => VehicleStatus::EnRoute,
            55..=79 => VehicleStatus::OnMission,
            80..=84 if pct0 < 90.0 => VehicleStatus::Charging,
            85..=89 => VehicleStatus::Maintenance,
            _ => VehicleStatus::Offline,
        };
        v.enter(initial);
        // Start somewhere inside the first dwell, so vehicles do not all switch together.
        v.dwell_ms = (v.dwell_ms as f64 * v.phys.gen_range(0.1..1.0)) as i64;
        v.speed_kph = v.moving_speed();
        v
    }

    /// Sampling jitter in `0..max` ms (from the physics stream, so injection does not move it).
    pub fn jitter_ms(&mut self, max: i64) -> i64 {
        if max > 0 {
            self.phys.gen_range(0..max)
        } else {
            0
        }
    }

    pub fn energy_pct(&self) -> f64 {
        (self.remaining_wh / self.capacity_wh * 100.0).clamp(0.0, 100.0)
    }

    /// Advances the vehicle to `ts` (the next sample time) and returns the reportable state.
    pub fn advance(&mut self, ts: i64) -> Snapshot {
        let dt_ms = self.last_ts.map_or(0, |l| (ts - l).max(0));
        let dt_s = dt_ms as f64 / 1000.0;

        // Motion over the elapsed interval at the speed reported at the previous sample.
        let dist_m = self.speed_kph / 3.6 * dt_s;
        if dist_m > 0.0 {
            self.heading += self.phys.gen_range(-0.25..0.25);
            let (dn, de) = self.offset_from_centre();
            if (dn * dn + de * de).sqrt() > MAX_RADIUS_M {
                // Steer back towards the centre.
                self.heading = (-de).atan2(-dn) + self.phys.gen_range(-0.4..0.4);
            }
            self.lat += dist_m * self.heading.cos() / M_PER_DEG_LAT;
            self.lon += dist_m * self.heading.sin() / (M_PER_DEG_LAT * self.lat.to_radians().cos());
            self.odo_frac += dist_m;
            let whole = self.odo_frac.floor();
            self.odo_m += whole as i64;
            self.odo_frac -= whole;
        }

        // Energy: traction (kWh/km, heavier with payload, with noise) plus auxiliary draw.
        let aux_kw = match self.status {
            VehicleStatus::Offline | VehicleStatus::Charging | VehicleStatus::Maintenance => 0.0,
            _ => self.aux_kw,
        };
        let traction_wh = if dist_m > 0.0 {
            dist_m
                * self.eff_kwh_per_km
                * (1.0 + self.payload_kg / 4_000.0)
                * self.phys.gen_range(0.92..1.08)
        } else {
            0.0
        };
        let drawn_wh = traction_wh + aux_kw * dt_s / 3.6;
        self.used_frac += drawn_wh;
        let whole = self.used_frac.floor();
        self.used_wh += whole as i64;
        self.used_frac -= whole;
        self.remaining_wh = (self.remaining_wh - drawn_wh).max(0.0);
        if self.status == VehicleStatus::Charging {
            self.remaining_wh =
                (self.remaining_wh + self.charge_kw * dt_s / 3.6).min(self.capacity_wh);
        }

        // Status machine.
        self.dwell_ms -= dt_ms;
        let operating = matches!(
            self.status,
            VehicleStatus::Idle | VehicleStatus::EnRoute | VehicleStatus::OnMission
        );
        if operating && self.energy_pct() < 2.0 {
            self.faults = 1 << BATTERY_FAULT;
            self.enter(VehicleStatus::Fault);
        } else if operating
            && dt_s > 0.0
            && self.phys.gen_bool((FAULT_HAZARD_PER_S * dt_s).min(1.0))
        {
            self.enter(VehicleStatus::Fault);
        } else if self.dwell_ms <= 0 {
            self.transition();
        }

        self.speed_kph = self.moving_speed();
        self.last_ts = Some(ts);
        self.snapshot(ts)
    }

    fn moving_speed(&mut self) -> f64 {
        if self.status.is_busy() {
            let noisy = self.cruise_kph + self.phys.gen_range(-4.0..4.0);
            round_to(noisy.clamp(MIN_MOVING_KPH, MAX_MOVING_KPH), 2)
        } else {
            0.0
        }
    }

    fn offset_from_centre(&self) -> (f64, f64) {
        let dn = (self.lat - self.centre.0) * M_PER_DEG_LAT;
        let de = (self.lon - self.centre.1) * M_PER_DEG_LAT * self.lat.to_radians().cos();
        (dn, de)
    }

    fn zone(&self) -> Option<u8> {
        if self.status == VehicleStatus::Offline {
            return None;
        }
        let (dn, de) = self.offset_from_centre();
        if (dn * dn + de * de).sqrt() < CENTRAL_RADIUS_M {
            return Some(0);
        }
        Some(if dn.abs() >= de.abs() {
            if dn >= 0.0 {
                1
            } else {
                3
            }
        } else if de >= 0.0 {
            2
        } else {
            4
        })
    }

    pub fn snapshot(&self, ts: i64) -> Snapshot {
        Snapshot {
            ts,
            lat: round_to(self.lat, 6),
            lon: round_to(self.lon, 6),
            speed_kph: self.speed_kph,
            odo_m: self.odo_m,
            used_wh: self.used_wh,
            energy_pct: round_to(self.energy_pct(), 2),
            status: self.status,
            mission_no: self.mission_no,
            payload_kg: self.payload_kg,
            faults: self.faults,
            zone: self.zone(),
        }
    }

    /// The state as it was before the simulation started: parked, with the initial counters.
    pub fn pre_start_snapshot(&self) -> Snapshot {
        Snapshot {
            ts: i64::MIN,
            speed_kph: 0.0,
            status: VehicleStatus::Idle,
            mission_no: None,
            payload_kg: 0.0,
            faults: 0,
            ..self.snapshot(i64::MIN)
        }
    }

    pub fn mission_id(&self, no: u32) -> String {
        format!("m-f{:03}-v{:04}-{:05}", self.fleet_no, self.vehicle_no, no)
    }

    /// A telemetry event carrying `snap`'s values at time `ts`.
    pub fn event(&self, snap: &Snapshot, ts: i64, seq: i64, event_id: String) -> TelemetryEvent {
        TelemetryEvent {
            event_id,
            fleet_id: self.fleet_id.clone(),
            vehicle_id: self.vehicle_id.clone(),
            ts_ms: ts,
            seq,
            lat: snap.lat,
            lon: snap.lon,
            speed_kph: snap.speed_kph,
            odometer_km: snap.odo_m as f64 / 1000.0,
            energy_pct: snap.energy_pct,
            energy_used_kwh: snap.used_wh as f64 / 1000.0,
            status: snap.status,
            mission_id: snap.mission_no.map(|n| self.mission_id(n)),
            zone_id: snap.zone.map(|z| ZONES[z as usize].to_string()),
            payload_kg: snap.payload_kg,
            fault_codes: FAULT_CODES
                .iter()
                .enumerate()
                .filter(|(i, _)| snap.faults & (1 << i) != 0)
                .map(|(_, c)| c.to_string())
                .collect(),
        }
    }

    fn secs(&mut self, lo: i64, hi: i64) -> i64 {
        self.phys.gen_range(lo..=hi) * 1000
    }

    /// Enters `status` with a fresh dwell time and the side effects of entering it.
    fn enter(&mut self, status: VehicleStatus) {
        if status != VehicleStatus::OnMission {
            self.mission_no = None;
            self.payload_kg = 0.0;
        }
        if status != VehicleStatus::Fault {
            self.faults = 0;
        }
        if status != VehicleStatus::EnRoute {
            self.to_charger = false;
        }
        self.dwell_ms = match status {
            VehicleStatus::Idle => self.secs(20, 180),
            VehicleStatus::EnRoute if self.to_charger => self.secs(30, 120),
            VehicleStatus::EnRoute => self.secs(30, 300),
            VehicleStatus::OnMission => self.secs(60, 600),
            VehicleStatus::Charging => self.secs(60, 120),
            VehicleStatus::Maintenance => self.secs(120, 900),
            VehicleStatus::Fault => self.secs(30, 300),
            VehicleStatus::Offline => self.secs(60, 600),
        };
        match status {
            VehicleStatus::EnRoute | VehicleStatus::OnMission => {
                self.cruise_kph = self.phys.gen_range(25.0..55.0);
            }
            _ => {}
        }
        match status {
            VehicleStatus::OnMission => {
                self.missions_started += 1;
                self.mission_no = Some(self.missions_started);
                self.payload_kg = round_to(self.phys.gen_range(50.0..800.0), 1);
            }
            VehicleStatus::Charging => {
                self.charge_target_pct = self.phys.gen_range(80.0..97.0);
            }
            VehicleStatus::Fault if self.faults == 0 => {
                let a = self.phys.gen_range(0..BATTERY_FAULT);
                self.faults = 1 << a;
                if self.phys.gen_bool(0.3) {
                    self.faults |= 1 << self.phys.gen_range(0..BATTERY_FAULT);
                }
            }
            _ => {}
        }
        self.status = status;
    }

    fn charge_if_low_else(&mut self, otherwise: VehicleStatus) {
        if self.energy_pct() < LOW_PCT {
            self.enter(VehicleStatus::EnRoute);
            self.to_charger = true;
            self.dwell_ms = self.secs(30, 120);
        } else {
            self.enter(otherwise);
        }
    }

    /// Dwell time is over: pick the next status.
    fn transition(&mut self) {
        let pct = self.energy_pct();
        match self.status {
            VehicleStatus::Idle => {
                if pct < LOW_PCT {
                    self.charge_if_low_else(VehicleStatus::Idle);
                    return;
                }
                let next = match self.phys.gen_range(0..100) {
                    0..=39 => VehicleStatus::EnRoute,
                    40..=69 => VehicleStatus::OnMission,
                    70..=79 if pct < 70.0 => VehicleStatus::Charging,
                    80..=83 => VehicleStatus::Maintenance,
                    84..=89 => VehicleStatus::Offline,
                    _ => VehicleStatus::Idle,
                };
                self.enter(next);
            }
            VehicleStatus::EnRoute => {
                if self.to_charger {
                    self.enter(VehicleStatus::Charging);
                } else if self.phys.gen_bool(0.6) {
                    self.enter(VehicleStatus::OnMission);
                } else {
                    self.charge_if_low_else(VehicleStatus::Idle);
                }
            }
            VehicleStatus::OnMission => {
                let next = if self.phys.gen_bool(0.5) {
                    VehicleStatus::Idle
                } else {
                    VehicleStatus::EnRoute
                };
                self.charge_if_low_else(next);
            }
            VehicleStatus::Charging => {
                if pct >= self.charge_target_pct || pct >= 99.9 {
                    self.enter(VehicleStatus::Idle);
                } else {
                    self.dwell_ms = 30_000;
                }
            }
            VehicleStatus::Maintenance | VehicleStatus::Offline => self.enter(VehicleStatus::Idle),
            VehicleStatus::Fault => {
                let next = if self.faults & (1 << BATTERY_FAULT) != 0 {
                    // Towed to a charger.
                    VehicleStatus::Charging
                } else if self.phys.gen_bool(0.5) {
                    VehicleStatus::Maintenance
                } else {
                    VehicleStatus::Idle
                };
                self.faults = 0;
                self.enter(next);
            }
        }
    }
}
