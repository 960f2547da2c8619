//! Utilization share from status durations, as standalone kernels over plain numbers and
//! samples (the Arroyo UDF `status_ms` and the score UDF call these).
//!
//! Nothing here re-implements the window kernel: the shares are [`Counters`]' own methods and
//! the status time of a window is the window kernel's segment rule (`window::vehicle_counters`),
//! so a status held by sample *i* lasts until the next sample, at most `max_gap_ms`, and is
//! split exactly at the window bounds.

use crate::telemetry::VehicleStatus;
use crate::window::{vehicle_counters, Counters, Sample};

/// utilization = `busy_ms / observed_ms` ∈ [0, 1] (what [`Counters::utilization`] computes).
///
/// `None` when nothing was observed (`observed_ms == 0`) or the input is inconsistent
/// (`busy_ms > observed_ms`), never NaN.
pub fn utilization(busy_ms: u64, observed_ms: u64) -> Option<f64> {
    if busy_ms > observed_ms {
        return None;
    }
    Counters {
        busy_ms,
        observed_ms,
        ..Counters::default()
    }
    .utilization()
}

/// Start and end of the tumbling window of length `window_ms` (> 0) that holds `ts_ms`
/// (windows are aligned to the epoch, as in the window kernel).
pub fn window_bounds(ts_ms: i64, window_ms: i64) -> Option<(i64, i64)> {
    if window_ms <= 0 {
        return None;
    }
    let start = ts_ms.div_euclid(window_ms) * window_ms;
    Some((start, start + window_ms))
}

/// Window counters of one vehicle's samples for `[window_start_ms, window_end_ms)`, by the
/// window kernel itself. The samples may come in any order and with duplicates: they are
/// sorted by `(ts, seq)` and a repeated `(ts, seq)` counts once (the first one), as the kernel
/// does on ingest.
///
/// Given every sample of the window plus the vehicle's last sample before it, the result is
/// exactly the window kernel's closed window. Given only the window's own samples (all a
/// stream SQL group has), the status time between the window start and the first sample is
/// missing, because the status that held then was reported by the previous window's last
/// sample.
pub fn vehicle_window_counters(
    mut samples: Vec<Sample>,
    window_start_ms: i64,
    window_end_ms: i64,
    max_gap_ms: i64,
) -> Counters {
    samples.sort_by_key(|s| (s.ts, s.seq));
    samples.dedup_by_key(|s| (s.ts, s.seq));
    vehicle_counters(&samples, window_start_ms, window_end_ms, max_gap_ms.max(0))
}

/// Milliseconds of `[window_start_ms, window_end_ms)` during which a per-sample flag held,
/// under the segment rule of the window kernel: `points` are `(ts_ms, flag)`, in any order;
/// each point's flag holds until the next point, at most `max_gap_ms`. With the flag "status is
/// en_route or on_mission" this is the window's `busy_ms`; with a constant `true` it is
/// `observed_ms`, and `utilization(busy, observed)` the vehicle's utilization. Points with the
/// same time keep their input order (the later one wins the segment).
pub fn flagged_ms(
    points: &[(i64, bool)],
    window_start_ms: i64,
    window_end_ms: i64,
    max_gap_ms: i64,
) -> u64 {
    let samples = points
        .iter()
        .enumerate()
        .map(|(i, &(ts, flag))| Sample {
            ts,
            seq: i as i64,
            // Busy statuses are exactly en_route and on_mission, so busy_ms is the flagged time.
            status: if flag {
                VehicleStatus::EnRoute
            } else {
                VehicleStatus::Idle
            },
            odometer_m: 0,
            energy_wh: 0,
            speed_ckph: 0,
            mission: None,
        })
        .collect();
    vehicle_window_counters(samples, window_start_ms, window_end_ms, max_gap_ms).busy_ms
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::telemetry::TelemetryEvent;
    use crate::window::{PartitionWindows, WindowParams, WindowScope};

    const T0: i64 = 1_700_000_040_000; // a window boundary

    #[test]
    fn utilization_is_busy_over_observed() {
        assert_eq!(utilization(30_000, 60_000), Some(0.5));
        assert_eq!(utilization(0, 60_000), Some(0.0));
        assert_eq!(utilization(60_000, 60_000), Some(1.0));
        assert_eq!(utilization(0, 0), None);
        assert_eq!(utilization(2, 1), None);
    }

    #[test]
    fn window_bounds_floor_to_the_epoch() {
        assert_eq!(window_bounds(T0 + 59_999, 60_000), Some((T0, T0 + 60_000)));
        assert_eq!(window_bounds(T0, 60_000), Some((T0, T0 + 60_000)));
        assert_eq!(window_bounds(-1, 60_000), Some((-60_000, 0)));
        assert_eq!(window_bounds(5, 0), None);
    }

    #[test]
    fn flagged_time_follows_the_segment_rule() {
        // 0s busy, 20s not, 50s busy (runs to the window end), out of order on input.
        let pts = [(T0 + 50_000, true), (T0, true), (T0 + 20_000, false)];
        assert_eq!(flagged_ms(&pts, T0, T0 + 60_000, 60_000), 30_000);
        let all: Vec<(i64, bool)> = pts.iter().map(|&(t, _)| (t, true)).collect();
        assert_eq!(flagged_ms(&all, T0, T0 + 60_000, 60_000), 60_000);
        // A gap longer than max_gap is unobserved: 0..10s and 50..60s.
        assert_eq!(
            flagged_ms(&[(T0, true), (T0 + 50_000, true)], T0, T0 + 60_000, 10_000),
            20_000
        );
        assert_eq!(flagged_ms(&[], T0, T0 + 60_000, 60_000), 0);
        // A point before the window covers its head.
        assert_eq!(
            flagged_ms(
                &[(T0 - 5_000, true), (T0 + 30_000, false)],
                T0,
                T0 + 60_000,
                60_000
            ),
            30_000
        );
        // Points after the window are ignored.
        assert_eq!(
            flagged_ms(&[(T0 + 60_000, true)], T0, T0 + 60_000, 60_000),
            0
        );
    }

    #[test]
    fn duplicates_count_once() {
        let s = |ts: i64, seq: i64, status| Sample {
            ts,
            seq,
            status,
            odometer_m: 0,
            energy_wh: 0,
            speed_ckph: 0,
            mission: None,
        };
        let c = vehicle_window_counters(
            vec![
                s(T0 + 10_000, 2, VehicleStatus::Idle),
                s(T0, 1, VehicleStatus::OnMission),
                s(T0, 1, VehicleStatus::OnMission),
            ],
            T0,
            T0 + 60_000,
            60_000,
        );
        assert_eq!(c.samples, 2);
        assert_eq!(c.busy_ms, 10_000);
        assert_eq!(c.idle_ms, 50_000);
    }

    fn ev(ts: i64, seq: i64, status: VehicleStatus) -> TelemetryEvent {
        TelemetryEvent {
            event_id: format!("v1-{seq}"),
            fleet_id: "f1".into(),
            vehicle_id: "v1".into(),
            ts_ms: ts,
            seq,
            lat: 0.0,
            lon: 0.0,
            speed_kph: 0.0,
            odometer_km: 0.0,
            energy_pct: 50.0,
            energy_used_kwh: 0.0,
            status,
            mission_id: None,
            zone_id: None,
            payload_kg: 0.0,
            fault_codes: vec![],
        }
    }

    /// The standalone kernel agrees with the streaming window kernel on random tracks: exactly
    /// when given the previous sample too, and short of the head segment without it.
    #[test]
    fn agrees_with_the_window_kernel() {
        let p = WindowParams {
            window_ms: 60_000,
            out_of_orderness_ms: 0,
            allowed_lateness_ms: 0,
            max_gap_ms: 45_000,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut events = vec![];
        let mut ts = T0;
        for seq in 0..400 {
            ts += rng.gen_range(1_000..70_000);
            let status = VehicleStatus::ALL[rng.gen_range(0..VehicleStatus::ALL.len())];
            events.push(ev(ts, seq, status));
        }
        let mut st = PartitionWindows::default();
        let mut out = vec![];
        for e in &events {
            st.ingest(&p, e, &mut out);
        }
        st.flush_idle(&p, &mut out);
        let rows: Vec<_> = out
            .iter()
            .filter(|r| r.scope == WindowScope::Vehicle)
            .collect();
        assert!(rows.len() > 100, "{}", rows.len());
        let mut checked_head = 0;
        for r in rows {
            let (ws, we) = (r.window_start_ms, r.window_end_ms);
            let inside: Vec<(i64, bool)> = events
                .iter()
                .filter(|e| e.ts_ms >= ws && e.ts_ms < we)
                .map(|e| (e.ts_ms, e.status.is_busy()))
                .collect();
            let prev = events
                .iter()
                .rev()
                .find(|e| e.ts_ms < ws)
                .map(|e| (e.ts_ms, e.status.is_busy()));
            let mut with_prev = inside.clone();
            with_prev.extend(prev);
            assert_eq!(
                flagged_ms(&with_prev, ws, we, p.max_gap_ms),
                r.counters.busy_ms,
                "window {ws}"
            );
            let obs: Vec<(i64, bool)> = with_prev.iter().map(|&(t, _)| (t, true)).collect();
            assert_eq!(
                flagged_ms(&obs, ws, we, p.max_gap_ms),
                r.counters.observed_ms,
                "window {ws}"
            );
            // Without the previous sample only the head segment [ws, first sample) is missing.
            if let (Some(first), Some((pt, pb))) = (inside.iter().map(|x| x.0).min(), prev) {
                let head_end = first.min(pt + p.max_gap_ms).max(ws);
                let head = if pb { (head_end - ws).max(0) as u64 } else { 0 };
                assert_eq!(
                    flagged_ms(&inside, ws, we, p.max_gap_ms) + head,
                    r.counters.busy_ms,
                    "window {ws}"
                );
                checked_head += 1;
            }
        }
        assert!(checked_head > 50);
    }
}
