//! The alert engine: rules from PostgreSQL evaluated on the closed windows of
//! `fleet.metrics.v1`; each transition of a rule's per-subject state machine
//! (`atlasmesh_core::analytics::alert`) goes to `fleet.alerts.v1` and to PostgreSQL.
//!
//! - State (fleet partials waiting to settle, one machine per rule and subject, sequence
//!   numbers) is the runner's per-partition state, checkpointed with the offsets, so it
//!   survives restarts and rebalances; see [`state`] for settling and time.
//! - Rules are re-read every `alerts.rules_refresh_ms`; state is keyed by rule id, so a
//!   change to one rule leaves the others' state alone (a changed rule keeps its state too).
//!   The same refresh reads the federation memberships and the manual resolves operators made
//!   through the API, which the partition holding the instance publishes (see [`state`]).
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
//! - Vehicle rules on the daily vehicle health metrics (health score, failure risk, days to
//!   the state-of-health threshold) are evaluated the same way ([`health`]), on the rows the
//!   health pipeline streams into PostgreSQL (one value per vehicle and closed UTC day); their
//!   state lives in `alert_health_state`.
//!
//! Delivery: the runner checkpoints only after `flush` succeeded, and a replay from the last
//! checkpoint reproduces the same transitions with the same `(dedup_key, seq)` (the engine is
//! deterministic given the rules). PostgreSQL therefore holds every transition exactly once;
//! the topic is at-least-once (no Kafka transactions on this broker), so a consumer drops a
//! message whose `seq` is not above the last one it saw for that `dedup_key` (a key's messages
//! share a partition, so they arrive in order). `cli/examples/pager_consumer.rs` does that.

pub mod federation;
pub mod health;
pub mod state;
mod store;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use atlasmesh_core::analytics::alert::TransitionKind;
use atlasmesh_core::config::Config;
use atlasmesh_schemas::{
    Codec, DeadLetterReason, DeadLetterRecord, MetricsScope, SchemaKind, WindowMetricsRecord,
};
use atlasmesh_sinks::clickhouse::ClickHouseSink;
use atlasmesh_sinks::kafka::KafkaProducer;
use tokio::sync::watch;
use tracing::{info, warn};

pub use state::{
    AlertsState, Emitted, LoadedRule, ResolveRequest, RuleSet, Settings, SettledWindow,
};
pub use store::{history_row, load_rules, Sinks};

use crate::dlq::Decoded;
use crate::runner::{requested, Background, Cadence, InMessage, Pipeline};
use crate::{Error, Result};

pub const NAME: &str = "alerts";

pub struct AlertsPipeline {
    codec: Codec,
    sinks: Arc<Sinks>,
    settings: Settings,
    rules: Arc<RwLock<Arc<RuleSet>>>,
    rules_refresh: Duration,
    cadence: Cadence,
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
    /// A transition with a pager message is in `transitions` (noted as they are added, so
    /// the runner's per-message question does not scan them).
    paging: bool,
    /// Stages of `flush` already done: a retry repeats only the ones that failed.
    done: FlushDone,
}

impl AlertsBatch {
    /// Runs `f` on the transitions and notes whether what it added pages.
    fn record<R>(&mut self, f: impl FnOnce(&mut Vec<Emitted>) -> R) -> R {
        let from = self.transitions.len();
        let r = f(&mut self.transitions);
        self.paging |= self.transitions[from..].iter().any(|t| t.message.is_some());
        r
    }
}

/// Which of the flush's three independent writes have succeeded.
#[derive(Default)]
struct FlushDone {
    postgres: bool,
    history: bool,
    published: bool,
}

/// Re-reads the rules into `slot` and evaluates the federation rules and the vehicle health
/// rules on the fresh set; a failure keeps the previous rules and is retried at the next
/// refresh.
async fn refresh_rules(sinks: &Sinks, slot: &RwLock<Arc<RuleSet>>, settings: &Settings) {
    match load_rules(&sinks.pool).await {
        Ok(set) => {
            let n = set.len();
            let set = Arc::new(set);
            let before =
                std::mem::replace(&mut *slot.write().expect("rules lock"), set.clone()).len();
            if n != before {
                info!(pipeline = NAME, rules = n, "Alert rules reloaded.");
            }
            if let Err(e) = federation::evaluate(sinks, &set, settings).await {
                warn!(pipeline = NAME, error = %e, "Evaluating federation alert rules failed; retrying after the next refresh.");
            }
            if let Err(e) = health::evaluate(sinks, &set).await {
                warn!(pipeline = NAME, error = %e, "Evaluating vehicle health alert rules failed; retrying after the next refresh.");
            }
        }
        Err(e) => {
            warn!(pipeline = NAME, error = %e, "Reloading alert rules failed; keeping the previous set.")
        }
    }
}

impl AlertsPipeline {
    fn dead_letter(
        &self,
        msg: &InMessage<'_>,
        reason: DeadLetterReason,
        error: String,
        batch: &mut AlertsBatch,
    ) {
        batch
            .dlq
            .push(crate::dlq::dead_letter(NAME, msg, reason, error));
    }
}

impl Pipeline for AlertsPipeline {
    const NAME: &'static str = NAME;
    type State = AlertsState;
    type Batch = AlertsBatch;

    async fn build(cfg: &Config) -> Result<Self> {
        let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 4).await?;
        let initial = load_rules(&pool)
            .await
            .map_err(|e| Error::setup("loading alert rules", e))?;
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
        Ok(AlertsPipeline {
            codec: Codec::from_config(&cfg.schema_registry)
                .map_err(|e| Error::setup("schema registry", e))?,
            sinks,
            settings,
            rules,
            rules_refresh: Duration::from_millis(cfg.alerts.rules_refresh_ms.max(100)),
            cadence: Cadence::new(cfg, cfg.alerts.tick_ms, cfg.alerts.idle_flush_ms),
        })
    }

    fn tick_interval(&self) -> Duration {
        self.cadence.tick
    }

    fn idle_flush(&self) -> Duration {
        self.cadence.idle_flush
    }

    /// Every `alerts.rules_refresh_ms`: re-reads the rules (with memberships and manual
    /// resolves) and evaluates the federation and vehicle health rules, until shutdown.
    fn background(&self, _cfg: &Config, mut shutdown: watch::Receiver<bool>) -> Vec<Background> {
        let (sinks, slot, every, settings) = (
            self.sinks.clone(),
            self.rules.clone(),
            self.rules_refresh,
            self.settings.clone(),
        );
        vec![Box::pin(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    biased;
                    _ = requested(&mut shutdown) => return,
                    _ = tick.tick() => refresh_rules(&sinks, &slot, &settings).await,
                }
            }
        })]
    }

    fn topic(&self) -> &str {
        &self.sinks.topics.metrics
    }

    async fn handle(
        &self,
        state: &mut AlertsState,
        msg: &InMessage<'_>,
        batch: &mut AlertsBatch,
    ) -> Result<()> {
        batch.consumed += 1;
        let rec: WindowMetricsRecord =
            match crate::dlq::decode(&self.codec, msg, SchemaKind::Metrics).await? {
                Decoded::Ok(r) => r,
                Decoded::DeadLetter(reason, error) => {
                    self.dead_letter(msg, reason, error, batch);
                    return Ok(());
                }
            };
        let rules = self.rules.read().expect("rules lock").clone();
        let outcome = batch.record(|t| {
            state.apply_resolves(&rules, t);
            state.on_record(&rules, &self.settings, &rec, t)
        });
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
        batch.record(|t| state.apply_resolves(&rules, t));
    }

    /// Manual resolves reach the pager within a tick even when the partition holding the
    /// instance receives nothing (an idle fleet, a stopped source).
    fn on_tick(&self, state: &mut AlertsState, _partition: i32, batch: &mut AlertsBatch) -> bool {
        let rules = self.rules.read().expect("rules lock").clone();
        batch.record(|t| {
            let before = t.len();
            state.apply_resolves(&rules, t);
            t.len() > before
        })
    }

    async fn flush(&self, batch: &mut AlertsBatch) -> Result<()> {
        if batch.transitions.is_empty()
            && batch.windows.is_empty()
            && batch.frontiers.is_empty()
            && batch.dlq.is_empty()
        {
            return Ok(());
        }
        // PostgreSQL, the ClickHouse history and the alert topic at once: each write is
        // idempotent (upserts, the history's sorting key, the pager's dedup key and seq) and
        // none reads another, so the pager message does not wait for the stores. The offsets
        // are stored only after all three succeed.
        let b = &*batch;
        let (postgres, history, published) = tokio::join!(
            async {
                if b.done.postgres {
                    Ok(())
                } else {
                    self.sinks.write_batch(b).await
                }
            },
            async {
                if b.done.history {
                    Ok(())
                } else {
                    self.sinks.write_history(&b.transitions).await
                }
            },
            async {
                if b.done.published {
                    return Ok(());
                }
                let mut dlq = Vec::with_capacity(b.dlq.len());
                for d in &b.dlq {
                    dlq.push(crate::dlq::encode(&self.codec, &self.sinks.topics, d).await?);
                }
                self.sinks.publish(&b.transitions, dlq).await
            },
        );
        let done = &mut batch.done;
        done.postgres |= postgres.is_ok();
        done.history |= history.is_ok();
        done.published |= published.is_ok();
        postgres?;
        history?;
        published?;
        metrics::counter!(atlasmesh_core::metric_names::ALERT_TRANSITIONS)
            .increment(batch.transitions.len() as u64);
        // Breach to message: from the event time the alert fired at to its message being on
        // the topic (live data only means anything here; a backlog shows as a long response).
        let now = atlasmesh_core::clock::now_ms();
        for t in &batch.transitions {
            if t.message.is_some() && t.transition.kind == TransitionKind::Firing {
                metrics::histogram!(atlasmesh_core::metric_names::ALERT_RESPONSE_SECONDS)
                    .record((now - t.transition.at_ms).max(0) as f64 / 1000.0);
            }
        }
        Ok(())
    }

    fn batch_len(&self, batch: &AlertsBatch) -> usize {
        batch.consumed
    }

    /// A pager message to send (pending and cancelled transitions are history only).
    fn urgent(&self, batch: &AlertsBatch) -> bool {
        batch.paging
    }
}
