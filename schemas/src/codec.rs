// ouroboros' generated code for `Prepared` calls `mem::forget` (the workspace warns on it).
#![allow(clippy::mem_forget)]

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use atlasmesh_core::config::{SchemaRegistryConfig, Topics};
use atlasmesh_core::TelemetryEvent;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{post_schema, SrSettings};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::Serialize;

use crate::bounded::{Limits, Names};
use crate::telemetry::{self, TelemetryPlan};
use crate::SchemaKind;

/// Why a message could not be decoded.
#[derive(Debug, Clone, thiserror::Error)]
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

/// What one message may cost to decode (see [`crate::bounded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Larger messages are undecodable without looking further.
    pub max_message_bytes: usize,
    /// Values and nesting of one datum.
    pub datum: Limits,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_message_bytes: 1 << 20,
            datum: Limits::default(),
        }
    }
}

impl DecodeLimits {
    pub fn from_config(cfg: &SchemaRegistryConfig) -> DecodeLimits {
        DecodeLimits {
            max_message_bytes: cfg.max_message_bytes,
            datum: Limits {
                max_values: cfg.max_values,
                max_depth: cfg.max_depth,
            },
        }
    }
}

/// Writer schemas prepared for decoding are kept up to this many (schema id, reader) pairs;
/// beyond it they are prepared per message (still correct, only slower).
const MAX_PREPARED: usize = 1024;

/// A writer schema with its named types and a datum reader that resolves it to the reader
/// schema of a topic (or to itself).
#[ouroboros::self_referencing]
struct Prepared {
    writer: Schema,
    #[borrows(writer)]
    #[not_covariant]
    plan: Plan<'this>,
}

struct Plan<'s> {
    names: Names<'s>,
    reader: GenericDatumReader<'s>,
    /// The direct decoder into `TelemetryEvent`, for a telemetry writer it can resolve.
    telemetry: Option<TelemetryPlan<'s>>,
}

type PreparedCache = HashMap<(u32, Option<SchemaKind>), Arc<Result<PreparedSchema, DecodeError>>>;

/// The schema a (topic, kind) is registered with, its id and a datum writer for it, built
/// once ([`Codec::encode`]).
#[ouroboros::self_referencing]
struct WriterSchema {
    id: u32,
    schema: Schema,
    #[borrows(schema)]
    #[not_covariant]
    writer: GenericDatumWriter<'this>,
}

/// Kind → topic → its writer.
type WriterCache = HashMap<SchemaKind, HashMap<String, Arc<WriterSchema>>>;

/// A writer schema ready to decode messages as a topic's record (or as itself): checked to
/// resolve against the reader schema once, then every datum is walked within limits before it
/// is decoded. Pure: what [`Codec`] does once it has the writer schema of a message.
pub struct PreparedSchema {
    prepared: Prepared,
    kind: Option<SchemaKind>,
}

impl PreparedSchema {
    /// Prepares `writer` to be read as `kind`'s record (`None`: as written). A writer schema
    /// that cannot resolve against the reader schema is refused here.
    pub fn new(writer: Schema, kind: Option<SchemaKind>) -> Result<PreparedSchema, DecodeError> {
        prepare(writer, kind)
    }

    /// The full name of the writer's record, if it is a named type.
    pub fn writer_name(&self) -> Option<String> {
        self.prepared
            .borrow_writer()
            .name()
            .map(|n| n.fullname(None))
    }

    /// Decodes one datum (the bytes after the Confluent header) within `limits` into its
    /// value, resolved to the reader schema.
    pub fn decode(&self, body: &[u8], limits: Limits) -> Result<Value, DecodeError> {
        self.prepared.with(|p| {
            crate::bounded::check(p.writer, &p.plan.names, body, limits)
                .map_err(DecodeError::Undecodable)?;
            let mut rest = body;
            p.plan
                .reader
                .read_value(&mut rest)
                .map_err(|e| DecodeError::Undecodable(e.to_string()))
        })
    }

    /// Decodes one datum into `T` the generic way: [`PreparedSchema::decode`] to a value,
    /// refuse text with NUL (`nul_text`), then map the value to `T` with serde.
    pub fn decode_record<T: serde::de::DeserializeOwned>(
        &self,
        body: &[u8],
        limits: Limits,
    ) -> Result<T, DecodeError> {
        let value = self.decode(body, limits)?;
        if let Some(field) = nul_text(&value) {
            return Err(nul_refused(&field));
        }
        apache_avro::from_value::<T>(&value).map_err(|e| {
            let kind = match self.kind {
                Some(k) => format!("{k:?}"),
                None => "the writer's record".into(),
            };
            DecodeError::Undecodable(format!("record does not map to {kind}: {e}"))
        })
    }

    /// Decodes one datum into a telemetry event: straight from the bytes when this writer
    /// schema was prepared for [`SchemaKind::Telemetry`] and the direct decoder resolves it
    /// (a plan compiled once per writer schema), else as [`PreparedSchema::decode_record`] does. Both accept
    /// and refuse the same datums with the same [`DecodeError`] kinds.
    pub fn decode_telemetry(
        &self,
        body: &[u8],
        limits: Limits,
    ) -> Result<TelemetryEvent, DecodeError> {
        let mut ev = TelemetryEvent::default();
        self.decode_telemetry_into(body, limits, &mut ev)?;
        Ok(ev)
    }

    /// As [`PreparedSchema::decode_telemetry`], into `ev` whatever it held (the direct
    /// decoder reuses its text buffers). After an error `ev` is unspecified.
    pub fn decode_telemetry_into(
        &self,
        body: &[u8],
        limits: Limits,
        ev: &mut TelemetryEvent,
    ) -> Result<(), DecodeError> {
        let direct = self.prepared.with(|p| {
            let plan = p.plan.telemetry.as_ref().filter(|t| t.fits(limits))?;
            Some(
                plan.decode_into(&p.plan.names, body, limits, ev)
                    .map_err(DecodeError::Undecodable),
            )
        });
        match direct {
            Some(Ok(())) => match telemetry::nul_field(ev) {
                Some(field) => Err(nul_refused(&field)),
                None => Ok(()),
            },
            Some(Err(e)) => Err(e),
            None => {
                *ev = self.decode_record(body, limits)?;
                Ok(())
            }
        }
    }

    /// Whether [`PreparedSchema::decode_telemetry`] decodes straight from the bytes (for
    /// tests and benchmarks that must know which path they measure).
    pub fn has_direct_telemetry(&self) -> bool {
        self.prepared.with(|p| p.plan.telemetry.is_some())
    }
}

/// The refusal of a record whose text at `field` holds a NUL character.
fn nul_refused(field: &str) -> DecodeError {
    DecodeError::Invalid(format!(
        "{field}: text contains a NUL character (U+0000), which cannot be stored"
    ))
}

/// The bundled (reader) schema of each topic, parsed once.
fn reader_schema(kind: SchemaKind) -> &'static Schema {
    static READERS: OnceLock<Vec<(SchemaKind, Schema)>> = OnceLock::new();
    let all = READERS.get_or_init(|| SchemaKind::ALL.iter().map(|k| (*k, k.parsed())).collect());
    &all.iter()
        .find(|(k, _)| *k == kind)
        .expect("every kind is bundled")
        .1
}

/// Prepares `writer` to be read as `kind`'s record (or as itself): it must resolve against
/// the reader schema (Avro schema resolution), else every message written with it is refused.
fn prepare(writer: Schema, kind: Option<SchemaKind>) -> Result<PreparedSchema, DecodeError> {
    if let Some(kind) = kind {
        let reader = reader_schema(kind);
        if let Err(e) = SchemaCompatibility::can_read(&writer, reader) {
            let (w, r) = (writer.name(), reader.name());
            let same_name = matches!((w, r), (Some(w), Some(r)) if w.name() == r.name());
            let r_name = r.map(|n| n.fullname(None)).unwrap_or_default();
            return Err(if same_name {
                DecodeError::Undecodable(format!(
                    "writer schema cannot be resolved to the reader schema {r_name}: {e}"
                ))
            } else {
                DecodeError::WrongRecord(format!(
                    "expected {r_name}, got {}",
                    w.map(|n| n.fullname(None))
                        .unwrap_or_else(|| format!("{writer:?}").chars().take(60).collect())
                ))
            });
        }
    }
    // A writer equal to the reader (producers using the bundled schema: the common case) needs
    // no resolution pass over every value.
    let resolve_to = kind.map(reader_schema).filter(|r| **r != writer);
    let telemetry_reader =
        (kind == Some(SchemaKind::Telemetry)).then(|| reader_schema(SchemaKind::Telemetry));
    PreparedTryBuilder {
        writer,
        plan_builder: |w: &Schema| -> Result<Plan<'_>, DecodeError> {
            let names = crate::bounded::names_of(w).map_err(DecodeError::Undecodable)?;
            let reader = GenericDatumReader::builder(w)
                .maybe_reader_schema(resolve_to)
                .build()
                .map_err(|e| DecodeError::Undecodable(format!("writer schema: {e}")))?;
            let telemetry = telemetry_reader.and_then(|r| TelemetryPlan::new(w, r));
            Ok(Plan {
                names,
                reader,
                telemetry,
            })
        },
    }
    .try_build()
    .map(|prepared| PreparedSchema { prepared, kind })
}

/// The prepared writer schema of the last telemetry message one consumer decoded
/// ([`Codec::decode_telemetry_with`]): a stream written with one schema then skips the
/// codec's shared cache (a lock, a hash and a reference count per message). A writer schema
/// the reader refuses stays refused, as in the shared cache; registry ids never change
/// meaning.
#[derive(Default)]
pub struct LastWriter(Option<(u32, Arc<Result<PreparedSchema, DecodeError>>)>);

/// Encoder/decoder for Confluent-framed Avro, backed by a schema registry.
///
/// Decoding is bounded: a message is first walked over its writer schema within
/// [`DecodeLimits`] ([`crate::bounded::check`]: value count, nesting, exact length, no
/// trailing bytes), and only then decoded; a writer schema must resolve against the reader
/// schema of the record asked for.
#[derive(Clone)]
pub struct Codec {
    settings: SrSettings,
    encoder: Arc<AvroEncoder>,
    decoder: Arc<AvroDecoder>,
    limits: DecodeLimits,
    prepared: Arc<Mutex<PreparedCache>>,
    writers: Arc<Mutex<WriterCache>>,
}

impl Codec {
    /// A codec with the default [`DecodeLimits`].
    pub fn new(registry_url: &str) -> Result<Codec, SRCError> {
        let settings = SrSettings::new_builder(registry_url.trim_end_matches('/').to_string())
            .no_proxy()
            .set_timeout(std::time::Duration::from_secs(5))
            .build()?;
        Ok(Codec {
            encoder: Arc::new(AvroEncoder::new(settings.clone())),
            decoder: Arc::new(AvroDecoder::new(settings.clone())),
            settings,
            limits: DecodeLimits::default(),
            prepared: Arc::default(),
            writers: Arc::default(),
        })
    }

    /// A codec for the configured registry and decode limits.
    pub fn from_config(cfg: &SchemaRegistryConfig) -> Result<Codec, SRCError> {
        Ok(Codec::new(&cfg.url)?.with_limits(DecodeLimits::from_config(cfg)))
    }

    pub fn with_limits(mut self, limits: DecodeLimits) -> Codec {
        self.limits = limits;
        self
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
        let w = self.writer(topic, kind).await?;
        let mut out = Vec::with_capacity(128);
        out.push(0);
        out.extend_from_slice(&w.borrow_id().to_be_bytes());
        w.with_writer(|writer| writer.write_ser(&mut out, item))
            .map_err(|e| SRCError::non_retryable_with_cause(e, "Could not get Avro bytes"))?;
        Ok(out)
    }

    /// The writer of `kind`'s schema under `<topic>-value`: registered (or looked up) and
    /// parsed through schema_registry_converter once, then kept. Encoding through the
    /// converter per record cost several microseconds of copies (the subject strategy holds
    /// the whole schema text, cloned and hashed per call) and a writer built per record.
    async fn writer(&self, topic: &str, kind: SchemaKind) -> Result<Arc<WriterSchema>, SRCError> {
        let cached = self
            .writers()
            .get(&kind)
            .and_then(|by_topic| by_topic.get(topic))
            .cloned();
        if let Some(w) = cached {
            return Ok(w);
        }
        let strategy = Self::strategy(topic, kind);
        let registered = self
            .encoder
            .get_schema_and_id(&strategy.get_subject()?, strategy)
            .await?;
        let w = WriterSchemaTryBuilder {
            id: registered.id,
            schema: registered.parsed.clone(),
            writer_builder: |schema: &Schema| GenericDatumWriter::builder(schema).build(),
        }
        .try_build()
        .map_err(|e| SRCError::non_retryable_with_cause(e, "Could not build the Avro writer"))?;
        let w = Arc::new(w);
        self.writers()
            .entry(kind)
            .or_default()
            .insert(topic.to_string(), w.clone());
        Ok(w)
    }

    fn writers(&self) -> std::sync::MutexGuard<'_, WriterCache> {
        self.writers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The prepared writer schema `id` for `kind` (cached).
    async fn prepared(
        &self,
        id: u32,
        kind: Option<SchemaKind>,
    ) -> Result<Arc<Result<PreparedSchema, DecodeError>>, DecodeError> {
        if let Some(p) = self.cache().get(&(id, kind)) {
            return Ok(p.clone());
        }
        let writer = match self.decoder.get_schema(id).await {
            Ok(s) => s.parsed.clone(),
            Err(e) if e.retriable => {
                self.decoder.remove_errors_from_cache();
                return Err(DecodeError::Unavailable(describe(&e)));
            }
            Err(e) => {
                return Err(DecodeError::UnknownSchema {
                    id,
                    message: describe(&e),
                })
            }
        };
        let p = Arc::new(prepare(writer, kind));
        let mut cache = self.cache();
        if cache.len() < MAX_PREPARED {
            cache.insert((id, kind), p.clone());
        }
        Ok(p)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, PreparedCache> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The prepared writer schema of a Confluent-framed Avro message, to read it as `kind`'s
    /// record or (`None`) as its writer schema says, and the datum after the header.
    async fn framed<'b>(
        &self,
        bytes: &'b [u8],
        kind: Option<SchemaKind>,
    ) -> Result<(Arc<Result<PreparedSchema, DecodeError>>, &'b [u8]), DecodeError> {
        let (id, body) = self.frame(bytes)?;
        let entry = self.prepared(id, kind).await?;
        if let Err(refused) = entry.as_ref() {
            return Err(refused.clone());
        }
        Ok((entry, body))
    }

    /// The schema id and the datum of a Confluent-framed message within the size limit.
    fn frame<'b>(&self, bytes: &'b [u8]) -> Result<(u32, &'b [u8]), DecodeError> {
        if bytes.len() > self.limits.max_message_bytes {
            return Err(DecodeError::Undecodable(format!(
                "message of {} bytes exceeds the configured limit of {} (max_message_bytes)",
                bytes.len(),
                self.limits.max_message_bytes
            )));
        }
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(DecodeError::Undecodable(
                "not Confluent wire format (magic byte 0 + 4-byte schema id)".into(),
            ));
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        Ok((id, &bytes[5..]))
    }

    /// Decodes a Confluent-framed Avro message into its generic value (as written), with the
    /// writer's record name.
    pub async fn decode_value(&self, bytes: &[u8]) -> Result<(Option<String>, Value), DecodeError> {
        let (entry, body) = self.framed(bytes, None).await?;
        let prepared = entry.as_ref().as_ref().map_err(Clone::clone)?;
        let value = prepared.decode(body, self.limits.datum)?;
        let name = entry
            .as_ref()
            .as_ref()
            .ok()
            .and_then(PreparedSchema::writer_name);
        Ok((name, value))
    }

    /// Decodes a telemetry event, straight from the bytes for the writer schemas the direct
    /// decoder resolves ([`PreparedSchema::decode_telemetry`]).
    pub async fn decode_telemetry(&self, bytes: &[u8]) -> Result<TelemetryEvent, DecodeError> {
        let mut ev = TelemetryEvent::default();
        self.decode_telemetry_into(bytes, &mut ev).await?;
        Ok(ev)
    }

    /// As [`Codec::decode_telemetry`], into `ev` whatever it held, reusing its text buffers
    /// ([`PreparedSchema::decode_telemetry_into`]). After an error `ev` is unspecified.
    pub async fn decode_telemetry_into(
        &self,
        bytes: &[u8],
        ev: &mut TelemetryEvent,
    ) -> Result<(), DecodeError> {
        self.decode_telemetry_with(&mut LastWriter::default(), bytes, ev)
            .await
    }

    /// As [`Codec::decode_telemetry_into`], looking the writer schema up in the codec's
    /// shared cache only when the message's schema id is not `last`'s (which then keeps it).
    pub async fn decode_telemetry_with(
        &self,
        last: &mut LastWriter,
        bytes: &[u8],
        ev: &mut TelemetryEvent,
    ) -> Result<(), DecodeError> {
        let (id, body) = self.frame(bytes)?;
        if last.0.as_ref().is_none_or(|(cached, _)| *cached != id) {
            last.0 = Some((id, self.prepared(id, Some(SchemaKind::Telemetry)).await?));
        }
        let (_, entry) = last.0.as_ref().expect("just looked up");
        let prepared = entry.as_ref().as_ref().map_err(Clone::clone)?;
        prepared.decode_telemetry_into(body, self.limits.datum, ev)
    }

    /// Decodes the record of `kind`'s topic into `T`: the writer schema is resolved to the
    /// bundled reader schema of `kind`, and text no store can keep (NUL) is refused. A
    /// `TelemetryEvent` of the telemetry topic takes [`Codec::decode_telemetry`]'s path.
    pub async fn decode_record<T: serde::de::DeserializeOwned + 'static>(
        &self,
        bytes: &[u8],
        kind: SchemaKind,
    ) -> Result<T, DecodeError> {
        if kind == SchemaKind::Telemetry {
            let mut out: Option<T> = None;
            if let Some(slot) = (&mut out as &mut dyn Any).downcast_mut::<Option<TelemetryEvent>>()
            {
                *slot = Some(self.decode_telemetry(bytes).await?);
                return Ok(out.expect("just decoded"));
            }
        }
        let (entry, body) = self.framed(bytes, Some(kind)).await?;
        let prepared = entry.as_ref().as_ref().map_err(Clone::clone)?;
        prepared.decode_record(body, self.limits.datum)
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
