//! Rust shapes of the non-telemetry records (telemetry is `atlasmesh_core::TelemetryEvent`).

use atlasmesh_core::window::{Counters, WindowResult, WindowScope};
use serde::{Deserialize, Serialize};

/// Avro enum `WindowScope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsScope {
    Vehicle,
    FleetPartial,
    /// A source partition's progress marker (see [`WindowMetricsRecord::watermark`]).
    Watermark,
}

/// `WindowMetricsRecord` and its counter mapping, the counters of
/// [`atlasmesh_core::for_each_window_counter!`] as Avro `long`s between `version` and
/// `source_partitions` (the field order of `fleet.metrics.v1.avsc`).
macro_rules! window_metrics_record {
    ([$($counter:ident : $cty:ty),* $(,)?]) => {
        /// Avro record `WindowMetrics` (`fleet.metrics.v1`).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct WindowMetricsRecord {
            pub scope: MetricsScope,
            pub fleet_id: String,
            pub vehicle_id: String,
            pub source_partition: i32,
            pub window_start_ms: i64,
            pub window_end_ms: i64,
            pub version: i32,
            $(pub $counter: i64,)*
            /// Watermarks: the number of partitions of the telemetry topic (0 on windows).
            #[serde(default)]
            pub source_partitions: i32,
            /// Watermarks: the source partition is caught up and has closed everything it holds.
            #[serde(default)]
            pub source_idle: bool,
        }

        impl WindowMetricsRecord {
            /// A window record (`source_partitions` 0, `source_idle` false) with counters `c`.
            #[allow(clippy::too_many_arguments)]
            pub fn window(
                scope: MetricsScope,
                fleet_id: &str,
                vehicle_id: &str,
                source_partition: i32,
                window_start_ms: i64,
                window_end_ms: i64,
                version: i32,
                c: &Counters,
            ) -> Self {
                WindowMetricsRecord {
                    scope,
                    fleet_id: fleet_id.to_string(),
                    vehicle_id: vehicle_id.to_string(),
                    source_partition,
                    window_start_ms,
                    window_end_ms,
                    version,
                    $($counter: c.$counter as i64,)*
                    source_partitions: 0,
                    source_idle: false,
                }
            }

            /// The window's counters (negative values, which the producer never writes, as 0).
            pub fn counters(&self) -> Counters {
                Counters {
                    $($counter: self.$counter.max(0) as $cty,)*
                }
            }
        }
    };
}

atlasmesh_core::for_each_window_counter!(window_metrics_record);

impl WindowMetricsRecord {
    pub fn from_result(r: &WindowResult, partition: i32) -> Self {
        let scope = match r.scope {
            WindowScope::Vehicle => MetricsScope::Vehicle,
            WindowScope::FleetPartial => MetricsScope::FleetPartial,
        };
        let (start, end, version) = (r.window_start_ms, r.window_end_ms, r.version as i32);
        Self::window(
            scope,
            &r.fleet_id,
            &r.vehicle_id,
            partition,
            start,
            end,
            version,
            &r.counters,
        )
    }

    /// The progress marker of telemetry partition `source` (of `source_partitions`): every
    /// window it holds that ends at or before `closed_until_ms` is closed and its partials are
    /// written before this marker; `idle`: the partition is caught up and closed everything it
    /// holds. Written to every partition of the metrics topic, so each fleet-window settler
    /// hears from every source (see `atlasmesh_pipelines::settle`).
    pub fn watermark(
        source: i32,
        source_partitions: i32,
        closed_until_ms: i64,
        idle: bool,
    ) -> Self {
        let (t, none) = (closed_until_ms, Counters::default());
        WindowMetricsRecord {
            source_partitions,
            source_idle: idle,
            ..Self::window(MetricsScope::Watermark, "", "", source, t, t, 0, &none)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    Undecodable,
    UnknownSchema,
    Invalid,
    Late,
    /// A command whose signature is missing or does not verify.
    Unauthenticated,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Undecodable => "undecodable",
            DeadLetterReason::UnknownSchema => "unknown_schema",
            DeadLetterReason::Invalid => "invalid",
            DeadLetterReason::Late => "late",
            DeadLetterReason::Unauthenticated => "unauthenticated",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub pipeline: String,
    pub reason: DeadLetterReason,
    pub error: String,
    #[serde(with = "opt_bytes")]
    pub original_key: Option<Vec<u8>>,
    #[serde(with = "opt_bytes")]
    pub original_value: Option<Vec<u8>>,
    pub failed_at_ms: i64,
}

/// Avro `["null","bytes"]` through serde: apache-avro needs bytes serialised as bytes.
mod opt_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&serde_bytes_ref(b)),
            None => s.serialize_none(),
        }
    }

    struct BytesRef<'a>(&'a [u8]);
    impl serde::Serialize for BytesRef<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    fn serde_bytes_ref(b: &[u8]) -> BytesRef<'_> {
        BytesRef(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        struct O;
        impl<'de> serde::de::Visitor<'de> for O {
            type Value = Option<Vec<u8>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("optional bytes")
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_bytes(V).map(Some)
            }
        }
        d.deserialize_option(O)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub command_id: String,
    pub idempotency_key: String,
    pub kind: String,
    pub fleet_scope: Vec<String>,
    pub actor: String,
    pub issued_at_ms: i64,
    pub payload_json: String,
}

/// `fleet.coordination.v1`: one inter-fleet message to one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinationRecord {
    pub id: String,
    pub message_id: String,
    pub conversation_id: String,
    pub federation_id: String,
    pub from_fleet_id: String,
    pub to_fleet_id: String,
    /// Avro enum `CoordinationKind` (the domain's `CommunicationKind`).
    pub kind: atlasmesh_core::domain::coordination::CommunicationKind,
    pub body_json: String,
    pub sent_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResultRecord {
    pub command_id: String,
    pub status: CommandStatus,
    pub reason: Option<String>,
    pub entity_id: Option<String>,
    pub applied_at_ms: i64,
}

/// Avro enum `CommandStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Applied,
    Rejected,
}

/// Avro enum `MissionEventKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissionEventKind {
    Created,
    Started,
    WaypointReached,
    Completed,
    Failed,
    Aborted,
    SafetyEvent,
    /// A request for a vehicle in `zone_id` (the demand the optimization engine forecasts).
    Requested,
    /// A vehicle took the request (`vehicle_id`; the wait is from `requested`).
    Assigned,
    /// No vehicle took the request within the wait the rider accepts.
    Expired,
}

impl MissionEventKind {
    /// The Avro symbol, also the database name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            MissionEventKind::Created => "created",
            MissionEventKind::Started => "started",
            MissionEventKind::WaypointReached => "waypoint_reached",
            MissionEventKind::Completed => "completed",
            MissionEventKind::Failed => "failed",
            MissionEventKind::Aborted => "aborted",
            MissionEventKind::SafetyEvent => "safety_event",
            MissionEventKind::Requested => "requested",
            MissionEventKind::Assigned => "assigned",
            MissionEventKind::Expired => "expired",
        }
    }
}

/// `fleet.mission-events.v1`: mission lifecycle and safety events, keyed by mission id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissionEventRecord {
    pub event_id: String,
    pub mission_id: String,
    pub fleet_id: String,
    pub vehicle_id: Option<String>,
    pub ts_ms: i64,
    pub kind: MissionEventKind,
    pub severity: Option<String>,
    pub detail: Option<String>,
    /// Origin zone of a request (requested / assigned / expired); the zone a completed
    /// mission ended in.
    #[serde(default)]
    pub zone_id: Option<String>,
}

/// Avro enum `ResourceState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceState {
    Occupied,
    Free,
    OutOfService,
}

impl ResourceState {
    /// The Avro symbol, also the database name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceState::Occupied => "occupied",
            ResourceState::Free => "free",
            ResourceState::OutOfService => "out_of_service",
        }
    }

    /// The state named `s` (see [`ResourceState::as_str`]).
    pub fn parse(s: &str) -> Option<ResourceState> {
        match s {
            "occupied" => Some(ResourceState::Occupied),
            "free" => Some(ResourceState::Free),
            "out_of_service" => Some(ResourceState::OutOfService),
            _ => None,
        }
    }
}

/// `fleet.resource-events.v1`: a resource (charger, bay) occupied, freed or out of service,
/// keyed by resource id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceEventRecord {
    pub event_id: String,
    pub resource_id: String,
    pub pool_id: String,
    pub fleet_id: String,
    pub vehicle_id: Option<String>,
    pub ts_ms: i64,
    pub state: ResourceState,
}

#[cfg(test)]
mod tests {
    use atlasmesh_core::window::Counters;

    use super::{MetricsScope, WindowMetricsRecord};

    /// `(name, type)` of the fields of `fleet.metrics.v1.avsc`, in order.
    fn avsc_fields() -> Vec<(String, serde_json::Value)> {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../avro/fleet.metrics.v1.avsc")).unwrap();
        schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].clone()))
            .collect()
    }

    /// The record's fields are the schema's, in order, and its counters are the counter list as
    /// Avro longs (a counter added to one and not the other fails here).
    #[test]
    fn window_metrics_record_matches_the_avro_schema() {
        let fields = avsc_fields();
        let record = WindowMetricsRecord::window(
            MetricsScope::Vehicle,
            "f",
            "v",
            0,
            0,
            60_000,
            1,
            &Counters::default(),
        );
        let apache_avro::types::Value::Record(values) = apache_avro::to_value(&record).unwrap()
        else {
            panic!("not a record");
        };
        let record_names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
        let schema_names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(record_names, schema_names);

        let first = schema_names.iter().position(|n| *n == "version").unwrap() + 1;
        let counters = &fields[first..first + Counters::FIELDS.len()];
        for ((name, ty), field) in counters.iter().zip(Counters::FIELDS) {
            assert_eq!((name.as_str(), ty.as_str()), (*field, Some("long")));
        }
        assert_eq!(
            fields[first + Counters::FIELDS.len()].0,
            "source_partitions"
        );
    }

    #[test]
    fn counters_round_trip() {
        let c = Counters {
            samples: 3,
            vehicles: 2,
            moving_speed_ckph_sum: 9_000,
            ..Counters::default()
        };
        let r = WindowMetricsRecord::window(MetricsScope::FleetPartial, "f", "", 1, 0, 1, 2, &c);
        assert_eq!(r.counters(), c);
        let negative = WindowMetricsRecord { busy_ms: -5, ..r };
        assert_eq!(negative.counters().busy_ms, 0);
    }
}
