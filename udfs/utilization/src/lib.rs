//! Arroyo UDAF `status_ms(ts_us, flag)`: the milliseconds of a vehicle's 1-minute window during
//! which a per-sample flag held, by the window kernel's segment rule
//! ([`atlasmesh_core::analytics::utilization::flagged_ms`]): each sample's flag holds until the
//! vehicle's next sample, at most [`MAX_GAP_MS`], split exactly at the window bounds.
//!
//! Use it per vehicle and tumbling window (`GROUP BY fleet_id, vehicle_id, tumble(...)`), once
//! per duration: `status_ms(ts_us, 1)` is `observed_ms`, `status_ms(ts_us, is_busy)` is
//! `busy_ms`, and fleet utilization is `sum(busy_ms) / sum(observed_ms)` over the fleet's
//! vehicles, exactly as the stream workers compute it. The window is the epoch-aligned
//! [`WINDOW_MS`] window of the group's earliest sample. One difference remains: a SQL group sees
//! only its own window's samples, so the time between the window start and the vehicle's first
//! sample in it (covered by the previous window's last sample in the workers) is not counted.
//!
//! Flags are `INT` (non-zero = set), timestamps `BIGINT` epoch microseconds. Rows with a NULL
//! timestamp or flag are skipped; a group without usable rows gives NULL.

use arroyo_udf_plugin::udf;
use atlasmesh_core::analytics::utilization::{flagged_ms, window_bounds};

/// Window length the workers use by default (`telemetry.window_ms`).
pub const WINDOW_MS: i64 = 60_000;
/// Longest time a status holds without a new sample (`telemetry.max_gap_ms`).
pub const MAX_GAP_MS: i64 = 60_000;

#[udf]
fn status_ms(ts_us: Vec<Option<i64>>, flag: Vec<Option<i32>>) -> Option<i64> {
    let points: Vec<(i64, bool)> = ts_us
        .iter()
        .zip(flag.iter())
        .filter_map(|(t, f)| Some((t.as_ref()?.div_euclid(1000), *f.as_ref()? != 0)))
        .collect();
    let first = points.iter().map(|p| p.0).min()?;
    let (start, end) = window_bounds(first, WINDOW_MS)?;
    i64::try_from(flagged_ms(&points, start, end, MAX_GAP_MS)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0_US: i64 = 1_717_200_000_000_000; // a window start, in microseconds

    #[test]
    fn busy_and_observed_time_of_a_window() {
        // 0 s busy, 20 s idle, 50 s busy (holds to the window end); input out of order.
        let ts = vec![
            Some(T0_US + 50_000_000),
            Some(T0_US),
            Some(T0_US + 20_000_000),
        ];
        assert_eq!(
            status_ms(ts.clone(), vec![Some(1), Some(1), Some(0)]),
            Some(30_000)
        );
        assert_eq!(
            status_ms(ts.clone(), vec![Some(1), Some(1), Some(1)]),
            Some(60_000)
        );
        assert_eq!(status_ms(ts, vec![Some(0), Some(0), Some(0)]), Some(0));
    }

    #[test]
    fn gaps_nulls_and_empty_groups() {
        // A 70 s silence: the first sample holds for MAX_GAP_MS only, clipped to the window.
        let ts = vec![Some(T0_US + 10_000_000), Some(T0_US + 80_000_000)];
        assert_eq!(status_ms(ts, vec![Some(1), Some(1)]), Some(50_000));
        // NULL rows are skipped pairwise.
        let ts = vec![Some(T0_US), None, Some(T0_US + 30_000_000)];
        assert_eq!(status_ms(ts, vec![Some(1), Some(1), None]), Some(60_000));
        assert_eq!(status_ms(vec![], vec![]), None);
        assert_eq!(status_ms(vec![None], vec![Some(1)]), None);
    }
}
