//! Live values from Redis (key layout: [`atlasmesh_core::keys`]):
//! `GET /api/v1/fleets/{fleet_id}/kpis` and `GET /api/v1/fleets/{fleet_id}/vehicles/{vehicle_id}/latest`.

use std::collections::{BTreeMap, HashMap};

use atlasmesh_core::keys::{self, FleetPartialKpi, LiveSample};
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

/// The live KPIs summed one vehicle at a time.
#[derive(Default)]
struct LiveTally {
    by_status: [u64; VehicleStatus::ALL.len()],
    vehicles: u64,
    energy: f64,
    newest: Option<i64>,
}

impl LiveTally {
    fn add(&mut self, s: LiveSample) {
        self.vehicles += 1;
        self.energy += s.energy_pct;
        if let Some(i) = VehicleStatus::ALL.iter().position(|v| *v == s.status) {
            self.by_status[i] += 1;
        }
        self.newest = Some(self.newest.map_or(s.ts_ms, |t| t.max(s.ts_ms)));
    }

    fn finish(self) -> LiveKpis {
        let n = self.vehicles;
        LiveKpis {
            vehicles: n,
            by_status: VehicleStatus::ALL
                .iter()
                .zip(self.by_status)
                .map(|(s, c)| (s.as_str().to_string(), c))
                .collect(),
            mean_energy_pct: (n > 0).then(|| self.energy / n as f64),
            newest_ts_ms: self.newest,
            newest_ts: self.newest.map(format_instant),
        }
    }
}

/// Aggregates the `fleet_vehicles` hash (whole events, [`keys::decode_latest`]). Entries that
/// do not decode are skipped (and logged).
pub fn live_kpis(fleet_id: &str, vehicles: &HashMap<String, Vec<u8>>) -> LiveKpis {
    let mut tally = LiveTally::default();
    for ev in atlasmesh_sinks::redis::readable_latest(fleet_id, vehicles) {
        tally.add(LiveSample::from(&ev));
    }
    tally.finish()
}

/// Aggregates the compact `fleet_live` hash ([`LiveSample`] per vehicle): the same figures as
/// [`live_kpis`] over the same samples. Entries that do not parse are skipped (and logged).
pub fn live_kpis_compact(fleet_id: &str, live: &HashMap<String, String>) -> LiveKpis {
    let mut tally = LiveTally::default();
    for (vehicle_id, v) in live {
        match LiveSample::parse(v) {
            Some(s) => tally.add(s),
            None => {
                tracing::warn!(fleet_id, vehicle_id = %vehicle_id, value = %v, "Skipping unreadable live sample.");
            }
        }
    }
    tally.finish()
}

/// The window a fleet's KPIs show: the newest window that every partition among `fields`
/// (the `fleet_windows` field names, parsed) has reported — the minimum over partitions of each
/// partition's newest window — leaving out the fields in `unreadable`. Returns the window and
/// its fields (the partials to read and sum); `None` when no field is left.
pub fn choose_window(
    fields: &[(i64, i32)],
    unreadable: &[(i64, i32)],
) -> Option<(i64, Vec<(i64, i32)>)> {
    let mut newest_per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for f in fields {
        if unreadable.contains(f) {
            continue;
        }
        let (start, partition) = *f;
        let e = newest_per_partition.entry(partition).or_insert(start);
        *e = (*e).max(start);
    }
    let window = *newest_per_partition.values().min()?;
    let chosen = fields
        .iter()
        .filter(|f| f.0 == window && !unreadable.contains(f))
        .copied()
        .collect();
    Some((window, chosen))
}

/// The partials of one window summed.
pub fn sum_window(window: i64, partials: &[FleetPartialKpi]) -> WindowKpis {
    let mut sum = Counters::default();
    let mut end = window;
    for p in partials {
        sum.add(&p.counters);
        end = end.max(p.window_end_ms);
    }
    WindowKpis {
        window_start: format_instant(window),
        window_start_ms: window,
        window_end_ms: end,
        partitions: partials.len() as u64,
        counters: (&sum).into(),
        derived: (&sum).into(),
    }
}

/// Parses the `fleet_windows` field names; unreadable ones are skipped (and logged).
pub fn window_fields<'a>(
    fleet_id: &str,
    names: impl Iterator<Item = &'a String>,
) -> Vec<(i64, i32)> {
    names
        .filter_map(|field| {
            let parsed = keys::parse_fleet_window_field(field);
            if parsed.is_none() {
                tracing::warn!(fleet_id, field = %field, "Skipping unreadable fleet window field.");
            }
            parsed
        })
        .collect()
}

/// [`choose_window`] and [`sum_window`] over a whole `fleet_windows` hash in memory: an
/// unreadable partial of the chosen window is left out and the choice made again. `None` when
/// the hash holds no readable partial.
pub fn complete_window(fleet_id: &str, windows: &HashMap<String, String>) -> Option<WindowKpis> {
    let fields = window_fields(fleet_id, windows.keys());
    let mut unreadable = Vec::new();
    loop {
        let (window, chosen) = choose_window(&fields, &unreadable)?;
        let values = chosen
            .iter()
            .map(|(w, p)| windows.get(&keys::fleet_window_field(*w, *p)).cloned());
        if let Some(partials) = read_partials(fleet_id, &chosen, values, &mut unreadable) {
            return Some(sum_window(window, &partials));
        }
    }
}

/// Parses the partials of the chosen fields; `None` (with the bad ones added to `unreadable`)
/// when one is missing or does not parse.
pub fn read_partials(
    fleet_id: &str,
    chosen: &[(i64, i32)],
    values: impl Iterator<Item = Option<String>>,
    unreadable: &mut Vec<(i64, i32)>,
) -> Option<Vec<FleetPartialKpi>> {
    let mut partials = Vec::with_capacity(chosen.len());
    let mut complete = true;
    for (&(start, partition), v) in chosen.iter().zip(values) {
        match v.as_deref().map(serde_json::from_str::<FleetPartialKpi>) {
            Some(Ok(p)) => partials.push(p),
            Some(Err(e)) => {
                tracing::warn!(fleet_id, window_start_ms = start, partition, error = %e, "Skipping unreadable fleet partial.");
                unreadable.push((start, partition));
                complete = false;
            }
            // Pruned between the field list and the read.
            None => {
                unreadable.push((start, partition));
                complete = false;
            }
        }
    }
    complete.then_some(partials)
}

async fn with_timeout<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(QUERY_TIMEOUT, fut)
        .await
        .map_err(|_| Error::Timeout("redis"))?
}

/// Live and last-complete-window KPIs of a fleet.
///
/// One round trip reads the vehicle count, the compact live hash and the window index; a second
/// reads only the chosen window's partials. The whole vehicles hash is read only when the live
/// hash lacks vehicles, and the window field names only when the index is missing or a partial
/// it points at is unreadable (state written before they existed, or damaged).
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
    let vehicles_key = keys::fleet_vehicles(prefix, &fleet_id);
    let windows_key = keys::fleet_windows(prefix, &fleet_id);
    let (live, window) = with_timeout(async {
        let mut conn = state.redis.get().await?;
        type First = (usize, HashMap<String, String>, usize, Vec<(i32, f64)>);
        let (n_vehicles, live, n_windows, index): First = redis::pipe()
            .hlen(&vehicles_key)
            .hgetall(keys::fleet_live(prefix, &fleet_id))
            .hlen(&windows_key)
            .zrange_withscores(keys::fleet_window_index(prefix, &fleet_id), 0, -1)
            .query_async(&mut conn)
            .await?;
        if n_vehicles == 0 && n_windows == 0 {
            return Ok(None);
        }
        let live = if live.len() >= n_vehicles {
            live_kpis_compact(&fleet_id, &live)
        } else {
            let vehicles: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
                .arg(&vehicles_key)
                .query_async(&mut conn)
                .await?;
            live_kpis(&fleet_id, &vehicles)
        };
        let mut window = None;
        if n_windows > 0 {
            if let Some((ws, chosen)) = indexed_window(&index) {
                let values = hmget(&mut conn, &windows_key, &chosen).await?;
                window = indexed_partials(&fleet_id, &chosen, values)
                    .map(|partials| sum_window(ws, &partials));
            }
            if window.is_none() {
                window = scan_window(&mut conn, &fleet_id, &windows_key).await?;
            }
        }
        Ok(Some((live, window)))
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no live data for fleet {fleet_id:?}")))?;
    Ok(Json(FleetKpis {
        fleet_id,
        live,
        window,
    }))
}

/// The partials of `fields` of the windows hash `key`, `None` where there is none.
async fn hmget(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
    fields: &[(i64, i32)],
) -> Result<Vec<Option<String>>> {
    Ok(redis::cmd("HMGET")
        .arg(key)
        .arg(
            fields
                .iter()
                .map(|(w, p)| keys::fleet_window_field(*w, *p))
                .collect::<Vec<_>>(),
        )
        .query_async(conn)
        .await?)
}

/// The window the index (ZRANGE WITHSCORES: partition, newest window start) points at: the
/// newest window every partition has reported, and the field of each partition's partial of
/// it; a partition with none for this window (it skipped it) is then not summed, as when
/// scanning. `None` for an empty index.
pub fn indexed_window(index: &[(i32, f64)]) -> Option<(i64, Vec<(i64, i32)>)> {
    let ws = index.iter().map(|(_, w)| *w as i64).min()?;
    Some((ws, index.iter().map(|(p, _)| (ws, *p)).collect()))
}

/// The partials the index pointed at: absent ones left out; `None` when one does not parse or
/// none is there (the caller then scans the field names).
pub fn indexed_partials(
    fleet_id: &str,
    fields: &[(i64, i32)],
    values: Vec<Option<String>>,
) -> Option<Vec<FleetPartialKpi>> {
    let mut partials = Vec::with_capacity(fields.len());
    for (&(start, partition), v) in fields.iter().zip(values) {
        let Some(v) = v else { continue };
        match serde_json::from_str::<FleetPartialKpi>(&v) {
            Ok(p) => partials.push(p),
            Err(e) => {
                tracing::warn!(fleet_id, window_start_ms = start, partition, error = %e, "Unreadable fleet partial; scanning the windows.");
                return None;
            }
        }
    }
    (!partials.is_empty()).then_some(partials)
}

/// The complete window found from the windows hash's field names (HKEYS), then its partials
/// (HMGET): the path for state without an index, or with an unreadable partial.
async fn scan_window(
    conn: &mut redis::aio::ConnectionManager,
    fleet_id: &str,
    key: &str,
) -> Result<Option<WindowKpis>> {
    let names: Vec<String> = redis::cmd("HKEYS").arg(key).query_async(conn).await?;
    let fields = window_fields(fleet_id, names.iter());
    let mut unreadable = Vec::new();
    loop {
        let Some((window, chosen)) = choose_window(&fields, &unreadable) else {
            return Ok(None);
        };
        let values = hmget(conn, key, &chosen).await?;
        if let Some(partials) =
            read_partials(fleet_id, &chosen, values.into_iter(), &mut unreadable)
        {
            return Ok(Some(sum_window(window, &partials)));
        }
    }
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
    let value: Option<Vec<u8>> = with_timeout(async {
        let mut conn = state.redis.get().await?;
        Ok(redis::cmd("HGET")
            .arg(&key)
            .arg(&vehicle_id)
            .query_async(&mut conn)
            .await?)
    })
    .await?;
    let Some(value) = value else {
        return Err(ApiError::not_found(format!(
            "no live data for vehicle {vehicle_id:?} of fleet {fleet_id:?}"
        )));
    };
    let ev: TelemetryEvent = keys::decode_latest(&value)
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

    /// The compact live hash gives the same figures as the whole events.
    #[test]
    fn compact_live_equals_whole_events() {
        let statuses = VehicleStatus::ALL;
        let mut whole = HashMap::new();
        let mut compact = HashMap::new();
        for i in 0..500i64 {
            let s = LiveSample {
                ts_ms: 1_700_000_000_000 + i * 977 % 5_000,
                energy_pct: (i as f64 * 0.37).sin().abs() * 100.0,
                status: statuses[(i % 7) as usize],
            };
            let id = format!("v{i}");
            let mut e = TelemetryEvent {
                vehicle_id: id.clone(),
                ts_ms: s.ts_ms,
                energy_pct: s.energy_pct,
                status: s.status,
                lat: 1.0,
                ..TelemetryEvent::default()
            };
            // Both stored forms: binary, and JSON as written before.
            let value = if i % 2 == 0 {
                keys::encode_latest(&e)
            } else {
                e.fleet_id = "f".into();
                serde_json::to_vec(&e).unwrap()
            };
            whole.insert(id.clone(), value);
            compact.insert(id, s.encode());
        }
        whole.insert("bad".into(), b"{".to_vec());
        whole.insert("bad2".into(), vec![keys::LATEST_BINARY_V1, 7]);
        compact.insert("bad".into(), "1 x idle".into());
        let (mut a, mut b) = (live_kpis("f", &whole), live_kpis_compact("f", &compact));
        // The mean is summed in each map's own order: equal up to rounding.
        let (ma, mb) = (
            a.mean_energy_pct.take().unwrap(),
            b.mean_energy_pct.take().unwrap(),
        );
        assert!((ma - mb).abs() < 1e-9, "{ma} vs {mb}");
        assert_eq!(a, b);
        assert_eq!(a.vehicles, 500);
        assert_eq!(a.by_status["fault"], 71);
    }
}
