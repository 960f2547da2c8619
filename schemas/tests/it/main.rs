//! Schema evolution and codec round trips, through schema_registry_converter against the
//! registry stand-in (which checks compatibility with apache-avro).

use atlasmesh_core::config::Topics;
use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use atlasmesh_schemas::{
    Codec, CommandRecord, CommandResultRecord, CommandStatus, CoordinationRecord, DeadLetterReason,
    DeadLetterRecord, DecodeError, MissionEventKind, MissionEventRecord, ResourceEventRecord,
    ResourceState, SchemaKind,
};
use schema_registry_converter::async_impl::schema_registry::{post_schema, SrSettings};
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

fn with_field(schema: &str, field: serde_json::Value) -> String {
    let mut v: serde_json::Value = serde_json::from_str(schema).unwrap();
    v["fields"].as_array_mut().unwrap().push(field);
    v.to_string()
}

fn avro(s: String) -> SuppliedSchema {
    SuppliedSchema::new(None, SchemaType::Avro, s)
}

#[tokio::test]
async fn every_schema_evolves_backward_and_refuses_a_breaking_change() {
    let (url, _server) = atlasmesh_test_support::schema_registry::spawn_ephemeral()
        .await
        .unwrap();
    let sr = SrSettings::new(url);
    for kind in SchemaKind::ALL {
        let subject = format!("{}-value", kind.topic(&Topics::default()));
        let v1 = post_schema(&sr, subject.clone(), avro(kind.schema().into()))
            .await
            .unwrap();
        // Same schema again: same id.
        let again = post_schema(&sr, subject.clone(), avro(kind.schema().into()))
            .await
            .unwrap();
        assert_eq!(again.id, v1.id, "{subject}");
        // BACKWARD-compatible: a new optional field with a default.
        let evolved = with_field(
            kind.schema(),
            serde_json::json!({"name": "note", "type": ["null", "string"], "default": null}),
        );
        let v2 = post_schema(&sr, subject.clone(), avro(evolved.clone()))
            .await
            .unwrap();
        assert_ne!(
            v2.id, v1.id,
            "{subject}: evolved schema registered as a new version"
        );
        // Breaking: a required field without default cannot read old data.
        let breaking = with_field(
            &evolved,
            serde_json::json!({"name": "required_new", "type": "long"}),
        );
        let err = post_schema(&sr, subject.clone(), avro(breaking))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("409")
                || err.to_string().to_lowercase().contains("incompatible"),
            "{subject}: {err}"
        );
    }
}

fn event() -> TelemetryEvent {
    TelemetryEvent {
        event_id: "e-1".into(),
        fleet_id: "fleet-001".into(),
        vehicle_id: "f001-v0001".into(),
        ts_ms: 1_767_225_600_000,
        seq: 7,
        lat: 52.52,
        lon: 13.405,
        speed_kph: 31.25,
        odometer_km: 1234.567,
        energy_pct: 81.5,
        energy_used_kwh: 210.125,
        status: VehicleStatus::OnMission,
        mission_id: Some("m-1".into()),
        zone_id: None,
        payload_kg: 120.0,
        fault_codes: vec!["E101".into()],
    }
}

#[tokio::test]
async fn codec_round_trips_and_classifies_bad_input() {
    let (url, _server) = atlasmesh_test_support::schema_registry::spawn_ephemeral()
        .await
        .unwrap();
    let codec = Codec::new(&url).unwrap();
    let topics = Topics::default();
    codec.register_all(&topics).await.unwrap();
    let bytes = codec
        .encode(&topics.telemetry, SchemaKind::Telemetry, &event())
        .await
        .unwrap();
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    assert_eq!(codec.decode_telemetry(&bytes).await.unwrap(), event());

    let dl = DeadLetterRecord {
        source_topic: "t".into(),
        source_partition: 3,
        source_offset: 42,
        pipeline: "telemetry".into(),
        reason: DeadLetterReason::Late,
        error: "too late".into(),
        original_key: Some(b"k".to_vec()),
        original_value: None,
        failed_at_ms: 1,
    };
    let b = codec
        .encode(&topics.dlq, SchemaKind::Dlq, &dl)
        .await
        .unwrap();
    let (_, v) = codec.decode_value(&b).await.unwrap();
    assert_eq!(apache_avro::from_value::<DeadLetterRecord>(&v).unwrap(), dl);

    let me = MissionEventRecord {
        event_id: "v1:7:safety".into(),
        mission_id: "m1".into(),
        fleet_id: "f1".into(),
        vehicle_id: Some("v1".into()),
        ts_ms: 7,
        kind: MissionEventKind::SafetyEvent,
        severity: Some("critical".into()),
        detail: None,
        zone_id: None,
    };
    let b = codec
        .encode(&topics.mission_events, SchemaKind::MissionEvents, &me)
        .await
        .unwrap();
    let (_, v) = codec.decode_value(&b).await.unwrap();
    assert_eq!(
        apache_avro::from_value::<MissionEventRecord>(&v).unwrap(),
        me
    );
    let re = ResourceEventRecord {
        event_id: "v1:8:occupy".into(),
        resource_id: "c1".into(),
        pool_id: "p1".into(),
        fleet_id: "f1".into(),
        vehicle_id: None,
        ts_ms: 8,
        state: ResourceState::OutOfService,
    };
    let b = codec
        .encode(&topics.resource_events, SchemaKind::ResourceEvents, &re)
        .await
        .unwrap();
    let (_, v) = codec.decode_value(&b).await.unwrap();
    assert_eq!(
        apache_avro::from_value::<ResourceEventRecord>(&v).unwrap(),
        re
    );

    assert!(matches!(
        codec.decode_telemetry(b"{\"json\":1}").await,
        Err(DecodeError::Undecodable(_))
    ));
    let mut unknown = bytes.clone();
    unknown[1..5].copy_from_slice(&999_999u32.to_be_bytes());
    assert!(matches!(
        codec.decode_telemetry(&unknown).await,
        Err(DecodeError::UnknownSchema { id: 999_999, .. })
    ));
    let truncated = &bytes[..bytes.len() / 2];
    assert!(matches!(
        codec.decode_telemetry(truncated).await,
        Err(DecodeError::Undecodable(_))
    ));
    // A valid record followed by anything is not that record.
    let mut trailing = bytes.clone();
    trailing.push(0);
    match codec.decode_telemetry(&trailing).await {
        Err(DecodeError::Undecodable(m)) => assert!(m.contains("trailing"), "{m}"),
        other => panic!("expected undecodable, got {other:?}"),
    }
    // A record of another topic is refused by schema resolution.
    let dl_bytes = b;
    assert!(matches!(
        codec.decode_telemetry(&dl_bytes).await,
        Err(DecodeError::WrongRecord(_))
    ));
    // A registry that is down is retriable, never a dead letter.
    let down = Codec::new("http://127.0.0.1:9").unwrap();
    assert!(down
        .decode_telemetry(&bytes)
        .await
        .unwrap_err()
        .is_retriable());
}

/// `Codec::encode` writes with a writer kept per (topic, kind): the same bytes as
/// schema_registry_converter's own `encode_struct` under the same subject strategy, for a
/// record of every schema kind, twice (the second from the kept writer).
#[tokio::test]
async fn encode_writes_the_bytes_the_converter_writes() {
    use atlasmesh_schemas::WindowMetricsRecord;
    use schema_registry_converter::async_impl::avro::AvroEncoder;
    use schema_registry_converter::schema_registry_common::SubjectNameStrategy;
    let (url, _server) = atlasmesh_test_support::schema_registry::spawn_ephemeral()
        .await
        .unwrap();
    let codec = Codec::new(&url).unwrap();
    let converter = AvroEncoder::new(SrSettings::new(url.clone()));
    let topics = Topics::default();
    async fn same<T: serde::Serialize>(
        codec: &Codec,
        converter: &AvroEncoder,
        topic: &str,
        kind: SchemaKind,
        item: &T,
    ) {
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
            topic.to_string(),
            false,
            avro(kind.schema().to_string()),
        );
        let want = converter.encode_struct(item, &strategy).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                codec.encode(topic, kind, item).await.unwrap(),
                want,
                "{kind:?}"
            );
        }
    }
    same(
        &codec,
        &converter,
        &topics.telemetry,
        SchemaKind::Telemetry,
        &event(),
    )
    .await;
    let mut other = event();
    other.mission_id = None;
    other.fault_codes = vec!["E1".into(), "E2".into()];
    same(
        &codec,
        &converter,
        &topics.telemetry,
        SchemaKind::Telemetry,
        &other,
    )
    .await;
    let mark = WindowMetricsRecord::watermark(2, 4, 60_000, true);
    same(
        &codec,
        &converter,
        &topics.metrics,
        SchemaKind::Metrics,
        &mark,
    )
    .await;
    let dl = DeadLetterRecord {
        source_topic: "t".into(),
        source_partition: 3,
        source_offset: 42,
        pipeline: "telemetry".into(),
        reason: DeadLetterReason::Invalid,
        error: "bad".into(),
        original_key: None,
        original_value: Some(vec![0, 1, 2]),
        failed_at_ms: 9,
    };
    same(&codec, &converter, &topics.dlq, SchemaKind::Dlq, &dl).await;
    let me = MissionEventRecord {
        event_id: "v1:7:safety".into(),
        mission_id: "m1".into(),
        fleet_id: "f1".into(),
        vehicle_id: None,
        ts_ms: 7,
        kind: MissionEventKind::SafetyEvent,
        severity: None,
        detail: Some("d".into()),
        zone_id: Some("z".into()),
    };
    same(
        &codec,
        &converter,
        &topics.mission_events,
        SchemaKind::MissionEvents,
        &me,
    )
    .await;
    let re = ResourceEventRecord {
        event_id: "v1:8:occupy".into(),
        resource_id: "c1".into(),
        pool_id: "p1".into(),
        fleet_id: "f1".into(),
        vehicle_id: Some("v1".into()),
        ts_ms: 8,
        state: ResourceState::OutOfService,
    };
    same(
        &codec,
        &converter,
        &topics.resource_events,
        SchemaKind::ResourceEvents,
        &re,
    )
    .await;
    let cmd = CommandRecord {
        command_id: "c-1".into(),
        idempotency_key: "k-1".into(),
        kind: "resource_pool.create".into(),
        fleet_scope: vec!["f1".into(), "f2".into()],
        actor: "ops".into(),
        issued_at_ms: 10,
        payload_json: "{\"capacity\":8}".into(),
    };
    same(
        &codec,
        &converter,
        &topics.commands,
        SchemaKind::Commands,
        &cmd,
    )
    .await;
    let result = CommandResultRecord {
        command_id: "c-1".into(),
        status: CommandStatus::Rejected,
        reason: Some("unknown fleet".into()),
        entity_id: None,
        applied_at_ms: 11,
    };
    same(
        &codec,
        &converter,
        &topics.command_results,
        SchemaKind::CommandResults,
        &result,
    )
    .await;
    let note = CoordinationRecord {
        id: "m-1:f2".into(),
        message_id: "m-1".into(),
        conversation_id: "conv-1".into(),
        federation_id: "fed-1".into(),
        from_fleet_id: "f1".into(),
        to_fleet_id: "f2".into(),
        kind: atlasmesh_core::domain::coordination::CommunicationKind::Handover,
        body_json: "{}".into(),
        sent_at_ms: 12,
    };
    same(
        &codec,
        &converter,
        &topics.coordination,
        SchemaKind::Coordination,
        &note,
    )
    .await;
    // A second topic of one kind is registered and kept on its own.
    same(
        &codec,
        &converter,
        "other.metrics",
        SchemaKind::Metrics,
        &mark,
    )
    .await;
}
