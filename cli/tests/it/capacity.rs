//! Capacity metrics in the running system (issue 14): a queued `analytics_capacity_metrics` row
//! (inserted in PostgreSQL as the API's create would leave it) is computed by the worker's
//! optimization executor from the fleet's zones, one day of zone demand history (seasonal
//! naive: each hour ahead is the same hour the day before) and the vehicles the live hot state
//! shows available per zone (telemetry through the real telemetry pipeline): status, `hours`,
//! summaries and ClickHouse `capacity_forecast` equal what the script below says, independently
//! of the code under test; computed again it gives the same rows; a fleet without zones, a zone
//! of another fleet and a time without history fail with their reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlasmesh_core::telemetry::{TelemetryEvent, VehicleStatus};
use atlasmesh_simulator::{Emitted, EventKind};
use serde::Deserialize;
use serde_json::Value;

use crate::common::{sigterm, TestEnv};

const BUCKET: i64 = 900_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// A UTC day boundary (2025-11-01).
const D0: i64 = 1_761_955_200_000;
/// The capacity metrics' "now": 06:00 of the second day, one day of history before it.
const AS_OF: i64 = D0 + DAY + 6 * HOUR;
/// The standard normal quantile at 0.9 (the metrics' demand quantile).
const Z90: f64 = 1.281_551_565_544_600_4;

/// Requests per 15-minute bucket of the first day in each zone: the centre has a morning peak
/// (nine from 07:00 to 09:00, one otherwise), the north one request a bucket from 07:00 to
/// 08:00 only.
fn requests(zone: &str, bucket_start: i64) -> u32 {
    let hour = bucket_start.rem_euclid(DAY) / HOUR;
    match (zone, hour) {
        ("centre", 7..=8) => 9,
        ("centre", _) => 1,
        ("north", 7) => 1,
        _ => 0,
    }
}

/// The expected zone-hour: a bucket with `c` requests the day before is forecast with mean `c`
/// and planned at ⌈c + z·√c⌉ (Poisson spread, no seasonal differences seen).
fn expected_hour(zone: &str, hour_start: i64, available: u32) -> (f64, f64, f64, u32) {
    let (mut mean, mut planned) = (0.0, 0.0);
    for b in 0..4 {
        let c = f64::from(requests(zone, hour_start - DAY + b * BUCKET));
        mean += c;
        planned += (c + Z90 * c.sqrt()).ceil();
    }
    let shortfall = (planned - f64::from(available)).max(0.0);
    (mean, planned, shortfall, available)
}

#[derive(Debug, Deserialize, PartialEq)]
struct ChRow {
    zone_id: String,
    hour_ms: i64,
    available: u32,
    demand_mean: f64,
    demand_planned: f64,
    shortfall: f64,
    created_at_ms: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_metrics_weigh_available_vehicles_against_the_forecast() {
    let env = TestEnv::new("capacity");
    env.migrate();
    let mut worker = env.spawn_worker_args(
        0,
        &["--pipelines", "telemetry,resources"],
        &[("ATLASMESH_RESOURCES__OPTIMIZATION_INTERVAL_MS", "200")],
    );
    let pg = env.pg().await;
    let fleet = format!("{}-f", env.cfg.kafka.group_prefix.replace('.', "-"));
    let zone = |name: &str| format!("{fleet}-zone-{name}");

    // The fleet's zones (the zones API's rows), and one zone of another fleet.
    for (id, owner) in [
        (zone("north"), fleet.clone()),
        (zone("centre"), fleet.clone()),
        (format!("{fleet}-other-zone"), format!("{fleet}-other")),
    ] {
        sqlx::query(
            "INSERT INTO optimization_zones (id, fleet_id, name, lat, lon, vehicle_capacity)
             VALUES ($1, $2, $1, 52.5, 13.4, 30)",
        )
        .bind(&id)
        .bind(&owner)
        .execute(&pg)
        .await
        .unwrap();
    }

    // One day of requests before AS_OF (as the missions pipeline records them: a mission with
    // its origin zone and request time), plus requests outside the history the metrics read
    // (the day before it, and after AS_OF) that must not count.
    let (mut ids, mut zones, mut times) = (Vec::new(), Vec::new(), Vec::new());
    let mut b = AS_OF - DAY;
    while b < AS_OF {
        for name in ["north", "centre"] {
            for i in 0..requests(name, b) {
                ids.push(format!("{fleet}-{name}-{b}-{i}"));
                zones.push(zone(name));
                times.push(b + i64::from(i) * 20_000);
            }
        }
        b += BUCKET;
    }
    for (i, at) in [AS_OF - DAY - 10 * 60_000, AS_OF + HOUR, AS_OF + 2 * HOUR]
        .into_iter()
        .enumerate()
    {
        for k in 0..20 {
            ids.push(format!("{fleet}-outside-{i}-{k}"));
            zones.push(zone("centre"));
            times.push(at);
        }
    }
    sqlx::query(
        "INSERT INTO mission_runs (mission_id, fleet_id, zone_id, requested_ms)
         SELECT m, $2, z, t FROM UNNEST($1::text[], $3::text[], $4::bigint[]) AS u(m, z, t)",
    )
    .bind(&ids)
    .bind(&fleet)
    .bind(&zones)
    .bind(&times)
    .execute(&pg)
    .await
    .unwrap();

    // The live state: in the north one idle, one charging and one on a mission are available,
    // one in fault and one in maintenance are not; in the centre one idle is, one offline is
    // not; one idle vehicle reports no zone.
    let now = atlasmesh_core::clock::now_ms();
    let fleet_vehicles: [(Option<&str>, VehicleStatus); 8] = [
        (Some("north"), VehicleStatus::Idle),
        (Some("north"), VehicleStatus::Charging),
        (Some("north"), VehicleStatus::OnMission),
        (Some("north"), VehicleStatus::Fault),
        (Some("north"), VehicleStatus::Maintenance),
        (Some("centre"), VehicleStatus::Idle),
        (Some("centre"), VehicleStatus::Offline),
        (None, VehicleStatus::Idle),
    ];
    let available = BTreeMap::from([("north", 3u32), ("centre", 1)]);
    let items: Vec<Emitted> = fleet_vehicles
        .iter()
        .enumerate()
        .map(|(v, (z, status))| {
            let event = TelemetryEvent {
                event_id: format!("{fleet}-v{v}"),
                fleet_id: fleet.clone(),
                vehicle_id: format!("{fleet}-v{v}"),
                ts_ms: now - 5_000 + v as i64,
                seq: 0,
                lat: 52.5,
                lon: 13.4,
                speed_kph: 0.0,
                odometer_km: 100.0,
                energy_pct: 80.0,
                energy_used_kwh: 10.0,
                status: *status,
                mission_id: None,
                zone_id: z.map(zone),
                payload_kg: 0.0,
                fault_codes: vec![],
            };
            Emitted::Event {
                key: event.vehicle_id.clone(),
                event,
                kind: EventKind::Normal,
                sent_ms: None,
            }
        })
        .collect();
    env.produce(&items).await;
    let redis = redis::Client::open(env.cfg.redis.url.as_str()).unwrap();
    let mut rc = redis.get_multiplexed_async_connection().await.unwrap();
    let key = atlasmesh_core::keys::fleet_vehicles(&env.cfg.redis.key_prefix, &fleet);
    let started = Instant::now();
    loop {
        let n: usize = redis::cmd("HLEN")
            .arg(&key)
            .query_async(&mut rc)
            .await
            .unwrap();
        if n == items.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "hot state holds {n}/{} vehicles; logs in {}",
            items.len(),
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The metrics, as the API's create leaves them (status queued).
    let insert = |id: String, owner: String, zone_id: Option<String>, as_of: i64, hours: i32| {
        let pg = pg.clone();
        async move {
            sqlx::query(
                "INSERT INTO analytics_capacity_metrics
                     (id, fleet_id, zone_id, as_of, horizon_hours, demand_quantile, history_days)
                 VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), $5, 0.9, 1)",
            )
            .bind(&id)
            .bind(&owner)
            .bind(zone_id)
            .bind(as_of)
            .bind(hours)
            .execute(&pg)
            .await
            .unwrap();
            id
        }
    };
    let all = insert(format!("{fleet}-cap-all"), fleet.clone(), None, AS_OF, 4).await;
    // 06:30: the 06:30 and 06:45 buckets are forecast, the hours are 07:00 and 08:00.
    let centre = insert(
        format!("{fleet}-cap-centre"),
        fleet.clone(),
        Some(zone("centre")),
        AS_OF + 30 * 60_000,
        2,
    )
    .await;
    let no_zones = insert(
        format!("{fleet}-cap-nozones"),
        format!("{fleet}-nozones"),
        None,
        AS_OF,
        2,
    )
    .await;
    let foreign = insert(
        format!("{fleet}-cap-foreign"),
        fleet.clone(),
        Some(format!("{fleet}-other-zone")),
        AS_OF,
        2,
    )
    .await;
    let no_history = insert(
        format!("{fleet}-cap-nohistory"),
        fleet.clone(),
        None,
        D0 - 10 * DAY,
        2,
    )
    .await;

    #[derive(Debug, sqlx::FromRow)]
    struct Metric {
        status: String,
        hours: Option<Value>,
        available_vehicles: Option<i32>,
        peak_demand: Option<f64>,
        max_shortfall: Option<f64>,
        shortfall_hours: Option<i32>,
        error: Option<String>,
        started: bool,
        finished: bool,
    }
    let wait_final = |id: String| {
        let pg = pg.clone();
        let logs = env.log_dir.clone();
        async move {
            let started = Instant::now();
            loop {
                let m: Metric = sqlx::query_as(
                    "SELECT status, hours, available_vehicles, peak_demand, max_shortfall,
                            shortfall_hours, error, started_at IS NOT NULL AS started,
                            finished_at IS NOT NULL AS finished
                     FROM analytics_capacity_metrics WHERE id = $1",
                )
                .bind(&id)
                .fetch_one(&pg)
                .await
                .unwrap();
                if m.status == "completed" || m.status == "failed" {
                    assert!(m.started && m.finished, "{m:?}");
                    return m;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(90),
                    "{id}: {m:?}; logs in {}",
                    logs.display()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    // The whole fleet, 06:00–10:00: each zone-hour is yesterday's.
    let m = wait_final(all.clone()).await;
    assert_eq!(m.status, "completed", "{m:?}");
    assert_eq!(m.error, None);
    let mut want = Vec::new();
    for name in ["centre", "north"] {
        for h in 0..4 {
            let start = AS_OF + h * HOUR;
            want.push((
                zone(name),
                start,
                expected_hour(name, start, available[name]),
            ));
        }
    }
    // By hand, for the reader: the centre's 07:00 is 9 requests a bucket, mean 36, planned
    // 4 × ⌈9 + 3 × 1.28⌉ = 52, one vehicle available, short by 51.
    assert_eq!(want[1].2, (36.0, 52.0, 51.0, 1));
    let hours = m.hours.as_ref().unwrap().as_array().unwrap();
    assert_eq!(hours.len(), want.len(), "{hours:?}");
    for (got, (z, start, (mean, planned, shortfall, avail))) in hours.iter().zip(&want) {
        assert_eq!(got["zone_id"], z.as_str(), "{got}");
        assert_eq!(
            got["hour_start"],
            atlasmesh_core::domain::validate::format_time(*start),
            "{got}"
        );
        assert_eq!(got["available"], *avail, "{got}");
        assert!(
            (got["demand_mean"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{got}"
        );
        assert_eq!(got["demand_planned"].as_f64(), Some(*planned), "{got}");
        assert_eq!(got["shortfall"].as_f64(), Some(*shortfall), "{got}");
    }
    let peak = want.iter().map(|w| w.2 .1).fold(0.0, f64::max);
    let max_short = want.iter().map(|w| w.2 .2).fold(0.0, f64::max);
    let short_hours = want.iter().filter(|w| w.2 .2 > 0.0).count() as i32;
    assert_eq!(
        (
            m.available_vehicles,
            m.peak_demand,
            m.max_shortfall,
            m.shortfall_hours
        ),
        (Some(4), Some(peak), Some(max_short), Some(short_hours))
    );
    assert_eq!((peak, max_short, short_hours), (52.0, 51.0, 5));

    // The same zone-hours in ClickHouse, under the metric's id.
    let env_ref = &env;
    let ch_rows = |id: String| async move {
        env_ref.ch_rows::<ChRow>(&format!(
            "SELECT zone_id, hour_ms, available, demand_mean, demand_planned, shortfall, created_at_ms
             FROM capacity_forecast FINAL WHERE metric_id = '{id}' ORDER BY zone_id, hour_ms"
        ))
        .await
    };
    let rows = ch_rows(all.clone()).await;
    assert_eq!(rows.len(), want.len());
    for (r, (z, start, (mean, planned, shortfall, avail))) in rows.iter().zip(&want) {
        assert_eq!(
            (
                &r.zone_id,
                r.hour_ms,
                r.available,
                r.demand_planned,
                r.shortfall
            ),
            (z, *start, *avail, *planned, *shortfall)
        );
        assert!((r.demand_mean - mean).abs() < 1e-9);
    }

    // One zone from 06:30: the first full hours are 07:00 and 08:00.
    let m = wait_final(centre.clone()).await;
    assert_eq!(m.status, "completed", "{m:?}");
    let hours = m.hours.unwrap();
    let starts: Vec<&str> = hours
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hour_start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            atlasmesh_core::domain::validate::format_time(AS_OF + HOUR),
            atlasmesh_core::domain::validate::format_time(AS_OF + 2 * HOUR),
        ]
    );
    for h in hours.as_array().unwrap() {
        assert_eq!(h["zone_id"], zone("centre").as_str());
        assert_eq!(
            (h["demand_planned"].as_f64(), h["shortfall"].as_f64()),
            (Some(52.0), Some(51.0)),
            "{h}"
        );
    }
    assert_eq!(m.available_vehicles, Some(1));

    // Failures, with their reason.
    for (id, reason) in [
        (no_zones, "has no zones"),
        (foreign, "is not a zone of fleet"),
        (no_history, "no zone demand in the 1 days before"),
    ] {
        let m = wait_final(id.clone()).await;
        assert_eq!(m.status, "failed", "{id}: {m:?}");
        assert!(
            m.error.as_deref().unwrap_or_default().contains(reason),
            "{id}: {m:?}"
        );
        assert!(m.hours.is_none() && m.available_vehicles.is_none(), "{m:?}");
        assert!(ch_rows(id).await.is_empty());
    }

    // Computed again (queued anew), the same rows: PostgreSQL's and ClickHouse's.
    let before = wait_final(all.clone()).await;
    sqlx::query(
        "UPDATE analytics_capacity_metrics SET status = 'queued', started_at = NULL, finished_at = NULL
         WHERE id = $1",
    )
    .bind(&all)
    .execute(&pg)
    .await
    .unwrap();
    let again = wait_final(all.clone()).await;
    assert_eq!(again.status, "completed");
    assert_eq!(again.hours, before.hours);
    assert_eq!(ch_rows(all.clone()).await, rows);

    sigterm(&mut worker);
}
