use serde::{Deserialize, Serialize};

use crate::telemetry::VehicleStatus;

/// Additive window counters. Every field is an integer so sums are exact and order-free.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
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

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.samples += o.samples;
        self.observed_ms += o.observed_ms;
        self.busy_ms += o.busy_ms;
        self.available_ms += o.available_ms;
        self.idle_ms += o.idle_ms;
        self.charging_ms += o.charging_ms;
        self.maintenance_ms += o.maintenance_ms;
        self.fault_ms += o.fault_ms;
        self.offline_ms += o.offline_ms;
        self.distance_m += o.distance_m;
        self.energy_wh += o.energy_wh;
        self.moving_samples += o.moving_samples;
        self.moving_speed_ckph_sum += o.moving_speed_ckph_sum;
        self.fault_count += o.fault_count;
        self.mission_count += o.mission_count;
        self.active_vehicles += o.active_vehicles;
        self.vehicles += o.vehicles;
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0 && self.observed_ms == 0
    }

    pub(crate) fn add_status_time(&mut self, status: VehicleStatus, ms: u64) {
        self.observed_ms += ms;
        if status.is_busy() {
            self.busy_ms += ms;
        }
        if status.is_available() {
            self.available_ms += ms;
        }
        match status {
            VehicleStatus::Idle => self.idle_ms += ms,
            VehicleStatus::Charging => self.charging_ms += ms,
            VehicleStatus::Maintenance => self.maintenance_ms += ms,
            VehicleStatus::Fault => self.fault_ms += ms,
            VehicleStatus::Offline => self.offline_ms += ms,
            VehicleStatus::EnRoute | VehicleStatus::OnMission => {}
        }
    }

    fn share(part: u64, whole: u64) -> Option<f64> {
        (whole > 0).then(|| part as f64 / whole as f64)
    }

    pub fn utilization(&self) -> Option<f64> {
        Self::share(self.busy_ms, self.observed_ms)
    }

    pub fn availability(&self) -> Option<f64> {
        Self::share(self.available_ms, self.observed_ms)
    }

    pub fn idle_share(&self) -> Option<f64> {
        Self::share(self.idle_ms, self.observed_ms)
    }

    pub fn distance_km(&self) -> f64 {
        self.distance_m as f64 / 1000.0
    }

    pub fn energy_kwh(&self) -> f64 {
        self.energy_wh as f64 / 1000.0
    }

    /// kWh per km; `None` when the window has no distance.
    pub fn kwh_per_km(&self) -> Option<f64> {
        (self.distance_m > 0).then(|| self.energy_wh as f64 / self.distance_m as f64)
    }

    pub fn avg_moving_speed_kph(&self) -> Option<f64> {
        (self.moving_samples > 0)
            .then(|| self.moving_speed_ckph_sum as f64 / 100.0 / self.moving_samples as f64)
    }
}
