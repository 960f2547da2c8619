//! The Avro schemas of every topic (`schemas/avro/*.avsc`), registered at start-up through
//! schema_registry_converter, and the Confluent-framed codec the workers use.
//!
//! Subjects follow the TopicNameStrategy: `<topic>-value`. Only schema_registry_converter talks
//! to the registry, so Confluent, Karapace, Redpanda or Apicurio work unchanged.

pub mod bounded;
mod codec;
mod records;
mod telemetry;

pub use codec::{Codec, DecodeError, DecodeLimits, LastWriter, PreparedSchema};
pub use records::{
    CommandRecord, CommandResultRecord, CommandStatus, CoordinationRecord, DeadLetterReason,
    DeadLetterRecord, MetricsScope, MissionEventKind, MissionEventRecord, ResourceEventRecord,
    ResourceState, WindowMetricsRecord,
};

/// Which topic a schema belongs to (the default topic names of `atlasmesh_core::config::Topics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    Telemetry,
    MissionEvents,
    ResourceEvents,
    Commands,
    CommandResults,
    Metrics,
    Dlq,
    Coordination,
}

impl SchemaKind {
    pub const ALL: [SchemaKind; 8] = [
        SchemaKind::Telemetry,
        SchemaKind::MissionEvents,
        SchemaKind::ResourceEvents,
        SchemaKind::Commands,
        SchemaKind::CommandResults,
        SchemaKind::Metrics,
        SchemaKind::Dlq,
        SchemaKind::Coordination,
    ];

    /// The `.avsc` text.
    pub fn schema(self) -> &'static str {
        match self {
            SchemaKind::Telemetry => include_str!("../avro/fleet.telemetry.v1.avsc"),
            SchemaKind::MissionEvents => include_str!("../avro/fleet.mission-events.v1.avsc"),
            SchemaKind::ResourceEvents => include_str!("../avro/fleet.resource-events.v1.avsc"),
            SchemaKind::Commands => include_str!("../avro/fleet.commands.v1.avsc"),
            SchemaKind::CommandResults => include_str!("../avro/fleet.command-results.v1.avsc"),
            SchemaKind::Metrics => include_str!("../avro/fleet.metrics.v1.avsc"),
            SchemaKind::Dlq => include_str!("../avro/fleet.dlq.v1.avsc"),
            SchemaKind::Coordination => include_str!("../avro/fleet.coordination.v1.avsc"),
        }
    }

    /// The configured topic of this kind.
    pub fn topic(self, t: &atlasmesh_core::config::Topics) -> &str {
        match self {
            SchemaKind::Telemetry => &t.telemetry,
            SchemaKind::MissionEvents => &t.mission_events,
            SchemaKind::ResourceEvents => &t.resource_events,
            SchemaKind::Commands => &t.commands,
            SchemaKind::CommandResults => &t.command_results,
            SchemaKind::Metrics => &t.metrics,
            SchemaKind::Dlq => &t.dlq,
            SchemaKind::Coordination => &t.coordination,
        }
    }

    pub fn parsed(self) -> apache_avro::Schema {
        apache_avro::Schema::parse_str(self.schema()).expect("bundled schema parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_schema_parses() {
        for k in SchemaKind::ALL {
            k.parsed();
        }
    }
}
