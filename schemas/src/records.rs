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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowMetricsRecord {
    pub scope: MetricsScope,
    pub fleet_id: String,
    pub vehicle_id: String,
    pub source_partition: i32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub version: i32,
    pub samples: i64,
    pub observed_ms: i64,
    pub busy_ms: i64,
    pub available_ms: i64,
    pub idle_ms: i64,
    pub charging_ms: i64,
    pub maintenance_ms: i64,
    pub fault_ms: i64,
    pub offline_ms: i64,
    pub distance_m: i64,
    pub energy_wh: i64,
    pub moving_samples: i64,
    pub moving_speed_ckph_sum: i64,
    pub fault_count: i64,
    pub mission_count: i64,
    pub active_vehicles: i64,
    pub vehicles: i64,
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
            samples: c.samples as i64,
            observed_ms: c.observed_ms as i64,
            busy_ms: c.busy_ms as i64,
            available_ms: c.available_ms as i64,
            idle_ms: c.idle_ms as i64,
            charging_ms: c.charging_ms as i64,
            maintenance_ms: c.maintenance_ms as i64,
            fault_ms: c.fault_ms as i64,
            offline_ms: c.offline_ms as i64,
            distance_m: c.distance_m as i64,
            energy_wh: c.energy_wh as i64,
            moving_samples: c.moving_samples as i64,
            moving_speed_ckph_sum: c.moving_speed_ckph_sum as i64,
            fault_count: c.fault_count as i64,
            mission_count: c.mission_count as i64,
            active_vehicles: c.active_vehicles as i64,
            vehicles: c.vehicles as i64,
            source_partitions: 0,
            source_idle: false,
        }
    }

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

    /// The window's counters (negative values, which the producer never writes, as 0).
    pub fn counters(&self) -> Counters {
        let u = |v: i64| v.max(0) as u64;
        Counters {
            samples: u(self.samples),
            observed_ms: u(self.observed_ms),
            busy_ms: u(self.busy_ms),
            available_ms: u(self.available_ms),
            idle_ms: u(self.idle_ms),
            charging_ms: u(self.charging_ms),
            maintenance_ms: u(self.maintenance_ms),
            fault_ms: u(self.fault_ms),
            offline_ms: u(self.offline_ms),
            distance_m: u(self.distance_m),
            energy_wh: u(self.energy_wh),
            moving_samples: u(self.moving_samples),
            moving_speed_ckph_sum: u(self.moving_speed_ckph_sum),
            fault_count: u(self.fault_count),
            mission_count: u(self.mission_count),
            active_vehicles: u(self.active_vehicles),
            vehicles: u(self.vehicles),
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
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Undecodable => "undecodable",
            DeadLetterReason::UnknownSchema => "unknown_schema",
            DeadLetterReason::Invalid => "invalid",
            DeadLetterReason::Late => "late",
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
