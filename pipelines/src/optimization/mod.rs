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
//! (`requeue_continuous`). Runs without `parameters.rebalance` stay records their clients manage
//! by hand, as in the seed API.
//!
//! A run is claimed with `FOR UPDATE SKIP LOCKED`, so several workers execute runs side by
//! side without doing one twice; rows get ids derived from the run, so writing them again
//! (after a crash between solve and commit) changes nothing.

pub mod model;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlasmesh_core::domain::optimization::ZoneView;
use atlasmesh_core::metric_names as m;
use atlasmesh_core::telemetry::VehicleStatus;
use atlasmesh_sinks::clickhouse::ClickHouseSink;
use atlasmesh_sinks::redis::RedisSink;
use atlasmesh_sinks::store::{derived_id, set_optimization_metric};
use serde_json::Value;
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
}

/// Claims the oldest queued engine run and marks it running.
async fn claim(pool: &PgPool) -> Result<Option<Claimed>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT id, fleet_id, cost_weight, efficiency_weight, coverage_weight, parameters
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

/// Idle vehicles per zone id from the hot state.
async fn live_idle(redis: &RedisSink, fleet: &str) -> Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for e in redis.fleet_latest(fleet).await? {
        if e.status == VehicleStatus::Idle {
            if let Some(z) = e.zone_id {
                *out.entry(z).or_insert(0) += 1;
            }
        }
    }
    Ok(out)
}

/// Executes one claimed run; `Err` only for store failures (the run's own failure is written).
async fn execute(pool: &PgPool, redis: &RedisSink, run: Claimed) -> Result<bool> {
    let started = Instant::now();
    let outcome: std::result::Result<model::RunOutput, String> = async {
        let params = match RebalanceParams::of_run(run.parameters.as_ref()) {
            Some(p) => p?,
            None => return Err("parameters.rebalance is missing".to_string()),
        };
        let zones = zones(pool, &run.fleet_id)
            .await
            .map_err(|e| e.to_string())?;
        let idle = if params.idle.is_some() {
            BTreeMap::new()
        } else {
            live_idle(redis, &run.fleet_id)
                .await
                .map_err(|e| format!("reading the idle vehicles: {e}"))?
        };
        let weights = run.weights;
        // CPU-bound: off the async threads.
        tokio::task::spawn_blocking(move || {
            let inst = model::instance(&params, &zones, &idle)?;
            let (front, recs) = model::solve(&inst, &params, weights)?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            Ok(model::output(&inst, &front, &recs, weights, ms))
        })
        .await
        .map_err(|e| format!("solver task: {e}"))?
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
                r.coverage_weight, r.parameters, 'queued'
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
}

/// Executes queued engine runs and follows approved plans, looking every `interval`, until
/// `shutdown` turns true. A store that is down is retried at the next look; the claimed run
/// stays `running` if the worker dies mid-solve (set it back to `queued` to run it again).
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
        let next = match claim(&pool).await {
            Ok(Some(run)) => match execute(&pool, &redis, run).await {
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    warn!(error = %e, "Storing an optimization run failed; it stays running.");
                    interval
                }
            },
            Ok(None) => interval,
            Err(e) => {
                warn!(error = %e, "Looking for queued optimization runs failed; retrying.");
                interval.max(Duration::from_secs(1))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = crate::runner::requested(&mut shutdown) => return,
        }
    }
}
