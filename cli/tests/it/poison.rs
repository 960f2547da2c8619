//! Poison records through the real broker and the real worker (issue 10 items 1 and 3): text
//! with a NUL character (which PostgreSQL cannot store) and instants outside years 0001..9999
//! are dead-lettered as `invalid` with a reason, and the records behind them are processed.

use std::time::{Duration, Instant};

use atlasmesh_schemas::{Codec, CommandRecord, DeadLetterRecord, SchemaKind};
use atlasmesh_simulator::{valid_counted_events, Emitted, EventKind, SimConfig, Simulator};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use rdkafka::Message;

use crate::common::{sigterm, TestEnv};

/// The first `n` dead letters of the test's DLQ topic.
async fn dead_letters(env: &TestEnv, n: usize) -> Vec<DeadLetterRecord> {
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let consumer = env.consumer(&env.cfg.topics.dlq, "dlq-read");
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} dead letters: {out:?}", out.len()))
            .unwrap();
        let (_, value) = codec.decode_value(m.payload().unwrap()).await.unwrap();
        out.push(apache_avro::from_value(&value).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_commands_are_dead_lettered_and_the_next_one_applies() {
    let env = TestEnv::new("poisoncmd");
    env.migrate();
    let now = atlasmesh_core::clock::now_ms();
    let tag = format!("poison-{}-{now}", std::process::id());
    let good = |n: &str| CommandRecord {
        command_id: format!("{tag}-{n}"),
        idempotency_key: format!("{tag}-key-{n}"),
        kind: "pool.create".into(),
        fleet_scope: vec!["fleet-p".into()],
        actor: "operator-p".into(),
        issued_at_ms: now,
        payload_json: serde_json::json!({
            "fleet_id": "fleet-p", "name": format!("{tag}-{n}"),
            "resource_type": "charger", "capacity": 2
        })
        .to_string(),
    };
    let mut poison = Vec::new();
    for (n, f) in [
        (
            "id",
            (|c: &mut CommandRecord| c.command_id.push('\0')) as fn(&mut CommandRecord),
        ),
        ("actor", |c| c.actor = "op\0".into()),
        ("key", |c| c.idempotency_key.push('\0')),
        ("kind", |c| c.kind = "pool.create\0".into()),
        ("scope", |c| c.fleet_scope.push("fleet\0x".into())),
        ("payload", |c| {
            c.payload_json =
                r#"{"fleet_id":"fleet-p","name":"a\u0000b","resource_type":"charger","capacity":2}"#
                    .into()
        }),
        ("max", |c| c.issued_at_ms = i64::MAX),
        ("min", |c| c.issued_at_ms = i64::MIN),
    ] {
        let mut c = good(n);
        f(&mut c);
        poison.push(c);
    }
    let last = good("after");
    // One key: the poison lands in the same partition, in front of the valid command.
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let mut records = Vec::new();
    for c in poison.iter().chain(std::iter::once(&last)) {
        records.push(OutRecord {
            topic: env.cfg.topics.commands.clone(),
            key: Some(b"one-aggregate".to_vec()),
            payload: codec
                .encode(&env.cfg.topics.commands, SchemaKind::Commands, c)
                .await
                .unwrap(),
            headers: vec![],
            partition: None,
        });
    }
    KafkaProducer::new(&env.cfg.kafka)
        .unwrap()
        .send_all("kafka", &records)
        .await
        .unwrap();

    let mut worker = env.spawn_worker_args(0, &["--pipelines", "commands"], &[]);
    let pg = env.pg().await;
    let started = Instant::now();
    loop {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM command_log WHERE command_id = $1")
                .bind(&last.command_id)
                .fetch_optional(&pg)
                .await
                .unwrap();
        if status.as_deref() == Some("applied") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the command behind the poison was not applied ({status:?}); logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dead = dead_letters(&env, poison.len()).await;
    for d in &dead {
        assert_eq!(d.reason.as_str(), "invalid", "{d:?}");
        assert_eq!(d.source_topic, env.cfg.topics.commands);
        assert!(!d.error.is_empty());
    }
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker must go on"
    );
    sigterm(&mut worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_with_nul_in_an_id_is_dead_lettered_and_the_rest_counted() {
    let env = TestEnv::new("poisontel");
    env.migrate();
    let items = Simulator::new(SimConfig {
        seed: 11,
        fleets: 1,
        vehicles_per_fleet: 3,
        ..SimConfig::default()
    })
    .take(600);
    let counted = valid_counted_events(&items).len() as u64;
    let template = items.iter().find_map(Emitted::event).unwrap().clone();
    let mut poison = Vec::new();
    for (i, f) in [
        (|e: &mut atlasmesh_core::TelemetryEvent| e.vehicle_id = "x\0y".into())
            as fn(&mut atlasmesh_core::TelemetryEvent),
        |e| e.fleet_id = "fleet\0".into(),
        |e| e.mission_id = Some("m\0".into()),
        |e| e.fault_codes = vec!["E1".into(), "E\0".into()],
    ]
    .into_iter()
    .enumerate()
    {
        let mut event = template.clone();
        event.event_id = format!("poison-{i}");
        f(&mut event);
        poison.push(Emitted::Event {
            key: event.vehicle_id.clone(),
            event,
            kind: EventKind::Invalid,
        });
    }
    env.produce(&poison).await;
    env.produce(&items).await;
    let mut worker = env.spawn_worker(0);
    let pg = env.pg().await;
    env.wait_checkpointed(
        &pg,
        (poison.len() + items.len()) as i64,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(env.raw_count().await, counted);
    let dead = dead_letters(&env, poison.len()).await;
    assert!(
        dead.iter()
            .all(|d| d.reason.as_str() == "invalid" && d.error.contains("NUL")),
        "{dead:?}"
    );
    sigterm(&mut worker);
}
