//! `GET /api/v1/fleet-performance/metrics[/{fleet_id}]`: closed window metrics from ClickHouse,
//! per fleet (view `fleet_window_metrics`) or per vehicle (`vehicle_window_metrics FINAL`),
//! keyset-paginated in the stable order (fleet_id, vehicle_id, window_start_ms).
//!
//! The SQL text is built from constant fragments only; every value goes through `.bind()`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, Error, Result};
use crate::params::{format_instant, parse_instant, CursorKey, StrictQuery};
use crate::state::{AppState, QUERY_TIMEOUT};
use crate::views::{CounterValues, Derived};

pub const DEFAULT_LIMIT: u32 = 100;

/// Which table a request reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Fleet windows: the sum of the newest partial of every source partition.
    Fleet,
    /// Vehicle windows, newest version of each.
    Vehicle,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Fleet => "fleet",
            Scope::Vehicle => "vehicle",
        }
    }
}

/// Query parameters of `GET /api/v1/fleet-performance/metrics`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// `fleet` (default) or `vehicle`.
    #[param(value_type = Option<Scope>)]
    pub scope: Option<String>,
    /// Only this fleet.
    pub fleet_id: Option<String>,
    /// Only this vehicle (scope `vehicle` only).
    pub vehicle_id: Option<String>,
    /// Windows starting at or after this instant (RFC 3339 or epoch milliseconds).
    #[param(example = "2024-05-01T00:00:00Z")]
    pub from: Option<String>,
    /// Windows starting before this instant (RFC 3339 or epoch milliseconds).
    #[param(example = "1714525200000")]
    pub to: Option<String>,
    /// Page size, 1..=api.max_page_size (default 100).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query parameters of `GET /api/v1/fleet-performance/metrics/{fleet_id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FleetMetricsQuery {
    /// `fleet` (default) or `vehicle`.
    #[param(value_type = Option<Scope>)]
    pub scope: Option<String>,
    /// Only this vehicle (scope `vehicle` only).
    pub vehicle_id: Option<String>,
    /// Windows starting at or after this instant (RFC 3339 or epoch milliseconds).
    pub from: Option<String>,
    /// Windows starting before this instant (RFC 3339 or epoch milliseconds).
    pub to: Option<String>,
    /// Page size, 1..=api.max_page_size (default 100).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl From<FleetMetricsQuery> for MetricsQuery {
    fn from(q: FleetMetricsQuery) -> Self {
        MetricsQuery {
            scope: q.scope,
            fleet_id: None,
            vehicle_id: q.vehicle_id,
            from: q.from,
            to: q.to,
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsFilter {
    pub scope: Scope,
    pub fleet_id: Option<String>,
    /// The caller's fleets (`None`: every fleet); always part of the SQL.
    pub fleets: Option<Vec<String>>,
    pub vehicle_id: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: u32,
    pub after: Option<CursorKey>,
}

impl MetricsFilter {
    /// Validates every parameter, collecting one reason per bad parameter.
    pub fn parse(q: MetricsQuery, max_page_size: u32) -> Result<MetricsFilter, ApiError> {
        let mut bad = BTreeMap::new();
        let scope = match q.scope.as_deref() {
            None | Some("fleet") => Scope::Fleet,
            Some("vehicle") => Scope::Vehicle,
            Some(_) => {
                bad.insert("scope".into(), "must be `fleet` or `vehicle`".into());
                Scope::Fleet
            }
        };
        let mut non_empty = |name: &str, v: Option<String>| match v {
            Some(s) if s.is_empty() => {
                bad.insert(name.to_string(), "must not be empty".to_string());
                None
            }
            other => other,
        };
        let fleet_id = non_empty("fleet_id", q.fleet_id);
        let vehicle_id = non_empty("vehicle_id", q.vehicle_id);
        if vehicle_id.is_some() && scope != Scope::Vehicle {
            bad.insert(
                "vehicle_id".into(),
                "only allowed with scope=vehicle".into(),
            );
        }
        let mut instant = |name: &str, v: Option<String>| {
            let v = v?;
            let parsed = parse_instant(&v);
            if parsed.is_none() {
                bad.insert(
                    name.to_string(),
                    "must be RFC 3339 or epoch milliseconds".to_string(),
                );
            }
            parsed
        };
        let from_ms = instant("from", q.from);
        let to_ms = instant("to", q.to);
        if let (Some(f), Some(t)) = (from_ms, to_ms) {
            if f >= t {
                bad.insert("from".into(), "must be before `to`".into());
            }
        }
        let max = max_page_size.max(1);
        let limit = match q.limit.as_deref() {
            None => DEFAULT_LIMIT.min(max),
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    bad.insert("limit".into(), format!("must be an integer in 1..={max}"));
                    DEFAULT_LIMIT
                }
            },
        };
        let after = match q.cursor.as_deref() {
            None => None,
            Some(s) => match CursorKey::decode(s) {
                Some(c)
                    if c.scope == scope.as_str()
                        && c.vehicle_id.is_some() == (scope == Scope::Vehicle) =>
                {
                    Some(c)
                }
                Some(_) => {
                    bad.insert("cursor".into(), "was issued for another scope".into());
                    None
                }
                None => {
                    bad.insert("cursor".into(), "is not a cursor of this API".into());
                    None
                }
            },
        };
        if !bad.is_empty() {
            return Err(ApiError::invalid_fields(bad));
        }
        Ok(MetricsFilter {
            scope,
            fleet_id,
            fleets: None,
            vehicle_id,
            from_ms,
            to_ms,
            limit,
            after,
        })
    }
}

/// One window, fleet or vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WindowMetric {
    pub fleet_id: String,
    /// Scope `vehicle` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<String>,
    /// RFC 3339 UTC.
    pub window_start: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// Scope `vehicle` only: the version of the window (late data re-emits higher versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Scope `fleet` only: how many source-partition partials were summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partials: Option<u64>,
    #[serde(flatten)]
    pub counters: CounterValues,
    #[serde(flatten)]
    pub derived: Derived,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowMetricsPage {
    pub items: Vec<WindowMetric>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

counter_row!(FleetRow {
    fleet_id: String,
    window_start_ms: i64,
    window_end_ms: i64,
    partials: u64
});
counter_row!(VehicleRow {
    fleet_id: String,
    vehicle_id: String,
    window_start_ms: i64,
    window_end_ms: i64,
    version: u32,
});

impl FleetRow {
    fn into_item(self) -> WindowMetric {
        let c = self.counters();
        WindowMetric {
            window_start: format_instant(self.window_start_ms),
            fleet_id: self.fleet_id,
            vehicle_id: None,
            window_start_ms: self.window_start_ms,
            window_end_ms: self.window_end_ms,
            version: None,
            partials: Some(self.partials),
            counters: (&c).into(),
            derived: (&c).into(),
        }
    }
}

impl VehicleRow {
    fn into_item(self) -> WindowMetric {
        let c = self.counters();
        WindowMetric {
            window_start: format_instant(self.window_start_ms),
            fleet_id: self.fleet_id,
            vehicle_id: Some(self.vehicle_id),
            window_start_ms: self.window_start_ms,
            window_end_ms: self.window_end_ms,
            version: Some(self.version),
            partials: None,
            counters: (&c).into(),
            derived: (&c).into(),
        }
    }
}

/// Appends the filter predicates (constant SQL, values bound in the same order).
fn build_query(client: &clickhouse::Client, f: &MetricsFilter) -> clickhouse::query::Query {
    let mut sql = String::from(match f.scope {
        Scope::Fleet => "SELECT ?fields FROM fleet_window_metrics WHERE 1 = 1",
        Scope::Vehicle => "SELECT ?fields FROM vehicle_window_metrics FINAL WHERE 1 = 1",
    });
    if f.fleet_id.is_some() {
        sql.push_str(" AND fleet_id = ?");
    }
    if f.fleets.is_some() {
        sql.push_str(" AND has(?, fleet_id)");
    }
    if f.vehicle_id.is_some() {
        sql.push_str(" AND vehicle_id = ?");
    }
    if f.from_ms.is_some() {
        sql.push_str(" AND window_start_ms >= ?");
    }
    if f.to_ms.is_some() {
        sql.push_str(" AND window_start_ms < ?");
    }
    if f.after.is_some() {
        sql.push_str(match f.scope {
            Scope::Fleet => " AND (fleet_id > ? OR (fleet_id = ? AND window_start_ms > ?))",
            Scope::Vehicle => {
                " AND (fleet_id > ? OR (fleet_id = ? AND (vehicle_id > ? \
                 OR (vehicle_id = ? AND window_start_ms > ?))))"
            }
        });
    }
    sql.push_str(match f.scope {
        Scope::Fleet => " ORDER BY fleet_id, window_start_ms LIMIT ?",
        Scope::Vehicle => " ORDER BY fleet_id, vehicle_id, window_start_ms LIMIT ?",
    });
    let mut q = client.query(&sql);
    if let Some(v) = &f.fleet_id {
        q = q.bind(v.as_str());
    }
    if let Some(v) = &f.fleets {
        q = q.bind(v.as_slice());
    }
    if let Some(v) = &f.vehicle_id {
        q = q.bind(v.as_str());
    }
    if let Some(v) = f.from_ms {
        q = q.bind(v);
    }
    if let Some(v) = f.to_ms {
        q = q.bind(v);
    }
    if let Some(c) = &f.after {
        q = q.bind(c.fleet_id.as_str()).bind(c.fleet_id.as_str());
        if let Some(v) = &c.vehicle_id {
            q = q.bind(v.as_str()).bind(v.as_str());
        }
        q = q.bind(c.window_start_ms);
    }
    // One row more than the page tells whether there is a next page.
    q.bind(u64::from(f.limit) + 1)
}

/// Runs a validated request against ClickHouse.
pub async fn fetch_page(
    client: &clickhouse::Client,
    f: &MetricsFilter,
) -> Result<WindowMetricsPage> {
    if f.fleets.as_ref().is_some_and(Vec::is_empty) {
        // A caller with no fleet in scope sees nothing (and ClickHouse cannot type `[]`).
        return Ok(WindowMetricsPage {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let q = build_query(client, f);
    let fut = async {
        Ok::<_, Error>(match f.scope {
            Scope::Fleet => q
                .fetch_all::<FleetRow>()
                .await?
                .into_iter()
                .map(FleetRow::into_item)
                .collect::<Vec<_>>(),
            Scope::Vehicle => q
                .fetch_all::<VehicleRow>()
                .await?
                .into_iter()
                .map(VehicleRow::into_item)
                .collect(),
        })
    };
    let mut items = tokio::time::timeout(QUERY_TIMEOUT, fut)
        .await
        .map_err(|_| Error::Timeout("clickhouse query"))??;
    let limit = f.limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| {
            CursorKey {
                scope: f.scope.as_str().to_string(),
                fleet_id: last.fleet_id.clone(),
                vehicle_id: last.vehicle_id.clone(),
                window_start_ms: last.window_start_ms,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(WindowMetricsPage { items, next_cursor })
}

/// Window metrics of every fleet (or one, with `fleet_id`).
#[utoipa::path(
    get,
    path = "/api/v1/fleet-performance/metrics",
    tag = "fleet-performance",
    params(MetricsQuery),
    responses(
        (status = 200, description = "A page of window metrics", body = WindowMetricsPage),
        (status = 400, description = "Unknown or invalid parameters", body = crate::error::ErrorBody),
        (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody),
        (status = 403, description = "`fleet_id` outside the caller's scope", body = crate::error::ErrorBody),
        (status = 503, description = "ClickHouse is unavailable", body = crate::error::ErrorBody),
        (status = 500, description = "Internal error", body = crate::error::ErrorBody),
    ),
    security(("bearer_jwt" = []), ("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<MetricsQuery>,
) -> Result<Json<WindowMetricsPage>, ApiError> {
    let filter = scoped(
        &caller,
        MetricsFilter::parse(q, state.config.api.max_page_size)?,
    )?;
    Ok(Json(fetch_page(&state.clickhouse, &filter).await?))
}

/// Restricts a filter to the caller: 403 for a foreign `fleet_id`, otherwise the caller's
/// fleets become part of the query.
fn scoped(caller: &Caller, mut f: MetricsFilter) -> Result<MetricsFilter, ApiError> {
    caller.require(atlasmesh_core::Role::Viewer)?;
    if let Some(fleet) = &f.fleet_id {
        caller.require_fleet(fleet)?;
    }
    if !caller.scope.all {
        f.fleets = Some(caller.scope.fleets.clone());
    }
    Ok(f)
}

/// Window metrics of one fleet.
#[utoipa::path(
    get,
    path = "/api/v1/fleet-performance/metrics/{fleet_id}",
    tag = "fleet-performance",
    params(("fleet_id" = String, Path, description = "Fleet id"), FleetMetricsQuery),
    responses(
        (status = 200, description = "A page of window metrics (empty when the fleet has none)", body = WindowMetricsPage),
        (status = 400, description = "Unknown or invalid parameters", body = crate::error::ErrorBody),
        (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody),
        (status = 403, description = "The fleet is outside the caller's scope", body = crate::error::ErrorBody),
        (status = 503, description = "ClickHouse is unavailable", body = crate::error::ErrorBody),
        (status = 500, description = "Internal error", body = crate::error::ErrorBody),
    ),
    security(("bearer_jwt" = []), ("api_key" = []))
)]
pub async fn list_for_fleet(
    State(state): State<AppState>,
    caller: Caller,
    Path(fleet_id): Path<String>,
    StrictQuery(q): StrictQuery<FleetMetricsQuery>,
) -> Result<Json<WindowMetricsPage>, ApiError> {
    let mut q = MetricsQuery::from(q);
    q.fleet_id = Some(fleet_id);
    let filter = scoped(
        &caller,
        MetricsFilter::parse(q, state.config.api.max_page_size)?,
    )?;
    Ok(Json(fetch_page(&state.clickhouse, &filter).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> MetricsQuery {
        MetricsQuery::default()
    }

    fn bad_fields(r: Result<MetricsFilter, ApiError>) -> Vec<String> {
        match r {
            Err(ApiError::BadRequest { fields, .. }) => fields.into_keys().collect(),
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let f = MetricsFilter::parse(q(), 1000).unwrap();
        assert_eq!(f.scope, Scope::Fleet);
        assert_eq!(f.limit, 100);
        assert_eq!(MetricsFilter::parse(q(), 10).unwrap().limit, 10);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let r = MetricsFilter::parse(
            MetricsQuery {
                scope: Some("planet".into()),
                vehicle_id: Some("v1".into()),
                from: Some("soon".into()),
                limit: Some("0".into()),
                cursor: Some("zz".into()),
                ..q()
            },
            1000,
        );
        assert_eq!(
            bad_fields(r),
            vec!["cursor", "from", "limit", "scope", "vehicle_id"]
        );
        let r = MetricsFilter::parse(
            MetricsQuery {
                from: Some("2000".into()),
                to: Some("1000".into()),
                ..q()
            },
            1000,
        );
        assert_eq!(bad_fields(r), vec!["from"]);
        let r = MetricsFilter::parse(
            MetricsQuery {
                limit: Some("1001".into()),
                ..q()
            },
            1000,
        );
        assert_eq!(bad_fields(r), vec!["limit"]);
    }

    #[test]
    fn cursor_must_match_scope() {
        let c = CursorKey {
            scope: "fleet".into(),
            fleet_id: "f".into(),
            vehicle_id: None,
            window_start_ms: 1,
        };
        let r = MetricsFilter::parse(
            MetricsQuery {
                scope: Some("vehicle".into()),
                cursor: Some(c.encode()),
                ..q()
            },
            1000,
        );
        assert_eq!(bad_fields(r), vec!["cursor"]);
        let f = MetricsFilter::parse(
            MetricsQuery {
                cursor: Some(c.encode()),
                ..q()
            },
            1000,
        )
        .unwrap();
        assert_eq!(f.after, Some(c));
    }
}
