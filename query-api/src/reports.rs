//! `GET /api/v1/fleets/{fleet_id}/report?from=&to=&format=json|csv`: a generated performance
//! report of one fleet and period.
//!
//! This module only reads; the report is assembled by the pure
//! [`atlasmesh_core::analytics::report::build`] and rendered by
//! [`atlasmesh_core::analytics::report::to_csv`]. Reads, all limited to the one fleet the
//! caller was checked for (the fleet id is a bound parameter of every statement):
//! - ClickHouse: the fleet windows (`fleet_window_metrics`) and per-vehicle sums
//!   (`vehicle_window_metrics FINAL`) of the windows starting in `[from, to)`;
//! - PostgreSQL: the fleet's benchmarks (`perf_benchmarks`), its alerts with transitions in the
//!   period (`alert_transitions` + `alert_rules` + `alert_instances`) and its daily federation
//!   ranks (`perf_federation_ranks`, written by the performance pipeline).

use std::collections::BTreeMap;

use atlasmesh_core::analytics::report::{
    self, AlertInput, BenchmarkInput, FleetReport, RankInput, ReportInput, ReportSettings,
    WindowInput,
};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, Error, Result};
use crate::params::{parse_instant, StrictQuery};
use crate::state::{AppState, QUERY_TIMEOUT};

const MS_PER_DAY: i64 = 86_400_000;
/// Default period: the 7 days before `to`.
const DEFAULT_DAYS: i64 = 7;

/// Query parameters of the report.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Windows starting at or after this instant (RFC 3339 or epoch ms); default `to` − 7 days.
    #[param(example = "2024-05-01T00:00:00Z")]
    pub from: Option<String>,
    /// Windows starting before this instant (RFC 3339 or epoch ms); default now.
    #[param(example = "2024-05-08T00:00:00Z")]
    pub to: Option<String>,
    /// `json` (default) or `csv` (long form: `section,item,field,value`).
    pub format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// `json` (the default) or `csv`; anything else is recorded as a bad `format` in `fields`.
    pub fn parse(v: Option<&str>, fields: &mut BTreeMap<String, String>) -> Format {
        match v {
            None | Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(_) => {
                fields.insert("format".into(), "must be json or csv".into());
                Format::Json
            }
        }
    }

    /// `body` as JSON, or its CSV rendering `csv` as an attachment named
    /// `<name>-<fleet>-<from>-<to>.csv`.
    pub(crate) fn respond<T: serde::Serialize>(
        self,
        body: &T,
        csv: impl FnOnce(&T) -> String,
        name: &str,
        fleet_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Response {
        match self {
            Format::Json => Json(body).into_response(),
            Format::Csv => {
                let disposition = format!(
                    "attachment; filename=\"{name}-{}-{from_ms}-{to_ms}.csv\"",
                    sanitize(fleet_id)
                );
                (
                    [
                        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                        (header::CONTENT_DISPOSITION, disposition),
                    ],
                    csv(body),
                )
                    .into_response()
            }
        }
    }
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    pub from_ms: i64,
    pub to_ms: i64,
    pub format: Format,
}

impl ReportRequest {
    /// Validates the parameters; `now_ms` is the default `to`. Every bad parameter is named.
    pub fn parse(q: ReportQuery, now_ms: i64, max_days: u32) -> Result<ReportRequest, ApiError> {
        let mut fields = BTreeMap::new();
        let mut instant = |name: &str, v: &Option<String>| -> Option<i64> {
            let v = v.as_deref()?;
            let t = parse_instant(v);
            if t.is_none() {
                fields.insert(
                    name.to_string(),
                    "must be RFC 3339 or epoch milliseconds".to_string(),
                );
            }
            t
        };
        let to = instant("to", &q.to);
        let from = instant("from", &q.from);
        let format = Format::parse(q.format.as_deref(), &mut fields);
        if !fields.is_empty() {
            return Err(ApiError::invalid_fields(fields));
        }
        let to_ms = to.unwrap_or(now_ms);
        let from_ms = from.unwrap_or(to_ms - DEFAULT_DAYS * MS_PER_DAY);
        if from_ms >= to_ms {
            fields.insert("from".into(), "must be before to".into());
        } else if to_ms - from_ms > i64::from(max_days) * MS_PER_DAY {
            fields.insert(
                "from".into(),
                format!("the period may span at most {max_days} days"),
            );
        }
        if !fields.is_empty() {
            return Err(ApiError::invalid_fields(fields));
        }
        Ok(ReportRequest {
            from_ms,
            to_ms,
            format,
        })
    }
}

counter_row!(WindowRow {
    window_start_ms: i64,
    window_end_ms: i64
});
counter_row!(VehicleRow { vehicle_id: String });

const SUMS: &str = counter_sums!();

/// `fut`, or [`Error::Timeout`] naming `what` after [`QUERY_TIMEOUT`].
pub(crate) async fn timed<T>(
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(QUERY_TIMEOUT, fut)
        .await
        .map_err(|_| Error::Timeout(what))?
}

/// Reads everything the report of `fleet_id` over `[from, to)` is built from.
pub async fn load(
    state: &AppState,
    fleet_id: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<ReportInput> {
    let ch = &state.clickhouse;
    let windows_sql = "SELECT ?fields
        FROM fleet_window_metrics
        WHERE fleet_id = ? AND window_start_ms >= ? AND window_start_ms < ?
        ORDER BY window_start_ms";
    let vehicles_sql = format!(
        "SELECT vehicle_id, {SUMS}
        FROM vehicle_window_metrics FINAL
        WHERE fleet_id = ? AND window_start_ms >= ? AND window_start_ms < ?
        GROUP BY vehicle_id
        ORDER BY vehicle_id"
    );
    let windows = timed("clickhouse query", async {
        Ok(ch
            .query(windows_sql)
            .bind(fleet_id)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all::<WindowRow>()
            .await?)
    })
    .await?;
    let vehicles = timed("clickhouse query", async {
        Ok(ch
            .query(&vehicles_sql)
            .bind(fleet_id)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all::<VehicleRow>()
            .await?)
    })
    .await?;
    let pg = &state.postgres;
    let benchmarks: Vec<(String, String, String, f64, bool)> = timed("postgres query", async {
        Ok(sqlx::query_as(
            "SELECT id, name, metric, target_value, higher_is_better FROM perf_benchmarks WHERE fleet_id = $1 ORDER BY name, id",
        )
        .bind(fleet_id)
        .fetch_all(pg)
        .await?)
    })
    .await?;
    type AlertRow = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        i64,
        i64,
        i64,
        i64,
        Option<String>,
    );
    let alerts: Vec<AlertRow> = timed("postgres query", async {
        Ok(sqlx::query_as(
            "SELECT t.dedup_key, min(t.rule_id), min(t.subject), min(r.metric), min(r.severity),
                    count(*) FILTER (WHERE t.kind IN ('firing', 'resent')), count(*),
                    min(t.at_ms), max(t.at_ms), min(i.status)
             FROM alert_transitions t
             LEFT JOIN alert_rules r ON r.id = t.rule_id
             LEFT JOIN alert_instances i ON i.dedup_key = t.dedup_key
             WHERE t.fleet_id = $1 AND t.at_ms >= $2 AND t.at_ms < $3
             GROUP BY t.dedup_key
             ORDER BY t.dedup_key",
        )
        .bind(fleet_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pg)
        .await?)
    })
    .await?;
    let ranks: Vec<(String, i64, i32, i32, f64)> = timed("postgres query", async {
        Ok(sqlx::query_as(
            "SELECT federation_id, day_start_ms, rank, fleets, total FROM perf_federation_ranks
             WHERE fleet_id = $1 AND day_start_ms >= $2 AND day_start_ms < $3 AND rank > 0
             ORDER BY day_start_ms, federation_id",
        )
        .bind(fleet_id)
        .bind(report::day_start(from_ms))
        .bind(to_ms)
        .fetch_all(pg)
        .await?)
    })
    .await?;
    Ok(ReportInput {
        fleet_id: fleet_id.to_string(),
        from_ms,
        to_ms,
        windows: windows
            .iter()
            .map(|w| WindowInput {
                start_ms: w.window_start_ms,
                end_ms: w.window_end_ms,
                counters: w.counters(),
            })
            .collect(),
        vehicles: vehicles
            .iter()
            .map(|v| (v.vehicle_id.clone(), v.counters()))
            .collect(),
        benchmarks: benchmarks
            .into_iter()
            .map(
                |(id, name, metric, target, higher_is_better)| BenchmarkInput {
                    id,
                    name,
                    metric,
                    target,
                    higher_is_better,
                },
            )
            .collect(),
        alerts: alerts
            .into_iter()
            .map(
                |(
                    dedup_key,
                    rule_id,
                    subject,
                    metric,
                    severity,
                    firings,
                    transitions,
                    first_at_ms,
                    last_at_ms,
                    status,
                )| AlertInput {
                    dedup_key,
                    rule_id,
                    subject,
                    metric,
                    severity,
                    firings,
                    transitions,
                    first_at_ms,
                    last_at_ms,
                    status,
                },
            )
            .collect(),
        ranks: ranks
            .into_iter()
            .map(
                |(federation_id, day_start_ms, rank, fleets, total)| RankInput {
                    federation_id,
                    day_start_ms,
                    rank,
                    fleets,
                    total,
                },
            )
            .collect(),
    })
}

/// A performance report of a fleet over a period, as JSON or CSV.
#[utoipa::path(
    get,
    path = "/api/v1/fleets/{fleet_id}/report",
    tag = "fleet-performance",
    params(("fleet_id" = String, Path, description = "Fleet id"), ReportQuery),
    responses(
        (status = 200, description = "The report (JSON, or CSV with `format=csv`: header `section,item,field,value`, one value per line)",
            content((FleetReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown or invalid parameters", body = crate::error::ErrorBody),
        (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody),
        (status = 403, description = "The fleet is outside the caller's scope", body = crate::error::ErrorBody),
        (status = 503, description = "ClickHouse or PostgreSQL is unavailable", body = crate::error::ErrorBody),
        (status = 500, description = "Internal error", body = crate::error::ErrorBody),
    ),
    security(("bearer_jwt" = []), ("api_key" = []))
)]
pub async fn fleet_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(fleet_id): Path<String>,
    StrictQuery(q): StrictQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    caller.require(atlasmesh_core::Role::Viewer)?;
    caller.require_fleet(&fleet_id)?;
    let perf = &state.config.performance;
    let req = ReportRequest::parse(q, atlasmesh_core::clock::now_ms(), perf.report_max_days)?;
    let started = std::time::Instant::now();
    let input = load(&state, &fleet_id, req.from_ms, req.to_ms).await?;
    let r = report::build(&input, &ReportSettings::from_config(perf));
    metrics::histogram!(atlasmesh_core::metric_names::REPORT_SECONDS)
        .record(started.elapsed().as_secs_f64());
    Ok(req.format.respond(
        &r,
        report::to_csv,
        "report",
        &fleet_id,
        req.from_ms,
        req.to_ms,
    ))
}

/// A fleet id safe inside a quoted header parameter.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vehicle sums select every counter under its own name, in column order.
    #[test]
    fn sums_select_every_counter() {
        let expected: Vec<String> = atlasmesh_core::window::Counters::FIELDS
            .iter()
            .map(|f| format!("sum({f}) AS {f}"))
            .collect();
        assert_eq!(SUMS, expected.join(", "));
    }

    fn bad(r: Result<ReportRequest, ApiError>) -> Vec<String> {
        match r.unwrap_err() {
            ApiError::BadRequest { fields, .. } => fields.into_keys().collect(),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn parameters() {
        let now = 10 * MS_PER_DAY;
        let r = ReportRequest::parse(ReportQuery::default(), now, 93).unwrap();
        assert_eq!(
            r,
            ReportRequest {
                from_ms: 3 * MS_PER_DAY,
                to_ms: now,
                format: Format::Json
            }
        );
        let q = ReportQuery {
            from: Some("1970-01-02T00:00:00Z".into()),
            to: Some("172800000".into()),
            format: Some("csv".into()),
        };
        assert_eq!(
            ReportRequest::parse(q, now, 93).unwrap(),
            ReportRequest {
                from_ms: MS_PER_DAY,
                to_ms: 2 * MS_PER_DAY,
                format: Format::Csv
            }
        );
        let q = ReportQuery {
            from: Some("yesterday".into()),
            to: None,
            format: Some("xml".into()),
        };
        assert_eq!(bad(ReportRequest::parse(q, now, 93)), ["format", "from"]);
        let q = ReportQuery {
            from: Some("5".into()),
            to: Some("5".into()),
            format: None,
        };
        assert_eq!(bad(ReportRequest::parse(q, now, 93)), ["from"]);
        let q = ReportQuery {
            from: Some("0".into()),
            to: None,
            format: None,
        };
        assert_eq!(
            bad(ReportRequest::parse(q, now, 9)),
            ["from"],
            "10 days > 9"
        );
        assert_eq!(sanitize("f-1/\"x"), "f-1__x");
    }
}
