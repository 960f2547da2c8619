//! The optimization run executor: runs created through the API (`POST
//! /api/v1/fleet-optimization/runs`, a command) whose `parameters.rebalance` asks for the
//! engine are picked up here, solved by `atlasmesh_optimizer` on the fleet's zones and its live
//! idle vehicles (the Redis hot state: the newest sample of each vehicle, status `idle`, by
//! `zone_id`), and their outcome stored: status queued → running → completed | failed (with
//! `started_at`, `finished_at`, `error`), one result per point of the Pareto front (the chosen
//! one with the payoff table and the per-zone shadow prices), the chosen plan's moves as
//! recommendations, and the run's metrics (execution time, coverage gain and cost reduction
//! against doing nothing), plus the fleet's (success rate, execution time p50/p99). The plans
//! of accepted recommendations are followed until the vehicles moved (`track_plans`), and a
//! run marked `continuous` is followed by a successor on the then live state
//! (`requeue_continuous`). A run that gives no demand plans for the demand forecast from the
//! fleet's zone demand history ([`demand`]; the forecast is stored with the chosen result and
//! in ClickHouse `zone_demand_forecast`). Runs without `parameters.rebalance` stay records their clients manage
//! by hand, as in the seed API.
//!
//! Capacity metrics (`analytics_capacity_metrics`, `POST /api/v1/fleet-analytics/capacity-metrics`)
//! are executed in the same loop ([`capacity`]): the same zones, history and forecast, summed
//! per zone and hour against the vehicles available now.
//!
//! A run is claimed with `FOR UPDATE SKIP LOCKED`, so several workers execute runs side by
//! side without doing one twice; rows get ids derived from the run, so writing them again
//! (after a crash between solve and commit) changes nothing.

pub mod capacity;
pub mod demand;
pub mod model;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlasmesh_core::domain::optimization::ZoneView;
use atlasmesh_core::domain::validate::format_time;
use atlasmesh_core::metric_names as m;
use atlasmesh_core::telemetry::VehicleStatus;
use atlasmesh_sinks::clickhouse::{datetime_secs, ClickHouseSink, PlanMoveRow, ZoneForecastRow};
use atlasmesh_sinks::redis::RedisSink;
use atlasmesh_sinks::store::{derived_id, set_optimization_metric};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{Error, Result};
use model::RebalanceParams;

/// A claimed run.
struct Claimed {
    id: String,
    fleet_id: String,
    weights: [f64; 3],
    parameters: Option<Value>,
    created_ms: i64,
}

/// Claims the oldest queued engine run and marks it running.
async fn claim(pool: &PgPool) -> Result<Option<Claimed>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT id, fleet_id, cost_weight, efficiency_weight, coverage_weight, parameters,
                (extract(epoch FROM created_at) * 1000)::bigint AS created_ms
         FROM optimization_runs WHERE status = 'queued' AND parameters ? 'rebalance'
         ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let run = Claimed {
        id: row.try_get("id")?,
        fleet_id: row.try_get("fleet_id")?,
        weights: [
            row.try_get("cost_weight")?,
            row.try_get("efficiency_weight")?,
            row.try_get("coverage_weight")?,
        ],
        parameters: row.try_get("parameters")?,
        created_ms: row.try_get("created_ms")?,
    };
    sqlx::query(
        "UPDATE optimization_runs SET status = 'running', started_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(&run.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(run))
}

/// The fleet's zones.
async fn zones(pool: &PgPool, fleet: &str) -> Result<Vec<ZoneView>> {
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(z) FROM optimization_zones z WHERE fleet_id = $1 ORDER BY id",
    )
    .bind(fleet)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| Error::Internal(format!("zone row: {e}"))))
        .collect()
}

/// Vehicles per zone id from the hot state (each vehicle's newest sample, by its `zone_id`)
/// whose status passes `keep`: idle ones for a run, available ones for a capacity metric.
async fn live_per_zone(
    redis: &RedisSink,
    fleet: &str,
    keep: fn(VehicleStatus) -> bool,
) -> Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for e in redis.fleet_latest(fleet).await? {
        if keep(e.status) {
            if let Some(z) = e.zone_id {
                *out.entry(z).or_insert(0) += 1;
            }
        }
    }
    Ok(out)
}

/// Requests (by request time and origin zone) and arrivals (completed missions by the zone
/// they ended in) per zone and bucket in `[from, to)`, each zone's series from the fleet's
/// first bucket with any of them (`None` when there is none).
async fn zone_history(
    pool: &PgPool,
    fleet: &str,
    zones: &[ZoneView],
    (from, to, bucket): (i64, i64, i64),
) -> Result<Option<ZoneSeries>> {
    // PostgreSQL, not ClickHouse `zone_demand`: the same counts, but committed with the
    // pipeline's offsets, so a run sees exactly the events recorded before it.
    let rows = sqlx::query(
        "SELECT true AS request, zone_id, (requested_ms - $2) / $4 AS b, count(*) AS n
         FROM mission_runs
         WHERE fleet_id = $1 AND zone_id IS NOT NULL AND requested_ms >= $2 AND requested_ms < $3
         GROUP BY 2, 3
         UNION ALL
         SELECT false, zone_id, (ts_ms - $2) / $4, count(*) FROM mission_event_log
         WHERE fleet_id = $1 AND kind = 'completed' AND zone_id IS NOT NULL AND ts_ms >= $2 AND ts_ms < $3
         GROUP BY 2, 3",
    )
    .bind(fleet)
    .bind(from)
    .bind(to)
    .bind(bucket)
    .fetch_all(pool)
    .await?;
    let (mut req, mut arr) = (Vec::new(), Vec::new());
    for r in &rows {
        let cell = (
            r.try_get::<String, _>("zone_id")?,
            usize::try_from(r.try_get::<i64, _>("b")?).unwrap_or(0),
            r.try_get::<i64, _>("n")? as f64,
        );
        if r.try_get::<bool, _>("request")? {
            req.push(cell);
        } else {
            arr.push(cell);
        }
    }
    let Some(first) = req.iter().chain(&arr).map(|c| c.1).min() else {
        return Ok(None);
    };
    let len = usize::try_from((to - from) / bucket).unwrap_or(0) - first;
    let fill = |cells: &[(String, usize, f64)]| -> BTreeMap<String, Vec<f64>> {
        let mut out: BTreeMap<String, Vec<f64>> = zones
            .iter()
            .map(|z| (z.id.clone(), vec![0.0; len]))
            .collect();
        for (zone, b, n) in cells {
            if let Some(s) = out.get_mut(zone) {
                s[b - first] += n;
            }
        }
        out
    };
    Ok(Some(ZoneSeries {
        requests: fill(&req),
        arrivals: fill(&arr),
        start_ms: from + first as i64 * bucket,
    }))
}

/// Buckets in a day: the season of the zone demand forecasts.
fn season(bucket_ms: i64) -> usize {
    usize::try_from(86_400_000 / bucket_ms.max(1)).unwrap_or(1)
}

/// The zone demand history a forecast from `as_of` reads: the bucket containing `as_of` (the
/// first one forecast) and the `history_days` before it. `Err`: the history could not be read
/// (the failure text); `Ok(Err)`: there is none (why, for the caller's failure text).
async fn demand_history(
    pool: &PgPool,
    fleet: &str,
    zones: &[ZoneView],
    (as_of, history_days, bucket_ms): (i64, u32, i64),
) -> std::result::Result<std::result::Result<(i64, ZoneSeries), String>, String> {
    let now_bucket = as_of.div_euclid(bucket_ms) * bucket_ms;
    let from = now_bucket - i64::from(history_days) * 86_400_000;
    let history = zone_history(pool, fleet, zones, (from, now_bucket, bucket_ms))
        .await
        .map_err(|e| format!("reading the zone demand history: {e}"))?;
    Ok(history.map(|h| (now_bucket, h)).ok_or_else(|| {
        format!(
            "no zone demand in the {history_days} days before {} (mission requests with a zone)",
            format_time(as_of)
        )
    }))
}

/// The zone demand history a forecast reads.
struct ZoneSeries {
    requests: BTreeMap<String, Vec<f64>>,
    arrivals: BTreeMap<String, Vec<f64>>,
    start_ms: i64,
}

/// What a forecasting run planned for.
struct Planned {
    /// Start of the first bucket planned (the bucket containing `as_of`).
    from_ms: i64,
    history_start_ms: i64,
    history_buckets: usize,
    forecasts: demand::Forecasts,
}

/// Fills the run's demand (and arrivals, unless given) from the forecast of the fleet's zone
/// demand history.
async fn plan_demand(
    pool: &PgPool,
    run: &Claimed,
    zones: &[ZoneView],
    params: &mut RebalanceParams,
    bucket_ms: i64,
) -> std::result::Result<Planned, String> {
    if i64::from(params.period_minutes) * 60_000 != bucket_ms {
        return Err(format!(
            "forecasting from zone demand needs period_minutes = {} (missions.zone_bucket_ms), not {}",
            bucket_ms / 60_000,
            params.period_minutes
        ));
    }
    let as_of = params.as_of_ms.unwrap_or(run.created_ms);
    let (now_bucket, history) = demand_history(
        pool,
        &run.fleet_id,
        zones,
        (as_of, params.history_days, bucket_ms),
    )
    .await?
    .map_err(|none| format!("{none}: give parameters.rebalance.demand"))?;
    let forecasts = demand::forecast_zones(
        &history.requests,
        &history.arrivals,
        season(bucket_ms),
        params.horizon_periods,
        params.demand_quantile,
    );
    params.demand = forecasts
        .iter()
        .map(|(z, (r, _))| (z.clone(), r.steps.iter().map(|s| s.planned).collect()))
        .collect();
    if params.arrivals.is_empty() {
        params.arrivals = forecasts
            .iter()
            .map(|(z, (_, a))| (z.clone(), a.steps.iter().map(|s| s.planned).collect()))
            .collect();
    }
    Ok(Planned {
        from_ms: now_bucket,
        history_start_ms: history.start_ms,
        history_buckets: history.requests.values().next().map_or(0, Vec::len),
        forecasts,
    })
}

/// Executes one claimed run; `Err` only for store failures (the run's own failure is written).
async fn execute(
    pool: &PgPool,
    redis: &RedisSink,
    clickhouse: &ClickHouseSink,
    bucket_ms: i64,
    run: Claimed,
) -> Result<bool> {
    let started = Instant::now();
    let mut planned: Option<Planned> = None;
    // Start of period 0 of the plan and the period length, ms.
    let mut clock = (run.created_ms, 900_000i64);
    let outcome: std::result::Result<model::RunOutput, String> = async {
        let mut params = match RebalanceParams::of_run(run.parameters.as_ref()) {
            Some(p) => p?,
            None => return Err("parameters.rebalance is missing".to_string()),
        };
        let zones = zones(pool, &run.fleet_id)
            .await
            .map_err(|e| e.to_string())?;
        if params.forecasts() {
            planned = Some(plan_demand(pool, &run, &zones, &mut params, bucket_ms).await?);
        }
        let quantile = params.demand_quantile;
        let period_ms = i64::from(params.period_minutes) * 60_000;
        clock = (
            planned.as_ref().map_or(
                run.created_ms.div_euclid(period_ms.max(1)) * period_ms,
                |p| p.from_ms,
            ),
            period_ms,
        );
        let idle = if params.idle.is_some() {
            BTreeMap::new()
        } else {
            live_per_zone(redis, &run.fleet_id, |s| s == VehicleStatus::Idle)
                .await
                .map_err(|e| format!("reading the idle vehicles: {e}"))?
        };
        let weights = run.weights;
        // CPU-bound: off the async threads.
        let mut out = tokio::task::spawn_blocking(move || {
            let inst = model::instance(&params, &zones, &idle)?;
            let (front, recs) = model::solve(&inst, &params, weights)?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            Ok::<_, String>(model::output(&inst, &front, &recs, weights, ms))
        })
        .await
        .map_err(|e| format!("solver task: {e}"))??;
        // What the chosen plan planned for, with it.
        let demand = match &planned {
            Some(p) => json!({
                "source": "forecast",
                "quantile": quantile,
                "from_ms": p.from_ms,
                "history_start_ms": p.history_start_ms,
                "history_buckets": p.history_buckets,
                "zones": p.forecasts.iter().map(|(z, (r, a))| (z.clone(), json!({
                    "method": r.method.as_str(),
                    "requests": r.steps,
                    "arrivals": a.steps.iter().map(|s| s.planned).collect::<Vec<_>>(),
                }))).collect::<serde_json::Map<_, _>>(),
            }),
            None => json!({"source": "parameters"}),
        };
        for r in &mut out.results {
            if r.4["chosen"] == true {
                r.4["demand"] = demand.clone();
            }
        }
        Ok(out)
    }
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut tx = pool.begin().await?;
    let ok = match &outcome {
        Ok(out) => {
            for (i, (cost, eff, cov, score, details)) in out.results.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO optimization_results (id, fleet_id, run_id, cost, efficiency, coverage, details, score)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                )
                .bind(derived_id(&[&run.id, "result", &i.to_string()]))
                .bind(&run.fleet_id)
                .bind(&run.id)
                .bind(cost)
                .bind(eff)
                .bind(cov)
                .bind(details)
                .bind(score)
                .execute(&mut *tx)
                .await?;
            }
            for (i, (action, priority, gain, details)) in out.recommendations.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO optimization_recommendations (id, fleet_id, run_id, action, priority, expected_gain, details)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                )
                .bind(derived_id(&[&run.id, "recommendation", &i.to_string()]))
                .bind(&run.fleet_id)
                .bind(&run.id)
                .bind(action)
                .bind(priority)
                .bind(gain)
                .bind(details)
                .execute(&mut *tx)
                .await?;
            }
            for (metric, value) in &out.metrics {
                set_optimization_metric(&mut tx, &run.fleet_id, Some(&run.id), metric, *value)
                    .await?;
            }
            sqlx::query(
                "UPDATE optimization_runs SET status = 'completed', finished_at = now(), updated_at = now()
                 WHERE id = $1",
            )
            .bind(&run.id)
            .execute(&mut *tx)
            .await?;
            true
        }
        Err(reason) => {
            sqlx::query(
                "UPDATE optimization_runs SET status = 'failed', error = $2, finished_at = now(), updated_at = now()
                 WHERE id = $1",
            )
            .bind(&run.id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            false
        }
    };
    fleet_metrics(&mut tx, &run.fleet_id).await?;
    tx.commit().await?;
    // The dashboard's copies (the run's own record is committed): a failure leaves a gap in
    // the plots, not in the plan.
    if let (true, Some(p)) = (ok, &planned) {
        let rows = forecast_rows(&run, p, bucket_ms);
        if let Err(e) = clickhouse.write_zone_forecasts(&rows).await {
            warn!(run = %run.id, error = %e, "Writing the run's demand forecast to ClickHouse failed.");
        }
    }
    if let Ok(out) = &outcome {
        let rows = plan_move_rows(&run, out, clock);
        if let Err(e) = clickhouse.write_plan_moves(&rows).await {
            warn!(run = %run.id, error = %e, "Writing the run's plan moves to ClickHouse failed.");
        }
    }
    let label = if ok { "completed" } else { "failed" };
    metrics::counter!(m::OPTIMIZATION_RUNS, "outcome" => label).increment(1);
    metrics::histogram!(m::OPTIMIZATION_SECONDS).record(elapsed);
    match &outcome {
        Ok(out) => {
            info!(run = %run.id, fleet = %run.fleet_id, elapsed_ms = (elapsed * 1000.0) as u64,
            results = out.results.len(), recommendations = out.recommendations.len(), "Optimization run completed.")
        }
        Err(reason) => {
            warn!(run = %run.id, fleet = %run.fleet_id, reason = %reason, "Optimization run failed.")
        }
    }
    Ok(ok)
}

/// The `optimization_plan_moves` rows of a run's chosen plan; `(start, period)` of its periods.
fn plan_move_rows(
    run: &Claimed,
    out: &model::RunOutput,
    (start, period): (i64, i64),
) -> Vec<PlanMoveRow> {
    let created = atlasmesh_core::clock::now_ms();
    let Some(chosen) = out.results.iter().find(|r| r.4["chosen"] == true) else {
        return Vec::new();
    };
    let empty = Vec::new();
    chosen.4["moves"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|m| {
            let depart = start + m["depart_period"].as_i64().unwrap_or(0) * period;
            PlanMoveRow {
                fleet_id: run.fleet_id.clone(),
                run_id: run.id.clone(),
                from_zone: m["from_zone"].as_str().unwrap_or_default().to_string(),
                to_zone: m["to_zone"].as_str().unwrap_or_default().to_string(),
                depart_at: datetime_secs(depart),
                depart_ms: depart,
                vehicles: u32::try_from(m["vehicles"].as_u64().unwrap_or(0)).unwrap_or(u32::MAX),
                created_at_ms: created,
            }
        })
        .collect()
}

/// Publishes the recommendation adoption of the last day over all fleets (per fleet it is the
/// `adoption_rate` / `moved_rate` run metrics): the engine's recommendations accepted ÷
/// issued, and vehicles moved ÷ vehicles in the accepted plans.
async fn adoption_gauges(pool: &PgPool) -> Result<()> {
    let (accepted, moved): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT
             (SELECT count(*) FILTER (WHERE r.status = 'accepted')::float8 / nullif(count(*), 0)
              FROM optimization_recommendations r
              JOIN optimization_runs u ON u.id = r.run_id AND u.parameters ? 'rebalance'
              WHERE r.created_at > now() - interval '1 day'),
             (SELECT sum(b.moved_vehicles)::float8 / nullif(sum(b.vehicle_count), 0)
              FROM optimization_rebalancing b
              WHERE b.run_id IS NOT NULL AND b.approved_at > now() - interval '1 day')",
    )
    .fetch_one(pool)
    .await?;
    if let Some(a) = accepted {
        metrics::gauge!(m::OPTIMIZATION_ADOPTION_RATIO, "stage" => "accepted").set(a);
    }
    if let Some(v) = moved {
        metrics::gauge!(m::OPTIMIZATION_ADOPTION_RATIO, "stage" => "moved").set(v);
    }
    Ok(())
}

/// The `zone_demand_forecast` rows of a forecasting run.
fn forecast_rows(run: &Claimed, p: &Planned, bucket_ms: i64) -> Vec<ZoneForecastRow> {
    let created = atlasmesh_core::clock::now_ms();
    p.forecasts
        .iter()
        .flat_map(|(zone, (r, _))| {
            r.steps.iter().enumerate().map(move |(h, s)| {
                let start = p.from_ms + h as i64 * bucket_ms;
                ZoneForecastRow {
                    fleet_id: run.fleet_id.clone(),
                    run_id: run.id.clone(),
                    zone_id: zone.clone(),
                    bucket_start: datetime_secs(start),
                    bucket_start_ms: start,
                    method: r.method.as_str().to_string(),
                    mean: s.mean,
                    upper80: s.upper80,
                    upper95: s.upper95,
                    planned: s.planned,
                    created_at_ms: created,
                }
            })
        })
        .collect()
}

/// The fleet's engine-run metrics (no `run_id`), recomputed after each run: `success_rate`
/// (completed ÷ finished engine runs) and `execution_time_ms_p50` / `_p99` over the completed
/// ones (nearest rank).
async fn fleet_metrics(tx: &mut sqlx::PgConnection, fleet: &str) -> Result<()> {
    let (completed, failed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
         FROM optimization_runs WHERE fleet_id = $1 AND parameters ? 'rebalance'",
    )
    .bind(fleet)
    .fetch_one(&mut *tx)
    .await?;
    let mut times: Vec<f64> = sqlx::query_scalar(
        "SELECT m.value FROM optimization_metrics m JOIN optimization_runs r ON r.id = m.run_id
         WHERE m.fleet_id = $1 AND m.metric = 'execution_time_ms' AND r.status = 'completed'",
    )
    .bind(fleet)
    .fetch_all(&mut *tx)
    .await?;
    times.sort_by(f64::total_cmp);
    let rank = |q: f64| -> Option<f64> {
        let n = times.len();
        (n > 0).then(|| times[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
    };
    let mut rows = Vec::new();
    if completed + failed > 0 {
        rows.push((
            "success_rate",
            completed as f64 / (completed + failed) as f64,
        ));
    }
    if let (Some(p50), Some(p99)) = (rank(0.5), rank(0.99)) {
        rows.push(("execution_time_ms_p50", p50));
        rows.push(("execution_time_ms_p99", p99));
    }
    for (metric, value) in rows {
        set_optimization_metric(&mut *tx, fleet, None, metric, value).await?;
    }
    Ok(())
}

/// Follows the approved plans of accepted recommendations (the last day's): the vehicles that
/// went from origin to destination since approval (raw samples in ClickHouse), `executed` once
/// they reach the planned count; then each touched run's `moved_rate` (vehicles moved ÷
/// vehicles in its accepted plans).
async fn track_plans(pool: &PgPool, clickhouse: &ClickHouseSink) -> Result<usize> {
    let plans = sqlx::query(
        "SELECT id, fleet_id, run_id, from_zone, to_zone, vehicle_count, moved_vehicles,
                (extract(epoch FROM approved_at) * 1000)::bigint AS approved_ms
         FROM optimization_rebalancing
         WHERE status = 'approved' AND approved_at > now() - interval '1 day'
         ORDER BY approved_at, id LIMIT 200",
    )
    .fetch_all(pool)
    .await?;
    let mut changed = 0;
    for p in plans {
        let (id, fleet): (String, String) = (p.try_get("id")?, p.try_get("fleet_id")?);
        let run_id: Option<String> = p.try_get("run_id")?;
        let planned: i64 = p.try_get("vehicle_count")?;
        let before: i64 = p.try_get("moved_vehicles")?;
        let moved = clickhouse
            .moved_vehicles(
                &fleet,
                &p.try_get::<String, _>("from_zone")?,
                &p.try_get::<String, _>("to_zone")?,
                p.try_get("approved_ms")?,
            )
            .await?;
        let moved = (moved as i64).min(planned);
        if moved == before {
            continue;
        }
        changed += 1;
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE optimization_rebalancing SET moved_vehicles = $2,
                 status = CASE WHEN $2 >= vehicle_count THEN 'executed' ELSE status END,
                 executed_at = CASE WHEN $2 >= vehicle_count THEN now() ELSE executed_at END,
                 updated_at = now()
             WHERE id = $1 AND status = 'approved'",
        )
        .bind(&id)
        .bind(moved)
        .execute(&mut *tx)
        .await?;
        if let Some(run) = run_id {
            let rate: f64 = sqlx::query_scalar(
                "SELECT sum(moved_vehicles)::float8 / greatest(sum(vehicle_count), 1)
                 FROM optimization_rebalancing WHERE run_id = $1 AND approved_at IS NOT NULL",
            )
            .bind(&run)
            .fetch_one(&mut *tx)
            .await?;
            set_optimization_metric(&mut tx, &fleet, Some(&run), "moved_rate", rate).await?;
        }
        tx.commit().await?;
        info!(plan = %id, fleet = %fleet, moved, planned, "Rebalancing plan progress.");
    }
    Ok(changed)
}

/// Queues the successor of every continuous engine run (`parameters.rebalance.continuous`)
/// that finished `every` ago and has none yet: same fleet, weights and parameters, so it is
/// solved on the live state then. One successor per run (its id is derived from the run's), so
/// workers side by side queue it once.
async fn requeue_continuous(pool: &PgPool, every: Duration) -> Result<u64> {
    let queued = sqlx::query(
        "INSERT INTO optimization_runs (id, fleet_id, name, cost_weight, efficiency_weight,
                                        coverage_weight, parameters, status)
         SELECT next_run_id(r.id), r.fleet_id, r.name, r.cost_weight, r.efficiency_weight,
                r.coverage_weight, r.parameters #- '{rebalance,as_of_ms}', 'queued'
         FROM optimization_runs r
         WHERE r.status IN ('completed', 'failed')
           AND (r.parameters -> 'rebalance' ->> 'continuous') = 'true'
           AND r.finished_at <= now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM optimization_runs n WHERE n.id = next_run_id(r.id))
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(every.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected();
    if queued > 0 {
        info!(
            runs = queued,
            "Continuous optimization: successor runs queued."
        );
    }
    Ok(queued)
}

/// How often the executor looks, and how long after a continuous run its successor follows.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    pub look: Duration,
    pub reoptimize: Duration,
    /// The zone demand bucket (`missions.zone_bucket_ms`): a forecasting run's period.
    pub zone_bucket_ms: i64,
}

/// Executes queued engine runs and capacity metrics ([`capacity`]) and follows approved plans,
/// looking every `interval`, until `shutdown` turns true. A store that is down is retried at
/// the next look; the claimed run stays `running` if the worker dies mid-solve (set it back to
/// `queued` to run it again).
pub async fn run(
    pool: PgPool,
    redis: RedisSink,
    clickhouse: ClickHouseSink,
    cadence: Cadence,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = cadence.look;
    loop {
        if let Err(e) = track_plans(&pool, &clickhouse).await {
            warn!(error = %e, "Following the approved rebalancing plans failed; retrying.");
        }
        if let Err(e) = requeue_continuous(&pool, cadence.reoptimize).await {
            warn!(error = %e, "Queueing continuous optimization runs failed; retrying.");
        }
        if let Err(e) = adoption_gauges(&pool).await {
            warn!(error = %e, "Reading the recommendation adoption failed; retrying.");
        }
        let next = match claim(&pool).await {
            Ok(Some(run)) => {
                match execute(&pool, &redis, &clickhouse, cadence.zone_bucket_ms, run).await {
                    Ok(_) => Duration::ZERO,
                    Err(e) => {
                        warn!(error = %e, "Storing an optimization run failed; it stays running.");
                        interval
                    }
                }
            }
            Ok(None) => interval,
            Err(e) => {
                warn!(error = %e, "Looking for queued optimization runs failed; retrying.");
                interval.max(Duration::from_secs(1))
            }
        };
        let next = next.min(
            capacity::step(&pool, &redis, &clickhouse, cadence.zone_bucket_ms, interval).await,
        );
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = crate::runner::requested(&mut shutdown) => return,
        }
    }
}
