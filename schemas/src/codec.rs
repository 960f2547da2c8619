use std::sync::Arc;

use apache_avro::types::Value;
use atlasmesh_core::config::Topics;
use atlasmesh_core::TelemetryEvent;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{post_schema, SrSettings};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::Serialize;

use crate::SchemaKind;

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not Confluent framing, or bytes that do not match their schema: dead-letter it.
    #[error("undecodable: {0}")]
    Undecodable(String),
    /// The schema id is not known to the registry: dead-letter it.
    #[error("unknown schema id {id}: {message}")]
    UnknownSchema { id: u32, message: String },
    /// Decoded, but not the record this topic carries: dead-letter it.
    #[error("unexpected record: {0}")]
    WrongRecord(String),
    /// The registry could not be reached: retry, never dead-letter.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
}

impl DecodeError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, DecodeError::Unavailable(_))
    }
}

fn describe(e: &SRCError) -> String {
    match &e.cause {
        Some(c) => format!("{}: {}", e.error, c),
        None => e.error.clone(),
    }
}

/// Encoder/decoder for Confluent-framed Avro, backed by a schema registry.
#[derive(Clone)]
pub struct Codec {
    settings: SrSettings,
    encoder: Arc<AvroEncoder>,
    decoder: Arc<AvroDecoder>,
}

impl Codec {
    pub fn new(registry_url: &str) -> Result<Codec, SRCError> {
        let settings = SrSettings::new_builder(registry_url.trim_end_matches('/').to_string())
            .no_proxy()
            .set_timeout(std::time::Duration::from_secs(5))
            .build()?;
        Ok(Codec {
            encoder: Arc::new(AvroEncoder::new(settings.clone())),
            decoder: Arc::new(AvroDecoder::new(settings.clone())),
            settings,
        })
    }

    fn strategy(topic: &str, kind: SchemaKind) -> SubjectNameStrategy {
        SubjectNameStrategy::TopicNameStrategyWithSchema(
            topic.to_string(),
            false,
            SuppliedSchema::new(None, SchemaType::Avro, kind.schema().to_string()),
        )
    }

    /// Registers every schema under `<topic>-value`. Returns (subject, id) pairs.
    pub async fn register_all(&self, topics: &Topics) -> Result<Vec<(String, u32)>, SRCError> {
        let mut out = Vec::new();
        for kind in SchemaKind::ALL {
            let subject = format!("{}-value", kind.topic(topics));
            let schema = SuppliedSchema::new(None, SchemaType::Avro, kind.schema().to_string());
            let reg = post_schema(&self.settings, subject.clone(), schema).await?;
            out.push((subject, reg.id));
        }
        Ok(out)
    }

    /// Serialises `item` with the schema of `kind`, registered under `<topic>-value`.
    pub async fn encode<T: Serialize>(
        &self,
        topic: &str,
        kind: SchemaKind,
        item: &T,
    ) -> Result<Vec<u8>, SRCError> {
        self.encoder
            .encode_struct(item, &Self::strategy(topic, kind))
            .await
    }

    /// Decodes a Confluent-framed Avro message into its generic value.
    pub async fn decode_value(&self, bytes: &[u8]) -> Result<(Option<String>, Value), DecodeError> {
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(DecodeError::Undecodable(
                "not Confluent wire format (magic byte 0 + 4-byte schema id)".into(),
            ));
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        match self.decoder.decode(Some(bytes)).await {
            Ok(r) => Ok((r.name.map(|n| n.fullname(None)), r.value)),
            Err(e) if e.retriable => {
                self.decoder.remove_errors_from_cache();
                Err(DecodeError::Unavailable(describe(&e)))
            }
            Err(e) => {
                // Tell an unknown id from a payload that does not match its schema.
                match self.decoder.get_schema(id).await {
                    Ok(_) => Err(DecodeError::Undecodable(describe(&e))),
                    Err(se) if se.retriable => {
                        self.decoder.remove_errors_from_cache();
                        Err(DecodeError::Unavailable(describe(&se)))
                    }
                    Err(se) => Err(DecodeError::UnknownSchema {
                        id,
                        message: describe(&se),
                    }),
                }
            }
        }
    }

    /// Decodes a telemetry event.
    pub async fn decode_telemetry(&self, bytes: &[u8]) -> Result<TelemetryEvent, DecodeError> {
        self.decode_record(bytes, "TelemetryEvent").await
    }

    /// Decodes a record whose Avro name ends with `record_name` into `T`.
    pub async fn decode_record<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
        record_name: &str,
    ) -> Result<T, DecodeError> {
        let (name, value) = self.decode_value(bytes).await?;
        if let Some(n) = &name {
            if !n.ends_with(record_name) {
                return Err(DecodeError::WrongRecord(format!(
                    "expected {record_name}, got {n}"
                )));
            }
        }
        apache_avro::from_value::<T>(&value).map_err(|e| {
            DecodeError::Undecodable(format!("record does not map to {record_name}: {e}"))
        })
    }
}
