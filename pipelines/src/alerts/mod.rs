//! The alert engine: rules from PostgreSQL evaluated on the closed windows of
//! `fleet.metrics.v1`; each transition of a rule's per-subject state machine
//! (`atlasmesh_core::analytics::alert`) goes to `fleet.alerts.v1` and to PostgreSQL.
//!
//! - State (fleet partials waiting to settle, one machine per rule and subject, sequence
//!   numbers) is the runner's per-partition state, checkpointed with the offsets, so it
//!   survives restarts and rebalances; see [`engine`] for settling and time.
//! - Rules are re-read every `alerts.rules_refresh_ms`; state is keyed by rule id, so a
//!   change to one rule leaves the others' state alone (a changed rule keeps its state too).
//!   Federation rules are loaded but not evaluated yet (their windows span metrics partitions).
//! - `flush` writes the batch's transitions to `alert_transitions` (`ON CONFLICT (dedup_key,
//!   seq) DO NOTHING`) and `alert_instances` (upsert that never goes back to an older seq) in
//!   one transaction, then produces the paged ones (firing, resent, resolved) to
//!   `fleet.alerts.v1`: key = dedup key, value = the JSON of
//!   [`atlasmesh_core::analytics::alert::pager_message`] with `payload.custom_details.seq`,
//!   headers `seq` and `kind`. Pending/cancelled transitions are history only (PostgreSQL).
//!
//! Delivery: the runner checkpoints only after `flush` succeeded, and a replay from the last
//! checkpoint reproduces the same transitions with the same `(dedup_key, seq)` (the engine is
//! deterministic given the rules). PostgreSQL therefore holds every transition exactly once;
//! the topic is at-least-once (no Kafka transactions on this broker), so a consumer drops a
//! message whose `seq` is not above the last one it saw for that `dedup_key` (a key's messages
//! share a partition, so they arrive in order). `cli/examples/pager_consumer.rs` does that.

pub mod engine;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use atlasmesh_core::analytics::alert::{AlertRule, AlertScope, Comparison, Severity, TransitionKind};
use atlasmesh_core::analytics::metrics as metric_defs;
use atlasmesh_core::analytics::score::ScoreParams;
use atlasmesh_core::config::{Config, Topics};
use atlasmesh_schemas::{Codec, DeadLetterReason, DeadLetterRecord, WindowMetricsRecord};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use sqlx::{PgPool, Row};
use tracing::{info, warn};

pub use engine::{AlertsState, Emitted, LoadedRule, RuleSet, Settings};

use crate::runner::{InMessage, Pipeline, RetryLater};

pub const NAME: &str = "alerts";

pub struct AlertsPipeline {
    codec: Codec,
    topics: Topics,
    pool: PgPool,
    producer: KafkaProducer,
    settings: Settings,
    rules: Arc<RwLock<Arc<RuleSet>>>,
}

/// Transitions and dead letters gathered since the last checkpoint.
#[derive(Default)]
pub struct AlertsBatch {
    consumed: usize,
    transitions: Vec<Emitted>,
    dlq: Vec<DeadLetterRecord>,
}

/// Reads the enabled rules; invalid ones (bad comparison, severity, metric, thresholds) are
/// skipped with a warning rather than stopping the engine.
pub async fn load_rules(pool: &PgPool) -> Result<RuleSet, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, fleet_id, scope, metric, comparison, threshold, clear_threshold, for_ms, keep_firing_for_ms,
                resend_interval_ms, severity, labels, runbook_url
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
            let comparison = Comparison::parse(&row.get::<String, _>("comparison")).ok_or("unknown comparison")?;
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
            let labels = serde_json::from_value(labels).map_err(|e| format!("labels must be an object of strings: {e}"))?;
            let ms = |c: &str| -> Result<u64, String> { u64::try_from(row.get::<i64, _>(c)).map_err(|_| format!("{c} < 0")) };
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
            Ok(LoadedRule { rule, fleet_id: row.get("fleet_id") })
        })();
        match parsed {
            Ok(r) if r.rule.scope == AlertScope::Federation => {
                warn!(rule_id = %id, "Federation alert rules are not evaluated yet; skipping.");
            }
            Ok(r) => rules.push(r),
            Err(e) => warn!(rule_id = %id, error = %e, "Invalid alert rule skipped."),
        }
    }
    Ok(RuleSet::new(rules))
}

impl AlertsPipeline {
    pub async fn new(cfg: &Config) -> anyhow::Result<Self> {
        let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 4).await?;
        let initial = load_rules(&pool).await.map_err(|e| anyhow::anyhow!("loading alert rules: {e}"))?;
        info!(pipeline = NAME, rules = initial.len(), "Alert rules loaded.");
        let rules = Arc::new(RwLock::new(Arc::new(initial)));
        let (refresh_pool, slot, every) = (pool.clone(), rules.clone(), Duration::from_millis(cfg.alerts.rules_refresh_ms.max(100)));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match load_rules(&refresh_pool).await {
                    Ok(set) => {
                        let n = set.len();
                        let before = std::mem::replace(&mut *slot.write().expect("rules lock"), Arc::new(set)).len();
                        if n != before {
                            info!(pipeline = NAME, rules = n, "Alert rules reloaded.");
                        }
                    }
                    Err(e) => warn!(pipeline = NAME, error = %e, "Reloading alert rules failed; keeping the previous set."),
                }
            }
        });
        Ok(AlertsPipeline {
            codec: Codec::new(&cfg.schema_registry.url).map_err(|e| anyhow::anyhow!("schema registry: {e}"))?,
            topics: cfg.topics.clone(),
            pool,
            producer: KafkaProducer::new(&cfg.kafka)?,
            settings: Settings {
                settle_grace_ms: cfg.alerts.settle_grace_ms,
                silent_after_ms: cfg.alerts.silent_after_ms,
                score: ScoreParams::default(),
            },
            rules,
        })
    }

    fn dead_letter(&self, msg: &InMessage, reason: DeadLetterReason, error: String, batch: &mut AlertsBatch) {
        batch.dlq.push(crate::dlq::dead_letter(NAME, msg, reason, error));
    }

    async fn write_postgres(&self, transitions: &[Emitted]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for e in transitions {
            let t = &e.transition;
            sqlx::query(
                "INSERT INTO alert_transitions (dedup_key, seq, kind, at_ms, rule_id, subject, fleet_id, value, message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (dedup_key, seq) DO NOTHING",
            )
            .bind(&e.dedup_key)
            .bind(e.seq as i64)
            .bind(engine::kind_name(t))
            .bind(t.at_ms)
            .bind(&e.rule_id)
            .bind(&e.subject)
            .bind(&e.fleet_id)
            .bind(t.value)
            .bind(&e.message)
            .execute(&mut *tx)
            .await?;
            // A new episode (pending, or firing straight away) clears the operator's marks.
            sqlx::query(
                "INSERT INTO alert_instances (dedup_key, rule_id, subject, fleet_id, status, value, started_at_ms, ended_at_ms, last_transition_seq, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
                 ON CONFLICT (dedup_key) DO UPDATE SET
                    status = excluded.status, value = excluded.value, started_at_ms = excluded.started_at_ms,
                    ended_at_ms = excluded.ended_at_ms, last_transition_seq = excluded.last_transition_seq,
                    acknowledged_at = CASE WHEN $10 THEN NULL ELSE alert_instances.acknowledged_at END,
                    acknowledged_by = CASE WHEN $10 THEN NULL ELSE alert_instances.acknowledged_by END,
                    resolved_by = CASE WHEN $10 THEN NULL ELSE alert_instances.resolved_by END,
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
        &self.topics.metrics
    }

    async fn handle(&self, state: &mut AlertsState, msg: &InMessage, batch: &mut AlertsBatch) -> Result<(), RetryLater> {
        batch.consumed += 1;
        let rec: WindowMetricsRecord = match crate::dlq::decode(&self.codec, msg, "WindowMetrics").await? {
            Ok(r) => r,
            Err((reason, error)) => {
                self.dead_letter(msg, reason, error, batch);
                return Ok(());
            }
        };
        let rules = self.rules.read().expect("rules lock").clone();
        let outcome = state.on_record(&rules, &self.settings, &rec, &mut batch.transitions);
        if outcome.ignored_revisions > 0 {
            metrics::counter!(atlasmesh_core::metric_names::ALERT_REVISIONS_IGNORED).increment(outcome.ignored_revisions as u64);
        }
        Ok(())
    }

    /// Nothing: alert time is event time, and an idle metrics partition has no new windows.
    fn on_idle(&self, _state: &mut AlertsState, _partition: i32, _batch: &mut AlertsBatch) {}

    async fn flush(&self, batch: &mut AlertsBatch) -> atlasmesh_sinks::Result<()> {
        if batch.transitions.is_empty() && batch.dlq.is_empty() {
            return Ok(());
        }
        self.write_postgres(&batch.transitions).await?;
        let mut records = Vec::with_capacity(batch.transitions.len() + batch.dlq.len());
        for e in &batch.transitions {
            let Some(m) = &e.message else { continue };
            records.push(OutRecord {
                topic: self.topics.alerts.clone(),
                key: Some(e.dedup_key.clone().into_bytes()),
                payload: serde_json::to_vec(m).expect("JSON serialises"),
                headers: vec![
                    ("seq".into(), e.seq.to_string().into_bytes()),
                    ("kind".into(), engine::kind_name(&e.transition).as_bytes().to_vec()),
                ],
            });
        }
        for d in &batch.dlq {
            records.push(crate::dlq::encode(&self.codec, &self.topics, d).await?);
        }
        self.producer.send_all("kafka", &records).await?;
        metrics::counter!(atlasmesh_core::metric_names::ALERT_TRANSITIONS).increment(batch.transitions.len() as u64);
        Ok(())
    }

    fn batch_len(&self, batch: &AlertsBatch) -> usize {
        batch.consumed
    }
}
