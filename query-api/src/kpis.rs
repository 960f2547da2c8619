//! Live values from Redis (key layout: [`atlasmesh_core::keys`]):
//! `GET /api/v1/fleets/{fleet_id}/kpis` and `GET /api/v1/fleets/{fleet_id}/vehicles/{vehicle_id}/latest`.

use std::collections::{BTreeMap, HashMap};

use atlasmesh_core::keys::{self, FleetPartialKpi};
use atlasmesh_core::window::Counters;
use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, Error, Result};
use crate::params::format_instant;
use crate::state::{AppState, QUERY_TIMEOUT};
use crate::views::{CounterValues, Derived};

/// Current state of a fleet, from the newest sample of each vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LiveKpis {
    pub vehicles: u64,
    /// Vehicles per current status; every status is present.
    pub by_status: BTreeMap<String, u64>,
    /// Mean battery level over the vehicles, `null` without vehicles.
    pub mean_energy_pct: Option<f64>,
    /// Event time of the newest sample.
    pub newest_ts_ms: Option<i64>,
    pub newest_ts: Option<String>,
}

/// The newest window every source partition of the fleet has closed, summed over partitions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WindowKpis {
    pub window_start: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// Partials summed.
    pub partitions: u64,
    #[serde(flatten)]
    pub counters: CounterValues,
    #[serde(flatten)]
    pub derived: Derived,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FleetKpis {
    pub fleet_id: String,
    pub live: LiveKpis,
    /// `null` until some window of the fleet has closed.
    pub window: Option<WindowKpis>,
}

/// The fields of a vehicle's newest sample the live KPIs use: parsed without allocating the
/// rest of the event (serde skips what is not named here).
#[derive(serde::Deserialize)]
struct LiveFields {
    ts_ms: i64,
    energy_pct: f64,
    status: VehicleStatus,
}

/// Aggregates the `fleet_vehicles` hash. Entries that do not parse are skipped (and logged).
pub fn live_kpis(fleet_id: &str, vehicles: &HashMap<String, String>) -> LiveKpis {
    let mut by_status = [0u64; VehicleStatus::ALL.len()];
    let (mut n, mut energy, mut newest) = (0u64, 0f64, None::<i64>);
    for (vehicle_id, json) in vehicles {
        let ev: LiveFields = match serde_json::from_str(json) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(fleet_id, vehicle_id = %vehicle_id, error = %e, "Skipping unreadable vehicle state.");
                continue;
            }
        };
        n += 1;
        energy += ev.energy_pct;
        if let Some(i) = VehicleStatus::ALL.iter().position(|s| *s == ev.status) {
            by_status[i] += 1;
        }
        newest = Some(newest.map_or(ev.ts_ms, |t| t.max(ev.ts_ms)));
    }
    LiveKpis {
        vehicles: n,
        by_status: VehicleStatus::ALL
            .iter()
            .zip(by_status)
            .map(|(s, c)| (s.as_str().to_string(), c))
            .collect(),
        mean_energy_pct: (n > 0).then(|| energy / n as f64),
        newest_ts_ms: newest,
        newest_ts: newest.map(format_instant),
    }
}

/// Picks the newest window that every partition seen in the `fleet_windows` hash has
/// reported — the minimum over partitions of each partition's newest readable window — and
/// sums the partials of that window. The window is chosen from the field names; only the
/// chosen window's partials are parsed (a fleet's hash holds 60 windows × partitions), and an
/// unreadable one is left out and the choice made again. `None` when the hash holds no readable
/// partial.
pub fn complete_window(fleet_id: &str, windows: &HashMap<String, String>) -> Option<WindowKpis> {
    let fields: Vec<(i64, i32, &String)> = windows
        .iter()
        .filter_map(|(field, json)| match keys::parse_fleet_window_field(field) {
            Some((start, partition)) => Some((start, partition, json)),
            None => {
                tracing::warn!(fleet_id, field = %field, "Skipping unreadable fleet window field.");
                None
            }
        })
        .collect();
    let mut unreadable: Vec<(i64, i32)> = Vec::new();
    'choose: loop {
        let mut newest_per_partition: BTreeMap<i32, i64> = BTreeMap::new();
        for (start, partition, _) in &fields {
            if unreadable.contains(&(*start, *partition)) {
                continue;
            }
            let e = newest_per_partition.entry(*partition).or_insert(*start);
            *e = (*e).max(*start);
        }
        let window = *newest_per_partition.values().min()?;
        let mut sum = Counters::default();
        let (mut n, mut end) = (0u64, window);
        for (start, partition, json) in &fields {
            if *start != window {
                continue;
            }
            match serde_json::from_str::<FleetPartialKpi>(json) {
                Ok(p) => {
                    sum.add(&p.counters);
                    n += 1;
                    end = end.max(p.window_end_ms);
                }
                Err(e) => {
                    tracing::warn!(fleet_id, window_start_ms = start, partition, error = %e, "Skipping unreadable fleet partial.");
                    unreadable.push((*start, *partition));
                    continue 'choose;
                }
            }
        }
        return Some(WindowKpis {
            window_start: format_instant(window),
            window_start_ms: window,
            window_end_ms: end,
            partitions: n,
            counters: (&sum).into(),
            derived: (&sum).into(),
        });
    }
}

async fn with_timeout<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(QUERY_TIMEOUT, fut)
        .await
        .map_err(|_| Error::Timeout("redis"))?
}

/// Live and last-complete-window KPIs of a fleet.
#[utoipa::path(
    get,
    path = "/api/v1/fleets/{fleet_id}/kpis",
    tag = "fleets",
    params(("fleet_id" = String, Path, description = "Fleet id")),
    responses(
        (status = 200, description = "Fleet KPIs", body = FleetKpis),
        (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody),
        (status = 403, description = "The fleet is outside the caller's scope", body = crate::error::ErrorBody),
        (status = 404, description = "No live data for this fleet", body = crate::error::ErrorBody),
        (status = 503, description = "Redis is unavailable", body = crate::error::ErrorBody),
        (status = 500, description = "Internal error", body = crate::error::ErrorBody),
    ),
    security(("bearer_jwt" = []), ("api_key" = []))
)]
pub async fn fleet_kpis(
    State(state): State<AppState>,
    caller: Caller,
    Path(fleet_id): Path<String>,
) -> Result<Json<FleetKpis>, ApiError> {
    caller.require(atlasmesh_core::Role::Viewer)?;
    caller.require_fleet(&fleet_id)?;
    let prefix = &state.config.redis.key_prefix;
    let (vehicles, windows): (HashMap<String, String>, HashMap<String, String>) =
        with_timeout(async {
            let mut conn = state.redis.get().await?;
            Ok(redis::pipe()
                .hgetall(keys::fleet_vehicles(prefix, &fleet_id))
                .hgetall(keys::fleet_windows(prefix, &fleet_id))
                .query_async(&mut conn)
                .await?)
        })
        .await?;
    if vehicles.is_empty() && windows.is_empty() {
        return Err(ApiError::not_found(format!(
            "no live data for fleet {fleet_id:?}"
        )));
    }
    let live = live_kpis(&fleet_id, &vehicles);
    let window = complete_window(&fleet_id, &windows);
    Ok(Json(FleetKpis {
        fleet_id,
        live,
        window,
    }))
}

/// The newest telemetry sample of a vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VehicleLatest {
    pub event_id: String,
    pub fleet_id: String,
    pub vehicle_id: String,
    /// Event time, epoch milliseconds.
    pub ts_ms: i64,
    pub seq: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_kph: f64,
    pub odometer_km: f64,
    pub energy_pct: f64,
    pub energy_used_kwh: f64,
    /// offline, idle, en_route, on_mission, charging, maintenance or fault.
    pub status: String,
    pub mission_id: Option<String>,
    pub zone_id: Option<String>,
    pub payload_kg: f64,
    pub fault_codes: Vec<String>,
}

impl From<TelemetryEvent> for VehicleLatest {
    fn from(e: TelemetryEvent) -> Self {
        VehicleLatest {
            event_id: e.event_id,
            fleet_id: e.fleet_id,
            vehicle_id: e.vehicle_id,
            ts_ms: e.ts_ms,
            seq: e.seq,
            lat: e.lat,
            lon: e.lon,
            speed_kph: e.speed_kph,
            odometer_km: e.odometer_km,
            energy_pct: e.energy_pct,
            energy_used_kwh: e.energy_used_kwh,
            status: e.status.as_str().to_string(),
            mission_id: e.mission_id,
            zone_id: e.zone_id,
            payload_kg: e.payload_kg,
            fault_codes: e.fault_codes,
        }
    }
}

/// Newest sample of one vehicle.
#[utoipa::path(
    get,
    path = "/api/v1/fleets/{fleet_id}/vehicles/{vehicle_id}/latest",
    tag = "fleets",
    params(
        ("fleet_id" = String, Path, description = "Fleet id"),
        ("vehicle_id" = String, Path, description = "Vehicle id"),
    ),
    responses(
        (status = 200, description = "The newest telemetry event of the vehicle", body = VehicleLatest),
        (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody),
        (status = 403, description = "The fleet is outside the caller's scope", body = crate::error::ErrorBody),
        (status = 404, description = "No live data for this vehicle", body = crate::error::ErrorBody),
        (status = 503, description = "Redis is unavailable", body = crate::error::ErrorBody),
        (status = 500, description = "Internal error", body = crate::error::ErrorBody),
    ),
    security(("bearer_jwt" = []), ("api_key" = []))
)]
pub async fn vehicle_latest(
    State(state): State<AppState>,
    caller: Caller,
    Path((fleet_id, vehicle_id)): Path<(String, String)>,
) -> Result<Json<VehicleLatest>, ApiError> {
    caller.require(atlasmesh_core::Role::Viewer)?;
    caller.require_fleet(&fleet_id)?;
    let key = keys::fleet_vehicles(&state.config.redis.key_prefix, &fleet_id);
    let json: Option<String> = with_timeout(async {
        let mut conn = state.redis.get().await?;
        Ok(redis::cmd("HGET")
            .arg(&key)
            .arg(&vehicle_id)
            .query_async(&mut conn)
            .await?)
    })
    .await?;
    let Some(json) = json else {
        return Err(ApiError::not_found(format!(
            "no live data for vehicle {vehicle_id:?} of fleet {fleet_id:?}"
        )));
    };
    let ev: TelemetryEvent = serde_json::from_str(&json)
        .map_err(|e| Error::Corrupt(format!("{key} {vehicle_id}: {e}")))?;
    Ok(Json(ev.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(
        start: i64,
        partition: i32,
        version: u32,
        busy: u64,
        observed: u64,
    ) -> (String, String) {
        let p = FleetPartialKpi {
            window_start_ms: start,
            window_end_ms: start + 60_000,
            source_partition: partition,
            version,
            counters: Counters {
                busy_ms: busy,
                observed_ms: observed,
                vehicles: 1,
                ..Default::default()
            },
        };
        (
            keys::fleet_window_field(start, partition),
            serde_json::to_string(&p).unwrap(),
        )
    }

    #[test]
    fn window_is_the_newest_reported_by_every_partition() {
        let w0 = 1_700_000_040_000;
        let w1 = w0 + 60_000;
        let w2 = w1 + 60_000;
        let m: HashMap<_, _> = [
            partial(w0, 0, 1, 1, 10),
            partial(w1, 0, 2, 30_000, 60_000),
            partial(w2, 0, 1, 7, 7),
            partial(w0, 1, 1, 2, 10),
            partial(w1, 1, 1, 15_000, 60_000),
            ("garbage".into(), "{}".into()),
            (keys::fleet_window_field(w2, 1), "not json".into()),
        ]
        .into_iter()
        .collect();
        let w = complete_window("f", &m).unwrap();
        assert_eq!(w.window_start_ms, w1);
        assert_eq!(w.window_end_ms, w1 + 60_000);
        assert_eq!(w.partitions, 2);
        assert_eq!(w.counters.busy_ms, 45_000);
        assert_eq!(w.counters.observed_ms, 120_000);
        assert_eq!(w.counters.vehicles, 2);
        assert_eq!(w.derived.utilization, Some(0.375));
        assert_eq!(w.derived.kwh_per_km, None);
        assert!(complete_window("f", &HashMap::new()).is_none());
    }
}
