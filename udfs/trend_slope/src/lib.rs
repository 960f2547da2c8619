//! Arroyo UDAF `trend_slope(ts_us, value)`: the ordinary least-squares slope of `value` over
//! time, in value units per hour, by [`atlasmesh_core::analytics::trend::fit`]. Use it over a
//! sliding (hop) window of closed fleet windows to get the trend of a metric, e.g.
//! `trend_slope(window_end_us, utilization)` over 30 minutes.
//!
//! Timestamps are `BIGINT` epoch microseconds, shifted to the earliest one before fitting (so
//! epoch magnitudes cost no precision). Rows where either argument is NULL or the value is not
//! finite are skipped pairwise. NULL when fewer than 3 points remain or all share one time.

use arroyo_udf_plugin::udf;
use atlasmesh_core::analytics::trend::fit;

const US_PER_HOUR: f64 = 3_600_000_000.0;

#[udf]
fn trend_slope(ts_us: Vec<Option<i64>>, value: Vec<Option<f64>>) -> Option<f64> {
    let pairs: Vec<(i64, f64)> = ts_us
        .iter()
        .zip(value.iter())
        .filter_map(|(t, v)| Some((*t.as_ref()?, *v.as_ref()?)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    let t0 = pairs.iter().map(|p| p.0).min()?;
    let points: Vec<(f64, f64)> = pairs
        .iter()
        .map(|&(t, v)| ((t - t0) as f64 / US_PER_HOUR, v))
        .collect();
    fit(&points).ok().map(|f| f.slope)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0_US: i64 = 1_717_200_000_000_000;
    const MIN_US: i64 = 60_000_000;

    #[test]
    fn slope_per_hour() {
        // +0.01 per minute = +0.6 per hour, in any row order.
        let ts: Vec<Option<i64>> = (0..10).rev().map(|i| Some(T0_US + i * MIN_US)).collect();
        let ys: Vec<Option<f64>> = (0..10).rev().map(|i| Some(0.5 + 0.01 * i as f64)).collect();
        let s = trend_slope(ts, ys).unwrap();
        assert!((s - 0.6).abs() < 1e-9, "{s}");
    }

    #[test]
    fn noisy_series_matches_the_kernel() {
        let ys = [0.55, 0.57, 0.56, 0.58, 0.60, 0.59, 0.61, 0.60];
        let ts: Vec<Option<i64>> = (0..8).map(|i| Some(T0_US + i * MIN_US)).collect();
        let s = trend_slope(ts, ys.iter().map(|&y| Some(y)).collect()).unwrap();
        let pts: Vec<(f64, f64)> = ys
            .iter()
            .enumerate()
            .map(|(i, &y)| (i as f64 / 60.0, y))
            .collect();
        assert!((s - fit(&pts).unwrap().slope).abs() < 1e-9);
    }

    #[test]
    fn too_few_or_degenerate_points_give_null() {
        assert_eq!(trend_slope(vec![], vec![]), None);
        assert_eq!(
            trend_slope(
                vec![Some(T0_US), Some(T0_US + MIN_US)],
                vec![Some(1.0), Some(2.0)]
            ),
            None
        );
        let same_t = vec![Some(T0_US); 3];
        assert_eq!(
            trend_slope(same_t, vec![Some(1.0), Some(2.0), Some(3.0)]),
            None
        );
        // NULL and NaN rows are dropped pairwise, leaving 2 points.
        let ts = vec![
            Some(T0_US),
            Some(T0_US + MIN_US),
            None,
            Some(T0_US + 3 * MIN_US),
        ];
        assert_eq!(
            trend_slope(ts, vec![Some(1.0), Some(f64::NAN), Some(5.0), Some(2.0)]),
            None
        );
    }
}
