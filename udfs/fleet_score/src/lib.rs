//! Arroyo UDF `fleet_score(...)`: the AtlasMesh performance score (0..100) of a window's
//! summed counters, by [`atlasmesh_core::analytics::score::score`] — the same definition as the
//! performance pipeline: efficiency from kWh/km against a reference, utilization share,
//! reliability from availability and faults per hour, safety from faults per 1000 km, cost from
//! energy per km × price, combined with the given weights over the defined components.
//!
//! The five weights are arguments (SQL literals from the pipeline's configuration) and are
//! validated and normalised by the kernel; the reference values are the kernel's defaults
//! ([`ScoreParams::default`]). NULL when an input is NULL or negative, the weights are invalid,
//! or no component is defined.

use arroyo_udf_plugin::udf;
use atlasmesh_core::analytics::score::{score, ScoreParams, ScoreWeights};
use atlasmesh_core::window::Counters;

#[allow(clippy::too_many_arguments)]
#[udf]
fn fleet_score(
    observed_ms: i64,
    busy_ms: i64,
    available_ms: i64,
    distance_m: i64,
    energy_wh: i64,
    fault_count: i64,
    w_efficiency: f64,
    w_utilization: f64,
    w_reliability: f64,
    w_safety: f64,
    w_cost: f64,
) -> Option<f64> {
    let u = |v: i64| u64::try_from(v).ok();
    let (observed_ms, busy_ms, available_ms) = (u(observed_ms)?, u(busy_ms)?, u(available_ms)?);
    if busy_ms > observed_ms || available_ms > observed_ms {
        return None;
    }
    let counters = Counters {
        observed_ms,
        busy_ms,
        available_ms,
        distance_m: u(distance_m)?,
        energy_wh: u(energy_wh)?,
        fault_count: u(fault_count)?,
        ..Counters::default()
    };
    let weights = ScoreWeights {
        efficiency: w_efficiency,
        utilization: w_utilization,
        reliability: w_reliability,
        safety: w_safety,
        cost: w_cost,
    };
    let params = ScoreParams {
        weights,
        ..ScoreParams::default()
    };
    score(&counters, &params).ok()?.total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_core_kernel() {
        // 10 vehicle-minutes, 60 % busy, 90 % available, 8 km on 2 kWh, no faults.
        let got = fleet_score(
            600_000, 360_000, 540_000, 8_000, 2_000, 0, 0.2, 0.2, 0.2, 0.2, 0.2,
        )
        .unwrap();
        // efficiency 80, utilization 60, reliability 90, safety 100, cost 70.
        assert!(
            (got - (80.0 + 60.0 + 90.0 + 100.0 + 70.0) / 5.0).abs() < 1e-9,
            "{got}"
        );
        // Weights are normalised: scaling them changes nothing.
        let scaled = fleet_score(
            600_000, 360_000, 540_000, 8_000, 2_000, 0, 2.0, 2.0, 2.0, 2.0, 2.0,
        )
        .unwrap();
        assert!((got - scaled).abs() < 1e-9);
        // Only utilization weighted.
        let only_util = fleet_score(
            600_000, 360_000, 540_000, 8_000, 2_000, 0, 0.0, 1.0, 0.0, 0.0, 0.0,
        )
        .unwrap();
        assert!((only_util - 60.0).abs() < 1e-9);
    }

    #[test]
    fn invalid_inputs_give_null() {
        assert_eq!(
            fleet_score(-1, 0, 0, 0, 0, 0, 1.0, 1.0, 1.0, 1.0, 1.0),
            None
        );
        assert_eq!(
            fleet_score(10, 20, 0, 0, 0, 0, 1.0, 1.0, 1.0, 1.0, 1.0),
            None,
            "busy > observed"
        );
        assert_eq!(
            fleet_score(10, 5, 5, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0),
            None,
            "all weights 0"
        );
        assert_eq!(
            fleet_score(10, 5, 5, 0, 0, 0, -1.0, 1.0, 1.0, 1.0, 1.0),
            None,
            "negative weight"
        );
        assert_eq!(
            fleet_score(0, 0, 0, 0, 0, 0, 1.0, 1.0, 1.0, 1.0, 1.0),
            None,
            "nothing observed"
        );
    }
}
