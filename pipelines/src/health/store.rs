//! The health pipeline's writes: facts, predictions and trends per closed vehicle-day, then
//! each touched fleet-day recomputed from the facts of all its vehicles (see [`super`]).

use std::collections::HashMap;

use atlasmesh_core::analytics::battery::MONTH_DAYS;
use atlasmesh_core::analytics::failure::FEATURE_NAMES;
use atlasmesh_core::analytics::health::{fleet_health, health_score, HealthInputs, HealthScore};
use atlasmesh_core::analytics::vehicle_day::DAY_MS;
use atlasmesh_core::metric_names as m;
use atlasmesh_sinks::clickhouse::{datetime_secs, FleetHealthRow, VehicleHealthRow};
use atlasmesh_sinks::store::derived_id;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};

use super::state::{fleet_days, fleet_median_kwh_per_km, VehicleDayFacts};
use super::HealthPipeline;
use crate::{Error, Result};

/// Nominal capacities by vehicle id.
pub(super) async fn nominals(pool: &PgPool) -> Result<HashMap<String, f64>> {
    let rows: Vec<(String, f64)> =
        sqlx::query_as("SELECT vehicle_id, nominal_kwh FROM vehicle_batteries")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// A value a `CHECK (x BETWEEN lo AND hi)` column takes, else NULL (an estimate far off
/// because of a wrong nominal capacity must not stop the pipeline).
fn within(x: Option<f64>, lo: f64, hi: f64) -> Option<f64> {
    x.filter(|v| v.is_finite() && (lo..=hi).contains(v))
}

pub(super) async fn write(p: &HealthPipeline, days: &[VehicleDayFacts]) -> Result<()> {
    let mut tx = p.pool.begin().await?;
    for f in days {
        let facts = serde_json::to_value(f).map_err(|e| Error::Internal(format!("facts: {e}")))?;
        sqlx::query(
            "INSERT INTO health_vehicle_days (fleet_id, vehicle_id, day_ms, facts)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (fleet_id, day_ms, vehicle_id) DO UPDATE SET facts = EXCLUDED.facts",
        )
        .bind(&f.fleet_id)
        .bind(&f.vehicle_id)
        .bind(f.day_ms)
        .bind(facts)
        .execute(&mut *tx)
        .await?;
        predictions(&mut tx, p, f).await?;
    }
    tx.commit().await?;
    for (fleet, day_ms) in fleet_days(days) {
        recompute(p, &fleet, day_ms).await?;
    }
    Ok(())
}

/// The newest failure-risk and state-of-health predictions of the vehicle and its
/// state-of-health trend, moved forward to this day (an older day never overwrites a newer).
async fn predictions(tx: &mut PgConnection, p: &HealthPipeline, f: &VehicleDayFacts) -> Result<()> {
    let as_of_ms = f.day_ms + DAY_MS;
    if let Some(r) = &f.risk {
        let features: serde_json::Map<String, Value> = FEATURE_NAMES
            .iter()
            .zip(r.inputs.vector())
            .map(|(n, v)| (n.to_string(), json!(v)))
            .collect();
        upsert_prediction(
            tx,
            Prediction {
                id: derived_id(&["prediction", &f.vehicle_id, "failure_risk"]),
                f,
                kind: "failure_risk",
                as_of_ms,
                horizon_days: Some(r.horizon_days as i32),
                value: Some(r.probability),
                interval: (Some(r.interval.0), Some(r.interval.1)),
                alarm: Some(r.alarm),
                threshold: Some(r.threshold),
                predicted_at_ms: None,
                slopes: (None, None),
                inputs: json!({"inputs": r.inputs, "features": features}),
                model: &p.model_name,
            },
        )
        .await?;
    }
    let Some(t) = &f.trajectory else {
        return Ok(());
    };
    let days_at = |ms: i64| (ms - as_of_ms) as f64 / DAY_MS as f64;
    upsert_prediction(
        tx,
        Prediction {
            id: derived_id(&["prediction", &f.vehicle_id, "soh_threshold"]),
            f,
            kind: "soh_threshold",
            as_of_ms,
            horizon_days: None,
            value: f.days_to_soh_threshold(),
            interval: (
                t.crosses_between_ms.map(|(lo, _)| days_at(lo)),
                t.crosses_between_ms.and_then(|(_, hi)| hi).map(days_at),
            ),
            alarm: None,
            threshold: Some(t.threshold_pct),
            predicted_at_ms: t.crosses_at_ms,
            slopes: (Some(t.per_month), Some(t.per_1000_km)),
            inputs: json!({
                "days": t.days,
                "first_day_ms": f.soh_first_day_ms,
                "soh_now_pct": t.soh_now_pct,
                "per_month_se": t.per_month_se,
                "per_1000_km_se": t.per_1000_km_se,
                "nominal_kwh": f.nominal_kwh,
            }),
            model: "ols-soh-trajectory",
        },
    )
    .await?;
    let direction = if t.per_month.abs() <= 2.0 * t.per_month_se {
        "stable"
    } else if t.per_month > 0.0 {
        "improving"
    } else {
        "declining"
    };
    let start_ms = f.soh_first_day_ms.unwrap_or(f.day_ms).min(f.day_ms);
    sqlx::query(
        "INSERT INTO analytics_trends (id, fleet_id, vehicle_id, metric, period_start, period_end,
             points, slope_per_day, slope_se, slope_per_1000_km, direction, value_now, source,
             version)
         VALUES ($1, $2, $3, 'soh_pct', to_timestamp($4::float8 / 1000), to_timestamp($5::float8 / 1000),
             $6, $7, $8, $9, $10, $11, 'stream', 1)
         ON CONFLICT (id) DO UPDATE SET period_start = EXCLUDED.period_start,
             period_end = EXCLUDED.period_end, points = EXCLUDED.points,
             slope_per_day = EXCLUDED.slope_per_day, slope_se = EXCLUDED.slope_se,
             slope_per_1000_km = EXCLUDED.slope_per_1000_km, direction = EXCLUDED.direction,
             value_now = EXCLUDED.value_now, version = analytics_trends.version + 1,
             updated_at = now()
         WHERE analytics_trends.period_end <= EXCLUDED.period_end",
    )
    .bind(derived_id(&["trend", &f.vehicle_id, "soh_pct"]))
    .bind(&f.fleet_id)
    .bind(&f.vehicle_id)
    .bind(start_ms as f64)
    .bind(as_of_ms as f64)
    .bind(t.days as i32)
    .bind(t.per_month / MONTH_DAYS)
    .bind(t.per_month_se / MONTH_DAYS)
    .bind(t.per_1000_km)
    .bind(direction)
    .bind(t.soh_now_pct)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

struct Prediction<'a> {
    id: String,
    f: &'a VehicleDayFacts,
    kind: &'static str,
    as_of_ms: i64,
    horizon_days: Option<i32>,
    value: Option<f64>,
    interval: (Option<f64>, Option<f64>),
    alarm: Option<bool>,
    threshold: Option<f64>,
    predicted_at_ms: Option<i64>,
    /// Per month, per 1,000 km.
    slopes: (Option<f64>, Option<f64>),
    inputs: Value,
    model: &'a str,
}

async fn upsert_prediction(tx: &mut PgConnection, r: Prediction<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO analytics_predictions (id, fleet_id, vehicle_id, kind, as_of, horizon_days,
             value, lower, upper, alarm, threshold, predicted_at, slope_per_month,
             slope_per_1000_km, inputs, model, source, version)
         VALUES ($1, $2, $3, $4, to_timestamp($5::float8 / 1000), $6, $7, $8, $9, $10, $11,
             to_timestamp($12::float8 / 1000), $13, $14, $15, $16, 'stream', 1)
         ON CONFLICT (id) DO UPDATE SET as_of = EXCLUDED.as_of,
             horizon_days = EXCLUDED.horizon_days, value = EXCLUDED.value,
             lower = EXCLUDED.lower, upper = EXCLUDED.upper, alarm = EXCLUDED.alarm,
             threshold = EXCLUDED.threshold, predicted_at = EXCLUDED.predicted_at,
             slope_per_month = EXCLUDED.slope_per_month,
             slope_per_1000_km = EXCLUDED.slope_per_1000_km, inputs = EXCLUDED.inputs,
             model = EXCLUDED.model, version = analytics_predictions.version + 1,
             updated_at = now()
         WHERE analytics_predictions.as_of <= EXCLUDED.as_of",
    )
    .bind(&r.id)
    .bind(&r.f.fleet_id)
    .bind(&r.f.vehicle_id)
    .bind(r.kind)
    .bind(r.as_of_ms as f64)
    .bind(r.horizon_days)
    .bind(r.value.filter(|v| v.is_finite()))
    .bind(r.interval.0.filter(|v| v.is_finite()))
    .bind(r.interval.1.filter(|v| v.is_finite()))
    .bind(r.alarm)
    .bind(r.threshold)
    .bind(r.predicted_at_ms.map(|ms| ms as f64))
    .bind(r.slopes.0.filter(|v| v.is_finite()))
    .bind(r.slopes.1.filter(|v| v.is_finite()))
    .bind(r.inputs)
    .bind(r.model)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One vehicle's row of a fleet-day.
struct Scored<'a> {
    f: &'a VehicleDayFacts,
    health: HealthScore,
}

/// Recomputes the fleet-day from the facts of all its vehicles and writes it with its next
/// version (ClickHouse first; PostgreSQL commits the version with its rows, so a failed write
/// is done again with the same version).
async fn recompute(p: &HealthPipeline, fleet: &str, day_ms: i64) -> Result<()> {
    let mut tx = p.pool.begin().await?;
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO health_day_versions (fleet_id, day_ms, version) VALUES ($1, $2, 1)
         ON CONFLICT (fleet_id, day_ms) DO UPDATE SET version = health_day_versions.version + 1
         RETURNING version",
    )
    .bind(fleet)
    .bind(day_ms)
    .fetch_one(&mut *tx)
    .await?;
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT facts FROM health_vehicle_days WHERE fleet_id = $1 AND day_ms = $2 ORDER BY vehicle_id",
    )
    .bind(fleet)
    .bind(day_ms)
    .fetch_all(&mut *tx)
    .await?;
    let facts: Vec<VehicleDayFacts> = rows
        .into_iter()
        .map(serde_json::from_value)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Internal(format!("health_vehicle_days facts: {e}")))?;
    let median = fleet_median_kwh_per_km(&facts);
    let scored: Vec<Scored<'_>> = facts
        .iter()
        .map(|f| Scored {
            f,
            health: health_score(
                &HealthInputs {
                    counters: &f.counters,
                    soh_pct: f.latest_soh_pct,
                    fleet_median_kwh_per_km: median,
                },
                &p.score,
            ),
        })
        .collect();
    let scores: Vec<(String, f64)> = scored
        .iter()
        .filter_map(|s| s.health.score.map(|v| (s.f.vehicle_id.clone(), v)))
        .collect();
    let fleet_dist = fleet_health(&scores, p.worst_vehicles);
    let version_u32 = u32::try_from(version).unwrap_or(u32::MAX);
    let emitted = atlasmesh_core::clock::now_ms();
    let vehicle_rows: Vec<VehicleHealthRow> = scored
        .iter()
        .map(|s| vehicle_row(s, median, day_ms, version_u32, emitted))
        .collect();
    let alarms = scored
        .iter()
        .filter(|s| s.f.risk.is_some_and(|r| r.alarm))
        .count() as u32;
    let fleet_row = FleetHealthRow {
        fleet_id: fleet.to_string(),
        day_start: datetime_secs(day_ms),
        day_ms,
        version: version_u32,
        vehicles: facts.len() as u32,
        scored: scores.len() as u32,
        min_score: fleet_dist.as_ref().map(|d| d.min),
        p10_score: fleet_dist.as_ref().map(|d| d.p10),
        median_score: fleet_dist.as_ref().map(|d| d.median),
        mean_score: fleet_dist.as_ref().map(|d| d.mean),
        worst_vehicles: fleet_dist
            .as_ref()
            .map(|d| d.worst.iter().map(|w| w.0.clone()).collect())
            .unwrap_or_default(),
        worst_scores: fleet_dist
            .as_ref()
            .map(|d| d.worst.iter().map(|w| w.1).collect())
            .unwrap_or_default(),
        alarms,
        emitted_at_ms: emitted,
    };
    p.clickhouse.write_vehicle_health(&vehicle_rows).await?;
    p.clickhouse
        .write_fleet_health(std::slice::from_ref(&fleet_row))
        .await?;
    let (start, end) = (day_ms as f64, (day_ms + DAY_MS) as f64);
    for s in &scored {
        let c = &s.health.components;
        let id = derived_id(&["health", fleet, &s.f.vehicle_id, &day_ms.to_string()]);
        upsert_health(
            &mut tx,
            HealthRow {
                id: &id,
                fleet,
                vehicle_id: Some(&s.f.vehicle_id),
                period: (start, end),
                score: s.health.score,
                components: [c.battery, c.reliability, c.efficiency, c.availability],
                soh: (
                    within(s.f.soh.map(|d| d.soh_pct), 0.0, 150.0),
                    s.f.soh.map(|d| d.stderr_pct).filter(|v| v.is_finite()),
                ),
                distribution: None,
                version,
            },
        )
        .await?;
        efficiency(&mut tx, s.f, median, (start, end), version).await?;
    }
    let distribution = fleet_dist.as_ref().map(|d| {
        json!({
            "vehicles": facts.len(),
            "scored": d.vehicles,
            "min": d.min, "p10": d.p10, "median": d.median, "mean": d.mean,
            "worst": d.worst.iter().map(|(v, s)| json!({"vehicle_id": v, "score": s})).collect::<Vec<_>>(),
            "alarms": alarms,
        })
    });
    let id = derived_id(&["health", fleet, "", &day_ms.to_string()]);
    upsert_health(
        &mut tx,
        HealthRow {
            id: &id,
            fleet,
            vehicle_id: None,
            period: (start, end),
            score: fleet_dist.as_ref().map(|d| d.median),
            components: [None; 4],
            soh: (None, None),
            distribution,
            version,
        },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!(m::HEALTH_ROWS, "table" => "vehicle_health_daily")
        .increment(vehicle_rows.len() as u64);
    Ok(())
}

fn vehicle_row(
    s: &Scored<'_>,
    median: Option<f64>,
    day_ms: i64,
    version: u32,
    emitted_at_ms: i64,
) -> VehicleHealthRow {
    let (f, c) = (s.f, &s.f.counters);
    let hours = |ms: u64| ms as f64 / 3_600_000.0;
    let t = f.trajectory;
    VehicleHealthRow {
        fleet_id: f.fleet_id.clone(),
        vehicle_id: f.vehicle_id.clone(),
        day_start: datetime_secs(day_ms),
        day_ms,
        version,
        samples: c.samples as u32,
        distance_km: c.distance_km(),
        energy_kwh: c.energy_kwh(),
        kwh_per_km: c.kwh_per_km(),
        fleet_median_kwh_per_km: median,
        observed_hours: hours(c.observed_ms),
        operating_hours: hours(
            c.observed_ms
                .saturating_sub(c.offline_ms + c.maintenance_ms),
        ),
        busy_hours: hours(c.busy_ms),
        maintenance_hours: hours(c.maintenance_ms),
        faults: c.fault_count as u32,
        fault_minutes: c.fault_ms as f64 / 60_000.0,
        precursors: f.counts.precursors,
        failures: f.counts.failures,
        soh_pct: f.soh.map(|d| d.soh_pct),
        soh_stderr_pct: f.soh.map(|d| d.stderr_pct),
        soh_segments: f.soh.map_or(0, |d| d.segments as u32),
        score: s.health.score,
        battery: s.health.components.battery,
        reliability: s.health.components.reliability,
        efficiency: s.health.components.efficiency,
        availability: s.health.components.availability,
        failure_risk: f.risk.map(|r| r.probability),
        failure_risk_low: f.risk.map(|r| r.interval.0),
        failure_risk_high: f.risk.map(|r| r.interval.1),
        failure_alarm: u8::from(f.risk.is_some_and(|r| r.alarm)),
        soh_per_month: t.map(|t| t.per_month),
        soh_per_1000_km: t.map(|t| t.per_1000_km),
        soh_crosses_at_ms: t.and_then(|t| t.crosses_at_ms),
        days_to_soh_threshold: f.days_to_soh_threshold(),
        emitted_at_ms,
    }
}

struct HealthRow<'a> {
    id: &'a str,
    fleet: &'a str,
    vehicle_id: Option<&'a str>,
    period: (f64, f64),
    score: Option<f64>,
    /// Battery, reliability, efficiency, availability.
    components: [Option<f64>; 4],
    /// State of health and its standard error.
    soh: (Option<f64>, Option<f64>),
    distribution: Option<Value>,
    version: i64,
}

async fn upsert_health(tx: &mut PgConnection, r: HealthRow<'_>) -> Result<()> {
    let pct = |x: Option<f64>| within(x, 0.0, 100.0);
    sqlx::query(
        "INSERT INTO analytics_health_scores (id, fleet_id, vehicle_id, period_start, period_end,
             score, battery, reliability, efficiency, availability, soh_pct, soh_stderr_pct,
             distribution, source, version)
         VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), to_timestamp($5::float8 / 1000),
             $6, $7, $8, $9, $10, $11, $12, $13, 'stream', $14)
         ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score, battery = EXCLUDED.battery,
             reliability = EXCLUDED.reliability, efficiency = EXCLUDED.efficiency,
             availability = EXCLUDED.availability, soh_pct = EXCLUDED.soh_pct,
             soh_stderr_pct = EXCLUDED.soh_stderr_pct, distribution = EXCLUDED.distribution,
             version = EXCLUDED.version, updated_at = now()
         WHERE analytics_health_scores.version < EXCLUDED.version",
    )
    .bind(r.id)
    .bind(r.fleet)
    .bind(r.vehicle_id)
    .bind(r.period.0)
    .bind(r.period.1)
    .bind(pct(r.score))
    .bind(pct(r.components[0]))
    .bind(pct(r.components[1]))
    .bind(pct(r.components[2]))
    .bind(pct(r.components[3]))
    .bind(r.soh.0)
    .bind(r.soh.1)
    .bind(r.distribution)
    .bind(r.version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn efficiency(
    tx: &mut PgConnection,
    f: &VehicleDayFacts,
    median: Option<f64>,
    period: (f64, f64),
    version: i64,
) -> Result<()> {
    let c = &f.counters;
    let rel = atlasmesh_core::analytics::health::reliability(c);
    let kwh_per_km = c.kwh_per_km();
    let ratio = kwh_per_km
        .zip(median.filter(|m| *m > 0.0))
        .map(|(v, m)| v / m);
    sqlx::query(
        "INSERT INTO analytics_efficiency_metrics (id, fleet_id, vehicle_id, period_start,
             period_end, distance_km, energy_kwh, kwh_per_km, fleet_median_kwh_per_km,
             efficiency_ratio, operating_hours, utilization_pct, availability_pct,
             maintenance_share, faults, fault_minutes, faults_per_1000_km,
             faults_per_operating_hour, fault_minutes_per_1000_km, source, version)
         VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), to_timestamp($5::float8 / 1000),
             $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 'stream', $20)
         ON CONFLICT (id) DO UPDATE SET distance_km = EXCLUDED.distance_km,
             energy_kwh = EXCLUDED.energy_kwh, kwh_per_km = EXCLUDED.kwh_per_km,
             fleet_median_kwh_per_km = EXCLUDED.fleet_median_kwh_per_km,
             efficiency_ratio = EXCLUDED.efficiency_ratio,
             operating_hours = EXCLUDED.operating_hours,
             utilization_pct = EXCLUDED.utilization_pct,
             availability_pct = EXCLUDED.availability_pct,
             maintenance_share = EXCLUDED.maintenance_share, faults = EXCLUDED.faults,
             fault_minutes = EXCLUDED.fault_minutes,
             faults_per_1000_km = EXCLUDED.faults_per_1000_km,
             faults_per_operating_hour = EXCLUDED.faults_per_operating_hour,
             fault_minutes_per_1000_km = EXCLUDED.fault_minutes_per_1000_km,
             version = EXCLUDED.version, updated_at = now()
         WHERE analytics_efficiency_metrics.version < EXCLUDED.version",
    )
    .bind(derived_id(&[
        "efficiency",
        &f.fleet_id,
        &f.vehicle_id,
        &f.day_ms.to_string(),
    ]))
    .bind(&f.fleet_id)
    .bind(&f.vehicle_id)
    .bind(period.0)
    .bind(period.1)
    .bind(c.distance_km())
    .bind(c.energy_kwh())
    .bind(kwh_per_km)
    .bind(median)
    .bind(ratio)
    .bind(rel.operating_hours)
    .bind(c.utilization().map(|u| 100.0 * u))
    .bind(c.availability().map(|a| 100.0 * a))
    .bind(rel.maintenance_share)
    .bind(c.fault_count as i64)
    .bind(c.fault_ms as f64 / 60_000.0)
    .bind(rel.faults_per_1000_km)
    .bind(rel.faults_per_operating_hour)
    .bind(rel.fault_minutes_per_1000_km)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
