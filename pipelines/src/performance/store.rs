//! The performance pipeline's writes: benchmarks read, history rows for ClickHouse, the
//! latest values and federation ranks in PostgreSQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use atlasmesh_core::analytics::score;
use atlasmesh_sinks::clickhouse::{
    datetime_secs, score_period_code, trend_direction_code, ScoreHistoryRow, TrendHistoryRow,
};
use sqlx::{Postgres, Row, Transaction};

use super::state::{Outputs, Period, ScoreOut, TrendOut};
use super::PerformancePipeline;
use crate::Result;

const MS_PER_DAY: i64 = 86_400_000;

/// A fleet's benchmark of the score.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ScoreBenchmark {
    id: String,
    target: f64,
}

fn nan_if_none(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

pub(super) fn score_row(o: &ScoreOut, bench: Option<&ScoreBenchmark>) -> Option<ScoreHistoryRow> {
    let total = o.score.total?;
    let c = &o.score.components;
    Some(ScoreHistoryRow {
        fleet_id: o.fleet_id.clone(),
        vehicle_id: String::new(),
        period: score_period_code(o.period.as_str()).expect("known period"),
        period_start: datetime_secs(o.start_ms),
        period_start_ms: o.start_ms,
        period_end_ms: o.end_ms,
        version: o.version,
        total,
        efficiency: nan_if_none(c.efficiency),
        utilization: nan_if_none(c.utilization),
        reliability: nan_if_none(c.reliability),
        safety: nan_if_none(c.safety),
        cost: nan_if_none(c.cost),
        benchmark_id: bench.map(|b| b.id.clone()).unwrap_or_default(),
        benchmark_pct: bench
            .and_then(|b| score::percent_of_benchmark(total, b.target))
            .unwrap_or(0.0),
        computed_at_ms: o.computed_at_ms,
    })
}

pub(super) fn trend_row(t: &TrendOut) -> TrendHistoryRow {
    let tr = &t.trend;
    let f = tr.forecast;
    TrendHistoryRow {
        fleet_id: t.fleet_id.clone(),
        metric: t.metric.clone(),
        horizon: t.horizon.clone(),
        computed_at: datetime_secs(t.computed_at_ms),
        computed_at_ms: t.computed_at_ms,
        slope: tr.fit.slope,
        direction: trend_direction_code(tr.direction.as_str()).expect("known direction"),
        change_pct: tr.change_pct,
        forecast: nan_if_none(f.map(|f| f.value)),
        lower: nan_if_none(f.map(|f| f.lower)),
        upper: nan_if_none(f.map(|f| f.upper)),
        r2: tr.fit.r2,
        n: tr.fit.n as u32,
    }
}

/// The last output per key, in key order (what the "latest" tables keep).
pub(super) fn last_by<T, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut m: BTreeMap<K, &T> = BTreeMap::new();
    for i in items {
        m.insert(key(i), i);
    }
    m.into_values().collect()
}

impl PerformancePipeline {
    pub(super) async fn benchmarks(
        &self,
        fleets: &[String],
    ) -> Result<HashMap<String, ScoreBenchmark>> {
        if fleets.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "SELECT DISTINCT ON (fleet_id) fleet_id, id, target_value FROM perf_benchmarks
             WHERE fleet_id = ANY($1) AND metric = 'score' ORDER BY fleet_id, name, id",
        )
        .bind(fleets)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.get::<String, _>("fleet_id"),
                    ScoreBenchmark {
                        id: r.get("id"),
                        target: r.get("target_value"),
                    },
                )
            })
            .collect())
    }

    pub(super) async fn write_postgres(
        &self,
        out: &Outputs,
        benches: &HashMap<String, ScoreBenchmark>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for o in last_by(&out.scores, |o| (o.fleet_id.clone(), o.period)) {
            // Hour scores are history only (ClickHouse); the latest table has window and day.
            let Some(total) = o.score.total.filter(|_| o.period != Period::Hour) else {
                continue;
            };
            let b = benches.get(&o.fleet_id);
            let c = &o.score.components;
            sqlx::query(
                "INSERT INTO perf_score_latest (fleet_id, period, period_start_ms, period_end_ms, version, total,
                    efficiency, utilization, reliability, safety, cost, benchmark_id, benchmark_target, benchmark_pct, computed_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (fleet_id, period) DO UPDATE SET
                    period_start_ms = excluded.period_start_ms, period_end_ms = excluded.period_end_ms,
                    version = excluded.version, total = excluded.total, efficiency = excluded.efficiency,
                    utilization = excluded.utilization, reliability = excluded.reliability, safety = excluded.safety,
                    cost = excluded.cost, benchmark_id = excluded.benchmark_id, benchmark_target = excluded.benchmark_target,
                    benchmark_pct = excluded.benchmark_pct, computed_at_ms = excluded.computed_at_ms, updated_at = now()
                 WHERE (perf_score_latest.period_start_ms, perf_score_latest.version) < (excluded.period_start_ms, excluded.version)",
            )
            .bind(&o.fleet_id)
            .bind(o.period.as_str())
            .bind(o.start_ms)
            .bind(o.end_ms)
            .bind(i64::from(o.version))
            .bind(total)
            .bind(c.efficiency)
            .bind(c.utilization)
            .bind(c.reliability)
            .bind(c.safety)
            .bind(c.cost)
            .bind(b.map(|b| b.id.clone()))
            .bind(b.map(|b| b.target))
            .bind(b.and_then(|b| score::percent_of_benchmark(total, b.target)))
            .bind(o.computed_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        for t in last_by(&out.trends, |t| {
            (t.fleet_id.clone(), t.metric.clone(), t.horizon.clone())
        }) {
            let tr = &t.trend;
            let f = tr.forecast;
            sqlx::query(
                "INSERT INTO perf_trend_latest (fleet_id, metric, horizon, computed_at_ms, first_at_ms, last_at_ms, n,
                    slope_per_hour, intercept, r2, p_value, significant, direction, change_pct,
                    forecast_at_ms, forecast, forecast_lower, forecast_upper, confidence)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
                 ON CONFLICT (fleet_id, metric, horizon) DO UPDATE SET
                    computed_at_ms = excluded.computed_at_ms, first_at_ms = excluded.first_at_ms,
                    last_at_ms = excluded.last_at_ms, n = excluded.n, slope_per_hour = excluded.slope_per_hour,
                    intercept = excluded.intercept, r2 = excluded.r2, p_value = excluded.p_value,
                    significant = excluded.significant, direction = excluded.direction, change_pct = excluded.change_pct,
                    forecast_at_ms = excluded.forecast_at_ms, forecast = excluded.forecast,
                    forecast_lower = excluded.forecast_lower, forecast_upper = excluded.forecast_upper,
                    confidence = excluded.confidence, updated_at = now()
                 WHERE perf_trend_latest.computed_at_ms < excluded.computed_at_ms",
            )
            .bind(&t.fleet_id)
            .bind(&t.metric)
            .bind(&t.horizon)
            .bind(t.computed_at_ms)
            .bind(t.first_at_ms)
            .bind(t.last_at_ms)
            .bind(tr.fit.n as i32)
            .bind(tr.fit.slope)
            .bind(tr.fit.intercept)
            .bind(tr.fit.r2)
            .bind(tr.p_value)
            .bind(tr.significant)
            .bind(tr.direction.as_str())
            .bind(tr.change_pct)
            .bind(f.map(|f| (f.t * 3_600_000.0).round() as i64))
            .bind(f.map(|f| f.value))
            .bind(f.map(|f| f.lower))
            .bind(f.map(|f| f.upper))
            .bind(f.map(|f| f.confidence))
            .execute(&mut *tx)
            .await?;
        }
        self.write_ranks(&mut tx, out).await?;
        Ok(tx.commit().await?)
    }

    /// Upserts each fleet's newest day score into every federation it belongs to, then
    /// re-ranks those (federation, day) groups. Groups are locked in key order (advisory
    /// locks), so workers of different partitions neither deadlock nor interleave.
    async fn write_ranks(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        out: &Outputs,
    ) -> Result<(), sqlx::Error> {
        let days: Vec<&ScoreOut> =
            last_by(&out.scores, |o| (o.fleet_id.clone(), o.period, o.start_ms))
                .into_iter()
                .filter(|o| o.period == Period::Day && o.score.total.is_some())
                .collect();
        if days.is_empty() {
            return Ok(());
        }
        let fleets: Vec<String> = days
            .iter()
            .map(|o| o.fleet_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let members: Vec<(String, String)> = sqlx::query_as(
            "SELECT fleet_id, federation_id FROM federation_members WHERE fleet_id = ANY($1)",
        )
        .bind(&fleets)
        .fetch_all(&mut **tx)
        .await?;
        let mut feds: HashMap<&str, Vec<&str>> = HashMap::new();
        for (fleet, fed) in &members {
            feds.entry(fleet.as_str()).or_default().push(fed.as_str());
        }
        let mut groups: BTreeMap<(String, i64), Vec<&ScoreOut>> = BTreeMap::new();
        for o in &days {
            for fed in feds.get(o.fleet_id.as_str()).into_iter().flatten() {
                groups
                    .entry((fed.to_string(), o.start_ms))
                    .or_default()
                    .push(o);
            }
        }
        for ((fed, day), scores) in &groups {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), $2)")
                .bind(fed)
                .bind(day.div_euclid(MS_PER_DAY) as i32)
                .execute(&mut **tx)
                .await?;
            for o in scores {
                sqlx::query(
                    "INSERT INTO perf_federation_ranks (federation_id, day_start_ms, fleet_id, total, version, rank, fleets)
                     VALUES ($1, $2, $3, $4, $5, 0, 0)
                     ON CONFLICT (federation_id, day_start_ms, fleet_id) DO UPDATE SET
                        total = excluded.total, version = excluded.version, updated_at = now()
                     WHERE perf_federation_ranks.version < excluded.version",
                )
                .bind(fed)
                .bind(day)
                .bind(&o.fleet_id)
                .bind(o.score.total.expect("filtered"))
                .bind(i64::from(o.version))
                .execute(&mut **tx)
                .await?;
            }
            let all: Vec<(String, f64)> = sqlx::query_as(
                "SELECT fleet_id, total FROM perf_federation_ranks WHERE federation_id = $1 AND day_start_ms = $2",
            )
            .bind(fed)
            .bind(day)
            .fetch_all(&mut **tx)
            .await?;
            let ranked = score::rank_among(&all, true);
            let n = ranked.len() as i32;
            for r in ranked {
                sqlx::query(
                    "UPDATE perf_federation_ranks SET rank = $4, fleets = $5, updated_at = now()
                     WHERE federation_id = $1 AND day_start_ms = $2 AND fleet_id = $3 AND (rank, fleets) IS DISTINCT FROM ($4, $5)",
                )
                .bind(fed)
                .bind(day)
                .bind(&r.fleet_id)
                .bind(r.rank as i32)
                .bind(n)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use atlasmesh_core::analytics::score::{Components, Score};

    use super::*;

    #[test]
    fn rows_carry_benchmark_and_nan_for_undefined_components() {
        let o = ScoreOut {
            fleet_id: "f1".into(),
            period: Period::Day,
            start_ms: 86_400_000,
            end_ms: 2 * 86_400_000,
            version: 7,
            score: Score {
                total: Some(60.0),
                components: Components {
                    utilization: Some(60.0),
                    ..Components::default()
                },
            },
            computed_at_ms: 86_460_000,
        };
        let b = ScoreBenchmark {
            id: "b1".into(),
            target: 80.0,
        };
        let r = score_row(&o, Some(&b)).unwrap();
        assert_eq!(
            (r.period, r.period_start, r.version, r.benchmark_pct),
            (3, 86_400, 7, 75.0)
        );
        assert!(r.efficiency.is_nan() && r.utilization == 60.0);
        assert_eq!(score_row(&o, None).unwrap().benchmark_id, "");
        let none = ScoreOut {
            score: Score::default(),
            ..o
        };
        assert_eq!(score_row(&none, None), None);
    }

    #[test]
    fn last_by_keeps_the_newest_per_key() {
        let v = [("a", 1), ("b", 2), ("a", 3)];
        let got: Vec<_> = last_by(&v, |x| x.0).into_iter().copied().collect();
        assert_eq!(got, vec![("a", 3), ("b", 2)]);
    }
}
