//! Dead letters, shared by every pipeline: the envelope of a message that cannot be processed
//! and its encoding for `fleet.dlq.v1` (the original bytes plus reason and source headers).

use atlasmesh_core::clock::now_ms;
use atlasmesh_core::config::Topics;
use atlasmesh_core::metric_names as m;
use atlasmesh_schemas::{Codec, DeadLetterReason, DeadLetterRecord, SchemaKind};
use atlasmesh_sinks::kafka::OutRecord;

use crate::runner::InMessage;
use crate::{Error, Result};

/// At most this many dead-letter log lines per second (per process); the rest are counted and
/// the next line says how many were left out. The metric counts every one.
const DLQ_LOGS_PER_SECOND: u32 = 10;

/// A per-second budget of log lines: `allow` answers whether this line may be written and, if
/// so, how many were suppressed since the last one written.
#[derive(Debug, Default)]
struct LogBudget {
    second: u64,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    fn allow(&mut self, now_ms: i64, per_second: u32) -> Option<u64> {
        let second = u64::try_from(now_ms.max(0)).unwrap_or(0) / 1000;
        if second != self.second {
            self.second = second;
            self.used = 0;
        }
        if self.used >= per_second {
            self.suppressed += 1;
            return None;
        }
        self.used += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

static LOG_BUDGET: std::sync::Mutex<LogBudget> = std::sync::Mutex::new(LogBudget {
    second: 0,
    used: 0,
    suppressed: 0,
});

/// The dead letter of `msg`: counted in `atlasmesh_dlq_messages_total{pipeline, topic, reason}`
/// and logged (at most `DLQ_LOGS_PER_SECOND` lines a second) with its source position.
pub fn dead_letter(
    pipeline: &'static str,
    msg: &InMessage<'_>,
    reason: DeadLetterReason,
    error: String,
) -> DeadLetterRecord {
    metrics::counter!(
        m::DLQ_MESSAGES,
        "pipeline" => pipeline,
        "topic" => msg.topic.to_string(),
        "reason" => reason.as_str()
    )
    .increment(1);
    let now = now_ms();
    let allowed = LOG_BUDGET
        .lock()
        .map(|mut b| b.allow(now, DLQ_LOGS_PER_SECOND))
        .unwrap_or(None);
    if let Some(suppressed) = allowed {
        tracing::warn!(
            pipeline,
            topic = %msg.topic,
            partition = msg.partition,
            offset = msg.offset,
            reason = reason.as_str(),
            error = %error,
            suppressed_since_last = suppressed,
            "Message dead-lettered."
        );
    }
    DeadLetterRecord {
        source_topic: msg.topic.to_string(),
        source_partition: msg.partition,
        source_offset: msg.offset,
        pipeline: pipeline.into(),
        reason,
        error,
        original_key: msg.key.map(<[u8]>::to_vec),
        original_value: msg.payload.map(<[u8]>::to_vec),
        failed_at_ms: now,
    }
}

/// Encodes a dead letter for the DLQ topic, keyed by the original key, with headers naming
/// the reason and the source position.
pub async fn encode(codec: &Codec, topics: &Topics, d: &DeadLetterRecord) -> Result<OutRecord> {
    let payload = codec
        .encode(&topics.dlq, SchemaKind::Dlq, d)
        .await
        .map_err(|e| Error::encode("dead letter", &e))?;
    Ok(OutRecord {
        topic: topics.dlq.clone(),
        key: d.original_key.clone(),
        payload,
        headers: vec![
            ("error".into(), d.error.clone().into_bytes()),
            ("reason".into(), d.reason.as_str().as_bytes().to_vec()),
            ("source.topic".into(), d.source_topic.clone().into_bytes()),
            (
                "source.partition".into(),
                d.source_partition.to_string().into_bytes(),
            ),
            (
                "source.offset".into(),
                d.source_offset.to_string().into_bytes(),
            ),
        ],
        partition: None,
        timestamp_ms: None,
    })
}

/// What decoding a message gave: its record, or why it belongs in the DLQ.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<T> {
    Ok(T),
    DeadLetter(DeadLetterReason, String),
}

impl<T> Decoded<T> {
    /// A record `invalid` refuses becomes a dead letter with reason `invalid`.
    pub fn validate(self, invalid: impl Fn(&T) -> Option<String>) -> Decoded<T> {
        match self {
            Decoded::Ok(r) => match invalid(&r) {
                Some(why) => Decoded::DeadLetter(DeadLetterReason::Invalid, why),
                None => Decoded::Ok(r),
            },
            dead => dead,
        }
    }
}

/// Decodes the Avro record of `kind`'s topic in `msg`. An error means the schema registry is
/// unreachable (retriable); a message that cannot be decoded is [`Decoded::DeadLetter`].
pub async fn decode<T: serde::de::DeserializeOwned + 'static>(
    codec: &Codec,
    msg: &InMessage<'_>,
    kind: SchemaKind,
) -> Result<Decoded<T>> {
    let Some(payload) = msg.payload else {
        return Ok(tombstone());
    };
    match codec.decode_record(payload, kind).await {
        Ok(r) => Ok(Decoded::Ok(r)),
        Err(e) => refused(e),
    }
}

/// As [`decode`] for a telemetry event, into `ev` whatever it held (its text buffers
/// reused): `Decoded::Ok(())` when `ev` holds the message's event.
pub async fn decode_telemetry_into(
    codec: &Codec,
    last: &mut atlasmesh_schemas::LastWriter,
    msg: &InMessage<'_>,
    ev: &mut atlasmesh_core::TelemetryEvent,
) -> Result<Decoded<()>> {
    let Some(payload) = msg.payload else {
        return Ok(tombstone());
    };
    match codec.decode_telemetry_with(last, payload, ev).await {
        Ok(()) => Ok(Decoded::Ok(())),
        Err(e) => refused(e),
    }
}

fn tombstone<T>() -> Decoded<T> {
    Decoded::DeadLetter(
        DeadLetterReason::Undecodable,
        "empty payload (tombstone)".into(),
    )
}

/// A decode error as a dead letter, or as a retriable error when the registry is unreachable.
fn refused<T>(e: atlasmesh_schemas::DecodeError) -> Result<Decoded<T>> {
    use atlasmesh_schemas::DecodeError;
    match e {
        DecodeError::Unavailable(e) => Err(Error::Unavailable(format!("schema registry: {e}"))),
        e @ DecodeError::Invalid(_) => Ok(Decoded::DeadLetter(
            DeadLetterReason::Invalid,
            e.to_string(),
        )),
        e @ DecodeError::UnknownSchema { .. } => Ok(Decoded::DeadLetter(
            DeadLetterReason::UnknownSchema,
            e.to_string(),
        )),
        e => Ok(Decoded::DeadLetter(
            DeadLetterReason::Undecodable,
            e.to_string(),
        )),
    }
}

/// Like [`decode`], and a record that decodes but `invalid` refuses is a dead letter with
/// reason `invalid`.
pub async fn decode_valid<T: serde::de::DeserializeOwned + 'static>(
    codec: &Codec,
    msg: &InMessage<'_>,
    kind: SchemaKind,
    invalid: impl Fn(&T) -> Option<String>,
) -> Result<Decoded<T>> {
    Ok(decode::<T>(codec, msg, kind).await?.validate(invalid))
}

/// [`decode_valid`], with a dead letter pushed onto `dlq` (and `None` returned): the shape of
/// every pipeline's `handle` for a topic of events.
pub async fn decode_or_dead_letter<T: serde::de::DeserializeOwned + 'static>(
    pipeline: &'static str,
    codec: &Codec,
    msg: &InMessage<'_>,
    kind: SchemaKind,
    invalid: impl Fn(&T) -> Option<String>,
    dlq: &mut Vec<DeadLetterRecord>,
) -> Result<Option<T>> {
    Ok(match decode_valid(codec, msg, kind, invalid).await? {
        Decoded::Ok(r) => Some(r),
        Decoded::DeadLetter(reason, error) => {
            dlq.push(dead_letter(pipeline, msg, reason, error));
            None
        }
    })
}

/// [`encode`] for every dead letter of a batch.
pub async fn encode_all(
    codec: &Codec,
    topics: &Topics,
    dead: &[DeadLetterRecord],
) -> Result<Vec<OutRecord>> {
    let mut out = Vec::with_capacity(dead.len());
    for d in dead {
        out.push(encode(codec, topics, d).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::LogBudget;

    #[test]
    fn log_budget_allows_n_per_second_and_reports_the_suppressed() {
        let mut b = LogBudget::default();
        let t0 = 5_000_000;
        let allowed: Vec<Option<u64>> = (0..5).map(|i| b.allow(t0 + i, 3)).collect();
        assert_eq!(allowed, vec![Some(0), Some(0), Some(0), None, None]);
        // Next second: allowed again, and the first line says 2 were left out.
        assert_eq!(b.allow(t0 + 1_000, 3), Some(2));
        assert_eq!(b.allow(t0 + 1_001, 3), Some(0));
    }
}
