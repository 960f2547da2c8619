//! Wire shapes shared by the window endpoints: raw counters and the ratios derived from them
//! (computed with the core [`Counters`] methods, so the API and the pipelines agree).

use atlasmesh_core::window::Counters;
use serde::Serialize;
use utoipa::ToSchema;

/// The additive window counters, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CounterValues {
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
}

impl From<&Counters> for CounterValues {
    fn from(c: &Counters) -> Self {
        CounterValues {
            samples: c.samples,
            observed_ms: c.observed_ms,
            busy_ms: c.busy_ms,
            available_ms: c.available_ms,
            idle_ms: c.idle_ms,
            charging_ms: c.charging_ms,
            maintenance_ms: c.maintenance_ms,
            fault_ms: c.fault_ms,
            offline_ms: c.offline_ms,
            distance_m: c.distance_m,
            energy_wh: c.energy_wh,
            moving_samples: c.moving_samples,
            moving_speed_ckph_sum: c.moving_speed_ckph_sum,
            fault_count: c.fault_count,
            mission_count: c.mission_count,
            active_vehicles: c.active_vehicles,
            vehicles: c.vehicles,
        }
    }
}

/// Ratios and unit conversions of the counters; `null` where undefined (no observed time, no
/// distance, no moving samples).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Derived {
    /// busy_ms / observed_ms.
    pub utilization: Option<f64>,
    /// available_ms / observed_ms.
    pub availability: Option<f64>,
    /// idle_ms / observed_ms.
    pub idle_share: Option<f64>,
    pub distance_km: f64,
    pub energy_kwh: f64,
    /// energy_wh / distance_m (= kWh per km).
    pub kwh_per_km: Option<f64>,
    /// Mean speed of the samples taken while moving, km/h.
    pub avg_moving_speed_kph: Option<f64>,
}

impl From<&Counters> for Derived {
    fn from(c: &Counters) -> Self {
        Derived {
            utilization: c.utilization(),
            availability: c.availability(),
            idle_share: c.idle_share(),
            distance_km: c.distance_km(),
            energy_kwh: c.energy_kwh(),
            kwh_per_km: c.kwh_per_km(),
            avg_moving_speed_kph: c.avg_moving_speed_kph(),
        }
    }
}
