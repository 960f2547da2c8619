//! Macros shared by the ClickHouse readers of the API.

/// Declares a ClickHouse row struct ending in the counter columns, plus its `counters()`.
macro_rules! counter_row {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Debug, ::clickhouse::Row, ::serde::Deserialize)]
        struct $name {
            $($field: $ty,)*
            samples: u64,
            observed_ms: u64,
            busy_ms: u64,
            available_ms: u64,
            idle_ms: u64,
            charging_ms: u64,
            maintenance_ms: u64,
            fault_ms: u64,
            offline_ms: u64,
            distance_m: u64,
            energy_wh: u64,
            moving_samples: u64,
            moving_speed_ckph_sum: u64,
            fault_count: u64,
            mission_count: u64,
            active_vehicles: u64,
            vehicles: u64,
        }

        impl $name {
            fn counters(&self) -> ::atlasmesh_core::window::Counters {
                ::atlasmesh_core::window::Counters {
                    samples: self.samples,
                    observed_ms: self.observed_ms,
                    busy_ms: self.busy_ms,
                    available_ms: self.available_ms,
                    idle_ms: self.idle_ms,
                    charging_ms: self.charging_ms,
                    maintenance_ms: self.maintenance_ms,
                    fault_ms: self.fault_ms,
                    offline_ms: self.offline_ms,
                    distance_m: self.distance_m,
                    energy_wh: self.energy_wh,
                    moving_samples: self.moving_samples,
                    moving_speed_ckph_sum: self.moving_speed_ckph_sum,
                    fault_count: self.fault_count,
                    mission_count: self.mission_count,
                    active_vehicles: self.active_vehicles,
                    vehicles: self.vehicles,
                }
            }
        }
    };
}
