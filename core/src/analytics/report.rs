//! Fleet performance reports: the pure assembly of a report from what the stores hold for a
//! fleet and period, and its CSV rendering. The query API does the reads
//! (`query-api/src/reports.rs`); nothing here does I/O.
//!
//! Sections, all over the windows whose start lies in `[from, to)`:
//! - **summary**: the summed window counters (utilization, availability, distance, energy,
//!   kWh/km, faults, missions …, with the window kernel's definitions);
//! - **score**: [`score::score`] of the summed counters (the period score, like the daily
//!   score: counters first, then the score) and one score per UTC day of the period;
//! - **benchmarks**: every benchmark of the fleet, its metric's value over the period,
//!   percent of target ([`score::percent_of_benchmark`]) and whether it is met;
//! - **ranks**: the fleet's daily rank in each of its federations (written by the
//!   performance pipeline);
//! - **trends**: [`trend::analyze`] of each configured metric over the period's windows
//!   (time in hours, so slopes are per hour; forecast `forecast_steps` mean spacings ahead);
//! - **top alerts**: alerts that fired in the period, most severe first, then most firings;
//! - **worst vehicles**: vehicles by ascending score of their summed counters (vehicles
//!   without a score last).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analytics::metrics::metric_value;
use crate::analytics::score::{self, ScoreParams};
use crate::analytics::trend::{self, TrendParams};
use crate::window::Counters;

const MS_PER_HOUR: f64 = 3_600_000.0;
const MS_PER_DAY: i64 = 86_400_000;

/// Whether a rising value of `metric` is good. Shares of unproductive time, consumption and
/// faults are better low; everything else (utilization, availability, score, distance …) high.
pub fn higher_is_better(metric: &str) -> bool {
    !matches!(
        metric,
        "kwh_per_km"
            | "fault_count"
            | "fault_share"
            | "offline_share"
            | "maintenance_share"
            | "idle_share"
    )
}

/// Start of the UTC day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY) * MS_PER_DAY
}

/// Epoch milliseconds as RFC 3339 UTC.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ms.to_string())
}

/// A closed fleet window of the period.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowInput {
    pub start_ms: i64,
    pub end_ms: i64,
    pub counters: Counters,
}

/// A benchmark of the fleet (`perf_benchmarks`).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkInput {
    pub id: String,
    pub name: String,
    pub metric: String,
    pub target: f64,
    pub higher_is_better: bool,
}

/// An alert of the fleet with its transitions in the period (`alert_transitions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertInput {
    pub dedup_key: String,
    pub rule_id: String,
    /// The fleet or vehicle the alert is about.
    pub subject: String,
    pub metric: Option<String>,
    /// critical, error, warning or info (`null` when the rule is gone).
    pub severity: Option<String>,
    /// Firing and re-sent transitions in the period.
    pub firings: i64,
    pub transitions: i64,
    pub first_at_ms: i64,
    pub last_at_ms: i64,
    /// The alert's current status (`alert_instances`).
    pub status: Option<String>,
}

/// The fleet's place in a federation on one day (`perf_federation_ranks`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RankInput {
    pub federation_id: String,
    pub day_start_ms: i64,
    /// 1 = best (competition ranking: ties share a rank).
    pub rank: i32,
    /// Ranked fleets of the federation that day.
    pub fleets: i32,
    pub total: f64,
}

/// Everything a report is built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportInput {
    pub fleet_id: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub windows: Vec<WindowInput>,
    /// Summed counters of each vehicle over the period.
    pub vehicles: Vec<(String, Counters)>,
    pub benchmarks: Vec<BenchmarkInput>,
    pub alerts: Vec<AlertInput>,
    pub ranks: Vec<RankInput>,
}

/// How a report is built (`[performance]` of the config).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSettings {
    pub score: ScoreParams,
    pub trend_metrics: Vec<String>,
    pub trend_alpha: f64,
    pub forecast_steps: u32,
    pub forecast_confidence: f64,
    pub top_alerts: usize,
    pub worst_vehicles: usize,
}

impl ReportSettings {
    pub fn from_config(c: &crate::config::PerformanceConfig) -> ReportSettings {
        ReportSettings {
            score: c.score,
            trend_metrics: c.trend_metrics.clone(),
            trend_alpha: c.trend_alpha,
            forecast_steps: c.forecast_steps,
            forecast_confidence: c.forecast_confidence,
            top_alerts: c.report_top_alerts as usize,
            worst_vehicles: c.report_worst_vehicles as usize,
        }
    }
}

/// A score with its components, 0..100; `null` where undefined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportScore {
    pub total: Option<f64>,
    pub efficiency: Option<f64>,
    pub utilization: Option<f64>,
    pub reliability: Option<f64>,
    pub safety: Option<f64>,
    pub cost: Option<f64>,
}

impl From<score::Score> for ReportScore {
    fn from(s: score::Score) -> Self {
        let c = s.components;
        ReportScore {
            total: s.total,
            efficiency: c.efficiency,
            utilization: c.utilization,
            reliability: c.reliability,
            safety: c.safety,
            cost: c.cost,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    pub windows: u64,
    pub vehicles: u64,
    pub observed_hours: f64,
    pub distance_km: f64,
    pub energy_kwh: f64,
    pub utilization: Option<f64>,
    pub availability: Option<f64>,
    pub idle_share: Option<f64>,
    pub kwh_per_km: Option<f64>,
    pub avg_speed_kph: Option<f64>,
    pub fault_count: u64,
    pub mission_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Weights {
    pub efficiency: f64,
    pub utilization: f64,
    pub reliability: f64,
    pub safety: f64,
    pub cost: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyScore {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub day_start_ms: i64,
    pub windows: u64,
    #[serde(flatten)]
    pub score: ReportScore,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BenchmarkComparison {
    pub benchmark_id: String,
    pub name: String,
    pub metric: String,
    pub target: f64,
    pub higher_is_better: bool,
    /// The metric over the period; `null` when undefined (or the metric is unknown).
    pub value: Option<f64>,
    /// `100 · value / target`.
    pub percent_of_target: Option<f64>,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportTrend {
    pub metric: String,
    /// Windows with a defined value.
    pub points: u64,
    /// improving, stable or declining; `null` with fewer than 3 points.
    pub direction: Option<String>,
    /// Per hour.
    pub slope_per_hour: Option<f64>,
    pub p_value: Option<f64>,
    pub r2: Option<f64>,
    pub change_pct: Option<f64>,
    pub forecast_at_ms: Option<i64>,
    pub forecast: Option<f64>,
    pub forecast_lower: Option<f64>,
    pub forecast_upper: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VehicleScore {
    pub vehicle_id: String,
    #[serde(flatten)]
    pub score: ReportScore,
    pub utilization: Option<f64>,
    pub availability: Option<f64>,
    pub distance_km: f64,
    pub fault_count: u64,
}

/// A fleet performance report (JSON body of `GET /api/v1/fleets/{fleet_id}/report`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetReport {
    pub fleet_id: String,
    pub from: String,
    pub to: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub summary: Summary,
    pub score: ReportScore,
    pub weights: Weights,
    pub daily: Vec<DailyScore>,
    pub benchmarks: Vec<BenchmarkComparison>,
    pub ranks: Vec<RankInput>,
    pub trends: Vec<ReportTrend>,
    pub top_alerts: Vec<AlertInput>,
    pub worst_vehicles: Vec<VehicleScore>,
}

fn score_of(c: &Counters, p: &ScoreParams) -> ReportScore {
    // Params are validated with the config; an invalid set scores nothing rather than panic.
    score::score(c, p)
        .map(ReportScore::from)
        .unwrap_or_default()
}

fn severity_order(s: Option<&str>) -> u8 {
    match s {
        Some("critical") => 0,
        Some("error") => 1,
        Some("warning") => 2,
        Some("info") => 3,
        _ => 4,
    }
}

/// The trend of `metric` over `windows` (see the module docs).
pub fn period_trend(metric: &str, windows: &[WindowInput], s: &ReportSettings) -> ReportTrend {
    let points: Vec<(f64, f64)> = windows
        .iter()
        .filter_map(|w| {
            metric_value(metric, &w.counters, &s.score).map(|v| (w.end_ms as f64 / MS_PER_HOUR, v))
        })
        .collect();
    let params = TrendParams {
        higher_is_better: higher_is_better(metric),
        alpha: s.trend_alpha,
        horizon_steps: s.forecast_steps,
        confidence: s.forecast_confidence,
    };
    let t = trend::analyze(&points, &params).ok();
    ReportTrend {
        metric: metric.to_string(),
        points: points.len() as u64,
        direction: t.map(|t| t.direction.as_str().to_string()),
        slope_per_hour: t.map(|t| t.fit.slope),
        p_value: t.map(|t| t.p_value),
        r2: t.map(|t| t.fit.r2),
        change_pct: t.and_then(|t| t.change_pct),
        forecast_at_ms: t
            .and_then(|t| t.forecast)
            .map(|f| (f.t * MS_PER_HOUR).round() as i64),
        forecast: t.and_then(|t| t.forecast).map(|f| f.value),
        forecast_lower: t.and_then(|t| t.forecast).map(|f| f.lower),
        forecast_upper: t.and_then(|t| t.forecast).map(|f| f.upper),
    }
}

/// Assembles the report (see the module docs). Windows are taken in start order whatever the
/// input order; windows outside `[from, to)` are left out.
pub fn build(input: &ReportInput, s: &ReportSettings) -> FleetReport {
    let mut windows: Vec<WindowInput> = input
        .windows
        .iter()
        .filter(|w| w.start_ms >= input.from_ms && w.start_ms < input.to_ms)
        .cloned()
        .collect();
    windows.sort_by_key(|w| w.start_ms);
    let mut sum = Counters::default();
    let mut days: BTreeMap<i64, (u64, Counters)> = BTreeMap::new();
    for w in &windows {
        sum.add(&w.counters);
        let d = days.entry(day_start(w.start_ms)).or_default();
        d.0 += 1;
        d.1.add(&w.counters);
    }
    let summary = Summary {
        windows: windows.len() as u64,
        vehicles: input.vehicles.len() as u64,
        observed_hours: sum.observed_ms as f64 / MS_PER_HOUR,
        distance_km: sum.distance_km(),
        energy_kwh: sum.energy_kwh(),
        utilization: sum.utilization(),
        availability: sum.availability(),
        idle_share: sum.idle_share(),
        kwh_per_km: sum.kwh_per_km(),
        avg_speed_kph: sum.avg_moving_speed_kph(),
        fault_count: sum.fault_count,
        mission_count: sum.mission_count,
    };
    let daily = days
        .iter()
        .map(|(start, (n, c))| DailyScore {
            day: rfc3339(*start)[..10].to_string(),
            day_start_ms: *start,
            windows: *n,
            score: score_of(c, &s.score),
        })
        .collect();
    let benchmarks = input
        .benchmarks
        .iter()
        .map(|b| {
            let value = metric_value(&b.metric, &sum, &s.score);
            BenchmarkComparison {
                benchmark_id: b.id.clone(),
                name: b.name.clone(),
                metric: b.metric.clone(),
                target: b.target,
                higher_is_better: b.higher_is_better,
                value,
                percent_of_target: value.and_then(|v| score::percent_of_benchmark(v, b.target)),
                met: value.map(|v| {
                    if b.higher_is_better {
                        v >= b.target
                    } else {
                        v <= b.target
                    }
                }),
            }
        })
        .collect();
    let mut ranks = input.ranks.clone();
    ranks.sort_by(|a, b| {
        a.day_start_ms
            .cmp(&b.day_start_ms)
            .then_with(|| a.federation_id.cmp(&b.federation_id))
    });
    let trends = s
        .trend_metrics
        .iter()
        .map(|m| period_trend(m, &windows, s))
        .collect();
    let mut alerts: Vec<AlertInput> = input
        .alerts
        .iter()
        .filter(|a| a.firings > 0)
        .cloned()
        .collect();
    alerts.sort_by(|a, b| {
        severity_order(a.severity.as_deref())
            .cmp(&severity_order(b.severity.as_deref()))
            .then_with(|| b.firings.cmp(&a.firings))
            .then_with(|| a.first_at_ms.cmp(&b.first_at_ms))
            .then_with(|| a.dedup_key.cmp(&b.dedup_key))
    });
    alerts.truncate(s.top_alerts);
    let mut vehicles: Vec<VehicleScore> = input
        .vehicles
        .iter()
        .map(|(id, c)| VehicleScore {
            vehicle_id: id.clone(),
            score: score_of(c, &s.score),
            utilization: c.utilization(),
            availability: c.availability(),
            distance_km: c.distance_km(),
            fault_count: c.fault_count,
        })
        .collect();
    vehicles.sort_by(|a, b| match (a.score.total, b.score.total) {
        (Some(x), Some(y)) => x
            .total_cmp(&y)
            .then_with(|| a.vehicle_id.cmp(&b.vehicle_id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.vehicle_id.cmp(&b.vehicle_id),
    });
    vehicles.truncate(s.worst_vehicles);
    let w = s.score.weights;
    FleetReport {
        fleet_id: input.fleet_id.clone(),
        from: rfc3339(input.from_ms),
        to: rfc3339(input.to_ms),
        from_ms: input.from_ms,
        to_ms: input.to_ms,
        summary,
        score: score_of(&sum, &s.score),
        weights: Weights {
            efficiency: w.efficiency,
            utilization: w.utilization,
            reliability: w.reliability,
            safety: w.safety,
            cost: w.cost,
        },
        daily,
        benchmarks,
        ranks,
        trends,
        top_alerts: alerts,
        worst_vehicles: vehicles,
    }
}

/// RFC 4180 field: quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A number in shortest round-trip form, empty for `null`.
pub(crate) fn num(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The report as CSV in long form: header `section,item,field,value`, one value per line
/// (numbers in shortest round-trip form, empty for `null`).
pub fn to_csv(r: &FleetReport) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |section: &str, item: &str, field: &str, value: String| {
        rows.push([section.into(), item.into(), field.into(), value]);
    };
    row("report", &r.fleet_id, "from", r.from.clone());
    row("report", &r.fleet_id, "to", r.to.clone());
    let s = &r.summary;
    for (f, v) in [
        ("windows", Some(s.windows as f64)),
        ("vehicles", Some(s.vehicles as f64)),
        ("observed_hours", Some(s.observed_hours)),
        ("distance_km", Some(s.distance_km)),
        ("energy_kwh", Some(s.energy_kwh)),
        ("utilization", s.utilization),
        ("availability", s.availability),
        ("idle_share", s.idle_share),
        ("kwh_per_km", s.kwh_per_km),
        ("avg_speed_kph", s.avg_speed_kph),
        ("fault_count", Some(s.fault_count as f64)),
        ("mission_count", Some(s.mission_count as f64)),
    ] {
        row("summary", "", f, num(v));
    }
    let score_rows = |section: &str,
                      item: &str,
                      v: &ReportScore,
                      row: &mut dyn FnMut(&str, &str, &str, String)| {
        for (f, x) in [
            ("total", v.total),
            ("efficiency", v.efficiency),
            ("utilization", v.utilization),
            ("reliability", v.reliability),
            ("safety", v.safety),
            ("cost", v.cost),
        ] {
            row(section, item, f, num(x));
        }
    };
    score_rows("score", "period", &r.score, &mut row);
    let w = &r.weights;
    for (f, x) in [
        ("efficiency", w.efficiency),
        ("utilization", w.utilization),
        ("reliability", w.reliability),
        ("safety", w.safety),
        ("cost", w.cost),
    ] {
        row("weight", "", f, x.to_string());
    }
    for d in &r.daily {
        row("daily", &d.day, "windows", d.windows.to_string());
        score_rows("daily", &d.day, &d.score, &mut row);
    }
    for b in &r.benchmarks {
        row("benchmark", &b.name, "metric", b.metric.clone());
        row("benchmark", &b.name, "target", b.target.to_string());
        row("benchmark", &b.name, "value", num(b.value));
        row(
            "benchmark",
            &b.name,
            "percent_of_target",
            num(b.percent_of_target),
        );
        row(
            "benchmark",
            &b.name,
            "met",
            b.met.map(|m| m.to_string()).unwrap_or_default(),
        );
    }
    for k in &r.ranks {
        let item = format!("{} {}", k.federation_id, &rfc3339(k.day_start_ms)[..10]);
        row("rank", &item, "rank", k.rank.to_string());
        row("rank", &item, "fleets", k.fleets.to_string());
        row("rank", &item, "total", k.total.to_string());
    }
    for t in &r.trends {
        row("trend", &t.metric, "points", t.points.to_string());
        row(
            "trend",
            &t.metric,
            "direction",
            t.direction.clone().unwrap_or_default(),
        );
        row("trend", &t.metric, "slope_per_hour", num(t.slope_per_hour));
        row("trend", &t.metric, "p_value", num(t.p_value));
        row("trend", &t.metric, "change_pct", num(t.change_pct));
        row("trend", &t.metric, "forecast", num(t.forecast));
        row("trend", &t.metric, "forecast_lower", num(t.forecast_lower));
        row("trend", &t.metric, "forecast_upper", num(t.forecast_upper));
    }
    for a in &r.top_alerts {
        row("alert", &a.dedup_key, "rule_id", a.rule_id.clone());
        row("alert", &a.dedup_key, "subject", a.subject.clone());
        row(
            "alert",
            &a.dedup_key,
            "severity",
            a.severity.clone().unwrap_or_default(),
        );
        row("alert", &a.dedup_key, "firings", a.firings.to_string());
        row("alert", &a.dedup_key, "first_at", rfc3339(a.first_at_ms));
        row(
            "alert",
            &a.dedup_key,
            "status",
            a.status.clone().unwrap_or_default(),
        );
    }
    for v in &r.worst_vehicles {
        score_rows("vehicle", &v.vehicle_id, &v.score, &mut row);
        row(
            "vehicle",
            &v.vehicle_id,
            "distance_km",
            v.distance_km.to_string(),
        );
        row(
            "vehicle",
            &v.vehicle_id,
            "fault_count",
            v.fault_count.to_string(),
        );
    }
    long_csv(rows)
}

/// Long-form CSV of `rows`: header `section,item,field,value`, one value per line, CRLF.
pub(crate) fn long_csv(rows: impl IntoIterator<Item = [String; 4]>) -> String {
    let mut out = String::from("section,item,field,value\r\n");
    for r in rows {
        let line: Vec<String> = r.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const DAY0: i64 = 1_700_006_400_000; // 2023-11-15T00:00:00Z

    fn counters(busy_ms: u64, fault_count: u64) -> Counters {
        Counters {
            samples: 12,
            observed_ms: 120_000,
            busy_ms,
            available_ms: 120_000,
            idle_ms: 120_000 - busy_ms,
            distance_m: 2_000,
            energy_wh: 400,
            moving_samples: 4,
            moving_speed_ckph_sum: 4 * 3_000,
            fault_count,
            mission_count: 1,
            active_vehicles: 2,
            vehicles: 2,
            ..Counters::default()
        }
    }

    fn settings() -> ReportSettings {
        ReportSettings::from_config(&crate::config::PerformanceConfig::default())
    }

    #[test]
    fn sections_follow_their_definitions() {
        // Windows straddle midnight: 3 before, 3 after; busy rises 12 s per window.
        let windows: Vec<WindowInput> = (0..6)
            .map(|k| WindowInput {
                start_ms: DAY0 - 3 * M + k * M,
                end_ms: DAY0 - 2 * M + k * M,
                counters: counters(36_000 + 12_000 * k as u64, 0),
            })
            .rev()
            .collect();
        let input = ReportInput {
            fleet_id: "f1".into(),
            from_ms: DAY0 - 3 * M,
            to_ms: DAY0 + 3 * M,
            windows,
            vehicles: vec![
                ("v-good".into(), counters(120_000, 0)),
                ("v-bad".into(), counters(0, 1)),
                ("v-none".into(), Counters::default()),
            ],
            benchmarks: vec![BenchmarkInput {
                id: "b1".into(),
                name: "util, target".into(),
                metric: "utilization".into(),
                target: 0.5,
                higher_is_better: true,
            }],
            alerts: vec![
                AlertInput {
                    dedup_key: "k-warn".into(),
                    rule_id: "r1".into(),
                    subject: "f1".into(),
                    metric: Some("utilization".into()),
                    severity: Some("warning".into()),
                    firings: 3,
                    transitions: 5,
                    first_at_ms: DAY0,
                    last_at_ms: DAY0 + M,
                    status: Some("firing".into()),
                },
                AlertInput {
                    dedup_key: "k-crit".into(),
                    severity: Some("critical".into()),
                    firings: 1,
                    ..AlertInput {
                        dedup_key: String::new(),
                        rule_id: "r2".into(),
                        subject: "v1".into(),
                        metric: None,
                        severity: None,
                        firings: 0,
                        transitions: 1,
                        first_at_ms: DAY0,
                        last_at_ms: DAY0,
                        status: None,
                    }
                },
                AlertInput {
                    dedup_key: "k-pending".into(),
                    firings: 0,
                    ..Default::default()
                },
            ],
            ranks: vec![],
        };
        let r = build(&input, &settings());
        // busy = 36 + 12k s of 120 s, k = 0..5: Σ = 6·36 + 12·15 = 396 s of 720 s.
        assert_eq!(r.summary.windows, 6);
        assert_eq!(r.summary.utilization, Some(396.0 / 720.0));
        assert_eq!(r.summary.kwh_per_km, Some(0.2));
        // Default weights 0.2 each: efficiency 100 (at reference), reliability 100, safety 100,
        // cost 100·(1 − 0.2·0.3/0.25) = 76.
        let u = 100.0 * 396.0 / 720.0;
        let total = r.score.total.unwrap();
        assert!(
            (total - (100.0 + u + 100.0 + 100.0 + 76.0) / 5.0).abs() < 1e-9,
            "{total}"
        );
        assert_eq!(r.daily.len(), 2);
        assert_eq!(r.daily[0].day, "2023-11-14");
        assert_eq!((r.daily[1].day_start_ms, r.daily[1].windows), (DAY0, 3));
        // Day 2: busy 72, 84, 96 s of 360 s.
        assert!((r.daily[1].score.utilization.unwrap() - 100.0 * 252.0 / 360.0).abs() < 1e-9);
        let b = &r.benchmarks[0];
        assert!((b.percent_of_target.unwrap() - 100.0 * (396.0 / 720.0) / 0.5).abs() < 1e-9);
        assert_eq!(b.met, Some(true));
        // Utilization rises 0.1 per minute = 6 per hour, exactly.
        let t = r.trends.iter().find(|t| t.metric == "utilization").unwrap();
        assert_eq!(t.points, 6);
        assert!((t.slope_per_hour.unwrap() - 6.0).abs() < 1e-6, "{t:?}");
        assert_eq!(t.direction.as_deref(), Some("improving"));
        let k = r.trends.iter().find(|t| t.metric == "kwh_per_km").unwrap();
        assert_eq!(k.direction.as_deref(), Some("stable"));
        let keys: Vec<&str> = r.top_alerts.iter().map(|a| a.dedup_key.as_str()).collect();
        assert_eq!(
            keys,
            ["k-crit", "k-warn"],
            "critical first, never-fired left out"
        );
        let v: Vec<&str> = r
            .worst_vehicles
            .iter()
            .map(|v| v.vehicle_id.as_str())
            .collect();
        assert_eq!(v, ["v-bad", "v-good", "v-none"]);

        let csv = to_csv(&r);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], "section,item,field,value");
        assert!(
            lines.contains(&format!("score,period,total,{total}").as_str()),
            "{csv}"
        );
        assert!(
            lines.contains(&"benchmark,\"util, target\",met,true"),
            "{csv}"
        );
        assert!(lines.contains(&"summary,,windows,6"));
        assert!(lines.contains(&"daily,2023-11-15,windows,3"));
        assert!(lines.contains(&"vehicle,v-none,total,"), "null is empty");
        // Every line has exactly 4 fields (one quoted comma above).
        assert!(lines.iter().filter(|l| !l.is_empty()).all(|l| l
            .replace("\"util, target\"", "x")
            .split(',')
            .count()
            == 4));
    }

    #[test]
    fn empty_period_and_helpers() {
        let r = build(
            &ReportInput {
                fleet_id: "f".into(),
                from_ms: 0,
                to_ms: M,
                ..Default::default()
            },
            &settings(),
        );
        assert_eq!(r.summary.windows, 0);
        assert_eq!(r.score, ReportScore::default());
        assert!(r
            .trends
            .iter()
            .all(|t| t.direction.is_none() && t.points == 0));
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
        assert!(!higher_is_better("kwh_per_km") && higher_is_better("score"));
        assert_eq!(day_start(DAY0 + 5), DAY0);
        assert_eq!(day_start(DAY0 - 1), DAY0 - 86_400_000);
        assert_eq!(rfc3339(DAY0), "2023-11-15T00:00:00Z");
    }
}
