//! Federation alert rules: evaluated on the sum of the settled fleet windows of the member
//! fleets (`federation_members`, re-read with the rules).
//!
//! Member fleets are spread over the partitions of `fleet.metrics.v1` (keyed by fleet), so no
//! single partition sees a federation. Instead, every partition hands the fleet windows it
//! settles for federated fleets to its flush, which stores them in `alert_fleet_windows`
//! (final, `ON CONFLICT DO NOTHING`). After every rules refresh, one worker at a time (the
//! holder of a transaction-scoped advisory lock) runs [`evaluate`]: for each federation rule it
//! reads its state (`alert_federation_state`) and the member windows after its settled mark,
//! settles the federation windows that every metrics partition has passed (each partition
//! records its settle frontier in `alert_settle_frontier`, in the transaction that stores its
//! windows) and evaluates them with [`state::evaluate_federation`] (semantics there and in
//! [`state::settle_federation`]), applies a due manual resolve, and in one
//! transaction records the transitions (as the partitions do) and the new state. The alert
//! topic and the ClickHouse history are written before that commit: if the commit fails the
//! same transitions are computed again with the same seqs (duplicates a consumer drops by seq;
//! ClickHouse collapses them), and PostgreSQL holds each transition exactly once.
//!
//! Latency: a federation window is judged within one `alerts.rules_refresh_ms` of the last
//! member window it needs being flushed by its partition (a checkpoint interval).

use std::sync::atomic::{AtomicU64, Ordering};

use atlasmesh_core::analytics::alert::AlertState;
use atlasmesh_core::window::Counters;
use sqlx::Row;
use tracing::debug;

use super::state::{self, FederationState, SettledWindow};
use super::{RuleSet, Settings, Sinks, NAME};
use crate::{Error, Result};

/// Advisory lock key: one federation evaluator at a time across all workers.
const LOCK_KEY: &str = "atlasmesh.alerts.federation";

static RUNS: AtomicU64 = AtomicU64::new(0);

/// The minimum of the metrics partitions' settle frontiers, once each of the `partitions`
/// partitions has one.
fn federation_frontier(rows: &[(i32, i64)], partitions: i32) -> Option<i64> {
    (0..partitions)
        .map(|p| rows.iter().find(|r| r.0 == p).map(|r| r.1))
        .collect::<Option<Vec<i64>>>()?
        .into_iter()
        .min()
}

/// Evaluates every federation rule once (see the module docs). Returns the number of
/// transitions recorded.
pub async fn evaluate(sinks: &Sinks, rules: &RuleSet, s: &Settings) -> Result<usize> {
    if rules.federation_rules().is_empty() {
        return Ok(0);
    }
    let mut tx = sinks.pool.begin().await?;
    if !super::store::try_xact_lock(&mut tx, LOCK_KEY).await? {
        debug!(
            pipeline = NAME,
            "Another worker evaluates the federation rules."
        );
        return Ok(0);
    }
    // Every metrics partition's settle frontier; the minimum once all have one.
    let rows: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, frontier_ms FROM alert_settle_frontier WHERE topic = $1")
            .bind(&sinks.topics.metrics)
            .fetch_all(&mut *tx)
            .await?;
    let frontier = federation_frontier(&rows, sinks.metrics_partitions);
    let mut out = Vec::new();
    for lr in rules.federation_rules() {
        let Some(fed) = lr.federation_id.as_deref() else {
            continue;
        };
        let members = rules.members(fed);
        let row = sqlx::query(
            "SELECT state, seq, clock_ms, settled_through_ms FROM alert_federation_state
             WHERE rule_id = $1 AND federation_id = $2 FOR UPDATE",
        )
        .bind(&lr.rule.id)
        .bind(fed)
        .fetch_optional(&mut *tx)
        .await?;
        let (mut st, fresh) = match row {
            Some(r) => {
                let state: AlertState = serde_json::from_value(r.get("state"))
                    .map_err(|e| Error::Internal(format!("alert_federation_state.state: {e}")))?;
                let st = FederationState {
                    state,
                    seq: r.get::<i64, _>("seq").max(0) as u64,
                    clock_ms: r.get("clock_ms"),
                    settled_through_ms: r.get("settled_through_ms"),
                };
                (st, false)
            }
            None => (FederationState::default(), true),
        };
        let windows: Vec<SettledWindow> = sqlx::query(
            "SELECT fleet_id, window_start_ms, window_end_ms, counters FROM alert_fleet_windows
             WHERE fleet_id = ANY($1) AND ($2::bigint IS NULL OR window_start_ms > $2::bigint)
             ORDER BY window_start_ms, fleet_id",
        )
        .bind(members.to_vec())
        .bind(st.settled_through_ms)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| -> Result<SettledWindow> {
            Ok(SettledWindow {
                fleet_id: r.get("fleet_id"),
                start_ms: r.get("window_start_ms"),
                end_ms: r.get("window_end_ms"),
                counters: serde_json::from_value::<Counters>(r.get("counters"))
                    .map_err(|e| Error::Internal(format!("alert_fleet_windows.counters: {e}")))?,
            })
        })
        .collect::<Result<_>>()?;
        let before = st.clone();
        let resolve = rules.resolve_request(&lr.rule.id, fed);
        state::evaluate_federation(
            lr, members, &mut st, fresh, &windows, frontier, resolve, s, &mut out,
        );
        if fresh || st != before {
            sqlx::query(
                "INSERT INTO alert_federation_state (rule_id, federation_id, state, seq, clock_ms, settled_through_ms, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, now())
                 ON CONFLICT (rule_id, federation_id) DO UPDATE SET state = excluded.state, seq = excluded.seq,
                    clock_ms = excluded.clock_ms, settled_through_ms = excluded.settled_through_ms, updated_at = now()",
            )
            .bind(&lr.rule.id)
            .bind(fed)
            .bind(serde_json::to_value(&st.state).expect("alert state serialises"))
            .bind(st.seq as i64)
            .bind(st.clock_ms)
            .bind(st.settled_through_ms)
            .execute(&mut *tx)
            .await?;
        }
    }
    Sinks::write_transitions(&mut tx, &out).await?;
    if RUNS.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
        // Stored member windows are kept a day (processing time).
        sqlx::query("DELETE FROM alert_fleet_windows WHERE recorded_at < now() - interval '1 day'")
            .execute(&mut *tx)
            .await?;
    }
    if !out.is_empty() {
        sinks.write_history(&out).await?;
        sinks.publish(&out, Vec::new()).await?;
        metrics::counter!(atlasmesh_core::metric_names::ALERT_TRANSITIONS)
            .increment(out.len() as u64);
    }
    tx.commit().await?;
    Ok(out.len())
}

#[cfg(test)]
mod tests {
    use super::federation_frontier;

    #[test]
    fn the_frontier_needs_every_partition() {
        assert_eq!(federation_frontier(&[], 2), None);
        assert_eq!(federation_frontier(&[(0, 5)], 2), None);
        assert_eq!(federation_frontier(&[(1, 3), (0, 5), (7, 1)], 2), Some(3));
    }
}
