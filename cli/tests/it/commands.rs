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
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(pg)
        .await
        .unwrap()
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
    let name = format!(
        "pool-{}-{}",
        std::process::id(),
        atlasmesh_core::clock::now_ms()
    );
    let (k1, k2) = (format!("{name}-k1"), format!("{name}-k2"));

    // First request, waiting for the outcome: 201 with the entity.
    let post = |key: &str, body: &Value, wait: bool| {
        let url = format!("{base}{POOLS}{}", if wait { "?wait=true" } else { "" });
        http.post(url)
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let r1 = post(&k1, &pool_body("fleet-a", &name), true).await.unwrap();
    assert_eq!(r1.status(), StatusCode::CREATED, "{:?}", r1.text().await);
    let v1: Value = r1.json().await.unwrap();
    let (command_id, entity_id) = (
        v1["command_id"].as_str().unwrap().to_string(),
        v1["entity_id"].as_str().unwrap().to_string(),
    );

    // The same request again: the same command, not a second pool.
    let r2 = post(&k1, &pool_body("fleet-a", &name), true).await.unwrap();
    assert_eq!(r2.status(), StatusCode::CREATED);
    let v2: Value = r2.json().await.unwrap();
    assert_eq!(v2["command_id"], v1["command_id"]);
    assert_eq!(v2["entity_id"], v1["entity_id"]);
    // Without wait the repeat is a 202 pointing at the same command.
    let r3 = post(&k1, &pool_body("fleet-a", &name), false)
        .await
        .unwrap();
    assert_eq!(r3.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r3.headers()["location"],
        format!("/api/v1/commands/{command_id}").as_str()
    );

    // The same key with another body is a conflict.
    let r4 = post(&k1, &pool_body("fleet-a", "another"), false)
        .await
        .unwrap();
    assert_eq!(r4.status(), StatusCode::CONFLICT);
    let e: Value = r4.json().await.unwrap();
    assert_eq!(e["error"]["code"], "conflict");

    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM command_log WHERE idempotency_key = $1",
            &k1
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM audit_log WHERE command_id = $1",
            &command_id
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM resource_pools WHERE name = $1",
            &name
        )
        .await,
        1
    );

    // A plain 202, then the command's state and read-your-writes through the token.
    let r5 = post(&k2, &pool_body("fleet-a", &format!("{name}-2")), false)
        .await
        .unwrap();
    assert_eq!(r5.status(), StatusCode::ACCEPTED);
    let token_header = r5.headers()["x-consistency-token"]
        .to_str()
        .unwrap()
        .to_string();
    let location = r5.headers()["location"].to_str().unwrap().to_string();
    let rs = http
        .get(format!("{base}{location}?wait=true"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rs.status(), StatusCode::OK);
    let state: Value = rs.json().await.unwrap();
    assert_eq!(state["status"], "applied");
    let id2 = state["entity_id"].as_str().unwrap();
    let read = http
        .get(format!("{base}{POOLS}/{id2}"))
        .bearer_auth(&token)
        .header("X-Consistency-Token", &token_header)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let pool: Value = read.json().await.unwrap();
    assert_eq!(pool["name"], format!("{name}-2"));
    let got = http
        .get(format!("{base}{POOLS}/{entity_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);

    // Another caller does not see these commands.
    let other = env.token("operator-b", Role::Operator, &Scope::fleets(["fleet-b"]));
    let r = http
        .get(format!("{base}/api/v1/commands/{command_id}"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http
        .get(format!("{base}/api/v1/commands/{command_id}"))
        .send()
        .await
        .unwrap();
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
    let name = format!(
        "order-{}-{}",
        std::process::id(),
        atlasmesh_core::clock::now_ms()
    );
    let r = http
        .post(format!("{base}{POOLS}?wait=true"))
        .bearer_auth(&token)
        .json(&pool_body("fleet-a", &name))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let pool = r.json::<Value>().await.unwrap()["entity_id"]
        .as_str()
        .unwrap()
        .to_string();
    // 60 capacity changes of the pool, each submitted after the previous one was accepted,
    // interleaved with creates of other pools (other keys, other lanes).
    let mut commands = Vec::new();
    for capacity in 1..=60 {
        let r = http
            .patch(format!("{base}{POOLS}/{pool}"))
            .bearer_auth(&token)
            .json(&json!({ "capacity": capacity }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        commands.push(
            r.json::<Value>().await.unwrap()["command_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let other = pool_body("fleet-a", &format!("{name}-other-{capacity}"));
        let r = http
            .post(format!("{base}{POOLS}"))
            .bearer_auth(&token)
            .json(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        commands.push(
            r.json::<Value>().await.unwrap()["command_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let started = Instant::now();
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM command_log WHERE command_id = ANY($1) AND status = 'pending'",
        )
        .bind(&commands)
        .fetch_one(&pg)
        .await
        .unwrap();
        if pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{pending} commands still pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM command_log WHERE command_id = ANY($1) AND status = 'applied'",
    )
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
    let capacity: i64 = sqlx::query_scalar("SELECT capacity FROM resource_pools WHERE id = $1")
        .bind(&pool)
        .fetch_one(&pg)
        .await
        .unwrap();
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
            http.post(format!("{base}{POOLS}"))
                .bearer_auth(&token)
                .json(&body)
                .send()
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
    for (command_id, idempotency_key, kind, fleet_scope, actor, payload_json, issued_at_ms) in rows
    {
        let rec = CommandRecord {
            command_id: command_id.clone(),
            idempotency_key,
            kind,
            fleet_scope,
            actor,
            issued_at_ms,
            payload_json,
        };
        let payload = codec
            .encode(&env.cfg.topics.commands, SchemaKind::Commands, &rec)
            .await
            .unwrap();
        dups.push(env.signed(OutRecord {
            topic: env.cfg.topics.commands.clone(),
            key: Some(command_id.into_bytes()),
            payload,
            headers: vec![],
            partition: None,
            timestamp_ms: None,
        }));
    }
    KafkaProducer::new(&env.cfg.kafka)
        .unwrap()
        .send_all("kafka", &dups)
        .await
        .unwrap();

    let decided = |pg: sqlx::PgPool, ids: Vec<String>| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM command_log WHERE command_id = ANY($1) AND status <> 'pending'",
        )
        .bind(&ids)
        .fetch_one(&pg)
        .await
        .unwrap()
    };
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Only the pipeline under test: every other pipeline's consumers would slow each restart.
    // At most 25 commands per checkpoint: ~60 checkpoints per run, so the kills land mid-run
    // however fast the build consumes (with a backlog's batches the first checkpoint decided
    // nine in ten and the run ended before the second kill).
    let spawn = |n: usize| {
        env.spawn_worker_args(
            n,
            &["--pipelines", "commands"],
            &[
                ("ATLASMESH_RUNNER__CHECKPOINT_INTERVAL_MS", "300"),
                ("ATLASMESH_RUNNER__MAX_BATCH_EVENTS", "25"),
            ],
        )
    };
    let mut worker = spawn(0);
    let mut kills = 0;
    let mut last = 0;
    for n in 1..=3 {
        let started = Instant::now();
        while decided(pg.clone(), accepted.clone()).await <= last
            && started.elapsed() < Duration::from_secs(60)
        {
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
        worker = spawn(n);
    }
    assert!(
        kills >= 2,
        "the worker finished before two kills landed (seed {seed}); logs in {}",
        env.log_dir.display()
    );
    let started = Instant::now();
    while (decided(pg.clone(), accepted.clone()).await as usize) < N {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not every command decided; logs in {}",
            env.log_dir.display()
        );
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
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "commands topic not fully consumed; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM command_log WHERE command_id = ANY($1) AND status = 'applied'",
    )
    .bind(&accepted)
    .fetch_one(&pg)
    .await
    .unwrap();
    let audits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE command_id = ANY($1)")
            .bind(&accepted)
            .fetch_one(&pg)
            .await
            .unwrap();
    let pools: i64 =
        sqlx::query_scalar("SELECT count(*) FROM resource_pools WHERE name LIKE $1 || '-%'")
            .bind(&prefix)
            .fetch_one(&pg)
            .await
            .unwrap();
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT name) FROM resource_pools WHERE name LIKE $1 || '-%'",
    )
    .bind(&prefix)
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(
        (applied, audits, pools, distinct),
        (N as i64, N as i64, N as i64, N as i64),
        "seed {seed}"
    );
    sigterm(&mut worker);
    sigterm(&mut api);
}

/// A lane applies the commands queued in it together, in one transaction
/// (`atlasmesh_pipelines::commands::apply_group`): a command rejected in the middle of a group
/// — here by a constraint, after it wrote — is rolled back to its own savepoint and rejected
/// alone, as is one whose idempotency key is another command's; the others are applied and
/// committed together. Replaying the group changes nothing; an error rolls back the whole group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_amid_a_group_rejects_only_that_command() {
    use atlasmesh_pipelines::commands::{apply_group, apply_once, GroupCommand};
    use atlasmesh_schemas::CommandStatus;

    let env = TestEnv::new("cmdgroup");
    env.migrate();
    let pg = env.pg().await;
    let tag = format!(
        "group-{}-{}",
        std::process::id(),
        atlasmesh_core::clock::now_ms()
    );
    let fleet = "fleet-g";
    let cmd = |n: &str, kind: &str, key: &str, payload: Value| CommandRecord {
        command_id: format!("{tag}-{n}"),
        idempotency_key: format!("{tag}-{key}"),
        kind: kind.into(),
        fleet_scope: vec![fleet.into()],
        actor: "operator-g".into(),
        issued_at_ms: atlasmesh_core::clock::now_ms(),
        payload_json: payload.to_string(),
    };
    let bench = json!({ "fleet_id": fleet, "name": format!("{tag}-bench"), "metric": "utilization", "target_value": 0.8, "higher_is_better": true });
    let cmds = [
        cmd(
            "1",
            "pool.create",
            "k1",
            pool_body(fleet, &format!("{tag}-p1")),
        ),
        cmd("2", "benchmark.create", "k2", bench.clone()),
        // The same benchmark name in the fleet: the insert violates the unique constraint.
        cmd("3", "benchmark.create", "k3", bench),
        // Command 1's idempotency key: not recorded, rejected.
        cmd(
            "4",
            "pool.create",
            "k1",
            pool_body(fleet, &format!("{tag}-p4")),
        ),
        // A duplicate of command 1 (a producer retry): decided already, earlier in the group.
        cmd(
            "1",
            "pool.create",
            "k1",
            pool_body(fleet, &format!("{tag}-p1")),
        ),
        cmd(
            "5",
            "pool.create",
            "k5",
            pool_body(fleet, &format!("{tag}-p5")),
        ),
    ];
    let group: Vec<GroupCommand<'_>> = cmds
        .iter()
        .enumerate()
        .map(|(i, cmd)| GroupCommand {
            cmd,
            partition: 0,
            offset: 100 + i as i64,
        })
        .collect();
    let decisions = apply_group(&pg, &group).await.unwrap();
    let statuses: Vec<CommandStatus> = decisions.iter().map(|d| d.status).collect();
    use CommandStatus::{Applied, Rejected};
    assert_eq!(
        statuses,
        [Applied, Applied, Rejected, Rejected, Applied, Applied],
        "{decisions:?}"
    );
    let reason = decisions[2].reason.as_deref().unwrap();
    assert!(reason.contains("perf_benchmarks_name_unique"), "{reason}");
    assert!(
        decisions[3]
            .reason
            .as_deref()
            .unwrap()
            .contains("belongs to another command"),
        "{:?}",
        decisions[3]
    );
    assert_eq!(
        decisions[4], decisions[0],
        "the duplicate gets the first decision"
    );
    assert_eq!(
        decisions[0].entity_id.as_deref(),
        Some(format!("{tag}-1").as_str())
    );

    // What was kept: commands 1, 2, 5 applied, 3 rejected (nothing of it written), 4 absent;
    // one audit row each; all decided in one transaction (one `now()`).
    let rows: Vec<(String, String, Option<i64>, i64)> = sqlx::query_as(
        "SELECT command_id, status, source_offset, (extract(epoch from applied_at) * 1000000)::bigint
         FROM command_log WHERE command_id LIKE $1 || '-%' ORDER BY command_id",
    )
    .bind(&tag)
    .fetch_all(&pg)
    .await
    .unwrap();
    let got: Vec<(String, &str, Option<i64>)> = rows
        .iter()
        .map(|(id, s, o, _)| {
            (
                id.strip_prefix(&format!("{tag}-")).unwrap().to_string(),
                s.as_str(),
                *o,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("1".to_string(), "applied", Some(100)),
            ("2".into(), "applied", Some(101)),
            ("3".into(), "rejected", Some(102)),
            ("5".into(), "applied", Some(105))
        ]
    );
    assert!(
        rows.iter().all(|r| r.3 == rows[0].3),
        "one transaction: {rows:?}"
    );
    let audits: Vec<(String, String)> = sqlx::query_as(
        "SELECT command_id, outcome FROM audit_log WHERE command_id LIKE $1 || '-%' ORDER BY id",
    )
    .bind(&tag)
    .fetch_all(&pg)
    .await
    .unwrap();
    let expected: Vec<(String, String)> = [
        ("1", "applied"),
        ("2", "applied"),
        ("3", "rejected"),
        ("5", "applied"),
    ]
    .iter()
    .map(|(n, o)| (format!("{tag}-{n}"), o.to_string()))
    .collect();
    assert_eq!(audits, expected);
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM resource_pools WHERE name LIKE $1 || '-%'",
            &tag
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM perf_benchmarks WHERE name LIKE $1 || '-%'",
            &tag
        )
        .await,
        1
    );

    // The group replayed (a crash before the checkpoint): the same decisions, nothing written.
    let again = apply_group(&pg, &group).await.unwrap();
    for (i, (a, d)) in again.iter().zip(&decisions).enumerate() {
        if i == 3 {
            assert_eq!((&a.status, &a.reason), (&d.status, &d.reason));
        } else {
            assert_eq!(a, d, "command {i}");
        }
    }
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM audit_log WHERE command_id LIKE $1 || '-%'",
            &tag
        )
        .await,
        4
    );
    assert_eq!(
        apply_once(&pg, &cmds[1], 0, 101).await.unwrap(),
        decisions[1]
    );

    // An error (here our own claim statement: the issue time is out of range) rolls back the
    // whole group, the commands before it included.
    let mut bad = cmd(
        "7",
        "pool.create",
        "k7",
        pool_body(fleet, &format!("{tag}-p7")),
    );
    bad.issued_at_ms = i64::MAX;
    let ok = cmd(
        "6",
        "pool.create",
        "k6",
        pool_body(fleet, &format!("{tag}-p6")),
    );
    let failing = [
        GroupCommand {
            cmd: &ok,
            partition: 0,
            offset: 200,
        },
        GroupCommand {
            cmd: &bad,
            partition: 0,
            offset: 201,
        },
    ];
    assert!(apply_group(&pg, &failing).await.is_err());
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM command_log WHERE command_id IN ($1 || '-6', $1 || '-7')",
            &tag
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM resource_pools WHERE name = $1 || '-p6'",
            &tag
        )
        .await,
        0
    );
    let d = apply_group(&pg, &failing[..1]).await.unwrap();
    assert_eq!(d[0].status, Applied);
}
