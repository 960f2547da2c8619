//! The pure part of the performance pipeline: per-partition state and what one metrics record
//! produces. No I/O, no clock: the same records in the same order give the same scores and
//! trends, so a replay after a crash rewrites identical rows.
//!
//! Per fleet (all of a fleet's partials reach one metrics partition, the topic being keyed by
//! fleet) the state holds the open windows ([`FleetWindows`]), the last settled windows (as
//! many as the longest window horizon) and the counters of the last days (as many as the
//! longest day horizon). For every settled window it emits
//! - the **window score** (version 1: a window settles once);
//! - the **hour score** and the **day score** of the window's UTC hour and day so far:
//!   [`score::score`] of the summed counters of the period's settled windows, with version =
//!   number of those windows (so the newest version of a period is its fullest sum);
//! - for every trend metric and horizon, the **trend** ([`trend::analyze`]) of the metric over
//!   the last N windows (`<N>w`) or the daily values of the last N days, today's partial day
//!   included (`<N>d`). Time is in hours (slopes per hour); the forecast is `forecast_steps`
//!   mean spacings after the last point. Fewer than 3 defined points: no trend.
//!
//! Every output is stamped with the settled window's end (event time), never the wall clock.

use std::collections::{BTreeMap, VecDeque};

use atlasmesh_core::analytics::metrics::metric_value;
use atlasmesh_core::analytics::report::{day_start, higher_is_better};
use atlasmesh_core::analytics::score::{self, ScoreParams};
use atlasmesh_core::analytics::trend::{self, Trend, TrendParams};
use atlasmesh_core::config::PerformanceConfig;
use atlasmesh_core::window::Counters;
use atlasmesh_schemas::{MetricsScope, WindowMetricsRecord};
use serde::{Deserialize, Serialize};

use crate::settle::{add_partial, on_watermark, FleetWindows, Settled, SourceWatermarks};

const MS_PER_HOUR: f64 = 3_600_000.0;
const MS_PER_DAY: i64 = 86_400_000;
const MS_PER_HOUR_I: i64 = 3_600_000;

/// Tunables (`[performance]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub score: ScoreParams,
    pub trend_metrics: Vec<String>,
    pub window_horizons: Vec<u32>,
    pub day_horizons: Vec<u32>,
    pub trend_alpha: f64,
    pub forecast_steps: u32,
    pub forecast_confidence: f64,
}

impl Settings {
    pub fn from_config(c: &PerformanceConfig) -> Settings {
        Settings {
            score: c.score,
            trend_metrics: c.trend_metrics.clone(),
            window_horizons: c.window_horizons.clone(),
            day_horizons: c.day_horizons.clone(),
            trend_alpha: c.trend_alpha,
            forecast_steps: c.forecast_steps,
            forecast_confidence: c.forecast_confidence,
        }
    }

    fn max_windows(&self) -> usize {
        self.window_horizons.iter().copied().max().unwrap_or(0) as usize
    }

    fn max_days(&self) -> i64 {
        self.day_horizons.iter().copied().max().unwrap_or(1).max(1) as i64
    }

    fn trend_params(&self, metric: &str) -> TrendParams {
        TrendParams {
            higher_is_better: higher_is_better(metric),
            alpha: self.trend_alpha,
            horizon_steps: self.forecast_steps,
            confidence: self.forecast_confidence,
        }
    }
}

/// What a score covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Window,
    Hour,
    Day,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Window => "window",
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }
}

/// A fleet score of a window or a day.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOut {
    pub fleet_id: String,
    pub period: Period,
    pub start_ms: i64,
    pub end_ms: i64,
    pub version: u32,
    pub score: score::Score,
    /// End of the window that produced it.
    pub computed_at_ms: i64,
}

/// A trend of a fleet metric over one horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendOut {
    pub fleet_id: String,
    pub metric: String,
    /// `<N>w` (last N windows) or `<N>d` (last N days).
    pub horizon: String,
    pub computed_at_ms: i64,
    pub first_at_ms: i64,
    pub last_at_ms: i64,
    pub trend: Trend,
}

/// Everything records produced since the last flush, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    pub scores: Vec<ScoreOut>,
    pub trends: Vec<TrendOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WindowPoint {
    start_ms: i64,
    end_ms: i64,
    counters: Counters,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Day {
    windows: u32,
    counters: Counters,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct FleetPerf {
    windows: FleetWindows,
    /// The last settled windows, oldest first (at most the longest window horizon).
    recent: VecDeque<WindowPoint>,
    /// Day start → the day's settled windows summed (the last `max(day_horizons)` days).
    days: BTreeMap<i64, Day>,
    /// The current hour's settled windows summed.
    hour: Option<(i64, Day)>,
}

/// The checkpointed state of one metrics partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerformanceState {
    fleets: BTreeMap<String, FleetPerf>,
    /// The telemetry partitions' watermarks: what has settled.
    sources: SourceWatermarks,
}

/// What one record did (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub settled: usize,
    pub ignored_revisions: usize,
}

fn fit(points: &[(f64, f64)], params: &TrendParams) -> Option<Trend> {
    trend::analyze(points, params).ok()
}

impl PerformanceState {
    /// Open windows over all fleets (a state-size metric).
    pub fn open_windows(&self) -> usize {
        self.fleets.values().map(|f| f.windows.open_len()).sum()
    }

    /// Folds one metrics record in. Vehicle windows are not scored here (fleet scores only);
    /// a watermark settles the fleet windows every telemetry partition has closed.
    pub fn on_record(
        &mut self,
        s: &Settings,
        r: &WindowMetricsRecord,
        out: &mut Outputs,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        match r.scope {
            MetricsScope::Vehicle => {}
            MetricsScope::FleetPartial => {
                if !add_partial(&mut self.fleets, |f| &mut f.windows, &self.sources, r) {
                    outcome.ignored_revisions += 1;
                }
            }
            MetricsScope::Watermark => {
                let settled =
                    on_watermark(&mut self.fleets, |f| &mut f.windows, &mut self.sources, r);
                for (id, w) in settled {
                    self.fleets
                        .get_mut(&id)
                        .expect("fleet")
                        .on_settled(&id, s, w, out);
                    outcome.settled += 1;
                }
            }
        }
        outcome
    }
}

impl FleetPerf {
    fn on_settled(&mut self, fleet_id: &str, s: &Settings, w: Settled, out: &mut Outputs) {
        let at = w.end_ms;
        // Window score.
        if let Ok(sc) = score::score(&w.counters, &s.score) {
            out.scores.push(ScoreOut {
                fleet_id: fleet_id.to_string(),
                period: Period::Window,
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                version: 1,
                score: sc,
                computed_at_ms: at,
            });
        }
        // Hour score so far.
        let hour = w.start_ms.div_euclid(MS_PER_HOUR_I) * MS_PER_HOUR_I;
        if self.hour.as_ref().is_none_or(|(start, _)| *start != hour) {
            self.hour = Some((hour, Day::default()));
        }
        let (_, h) = self.hour.as_mut().expect("set above");
        h.windows += 1;
        h.counters.add(&w.counters);
        if let Ok(sc) = score::score(&h.counters, &s.score) {
            out.scores.push(ScoreOut {
                fleet_id: fleet_id.to_string(),
                period: Period::Hour,
                start_ms: hour,
                end_ms: hour + MS_PER_HOUR_I,
                version: h.windows,
                score: sc,
                computed_at_ms: at,
            });
        }
        // Day score so far.
        let day = day_start(w.start_ms);
        let d = self.days.entry(day).or_default();
        d.windows += 1;
        d.counters.add(&w.counters);
        if let Ok(sc) = score::score(&d.counters, &s.score) {
            out.scores.push(ScoreOut {
                fleet_id: fleet_id.to_string(),
                period: Period::Day,
                start_ms: day,
                end_ms: day + MS_PER_DAY,
                version: d.windows,
                score: sc,
                computed_at_ms: at,
            });
        }
        let oldest_day = day - (s.max_days() - 1) * MS_PER_DAY;
        self.days.retain(|start, _| *start >= oldest_day);
        // Window series.
        self.recent.push_back(WindowPoint {
            start_ms: w.start_ms,
            end_ms: w.end_ms,
            counters: w.counters,
        });
        while self.recent.len() > s.max_windows() {
            self.recent.pop_front();
        }
        for metric in &s.trend_metrics {
            let params = s.trend_params(metric);
            for &h in &s.window_horizons {
                let skip = self.recent.len().saturating_sub(h as usize);
                let pts: Vec<(i64, f64)> = self
                    .recent
                    .iter()
                    .skip(skip)
                    .filter_map(|p| {
                        metric_value(metric, &p.counters, &s.score).map(|v| (p.end_ms, v))
                    })
                    .collect();
                push_trend(out, fleet_id, metric, format!("{h}w"), at, &pts, &params);
            }
            for &h in &s.day_horizons {
                let from = day - (h as i64 - 1) * MS_PER_DAY;
                let pts: Vec<(i64, f64)> = self
                    .days
                    .range(from..)
                    .filter_map(|(start, d)| {
                        metric_value(metric, &d.counters, &s.score).map(|v| (*start, v))
                    })
                    .collect();
                push_trend(out, fleet_id, metric, format!("{h}d"), at, &pts, &params);
            }
        }
    }
}

fn push_trend(
    out: &mut Outputs,
    fleet_id: &str,
    metric: &str,
    horizon: String,
    at: i64,
    pts: &[(i64, f64)],
    params: &TrendParams,
) {
    let xy: Vec<(f64, f64)> = pts
        .iter()
        .map(|(t, v)| (*t as f64 / MS_PER_HOUR, *v))
        .collect();
    let Some(trend) = fit(&xy, params) else {
        return;
    };
    out.trends.push(TrendOut {
        fleet_id: fleet_id.to_string(),
        metric: metric.to_string(),
        horizon,
        computed_at_ms: at,
        first_at_ms: pts.first().map_or(at, |p| p.0),
        last_at_ms: pts.last().map_or(at, |p| p.0),
        trend,
    });
}

#[cfg(test)]
mod tests {
    use atlasmesh_core::analytics::score::ScoreWeights;

    use super::*;

    const M: i64 = 60_000;
    /// 2023-11-15T00:00:00Z.
    const DAY1: i64 = 1_700_006_400_000;
    const BASE: i64 = DAY1 - 5 * M;

    fn settings() -> Settings {
        let mut c = PerformanceConfig::default();
        c.score.weights = ScoreWeights {
            efficiency: 1.0,
            utilization: 2.0,
            reliability: 1.0,
            safety: 0.0,
            cost: 1.0,
        };
        c.window_horizons = vec![60, 5];
        c.day_horizons = vec![3];
        c.trend_metrics = vec!["score".into()];
        Settings::from_config(&c)
    }

    /// Minute k (1-based) of a fleet, as one partial of `source` holding half of the fleet:
    /// the two halves together have utilization `0.30 + 0.01·k`, availability 1,
    /// 0.2 kWh/km and no faults.
    fn partial(fleet: &str, source: i32, k: i64, version: i32) -> WindowMetricsRecord {
        let busy = 18_000 + 600 * k;
        WindowMetricsRecord {
            scope: MetricsScope::FleetPartial,
            fleet_id: fleet.into(),
            vehicle_id: String::new(),
            source_partition: source,
            window_start_ms: BASE + (k - 1) * M,
            window_end_ms: BASE + k * M,
            version,
            samples: 6,
            observed_ms: 60_000,
            busy_ms: busy,
            available_ms: 60_000,
            idle_ms: 60_000 - busy,
            charging_ms: 0,
            maintenance_ms: 0,
            fault_ms: 0,
            offline_ms: 0,
            distance_m: 1_000,
            energy_wh: 200,
            moving_samples: 3,
            moving_speed_ckph_sum: 9_000,
            fault_count: 0,
            mission_count: 1,
            active_vehicles: 1,
            vehicles: 1,
            source_partitions: 0,
            source_idle: false,
        }
    }

    /// Minutes `k` of fleet f1 from sources 0 and 1; after each minute, both sources'
    /// watermarks close the minute before it (so minute k settles when minute k + 1 arrives).
    fn feed(
        st: &mut PerformanceState,
        s: &Settings,
        minutes: std::ops::RangeInclusive<i64>,
    ) -> Outputs {
        let mut out = Outputs::default();
        for k in minutes {
            for source in [0, 1] {
                // A wrong first version, replaced by the right one.
                let mut wrong = partial("f1", source, k, 1);
                wrong.busy_ms = 0;
                st.on_record(s, &wrong, &mut out);
                st.on_record(s, &partial("f1", source, k, 2), &mut out);
            }
            for source in [0, 1] {
                st.on_record(
                    s,
                    &WindowMetricsRecord::watermark(source, 2, BASE + (k - 1) * M, false),
                    &mut out,
                );
            }
        }
        out
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn window_and_day_scores_by_hand() {
        let s = settings();
        let mut st = PerformanceState::default();
        let out = feed(&mut st, &s, 1..=13);
        // Minutes 1..=12 settled (13 waits for a later window).
        let windows: Vec<&ScoreOut> = out
            .scores
            .iter()
            .filter(|o| o.period == Period::Window)
            .collect();
        assert_eq!(windows.len(), 12);
        // efficiency 100, utilization 100·u, reliability 100, cost 100·(1 − 0.2·0.3/0.25) = 76;
        // weights 1, 2, 1, 0, 1 → (100 + 200u + 100 + 76) / 5 = 55.2 + 40u = 67.2 + 0.4k.
        for (i, w) in windows.iter().enumerate() {
            let k = i as f64 + 1.0;
            assert!(
                close(w.score.total.unwrap(), 67.2 + 0.4 * k),
                "minute {k}: {:?}",
                w.score
            );
            assert_eq!(w.score.components.cost.map(|c| c.round()), Some(76.0));
        }
        // Days: minutes 1..=5 before midnight (mean k = 3), 6..=12 after (mean k = 9).
        let day = |start: i64| {
            out.scores
                .iter()
                .rfind(|o| o.period == Period::Day && o.start_ms == start)
                .unwrap()
        };
        let (d0, d1) = (day(DAY1 - MS_PER_DAY), day(DAY1));
        assert_eq!((d0.version, d1.version), (5, 7));
        assert!(close(d0.score.total.unwrap(), 67.2 + 0.4 * 3.0));
        assert!(close(d1.score.total.unwrap(), 67.2 + 0.4 * 9.0));
        assert_eq!(d1.end_ms, DAY1 + MS_PER_DAY);
        // Hours: 23:00 holds minutes 1..=5, 00:00 minutes 6..=12 (same sums as the days).
        let hour = |start: i64| {
            out.scores
                .iter()
                .rfind(|o| o.period == Period::Hour && o.start_ms == start)
                .unwrap()
        };
        let (h0, h1) = (hour(DAY1 - 3_600_000), hour(DAY1));
        assert_eq!(
            (h0.version, h1.version, h1.end_ms),
            (5, 7, DAY1 + 3_600_000)
        );
        assert_eq!((h0.score, h1.score), (d0.score, d1.score));
    }

    #[test]
    fn day_trend_over_the_last_days() {
        let mut s = settings();
        s.day_horizons = vec![3];
        s.window_horizons = vec![];
        let mut st = PerformanceState::default();
        let mut out = Outputs::default();
        // One window on each of 5 days, utilization 0.31, 0.32, …: the score rises 0.4 per day.
        for d in 0..5i64 {
            for source in [0, 1] {
                let mut r = partial("f1", source, d + 1, 1);
                r.window_start_ms = DAY1 + d * MS_PER_DAY;
                r.window_end_ms = r.window_start_ms + M;
                st.on_record(&s, &r, &mut out);
            }
            for source in [0, 1] {
                let closed = DAY1 + (d - 1) * MS_PER_DAY + M;
                st.on_record(
                    &s,
                    &WindowMetricsRecord::watermark(source, 2, closed, false),
                    &mut out,
                );
            }
        }
        // Day d settles when day d + 1 arrives: days 0..=3 are scored, trends from day 2 on.
        let t: Vec<&TrendOut> = out.trends.iter().filter(|t| t.horizon == "3d").collect();
        assert_eq!(t.len(), 2);
        let last = t[1];
        assert_eq!(
            (last.trend.fit.n, last.first_at_ms, last.last_at_ms),
            (3, DAY1 + MS_PER_DAY, DAY1 + 3 * MS_PER_DAY)
        );
        assert!(
            (last.trend.fit.slope - 0.4 / 24.0).abs() < 1e-9,
            "per hour: {:?}",
            last.trend.fit
        );
        assert_eq!(
            st.fleets["f1"].days.len(),
            3,
            "only the horizon's days are kept"
        );
    }

    #[test]
    fn trends_over_sliding_horizons() {
        let s = settings();
        let mut st = PerformanceState::default();
        let out = feed(&mut st, &s, 1..=13);
        let last = |h: &str| out.trends.iter().rfind(|t| t.horizon == h).unwrap().clone();
        // The score rises 0.4 per minute = 24 per hour, exactly.
        let t60 = last("60w");
        assert_eq!(t60.trend.fit.n, 12);
        assert!(
            (t60.trend.fit.slope - 24.0).abs() < 1e-6,
            "{:?}",
            t60.trend.fit
        );
        assert_eq!(t60.trend.direction.as_str(), "improving");
        // change: 67.6 → 72.0.
        assert!((t60.trend.change_pct.unwrap() - 100.0 * 4.4 / 67.6).abs() < 1e-6);
        // forecast 5 minutes after minute 12: 67.2 + 0.4·17.
        let f = t60.trend.forecast.unwrap();
        assert!(
            (f.value - 74.0).abs() < 1e-6
                && (f.lower - 74.0).abs() < 1e-3
                && (f.upper - 74.0).abs() < 1e-3,
            "{f:?}"
        );
        let t5 = last("5w");
        assert_eq!(
            (t5.trend.fit.n, t5.first_at_ms, t5.last_at_ms),
            (5, BASE + 8 * M, BASE + 12 * M)
        );
        assert!((t5.trend.change_pct.unwrap() - 100.0 * 1.6 / 70.4).abs() < 1e-6);
        // Two days only: no day trend yet.
        assert!(out.trends.iter().all(|t| t.horizon != "3d"));
        // Trends start at the third window.
        assert_eq!(out.trends.iter().filter(|t| t.horizon == "60w").count(), 10);
        assert_eq!(
            out.trends
                .iter()
                .filter(|t| t.horizon == "60w")
                .map(|t| t.computed_at_ms)
                .next(),
            Some(BASE + 3 * M)
        );
    }

    #[test]
    fn a_restored_checkpoint_continues_with_the_same_outputs() {
        let s = settings();
        let mut whole = PerformanceState::default();
        let all = feed(&mut whole, &s, 1..=13);
        for cut in [1, 4, 6, 9, 13] {
            let mut st = PerformanceState::default();
            let mut got = feed(&mut st, &s, 1..=cut);
            let mut restored: PerformanceState =
                bincode::deserialize(&bincode::serialize(&st).unwrap()).unwrap();
            assert_eq!(restored, st);
            let rest = feed(&mut restored, &s, cut + 1..=13);
            got.scores.extend(rest.scores);
            got.trends.extend(rest.trends);
            assert_eq!(got, all, "cut after minute {cut}");
            assert_eq!(restored, whole);
        }
    }

    #[test]
    fn state_is_bounded_and_vehicle_windows_are_ignored() {
        let mut s = settings();
        s.day_horizons = vec![3];
        let mut st = PerformanceState::default();
        feed(&mut st, &s, 1..=100);
        let f = &st.fleets["f1"];
        assert_eq!(f.recent.len(), 60);
        assert!(f.days.len() <= 3);
        let mut v = partial("f1", 0, 200, 1);
        v.scope = MetricsScope::Vehicle;
        let mut out = Outputs::default();
        assert_eq!(st.on_record(&s, &v, &mut out), Outcome::default());
        assert_eq!(out, Outputs::default());
    }
}
