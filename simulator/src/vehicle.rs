//! One simulated vehicle: status state machine, motion, odometer and energy counters.
//!
//! Counters are kept as whole metres / whole Wh (plus a fractional carry), so the reported
//! `odometer_km` and `energy_used_kwh` are exact at metre / Wh resolution and never decrease.

use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Fault codes a vehicle can report; `faults` bitmasks index into this list. The first six are
/// the ordinary ones; the rest appear only with a [`FailureModel`]: precursor warnings (`W-`)
/// and failures (`F-`).
pub(crate) const FAULT_CODES: [&str; 11] = [
    "E101",
    "E202",
    "E305",
    "E417",
    "W110",
    "E501",
    "W-P0A80",
    "W-ISO-RES",
    "W-MOT-TEMP",
    "F-HVB",
    "F-DRIVE",
];
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
/// The zones of a fleet's city: a centre (within `CENTRAL_RADIUS_M`) and four quadrants (by
/// bearing: north, east, south, west). Zone ids are the fleet's: `<fleet>-zone-north`.
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
    pub faults: u16,
    pub zone: Option<u8>,
}

/// The opt-in models of a vehicle and their random stream.
pub(crate) struct Options<'a> {
    pub start_ms: i64,
    pub battery: Option<&'a BatteryModel>,
    pub failures: Option<&'a FailureModel>,
    pub health: ChaCha8Rng,
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
    faults: u16,
    fault_hazard_per_s: f64,
    /// Opt-in ground truth (see [`BatteryModel`], [`FailureModel`]), drawn from `health`.
    health: ChaCha8Rng,
    ageing: Option<Ageing>,
    failures: Option<Failures>,
    /// A precursor warning reported on this sample only.
    warn: u16,
    soc_noise: f64,
}

/// The id of zone `zone` (index into the fleet's zones) of `fleet_id`.
pub fn zone_id(fleet_id: &str, zone: usize) -> String {
    format!("{fleet_id}-{}", ZONES[zone % ZONES.len()])
}

/// A zone of a simulated fleet's city, as the optimization engine registers it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimZone {
    pub id: String,
    pub fleet_id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
}

/// The zones of fleet `fleet_no` (1-based) with their centroids: the city centre and a point
/// 5 km out on each quadrant's bearing (the quadrants start at the central radius, 2.5 km).
pub fn fleet_zones(fleet_no: u32) -> Vec<SimZone> {
    let fleet_id = format!("fleet-{fleet_no:03}");
    let centre = CITIES[((fleet_no as usize).saturating_sub(1)) % CITIES.len()];
    let m_per_deg_lon = M_PER_DEG_LAT * centre.0.to_radians().cos();
    let offsets = [
        (0.0, 0.0),
        (5_000.0, 0.0),
        (0.0, 5_000.0),
        (-5_000.0, 0.0),
        (0.0, -5_000.0),
    ];
    ZONES
        .iter()
        .zip(offsets)
        .enumerate()
        .map(|(i, (name, (dn, de)))| SimZone {
            id: zone_id(&fleet_id, i),
            fleet_id: fleet_id.clone(),
            name: name.trim_start_matches("zone-").to_string(),
            lat: round_to(centre.0 + dn / M_PER_DEG_LAT, 6),
            lon: round_to(centre.1 + de / m_per_deg_lon, 6),
        })
        .collect()
}

impl Vehicle {
    /// `health` drives the opt-in models only, so without them the output is unchanged.
    pub fn new(
        fleet_no: u32,
        vehicle_no: u32,
        interval_ms: i64,
        mut phys: ChaCha8Rng,
        opts: Options<'_>,
    ) -> Self {
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
            fault_hazard_per_s: FAULT_HAZARD_PER_S,
            health: opts.health,
            ageing: None,
            failures: None,
            warn: 0,
            soc_noise: 0.0,
            phys,
        };
        if let Some(m) = opts.battery {
            v.init_ageing(m, opts.start_ms, pct0);
        }
        if let Some(m) = opts.failures {
            v.init_failures(m, opts.start_ms);
        }
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

    fn init_ageing(&mut self, m: &BatteryModel, start_ms: i64, pct0: f64) {
        let r = &mut self.health;
        let soh0 = draw(r, m.soh0_pct).clamp(1.0, 100.0);
        let cal = draw(r, m.calendar_pp_per_year);
        let cyc = draw(r, m.cycle_pp_per_1000_km);
        let dc_share = draw(r, m.dc_fast_share).clamp(0.0, 1.0);
        let acc = m.acceleration.max(0.0);
        let cyc_eff = cyc * (1.0 + m.dc_fast_fade_factor * dc_share) * acc;
        let nominal_wh = self.capacity_wh;
        self.capacity_wh = nominal_wh * soh0 / 100.0;
        self.remaining_wh = self.capacity_wh * pct0 / 100.0;
        self.ageing = Some(Ageing {
            nominal_wh,
            soh0,
            soh: soh0,
            dc_share,
            cal_pp_per_ms: cal * acc / (DAYS_PER_YEAR * DAY_MS_F),
            cyc_pp_per_m: cyc_eff / 1_000_000.0,
            acceleration: acc,
            session_kw: self.charge_kw,
            noise_pp: m.soc_noise_pp.max(0.0),
            resets_per_day: m.counter_resets_per_day.max(0.0),
            ac_kw: m.ac_kw,
            dc_kw: m.dc_kw,
            sessions: (0, 0),
            resets: Vec::new(),
            trace: Vec::new(),
            next_trace_ms: start_ms,
        });
    }

    fn init_failures(&mut self, m: &FailureModel, start_ms: i64) {
        let r = &mut self.health;
        let frailty = draw(r, m.frailty).max(1e-3);
        let background_per_day = draw(r, m.background_per_day).max(0.0);
        let placeholder = Episode {
            end_ms: start_ms,
            peak_per_day: 0.0,
            weak: false,
            code: 0,
        };
        let mut f = Failures {
            m: m.clone(),
            frailty,
            background_per_day,
            next_failure: placeholder,
            next_false: placeholder,
            failing: false,
            repair_ms: 0,
            failures: Vec::new(),
            false_episodes: Vec::new(),
            warnings: 0,
        };
        f.next_failure = f.next_failure_after(r, start_ms);
        f.next_false = f.next_false_after(r, start_ms);
        self.fault_hazard_per_s = FAULT_HAZARD_PER_S * m.nuisance_fault_scale.max(0.0) * frailty;
        self.failures = Some(f);
    }

    /// The battery truth so far (`None` without a [`BatteryModel`]).
    /// The battery's nominal capacity (as built), kWh.
    pub fn nominal_kwh(&self) -> f64 {
        self.ageing
            .as_ref()
            .map_or(self.capacity_wh, |a| a.nominal_wh)
            / 1000.0
    }

    pub fn battery_truth(&self) -> Option<BatteryTruth> {
        let a = self.ageing.as_ref()?;
        let mut trace = a.trace.clone();
        if let Some(ts) = self.last_ts {
            if trace.last().is_some_and(|p| p.ts_ms < ts) {
                trace.push(SohPoint {
                    ts_ms: ts,
                    odometer_km: (self.odo_m as f64 + self.odo_frac) / 1000.0,
                    soh_pct: a.soh,
                });
            }
        }
        Some(BatteryTruth {
            vehicle_id: self.vehicle_id.clone(),
            nominal_kwh: a.nominal_wh / 1000.0,
            soh0_pct: a.soh0,
            dc_fast_share: a.dc_share,
            calendar_pp_per_month: a.cal_pp_per_ms * MONTH_DAYS * DAY_MS_F,
            cycle_pp_per_1000_km: a.cyc_pp_per_m * 1_000_000.0,
            acceleration: a.acceleration,
            soh_now_pct: a.soh,
            trace,
            sessions: a.sessions,
            counter_resets_ms: a.resets.clone(),
        })
    }

    /// The failure truth so far (`None` without a [`FailureModel`]).
    pub fn failure_truth(&self) -> Option<FailureTruth> {
        let f = self.failures.as_ref()?;
        Some(FailureTruth {
            vehicle_id: self.vehicle_id.clone(),
            frailty: f.frailty,
            background_per_day: f.background_per_day,
            failures: f.failures.clone(),
            false_episodes_ms: f.false_episodes.clone(),
            warnings: f.warnings,
        })
    }

    /// Ages the battery over one step; returns the charging power (kW) for it.
    fn age(&mut self, ts: i64, dt_ms: i64, dist_m: f64) -> f64 {
        let odo_km = (self.odo_m as f64 + self.odo_frac) / 1000.0;
        let Some(a) = self.ageing.as_mut() else {
            return self.charge_kw;
        };
        a.soh = (a.soh - a.cal_pp_per_ms * dt_ms as f64 - a.cyc_pp_per_m * dist_m).max(1.0);
        self.capacity_wh = a.nominal_wh * a.soh / 100.0;
        self.remaining_wh = self.remaining_wh.min(self.capacity_wh);
        if ts >= a.next_trace_ms {
            a.trace.push(SohPoint {
                ts_ms: ts,
                odometer_km: odo_km,
                soh_pct: a.soh,
            });
            a.next_trace_ms = ts - ts.rem_euclid(HOUR_MS) + HOUR_MS;
        }
        let p_reset = -(-a.resets_per_day * dt_ms as f64 / DAY_MS_F).exp_m1();
        if dt_ms > 0 && self.health.gen_bool(p_reset.clamp(0.0, 1.0)) {
            self.used_wh = 0;
            a.resets.push(ts);
        }
        self.soc_noise = if a.noise_pp > 0.0 {
            self.health.gen_range(-a.noise_pp..a.noise_pp)
        } else {
            0.0
        };
        a.session_kw
    }

    /// The failure process at `ts` (before the status machine): due failure first.
    fn failure_due(&mut self, ts: i64, operating: bool) -> bool {
        let Some(f) = self.failures.as_mut() else {
            return false;
        };
        if f.failing || !operating || ts < f.next_failure.end_ms {
            return false;
        }
        let e = f.next_failure;
        f.failures.push(FailureRecord {
            ts_ms: ts,
            code: FAULT_CODES[FAILURE_CODES[e.code]].to_string(),
            precursor_peak_per_day: e.peak_per_day,
            weak: e.weak,
        });
        f.failing = true;
        let repair_h = draw(&mut self.health, f.m.repair_hours).max(0.0);
        f.repair_ms = (repair_h * HOUR_MS as f64) as i64;
        f.next_failure = f.next_failure_after(&mut self.health, ts + f.repair_ms);
        self.faults = 1 << FAILURE_CODES[e.code];
        true
    }

    /// Precursor warnings over one step (after the status machine).
    fn precursors(&mut self, ts: i64, dt_ms: i64) {
        self.warn = 0;
        let Some(f) = self.failures.as_mut() else {
            return;
        };
        if ts > f.next_false.end_ms {
            f.false_episodes.push(f.next_false.end_ms);
            f.next_false = f.next_false_after(&mut self.health, ts);
        }
        if dt_ms <= 0 || matches!(self.status, VehicleStatus::Offline) {
            return;
        }
        let rate = f.rate_per_day(ts);
        let p = -(-rate * dt_ms as f64 / DAY_MS_F).exp_m1();
        if !self.health.gen_bool(p.clamp(0.0, 1.0)) {
            return;
        }
        f.warnings += 1;
        // The warning announces the failure whose ramp dominates (or the coming one).
        let code = if f.ramp(&f.next_false, ts) > f.ramp(&f.next_failure, ts) {
            f.next_false.code
        } else {
            f.next_failure.code
        };
        let set: &[usize] = if code == 0 {
            &HVB_PRECURSORS
        } else {
            &DRIVE_PRECURSORS
        };
        let bit = 1 << set[self.health.gen_range(0..set.len())];
        let intermittent = self
            .health
            .gen_bool(f.m.intermittent_fault_share.clamp(0.0, 1.0));
        let operating = matches!(
            self.status,
            VehicleStatus::Idle | VehicleStatus::EnRoute | VehicleStatus::OnMission
        );
        if intermittent && operating {
            self.faults = bit;
            self.enter(VehicleStatus::Fault);
        } else {
            self.warn = bit;
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

        let charge_kw = self.age(ts, dt_ms, dist_m);

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
            self.remaining_wh = (self.remaining_wh + charge_kw * dt_s / 3.6).min(self.capacity_wh);
        }

        // Status machine.
        self.dwell_ms -= dt_ms;
        let operating = matches!(
            self.status,
            VehicleStatus::Idle | VehicleStatus::EnRoute | VehicleStatus::OnMission
        );
        if self.failure_due(ts, operating) {
            self.enter(VehicleStatus::Fault);
        } else if operating && self.energy_pct() < 2.0 {
            self.faults = 1 << BATTERY_FAULT;
            self.enter(VehicleStatus::Fault);
        } else if operating
            && dt_s > 0.0
            && self
                .phys
                .gen_bool((self.fault_hazard_per_s * dt_s).min(1.0))
        {
            self.enter(VehicleStatus::Fault);
        } else if self.dwell_ms <= 0 {
            self.transition();
        }
        self.precursors(ts, dt_ms);

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
            energy_pct: round_to((self.energy_pct() + self.soc_noise).clamp(0.0, 100.0), 2),
            status: self.status,
            mission_no: self.mission_no,
            payload_kg: self.payload_kg,
            faults: self.faults | self.warn,
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
            zone_id: snap.zone.map(|z| zone_id(&self.fleet_id, z as usize)),
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
                if let Some(a) = self.ageing.as_mut() {
                    let dc = self.health.gen_bool(a.dc_share);
                    a.session_kw = draw(&mut self.health, if dc { a.dc_kw } else { a.ac_kw });
                    if dc {
                        a.sessions.1 += 1;
                    } else {
                        a.sessions.0 += 1;
                    }
                }
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
                if let Some(f) = self.failures.as_mut().filter(|f| f.failing) {
                    // A failure: repaired in maintenance.
                    f.failing = false;
                    let repair_ms = f.repair_ms;
                    self.faults = 0;
                    self.enter(VehicleStatus::Maintenance);
                    self.dwell_ms = repair_ms;
                    return;
                }
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

// ---------------------------------------------------------------------------------------------
// Opt-in ground truth: battery ageing and failures with precursors.
// ---------------------------------------------------------------------------------------------

const HOUR_MS: i64 = 3_600_000;
const DAY_MS_F: f64 = 86_400_000.0;
const DAYS_PER_YEAR: f64 = 365.2425;
/// Days in a month, on average (365.2425 / 12).
const MONTH_DAYS: f64 = DAYS_PER_YEAR / 12.0;
/// Precursor warning codes, by the failure they announce (indices into [`FAULT_CODES`]).
const HVB_PRECURSORS: [usize; 2] = [6, 7];
const DRIVE_PRECURSORS: [usize; 1] = [8];
/// Failure codes (indices into [`FAULT_CODES`]): high-voltage battery, drive unit.
const FAILURE_CODES: [usize; 2] = [9, 10];

fn draw(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo {
        rng.gen_range(lo..hi)
    } else {
        lo
    }
}

/// Exponential variate with the given mean (days), in ms.
fn exp_ms(rng: &mut ChaCha8Rng, mean_days: f64) -> i64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    (-u.ln() * mean_days.max(1e-6) * DAY_MS_F) as i64
}

/// Battery ageing and charging habits, per vehicle (ranges are drawn uniformly per vehicle
/// from the seed). The vehicle's nominal capacity is the one it already has (50–90 kWh); its
/// usable capacity is `nominal × SoH / 100`, and the reported `energy_pct` and the cumulative
/// `energy_used_kwh` are both measured against it.
///
/// State of health falls with time (calendar fade) and with distance (cycle fade, faster with
/// a higher share of DC fast charging sessions):
/// `dSoH = −acceleration × (calendar/day × dt + cycle/1,000 km × (1 + dc_fast_fade_factor ×
/// dc_fast_share) × dkm)`. At this simulator's mileage (about 11,000 km a month with 5-minute
/// samples) the defaults give 1.5–3.4 %/year, about 2.4 %/year on average and 3 %/year at an
/// 80 % DC fast share (Geotab's study of 22,700 EVs: 2.3 %/year on average, up to 3.0 %/year
/// with heavy DC fast charging); `acceleration` > 1 time-lapses the ageing for tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatteryModel {
    /// Multiplies every fade rate (1.0: real time).
    pub acceleration: f64,
    /// State of health at the start, %.
    pub soh0_pct: (f64, f64),
    /// Calendar fade, percentage points per year.
    pub calendar_pp_per_year: (f64, f64),
    /// Cycle fade without DC fast charging, percentage points per 1,000 km.
    pub cycle_pp_per_1000_km: (f64, f64),
    /// Share of charging sessions at a DC fast charger (the vehicle's habit).
    pub dc_fast_share: (f64, f64),
    /// Cycle fade × (1 + factor × DC fast share).
    pub dc_fast_fade_factor: f64,
    /// Charging power of AC and of DC fast sessions, kW.
    pub ac_kw: (f64, f64),
    pub dc_kw: (f64, f64),
    /// Reported state of charge: true value + uniform noise of ± this many percentage points.
    pub soc_noise_pp: f64,
    /// Chance per day that the energy counter resets to zero (telematics unit swapped).
    pub counter_resets_per_day: f64,
}

impl Default for BatteryModel {
    fn default() -> Self {
        BatteryModel {
            acceleration: 1.0,
            soh0_pct: (92.0, 100.0),
            calendar_pp_per_year: (0.75, 1.05),
            cycle_pp_per_1000_km: (0.0055, 0.0075),
            dc_fast_share: (0.0, 0.8),
            dc_fast_fade_factor: 1.6,
            ac_kw: (7.0, 22.0),
            dc_kw: (50.0, 150.0),
            soc_noise_pp: 0.3,
            counter_resets_per_day: 0.01,
        }
    }
}

/// One point of a vehicle's true state-of-health trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SohPoint {
    pub ts_ms: i64,
    pub odometer_km: f64,
    pub soh_pct: f64,
}

/// The generator's truth about one vehicle's battery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatteryTruth {
    pub vehicle_id: String,
    pub nominal_kwh: f64,
    pub soh0_pct: f64,
    pub dc_fast_share: f64,
    /// Effective rates (acceleration included): calendar fade per month, and cycle fade per
    /// 1,000 km (DC fast charging included).
    pub calendar_pp_per_month: f64,
    pub cycle_pp_per_1000_km: f64,
    pub acceleration: f64,
    pub soh_now_pct: f64,
    /// The true state of health at the first sample of every hour (and at the latest sample).
    pub trace: Vec<SohPoint>,
    /// Charging sessions started: AC, DC fast.
    pub sessions: (u32, u32),
    /// Sample times at which the energy counter was reset to zero.
    pub counter_resets_ms: Vec<i64>,
}

impl BatteryTruth {
    /// The true state of health at `ts_ms`, linear between trace points (`None` outside it).
    pub fn soh_at(&self, ts_ms: i64) -> Option<f64> {
        let i = self.trace.partition_point(|p| p.ts_ms <= ts_ms);
        if i == 0 {
            return None;
        }
        let a = self.trace[i - 1];
        if a.ts_ms == ts_ms {
            return Some(a.soh_pct);
        }
        let b = self.trace.get(i)?;
        let f = (ts_ms - a.ts_ms) as f64 / (b.ts_ms - a.ts_ms) as f64;
        Some(a.soh_pct + f * (b.soh_pct - a.soh_pct))
    }
}

struct Ageing {
    nominal_wh: f64,
    soh0: f64,
    soh: f64,
    dc_share: f64,
    cal_pp_per_ms: f64,
    cyc_pp_per_m: f64,
    acceleration: f64,
    session_kw: f64,
    noise_pp: f64,
    resets_per_day: f64,
    ac_kw: (f64, f64),
    dc_kw: (f64, f64),
    sessions: (u32, u32),
    resets: Vec<i64>,
    trace: Vec<SohPoint>,
    next_trace_ms: i64,
}

/// Failures with precursor warnings, per vehicle (drawn from the seed).
///
/// Each vehicle has a frailty `f` (uniform in `frailty`). Failures form a renewal process:
/// the next one comes an exponential time with mean `mtbf_days / f` after the last repair
/// (`repair_hours`) ends; it is a `fault` with a failure code (`F-HVB` or `F-DRIVE`) followed
/// by maintenance for the repair. Precursor warnings (`W-P0A80`, `W-ISO-RES` before a battery
/// failure, `W-MOT-TEMP` before a drive failure) arrive as a Poisson process whose rate per day
/// is a background (uniform in `background_per_day`) plus, in the `ramp_days` before a failure,
/// `peak × exp(−days to failure / ramp_tau_days)` with `peak` uniform in `peak_per_day`, and
/// `peak × weak_factor` for a share `weak_share` of failures (weak precursors). Episodes of the
/// same ramp that end without a failure come on average every `false_episode_mean_days`
/// (peaks scaled by 0.3–1.0): precursors without a failure. A warning is reported on the
/// sample's `fault_codes` while the status stays as it is, or, with chance
/// `intermittent_fault_share` while operating, as a brief `fault` carrying the warning code.
/// Ordinary faults keep coming at `nuisance_fault_scale × f` times the default hazard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureModel {
    pub mtbf_days: f64,
    pub frailty: (f64, f64),
    pub repair_hours: (f64, f64),
    pub background_per_day: (f64, f64),
    pub ramp_days: f64,
    pub ramp_tau_days: f64,
    pub peak_per_day: (f64, f64),
    pub weak_share: f64,
    pub weak_factor: f64,
    pub false_episode_mean_days: f64,
    pub intermittent_fault_share: f64,
    pub nuisance_fault_scale: f64,
}

impl Default for FailureModel {
    fn default() -> Self {
        FailureModel {
            mtbf_days: 240.0,
            frailty: (0.5, 2.0),
            repair_hours: (4.0, 48.0),
            background_per_day: (0.05, 0.5),
            ramp_days: 21.0,
            ramp_tau_days: 6.0,
            peak_per_day: (4.0, 12.0),
            weak_share: 0.15,
            weak_factor: 0.1,
            false_episode_mean_days: 60.0,
            intermittent_fault_share: 0.3,
            nuisance_fault_scale: 0.01,
        }
    }
}

/// One failure as generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The sample at which the vehicle entered `fault` with the failure code.
    pub ts_ms: i64,
    pub code: String,
    /// Peak precursor rate of its ramp, warnings per day.
    pub precursor_peak_per_day: f64,
    pub weak: bool,
}

/// The generator's truth about one vehicle's failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureTruth {
    pub vehicle_id: String,
    pub frailty: f64,
    pub background_per_day: f64,
    pub failures: Vec<FailureRecord>,
    /// Ends of the precursor episodes that did not lead to a failure.
    pub false_episodes_ms: Vec<i64>,
    /// Precursor warnings reported (on samples or as intermittent faults).
    pub warnings: u64,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    end_ms: i64,
    peak_per_day: f64,
    weak: bool,
    code: usize,
}

struct Failures {
    m: FailureModel,
    frailty: f64,
    background_per_day: f64,
    next_failure: Episode,
    next_false: Episode,
    /// A failure fault is in progress: its repair follows.
    failing: bool,
    repair_ms: i64,
    failures: Vec<FailureRecord>,
    false_episodes: Vec<i64>,
    warnings: u64,
}

impl Failures {
    fn episode(&self, rng: &mut ChaCha8Rng, end_ms: i64, failure: bool) -> Episode {
        let mut peak = draw(rng, self.m.peak_per_day);
        let weak = failure && rng.gen_bool(self.m.weak_share.clamp(0.0, 1.0));
        if weak {
            peak *= self.m.weak_factor;
        }
        if !failure {
            peak *= rng.gen_range(0.3..1.0);
        }
        Episode {
            end_ms,
            peak_per_day: peak,
            weak,
            code: rng.gen_range(0..FAILURE_CODES.len()),
        }
    }

    fn next_failure_after(&self, rng: &mut ChaCha8Rng, from_ms: i64) -> Episode {
        let gap = exp_ms(rng, self.m.mtbf_days / self.frailty);
        self.episode(rng, from_ms + gap, true)
    }

    fn next_false_after(&self, rng: &mut ChaCha8Rng, from_ms: i64) -> Episode {
        let gap = exp_ms(rng, self.m.false_episode_mean_days);
        self.episode(rng, from_ms + gap, false)
    }

    fn ramp(&self, e: &Episode, ts: i64) -> f64 {
        let ahead_days = (e.end_ms - ts) as f64 / DAY_MS_F;
        if (0.0..=self.m.ramp_days).contains(&ahead_days) {
            e.peak_per_day * (-ahead_days / self.m.ramp_tau_days.max(1e-6)).exp()
        } else {
            0.0
        }
    }

    /// Precursor warnings per day at `ts`.
    fn rate_per_day(&self, ts: i64) -> f64 {
        self.background_per_day
            + self.ramp(&self.next_failure, ts)
            + self.ramp(&self.next_false, ts)
    }
}
