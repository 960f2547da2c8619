use serde::{Deserialize, Serialize};

use crate::telemetry::VehicleStatus;

/// Calls `$callback! { [name: type, ...] args... }` with the window counters in column order:
/// the one list every shape of the counters is generated from ([`Counters`], the ClickHouse
/// window rows, the Avro `WindowMetrics` record, the API views). Adding a counter here (and to
/// the Avro schema and the ClickHouse migrations, which tests compare with this list) is all it
/// takes; the order is the column order of those wire formats.
///
/// ```
/// macro_rules! names {
///     ([$($name:ident : $ty:ty),* $(,)?]) => { [$(stringify!($name)),*] };
/// }
/// let names = atlasmesh_core::for_each_window_counter!(names);
/// assert_eq!(names, atlasmesh_core::window::Counters::FIELDS);
/// ```
#[macro_export]
macro_rules! for_each_window_counter {
    ($callback:ident $(, $($args:tt)*)?) => {
        $callback! {
            [
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
            ]
            $($($args)*)?
        }
    };
}

macro_rules! counters {
    ([$($name:ident : $ty:ty),* $(,)?]) => {
        /// Additive window counters. Every field is an integer so sums are exact and order-free.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Counters {
            $(pub $name: $ty,)*
        }

        impl Counters {
            /// The counter names, in column order (see [`crate::for_each_window_counter!`]).
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($name)),*];

            pub fn add(&mut self, o: &Counters) {
                $(self.$name += o.$name;)*
            }
        }
    };
}

for_each_window_counter!(counters);

impl Counters {
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

#[cfg(test)]
mod tests {
    use super::Counters;

    /// The serialised counters (checkpoints, the API) have exactly the listed names, in order.
    #[test]
    fn fields_are_the_struct_fields_in_order() {
        let v = serde_json::to_value(Counters::default()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut sorted = Counters::FIELDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert_eq!(Counters::FIELDS.len(), 17);
        assert_eq!(Counters::FIELDS.first(), Some(&"samples"));
        assert_eq!(Counters::FIELDS.last(), Some(&"vehicles"));
    }
}
