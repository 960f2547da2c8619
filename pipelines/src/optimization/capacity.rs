//! Capacity metrics: per zone of a fleet and hour ahead, the vehicles available now against the
//! demand forecast for that hour. A metric is created through the API
//! (`POST /api/v1/fleet-analytics/capacity-metrics`, row of `analytics_capacity_metrics`,
//! status `queued`) and computed here, in the optimization executor's loop: claimed with
//! `FOR UPDATE SKIP LOCKED` (so workers side by side share the queue), status `running`
//! (`started_at`) → `completed` or `failed` (`finished_at`, `error`).
//!
//! The inputs are the optimization runs' own: the fleet's zones (the row's `zone_id` alone when
//! it names one), the zone demand history of the `history_days` before the bucket containing
//! `as_of` (default: when the metric was created), forecast per bucket by
//! [`super::demand::forecast_zones`] at the row's `demand_quantile`, and the live hot state
//! (each vehicle's newest sample, counted in its `zone_id` when its status is available: not
//! maintenance, fault or offline). [`zone_hours`] sums the forecast per full clock hour —
//! `horizon_hours` of them, from the first hour starting at or after the bucket containing
//! `as_of` — into `demand_mean` (the buckets' means) and `demand_planned` (the buckets' planned
//! counts: the quantile, rounded up, as a run plans), and the shortfall is
//! `max(0, demand_planned − available)`. [`summarize`] gives the row's summaries.
//!
//! The zone-hours go to ClickHouse `capacity_forecast` (metric id = the row's id, created at =
//! the row's creation: writing them again changes nothing) before the row is completed; when
//! ClickHouse cannot take them the metric goes back to `queued` and is computed again at a
//! later look.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlasmesh_core::domain::optimization::ZoneView;
use atlasmesh_core::domain::validate::format_time;
use atlasmesh_core::metric_names as m;
use atlasmesh_core::telemetry::VehicleStatus;
use atlasmesh_sinks::clickhouse::{datetime_secs, CapacityForecastRow, ClickHouseSink};
use atlasmesh_sinks::redis::RedisSink;
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use tracing::{info, warn};

use super::demand::{self, Forecasts};
use crate::Result;

pub const HOUR_MS: i64 = 3_600_000;

/// The forecast steps a capacity metric reads, in zone demand buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start of the bucket containing `as_of`: the first bucket forecast (the history ends
    /// here).
    pub from_ms: i64,
    pub bucket_ms: i64,
    /// Buckets forecast before the first full hour.
    pub skip: usize,
    pub per_hour: usize,
    pub hours: usize,
}

impl Window {
    /// The window of `hours` full clock hours from the first one starting at or after the
    /// bucket containing `as_of_ms`. The bucket must divide an hour.
    pub fn new(as_of_ms: i64, bucket_ms: i64, hours: usize) -> std::result::Result<Self, String> {
        if bucket_ms <= 0 || HOUR_MS % bucket_ms != 0 {
            return Err(format!(
                "the zone demand bucket (missions.zone_bucket_ms = {bucket_ms}) must divide an hour"
            ));
        }
        if hours == 0 {
            return Err("horizon_hours must be at least 1".into());
        }
        let from_ms = as_of_ms.div_euclid(bucket_ms) * bucket_ms;
        let first_hour = from_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let first_hour = if first_hour < from_ms {
            first_hour + HOUR_MS
        } else {
            first_hour
        };
        Ok(Window {
            from_ms,
            bucket_ms,
            skip: usize::try_from((first_hour - from_ms) / bucket_ms).unwrap_or(0),
            per_hour: usize::try_from(HOUR_MS / bucket_ms).unwrap_or(1),
            hours,
        })
    }

    /// Buckets to forecast from `from_ms`.
    pub fn horizon(&self) -> usize {
        self.skip + self.per_hour * self.hours
    }

    /// Start of hour `h` (0: the first full hour).
    pub fn hour_start_ms(&self, h: usize) -> i64 {
        self.from_ms + (self.skip + h * self.per_hour) as i64 * self.bucket_ms
    }
}

/// One zone in one hour ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneHour {
    pub zone_id: String,
    pub hour_start_ms: i64,
    /// Vehicles available in the zone now.
    pub available: u32,
    /// Sum of the hour's bucket forecast means.
    pub demand_mean: f64,
    /// Sum of the hour's bucket planned counts (the quantile, rounded up).
    pub demand_planned: f64,
    /// `max(0, demand_planned − available)`.
    pub shortfall: f64,
}

/// Per zone of `forecasts` (the requests forecast of each, from `window.from_ms`) and hour of
/// `window`: the available vehicles (`available` by zone id; none when absent), the summed
/// demand and the shortfall. Ordered by zone, then hour.
pub fn zone_hours(
    forecasts: &Forecasts,
    available: &BTreeMap<String, u32>,
    window: &Window,
) -> Vec<ZoneHour> {
    let mut out = Vec::with_capacity(forecasts.len() * window.hours);
    for (zone, (requests, _)) in forecasts {
        let avail = available.get(zone).copied().unwrap_or(0);
        for h in 0..window.hours {
            let a = window.skip + h * window.per_hour;
            let steps = requests
                .steps
                .get(a..a + window.per_hour)
                .unwrap_or_default();
            let demand_mean: f64 = steps.iter().map(|s| s.mean).sum();
            let demand_planned: f64 = steps.iter().map(|s| f64::from(s.planned)).sum();
            out.push(ZoneHour {
                zone_id: zone.clone(),
                hour_start_ms: window.hour_start_ms(h),
                available: avail,
                demand_mean,
                demand_planned,
                shortfall: (demand_planned - f64::from(avail)).max(0.0),
            });
        }
    }
    out
}

/// The summaries of a metric's zone-hours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Vehicles available now over the metric's zones.
    pub available_vehicles: u32,
    /// The highest planned demand of a zone-hour.
    pub peak_demand: f64,
    /// The highest shortfall of a zone-hour.
    pub max_shortfall: f64,
    /// Zone-hours with a shortfall.
    pub shortfall_hours: u32,
}

pub fn summarize(hours: &[ZoneHour]) -> Summary {
    let per_zone: BTreeMap<&str, u32> = hours
        .iter()
        .map(|h| (h.zone_id.as_str(), h.available))
        .collect();
    Summary {
        available_vehicles: per_zone.values().sum(),
        peak_demand: hours.iter().map(|h| h.demand_planned).fold(0.0, f64::max),
        max_shortfall: hours.iter().map(|h| h.shortfall).fold(0.0, f64::max),
        shortfall_hours: u32::try_from(hours.iter().filter(|h| h.shortfall > 0.0).count())
            .unwrap_or(u32::MAX),
    }
}

/// The row's `hours`: `[{zone_id, hour_start (RFC 3339), available, demand_mean,
/// demand_planned, shortfall}]`.
pub fn hours_json(hours: &[ZoneHour]) -> Value {
    Value::Array(
        hours
            .iter()
            .map(|h| {
                json!({
                    "zone_id": h.zone_id,
                    "hour_start": format_time(h.hour_start_ms),
                    "available": h.available,
                    "demand_mean": h.demand_mean,
                    "demand_planned": h.demand_planned,
                    "shortfall": h.shortfall,
                })
            })
            .collect(),
    )
}

/// A claimed metric.
struct Claimed {
    id: String,
    fleet_id: String,
    zone_id: Option<String>,
    /// `as_of`, or when the metric was created.
    as_of_ms: i64,
    horizon_hours: i32,
    demand_quantile: f64,
    history_days: i32,
    created_ms: i64,
}

/// Claims the oldest queued capacity metric and marks it running.
async fn claim(pool: &PgPool) -> Result<Option<Claimed>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT id, fleet_id, zone_id, horizon_hours, demand_quantile, history_days,
                (extract(epoch FROM coalesce(as_of, created_at)) * 1000)::bigint AS as_of_ms,
                (extract(epoch FROM created_at) * 1000)::bigint AS created_ms
         FROM analytics_capacity_metrics WHERE status = 'queued'
         ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let metric = Claimed {
        id: row.try_get("id")?,
        fleet_id: row.try_get("fleet_id")?,
        zone_id: row.try_get("zone_id")?,
        as_of_ms: row.try_get("as_of_ms")?,
        horizon_hours: row.try_get("horizon_hours")?,
        demand_quantile: row.try_get("demand_quantile")?,
        history_days: row.try_get("history_days")?,
        created_ms: row.try_get("created_ms")?,
    };
    sqlx::query(
        "UPDATE analytics_capacity_metrics SET status = 'running', started_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(&metric.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(metric))
}

/// The metric's zone-hours, or why it cannot be computed.
async fn compute(
    pool: &PgPool,
    redis: &RedisSink,
    bucket_ms: i64,
    metric: &Claimed,
) -> std::result::Result<Vec<ZoneHour>, String> {
    let fleet = &metric.fleet_id;
    let mut zones: Vec<ZoneView> = super::zones(pool, fleet)
        .await
        .map_err(|e| format!("reading the zones: {e}"))?;
    if zones.is_empty() {
        return Err(format!(
            "fleet {fleet} has no zones (POST /api/v1/fleet-optimization/zones)"
        ));
    }
    if let Some(only) = &metric.zone_id {
        zones.retain(|z| &z.id == only);
        if zones.is_empty() {
            return Err(format!("zone {only} is not a zone of fleet {fleet}"));
        }
    }
    let window = Window::new(
        metric.as_of_ms,
        bucket_ms,
        usize::try_from(metric.horizon_hours).unwrap_or(0),
    )?;
    let days = u32::try_from(metric.history_days).unwrap_or(0);
    let (from_ms, history) =
        super::demand_history(pool, fleet, &zones, (metric.as_of_ms, days, bucket_ms)).await??;
    debug_assert_eq!(from_ms, window.from_ms);
    let available = super::live_per_zone(redis, fleet, VehicleStatus::is_available)
        .await
        .map_err(|e| format!("reading the available vehicles: {e}"))?;
    let (season, horizon, quantile) = (
        super::season(bucket_ms),
        window.horizon(),
        metric.demand_quantile,
    );
    // CPU-bound: off the async threads. Arrivals are not needed (none given: nothing fitted).
    let forecasts = tokio::task::spawn_blocking(move || {
        demand::forecast_zones(
            &history.requests,
            &BTreeMap::new(),
            season,
            horizon,
            quantile,
        )
    })
    .await
    .map_err(|e| format!("forecast task: {e}"))?;
    Ok(zone_hours(&forecasts, &available, &window))
}

/// The `capacity_forecast` rows of a computed metric.
fn forecast_rows(metric: &Claimed, hours: &[ZoneHour]) -> Vec<CapacityForecastRow> {
    hours
        .iter()
        .map(|h| CapacityForecastRow {
            fleet_id: metric.fleet_id.clone(),
            metric_id: metric.id.clone(),
            zone_id: h.zone_id.clone(),
            hour_start: datetime_secs(h.hour_start_ms),
            hour_ms: h.hour_start_ms,
            available: h.available,
            demand_mean: h.demand_mean,
            demand_planned: h.demand_planned,
            shortfall: h.shortfall,
            created_at_ms: metric.created_ms,
        })
        .collect()
}

/// Computes one claimed metric and stores its outcome; `Err` only for store failures (the
/// metric's own failure is written; one ClickHouse could not take is queued again).
async fn execute(
    pool: &PgPool,
    redis: &RedisSink,
    clickhouse: &ClickHouseSink,
    bucket_ms: i64,
    metric: Claimed,
) -> Result<bool> {
    let started = Instant::now();
    let outcome = compute(pool, redis, bucket_ms, &metric).await;
    if let Ok(hours) = &outcome {
        if let Err(e) = clickhouse
            .write_capacity_forecast(&forecast_rows(&metric, hours))
            .await
        {
            sqlx::query(
                "UPDATE analytics_capacity_metrics SET status = 'queued', started_at = NULL, updated_at = now()
                 WHERE id = $1 AND status = 'running'",
            )
            .bind(&metric.id)
            .execute(pool)
            .await?;
            return Err(e.into());
        }
    }
    let ok = match &outcome {
        Ok(hours) => {
            let s = summarize(hours);
            sqlx::query(
                "UPDATE analytics_capacity_metrics SET status = 'completed', hours = $2,
                     available_vehicles = $3, peak_demand = $4, max_shortfall = $5,
                     shortfall_hours = $6, error = NULL, finished_at = now(), updated_at = now()
                 WHERE id = $1 AND status = 'running'",
            )
            .bind(&metric.id)
            .bind(hours_json(hours))
            .bind(i32::try_from(s.available_vehicles).unwrap_or(i32::MAX))
            .bind(s.peak_demand)
            .bind(s.max_shortfall)
            .bind(i32::try_from(s.shortfall_hours).unwrap_or(i32::MAX))
            .execute(pool)
            .await?;
            true
        }
        Err(reason) => {
            sqlx::query(
                "UPDATE analytics_capacity_metrics SET status = 'failed', error = $2, finished_at = now(), updated_at = now()
                 WHERE id = $1 AND status = 'running'",
            )
            .bind(&metric.id)
            .bind(reason)
            .execute(pool)
            .await?;
            false
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let label = if ok { "completed" } else { "failed" };
    metrics::counter!(m::CAPACITY_METRICS, "outcome" => label).increment(1);
    metrics::histogram!(m::CAPACITY_SECONDS).record(elapsed);
    match &outcome {
        Ok(hours) => info!(metric = %metric.id, fleet = %metric.fleet_id,
            elapsed_ms = (elapsed * 1000.0) as u64, zone_hours = hours.len(), "Capacity metric completed."),
        Err(reason) => {
            warn!(metric = %metric.id, fleet = %metric.fleet_id, reason = %reason, "Capacity metric failed.")
        }
    }
    Ok(ok)
}

/// One look of the executor loop: claims and computes the oldest queued metric. Returns when to
/// look again: at once after a metric, `interval` when there was none or a store failed.
pub(super) async fn step(
    pool: &PgPool,
    redis: &RedisSink,
    clickhouse: &ClickHouseSink,
    bucket_ms: i64,
    interval: Duration,
) -> Duration {
    match claim(pool).await {
        Ok(Some(metric)) => match execute(pool, redis, clickhouse, bucket_ms, metric).await {
            Ok(_) => Duration::ZERO,
            Err(e) => {
                warn!(error = %e, "Storing a capacity metric failed; it is computed again later.");
                interval.max(Duration::from_secs(1))
            }
        },
        Ok(None) => interval,
        Err(e) => {
            warn!(error = %e, "Looking for queued capacity metrics failed; retrying.");
            interval.max(Duration::from_secs(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlasmesh_optimizer::forecast::{CountForecast, CountMethod, CountStep};

    const BUCKET: i64 = 900_000;
    /// A UTC day boundary.
    const D0: i64 = 1_761_955_200_000;

    fn step(mean: f64, planned: u32) -> CountStep {
        CountStep {
            mean,
            upper80: mean,
            upper95: mean,
            planned,
        }
    }

    fn forecasts(zones: &[(&str, Vec<CountStep>)]) -> Forecasts {
        zones
            .iter()
            .map(|(z, steps)| {
                let f = CountForecast {
                    method: CountMethod::SeasonalNaive,
                    steps: steps.clone(),
                    params: None,
                };
                (z.to_string(), (f.clone(), f))
            })
            .collect()
    }

    #[test]
    fn the_window_starts_at_the_first_full_hour() {
        let on_the_hour = Window::new(D0 + 7 * HOUR_MS, BUCKET, 3).unwrap();
        assert_eq!(
            (on_the_hour.from_ms, on_the_hour.skip, on_the_hour.per_hour),
            (D0 + 7 * HOUR_MS, 0, 4)
        );
        assert_eq!(on_the_hour.horizon(), 12);
        assert_eq!(on_the_hour.hour_start_ms(2), D0 + 9 * HOUR_MS);
        // 07:52 is in the 07:45 bucket: that one is forecast and skipped, hour 0 is 08:00.
        let mid = Window::new(D0 + 7 * HOUR_MS + 52 * 60_000, BUCKET, 2).unwrap();
        assert_eq!((mid.from_ms, mid.skip), (D0 + 7 * HOUR_MS + 45 * 60_000, 1));
        assert_eq!(mid.horizon(), 9);
        assert_eq!(mid.hour_start_ms(0), D0 + 8 * HOUR_MS);
        // 07:05 is in the 07:00 bucket: hour 0 is 07:00, as a run plans from that bucket.
        let early = Window::new(D0 + 7 * HOUR_MS + 5 * 60_000, BUCKET, 1).unwrap();
        assert_eq!((early.skip, early.hour_start_ms(0)), (0, D0 + 7 * HOUR_MS));
        assert!(Window::new(D0, 7 * 60_000, 1)
            .unwrap_err()
            .contains("divide an hour"));
        assert!(Window::new(D0, BUCKET, 0).is_err());
    }

    #[test]
    fn zone_hours_sum_the_buckets_against_the_available_vehicles() {
        // Skip one bucket, then two hours of four buckets.
        let w = Window::new(D0 + 7 * HOUR_MS + 50 * 60_000, BUCKET, 2).unwrap();
        assert_eq!(w.skip, 1);
        let north: Vec<CountStep> = (0..9).map(|i| step(1.5, 2 + i % 2)).collect();
        let south: Vec<CountStep> = (0..9).map(|i| step(0.25 * i as f64, i)).collect();
        let f = forecasts(&[("north", north), ("south", south)]);
        let available = BTreeMap::from([("north".to_string(), 9), ("east".to_string(), 4)]);
        let got = zone_hours(&f, &available, &w);
        let hour = |h: i64| D0 + (8 + h) * HOUR_MS;
        // north: planned 3, 2, 3, 2 (steps 1–4) and 3, 2, 3, 2 (steps 5–8).
        // south: steps 1–4 mean 0.25+0.5+0.75+1 = 2.5, planned 1+2+3+4 = 10; steps 5–8 mean
        // 1.25+1.5+1.75+2 = 6.5, planned 5+6+7+8 = 26; nobody available there.
        let want = [
            ("north", hour(0), 9, 6.0, 10.0, 1.0),
            ("north", hour(1), 9, 6.0, 10.0, 1.0),
            ("south", hour(0), 0, 2.5, 10.0, 10.0),
            ("south", hour(1), 0, 6.5, 26.0, 26.0),
        ];
        assert_eq!(got.len(), want.len());
        for (g, (z, t, a, mean, planned, short)) in got.iter().zip(want) {
            assert_eq!(
                (g.zone_id.as_str(), g.hour_start_ms, g.available),
                (z, t, a)
            );
            assert!((g.demand_mean - mean).abs() < 1e-12, "{g:?}");
            assert_eq!((g.demand_planned, g.shortfall), (planned, short), "{g:?}");
        }
        let s = summarize(&got);
        assert_eq!(
            s,
            Summary {
                available_vehicles: 9,
                peak_demand: 26.0,
                max_shortfall: 26.0,
                shortfall_hours: 4,
            }
        );
        // Enough vehicles: no shortfall.
        let plenty = BTreeMap::from([("north".to_string(), 10), ("south".to_string(), 30)]);
        let s = summarize(&zone_hours(&f, &plenty, &w));
        assert_eq!(
            (s.available_vehicles, s.max_shortfall, s.shortfall_hours),
            (40, 0.0, 0)
        );
        let j = hours_json(&got);
        assert_eq!(j[0]["hour_start"], "2025-11-01T08:00:00.000Z");
        assert_eq!(j[3]["demand_planned"], 26.0);
        assert_eq!(j.as_array().unwrap().len(), 4);
    }

    /// Through the runs' forecaster: one day of history is forecast seasonal naive (the same
    /// bucket a day earlier, Poisson spread), so each hour ahead is the same hour yesterday:
    /// mean = its requests, planned = Σ ⌈c + z·√c⌉ over its buckets.
    #[test]
    fn a_day_of_history_gives_yesterdays_hours() {
        let season = 96;
        // Requests per bucket of the day: nine from 07:00 to 09:00, one otherwise.
        let per_bucket = |b: usize| if (28..36).contains(&b) { 9.0 } else { 1.0 };
        // The history is the day before 06:00 of the second day: its first bucket is 06:00.
        let as_of = D0 + 86_400_000 + 6 * HOUR_MS;
        let history: Vec<f64> = (0..season).map(|i| per_bucket((24 + i) % season)).collect();
        let requests = BTreeMap::from([("centre".to_string(), history)]);
        let w = Window::new(as_of, BUCKET, 4).unwrap();
        let f = demand::forecast_zones(&requests, &BTreeMap::new(), season, w.horizon(), 0.9);
        let got = zone_hours(&f, &BTreeMap::from([("centre".to_string(), 12)]), &w);
        // z(0.9) = 1.2816: one request plans ⌈2.28⌉ = 3, nine plan ⌈9 + 3.84⌉ = 13.
        let expected = [(4.0, 12.0), (36.0, 52.0), (36.0, 52.0), (4.0, 12.0)];
        for (h, (g, (mean, planned))) in got.iter().zip(expected).enumerate() {
            assert_eq!(g.hour_start_ms, as_of + h as i64 * HOUR_MS);
            assert!((g.demand_mean - mean).abs() < 1e-9, "{g:?}");
            assert_eq!(g.demand_planned, planned, "{g:?}");
            assert_eq!(g.shortfall, (planned - 12.0).max(0.0));
        }
    }
}
