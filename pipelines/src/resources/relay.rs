//! The coordination relay: publishes inter-fleet messages (`communication_logs` rows the
//! command worker wrote) on `topics.coordination`, Avro, keyed by the recipient fleet, and
//! records their delivery (`delivered_at`, status `delivered` unless already acknowledged)
//! once the broker acknowledged them. A transactional outbox: the rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, so several workers relay side by side without sending a row
//! twice; a crash between the broker's acknowledgement and the commit sends it again (at
//! least once: consumers deduplicate by `id`). A broker or registry that is down leaves the
//! rows for the next round.

use std::time::Duration;

use atlasmesh_core::domain::coordination::CommunicationKind;
use atlasmesh_core::metric_names as m;
use atlasmesh_schemas::{Codec, CoordinationRecord, SchemaKind};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{Error, Result};

/// Rows claimed per round.
const BATCH: i64 = 500;

/// Publishes one batch of undelivered messages; returns how many were delivered.
pub async fn relay_once(
    pool: &PgPool,
    producer: &KafkaProducer,
    codec: &Codec,
    topic: &str,
) -> Result<usize> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT id, message_id, conversation_id, federation_id, fleet_id, target_fleet_id, kind,
                body::text AS body_json, (extract(epoch FROM sent_at) * 1000)::bigint AS sent_at_ms
         FROM communication_logs WHERE delivered_at IS NULL
         ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut records = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    let mut sent = Vec::with_capacity(rows.len());
    for r in &rows {
        let kind: String = r.get("kind");
        let kind: CommunicationKind = serde_json::from_value(serde_json::Value::String(kind))
            .map_err(|e| Error::Internal(format!("communication kind: {e}")))?;
        let rec = CoordinationRecord {
            id: r.get("id"),
            message_id: r.get("message_id"),
            conversation_id: r.get("conversation_id"),
            federation_id: r.get("federation_id"),
            from_fleet_id: r.get("fleet_id"),
            to_fleet_id: r.get("target_fleet_id"),
            kind,
            body_json: r.get("body_json"),
            sent_at_ms: r.get("sent_at_ms"),
        };
        let payload = codec
            .encode(topic, SchemaKind::Coordination, &rec)
            .await
            .map_err(|e| Error::encode("coordination message", &e))?;
        records.push(OutRecord {
            topic: topic.to_string(),
            key: Some(rec.to_fleet_id.clone().into_bytes()),
            payload,
            headers: vec![],
            partition: None,
            timestamp_ms: None,
        });
        sent.push(rec.sent_at_ms);
        ids.push(rec.id);
    }
    producer.send_all("kafka", &records).await?;
    let delivered_ms: Vec<i64> = sqlx::query_scalar(
        "UPDATE communication_logs
         SET delivered_at = now(),
             status = CASE WHEN status = 'sent' THEN 'delivered' ELSE status END,
             updated_at = now()
         WHERE id = ANY($1)
         RETURNING (extract(epoch FROM delivered_at) * 1000)::bigint",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some(at) = delivered_ms.first() {
        for s in &sent {
            metrics::histogram!(m::COMMUNICATION_LATENCY_SECONDS)
                .record((at - s).max(0) as f64 / 1000.0);
        }
    }
    metrics::counter!(m::COMMUNICATIONS_DELIVERED).increment(ids.len() as u64);
    Ok(ids.len())
}

/// Relays every `interval` (at once again after a full batch) until `shutdown` turns true.
pub async fn run(
    pool: PgPool,
    producer: KafkaProducer,
    codec: Codec,
    topic: String,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let wait = match relay_once(&pool, &producer, &codec, &topic).await {
            Ok(n) if n as i64 == BATCH => Duration::ZERO,
            Ok(n) => {
                if n > 0 {
                    debug!(delivered = n, "Inter-fleet messages relayed.");
                }
                interval
            }
            Err(e) => {
                warn!(error = %e, "Relaying inter-fleet messages failed; retrying.");
                interval.max(Duration::from_secs(1))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::runner::requested(&mut shutdown) => return,
        }
    }
}
