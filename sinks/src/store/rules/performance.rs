//! fleet-performance: derived scores and trends, report summaries, the alert lifecycle.

use atlasmesh_core::domain::performance::{
    self as domain, Alert, AlertStatus, Benchmark, PerformanceMetric, Report, Score, Trend,
};
use atlasmesh_core::domain::ActionBody;
use serde_json::{json, Value};
use sqlx::PgConnection;

use super::{f64_field, str_field, StoreRules};
use crate::store::sql::Record;
use crate::store::{CommandCtx, StoreError, StoreResult};

impl StoreRules for Benchmark {}

impl StoreRules for PerformanceMetric {}

impl StoreRules for Score {
    async fn before_create(
        _conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let c = ["efficiency", "utilization", "reliability", "safety", "cost"]
            .map(|k| f64_field(rec, k));
        rec.insert("overall".into(), json!(domain::overall_score(c)));
        Ok(())
    }
}

impl StoreRules for Trend {
    async fn before_create(
        _conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let samples: Vec<f64> = rec
            .get("samples")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        let Some(t) = domain::trend(&samples) else {
            return Err(StoreError::rejected(
                "samples: need 2 or more finite values",
            ));
        };
        rec.insert("slope".into(), json!(t.slope));
        rec.insert("direction".into(), json!(t.direction));
        rec.insert("change_pct".into(), json!(t.change_pct));
        rec.insert("forecast".into(), json!(t.forecast));
        Ok(())
    }
}

impl StoreRules for Report {
    async fn before_create(
        conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let summary: Value = sqlx::query_scalar(
            "WITH p AS (SELECT $1::text AS fleet, $2::timestamptz AS s, $3::timestamptz AS e)
             SELECT jsonb_build_object(
               'score_count', (SELECT count(*) FROM perf_scores x, p
                               WHERE x.fleet_id = p.fleet AND x.period_start >= p.s AND x.period_start < p.e),
               'avg_overall', (SELECT avg(overall) FROM perf_scores x, p
                               WHERE x.fleet_id = p.fleet AND x.period_start >= p.s AND x.period_start < p.e),
               'metrics', COALESCE((SELECT jsonb_object_agg(metric, jsonb_build_object('count', n, 'avg', a))
                            FROM (SELECT x.metric, count(*) AS n, avg(x.value) AS a FROM perf_metrics x, p
                                  WHERE x.fleet_id = p.fleet AND x.period_start >= p.s AND x.period_start < p.e
                                  GROUP BY x.metric) m), '{}'::jsonb),
               'alerts', jsonb_build_object(
                 'fired', (SELECT count(*) FROM perf_alerts x, p
                           WHERE x.fleet_id = p.fleet AND x.created_at >= p.s AND x.created_at < p.e),
                 'firing', (SELECT count(*) FROM perf_alerts x, p
                            WHERE x.fleet_id = p.fleet AND x.created_at >= p.s AND x.created_at < p.e
                              AND x.status = 'firing')))",
        )
        .bind(str_field(rec, "fleet_id"))
        .bind(str_field(rec, "period_start"))
        .bind(str_field(rec, "period_end"))
        .fetch_one(&mut *conn)
        .await?;
        rec.insert("summary".into(), summary);
        Ok(())
    }
}

impl StoreRules for Alert {
    async fn action(
        _conn: &mut PgConnection,
        cmd: &CommandCtx<'_>,
        action: &str,
        old: &Record,
        body: &ActionBody,
    ) -> StoreResult<Record> {
        super::resolve::<Self, _>(
            cmd,
            action,
            old,
            body,
            AlertStatus::Resolved,
            "resolution_note",
        )
    }
}
