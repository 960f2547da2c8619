//! Fleet analytics reports: the pure assembly of a fleet's health report over a period from the
//! fleet-analytics rows, and its CSV rendering. The query API does the reads
//! (`query-api/src/analytics.rs`); nothing here does I/O.
//!
//! Sections, over `[from, to)`:
//! - **daily**: per UTC day, the fleet's health from its fleet row of the day (`vehicle_id`
//!   absent; of several, the highest version, then the one updated last): its score and stored
//!   distribution; a day without a fleet row but with vehicle rows gets the distribution of
//!   those ([`fleet_health`] of each vehicle's mean score that day), its median as the score;
//! - **distribution**: the period's distribution, [`fleet_health`] of each vehicle's mean score
//!   over its rows whose period starts in the period;
//! - **worst vehicles**: the `worst_n` lowest of those means (ties by vehicle id), with the
//!   means of their components and their latest state of health;
//! - **predicted failures**: per vehicle, the newest failure-risk prediction made in the period;
//!   those with an alarm, then the highest probabilities, at least `worst_n` of them;
//! - **battery replacements**: per vehicle, the newest state-of-health prediction made before
//!   `to` whose crossing date falls before `to` + `replacement_within_days`, soonest first, with
//!   the dates of its interval;
//! - **capacity shortfalls**: completed capacity metrics computed for a moment in the period
//!   (`as_of`, else when requested) with a shortfall, with the hours short per zone.
//!
//! Rows are the API's views ([`HealthScoreView`], [`PredictionView`], [`CapacityMetricView`]);
//! rows of another fleet and rows whose times do not parse are left out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analytics::health::fleet_health;
use crate::analytics::report::{day_start, long_csv, num, rfc3339};
use crate::clock::parse_rfc3339;
use crate::domain::analytics::{
    CapacityMetricView, CapacityStatus, HealthDistribution, HealthScoreView, PredictionKind,
    PredictionView, RowSource,
};

const MS_PER_DAY: i64 = 86_400_000;

/// Default of [`HealthReportInput::replacement_within_days`].
pub const DEFAULT_REPLACEMENT_WITHIN_DAYS: u32 = 180;

/// Everything a report is built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthReportInput {
    pub fleet_id: String,
    /// The stored report rendered (`…/reports/{id}/content`), if any.
    pub report_id: Option<String>,
    pub title: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub worst_n: usize,
    /// Battery replacements predicted up to this many days after `to` are listed.
    pub replacement_within_days: u32,
    /// The fleet's health scores (vehicle and fleet rows) whose period starts in `[from, to)`.
    pub scores: Vec<HealthScoreView>,
    /// The fleet's predictions made before `to`.
    pub predictions: Vec<PredictionView>,
    /// The fleet's capacity metrics.
    pub capacity: Vec<CapacityMetricView>,
}

/// Where a day's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DailyBasis {
    /// The fleet's own health score row of the day.
    FleetRow,
    /// Computed from the day's vehicle rows (no fleet row).
    Vehicles,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyHealth {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub day_start_ms: i64,
    pub basis: DailyBasis,
    /// The fleet's score (the median of its vehicles').
    pub score: Option<f64>,
    /// `null` when the fleet row has none (or one of another shape).
    pub distribution: Option<HealthDistribution>,
    /// Of the fleet row: `stream` or `reported`.
    pub source: Option<RowSource>,
}

/// A vehicle among the worst of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorstVehicle {
    pub vehicle_id: String,
    /// Mean of its scores over the period.
    pub score: f64,
    /// Its scored rows in the period.
    pub rows: u32,
    /// Means of the components over the rows that have them.
    pub battery: Option<f64>,
    pub reliability: Option<f64>,
    pub efficiency: Option<f64>,
    pub availability: Option<f64>,
    /// State of health of its latest row that has one (by period end).
    pub soh_pct: Option<f64>,
    pub soh_stderr_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PredictedFailure {
    pub vehicle_id: String,
    pub prediction_id: String,
    pub as_of: String,
    pub horizon_days: Option<i32>,
    /// Probability of a failure within `horizon_days` after `as_of`.
    pub probability: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub alarm: bool,
    pub threshold: Option<f64>,
    pub model: String,
    pub source: RowSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatteryReplacement {
    pub vehicle_id: String,
    pub prediction_id: String,
    pub as_of: String,
    /// The state of health, %, whose crossing calls for a replacement.
    pub threshold_pct: Option<f64>,
    /// When the state of health is predicted to cross it.
    pub predicted_at: String,
    /// `YYYY-MM-DD` of `predicted_at`.
    pub predicted_date: String,
    /// Days from `as_of` to `predicted_at`.
    pub days: Option<f64>,
    /// The interval: `as_of` + `lower` days, `as_of` + `upper` days (`null`: beyond the model's reach).
    pub earliest: Option<String>,
    pub latest: Option<String>,
    /// State of health, % per month.
    pub slope_per_month: Option<f64>,
    pub model: String,
    pub source: RowSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneShortfall {
    pub zone_id: String,
    /// Hours ahead with a shortfall in the zone.
    pub hours_short: u32,
    /// Its largest shortfall, vehicles.
    pub max_shortfall: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CapacityShortfall {
    pub metric_id: String,
    /// The zone the metric was computed for (`null`: every zone of the fleet).
    pub zone_id: Option<String>,
    /// The moment computed for (`as_of`, else when it was requested).
    pub as_of: String,
    pub horizon_hours: i32,
    pub available_vehicles: Option<i32>,
    pub peak_demand: Option<f64>,
    pub max_shortfall: f64,
    pub shortfall_hours: Option<i32>,
    /// From the metric's hours, the zones short.
    pub zones: Vec<ZoneShortfall>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthReportSummary {
    pub vehicles_scored: u32,
    /// Mean of the vehicles' mean scores.
    pub mean_score: Option<f64>,
    /// Vehicles whose newest failure-risk prediction of the period has an alarm.
    pub failure_alarms: u32,
    pub battery_replacements: u32,
    pub capacity_shortfalls: u32,
    /// Sum of the shortfall metrics' `shortfall_hours`.
    pub shortfall_hours: i64,
}

/// A fleet analytics report (JSON body of `GET /api/v1/fleets/{fleet_id}/analytics-report`
/// and `GET /api/v1/fleet-analytics/reports/{id}/content`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetHealthReport {
    pub fleet_id: String,
    pub report_id: Option<String>,
    pub title: Option<String>,
    pub from: String,
    pub to: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub worst_n: u32,
    pub replacement_within_days: u32,
    pub summary: HealthReportSummary,
    /// Of the period; `null` when no vehicle was scored.
    pub distribution: Option<HealthDistribution>,
    pub daily: Vec<DailyHealth>,
    pub worst_vehicles: Vec<WorstVehicle>,
    pub predicted_failures: Vec<PredictedFailure>,
    pub battery_replacements: Vec<BatteryReplacement>,
    pub capacity_shortfalls: Vec<CapacityShortfall>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Which of two rows of one subject was written last: higher version, then updated later.
fn recency(version: i64, updated_at: &str) -> (i64, i64) {
    (version, parse_rfc3339(updated_at).unwrap_or(i64::MIN))
}

/// The distribution of per-vehicle score lists (each vehicle's mean).
fn distribution_of(
    scores: &BTreeMap<&str, Vec<f64>>,
    worst_n: usize,
) -> Option<HealthDistribution> {
    let means: Vec<(String, f64)> = scores
        .iter()
        .filter_map(|(v, s)| mean(s).map(|m| (v.to_string(), m)))
        .collect();
    fleet_health(&means, worst_n).map(HealthDistribution::from)
}

/// One vehicle's rows over the period.
#[derive(Default)]
struct VehicleRows {
    scores: Vec<f64>,
    components: [Vec<f64>; 4],
    /// (period end, soh, its standard error) of the latest row with a state of health.
    soh: Option<(i64, f64, Option<f64>)>,
}

/// One UTC day's rows: the fleet's row that wins, and each vehicle's scores.
type DayRows<'a> = (Option<&'a HealthScoreView>, BTreeMap<&'a str, Vec<f64>>);

/// One element of a capacity metric's `hours` (the other keys are not needed here).
#[derive(Deserialize)]
struct HourShortfall {
    zone_id: String,
    shortfall: f64,
}

/// `days` after `base_ms` (saturating: stream rows are not validated like API bodies).
fn days_after(base_ms: i64, days: f64) -> i64 {
    base_ms.saturating_add((days * MS_PER_DAY as f64).round() as i64)
}

/// Assembles the report (see the module docs).
pub fn build(i: &HealthReportInput) -> FleetHealthReport {
    let in_period = |t: i64| t >= i.from_ms && t < i.to_ms;
    let mut days: BTreeMap<i64, DayRows<'_>> = BTreeMap::new();
    let mut vehicles: BTreeMap<&str, VehicleRows> = BTreeMap::new();
    for s in i.scores.iter().filter(|s| s.fleet_id == i.fleet_id) {
        let Some(start) = parse_rfc3339(&s.period_start).filter(|t| in_period(*t)) else {
            continue;
        };
        let day = days.entry(day_start(start)).or_default();
        let Some(v) = s.vehicle_id.as_deref() else {
            let newer = day.0.is_none_or(|cur| {
                recency(s.version, &s.updated_at) > recency(cur.version, &cur.updated_at)
            });
            if newer {
                day.0 = Some(s);
            }
            continue;
        };
        let rows = vehicles.entry(v).or_default();
        if let Some(score) = s.score {
            day.1.entry(v).or_default().push(score);
            rows.scores.push(score);
        }
        let parts = [s.battery, s.reliability, s.efficiency, s.availability];
        for (acc, x) in rows.components.iter_mut().zip(parts) {
            acc.extend(x);
        }
        if let (Some(soh), Some(end)) = (s.soh_pct, parse_rfc3339(&s.period_end)) {
            if rows.soh.is_none_or(|(e, _, _)| end >= e) {
                rows.soh = Some((end, soh, s.soh_stderr_pct));
            }
        }
    }
    let daily = days
        .iter()
        .map(|(&start, (fleet_row, by_vehicle))| {
            let day = rfc3339(start)[..10].to_string();
            match fleet_row {
                Some(row) => DailyHealth {
                    day,
                    day_start_ms: start,
                    basis: DailyBasis::FleetRow,
                    score: row.score,
                    distribution: row
                        .distribution
                        .clone()
                        .and_then(|d| serde_json::from_value(d).ok()),
                    source: Some(row.source),
                },
                None => {
                    let d = distribution_of(by_vehicle, i.worst_n);
                    DailyHealth {
                        day,
                        day_start_ms: start,
                        basis: DailyBasis::Vehicles,
                        score: d.as_ref().map(|d| d.median),
                        distribution: d,
                        source: None,
                    }
                }
            }
        })
        .collect();
    let period_scores: BTreeMap<&str, Vec<f64>> = vehicles
        .iter()
        .map(|(v, r)| (*v, r.scores.clone()))
        .collect();
    let distribution = distribution_of(&period_scores, i.worst_n);
    let worst_vehicles = distribution
        .iter()
        .flat_map(|d| &d.worst)
        .map(|w| {
            let r = &vehicles[w.vehicle_id.as_str()];
            let [battery, reliability, efficiency, availability] =
                [0, 1, 2, 3].map(|k| mean(&r.components[k]));
            WorstVehicle {
                vehicle_id: w.vehicle_id.clone(),
                score: w.score,
                rows: r.scores.len() as u32,
                battery,
                reliability,
                efficiency,
                availability,
                soh_pct: r.soh.map(|s| s.1),
                soh_stderr_pct: r.soh.and_then(|s| s.2),
            }
        })
        .collect();

    // The newest prediction of each vehicle and kind: failure risks made in the period,
    // state-of-health crossings made before its end.
    let mut newest: BTreeMap<(&str, PredictionKind), (&PredictionView, i64)> = BTreeMap::new();
    for p in i.predictions.iter().filter(|p| p.fleet_id == i.fleet_id) {
        let Some(as_of) = parse_rfc3339(&p.as_of) else {
            continue;
        };
        let made = match p.kind {
            PredictionKind::FailureRisk => in_period(as_of),
            PredictionKind::SohThreshold => as_of < i.to_ms,
        };
        if !made {
            continue;
        }
        let key = (p.vehicle_id.as_str(), p.kind);
        let newer = newest.get(&key).is_none_or(|(cur, cur_as_of)| {
            (as_of, recency(p.version, &p.updated_at))
                > (*cur_as_of, recency(cur.version, &cur.updated_at))
        });
        if newer {
            newest.insert(key, (p, as_of));
        }
    }
    let mut failures: Vec<PredictedFailure> = newest
        .values()
        .filter(|(p, _)| p.kind == PredictionKind::FailureRisk)
        .filter(|(p, _)| p.value.is_some() || p.alarm == Some(true))
        .map(|(p, as_of)| PredictedFailure {
            vehicle_id: p.vehicle_id.clone(),
            prediction_id: p.id.clone(),
            as_of: rfc3339(*as_of),
            horizon_days: p.horizon_days,
            probability: p.value,
            lower: p.lower,
            upper: p.upper,
            alarm: p.alarm == Some(true),
            threshold: p.threshold,
            model: p.model.clone(),
            source: p.source,
        })
        .collect();
    failures.sort_by(|a, b| {
        b.alarm
            .cmp(&a.alarm)
            .then_with(|| {
                let (x, y) = (a.probability.unwrap_or(-1.0), b.probability.unwrap_or(-1.0));
                y.total_cmp(&x)
            })
            .then_with(|| a.vehicle_id.cmp(&b.vehicle_id))
    });
    let alarms = failures.iter().filter(|f| f.alarm).count();
    failures.truncate(alarms.max(i.worst_n));

    let horizon_end = i.to_ms + i64::from(i.replacement_within_days) * MS_PER_DAY;
    let mut replacements: Vec<(i64, BatteryReplacement)> = newest
        .values()
        .filter(|(p, _)| p.kind == PredictionKind::SohThreshold)
        .filter_map(|(p, as_of)| {
            let at = p.predicted_at.as_deref().and_then(parse_rfc3339)?;
            (at < horizon_end).then(|| {
                let date = rfc3339(at);
                (
                    at,
                    BatteryReplacement {
                        vehicle_id: p.vehicle_id.clone(),
                        prediction_id: p.id.clone(),
                        as_of: rfc3339(*as_of),
                        threshold_pct: p.threshold,
                        predicted_date: date[..10].to_string(),
                        predicted_at: date,
                        days: p.value,
                        earliest: p.lower.map(|d| rfc3339(days_after(*as_of, d))),
                        latest: p.upper.map(|d| rfc3339(days_after(*as_of, d))),
                        slope_per_month: p.slope_per_month,
                        model: p.model.clone(),
                        source: p.source,
                    },
                )
            })
        })
        .collect();
    replacements.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.vehicle_id.cmp(&b.1.vehicle_id))
    });
    let battery_replacements: Vec<BatteryReplacement> =
        replacements.into_iter().map(|(_, r)| r).collect();

    let mut shortfalls: Vec<(i64, CapacityShortfall)> = i
        .capacity
        .iter()
        .filter(|m| m.fleet_id == i.fleet_id && m.status == CapacityStatus::Completed)
        .filter_map(|m| {
            let at = parse_rfc3339(m.as_of.as_deref().unwrap_or(&m.created_at))?;
            let max = m.max_shortfall.filter(|s| *s > 0.0)?;
            in_period(at).then(|| (at, shortfall(m, at, max)))
        })
        .collect();
    shortfalls.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.metric_id.cmp(&b.1.metric_id))
    });
    let capacity_shortfalls: Vec<CapacityShortfall> =
        shortfalls.into_iter().map(|(_, s)| s).collect();

    FleetHealthReport {
        fleet_id: i.fleet_id.clone(),
        report_id: i.report_id.clone(),
        title: i.title.clone(),
        from: rfc3339(i.from_ms),
        to: rfc3339(i.to_ms),
        from_ms: i.from_ms,
        to_ms: i.to_ms,
        worst_n: i.worst_n as u32,
        replacement_within_days: i.replacement_within_days,
        summary: HealthReportSummary {
            vehicles_scored: distribution.as_ref().map_or(0, |d| d.vehicles),
            mean_score: distribution.as_ref().map(|d| d.mean),
            failure_alarms: alarms as u32,
            battery_replacements: battery_replacements.len() as u32,
            capacity_shortfalls: capacity_shortfalls.len() as u32,
            shortfall_hours: capacity_shortfalls
                .iter()
                .filter_map(|s| s.shortfall_hours)
                .map(i64::from)
                .sum(),
        },
        distribution,
        daily,
        worst_vehicles,
        predicted_failures: failures,
        battery_replacements,
        capacity_shortfalls,
    }
}

/// A completed capacity metric with a shortfall, its hours grouped by zone.
fn shortfall(m: &CapacityMetricView, at: i64, max: f64) -> CapacityShortfall {
    let mut zones: BTreeMap<String, (u32, f64)> = BTreeMap::new();
    let hours = m.hours.as_ref().and_then(|h| h.as_array());
    for h in hours.into_iter().flatten() {
        let Ok(h) = serde_json::from_value::<HourShortfall>(h.clone()) else {
            continue;
        };
        if h.shortfall > 0.0 {
            let z = zones.entry(h.zone_id).or_insert((0, 0.0));
            z.0 += 1;
            z.1 = z.1.max(h.shortfall);
        }
    }
    CapacityShortfall {
        metric_id: m.id.clone(),
        zone_id: m.zone_id.clone(),
        as_of: rfc3339(at),
        horizon_hours: m.horizon_hours,
        available_vehicles: m.available_vehicles,
        peak_demand: m.peak_demand,
        max_shortfall: max,
        shortfall_hours: m.shortfall_hours,
        zones: zones
            .into_iter()
            .map(|(zone_id, (hours_short, max_shortfall))| ZoneShortfall {
                zone_id,
                hours_short,
                max_shortfall,
            })
            .collect(),
    }
}

fn source_str(s: RowSource) -> &'static str {
    match s {
        RowSource::Stream => "stream",
        RowSource::Reported => "reported",
    }
}

/// The report as CSV in long form: header `section,item,field,value`, one value per line
/// (numbers in shortest round-trip form, empty for `null`). Sections: `report`, `summary`,
/// `distribution` (item `period`), `daily` (item the day; its worst vehicles as
/// `worst_<k>_vehicle` / `worst_<k>_score`), `vehicle`, `failure`, `battery` (item the vehicle
/// id), `capacity` (item the metric id; per zone short, item `<metric id>/<zone id>`).
pub fn to_csv(r: &FleetHealthReport) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |section: &str, item: &str, field: &str, value: String| {
        rows.push([section.into(), item.into(), field.into(), value]);
    };
    let f = &r.fleet_id;
    row("report", f, "from", r.from.clone());
    row("report", f, "to", r.to.clone());
    row(
        "report",
        f,
        "report_id",
        r.report_id.clone().unwrap_or_default(),
    );
    row("report", f, "title", r.title.clone().unwrap_or_default());
    row("report", f, "worst_n", r.worst_n.to_string());
    row(
        "report",
        f,
        "replacement_within_days",
        r.replacement_within_days.to_string(),
    );
    let s = &r.summary;
    for (field, v) in [
        ("vehicles_scored", Some(f64::from(s.vehicles_scored))),
        ("mean_score", s.mean_score),
        ("failure_alarms", Some(f64::from(s.failure_alarms))),
        (
            "battery_replacements",
            Some(f64::from(s.battery_replacements)),
        ),
        (
            "capacity_shortfalls",
            Some(f64::from(s.capacity_shortfalls)),
        ),
        ("shortfall_hours", Some(s.shortfall_hours as f64)),
    ] {
        row("summary", "", field, num(v));
    }
    let dist_rows = |section: &str,
                     item: &str,
                     d: &HealthDistribution,
                     row: &mut dyn FnMut(&str, &str, &str, String)| {
        for (field, v) in [
            ("vehicles", f64::from(d.vehicles)),
            ("min", d.min),
            ("p10", d.p10),
            ("median", d.median),
            ("mean", d.mean),
        ] {
            row(section, item, field, v.to_string());
        }
    };
    if let Some(d) = &r.distribution {
        dist_rows("distribution", "period", d, &mut row);
    }
    for d in &r.daily {
        let basis = match d.basis {
            DailyBasis::FleetRow => "fleet_row",
            DailyBasis::Vehicles => "vehicles",
        };
        row("daily", &d.day, "basis", basis.into());
        row(
            "daily",
            &d.day,
            "source",
            d.source.map(source_str).unwrap_or_default().into(),
        );
        row("daily", &d.day, "score", num(d.score));
        if let Some(dist) = &d.distribution {
            dist_rows("daily", &d.day, dist, &mut row);
            for (k, w) in dist.worst.iter().enumerate() {
                let n = k + 1;
                row(
                    "daily",
                    &d.day,
                    &format!("worst_{n}_vehicle"),
                    w.vehicle_id.clone(),
                );
                row(
                    "daily",
                    &d.day,
                    &format!("worst_{n}_score"),
                    w.score.to_string(),
                );
            }
        }
    }
    for v in &r.worst_vehicles {
        let id = &v.vehicle_id;
        row("vehicle", id, "score", v.score.to_string());
        row("vehicle", id, "rows", v.rows.to_string());
        for (field, x) in [
            ("battery", v.battery),
            ("reliability", v.reliability),
            ("efficiency", v.efficiency),
            ("availability", v.availability),
            ("soh_pct", v.soh_pct),
            ("soh_stderr_pct", v.soh_stderr_pct),
        ] {
            row("vehicle", id, field, num(x));
        }
    }
    for p in &r.predicted_failures {
        let id = &p.vehicle_id;
        row("failure", id, "as_of", p.as_of.clone());
        row(
            "failure",
            id,
            "horizon_days",
            num(p.horizon_days.map(f64::from)),
        );
        row("failure", id, "probability", num(p.probability));
        row("failure", id, "lower", num(p.lower));
        row("failure", id, "upper", num(p.upper));
        row("failure", id, "alarm", p.alarm.to_string());
        row("failure", id, "threshold", num(p.threshold));
        row("failure", id, "model", p.model.clone());
    }
    for b in &r.battery_replacements {
        let id = &b.vehicle_id;
        row("battery", id, "as_of", b.as_of.clone());
        row("battery", id, "threshold_pct", num(b.threshold_pct));
        row("battery", id, "predicted_at", b.predicted_at.clone());
        row("battery", id, "predicted_date", b.predicted_date.clone());
        row("battery", id, "days", num(b.days));
        row(
            "battery",
            id,
            "earliest",
            b.earliest.clone().unwrap_or_default(),
        );
        row(
            "battery",
            id,
            "latest",
            b.latest.clone().unwrap_or_default(),
        );
        row("battery", id, "slope_per_month", num(b.slope_per_month));
        row("battery", id, "model", b.model.clone());
    }
    for c in &r.capacity_shortfalls {
        let id = &c.metric_id;
        row(
            "capacity",
            id,
            "zone_id",
            c.zone_id.clone().unwrap_or_default(),
        );
        row("capacity", id, "as_of", c.as_of.clone());
        row("capacity", id, "horizon_hours", c.horizon_hours.to_string());
        row(
            "capacity",
            id,
            "available_vehicles",
            num(c.available_vehicles.map(f64::from)),
        );
        row("capacity", id, "peak_demand", num(c.peak_demand));
        row("capacity", id, "max_shortfall", c.max_shortfall.to_string());
        row(
            "capacity",
            id,
            "shortfall_hours",
            num(c.shortfall_hours.map(f64::from)),
        );
        for z in &c.zones {
            let item = format!("{id}/{}", z.zone_id);
            row("capacity", &item, "hours_short", z.hours_short.to_string());
            row(
                "capacity",
                &item,
                "max_shortfall",
                z.max_shortfall.to_string(),
            );
        }
    }
    long_csv(rows)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    const DAY0: i64 = 1_714_521_600_000; // 2024-05-01T00:00:00Z

    fn t(ms: i64) -> String {
        rfc3339(ms)
    }

    fn score(vehicle: Option<&str>, day: i64, score: f64, extra: Value) -> HealthScoreView {
        let mut v = json!({
            "id": format!("s-{vehicle:?}-{day}-{score}"), "fleet_id": "f", "vehicle_id": vehicle,
            "period_start": t(DAY0 + day * MS_PER_DAY), "period_end": t(DAY0 + (day + 1) * MS_PER_DAY),
            "score": score, "battery": null, "reliability": null, "efficiency": null,
            "availability": null, "soh_pct": null, "soh_stderr_pct": null, "distribution": null,
            "source": "stream", "version": 1, "created_at": t(DAY0), "updated_at": t(DAY0)});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn prediction(vehicle: &str, kind: &str, as_of: i64, extra: Value) -> PredictionView {
        let mut v = json!({
            "id": format!("p-{vehicle}-{kind}-{as_of}"), "fleet_id": "f", "vehicle_id": vehicle,
            "kind": kind, "as_of": t(as_of), "horizon_days": null, "value": null, "lower": null,
            "upper": null, "alarm": null, "threshold": null, "predicted_at": null,
            "slope_per_month": null, "slope_per_1000_km": null, "inputs": {}, "model": "m",
            "source": "reported", "version": 0, "created_at": t(as_of), "updated_at": t(as_of)});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn capacity(id: &str, status: &str, as_of: i64, max: f64, hours: Value) -> CapacityMetricView {
        serde_json::from_value(json!({
            "id": id, "fleet_id": "f", "zone_id": null, "as_of": t(as_of), "horizon_hours": 12,
            "demand_quantile": 0.9, "history_days": 14, "status": status, "hours": hours,
            "available_vehicles": 4, "peak_demand": 6.5, "max_shortfall": max,
            "shortfall_hours": 3, "error": null, "started_at": null, "finished_at": null,
            "created_at": t(as_of), "updated_at": t(as_of)}))
        .unwrap()
    }

    fn input() -> HealthReportInput {
        let fleet_dist = json!({"vehicles": 3, "min": 50.0, "p10": 54.0, "median": 70.0,
                                "mean": 70.0, "worst": [{"vehicle_id": "v1", "score": 50.0}]});
        HealthReportInput {
            fleet_id: "f".into(),
            report_id: Some("r1".into()),
            title: Some("Weekly, fleet f".into()),
            from_ms: DAY0,
            to_ms: DAY0 + 3 * MS_PER_DAY,
            worst_n: 2,
            replacement_within_days: 30,
            scores: vec![
                // Day 0: vehicles only.
                score(
                    Some("v1"),
                    0,
                    40.0,
                    json!({"battery": 60.0, "soh_pct": 88.0, "soh_stderr_pct": 1.0}),
                ),
                score(Some("v2"), 0, 80.0, json!({})),
                score(Some("v3"), 0, 60.0, json!({})),
                // Day 1: a reported fleet row and the stream's (version 3, wins).
                score(
                    Some("v1"),
                    1,
                    50.0,
                    json!({"battery": 70.0, "soh_pct": 87.5, "reliability": 90.0}),
                ),
                score(Some("v2"), 1, 90.0, json!({})),
                score(Some("v3"), 1, 70.0, json!({})),
                score(
                    None,
                    1,
                    11.0,
                    json!({"source": "reported", "version": 0, "updated_at": t(DAY0 + 9 * MS_PER_DAY)}),
                ),
                score(
                    None,
                    1,
                    70.0,
                    json!({"version": 3, "distribution": fleet_dist}),
                ),
                // Outside the period, and of another fleet.
                score(Some("v1"), 3, 0.0, json!({})),
                score(Some("v1"), 1, 0.0, json!({"fleet_id": "g"})),
                // A vehicle row without a score counts for nothing.
                score(Some("v4"), 2, 0.0, json!({"score": null})),
            ],
            predictions: vec![
                prediction(
                    "v1",
                    "failure_risk",
                    DAY0 + 36 * 3_600_000,
                    json!({"value": 0.7, "alarm": true, "threshold": 0.5, "horizon_days": 14}),
                ),
                // Older than v1's newest: left out.
                prediction(
                    "v1",
                    "failure_risk",
                    DAY0 + 3_600_000,
                    json!({"value": 0.1, "alarm": false, "horizon_days": 14}),
                ),
                prediction(
                    "v2",
                    "failure_risk",
                    DAY0 + MS_PER_DAY,
                    json!({"value": 0.3, "alarm": false, "horizon_days": 14}),
                ),
                prediction(
                    "v3",
                    "failure_risk",
                    DAY0 + MS_PER_DAY,
                    json!({"value": 0.2, "alarm": false, "horizon_days": 14}),
                ),
                // Made before the period: not a prediction of the period.
                prediction(
                    "v4",
                    "failure_risk",
                    DAY0 - 1,
                    json!({"value": 0.9, "alarm": true, "horizon_days": 14}),
                ),
                prediction(
                    "v2",
                    "soh_threshold",
                    DAY0 + MS_PER_DAY,
                    json!({"threshold": 80.0, "value": 20.0,
                    "lower": 10.0, "upper": 45.0, "predicted_at": t(DAY0 + 21 * MS_PER_DAY), "slope_per_month": -0.4}),
                ),
                // Crosses beyond to + 30 days: not listed.
                prediction(
                    "v3",
                    "soh_threshold",
                    DAY0,
                    json!({"threshold": 80.0, "value": 40.0,
                    "predicted_at": t(DAY0 + 40 * MS_PER_DAY)}),
                ),
                // No crossing foreseen.
                prediction("v1", "soh_threshold", DAY0, json!({"threshold": 80.0})),
            ],
            capacity: vec![
                capacity(
                    "c1",
                    "completed",
                    DAY0 + 30 * 3_600_000,
                    2.5,
                    json!([
                    {"zone_id": "z1", "hour_start": "x", "shortfall": 0.0},
                    {"zone_id": "z1", "shortfall": 1.0}, {"zone_id": "z2", "shortfall": 2.5},
                    {"zone_id": "z1", "shortfall": 0.5}, {"bad": true}]),
                ),
                capacity("c2", "completed", DAY0 + MS_PER_DAY, 0.0, Value::Null),
                capacity("c3", "queued", DAY0 + MS_PER_DAY, 5.0, Value::Null),
                capacity("c4", "completed", DAY0 + 4 * MS_PER_DAY, 5.0, Value::Null),
            ],
        }
    }

    #[test]
    fn sections_follow_their_definitions() {
        let r = build(&input());
        // Period means: v1 45, v2 85, v3 65 → min 45, p10 45 + 0.2·20 = 49, median 65.
        let d = r.distribution.as_ref().unwrap();
        assert_eq!((d.vehicles, d.min, d.median, d.mean), (3, 45.0, 65.0, 65.0));
        assert!((d.p10 - 49.0).abs() < 1e-9);
        let worst: Vec<(&str, f64)> = d
            .worst
            .iter()
            .map(|w| (w.vehicle_id.as_str(), w.score))
            .collect();
        assert_eq!(worst, [("v1", 45.0), ("v3", 65.0)]);
        assert_eq!(r.summary.vehicles_scored, 3);

        assert_eq!(r.daily.len(), 3, "days 0, 1 and 2 (v4's unscored row)");
        let d0 = &r.daily[0];
        assert_eq!(
            (d0.day.as_str(), d0.basis, d0.score),
            ("2024-05-01", DailyBasis::Vehicles, Some(60.0))
        );
        let dist0 = d0.distribution.as_ref().unwrap();
        assert_eq!((dist0.min, dist0.p10, dist0.mean), (40.0, 44.0, 60.0));
        let d1 = &r.daily[1];
        assert_eq!(
            (d1.basis, d1.score, d1.source),
            (DailyBasis::FleetRow, Some(70.0), Some(RowSource::Stream))
        );
        assert_eq!(d1.distribution.as_ref().unwrap().p10, 54.0);
        assert_eq!((r.daily[2].score, &r.daily[2].distribution), (None, &None));

        let v1 = &r.worst_vehicles[0];
        assert_eq!((v1.vehicle_id.as_str(), v1.score, v1.rows), ("v1", 45.0, 2));
        assert_eq!(
            (v1.battery, v1.reliability, v1.efficiency),
            (Some(65.0), Some(90.0), None)
        );
        assert_eq!(
            (v1.soh_pct, v1.soh_stderr_pct),
            (Some(87.5), None),
            "the latest row's"
        );

        let f: Vec<(&str, bool, Option<f64>)> = r
            .predicted_failures
            .iter()
            .map(|p| (p.vehicle_id.as_str(), p.alarm, p.probability))
            .collect();
        assert_eq!(f, [("v1", true, Some(0.7)), ("v2", false, Some(0.3))]);
        assert_eq!(r.predicted_failures[0].as_of, "2024-05-02T12:00:00Z");
        assert_eq!(r.summary.failure_alarms, 1);

        assert_eq!(r.battery_replacements.len(), 1);
        let b = &r.battery_replacements[0];
        assert_eq!(b.vehicle_id, "v2");
        assert_eq!(b.predicted_date, "2024-05-22");
        assert_eq!(b.earliest.as_deref(), Some("2024-05-12T00:00:00Z"));
        assert_eq!(b.latest.as_deref(), Some("2024-06-16T00:00:00Z"));

        assert_eq!(r.capacity_shortfalls.len(), 1);
        let c = &r.capacity_shortfalls[0];
        assert_eq!(
            (c.metric_id.as_str(), c.max_shortfall, c.as_of.as_str()),
            ("c1", 2.5, "2024-05-02T06:00:00Z")
        );
        assert_eq!(
            c.zones,
            [
                ZoneShortfall {
                    zone_id: "z1".into(),
                    hours_short: 2,
                    max_shortfall: 1.0
                },
                ZoneShortfall {
                    zone_id: "z2".into(),
                    hours_short: 1,
                    max_shortfall: 2.5
                },
            ]
        );
        assert_eq!(r.summary.shortfall_hours, 3);

        // More alarms than worst_n: every alarm is listed.
        let mut i = input();
        i.worst_n = 1;
        i.predictions.push(prediction(
            "v3",
            "failure_risk",
            DAY0 + 2 * MS_PER_DAY,
            json!({"value": 0.6, "alarm": true}),
        ));
        let r = build(&i);
        let f: Vec<&str> = r
            .predicted_failures
            .iter()
            .map(|p| p.vehicle_id.as_str())
            .collect();
        assert_eq!(f, ["v1", "v3"]);
        assert_eq!(r.worst_vehicles.len(), 1);
        // A longer replacement horizon lists v3 too, soonest first.
        i.replacement_within_days = 40;
        let b: Vec<String> = build(&i)
            .battery_replacements
            .into_iter()
            .map(|b| b.vehicle_id)
            .collect();
        assert_eq!(b, ["v2", "v3"]);
    }

    #[test]
    fn csv_is_long_form() {
        let r = build(&input());
        let csv = to_csv(&r);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], "section,item,field,value");
        for want in [
            "report,f,title,\"Weekly, fleet f\"",
            "summary,,vehicles_scored,3",
            "distribution,period,median,65",
            "daily,2024-05-01,basis,vehicles",
            "daily,2024-05-02,source,stream",
            "daily,2024-05-02,worst_1_vehicle,v1",
            "daily,2024-05-03,score,",
            "vehicle,v1,score,45",
            "vehicle,v3,battery,",
            "failure,v1,alarm,true",
            "battery,v2,predicted_date,2024-05-22",
            "capacity,c1,max_shortfall,2.5",
            "capacity,c1/z1,hours_short,2",
        ] {
            assert!(lines.contains(&want), "{want} missing in\n{csv}");
        }
        assert!(lines.iter().filter(|l| !l.is_empty()).all(|l| l
            .replace("\"Weekly, fleet f\"", "x")
            .split(',')
            .count()
            == 4));
    }

    #[test]
    fn an_empty_period_reports_nothing() {
        let r = build(&HealthReportInput {
            fleet_id: "f".into(),
            from_ms: DAY0,
            to_ms: DAY0 + MS_PER_DAY,
            worst_n: 5,
            ..Default::default()
        });
        assert_eq!(r.distribution, None);
        assert!(r.daily.is_empty() && r.worst_vehicles.is_empty());
        assert_eq!(r.summary.vehicles_scored, 0);
        assert_eq!(to_csv(&r).matches("\r\n").count(), 13);
    }
}
