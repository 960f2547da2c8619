//! Dead letters, shared by every pipeline: the envelope of a message that cannot be processed
//! and its encoding for `fleet.dlq.v1` (the original bytes plus reason and source headers).

use atlasmesh_core::clock::now_ms;
use atlasmesh_core::config::Topics;
use atlasmesh_core::metric_names as m;
use atlasmesh_schemas::{Codec, DeadLetterReason, DeadLetterRecord, SchemaKind};
use atlasmesh_sinks::kafka::OutRecord;

use crate::runner::InMessage;
use crate::{Error, Result};

/// The dead letter of `msg`, counted in the DLQ metric.
pub fn dead_letter(
    pipeline: &'static str,
    msg: &InMessage,
    reason: DeadLetterReason,
    error: String,
) -> DeadLetterRecord {
    metrics::counter!(m::DLQ_MESSAGES, "pipeline" => pipeline, "reason" => reason.as_str())
        .increment(1);
    DeadLetterRecord {
        source_topic: msg.topic.clone(),
        source_partition: msg.partition,
        source_offset: msg.offset,
        pipeline: pipeline.into(),
        reason,
        error,
        original_key: msg.key.clone(),
        original_value: msg.payload.clone(),
        failed_at_ms: now_ms(),
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

/// Decodes the Avro record `record_name` of `msg`. An error means the schema registry is
/// unreachable (retriable); a message that cannot be decoded is [`Decoded::DeadLetter`].
pub async fn decode<T: serde::de::DeserializeOwned>(
    codec: &Codec,
    msg: &InMessage,
    record_name: &str,
) -> Result<Decoded<T>> {
    use atlasmesh_schemas::DecodeError;
    let Some(payload) = msg.payload.as_deref() else {
        return Ok(Decoded::DeadLetter(
            DeadLetterReason::Undecodable,
            "empty payload (tombstone)".into(),
        ));
    };
    match codec.decode_record(payload, record_name).await {
        Ok(r) => Ok(Decoded::Ok(r)),
        Err(DecodeError::Unavailable(e)) => {
            Err(Error::Unavailable(format!("schema registry: {e}")))
        }
        Err(e @ DecodeError::UnknownSchema { .. }) => Ok(Decoded::DeadLetter(
            DeadLetterReason::UnknownSchema,
            e.to_string(),
        )),
        Err(e) => Ok(Decoded::DeadLetter(
            DeadLetterReason::Undecodable,
            e.to_string(),
        )),
    }
}

/// Like [`decode`], and a record that decodes but `invalid` refuses is a dead letter with
/// reason `invalid`.
pub async fn decode_valid<T: serde::de::DeserializeOwned>(
    codec: &Codec,
    msg: &InMessage,
    record_name: &str,
    invalid: impl Fn(&T) -> Option<String>,
) -> Result<Decoded<T>> {
    Ok(decode::<T>(codec, msg, record_name)
        .await?
        .validate(invalid))
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
