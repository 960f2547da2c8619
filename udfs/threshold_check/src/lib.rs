//! Arroyo UDF `threshold_check(value, comparison, threshold, clear_threshold, was_active)`:
//! the alert condition with hysteresis, by [`atlasmesh_core::analytics::alert::condition`]. An
//! inactive subject (`was_active = 0`) becomes active when `value <comparison> threshold`; an
//! active one (`was_active != 0`) stays active until `value` clears `clear_threshold`. Returns
//! 1 (active) or 0 as `INT`.
//!
//! `comparison` is `gt`, `ge`, `lt` or `le` (or `>`, `>=`, `<`, `<=`); anything else, a
//! non-finite threshold, or a clear threshold on the firing side gives NULL. A NULL or NaN
//! value (no data) returns `was_active` unchanged. With `was_active = 0` this is the plain
//! threshold check that flags breaching windows in SQL; the `for` / `keep_firing_for` timers,
//! re-sends and the pager messages live in the alerts pipeline's state machine.

use arroyo_udf_plugin::udf;
use atlasmesh_core::analytics::alert::{condition, Comparison};

#[udf]
fn threshold_check(
    value: Option<f64>,
    comparison: &str,
    threshold: f64,
    clear_threshold: f64,
    was_active: i32,
) -> Option<i32> {
    let cmp = Comparison::parse(comparison)?;
    if !threshold.is_finite() || !clear_threshold.is_finite() {
        return None;
    }
    let wrong_side = if cmp.fires_above() {
        clear_threshold > threshold
    } else {
        clear_threshold < threshold
    };
    if wrong_side {
        return None;
    }
    let value = value.unwrap_or(f64::NAN);
    Some(i32::from(condition(
        cmp,
        threshold,
        clear_threshold,
        value,
        was_active != 0,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_threshold_and_hysteresis() {
        assert_eq!(threshold_check(Some(0.45), "lt", 0.5, 0.6, 0), Some(1));
        assert_eq!(threshold_check(Some(0.55), "lt", 0.5, 0.6, 0), Some(0));
        assert_eq!(
            threshold_check(Some(0.55), "lt", 0.5, 0.6, 1),
            Some(1),
            "band keeps it active"
        );
        assert_eq!(threshold_check(Some(0.60), "lt", 0.5, 0.6, 1), Some(0));
        assert_eq!(threshold_check(Some(95.0), ">=", 95.0, 90.0, 0), Some(1));
        assert_eq!(threshold_check(Some(92.0), "ge", 95.0, 90.0, 1), Some(1));
        assert_eq!(threshold_check(Some(89.0), "ge", 95.0, 90.0, 1), Some(0));
    }

    #[test]
    fn a_noisy_series_does_not_flap() {
        let series = [
            0.52, 0.48, 0.51, 0.47, 0.53, 0.46, 0.55, 0.58, 0.57, 0.61, 0.59,
        ];
        let mut active = 0;
        let mut changes = 0;
        for v in series {
            let next = threshold_check(Some(v), "lt", 0.5, 0.6, active).unwrap();
            changes += i32::from(next != active);
            active = next;
        }
        assert_eq!(changes, 2, "on at 0.48, off at 0.61");
        assert_eq!(active, 0);
    }

    #[test]
    fn nulls_and_invalid_rules() {
        assert_eq!(threshold_check(None, "lt", 0.5, 0.6, 1), Some(1));
        assert_eq!(threshold_check(Some(f64::NAN), "lt", 0.5, 0.6, 0), Some(0));
        assert_eq!(threshold_check(Some(0.1), "eq", 0.5, 0.6, 0), None);
        assert_eq!(
            threshold_check(Some(0.1), "lt", 0.5, 0.4, 0),
            None,
            "clear on the firing side"
        );
        assert_eq!(
            threshold_check(Some(0.1), "gt", f64::INFINITY, 0.4, 0),
            None
        );
    }
}
