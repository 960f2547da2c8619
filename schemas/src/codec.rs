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
    /// Decoded, but holds text no store can keep (a NUL character, which PostgreSQL refuses in
    /// text): dead-letter it as invalid.
    #[error("invalid: {0}")]
    Invalid(String),
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
        if let Some(field) = nul_text(&value) {
            return Err(DecodeError::Invalid(format!(
                "{field}: text contains a NUL character (U+0000), which cannot be stored"
            )));
        }
        apache_avro::from_value::<T>(&value).map_err(|e| {
            DecodeError::Undecodable(format!("record does not map to {record_name}: {e}"))
        })
    }
}

/// The path of the first text in `v` (string or map key, at any depth) that contains a NUL
/// character, e.g. `payload_json` or `scope[2]`; `None` when there is none. PostgreSQL cannot
/// store NUL in text, so such a record must be refused where every topic is decoded.
pub fn nul_text(v: &Value) -> Option<String> {
    // Every record of every topic passes here: look without allocating, and build the path
    // only for the rare record that has a NUL.
    fn any(v: &Value) -> bool {
        match v {
            Value::String(s) | Value::Enum(_, s) => s.contains('\0'),
            Value::Union(_, inner) => any(inner),
            Value::Array(items) => items.iter().any(any),
            Value::Map(m) => m.iter().any(|(k, x)| k.contains('\0') || any(x)),
            Value::Record(fields) => fields.iter().any(|(_, x)| any(x)),
            _ => false,
        }
    }
    if !any(v) {
        return None;
    }
    fn walk(v: &Value, path: &str) -> Option<String> {
        let here = || {
            if path.is_empty() {
                "record".to_string()
            } else {
                path.to_string()
            }
        };
        match v {
            Value::String(s) | Value::Enum(_, s) => s.contains('\0').then(here),
            Value::Union(_, inner) => walk(inner, path),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, x)| walk(x, &format!("{path}[{i}]"))),
            Value::Map(m) => m.iter().find_map(|(k, x)| {
                if k.contains('\0') {
                    Some(format!("{}{{key}}", here()))
                } else {
                    walk(x, &format!("{path}[{}]", k.escape_debug()))
                }
            }),
            Value::Record(fields) => fields.iter().find_map(|(name, x)| {
                let p = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                walk(x, &p)
            }),
            _ => None,
        }
    }
    walk(v, "")
}

#[cfg(test)]
mod nul_tests {
    use apache_avro::types::Value;
    use std::collections::HashMap;

    use super::nul_text;

    #[test]
    fn finds_nul_in_any_text_at_any_depth() {
        let rec = |fields: Vec<(&str, Value)>| {
            Value::Record(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            )
        };
        let clean = rec(vec![
            ("vehicle_id", Value::String("v-1".into())),
            (
                "mission_id",
                Value::Union(1, Box::new(Value::String("m".into()))),
            ),
            ("n", Value::Long(3)),
        ]);
        assert_eq!(nul_text(&clean), None);
        let nul = rec(vec![
            ("vehicle_id", Value::String("v-1".into())),
            (
                "mission_id",
                Value::Union(1, Box::new(Value::String("x\0y".into()))),
            ),
        ]);
        assert_eq!(nul_text(&nul).as_deref(), Some("mission_id"));
        let arr = rec(vec![(
            "fleet_scope",
            Value::Array(vec![Value::String("a".into()), Value::String("\0".into())]),
        )]);
        assert_eq!(nul_text(&arr).as_deref(), Some("fleet_scope[1]"));
        let key = rec(vec![(
            "tags",
            Value::Map(HashMap::from([("k\0".to_string(), Value::Null)])),
        )]);
        assert_eq!(nul_text(&key).as_deref(), Some("tags{key}"));
        // Bytes are not text: PostgreSQL stores NUL in bytea.
        assert_eq!(nul_text(&rec(vec![("b", Value::Bytes(vec![0]))])), None);
    }
}
