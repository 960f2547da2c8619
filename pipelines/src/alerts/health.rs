//! Vehicle alert rules on the daily vehicle health metrics (`vehicle_health_score`,
//! `failure_risk`, `days_to_soh_threshold`; defined in
//! `atlasmesh_core::analytics::metrics`, vehicle rules only): evaluated on the rows the health
//! pipeline streams into PostgreSQL, with the same state machine as every other rule.
//!
//! **What is read.** Per vehicle and closed UTC day the health pipeline writes (`source =
//! 'stream'`, migration 0018):
//! - `vehicle_health_score`: `analytics_health_scores.score` of the vehicle's row for that day
//!   (`vehicle_id` set), stamped with the end of the day (`period_end`); the row is created
//!   when the vehicle closes the day and re-written (higher `version`) when another vehicle of
//!   the fleet closes it (the fleet-relative efficiency component moves with the fleet's
//!   median);
//! - `failure_risk` / `days_to_soh_threshold`: `analytics_predictions.value` of kind
//!   `failure_risk` / `soh_threshold`, the newest prediction per vehicle and kind (one row,
//!   re-written each day), stamped with its `as_of` (the end of the day it was made on); a
//!   prediction overwritten twice between two runs is judged at its newest value only (the
//!   table keeps no history; a run happens every few seconds, a prediction once a day). A
//!   NULL value (for `soh_threshold`: not degrading) is no data: the vehicle's machine is left
//!   as it is (a firing alert stays firing until a value clears it or an operator resolves it;
//!   a NULL must not resolve an alert, since "no crossing ahead" is also what a battery
//!   already below the threshold shows).
//!
//! **When.** After every rules refresh (`alerts.rules_refresh_ms`) one worker at a time (the
//! holder of a transaction-scoped advisory lock, like [`super::federation`]) runs
//! [`evaluate`]: for each such rule it reads the rows of the rule's fleet that are newer (in
//! event time) than each vehicle's clock, and judges them with
//! [`state::evaluate_health`] in event-time order; a vehicle's machine is stepped once per
//! daily value, so `for_ms` / `keep_firing_for_ms` / `resend_interval_ms` count in the event
//! time of the daily values (`for_ms` = 2 days fires on the third breaching day in a row).
//! Latency: a value is judged within one refresh of the health pipeline committing it.
//!
//! **Once per day.** A day's value is judged once, when the engine first sees the day, with
//! the version the row has then; a re-written row (higher version, same day) is not judged
//! again, so it cannot produce a duplicate or a contradicting transition: alert timelines
//! never go back in time (as with late revisions of vehicle windows). The difference a
//! re-write makes is the fleet-median part of the score, which the vehicle's next day
//! carries; the clear threshold's hysteresis band keeps a borderline vehicle from flapping.
//! Likewise a day older than the vehicle's clock (it arrived after a newer one) is skipped.
//!
//! **Finding new rows.** Each vehicle's clock (`alert_health_state.clock_ms`, the event time
//! of its last judged value) decides what is judged. To avoid scanning a fleet's whole
//! history every refresh, health scores are looked up by `created_at` (a vehicle-day's row is
//! created once, when the vehicle closes the day): rows created after the previous run's
//! start (`alert_health_marks.scanned_to`) less [`REREAD_GRACE`], which covers a writer's
//! transaction that began before that run and committed after it (the clocks make the
//! re-read harmless). Predictions are one row per vehicle and kind, read in full each time.
//!
//! **New rules.** A health-score rule the engine sees for the first time (or whose metric
//! changed) judges each vehicle's newest day present then, so a vehicle already below the
//! threshold alerts within a refresh rather than a day later; older days are not replayed. A
//! prediction rule judges the current prediction of each vehicle likewise.
//!
//! **No silence ticks.** Unlike vehicle windows, a vehicle without a row for a day (parked,
//! offline) says nothing about its health, so its machine is not advanced by others' days: a
//! firing alert resolves on the vehicle's own clear values (after `keep_firing_for_ms`), or
//! by hand.
//!
//! **Recording.** Exactly as [`super::federation`]: in one transaction the transitions go to
//! `alert_transitions` / `alert_instances` (via [`Sinks::write_transitions`]) with the new
//! per-vehicle state (`alert_health_state`) and the rule's mark; the paged ones are published
//! on the alert topic (header and `payload.custom_details.seq`) and every one written to the
//! ClickHouse `alert_history` before that commit (a failed commit recomputes the same
//! transitions with the same seqs: duplicates a consumer drops by seq; ClickHouse collapses
//! them). Manual resolves are applied at the vehicle's clock before the new values. A
//! vehicle's first instance continues the seq of an existing `alert_instances` row for its
//! dedup key (a rule whose metric changed from a window metric).

use std::collections::{BTreeMap, BTreeSet};

use atlasmesh_core::analytics::alert::{self, AlertState};
use atlasmesh_core::analytics::metrics::{self as metric_defs, HealthSeries};
use sqlx::{PgConnection, Row};
use tracing::debug;

use super::state::{self, DailyValue, HealthInstance, LoadedRule};
use super::{RuleSet, Sinks, NAME};
use crate::{Error, Result};

/// Advisory lock key: one health evaluator at a time across all workers.
const LOCK_KEY: &str = "atlasmesh.alerts.health";

/// How far before the previous run's start health-score rows are read again (PostgreSQL
/// interval): longer than any transaction of the health pipeline's flush.
pub const REREAD_GRACE: &str = "15 minutes";

/// The rows of `series` of `lr`'s fleet newer than each vehicle's clock (see the module
/// docs). `fresh`: the rule is seen for the first time (or watches another metric now);
/// otherwise its mark row (`alert_health_marks`) holds the previous run's start.
async fn read_values(
    conn: &mut PgConnection,
    lr: &LoadedRule,
    series: HealthSeries,
    fresh: bool,
) -> Result<Vec<DailyValue>> {
    // Event time in epoch ms; the vehicle's clock join; the rows of the fleet.
    const SCORE: &str = "SELECT h.vehicle_id, (extract(epoch FROM h.period_end) * 1000)::bigint AS at_ms, h.score AS value
         FROM analytics_health_scores h
         LEFT JOIN alert_health_state s ON s.rule_id = $2 AND s.subject = h.vehicle_id
         WHERE h.fleet_id = $1 AND h.source = 'stream' AND h.vehicle_id IS NOT NULL
           AND (s.clock_ms IS NULL OR (extract(epoch FROM h.period_end) * 1000)::bigint > s.clock_ms)";
    let query = match prediction_kind(series) {
        Some(kind) => sqlx::query(
            "SELECT p.vehicle_id, (extract(epoch FROM p.as_of) * 1000)::bigint AS at_ms, p.value
             FROM analytics_predictions p
             LEFT JOIN alert_health_state s ON s.rule_id = $2 AND s.subject = p.vehicle_id
             WHERE p.fleet_id = $1 AND p.source = 'stream' AND p.kind = $3
               AND (s.clock_ms IS NULL OR (extract(epoch FROM p.as_of) * 1000)::bigint > s.clock_ms)",
        )
        .bind(&lr.fleet_id)
        .bind(&lr.rule.id)
        .bind(kind)
        .fetch_all(&mut *conn)
        .await?,
        // Each vehicle's newest day.
        None if fresh => sqlx::query(&format!(
            "SELECT DISTINCT ON (vehicle_id) * FROM ({SCORE}) v ORDER BY vehicle_id, at_ms DESC"
        ))
        .bind(&lr.fleet_id)
        .bind(&lr.rule.id)
        .fetch_all(&mut *conn)
        .await?,
        None => sqlx::query(&format!(
            "{SCORE} AND h.created_at > (SELECT m.scanned_to FROM alert_health_marks m WHERE m.rule_id = $2)
                                        - interval '{REREAD_GRACE}'"
        ))
        .bind(&lr.fleet_id)
        .bind(&lr.rule.id)
        .fetch_all(&mut *conn)
        .await?,
    };
    Ok(query
        .into_iter()
        .map(|r| DailyValue {
            vehicle_id: r.get("vehicle_id"),
            at_ms: r.get("at_ms"),
            value: r.get("value"),
        })
        .collect())
}

/// The `analytics_predictions.kind` of a prediction series (`None` for the health score).
fn prediction_kind(series: HealthSeries) -> Option<&'static str> {
    match series {
        HealthSeries::Score => None,
        HealthSeries::FailureRisk => Some("failure_risk"),
        HealthSeries::DaysToSohThreshold => Some("soh_threshold"),
    }
}

/// The stored state of `rule_id` for `subjects` (locked for the transaction); subjects
/// without one start inactive, continuing the seq of an existing alert instance.
async fn load_instances(
    conn: &mut PgConnection,
    rule_id: &str,
    subjects: &BTreeSet<String>,
) -> Result<BTreeMap<String, HealthInstance>> {
    let subjects: Vec<String> = subjects.iter().cloned().collect();
    let mut out = BTreeMap::new();
    for r in sqlx::query(
        "SELECT subject, state, seq, clock_ms FROM alert_health_state
         WHERE rule_id = $1 AND subject = ANY($2) FOR UPDATE",
    )
    .bind(rule_id)
    .bind(&subjects)
    .fetch_all(&mut *conn)
    .await?
    {
        let state: AlertState = serde_json::from_value(r.get("state"))
            .map_err(|e| Error::Internal(format!("alert_health_state.state: {e}")))?;
        out.insert(
            r.get::<String, _>("subject"),
            HealthInstance {
                state,
                seq: r.get::<i64, _>("seq").max(0) as u64,
                clock_ms: r.get("clock_ms"),
            },
        );
    }
    let missing: BTreeMap<String, String> = subjects
        .iter()
        .filter(|s| !out.contains_key(*s))
        .map(|s| (alert::dedup_key(rule_id, s), s.clone()))
        .collect();
    if !missing.is_empty() {
        let seqs: Vec<(String, i64)> = sqlx::query_as(
            "SELECT dedup_key, last_transition_seq FROM alert_instances WHERE dedup_key = ANY($1)",
        )
        .bind(missing.keys().cloned().collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        for (key, seq) in seqs {
            if let Some(subject) = missing.get(&key) {
                out.insert(
                    subject.clone(),
                    HealthInstance {
                        seq: seq.max(0) as u64,
                        ..HealthInstance::default()
                    },
                );
            }
        }
    }
    Ok(out)
}

/// Evaluates every vehicle rule on a daily vehicle health metric once (see the module
/// docs). Returns the number of transitions recorded.
pub async fn evaluate(sinks: &Sinks, rules: &RuleSet) -> Result<usize> {
    if rules.health_rules().is_empty() {
        return Ok(0);
    }
    let mut tx = sinks.pool.begin().await?;
    if !super::store::try_xact_lock(&mut tx, LOCK_KEY).await? {
        debug!(
            pipeline = NAME,
            "Another worker evaluates the vehicle health rules."
        );
        return Ok(0);
    }
    let mut out = Vec::new();
    for lr in rules.health_rules() {
        let Some(series) = metric_defs::health_series(&lr.rule.metric) else {
            continue;
        };
        let marked: Option<String> = sqlx::query_scalar(
            "SELECT metric FROM alert_health_marks WHERE rule_id = $1 FOR UPDATE",
        )
        .bind(&lr.rule.id)
        .fetch_optional(&mut *tx)
        .await?;
        // A rule seen for the first time, or now watching another metric, starts afresh.
        let fresh = marked.as_deref() != Some(lr.rule.metric.as_str());
        let values = read_values(&mut tx, lr, series, fresh).await?;
        let resolves: Vec<_> = rules.resolves_for(&lr.rule.id).collect();
        let subjects: BTreeSet<String> = values
            .iter()
            .map(|v| v.vehicle_id.clone())
            .chain(resolves.iter().map(|r| r.subject.clone()))
            .collect();
        let mut instances = load_instances(&mut tx, &lr.rule.id, &subjects).await?;
        let before = instances.clone();
        state::evaluate_health(lr, &mut instances, &values, resolves, &mut out);
        for (subject, inst) in &instances {
            if before.get(subject) == Some(inst) {
                continue;
            }
            sqlx::query(
                "INSERT INTO alert_health_state (rule_id, subject, state, seq, clock_ms, updated_at)
                 VALUES ($1, $2, $3, $4, $5, now())
                 ON CONFLICT (rule_id, subject) DO UPDATE SET state = excluded.state, seq = excluded.seq,
                    clock_ms = excluded.clock_ms, updated_at = now()",
            )
            .bind(&lr.rule.id)
            .bind(subject)
            .bind(serde_json::to_value(&inst.state).expect("alert state serialises"))
            .bind(inst.seq as i64)
            .bind(inst.clock_ms)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO alert_health_marks (rule_id, metric, scanned_to, updated_at) VALUES ($1, $2, now(), now())
             ON CONFLICT (rule_id) DO UPDATE SET metric = excluded.metric, scanned_to = excluded.scanned_to,
                updated_at = now()",
        )
        .bind(&lr.rule.id)
        .bind(&lr.rule.metric)
        .execute(&mut *tx)
        .await?;
    }
    Sinks::write_transitions(&mut tx, &out).await?;
    if !out.is_empty() {
        sinks.write_history(&out).await?;
        sinks.publish(&out, Vec::new()).await?;
        metrics::counter!(atlasmesh_core::metric_names::ALERT_TRANSITIONS)
            .increment(out.len() as u64);
    }
    tx.commit().await?;
    Ok(out.len())
}
