//! Battery state of health from telemetry: the usable capacity a vehicle's battery shows on
//! its discharges, as a share of its nominal capacity, per UTC day, and its trajectory.
//!
//! Method:
//! - **Discharge segments.** A vehicle's samples, in time order, are cut into runs in which the
//!   battery only discharges: a run ends at a charging sample, when the state of charge rises
//!   more than [`SohParams::max_soc_rise_pct`] above the run's lowest value (charging that was
//!   not reported as such), when the cumulative energy counter goes down (a counter reset: the
//!   next run starts after it), or at a gap longer than [`SohParams::max_gap_ms`].
//! - **Capacity of a segment.** Within a run the energy drawn grows as the state of charge
//!   falls: `E = E₀ − (C/100)·SoC`. The least-squares slope of energy (kWh) on state of charge
//!   (%) over every sample of the run gives `C = −100·slope` with its standard error
//!   `100·se(slope)`, so sensor noise on single readings averages out instead of deciding the
//!   estimate (as a two-point ΔE/ΔSoC would). Runs spanning less than
//!   [`SohParams::min_soc_drop_pct`] or with fewer than [`SohParams::min_samples`] samples are
//!   not used.
//! - **Per day.** The segments ending on a UTC day are combined by inverse variance:
//!   `C = Σ wᵢCᵢ / Σ wᵢ`, `wᵢ = 1/seᵢ²`, `se = √(1/Σ wᵢ)`; state of health
//!   `SoH = 100·C/C_nominal` with standard error `100·se/C_nominal` (its confidence).
//! - **Trajectory.** Ordinary least squares ([`crate::analytics::trend::fit`]) of the daily
//!   SoH on odometer (slope per 1,000 km) and on time (slope per month of 30.436875 days); the
//!   date the time line crosses a threshold (e.g. 80 %), with the range in which the line's
//!   95 % prediction band crosses it.
//!
//! Pure: no clock, no I/O; undefined results are `None`, never NaN.

use serde::{Deserialize, Serialize};

use crate::analytics::trend;

const DAY_MS: i64 = 86_400_000;
/// Days in a month, on average (365.2425 / 12).
pub const MONTH_DAYS: f64 = 30.436_875;

/// One telemetry sample, as far as the battery is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatterySample {
    pub ts_ms: i64,
    /// State of charge, %.
    pub soc_pct: f64,
    /// Cumulative energy drawn from the battery, kWh (may reset to a lower value).
    pub energy_used_kwh: f64,
    pub odometer_km: f64,
    /// The vehicle reports that it is charging.
    pub charging: bool,
}

/// Where discharge segments are cut and which are used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SohParams {
    pub min_soc_drop_pct: f64,
    pub min_samples: usize,
    pub max_soc_rise_pct: f64,
    pub max_gap_ms: i64,
}

impl Default for SohParams {
    fn default() -> Self {
        SohParams {
            min_soc_drop_pct: 20.0,
            min_samples: 8,
            max_soc_rise_pct: 2.0,
            max_gap_ms: 6 * 3_600_000,
        }
    }
}

/// The capacity one discharge run shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub samples: usize,
    pub soc_drop_pct: f64,
    pub energy_kwh: f64,
    pub capacity_kwh: f64,
    /// Standard error of `capacity_kwh`.
    pub stderr_kwh: f64,
    /// Mean odometer over the run.
    pub odometer_km: f64,
}

/// The discharge segments of one vehicle's samples (any order; sorted by time here).
pub fn discharge_segments(samples: &[BatterySample], p: &SohParams) -> Vec<Segment> {
    let mut sorted: Vec<BatterySample> = samples.iter().copied().filter(usable).collect();
    sorted.sort_by_key(|s| s.ts_ms);
    let mut b = SegmentBuilder::default();
    let mut out: Vec<Segment> = sorted.iter().filter_map(|s| b.push(s, p)).collect();
    out.extend(b.finish(p));
    out
}

fn usable(s: &BatterySample) -> bool {
    s.ts_ms > 0
        && s.soc_pct.is_finite()
        && s.energy_used_kwh.is_finite()
        && s.odometer_km.is_finite()
}

/// Cuts one vehicle's samples, fed in time order, into discharge runs as they come, with
/// constant state (the least-squares sums of the open run, updated with Welford's co-moments):
/// what [`discharge_segments`] does on a whole history, for a stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentBuilder {
    run: Option<Run>,
}

/// The open run: its first and last sample and the co-moments of (SoC, energy).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Run {
    first: BatterySample,
    last: BatterySample,
    n: u32,
    mean_soc: f64,
    mean_kwh: f64,
    c_ss: f64,
    c_se: f64,
    c_ee: f64,
    hi: f64,
    lo: f64,
    odometer_sum: f64,
}

impl Run {
    fn new(s: &BatterySample) -> Run {
        Run {
            first: *s,
            last: *s,
            n: 1,
            mean_soc: s.soc_pct,
            mean_kwh: s.energy_used_kwh,
            c_ss: 0.0,
            c_se: 0.0,
            c_ee: 0.0,
            hi: s.soc_pct,
            lo: s.soc_pct,
            odometer_sum: s.odometer_km,
        }
    }

    fn add(&mut self, s: &BatterySample) {
        self.n += 1;
        let n = f64::from(self.n);
        let dx = s.soc_pct - self.mean_soc;
        let dy = s.energy_used_kwh - self.mean_kwh;
        self.mean_soc += dx / n;
        self.mean_kwh += dy / n;
        self.c_ss += dx * (s.soc_pct - self.mean_soc);
        self.c_se += dx * (s.energy_used_kwh - self.mean_kwh);
        self.c_ee += dy * (s.energy_used_kwh - self.mean_kwh);
        self.hi = self.hi.max(s.soc_pct);
        self.lo = self.lo.min(s.soc_pct);
        self.odometer_sum += s.odometer_km;
        self.last = *s;
    }

    /// The run's capacity: `C = −100·slope` of energy on SoC, its standard error from the
    /// residuals (as [`trend::fit`] computes them).
    fn segment(&self, p: &SohParams) -> Option<Segment> {
        let n = self.n as usize;
        if n < p.min_samples.max(3) || self.hi - self.lo < p.min_soc_drop_pct || self.c_ss <= 0.0 {
            return None;
        }
        let slope = self.c_se / self.c_ss;
        let sse = (self.c_ee - slope * self.c_se).max(0.0);
        let slope_se = (sse / (f64::from(self.n) - 2.0)).sqrt() / self.c_ss.sqrt();
        let capacity_kwh = -100.0 * slope;
        if capacity_kwh <= 0.0 || !capacity_kwh.is_finite() || !slope_se.is_finite() {
            return None;
        }
        Some(Segment {
            start_ms: self.first.ts_ms,
            end_ms: self.last.ts_ms,
            samples: n,
            soc_drop_pct: self.hi - self.lo,
            energy_kwh: self.last.energy_used_kwh - self.first.energy_used_kwh,
            capacity_kwh,
            stderr_kwh: 100.0 * slope_se,
            odometer_km: self.odometer_sum / f64::from(self.n),
        })
    }
}

impl SegmentBuilder {
    /// Adds the vehicle's next sample (not older than the previous one; unusable ones, with a
    /// non-finite reading, are skipped) and returns the segment of the run it ends, if that run
    /// is usable (see the module docs for where runs are cut).
    pub fn push(&mut self, s: &BatterySample, p: &SohParams) -> Option<Segment> {
        if !usable(s) {
            return None;
        }
        let cut = s.charging
            || self.run.as_ref().is_some_and(|r| {
                s.energy_used_kwh < r.last.energy_used_kwh
                    || s.ts_ms - r.last.ts_ms > p.max_gap_ms
                    || s.soc_pct > r.lo + p.max_soc_rise_pct
            });
        let out = if cut { self.finish(p) } else { None };
        if !s.charging {
            match &mut self.run {
                Some(r) => r.add(s),
                None => self.run = Some(Run::new(s)),
            }
        }
        out
    }

    /// Ends the open run (no more samples belong to it) and returns its segment, if usable.
    pub fn finish(&mut self, p: &SohParams) -> Option<Segment> {
        self.run.take().and_then(|r| r.segment(p))
    }

    /// Time of the open run's last sample.
    pub fn last_ts_ms(&self) -> Option<i64> {
        self.run.as_ref().map(|r| r.last.ts_ms)
    }
}

/// State of health on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DailySoh {
    /// Start of the UTC day, epoch ms.
    pub day_ms: i64,
    pub capacity_kwh: f64,
    pub soh_pct: f64,
    /// Standard error of `soh_pct`, percentage points: the estimate's confidence.
    pub stderr_pct: f64,
    pub segments: usize,
    /// Weighted mean odometer of the day's segments.
    pub odometer_km: f64,
}

/// Combines the segments ending on each UTC day (see the module docs); days in order.
pub fn daily_soh(segments: &[Segment], nominal_kwh: f64) -> Vec<DailySoh> {
    if nominal_kwh.is_nan() || nominal_kwh <= 0.0 {
        return Vec::new();
    }
    // Standard errors below this (an exact fit) would weigh infinitely.
    const MIN_SE_KWH: f64 = 1e-3;
    let mut days: std::collections::BTreeMap<i64, (f64, f64, f64, usize)> = Default::default();
    for s in segments {
        let w = 1.0 / s.stderr_kwh.max(MIN_SE_KWH).powi(2);
        let d = days
            .entry(s.end_ms.div_euclid(DAY_MS) * DAY_MS)
            .or_default();
        d.0 += w * s.capacity_kwh;
        d.1 += w;
        d.2 += w * s.odometer_km;
        d.3 += 1;
    }
    days.into_iter()
        .map(|(day_ms, (wc, w, wo, n))| {
            let capacity_kwh = wc / w;
            DailySoh {
                day_ms,
                capacity_kwh,
                soh_pct: 100.0 * capacity_kwh / nominal_kwh,
                stderr_pct: 100.0 * (1.0 / w).sqrt() / nominal_kwh,
                segments: n,
                odometer_km: wo / w,
            }
        })
        .collect()
}

/// Where a battery's state of health is heading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SohTrajectory {
    /// Change per 1,000 km, percentage points (negative: degrading).
    pub per_1000_km: f64,
    pub per_1000_km_se: f64,
    /// Change per month, percentage points.
    pub per_month: f64,
    pub per_month_se: f64,
    /// The time line's value at the last day.
    pub soh_now_pct: f64,
    pub threshold_pct: f64,
    /// When the time line crosses `threshold_pct` (`None`: not degrading, or already below).
    pub crosses_at_ms: Option<i64>,
    /// The first days on which the 95 % prediction band of the time line is below the
    /// threshold at its lower and at its upper edge: earliest, latest (`None` for the latest
    /// when the upper edge stays above it for 20 years).
    pub crosses_between_ms: Option<(i64, Option<i64>)>,
    pub days: usize,
}

/// The trajectory of `days` (at least 3); see the module docs.
pub fn trajectory(days: &[DailySoh], threshold_pct: f64) -> Option<SohTrajectory> {
    let by_km: Vec<(f64, f64)> = days
        .iter()
        .map(|d| (d.odometer_km / 1000.0, d.soh_pct))
        .collect();
    let by_day: Vec<(f64, f64)> = days
        .iter()
        .map(|d| (d.day_ms as f64 / DAY_MS as f64, d.soh_pct))
        .collect();
    let km = trend::fit(&by_km).ok()?;
    let t = trend::fit(&by_day).ok()?;
    let now_day = t.t_last;
    let soh_now_pct = t.predict(now_day);
    let crossing = |slope: f64| -> Option<i64> {
        if slope >= 0.0 || soh_now_pct <= threshold_pct {
            return None;
        }
        let day = now_day + (threshold_pct - soh_now_pct) / slope;
        day.is_finite().then_some((day * DAY_MS as f64) as i64)
    };
    let crosses_at_ms = crossing(t.slope);
    // The first day on which the 95 % prediction band's lower (earliest) and upper (latest)
    // edge is below the threshold, looking up to 20 years ahead.
    let crosses_between_ms = crosses_at_ms.and_then(|_| {
        let (mut earliest, mut latest) = (None, None);
        for ahead in 0..=(20 * 366) {
            let day = now_day.floor() + f64::from(ahead);
            let (lo, hi) = t.prediction_interval(day, 0.95)?;
            if earliest.is_none() && lo < threshold_pct {
                earliest = Some((day * DAY_MS as f64) as i64);
            }
            if hi < threshold_pct {
                latest = Some((day * DAY_MS as f64) as i64);
                break;
            }
        }
        Some((earliest?, latest))
    });
    Some(SohTrajectory {
        per_1000_km: km.slope,
        per_1000_km_se: km.slope_se,
        per_month: t.slope * MONTH_DAYS,
        per_month_se: t.slope_se * MONTH_DAYS,
        soh_now_pct,
        threshold_pct,
        crosses_at_ms,
        crosses_between_ms,
        days: days.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trip(
        start_ms: i64,
        capacity: f64,
        from_soc: f64,
        to_soc: f64,
        e0: f64,
    ) -> Vec<BatterySample> {
        let n = 30;
        (0..=n)
            .map(|i| {
                let soc = from_soc - (from_soc - to_soc) * i as f64 / n as f64;
                BatterySample {
                    ts_ms: start_ms + i * 60_000,
                    soc_pct: soc,
                    energy_used_kwh: e0 + (from_soc - soc) / 100.0 * capacity,
                    odometer_km: 1000.0 + i as f64,
                    charging: false,
                }
            })
            .collect()
    }

    #[test]
    fn the_streaming_sums_match_the_two_pass_fit() {
        // A noisy run on a large cumulative counter: Welford's co-moments must give the
        // slope and its standard error of `trend::fit` on the same points.
        let mut s = trip(1_700_000_000_000, 64.0, 95.0, 25.0, 48_000.0);
        for (i, x) in s.iter_mut().enumerate() {
            x.soc_pct += [0.3, -0.2, 0.1, -0.3, 0.25][i % 5];
        }
        let p = SohParams::default();
        let seg = discharge_segments(&s, &p)[0];
        let points: Vec<(f64, f64)> = s.iter().map(|x| (x.soc_pct, x.energy_used_kwh)).collect();
        let f = trend::fit(&points).unwrap();
        assert!((seg.capacity_kwh - (-100.0 * f.slope)).abs() < 1e-9 * seg.capacity_kwh);
        assert!((seg.stderr_kwh - 100.0 * f.slope_se).abs() < 1e-6 * seg.stderr_kwh);
        assert!(seg.stderr_kwh > 0.0);
        // Fed one sample at a time, the run ends at a charge.
        let mut b = SegmentBuilder::default();
        assert!(s.iter().all(|x| b.push(x, &p).is_none()));
        assert_eq!(b.last_ts_ms(), Some(s[s.len() - 1].ts_ms));
        let charge = BatterySample {
            ts_ms: s[s.len() - 1].ts_ms + 60_000,
            charging: true,
            ..s[s.len() - 1]
        };
        assert_eq!(b.push(&charge, &p), Some(seg));
        assert_eq!(b.last_ts_ms(), None);
    }

    #[test]
    fn an_exact_discharge_gives_its_capacity() {
        let s = trip(1_700_000_000_000, 72.0, 90.0, 30.0, 500.0);
        let seg = discharge_segments(&s, &SohParams::default());
        assert_eq!(seg.len(), 1);
        assert!((seg[0].capacity_kwh - 72.0).abs() < 1e-9);
        assert!((seg[0].soc_drop_pct - 60.0).abs() < 1e-9);
        let days = daily_soh(&seg, 80.0);
        assert_eq!(days.len(), 1);
        assert!((days[0].soh_pct - 90.0).abs() < 1e-9);
    }

    #[test]
    fn charging_resets_and_rises_cut_segments() {
        let p = SohParams::default();
        let t0 = 1_700_000_000_000;
        let mut s = trip(t0, 60.0, 90.0, 50.0, 100.0);
        // Charging (reported), then a second discharge.
        s.push(BatterySample {
            ts_ms: t0 + 40 * 60_000,
            soc_pct: 70.0,
            energy_used_kwh: 124.0,
            odometer_km: 1031.0,
            charging: true,
        });
        s.extend(trip(t0 + 60 * 60_000, 60.0, 95.0, 60.0, 124.0));
        assert_eq!(discharge_segments(&s, &p).len(), 2);
        // The counter resets mid-discharge: two runs, neither spanning the reset.
        let mut r = trip(t0, 60.0, 90.0, 30.0, 100.0);
        for x in r.iter_mut().skip(16) {
            x.energy_used_kwh -= 100.0;
        }
        let seg = discharge_segments(&r, &p);
        assert_eq!(seg.len(), 2);
        assert!(seg.iter().all(|g| (g.capacity_kwh - 60.0).abs() < 1e-9));
        // Unreported charging: the state of charge rises by more than the allowance.
        let mut u = trip(t0, 60.0, 90.0, 60.0, 100.0);
        let last = *u.last().unwrap();
        u.extend(trip(
            last.ts_ms + 60_000,
            60.0,
            95.0,
            65.0,
            last.energy_used_kwh,
        ));
        assert_eq!(discharge_segments(&u, &p).len(), 2);
        // Too small a drop is not used.
        assert!(discharge_segments(&trip(t0, 60.0, 90.0, 80.0, 0.0), &p).is_empty());
    }

    #[test]
    fn the_trajectory_follows_a_linear_decline() {
        // 1 pp per 1,000 km, 50 km a day: -0.05 pp a day.
        let days: Vec<DailySoh> = (0..100)
            .map(|d| DailySoh {
                day_ms: 1_700_006_400_000 / DAY_MS * DAY_MS + d * DAY_MS,
                capacity_kwh: 0.0,
                soh_pct: 95.0 - 0.05 * d as f64,
                stderr_pct: 0.1,
                segments: 1,
                odometer_km: 10_000.0 + 50.0 * d as f64,
            })
            .collect();
        let t = trajectory(&days, 80.0).unwrap();
        assert!((t.per_1000_km + 1.0).abs() < 1e-9);
        assert!((t.per_month + 0.05 * MONTH_DAYS).abs() < 1e-9);
        // 95 - 0.05·99 = 90.05 now; 80 is 201 days later.
        let want = days[99].day_ms + 201 * DAY_MS;
        assert!((t.crosses_at_ms.unwrap() - want).abs() < 1_000);
        assert!(trajectory(&days[..2], 80.0).is_none());
        let flat: Vec<DailySoh> = days
            .iter()
            .map(|d| DailySoh {
                soh_pct: 95.0,
                ..*d
            })
            .collect();
        assert_eq!(trajectory(&flat, 80.0).unwrap().crosses_at_ms, None);
    }
}
