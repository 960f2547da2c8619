//! The alert engine: rules from PostgreSQL evaluated on the closed windows of
//! `fleet.metrics.v1`; each transition of a rule's per-subject state machine
//! (`atlasmesh_core::analytics::alert`) goes to `fleet.alerts.v1` and to PostgreSQL.
//!
//! - State (fleet partials waiting to settle, one machine per rule and subject, sequence
//!   numbers) is the runner's per-partition state, checkpointed with the offsets, so it
//!   survives restarts and rebalances; see [`engine`] for settling and time.
//! - Rules are re-read every `alerts.rules_refresh_ms`; state is keyed by rule id, so a
//!   change to one rule leaves the others' state alone (a changed rule keeps its state too).
//!   The same refresh reads the federation memberships and the manual resolves operators made
//!   through the API, which the partition holding the instance publishes (see [`engine`]).
//! - `flush` writes the batch's transitions to `alert_transitions` (`ON CONFLICT (dedup_key,
//!   seq) DO NOTHING`) and `alert_instances` (upsert that never goes back to an older seq),
//!   and the settled windows of federated fleets to `alert_fleet_windows`, in one transaction;
//!   then every transition to the ClickHouse `alert_history` (ReplacingMergeTree: a re-written
//!   row collapses); then produces the paged ones (firing, resent, resolved) to
//!   `fleet.alerts.v1`: key = dedup key, value = the JSON of
//!   [`atlasmesh_core::analytics::alert::pager_message`] with `payload.custom_details.seq`,
//!   headers `seq` and `kind`. Pending/cancelled transitions are history only.
//! - Federation rules ([`federation`]) are evaluated after each rules refresh by whichever
//!   worker holds a PostgreSQL advisory lock, on the settled fleet windows of the member
//!   fleets; their state lives in `alert_federation_state`, written in the transaction that
//!   records their transitions.
//!
//! Delivery: the runner checkpoints only after `flush` succeeded, and a replay from the last
//! checkpoint reproduces the same transitions with the same `(dedup_key, seq)` (the engine is
//! deterministic given the rules). PostgreSQL therefore holds every transition exactly once;
//! the topic is at-least-once (no Kafka transactions on this broker), so a consumer drops a
//! message whose `seq` is not above the last one it saw for that `dedup_key` (a key's messages
//! share a partition, so they arrive in order). `cli/examples/pager_consumer.rs` does that.

pub mod engine;
pub mod federation;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use atlasmesh_core::analytics::alert::{
    AlertRule, AlertScope, Comparison, Severity, TransitionKind,
};
use atlasmesh_core::analytics::metrics as metric_defs;
use atlasmesh_core::config::{Config, Topics};
use atlasmesh_schemas::{
    Codec, DeadLetterReason, DeadLetterRecord, MetricsScope, WindowMetricsRecord,
};
use atlasmesh_sinks::clickhouse::{self as ch, AlertHistoryRow, ClickHouseSink};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use sqlx::{PgConnection, PgPool, Row};
use tracing::{info, warn};

pub use engine::{
    AlertsState, Emitted, LoadedRule, ResolveRequest, RuleSet, Settings, SettledWindow,
};

use crate::runner::{InMessage, Pipeline, RetryLater};

pub const NAME: &str = "alerts";

pub struct AlertsPipeline {
    codec: Codec,
    sinks: Arc<Sinks>,
    settings: Settings,
    rules: Arc<RwLock<Arc<RuleSet>>>,
}

/// Where transitions go: PostgreSQL, ClickHouse history, the alert topic.
pub struct Sinks {
    pub topics: Topics,
    pub pool: PgPool,
    pub producer: KafkaProducer,
    pub clickhouse: ClickHouseSink,
    /// Partitions of the metrics topic (the federation frontier needs every one).
    pub metrics_partitions: i32,
}

/// Transitions, settled federated fleet windows and dead letters gathered since the last
/// checkpoint.
#[derive(Default)]
pub struct AlertsBatch {
    consumed: usize,
    transitions: Vec<Emitted>,
    windows: Vec<SettledWindow>,
    /// Metrics partition → its settle frontier after this batch.
    frontiers: BTreeMap<i32, i64>,
    dlq: Vec<DeadLetterRecord>,
}

/// Reads the enabled rules; invalid ones (bad comparison, severity, metric, thresholds) are
/// skipped with a warning rather than stopping the engine.
pub async fn load_rules(pool: &PgPool) -> Result<RuleSet, sqlx::Error> {
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
    pub async fn write_transitions(
        conn: &mut PgConnection,
        transitions: &[Emitted],
    ) -> Result<(), sqlx::Error> {
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
    pub async fn write_history(&self, transitions: &[Emitted]) -> atlasmesh_sinks::Result<()> {
        let rows: Vec<AlertHistoryRow> = transitions.iter().map(history_row).collect();
        self.clickhouse.write_alert_history(&rows).await
    }

    /// Produces the paged transitions to the alert topic.
    pub async fn publish(
        &self,
        transitions: &[Emitted],
        extra: Vec<OutRecord>,
    ) -> atlasmesh_sinks::Result<()> {
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
            });
        }
        records.extend(extra);
        if records.is_empty() {
            return Ok(());
        }
        self.producer.send_all("kafka", &records).await
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

impl AlertsPipeline {
    pub async fn new(cfg: &Config) -> anyhow::Result<Self> {
        let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 4).await?;
        let initial = load_rules(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("loading alert rules: {e}"))?;
        info!(
            pipeline = NAME,
            rules = initial.len(),
            "Alert rules loaded."
        );
        let rules = Arc::new(RwLock::new(Arc::new(initial)));
        let producer = KafkaProducer::new(&cfg.kafka)?;
        let metrics_partitions = producer.partition_count(&cfg.topics.metrics).await?;
        let sinks = Arc::new(Sinks {
            topics: cfg.topics.clone(),
            pool: pool.clone(),
            producer,
            clickhouse: ClickHouseSink::new(&cfg.clickhouse),
            metrics_partitions,
        });
        let settings = Settings {
            silent_after_ms: cfg.alerts.silent_after_ms,
            // The same weights as the performance pipeline's scores.
            score: cfg.performance.score,
        };
        let (refresh_sinks, slot, every) = (
            sinks.clone(),
            rules.clone(),
            Duration::from_millis(cfg.alerts.rules_refresh_ms.max(100)),
        );
        let fed_settings = settings.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match load_rules(&refresh_sinks.pool).await {
                    Ok(set) => {
                        let n = set.len();
                        let set = Arc::new(set);
                        let before =
                            std::mem::replace(&mut *slot.write().expect("rules lock"), set.clone())
                                .len();
                        if n != before {
                            info!(pipeline = NAME, rules = n, "Alert rules reloaded.");
                        }
                        if let Err(e) =
                            federation::evaluate(&refresh_sinks, &set, &fed_settings).await
                        {
                            warn!(pipeline = NAME, error = %e, "Evaluating federation alert rules failed; retrying after the next refresh.");
                        }
                    }
                    Err(e) => {
                        warn!(pipeline = NAME, error = %e, "Reloading alert rules failed; keeping the previous set.")
                    }
                }
            }
        });
        Ok(AlertsPipeline {
            codec: Codec::new(&cfg.schema_registry.url)
                .map_err(|e| anyhow::anyhow!("schema registry: {e}"))?,
            sinks,
            settings,
            rules,
        })
    }

    fn dead_letter(
        &self,
        msg: &InMessage,
        reason: DeadLetterReason,
        error: String,
        batch: &mut AlertsBatch,
    ) {
        batch
            .dlq
            .push(crate::dlq::dead_letter(NAME, msg, reason, error));
    }

    async fn write_postgres(&self, batch: &AlertsBatch) -> Result<(), sqlx::Error> {
        let mut tx = self.sinks.pool.begin().await?;
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
            .bind(&self.sinks.topics.metrics)
            .bind(partition)
            .bind(frontier)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}

impl Pipeline for AlertsPipeline {
    type State = AlertsState;
    type Batch = AlertsBatch;

    fn name(&self) -> &str {
        NAME
    }

    fn topic(&self) -> &str {
        &self.sinks.topics.metrics
    }

    async fn handle(
        &self,
        state: &mut AlertsState,
        msg: &InMessage,
        batch: &mut AlertsBatch,
    ) -> Result<(), RetryLater> {
        batch.consumed += 1;
        let rec: WindowMetricsRecord =
            match crate::dlq::decode(&self.codec, msg, "WindowMetrics").await? {
                Ok(r) => r,
                Err((reason, error)) => {
                    self.dead_letter(msg, reason, error, batch);
                    return Ok(());
                }
            };
        let rules = self.rules.read().expect("rules lock").clone();
        state.apply_resolves(&rules, &mut batch.transitions);
        let outcome = state.on_record(&rules, &self.settings, &rec, &mut batch.transitions);
        batch.windows.extend(outcome.settled);
        if rec.scope == MetricsScope::Watermark {
            if let Some(f) = state.frontier() {
                batch.frontiers.insert(msg.partition, f);
            }
        }
        if outcome.ignored_revisions > 0 {
            metrics::counter!(atlasmesh_core::metric_names::ALERT_REVISIONS_IGNORED)
                .increment(outcome.ignored_revisions as u64);
        }
        Ok(())
    }

    /// Alert time is event time, and an idle metrics partition has no new windows; only the
    /// manual resolves of its instances are published.
    fn on_idle(&self, state: &mut AlertsState, _partition: i32, batch: &mut AlertsBatch) {
        let rules = self.rules.read().expect("rules lock").clone();
        state.apply_resolves(&rules, &mut batch.transitions);
    }

    /// Manual resolves reach the pager within a tick even when the partition holding the
    /// instance receives nothing (an idle fleet, a stopped source).
    fn on_tick(&self, state: &mut AlertsState, _partition: i32, batch: &mut AlertsBatch) -> bool {
        let rules = self.rules.read().expect("rules lock").clone();
        let before = batch.transitions.len();
        state.apply_resolves(&rules, &mut batch.transitions);
        batch.transitions.len() > before
    }

    async fn flush(&self, batch: &mut AlertsBatch) -> atlasmesh_sinks::Result<()> {
        if batch.transitions.is_empty()
            && batch.windows.is_empty()
            && batch.frontiers.is_empty()
            && batch.dlq.is_empty()
        {
            return Ok(());
        }
        self.write_postgres(batch).await?;
        self.sinks.write_history(&batch.transitions).await?;
        let mut dlq = Vec::with_capacity(batch.dlq.len());
        for d in &batch.dlq {
            dlq.push(crate::dlq::encode(&self.codec, &self.sinks.topics, d).await?);
        }
        self.sinks.publish(&batch.transitions, dlq).await?;
        metrics::counter!(atlasmesh_core::metric_names::ALERT_TRANSITIONS)
            .increment(batch.transitions.len() as u64);
        Ok(())
    }

    fn batch_len(&self, batch: &AlertsBatch) -> usize {
        batch.consumed
    }
}
