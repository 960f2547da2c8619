//! Fleet analytics reads beside the generic resource routes of `/api/v1/fleet-analytics/…`
//! (the entities are declared in `atlasmesh_core::domain::analytics`):
//!
//! - `GET /api/v1/fleet-analytics/vehicles/{vehicle_id}/health[?days=30]`: a vehicle's newest
//!   health score, efficiency metric, prediction of each kind and trend of each metric
//!   (PostgreSQL), and its daily state-of-health history (ClickHouse `vehicle_health_daily`,
//!   the highest version of each day). 404 when no row names the vehicle, 403 when none of the
//!   fleets that name it is in the caller's scope.
//! - `GET /api/v1/fleet-analytics/reports/{id}/content?format=json|csv`: a stored analytics
//!   report rendered for its fleet, period and `worst_n` (404 when not visible).
//! - `GET /api/v1/fleets/{fleet_id}/analytics-report?from=&to=&format=json|csv&worst_n=`: the
//!   same report for any period (parameters as `/api/v1/fleets/{fleet_id}/report`).
//!
//! Both reports take `replacement_within_days` (default 180): battery replacements predicted
//! up to that many days after the period are listed. The report is assembled by the pure
//! [`atlasmesh_core::analytics::health_report::build`] from the fleet's rows; every statement
//! is bound to the fleet (or vehicle and fleets) the caller was checked for.

use std::collections::BTreeMap;

use atlasmesh_core::analytics::health_report::{
    self, FleetHealthReport, HealthReportInput, DEFAULT_REPLACEMENT_WITHIN_DAYS,
};
use atlasmesh_core::analytics::report::{day_start, rfc3339};
use atlasmesh_core::clock::parse_rfc3339;
use atlasmesh_core::domain::analytics::{
    AnalyticsReport, AnalyticsTrend, AnalyticsTrendView, CapacityMetric, CapacityStatus,
    EfficiencyMetric, EfficiencyMetricView, HealthScore, HealthScoreView, Prediction,
    PredictionView, MAX_WORST_N,
};
use atlasmesh_core::domain::{Check, Resource};
use atlasmesh_core::Role;
use atlasmesh_sinks::clickhouse::VehicleHealthRow;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, Error, Result};
use crate::params::StrictQuery;
use crate::reports::{timed, Format, ReportQuery, ReportRequest};
use crate::state::AppState;

const MS_PER_DAY: i64 = 86_400_000;
/// Default and most days of a vehicle's state-of-health history.
pub const DEFAULT_HISTORY_DAYS: u32 = 30;
pub const MAX_HISTORY_DAYS: u32 = 366;
/// Default of a fleet report's `worst_n`.
pub const DEFAULT_WORST_N: u32 = 5;
/// Most days after a report's period a battery replacement may be predicted for.
pub const MAX_REPLACEMENT_WITHIN_DAYS: u32 = 3650;

/// An integer parameter in `lo..=hi` (`default` when absent); a bad one is recorded in `fields`.
fn int_param(
    fields: &mut BTreeMap<String, String>,
    name: &str,
    v: Option<&str>,
    (lo, hi): (u32, u32),
    default: u32,
) -> u32 {
    let Some(v) = v else { return default };
    match v.parse::<u32>() {
        Ok(n) if (lo..=hi).contains(&n) => n,
        _ => {
            fields.insert(
                name.to_string(),
                format!("must be an integer in {lo}..={hi}"),
            );
            default
        }
    }
}

fn replacement_days(fields: &mut BTreeMap<String, String>, v: Option<&str>) -> u32 {
    int_param(
        fields,
        "replacement_within_days",
        v,
        (1, MAX_REPLACEMENT_WITHIN_DAYS),
        DEFAULT_REPLACEMENT_WITHIN_DAYS,
    )
}

fn timestamp(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The rows of `sql` (each `to_jsonb` of a row) as `T`.
async fn views<T: DeserializeOwned>(
    q: sqlx::query::QueryScalar<'_, sqlx::Postgres, serde_json::Value, sqlx::postgres::PgArguments>,
    pg: &PgPool,
) -> Result<Vec<T>> {
    let rows: Vec<serde_json::Value> =
        timed("postgres query", async { Ok(q.fetch_all(pg).await?) }).await?;
    rows.into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| Error::Corrupt(e.to_string())))
        .collect()
}

// ---------------------------------------------------------------- a vehicle's health

/// Query parameters of a vehicle's health.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VehicleHealthQuery {
    /// UTC days of history, today included, 1..=366 (default 30).
    pub days: Option<String>,
}

/// One UTC day of a vehicle as the health pipeline closed it (`vehicle_health_daily`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HealthDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub day_ms: i64,
    pub fleet_id: String,
    pub version: u32,
    /// Battery state of health from the day's discharges, %.
    pub soh_pct: Option<f64>,
    pub soh_stderr_pct: Option<f64>,
    pub soh_segments: u32,
    pub score: Option<f64>,
    pub battery: Option<f64>,
    pub reliability: Option<f64>,
    pub efficiency: Option<f64>,
    pub availability: Option<f64>,
    pub distance_km: f64,
    pub kwh_per_km: Option<f64>,
    pub faults: u32,
    pub failure_risk: Option<f64>,
    pub failure_alarm: bool,
    pub days_to_soh_threshold: Option<f64>,
}

impl From<VehicleHealthRow> for HealthDay {
    fn from(r: VehicleHealthRow) -> Self {
        HealthDay {
            day: rfc3339(r.day_ms)[..10].to_string(),
            day_ms: r.day_ms,
            fleet_id: r.fleet_id,
            version: r.version,
            soh_pct: r.soh_pct,
            soh_stderr_pct: r.soh_stderr_pct,
            soh_segments: r.soh_segments,
            score: r.score,
            battery: r.battery,
            reliability: r.reliability,
            efficiency: r.efficiency,
            availability: r.availability,
            distance_km: r.distance_km,
            kwh_per_km: r.kwh_per_km,
            faults: r.faults,
            failure_risk: r.failure_risk,
            failure_alarm: r.failure_alarm != 0,
            days_to_soh_threshold: r.days_to_soh_threshold,
        }
    }
}

/// A vehicle's health: its newest rows of each fleet-analytics entity and its daily history.
#[derive(Debug, Serialize, ToSchema)]
pub struct VehicleHealth {
    pub vehicle_id: String,
    /// The fleets in the caller's scope with rows of this vehicle (normally one).
    pub fleet_ids: Vec<String>,
    /// Its newest health score (latest period end, then highest version, then updated last).
    pub health_score: Option<HealthScoreView>,
    /// Its newest efficiency metric (likewise).
    pub efficiency: Option<EfficiencyMetricView>,
    /// Its newest prediction of each kind (latest `as_of`), by kind.
    pub predictions: Vec<PredictionView>,
    /// Its newest trend of each metric (latest period end), by metric.
    pub trends: Vec<AnalyticsTrendView>,
    /// Days of history asked for.
    pub days: u32,
    /// Its daily state of health and score, oldest first.
    pub history: Vec<HealthDay>,
}

/// `SELECT to_jsonb(t)` of the newest row of `table` per `per` (or overall) of vehicle `$1` in
/// fleets `$2`, newest by `newest`.
fn newest_sql(table: &str, per: Option<&str>, newest: &str) -> String {
    match per {
        None => format!(
            "SELECT to_jsonb(t) FROM {table} t WHERE t.vehicle_id = $1 AND t.fleet_id = ANY($2)
             ORDER BY {newest}, t.version DESC, t.updated_at DESC, t.id LIMIT 1"
        ),
        Some(col) => format!(
            "SELECT to_jsonb(t) FROM (SELECT DISTINCT ON (t.{col}) t.* FROM {table} t
                 WHERE t.vehicle_id = $1 AND t.fleet_id = ANY($2)
                 ORDER BY t.{col}, {newest}, t.version DESC, t.updated_at DESC, t.id) t
             ORDER BY t.{col}"
        ),
    }
}

/// The fleets with rows naming `vehicle_id` (trends are looked at only when no indexed table
/// names it; ClickHouse only when PostgreSQL does not).
async fn vehicle_fleets(state: &AppState, vehicle_id: &str) -> Result<Vec<String>> {
    let sql = format!(
        "WITH f AS (SELECT fleet_id FROM {s} WHERE vehicle_id = $1
                    UNION SELECT fleet_id FROM {e} WHERE vehicle_id = $1
                    UNION SELECT fleet_id FROM {p} WHERE vehicle_id = $1)
         SELECT fleet_id FROM f
         UNION SELECT fleet_id FROM {t} WHERE vehicle_id = $1 AND NOT EXISTS (SELECT 1 FROM f)
         ORDER BY 1",
        s = HealthScore::INFO.table,
        e = EfficiencyMetric::INFO.table,
        p = Prediction::INFO.table,
        t = AnalyticsTrend::INFO.table,
    );
    let pg = &state.postgres;
    let fleets: Vec<String> = timed("postgres query", async {
        Ok(sqlx::query_scalar(&sql)
            .bind(vehicle_id)
            .fetch_all(pg)
            .await?)
    })
    .await?;
    if !fleets.is_empty() {
        return Ok(fleets);
    }
    timed("clickhouse query", async {
        Ok(state
            .clickhouse
            .query(
                "SELECT DISTINCT fleet_id FROM vehicle_health_daily WHERE vehicle_id = ?
                 ORDER BY fleet_id LIMIT 100",
            )
            .bind(vehicle_id)
            .fetch_all::<String>()
            .await?)
    })
    .await
}

/// A vehicle's newest health score, efficiency metric, predictions and trends, and its daily
/// state-of-health history.
#[utoipa::path(
    get,
    path = "/api/v1/fleet-analytics/vehicles/{vehicle_id}/health",
    tag = "fleet-analytics",
    params(("vehicle_id" = String, Path, description = "Vehicle id"), VehicleHealthQuery),
    responses(
        (status = 200, description = "The vehicle's health", body = VehicleHealth),
        (status = 400, description = "Unknown or invalid parameters", body = crate::error::ErrorBody),
        (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody),
        (status = 403, description = "The vehicle's fleet is outside the caller's scope", body = crate::error::ErrorBody),
        (status = 404, description = "No row names this vehicle", body = crate::error::ErrorBody),
        (status = 503, description = "ClickHouse or PostgreSQL is unavailable", body = crate::error::ErrorBody),
        (status = 500, description = "Internal error", body = crate::error::ErrorBody),
    ),
    security(("bearer_jwt" = []), ("api_key" = []))
)]
pub async fn vehicle_health(
    State(state): State<AppState>,
    caller: Caller,
    Path(vehicle_id): Path<String>,
    StrictQuery(q): StrictQuery<VehicleHealthQuery>,
) -> Result<Json<VehicleHealth>, ApiError> {
    caller.require(Role::Viewer)?;
    let mut fields = BTreeMap::new();
    let days = int_param(
        &mut fields,
        "days",
        q.days.as_deref(),
        (1, MAX_HISTORY_DAYS),
        DEFAULT_HISTORY_DAYS,
    );
    let mut c = Check::new();
    c.id("vehicle_id", &vehicle_id);
    fields.extend(c.finish().err().unwrap_or_default());
    if !fields.is_empty() {
        return Err(ApiError::invalid_fields(fields));
    }
    let fleets = vehicle_fleets(&state, &vehicle_id).await?;
    if fleets.is_empty() {
        return Err(ApiError::not_found(format!(
            "no fleet-analytics row names vehicle {vehicle_id}"
        )));
    }
    let fleets: Vec<String> = fleets
        .into_iter()
        .filter(|f| caller.scope.allows_fleet(f))
        .collect();
    if fleets.is_empty() {
        return Err(ApiError::forbidden(format!(
            "vehicle {vehicle_id} belongs to a fleet outside the caller's scope"
        )));
    }
    let pg = &state.postgres;
    let by_period = "t.period_end DESC";
    let sql = [
        newest_sql(HealthScore::INFO.table, None, by_period),
        newest_sql(EfficiencyMetric::INFO.table, None, by_period),
        newest_sql(Prediction::INFO.table, Some("kind"), "t.as_of DESC"),
        newest_sql(AnalyticsTrend::INFO.table, Some("metric"), by_period),
    ];
    let query = |i: usize| {
        sqlx::query_scalar(&sql[i])
            .bind(vehicle_id.as_str())
            .bind(fleets.clone())
    };
    let health_score = views::<HealthScoreView>(query(0), pg).await?.pop();
    let efficiency = views::<EfficiencyMetricView>(query(1), pg).await?.pop();
    let predictions = views::<PredictionView>(query(2), pg).await?;
    let trends = views::<AnalyticsTrendView>(query(3), pg).await?;
    let since = day_start(atlasmesh_core::clock::now_ms()) - i64::from(days - 1) * MS_PER_DAY;
    let mut history = Vec::new();
    for fleet in &fleets {
        let rows = timed("clickhouse query", async {
            Ok(state
                .clickhouse
                .query(
                    "SELECT ?fields FROM vehicle_health_daily FINAL
                     WHERE fleet_id = ? AND vehicle_id = ? AND day_ms >= ? ORDER BY day_ms",
                )
                .bind(fleet)
                .bind(&vehicle_id)
                .bind(since)
                .fetch_all::<VehicleHealthRow>()
                .await?)
        })
        .await?;
        history.extend(rows.into_iter().map(HealthDay::from));
    }
    history.sort_by(|a, b| (a.day_ms, &a.fleet_id).cmp(&(b.day_ms, &b.fleet_id)));
    Ok(Json(VehicleHealth {
        vehicle_id,
        fleet_ids: fleets,
        health_score,
        efficiency,
        predictions,
        trends,
        days,
        history,
    }))
}

// ---------------------------------------------------------------- analytics reports

/// Reads the fleet's rows a report over `[from, to)` is built from into `input`.
pub async fn load(state: &AppState, input: &mut HealthReportInput) -> Result<()> {
    let pg = &state.postgres;
    let (fleet, from, to) = (
        input.fleet_id.as_str(),
        timestamp(input.from_ms),
        timestamp(input.to_ms),
    );
    let scores = format!(
        "SELECT to_jsonb(t) FROM {} t WHERE t.fleet_id = $1 AND t.period_start >= $2
         AND t.period_start < $3 ORDER BY t.period_start, t.id",
        HealthScore::INFO.table
    );
    input.scores = views(
        sqlx::query_scalar(&scores).bind(fleet).bind(from).bind(to),
        pg,
    )
    .await?;
    let predictions = format!(
        "SELECT to_jsonb(t) FROM {} t WHERE t.fleet_id = $1 AND t.as_of < $2 ORDER BY t.as_of, t.id",
        Prediction::INFO.table
    );
    input.predictions = views(sqlx::query_scalar(&predictions).bind(fleet).bind(to), pg).await?;
    let capacity = format!(
        "SELECT to_jsonb(t) FROM {} t WHERE t.fleet_id = $1 AND t.status = $2
         AND COALESCE(t.as_of, t.created_at) >= $3 AND COALESCE(t.as_of, t.created_at) < $4
         ORDER BY t.created_at, t.id",
        CapacityMetric::INFO.table
    );
    input.capacity = views(
        sqlx::query_scalar(&capacity)
            .bind(fleet)
            .bind(CapacityStatus::Completed.as_str())
            .bind(from)
            .bind(to),
        pg,
    )
    .await?;
    Ok(())
}

/// Loads the rows of `input`'s fleet and period and answers the report in `format`.
async fn render(
    state: &AppState,
    mut input: HealthReportInput,
    format: Format,
) -> Result<Response, ApiError> {
    load(state, &mut input).await?;
    let r = health_report::build(&input);
    Ok(format.respond(
        &r,
        health_report::to_csv,
        "analytics-report",
        &input.fleet_id,
        input.from_ms,
        input.to_ms,
    ))
}

/// Query parameters of a fleet's analytics report.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsReportQuery {
    /// Start of the period (RFC 3339 or epoch ms); default `to` − 7 days.
    #[param(example = "2024-05-01T00:00:00Z")]
    pub from: Option<String>,
    /// End of the period, exclusive (RFC 3339 or epoch ms); default now.
    #[param(example = "2024-05-08T00:00:00Z")]
    pub to: Option<String>,
    /// `json` (default) or `csv` (long form: `section,item,field,value`).
    pub format: Option<String>,
    /// Worst vehicles (and at least this many predicted failures) listed, 1..=100 (default 5).
    pub worst_n: Option<String>,
    /// Battery replacements predicted up to this many days after `to` are listed, 1..=3650
    /// (default 180).
    pub replacement_within_days: Option<String>,
}

/// The analytics report of a fleet over a period, as JSON or CSV.
#[utoipa::path(
    get,
    path = "/api/v1/fleets/{fleet_id}/analytics-report",
    tag = "fleet-analytics",
    params(("fleet_id" = String, Path, description = "Fleet id"), AnalyticsReportQuery),
    responses(
        (status = 200, description = "The report (JSON, or CSV with `format=csv`: header `section,item,field,value`, one value per line)",
            content((FleetHealthReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown or invalid parameters", body = crate::error::ErrorBody),
        (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody),
        (status = 403, description = "The fleet is outside the caller's scope", body = crate::error::ErrorBody),
        (status = 503, description = "PostgreSQL is unavailable", body = crate::error::ErrorBody),
        (status = 500, description = "Internal error", body = crate::error::ErrorBody),
    ),
    security(("bearer_jwt" = []), ("api_key" = []))
)]
pub async fn fleet_analytics_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(fleet_id): Path<String>,
    StrictQuery(q): StrictQuery<AnalyticsReportQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_fleet(&fleet_id)?;
    let mut fields = BTreeMap::new();
    let worst_n = int_param(
        &mut fields,
        "worst_n",
        q.worst_n.as_deref(),
        (1, MAX_WORST_N as u32),
        DEFAULT_WORST_N,
    );
    let within = replacement_days(&mut fields, q.replacement_within_days.as_deref());
    let period = ReportRequest::parse(
        ReportQuery {
            from: q.from,
            to: q.to,
            format: q.format,
        },
        atlasmesh_core::clock::now_ms(),
        state.config.performance.report_max_days,
    );
    let req = match period {
        Err(ApiError::BadRequest { fields: more, .. }) => {
            fields.extend(more);
            return Err(ApiError::invalid_fields(fields));
        }
        Err(e) => return Err(e),
        Ok(_) if !fields.is_empty() => return Err(ApiError::invalid_fields(fields)),
        Ok(req) => req,
    };
    let input = HealthReportInput {
        fleet_id,
        from_ms: req.from_ms,
        to_ms: req.to_ms,
        worst_n: worst_n as usize,
        replacement_within_days: within,
        ..HealthReportInput::default()
    };
    render(&state, input, req.format).await
}

/// Query parameters of a stored report's content.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportContentQuery {
    /// `json` (default) or `csv` (long form: `section,item,field,value`).
    pub format: Option<String>,
    /// Battery replacements predicted up to this many days after the period are listed,
    /// 1..=3650 (default 180).
    pub replacement_within_days: Option<String>,
}

/// A stored analytics report rendered for its fleet, period and `worst_n`, as JSON or CSV.
#[utoipa::path(
    get,
    path = "/api/v1/fleet-analytics/reports/{id}/content",
    tag = "fleet-analytics",
    params(("id" = String, Path, description = "Analytics report id"), ReportContentQuery),
    responses(
        (status = 200, description = "The report (JSON, or CSV with `format=csv`: header `section,item,field,value`, one value per line)",
            content((FleetHealthReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown or invalid parameters", body = crate::error::ErrorBody),
        (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody),
        (status = 404, description = "No such report in the caller's scope", body = crate::error::ErrorBody),
        (status = 503, description = "PostgreSQL is unavailable", body = crate::error::ErrorBody),
        (status = 500, description = "Internal error", body = crate::error::ErrorBody),
    ),
    security(("bearer_jwt" = []), ("api_key" = []))
)]
pub async fn report_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    StrictQuery(q): StrictQuery<ReportContentQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let mut fields = BTreeMap::new();
    let format = Format::parse(q.format.as_deref(), &mut fields);
    let within = replacement_days(&mut fields, q.replacement_within_days.as_deref());
    if !fields.is_empty() {
        return Err(ApiError::invalid_fields(fields));
    }
    let report =
        atlasmesh_sinks::store::get::<AnalyticsReport>(&state.postgres, &caller.scope, &id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| {
                ApiError::not_found(format!("no {} {id}", AnalyticsReport::INFO.name))
            })?;
    let period = |s: &str| {
        parse_rfc3339(s).ok_or_else(|| Error::Corrupt(format!("report {id}: period {s:?}")))
    };
    let input = HealthReportInput {
        from_ms: period(&report.period_start)?,
        to_ms: period(&report.period_end)?,
        fleet_id: report.fleet_id,
        report_id: Some(report.id),
        title: Some(report.title),
        worst_n: usize::try_from(report.worst_n).unwrap_or(1),
        replacement_within_days: within,
        ..HealthReportInput::default()
    };
    render(&state, input, format).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_parameters() {
        let mut f = BTreeMap::new();
        assert_eq!(int_param(&mut f, "days", None, (1, 366), 30), 30);
        assert_eq!(int_param(&mut f, "days", Some("366"), (1, 366), 30), 366);
        assert!(f.is_empty());
        int_param(&mut f, "days", Some("0"), (1, 366), 30);
        int_param(&mut f, "worst_n", Some("x"), (1, 100), 5);
        assert_eq!(f.keys().collect::<Vec<_>>(), ["days", "worst_n"]);
    }

    #[test]
    fn newest_rows_per_column() {
        let one = newest_sql("analytics_health_scores", None, "t.period_end DESC");
        assert!(one.ends_with("t.id LIMIT 1"), "{one}");
        let per = newest_sql("analytics_predictions", Some("kind"), "t.as_of DESC");
        assert!(per.contains("DISTINCT ON (t.kind)"), "{per}");
        assert!(
            per.contains("ORDER BY t.kind, t.as_of DESC, t.version DESC"),
            "{per}"
        );
    }
}
