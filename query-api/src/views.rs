//! Wire shapes shared by the window endpoints: raw counters and the ratios derived from them
//! (computed with the core [`Counters`] methods, so the API and the pipelines agree).

use atlasmesh_core::window::Counters;
use serde::Serialize;
use utoipa::ToSchema;

/// `CounterValues`: the counters of [`atlasmesh_core::for_each_window_counter!`].
macro_rules! counter_values {
    ([$($counter:ident : $cty:ty),* $(,)?]) => {
        /// The additive window counters, as stored.
        #[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
        pub struct CounterValues {
            $(pub $counter: $cty,)*
        }

        impl From<&Counters> for CounterValues {
            fn from(c: &Counters) -> Self {
                CounterValues {
                    $($counter: c.$counter,)*
                }
            }
        }
    };
}

atlasmesh_core::for_each_window_counter!(counter_values);

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The API shows every counter under its own name.
    #[test]
    fn counter_values_carry_every_counter() {
        let c = Counters {
            samples: 1,
            vehicles: 2,
            ..Counters::default()
        };
        let v = serde_json::to_value(CounterValues::from(&c)).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut fields = Counters::FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys, fields);
        assert_eq!(
            (v["samples"].as_u64(), v["vehicles"].as_u64()),
            (Some(1), Some(2))
        );
    }
}
