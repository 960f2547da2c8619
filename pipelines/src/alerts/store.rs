//! The alerts pipeline's reads and writes: rules from PostgreSQL, transitions to
//! PostgreSQL, the ClickHouse alert history and the alert topic.

use atlasmesh_core::analytics::alert::{
    AlertRule, AlertScope, Comparison, Severity, TransitionKind,
};
use atlasmesh_core::analytics::metrics as metric_defs;
use atlasmesh_core::config::Topics;
use atlasmesh_sinks::clickhouse::{self as ch, AlertHistoryRow, ClickHouseSink};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use sqlx::{PgConnection, PgPool, Row};
use tracing::warn;

use super::state::{Emitted, LoadedRule, ResolveRequest, RuleSet};
use super::AlertsBatch;
use crate::Result;

/// Where transitions go: PostgreSQL, ClickHouse history, the alert topic.
pub struct Sinks {
    pub topics: Topics,
    pub pool: PgPool,
    pub producer: KafkaProducer,
    pub clickhouse: ClickHouseSink,
    /// Partitions of the metrics topic (the federation frontier needs every one).
    pub metrics_partitions: i32,
}

/// Reads the enabled rules; invalid ones (bad comparison, severity, metric, thresholds) are
/// skipped with a warning rather than stopping the engine.
pub async fn load_rules(pool: &PgPool) -> Result<RuleSet> {
    let rows = sqlx::query(
        "SELECT id, fleet_id, scope, federation_id, metric, comparison, threshold, clear_threshold, for_ms,
                keep_firing_for_ms, resend_interval_ms, severity, labels, runbook_url
         FROM alert_rules WHERE enabled ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    let mut rules = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.get("id");
        let parsed = (|| -> Result<LoadedRule, String> {
            let scope = match row.get::<String, _>("scope").as_str() {
                "fleet" => AlertScope::Fleet,
                "vehicle" => AlertScope::Vehicle,
                "federation" => AlertScope::Federation,
                other => return Err(format!("unknown scope {other:?}")),
            };
            let comparison = Comparison::parse(&row.get::<String, _>("comparison"))
                .ok_or("unknown comparison")?;
            let severity = match row.get::<String, _>("severity").as_str() {
                "critical" => Severity::Critical,
                "error" => Severity::Error,
                "warning" => Severity::Warning,
                "info" => Severity::Info,
                other => return Err(format!("unknown severity {other:?}")),
            };
            let metric: String = row.get("metric");
            if !metric_defs::is_known(&metric) {
                return Err(format!("unknown metric {metric:?}"));
            }
            let labels: serde_json::Value = row.get("labels");
            let labels = serde_json::from_value(labels)
                .map_err(|e| format!("labels must be an object of strings: {e}"))?;
            let ms = |c: &str| -> Result<u64, String> {
                u64::try_from(row.get::<i64, _>(c)).map_err(|_| format!("{c} < 0"))
            };
            let rule = AlertRule {
                id: id.clone(),
                metric,
                scope,
                comparison,
                threshold: row.get("threshold"),
                clear_threshold: row.get("clear_threshold"),
                for_ms: ms("for_ms")?,
                keep_firing_for_ms: ms("keep_firing_for_ms")?,
                severity,
                labels,
                runbook_url: row.get("runbook_url"),
                resend_interval_ms: ms("resend_interval_ms")?,
            };
            rule.validate().map_err(|e| e.to_string())?;
            let federation_id: Option<String> = row.get("federation_id");
            if (scope == AlertScope::Federation) != federation_id.is_some() {
                return Err("federation_id must be set exactly for federation rules".into());
            }
            Ok(LoadedRule {
                rule,
                fleet_id: row.get("fleet_id"),
                federation_id,
            })
        })();
        match parsed {
            Ok(r) => rules.push(r),
            Err(e) => warn!(rule_id = %id, error = %e, "Invalid alert rule skipped."),
        }
    }
    let members: Vec<(String, String)> = sqlx::query_as(
        "SELECT federation_id, fleet_id FROM federation_members ORDER BY federation_id, fleet_id",
    )
    .fetch_all(pool)
    .await?;
    // Manual resolves not yet published, and for an hour those that were (a replay after a
    // crash re-publishes them at the same seq).
    let resolves = sqlx::query(
        "SELECT rule_id, subject, last_transition_seq, manual_resolve_seq, started_at_ms, value, resolved_by
         FROM alert_instances
         WHERE resolved_by IS NOT NULL AND status = 'resolved'
           AND (manual_resolve_seq IS NULL
                OR (manual_resolve_seq = last_transition_seq AND updated_at > now() - interval '1 hour'))",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| ResolveRequest {
        rule_id: r.get("rule_id"),
        subject: r.get("subject"),
        last_seq: r.get::<i64, _>("last_transition_seq").max(0) as u64,
        manual_resolve_seq: r.get::<Option<i64>, _>("manual_resolve_seq").map(|s| s.max(0) as u64),
        started_at_ms: r.get("started_at_ms"),
        value: r.get("value"),
        resolved_by: r.get("resolved_by"),
    })
    .collect::<Vec<_>>();
    Ok(RuleSet::new(rules)
        .with_members(members)
        .with_resolves(resolves))
}

impl Sinks {
    /// Records transitions in PostgreSQL on `conn` (inside the caller's transaction):
    /// `alert_transitions` once per `(dedup_key, seq)`, `alert_instances` never back to an
    /// older seq. A new episode (pending, or firing) clears the operator's marks; until then a
    /// manually resolved instance stays `resolved`, and the engine's publication of the manual
    /// resolve is remembered in `manual_resolve_seq`.
    pub async fn write_transitions(conn: &mut PgConnection, transitions: &[Emitted]) -> Result<()> {
        for e in transitions {
            let t = &e.transition;
            sqlx::query(
                "INSERT INTO alert_transitions (dedup_key, seq, kind, at_ms, rule_id, subject, fleet_id, value, message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (dedup_key, seq) DO NOTHING",
            )
            .bind(&e.dedup_key)
            .bind(e.seq as i64)
            .bind(t.kind.as_str())
            .bind(t.at_ms)
            .bind(&e.rule_id)
            .bind(&e.subject)
            .bind(&e.fleet_id)
            .bind(t.value)
            .bind(&e.message)
            .execute(&mut *conn)
            .await?;
            let manual_seq = e.manual_by.as_ref().map(|_| e.seq as i64);
            sqlx::query(
                "INSERT INTO alert_instances (dedup_key, rule_id, subject, fleet_id, status, value, started_at_ms, ended_at_ms,
                                              last_transition_seq, manual_resolve_seq, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, now())
                 ON CONFLICT (dedup_key) DO UPDATE SET
                    status = CASE WHEN NOT $10 AND alert_instances.resolved_by IS NOT NULL THEN 'resolved'
                                  ELSE excluded.status END,
                    value = excluded.value, started_at_ms = excluded.started_at_ms,
                    ended_at_ms = excluded.ended_at_ms, last_transition_seq = excluded.last_transition_seq,
                    acknowledged_at = CASE WHEN $10 THEN NULL ELSE alert_instances.acknowledged_at END,
                    acknowledged_by = CASE WHEN $10 THEN NULL ELSE alert_instances.acknowledged_by END,
                    resolved_by = CASE WHEN $10 THEN NULL ELSE alert_instances.resolved_by END,
                    resolved_at = CASE WHEN $10 THEN NULL ELSE alert_instances.resolved_at END,
                    resolution_note = CASE WHEN $10 THEN NULL ELSE alert_instances.resolution_note END,
                    manual_resolve_seq = CASE WHEN $11::bigint IS NOT NULL THEN $11::bigint
                                              WHEN $10 THEN NULL ELSE alert_instances.manual_resolve_seq END,
                    updated_at = now()
                 WHERE alert_instances.last_transition_seq < excluded.last_transition_seq",
            )
            .bind(&e.dedup_key)
            .bind(&e.rule_id)
            .bind(&e.subject)
            .bind(&e.fleet_id)
            .bind(e.status())
            .bind(t.value)
            .bind(t.starts_at_ms)
            .bind(t.ends_at_ms)
            .bind(e.seq as i64)
            .bind(matches!(e.transition.kind, TransitionKind::Pending | TransitionKind::Firing))
            .bind(manual_seq)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Writes every transition to the ClickHouse alert history (idempotent: a re-written
    /// transition is a duplicate of the same sorting key).
    pub async fn write_history(&self, transitions: &[Emitted]) -> Result<()> {
        let rows: Vec<AlertHistoryRow> = transitions.iter().map(history_row).collect();
        Ok(self.clickhouse.write_alert_history(&rows).await?)
    }

    /// Produces the paged transitions to the alert topic.
    pub async fn publish(&self, transitions: &[Emitted], extra: Vec<OutRecord>) -> Result<()> {
        let mut records = Vec::with_capacity(transitions.len() + extra.len());
        for e in transitions {
            let Some(m) = &e.message else { continue };
            records.push(OutRecord {
                topic: self.topics.alerts.clone(),
                key: Some(e.dedup_key.clone().into_bytes()),
                payload: serde_json::to_vec(m).expect("JSON serialises"),
                headers: vec![
                    ("seq".into(), e.seq.to_string().into_bytes()),
                    (
                        "kind".into(),
                        e.transition.kind.as_str().as_bytes().to_vec(),
                    ),
                ],
                partition: None,
                timestamp_ms: None,
            });
        }
        records.extend(extra);
        if records.is_empty() {
            return Ok(());
        }
        Ok(self.producer.send_all("kafka", &records).await?)
    }

    /// Records a batch in PostgreSQL in one transaction: its transitions, the settled windows
    /// of federated fleets and the partitions' settle frontiers.
    pub(super) async fn write_batch(&self, batch: &AlertsBatch) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        Sinks::write_transitions(&mut tx, &batch.transitions).await?;
        for w in &batch.windows {
            sqlx::query(
                "INSERT INTO alert_fleet_windows (fleet_id, window_start_ms, window_end_ms, counters)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (fleet_id, window_start_ms) DO NOTHING",
            )
            .bind(&w.fleet_id)
            .bind(w.start_ms)
            .bind(w.end_ms)
            .bind(serde_json::to_value(&w.counters).expect("counters serialise"))
            .execute(&mut *tx)
            .await?;
        }
        for (partition, frontier) in &batch.frontiers {
            sqlx::query(
                "INSERT INTO alert_settle_frontier (topic, partition, frontier_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (topic, partition) DO UPDATE
                 SET frontier_ms = GREATEST(alert_settle_frontier.frontier_ms, excluded.frontier_ms), updated_at = now()",
            )
            .bind(&self.topics.metrics)
            .bind(partition)
            .bind(frontier)
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }
}

/// The `alert_history` row of a transition.
pub fn history_row(e: &Emitted) -> AlertHistoryRow {
    let r = &e.rule.rule;
    let t = &e.transition;
    let status = t.kind.as_str();
    AlertHistoryRow {
        dedup_key: e.dedup_key.clone(),
        rule_id: e.rule_id.clone(),
        scope: ch::alert_scope_code(r.scope.as_str()).unwrap_or(1),
        subject: e.subject.clone(),
        fleet_id: e.fleet_id.clone(),
        metric: r.metric.clone(),
        severity: ch::alert_severity_code(r.severity.as_str()).unwrap_or(2),
        status: ch::alert_status_code(status).unwrap_or(1),
        event_action: ch::alert_event_action_code(status),
        value: t.value,
        threshold: r.threshold,
        at: ch::datetime_secs(t.at_ms),
        at_ms: t.at_ms,
        starts_at_ms: t.starts_at_ms,
        ends_at_ms: t.ends_at_ms.unwrap_or(0),
        summary: atlasmesh_core::analytics::alert::summary(r, &e.subject, t),
        label_names: Vec::new(),
        label_values: Vec::new(),
    }
    .with_labels(r.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Takes the transaction-scoped advisory lock named `key` (released at commit or rollback);
/// false when another worker's transaction holds it.
pub(crate) async fn try_xact_lock(tx: &mut sqlx::PgConnection, key: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .fetch_one(tx)
            .await?,
    )
}
