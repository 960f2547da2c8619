//! Poison records through the real broker and the real worker (issue 10 items 1 to 5): text
//! with a NUL character (which PostgreSQL cannot store) and instants outside years 0001..9999
//! are dead-lettered as `invalid`, Avro bombs and trailing bytes as `undecodable`, forged
//! commands as `unauthenticated`, each with a reason, and the records behind them are processed.

use std::time::{Duration, Instant};

use atlasmesh_schemas::bounded::zigzag;
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
        records.push(
            env.signed(OutRecord {
                topic: env.cfg.topics.commands.clone(),
                key: Some(b"one-aggregate".to_vec()),
                payload: codec
                    .encode(&env.cfg.topics.commands, SchemaKind::Commands, c)
                    .await
                    .unwrap(),
                headers: vec![],
                partition: None,
                timestamp_ms: None,
            }),
        );
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
            sent_ms: None,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_tampered_commands_are_refused_and_the_signed_one_applies() {
    let env = TestEnv::new("forgedcmd");
    env.migrate();
    let now = atlasmesh_core::clock::now_ms();
    let tag = format!("forged-{}-{now}", std::process::id());
    let cmd = |n: &str, scope: &str| CommandRecord {
        command_id: format!("{tag}-{n}"),
        idempotency_key: format!("{tag}-key-{n}"),
        kind: "pool.create".into(),
        fleet_scope: vec![scope.into()],
        actor: "intruder".into(),
        issued_at_ms: now,
        payload_json: serde_json::json!({
            "fleet_id": "fleet-f", "name": format!("{tag}-{n}"),
            "resource_type": "charger", "capacity": 2
        })
        .to_string(),
    };
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let encode = |c: CommandRecord| {
        let codec = codec.clone();
        let topic = env.cfg.topics.commands.clone();
        async move {
            OutRecord {
                topic: topic.clone(),
                key: Some(b"one-aggregate".to_vec()),
                payload: codec
                    .encode(&topic, SchemaKind::Commands, &c)
                    .await
                    .unwrap(),
                headers: vec![],
                partition: None,
                timestamp_ms: None,
            }
        }
    };
    // 1. Unsigned, with every fleet in scope.
    let unsigned = encode(cmd("unsigned", "*")).await;
    // 2. Signed with a key the worker does not hold under the worker's key id.
    let mut wrong_key = encode(cmd("wrong-key", "*")).await;
    let id = env
        .cfg
        .command_signing
        .keys
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let foreign = atlasmesh_core::command_signing::SigningKeys::parse(&format!(
        "{id}:an-attacker-chosen-secret-of-32-bytes!"
    ))
    .unwrap();
    let sig = foreign
        .sign(wrong_key.key.as_deref(), &wrong_key.payload)
        .unwrap();
    wrong_key.headers.push((
        atlasmesh_core::command_signing::HEADER.into(),
        sig.into_bytes(),
    ));
    // 3. Validly signed, then its scope widened on the way (the bytes changed).
    let signed_narrow = env.signed(encode(cmd("tampered", "fleet-f")).await);
    let widened = encode(cmd("tampered", "*")).await;
    let tampered = OutRecord {
        payload: widened.payload,
        ..signed_narrow
    };
    // 4. Validly signed: applies.
    let good = env.signed(encode(cmd("good", "fleet-f")).await);
    KafkaProducer::new(&env.cfg.kafka)
        .unwrap()
        .send_all("kafka", &[unsigned, wrong_key, tampered, good])
        .await
        .unwrap();

    let mut worker = env.spawn_worker_args(0, &["--pipelines", "commands"], &[]);
    let pg = env.pg().await;
    let started = Instant::now();
    let pools = loop {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM resource_pools WHERE name LIKE $1 ORDER BY name")
                .bind(format!("{tag}-%"))
                .fetch_all(&pg)
                .await
                .unwrap();
        if !names.is_empty() {
            break names;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the signed command was not applied; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(pools, vec![format!("{tag}-good")]);
    let dead = dead_letters(&env, 3).await;
    let errors: Vec<&str> = dead.iter().map(|d| d.error.as_str()).collect();
    assert!(
        dead.iter().all(|d| d.reason.as_str() == "unauthenticated"),
        "{dead:?}"
    );
    assert!(errors[0].starts_with("unsigned"), "{errors:?}");
    assert!(errors[1].starts_with("bad signature"), "{errors:?}");
    assert!(errors[2].starts_with("bad signature"), "{errors:?}");
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker must go on"
    );
    sigterm(&mut worker);
}

/// Registers `schema` (Avro JSON) under `subject` in the test registry; returns its id.
async fn register(env: &TestEnv, subject: &str, schema: &str) -> u32 {
    let res: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/subjects/{subject}/versions",
            env.cfg.schema_registry.url.trim_end_matches('/')
        ))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": schema }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["id"].as_u64().unwrap() as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_bombs_and_trailing_bytes_are_undecodable_and_the_rest_counted() {
    let env = TestEnv::new("avrobomb");
    env.migrate();
    let items = Simulator::new(SimConfig {
        seed: 12,
        fleets: 1,
        vehicles_per_fleet: 3,
        ..SimConfig::default()
    })
    .take(300);
    let counted = valid_counted_events(&items).len() as u64;
    let template = items.iter().find_map(Emitted::event).unwrap().clone();
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let framed = codec
        .encode(&env.cfg.topics.telemetry, SchemaKind::Telemetry, &template)
        .await
        .unwrap();
    let datum = &framed[5..];
    let frame = |id: u32, body: &[u8]| {
        let mut b = vec![0u8];
        b.extend(id.to_be_bytes());
        b.extend(body);
        b
    };
    // A writer schema the topic's reader can resolve (an extra field is ignored), whose extra
    // field is a nested array of nulls: a few bytes declare ~2^58 values.
    let mut schema: serde_json::Value =
        serde_json::from_str(SchemaKind::Telemetry.schema()).unwrap();
    schema["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "junk",
            "type": {"type": "array", "items": {"type": "array", "items": "null"}},
            "default": []
        }));
    let bomb_id = register(
        &env,
        &format!("{}-bomb", env.cfg.topics.telemetry),
        &schema.to_string(),
    )
    .await;
    let mut deep = datum.to_vec();
    deep.extend(zigzag(1 << 29));
    deep.extend(zigzag(1 << 29));
    deep.extend(zigzag(0));
    deep.extend(zigzag(0));
    // Many small blocks: 12 bytes, ~440 MB in apache-avro before.
    let mut small = datum.to_vec();
    for _ in 0..4 {
        small.extend(zigzag(1));
        small.extend(zigzag(1 << 20));
    }
    small.extend(zigzag(0));
    // A schema the topic's reader cannot resolve at all (array<array<null>>).
    let alien_id = register(
        &env,
        &format!("{}-alien", env.cfg.topics.telemetry),
        r#"{"type":"array","items":{"type":"array","items":"null"}}"#,
    )
    .await;
    let mut alien = zigzag(1 << 29);
    alien.extend(zigzag(1 << 29));
    // A valid record followed by a byte.
    let mut trailing = framed.clone();
    trailing.push(0);
    let bad = [
        frame(bomb_id, &deep),
        frame(bomb_id, &small),
        frame(alien_id, &alien),
        trailing,
    ];
    let records: Vec<OutRecord> = bad
        .iter()
        .map(|payload| OutRecord {
            topic: env.cfg.topics.telemetry.clone(),
            key: Some(template.vehicle_id.clone().into_bytes()),
            payload: payload.clone(),
            headers: vec![],
            partition: None,
            timestamp_ms: None,
        })
        .collect();
    KafkaProducer::new(&env.cfg.kafka)
        .unwrap()
        .send_all("kafka", &records)
        .await
        .unwrap();
    env.produce(&items).await;
    let mut worker = env.spawn_worker(0);
    let pg = env.pg().await;
    env.wait_checkpointed(
        &pg,
        (bad.len() + items.len()) as i64,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(env.raw_count().await, counted);
    let dead = dead_letters(&env, bad.len()).await;
    assert!(
        dead.iter().all(|d| d.reason.as_str() == "undecodable"),
        "{dead:?}"
    );
    let errors: Vec<&str> = dead.iter().map(|d| d.error.as_str()).collect();
    assert!(errors[0].contains("max_values"), "{errors:?}");
    assert!(errors[1].contains("max_values"), "{errors:?}");
    assert!(
        errors[2].contains("expected") || errors[2].contains("resolved"),
        "{errors:?}"
    );
    assert!(errors[3].contains("trailing"), "{errors:?}");
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker must go on"
    );
    sigterm(&mut worker);
}
