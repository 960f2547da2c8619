//! Federation coordination metrics, computed from the resource tables every
//! `resources.coordination_interval_ms` by every worker running the resources pipeline, and
//! upserted into `federation_metrics` (served by `GET /api/v1/fleet-coordination/metrics`):
//! one row per federation, metric and hour (`period_start`..`period_end`), id derived from
//! those, so workers and repeated runs overwrite the same row with the latest value.
//!
//! At the moment of computation, over active shares and allocations (started, not ended):
//! - `sharing_efficiency`: capacity shared within the federation that the target fleets
//!   actually hold (allocations of the target fleet on the shared pool, capped at the share)
//!   ÷ capacity shared;
//! - `cross_fleet_utilization`: units of member fleets' pools allocated to another member fleet
//!   ÷ the capacity of member fleets' pools;
//! - `pool_utilization`: all allocations on member fleets' pools ÷ their capacity;
//! - `shared_capacity`: units shared within the federation.
//!
//! Over the inter-fleet messages (`communication_logs`) sent in the hour before:
//! - `messages_sent`;
//! - `communication_latency_ms`: mean time from send to the broker's acknowledgement of the
//!   relay's publish, over the delivered ones;
//! - `coordination_success_rate`: delivered ÷ sent;
//! - `acknowledgement_rate`: acknowledged by the recipient ÷ delivered.
//!
//! The same figures over all federations go to Prometheus (`atlasmesh_federations`,
//! `atlasmesh_federation_sharing_efficiency`, `atlasmesh_coordination_*_ratio`).
//!
//! A ratio with a zero denominator is not written (no row rather than a made-up 0).

use std::time::Duration;

use atlasmesh_sinks::store::derived_id;
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use tracing::warn;

/// The figures of one federation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FederationUse {
    pub shared: f64,
    pub shared_used: f64,
    pub capacity: f64,
    pub allocated: f64,
    pub cross_allocated: f64,
    /// Messages sent in the last hour, of them delivered and acknowledged, and the mean
    /// delivery latency of the delivered ones.
    pub sent: f64,
    pub delivered: f64,
    pub acknowledged: f64,
    pub latency_ms: Option<f64>,
}

/// The metric rows of one federation: (metric, value).
pub fn metrics(u: &FederationUse) -> Vec<(&'static str, f64)> {
    let ratio = |n: f64, d: f64| (d > 0.0).then(|| n / d);
    let mut out = vec![("shared_capacity", u.shared)];
    if let Some(v) = ratio(u.shared_used, u.shared) {
        out.push(("sharing_efficiency", v));
    }
    if let Some(v) = ratio(u.cross_allocated, u.capacity) {
        out.push(("cross_fleet_utilization", v));
    }
    if let Some(v) = ratio(u.allocated, u.capacity) {
        out.push(("pool_utilization", v));
    }
    if u.sent > 0.0 {
        out.push(("messages_sent", u.sent));
    }
    if let Some(v) = u.latency_ms {
        out.push(("communication_latency_ms", v));
    }
    if let Some(v) = ratio(u.delivered, u.sent) {
        out.push(("coordination_success_rate", v));
    }
    if let Some(v) = ratio(u.acknowledged, u.delivered) {
        out.push(("acknowledgement_rate", v));
    }
    out
}

/// The Prometheus gauges over all federations.
fn publish_totals(all: &[(String, FederationUse)]) {
    use atlasmesh_core::metric_names as m;
    let sum = |f: fn(&FederationUse) -> f64| all.iter().map(|(_, u)| f(u)).sum::<f64>();
    metrics::gauge!(m::FEDERATIONS).set(all.len() as f64);
    let ratio = |n: f64, d: f64| if d > 0.0 { n / d } else { f64::NAN };
    metrics::gauge!(m::SHARING_EFFICIENCY).set(ratio(sum(|u| u.shared_used), sum(|u| u.shared)));
    metrics::gauge!(m::COORDINATION_SUCCESS_RATIO)
        .set(ratio(sum(|u| u.delivered), sum(|u| u.sent)));
    metrics::gauge!(m::COORDINATION_ACK_RATIO)
        .set(ratio(sum(|u| u.acknowledged), sum(|u| u.delivered)));
}

/// Reads every federation's figures.
pub async fn measure(pool: &PgPool) -> Result<Vec<(String, FederationUse)>, sqlx::Error> {
    let rows = sqlx::query(
        "WITH active_allocations AS (
             SELECT * FROM resource_allocations WHERE starts_at <= now() AND (ends_at IS NULL OR ends_at > now())
         ), shares AS (
             SELECT s.federation_id, s.amount::float8 AS amount,
                    least(s.amount, coalesce((SELECT sum(a.amount) FROM active_allocations a
                                              WHERE a.pool_id = s.pool_id AND a.fleet_id = s.target_fleet_id), 0))::float8 AS used
             FROM resource_shares s
             WHERE s.federation_id IS NOT NULL AND s.starts_at <= now() AND (s.ends_at IS NULL OR s.ends_at > now())
         ), member_pools AS (
             SELECT m.federation_id, p.id, p.fleet_id, p.capacity::float8 AS capacity
             FROM federation_members m JOIN resource_pools p ON p.fleet_id = m.fleet_id
         ), pool_use AS (
             SELECT mp.federation_id, sum(mp.capacity) AS capacity,
                    sum(coalesce((SELECT sum(a.amount) FROM active_allocations a WHERE a.pool_id = mp.id), 0))::float8 AS allocated,
                    sum(coalesce((SELECT sum(a.amount) FROM active_allocations a
                                  WHERE a.pool_id = mp.id AND a.fleet_id <> mp.fleet_id
                                    AND a.fleet_id IN (SELECT fleet_id FROM federation_members x WHERE x.federation_id = mp.federation_id)), 0))::float8 AS cross_allocated
             FROM member_pools mp GROUP BY mp.federation_id
         )
         SELECT f.id,
                coalesce((SELECT sum(amount) FROM shares s WHERE s.federation_id = f.id), 0)::float8 AS shared,
                coalesce((SELECT sum(used) FROM shares s WHERE s.federation_id = f.id), 0)::float8 AS shared_used,
                coalesce(u.capacity, 0)::float8 AS capacity,
                coalesce(u.allocated, 0)::float8 AS allocated,
                coalesce(u.cross_allocated, 0)::float8 AS cross_allocated,
                coalesce(c.sent, 0)::float8 AS sent,
                coalesce(c.delivered, 0)::float8 AS delivered,
                coalesce(c.acknowledged, 0)::float8 AS acknowledged,
                c.latency_ms
         FROM federations f LEFT JOIN pool_use u ON u.federation_id = f.id
         LEFT JOIN (
             SELECT federation_id, count(*) AS sent, count(delivered_at) AS delivered,
                    count(acknowledged_at) AS acknowledged,
                    (avg(extract(epoch FROM delivered_at - sent_at)) * 1000)::float8 AS latency_ms
             FROM communication_logs WHERE sent_at >= now() - interval '1 hour'
             GROUP BY federation_id
         ) c ON c.federation_id = f.id
         ORDER BY f.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get("id"),
                FederationUse {
                    shared: r.get("shared"),
                    shared_used: r.get("shared_used"),
                    capacity: r.get("capacity"),
                    allocated: r.get("allocated"),
                    cross_allocated: r.get("cross_allocated"),
                    sent: r.get("sent"),
                    delivered: r.get("delivered"),
                    acknowledged: r.get("acknowledged"),
                    latency_ms: r.get("latency_ms"),
                },
            )
        })
        .collect())
}

/// Computes and upserts every federation's metrics for the current hour. Returns rows written.
pub async fn record(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut written = 0;
    let hour: i64 =
        sqlx::query_scalar("SELECT (extract(epoch from date_trunc('hour', now())) * 1000)::bigint")
            .fetch_one(pool)
            .await?;
    let all = measure(pool).await?;
    publish_totals(&all);
    for (federation, u) in all {
        for (metric, value) in metrics(&u) {
            let id = derived_id(&["federation_metric", &federation, metric, &hour.to_string()]);
            sqlx::query(
                "INSERT INTO federation_metrics (id, federation_id, metric, value, period_start, period_end)
                 VALUES ($1, $2, $3, $4, to_timestamp($5::double precision / 1000), to_timestamp($5::double precision / 1000) + interval '1 hour')
                 ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated_at = now()",
            )
            .bind(&id)
            .bind(&federation)
            .bind(metric)
            .bind(value)
            .bind(hour as f64)
            .execute(pool)
            .await?;
            written += 1;
        }
    }
    Ok(written)
}

/// Runs [`record`] every `interval` until `shutdown` turns true; a failure is logged and
/// retried at the next tick (the metrics are a snapshot, nothing is lost by waiting).
pub async fn run(pool: PgPool, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = record(&pool).await {
                    warn!(error = %e, "Federation coordination metrics not computed; retrying at the next tick.");
                }
            }
            _ = crate::runner::requested(&mut shutdown) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_need_a_denominator() {
        let u = FederationUse {
            shared: 10.0,
            shared_used: 4.0,
            capacity: 40.0,
            allocated: 30.0,
            cross_allocated: 6.0,
            ..FederationUse::default()
        };
        assert_eq!(
            metrics(&u),
            [
                ("shared_capacity", 10.0),
                ("sharing_efficiency", 0.4),
                ("cross_fleet_utilization", 0.15),
                ("pool_utilization", 0.75)
            ]
        );
        let empty = FederationUse::default();
        assert_eq!(metrics(&empty), [("shared_capacity", 0.0)]);
        let talk = FederationUse {
            sent: 4.0,
            delivered: 4.0,
            acknowledged: 1.0,
            latency_ms: Some(120.0),
            ..FederationUse::default()
        };
        assert_eq!(
            metrics(&talk),
            [
                ("shared_capacity", 0.0),
                ("messages_sent", 4.0),
                ("communication_latency_ms", 120.0),
                ("coordination_success_rate", 1.0),
                ("acknowledgement_rate", 0.25)
            ]
        );
    }
}
