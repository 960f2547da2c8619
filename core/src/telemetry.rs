//! The telemetry event as it travels on `fleet.telemetry.v1`, and its validation.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Operational status a vehicle reports with each sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VehicleStatus {
    Offline,
    Idle,
    EnRoute,
    OnMission,
    Charging,
    Maintenance,
    Fault,
}

impl VehicleStatus {
    pub const ALL: [VehicleStatus; 7] = [
        VehicleStatus::Offline,
        VehicleStatus::Idle,
        VehicleStatus::EnRoute,
        VehicleStatus::OnMission,
        VehicleStatus::Charging,
        VehicleStatus::Maintenance,
        VehicleStatus::Fault,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VehicleStatus::Offline => "offline",
            VehicleStatus::Idle => "idle",
            VehicleStatus::EnRoute => "en_route",
            VehicleStatus::OnMission => "on_mission",
            VehicleStatus::Charging => "charging",
            VehicleStatus::Maintenance => "maintenance",
            VehicleStatus::Fault => "fault",
        }
    }

    pub fn parse(s: &str) -> Option<VehicleStatus> {
        VehicleStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Counts towards utilization: the vehicle is doing productive work.
    pub fn is_busy(self) -> bool {
        matches!(self, VehicleStatus::EnRoute | VehicleStatus::OnMission)
    }

    /// Counts towards availability: the vehicle could be dispatched.
    pub fn is_available(self) -> bool {
        !matches!(
            self,
            VehicleStatus::Maintenance | VehicleStatus::Fault | VehicleStatus::Offline
        )
    }
}

/// One telemetry sample. Field names and types match `schemas/avro/fleet.telemetry.v1.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryEvent {
    pub event_id: String,
    pub fleet_id: String,
    pub vehicle_id: String,
    /// Event time, epoch milliseconds.
    pub ts_ms: i64,
    /// Per-vehicle sequence number, increasing with ts_ms.
    pub seq: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_kph: f64,
    /// Cumulative odometer, km (metre resolution).
    pub odometer_km: f64,
    pub energy_pct: f64,
    /// Cumulative energy drawn from the battery, kWh (Wh resolution).
    pub energy_used_kwh: f64,
    pub status: VehicleStatus,
    pub mission_id: Option<String>,
    pub zone_id: Option<String>,
    pub payload_kg: f64,
    pub fault_codes: Vec<String>,
}

/// The blank event a decoder starts from (and a reused buffer is overwritten into): empty
/// text, zeros, `Offline`, and the reader schema's defaults for the fields that have one (no
/// mission, no zone, no fault codes).
impl Default for TelemetryEvent {
    fn default() -> Self {
        TelemetryEvent {
            event_id: String::new(),
            fleet_id: String::new(),
            vehicle_id: String::new(),
            ts_ms: 0,
            seq: 0,
            lat: 0.0,
            lon: 0.0,
            speed_kph: 0.0,
            odometer_km: 0.0,
            energy_pct: 0.0,
            energy_used_kwh: 0.0,
            status: VehicleStatus::Offline,
            mission_id: None,
            zone_id: None,
            payload_kg: 0.0,
            fault_codes: Vec::new(),
        }
    }
}

/// Bounds used by [`validate`].
#[derive(Debug, Clone, Copy)]
pub struct ValidationLimits {
    /// Events more than this far ahead of the processing clock are rejected.
    pub max_future_ms: i64,
    /// Events older than this absolute epoch are rejected (clock never set).
    pub min_ts_ms: i64,
    pub max_speed_kph: f64,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        ValidationLimits {
            max_future_ms: 5 * 60_000,
            // 2000-01-01T00:00:00Z
            min_ts_ms: 946_684_800_000,
            max_speed_kph: 400.0,
        }
    }
}

fn finite(name: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidEvent(format!(
            "{name} is not a finite number"
        )))
    }
}

/// Checks an event's values. `now_ms` is the processing clock, used only for the
/// far-future bound.
pub fn validate(ev: &TelemetryEvent, now_ms: i64, limits: &ValidationLimits) -> Result<()> {
    if ev.event_id.is_empty() || ev.fleet_id.is_empty() || ev.vehicle_id.is_empty() {
        return Err(Error::InvalidEvent(
            "event_id, fleet_id and vehicle_id must not be empty".into(),
        ));
    }
    for (name, v) in [
        ("lat", ev.lat),
        ("lon", ev.lon),
        ("speed_kph", ev.speed_kph),
        ("odometer_km", ev.odometer_km),
        ("energy_pct", ev.energy_pct),
        ("energy_used_kwh", ev.energy_used_kwh),
        ("payload_kg", ev.payload_kg),
    ] {
        finite(name, v)?;
    }
    if !(-90.0..=90.0).contains(&ev.lat) || !(-180.0..=180.0).contains(&ev.lon) {
        return Err(Error::InvalidEvent("lat/lon out of range".into()));
    }
    if ev.speed_kph < 0.0 || ev.speed_kph > limits.max_speed_kph {
        return Err(Error::InvalidEvent(format!(
            "speed_kph {} outside 0..={}",
            ev.speed_kph, limits.max_speed_kph
        )));
    }
    if ev.odometer_km < 0.0 {
        return Err(Error::InvalidEvent("negative odometer_km".into()));
    }
    if ev.energy_used_kwh < 0.0 {
        return Err(Error::InvalidEvent("negative energy_used_kwh".into()));
    }
    if !(0.0..=100.0).contains(&ev.energy_pct) {
        return Err(Error::InvalidEvent("energy_pct outside 0..=100".into()));
    }
    if ev.payload_kg < 0.0 {
        return Err(Error::InvalidEvent("negative payload_kg".into()));
    }
    if ev.ts_ms < limits.min_ts_ms {
        return Err(Error::InvalidEvent(format!(
            "ts_ms {} is before 2000-01-01",
            ev.ts_ms
        )));
    }
    if ev.ts_ms > now_ms + limits.max_future_ms {
        return Err(Error::InvalidEvent(format!(
            "ts_ms {} is more than {} ms in the future",
            ev.ts_ms, limits.max_future_ms
        )));
    }
    if ev.seq < 0 {
        return Err(Error::InvalidEvent("negative seq".into()));
    }
    Ok(())
}

/// Kilometres to whole metres, the resolution the kernels count in.
pub fn km_to_m(km: f64) -> i64 {
    (km * 1000.0).round() as i64
}

/// kWh to whole Wh.
pub fn kwh_to_wh(kwh: f64) -> i64 {
    (kwh * 1000.0).round() as i64
}

/// km/h to hundredths of km/h.
pub fn kph_to_ckph(kph: f64) -> i64 {
    (kph * 100.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> TelemetryEvent {
        TelemetryEvent {
            event_id: "e1".into(),
            fleet_id: "f1".into(),
            vehicle_id: "v1".into(),
            ts_ms: 1_700_000_000_000,
            seq: 1,
            lat: 52.0,
            lon: 13.0,
            speed_kph: 30.0,
            odometer_km: 100.0,
            energy_pct: 80.0,
            energy_used_kwh: 12.5,
            status: VehicleStatus::EnRoute,
            mission_id: None,
            zone_id: None,
            payload_kg: 0.0,
            fault_codes: vec![],
        }
    }

    #[test]
    fn accepts_a_sane_event() {
        validate(&sample(), 1_700_000_000_000, &ValidationLimits::default()).unwrap();
    }

    #[test]
    fn rejects_nan_negative_energy_and_future() {
        let lim = ValidationLimits::default();
        let now = 1_700_000_000_000;
        let mut e = sample();
        e.speed_kph = f64::NAN;
        assert!(validate(&e, now, &lim)
            .unwrap_err()
            .to_string()
            .contains("speed_kph"));
        let mut e = sample();
        e.energy_used_kwh = -1.0;
        assert!(validate(&e, now, &lim)
            .unwrap_err()
            .to_string()
            .contains("energy_used_kwh"));
        let mut e = sample();
        e.ts_ms = now + 10 * 60_000;
        assert!(validate(&e, now, &lim)
            .unwrap_err()
            .to_string()
            .contains("future"));
    }

    #[test]
    fn status_round_trips() {
        for s in VehicleStatus::ALL {
            assert_eq!(VehicleStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(VehicleStatus::parse("flying"), None);
    }

    #[test]
    fn unit_conversions_round_to_resolution() {
        assert_eq!(km_to_m(1.2345), 1235);
        assert_eq!(kwh_to_wh(0.0004), 0);
        assert_eq!(kph_to_ckph(42.129), 4213);
    }
}
