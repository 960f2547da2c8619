use atlasmesh_core::window::{Counters, WindowResult};
use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use serde::Serialize;

fn status_code(s: VehicleStatus) -> i8 {
    match s {
        VehicleStatus::Offline => 0,
        VehicleStatus::Idle => 1,
        VehicleStatus::EnRoute => 2,
        VehicleStatus::OnMission => 3,
        VehicleStatus::Charging => 4,
        VehicleStatus::Maintenance => 5,
        VehicleStatus::Fault => 6,
    }
}

/// Row of `telemetry_raw` (migrations/clickhouse/0001_telemetry.sql).
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct RawTelemetryRow {
    pub event_id: String,
    pub fleet_id: String,
    pub vehicle_id: String,
    /// DateTime('UTC') as epoch seconds.
    pub ts: u32,
    pub ts_ms: i64,
    pub seq: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_kph: f64,
    pub odometer_km: f64,
    pub energy_pct: f64,
    pub energy_used_kwh: f64,
    /// Enum8 code.
    pub status: i8,
    pub mission_id: String,
    pub zone_id: String,
    pub payload_kg: f64,
    pub fault_codes: Vec<String>,
    pub source_partition: i32,
    pub source_offset: i64,
    pub ingested_at_ms: i64,
}

impl RawTelemetryRow {
    pub fn from_event(e: &TelemetryEvent, partition: i32, offset: i64) -> Self {
        RawTelemetryRow {
            event_id: e.event_id.clone(),
            fleet_id: e.fleet_id.clone(),
            vehicle_id: e.vehicle_id.clone(),
            ts: (e.ts_ms.div_euclid(1000)).clamp(0, u32::MAX as i64) as u32,
            ts_ms: e.ts_ms,
            seq: e.seq,
            lat: e.lat,
            lon: e.lon,
            speed_kph: e.speed_kph,
            odometer_km: e.odometer_km,
            energy_pct: e.energy_pct,
            energy_used_kwh: e.energy_used_kwh,
            status: status_code(e.status),
            mission_id: e.mission_id.clone().unwrap_or_default(),
            zone_id: e.zone_id.clone().unwrap_or_default(),
            payload_kg: e.payload_kg,
            fault_codes: e.fault_codes.clone(),
            source_partition: partition,
            source_offset: offset,
            ingested_at_ms: 0,
        }
    }
}

macro_rules! window_row {
    ($(#[$m:meta])* $name:ident { $($extra:ident : $ty:ty),* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, clickhouse::Row, Serialize)]
        pub struct $name {
            pub fleet_id: String,
            $(pub $extra: $ty,)*
            pub window_start: u32,
            pub window_start_ms: i64,
            pub window_end_ms: i64,
            pub version: u32,
            pub source_partition: i32,
            pub samples: u64,
            pub observed_ms: u64,
            pub busy_ms: u64,
            pub available_ms: u64,
            pub idle_ms: u64,
            pub charging_ms: u64,
            pub maintenance_ms: u64,
            pub fault_ms: u64,
            pub offline_ms: u64,
            pub distance_m: u64,
            pub energy_wh: u64,
            pub moving_samples: u64,
            pub moving_speed_ckph_sum: u64,
            pub fault_count: u64,
            pub mission_count: u64,
            pub active_vehicles: u64,
            pub vehicles: u64,
            pub emitted_at_ms: i64,
        }

        impl $name {
            fn fill(r: &WindowResult, partition: i32, $($extra: $ty),*) -> Self {
                let Counters {
                    samples, observed_ms, busy_ms, available_ms, idle_ms, charging_ms, maintenance_ms,
                    fault_ms, offline_ms, distance_m, energy_wh, moving_samples, moving_speed_ckph_sum,
                    fault_count, mission_count, active_vehicles, vehicles,
                } = r.counters.clone();
                $name {
                    fleet_id: r.fleet_id.clone(),
                    $($extra,)*
                    window_start: (r.window_start_ms / 1000) as u32,
                    window_start_ms: r.window_start_ms,
                    window_end_ms: r.window_end_ms,
                    version: r.version,
                    source_partition: partition,
                    samples, observed_ms, busy_ms, available_ms, idle_ms, charging_ms, maintenance_ms,
                    fault_ms, offline_ms, distance_m, energy_wh, moving_samples, moving_speed_ckph_sum,
                    fault_count, mission_count, active_vehicles, vehicles,
                    emitted_at_ms: 0,
                }
            }
        }
    };
}

window_row!(
    /// Row of `vehicle_window_metrics`.
    VehicleWindowRow { vehicle_id: String }
);
window_row!(
    /// Row of `fleet_window_partials`.
    FleetPartialRow {}
);

impl VehicleWindowRow {
    pub fn from_result(r: &WindowResult, partition: i32) -> Self {
        Self::fill(r, partition, r.vehicle_id.clone())
    }
}

impl FleetPartialRow {
    pub fn from_result(r: &WindowResult, partition: i32) -> Self {
        Self::fill(r, partition)
    }
}
