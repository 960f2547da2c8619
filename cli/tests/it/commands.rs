//! The command path end to end: API → fleet.commands.v1 → command worker → PostgreSQL, with
//! the real API and worker processes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use atlasmesh_core::{Role, Scope};
use atlasmesh_schemas::{Codec, CommandRecord, SchemaKind};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{sigkill, sigterm, TestEnv};

/// The entity the tests create: a resource pool (fleet-resources).
const POOLS: &str = "/api/v1/fleet-resources/pools";

fn pool_body(fleet: &str, name: &str) -> Value {
    json!({ "fleet_id": fleet, "name": name, "resource_type": "charger", "capacity": 4 })
}

async fn count(pg: &sqlx::PgPool, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sql).bind(bind).fetch_one(pg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_idempotency_key_is_applied_once() {
    let env = TestEnv::new("cmdidem");
    env.migrate();
    let (mut api, base) = env.spawn_api(0).await;
    let mut worker = env.spawn_worker_with(0, &[]);
    let pg = env.pg().await;
    let http = reqwest::Client::new();
    let token = env.token("operator-a", Role::Operator, &Scope::fleets(["fleet-a"]));
    // Unique per run: command_log outlives test runs in the shared test database.
    let name = format!("pool-{}-{}", std::process::id(), atlasmesh_pipelines::telemetry::now_ms());
    let (k1, k2) = (format!("{name}-k1"), format!("{name}-k2"));

    // First request, waiting for the outcome: 201 with the entity.
    let post = |key: &str, body: &Value, wait: bool| {
        let url = format!("{base}{POOLS}{}", if wait { "?wait=true" } else { "" });
        http.post(url).bearer_auth(&token).header("Idempotency-Key", key).json(body).send()
    };
    let r1 = post(&k1, &pool_body("fleet-a", &name), true).await.unwrap();
    assert_eq!(r1.status(), StatusCode::CREATED, "{:?}", r1.text().await);
    let v1: Value = r1.json().await.unwrap();
    let (command_id, entity_id) = (v1["command_id"].as_str().unwrap().to_string(), v1["entity_id"].as_str().unwrap().to_string());

    // The same request again: the same command, not a second pool.
    let r2 = post(&k1, &pool_body("fleet-a", &name), true).await.unwrap();
    assert_eq!(r2.status(), StatusCode::CREATED);
    let v2: Value = r2.json().await.unwrap();
    assert_eq!(v2["command_id"], v1["command_id"]);
    assert_eq!(v2["entity_id"], v1["entity_id"]);
    // Without wait the repeat is a 202 pointing at the same command.
    let r3 = post(&k1, &pool_body("fleet-a", &name), false).await.unwrap();
    assert_eq!(r3.status(), StatusCode::ACCEPTED);
    assert_eq!(r3.headers()["location"], format!("/api/v1/commands/{command_id}").as_str());

    // The same key with another body is a conflict.
    let r4 = post(&k1, &pool_body("fleet-a", "another"), false).await.unwrap();
    assert_eq!(r4.status(), StatusCode::CONFLICT);
    let e: Value = r4.json().await.unwrap();
    assert_eq!(e["error"]["code"], "conflict");

    assert_eq!(count(&pg, "SELECT count(*) FROM command_log WHERE idempotency_key = $1", &k1).await, 1);
    assert_eq!(count(&pg, "SELECT count(*) FROM audit_log WHERE command_id = $1", &command_id).await, 1);
    assert_eq!(count(&pg, "SELECT count(*) FROM resource_pools WHERE name = $1", &name).await, 1);

    // A plain 202, then the command's state and read-your-writes through the token.
    let r5 = post(&k2, &pool_body("fleet-a", &format!("{name}-2")), false).await.unwrap();
    assert_eq!(r5.status(), StatusCode::ACCEPTED);
    let token_header = r5.headers()["x-consistency-token"].to_str().unwrap().to_string();
    let location = r5.headers()["location"].to_str().unwrap().to_string();
    let rs = http.get(format!("{base}{location}?wait=true")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(rs.status(), StatusCode::OK);
    let state: Value = rs.json().await.unwrap();
    assert_eq!(state["status"], "applied");
    let id2 = state["entity_id"].as_str().unwrap();
    let read = http.get(format!("{base}{POOLS}/{id2}")).bearer_auth(&token).header("X-Consistency-Token", &token_header).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let pool: Value = read.json().await.unwrap();
    assert_eq!(pool["name"], format!("{name}-2"));
    let got = http.get(format!("{base}{POOLS}/{entity_id}")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);

    // Another caller does not see these commands.
    let other = env.token("operator-b", Role::Operator, &Scope::fleets(["fleet-b"]));
    let r = http.get(format!("{base}/api/v1/commands/{command_id}")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http.get(format!("{base}/api/v1/commands/{command_id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    sigterm(&mut worker);
    sigterm(&mut api);
}

/// The worker applies commands on several lanes at once; commands about one entity share a
/// lane and apply in submission order, while other commands run beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_about_one_entity_apply_in_submission_order() {
    let env = TestEnv::new("cmdorder");
    env.migrate();
    let (mut api, base) = env.spawn_api(0).await;
    let mut worker = env.spawn_worker_args(0, &["--pipelines", "commands"], &[]);
    let pg = env.pg().await;
    let http = reqwest::Client::new();
    let token = env.token("operator-a", Role::Operator, &Scope::fleets(["fleet-a"]));
    let name = format!("order-{}-{}", std::process::id(), atlasmesh_pipelines::telemetry::now_ms());
    let r = http.post(format!("{base}{POOLS}?wait=true")).bearer_auth(&token).json(&pool_body("fleet-a", &name)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let pool = r.json::<Value>().await.unwrap()["entity_id"].as_str().unwrap().to_string();
    // 60 capacity changes of the pool, each submitted after the previous one was accepted,
    // interleaved with creates of other pools (other keys, other lanes).
    let mut commands = Vec::new();
    for capacity in 1..=60 {
        let r = http.patch(format!("{base}{POOLS}/{pool}")).bearer_auth(&token).json(&json!({ "capacity": capacity })).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        commands.push(r.json::<Value>().await.unwrap()["command_id"].as_str().unwrap().to_string());
        let other = pool_body("fleet-a", &format!("{name}-other-{capacity}"));
        let r = http.post(format!("{base}{POOLS}")).bearer_auth(&token).json(&other).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        commands.push(r.json::<Value>().await.unwrap()["command_id"].as_str().unwrap().to_string());
    }
    let started = Instant::now();
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM command_log WHERE command_id = ANY($1) AND status = 'pending'")
            .bind(&commands)
            .fetch_one(&pg)
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{pending} commands still pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM command_log WHERE command_id = ANY($1) AND status = 'applied'")
        .bind(&commands)
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(applied, 120);
    // Audit rows are numbered as they are written: the pool's changes in submission order.
    let order: Vec<i64> = sqlx::query_scalar(
        "SELECT (payload->>'capacity')::bigint FROM audit_log WHERE entity_id = $1 AND kind = 'pool.update' ORDER BY id",
    )
    .bind(&pool)
    .fetch_all(&pg)
    .await
    .unwrap();
    assert_eq!(order, (1..=60).collect::<Vec<i64>>());
    let capacity: i64 = sqlx::query_scalar("SELECT capacity FROM resource_pools WHERE id = $1").bind(&pool).fetch_one(&pg).await.unwrap();
    assert_eq!(capacity, 60);
    sigterm(&mut worker);
    sigterm(&mut api);
}

/// Commands accepted while the worker is SIGKILLed at random points (and some of them produced
/// a second time, as a retrying producer would) are each applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_batch_applies_every_command_once() {
    const N: usize = 1_500;
    let env = TestEnv::new("cmdkill");
    env.migrate();
    let (mut api, base) = env.spawn_api(0).await;
    let pg = env.pg().await;
    let token = env.token("operator-k", Role::Operator, &Scope::fleets(["fleet-k"]));
    let prefix = format!("kill-{}", std::process::id());

    // Submit everything first (202s), concurrently.
    let http = reqwest::Client::new();
    let mut accepted = Vec::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
        let futs = chunk.iter().map(|i| {
            let body = pool_body("fleet-k", &format!("{prefix}-{i}"));
            http.post(format!("{base}{POOLS}")).bearer_auth(&token).json(&body).send()
        });
        for r in futures::future::join_all(futs).await {
            let r = r.unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            let v: Value = r.json().await.unwrap();
            accepted.push(v["command_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(accepted.iter().collect::<HashSet<_>>().len(), N);

    // Duplicate 200 of them on the topic, as a producer retry would.
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let rows: Vec<(String, String, String, Vec<String>, String, String, i64)> = sqlx::query_as(
        "SELECT command_id, idempotency_key, kind, fleet_scope, actor, payload::text, (extract(epoch from issued_at) * 1000)::bigint
         FROM command_log WHERE command_id = ANY($1) LIMIT 200",
    )
    .bind(&accepted)
    .fetch_all(&pg)
    .await
    .unwrap();
    let mut dups = Vec::new();
    for (command_id, idempotency_key, kind, fleet_scope, actor, payload_json, issued_at_ms) in rows {
        let rec = CommandRecord { command_id: command_id.clone(), idempotency_key, kind, fleet_scope, actor, issued_at_ms, payload_json };
        let payload = codec.encode(&env.cfg.topics.commands, SchemaKind::Commands, &rec).await.unwrap();
        dups.push(OutRecord { topic: env.cfg.topics.commands.clone(), key: Some(command_id.into_bytes()), payload, headers: vec![] });
    }
    KafkaProducer::new(&env.cfg.kafka).unwrap().send_all("kafka", &dups).await.unwrap();

    let decided = |pg: sqlx::PgPool, ids: Vec<String>| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM command_log WHERE command_id = ANY($1) AND status <> 'pending'")
            .bind(&ids)
            .fetch_one(&pg)
            .await
            .unwrap()
    };
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut worker = env.spawn_worker_with(0, &[("ATLASMESH_RUNNER__CHECKPOINT_INTERVAL_MS", "300")]);
    let mut kills = 0;
    let mut last = 0;
    for n in 1..=3 {
        let started = Instant::now();
        while decided(pg.clone(), accepted.clone()).await <= last && started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..400))).await;
        let progress = decided(pg.clone(), accepted.clone()).await;
        if progress as usize >= N {
            break;
        }
        sigkill(&mut worker);
        kills += 1;
        last = decided(pg.clone(), accepted.clone()).await;
        eprintln!("command kill test (seed {seed}): SIGKILL #{kills} at {progress}/{N} decided");
        worker = env.spawn_worker_with(n, &[("ATLASMESH_RUNNER__CHECKPOINT_INTERVAL_MS", "300")]);
    }
    assert!(kills >= 2, "the worker finished before two kills landed (seed {seed}); logs in {}", env.log_dir.display());
    let started = Instant::now();
    while (decided(pg.clone(), accepted.clone()).await as usize) < N {
        assert!(started.elapsed() < Duration::from_secs(120), "not every command decided; logs in {}", env.log_dir.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the duplicates that sit behind the last command be consumed too.
    let topic_end: i64 = (N + 200) as i64;
    let started = Instant::now();
    loop {
        let done: Option<i64> = sqlx::query_scalar("SELECT sum(next_offset)::bigint FROM stream_checkpoints WHERE pipeline = 'commands' AND topic = $1")
            .bind(&env.cfg.topics.commands)
            .fetch_one(&pg)
            .await
            .unwrap();
        if done.unwrap_or(0) >= topic_end {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "commands topic not fully consumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM command_log WHERE command_id = ANY($1) AND status = 'applied'")
        .bind(&accepted)
        .fetch_one(&pg)
        .await
        .unwrap();
    let audits: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE command_id = ANY($1)").bind(&accepted).fetch_one(&pg).await.unwrap();
    let pools: i64 = sqlx::query_scalar("SELECT count(*) FROM resource_pools WHERE name LIKE $1 || '-%'").bind(&prefix).fetch_one(&pg).await.unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT name) FROM resource_pools WHERE name LIKE $1 || '-%'").bind(&prefix).fetch_one(&pg).await.unwrap();
    assert_eq!((applied, audits, pools, distinct), (N as i64, N as i64, N as i64, N as i64), "seed {seed}");
    sigterm(&mut worker);
    sigterm(&mut api);
}
