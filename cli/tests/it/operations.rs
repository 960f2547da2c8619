//! The missions and resources pipelines end to end: scripted events (a malformed message and
//! an unknown pool among them) produced to the test's topics, the real worker
//! (`--pipelines missions,resources`), results read back from PostgreSQL, ClickHouse and the
//! dead-letter topic; then a SIGKILL, the whole script produced again, a restart — nothing
//! changes. Expected numbers are worked out by hand in the comments.

use std::time::{Duration, Instant};

use atlasmesh_schemas::{
    Codec, MissionEventKind, MissionEventRecord, ResourceEventRecord, ResourceState, SchemaKind,
};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use rdkafka::message::{Headers, Message};
use serde::Deserialize;

use crate::common::{sigkill, sigterm, TestEnv};

const H: i64 = 3_600_000;
/// An hour boundary (2023-11-14T22:00:00Z).
const BASE: i64 = 1_700_000_000_000 - 1_700_000_000_000 % H;
const MIN: i64 = 60_000;

/// PostgreSQL is shared by the integration tests: every id carries the test's unique tag `u`.
fn mission(
    u: &str,
    n: u32,
    mission: &str,
    fleet: &str,
    at: i64,
    kind: MissionEventKind,
    severity: Option<&str>,
) -> MissionEventRecord {
    MissionEventRecord {
        event_id: format!("{u}-{fleet}-{n}"),
        mission_id: format!("{u}-{mission}"),
        fleet_id: format!("{u}-{fleet}"),
        vehicle_id: Some(format!("{mission}-vehicle")),
        ts_ms: at,
        kind,
        severity: severity.map(str::to_string),
        detail: None,
        zone_id: None,
    }
}

fn resource(
    u: &str,
    n: u32,
    resource: &str,
    pool: &str,
    vehicle: Option<&str>,
    at: i64,
    state: ResourceState,
) -> ResourceEventRecord {
    ResourceEventRecord {
        event_id: format!("{u}-r-{n}"),
        resource_id: format!("{u}-{resource}"),
        pool_id: format!("{u}-{pool}"),
        fleet_id: format!("{u}-fleet-a"),
        vehicle_id: vehicle.map(str::to_string),
        ts_ms: at,
        state,
    }
}

/// Fleet A, hour 0: m1 started 0:05, completed 0:35 (30 min); m2 started 0:10, safety event
/// (critical) 0:20, failed 0:20 (10 min); m3 started 0:50, ends in hour 1 at 1:10 completed
/// (20 min, counted in hour 1); m4 aborted at 0:40 without a start seen (no duration); a
/// warning-level safety event at 0:45. Hour 0: started 3, completed 1, failed 2 (failed +
/// aborted), duration 30 + 10 = 40 min, safety 2, critical 1. Hour 1: started 0, completed 1,
/// duration 20 min. Fleet B, hour 0: one started mission.
fn missions(u: &str) -> Vec<MissionEventRecord> {
    use MissionEventKind::*;
    vec![
        mission(u, 1, "m1", "fleet-a", BASE + 5 * MIN, Created, None),
        mission(u, 2, "m1", "fleet-a", BASE + 5 * MIN, Started, None),
        mission(u, 3, "m2", "fleet-a", BASE + 10 * MIN, Started, None),
        mission(
            u,
            4,
            "m2",
            "fleet-a",
            BASE + 20 * MIN,
            SafetyEvent,
            Some("critical"),
        ),
        mission(u, 5, "m2", "fleet-a", BASE + 20 * MIN, Failed, None),
        mission(
            u,
            6,
            "m1",
            "fleet-a",
            BASE + 30 * MIN,
            WaypointReached,
            None,
        ),
        mission(u, 7, "m1", "fleet-a", BASE + 35 * MIN, Completed, None),
        // A late second end of m1 does not change its outcome.
        mission(u, 8, "m1", "fleet-a", BASE + 36 * MIN, Failed, None),
        mission(u, 9, "m4", "fleet-a", BASE + 40 * MIN, Aborted, None),
        mission(
            u,
            10,
            "m5",
            "fleet-a",
            BASE + 45 * MIN,
            SafetyEvent,
            Some("warning"),
        ),
        mission(u, 11, "m3", "fleet-a", BASE + 50 * MIN, Started, None),
        mission(u, 12, "m3", "fleet-a", BASE + H + 10 * MIN, Completed, None),
        mission(u, 1, "m9", "fleet-b", BASE + 15 * MIN, Started, None),
    ]
}

/// Pool `pool-a` (capacity 2) with chargers c1..c3: v1 takes c1, v2 takes c1 too (double
/// booking), v3 takes c2, v4 takes c3 → 3 in use > 2 (over-allocation); c2 goes out of
/// service (v3 leaves, 2 in use), v5 plugs into it anyway (other, and 3 > 2 again); frees. Pool `pool-x` is not
/// registered → dead letter.
fn resources(u: &str) -> Vec<ResourceEventRecord> {
    use ResourceState::*;
    vec![
        resource(u, 1, "c1", "pool-a", Some("v1"), BASE + MIN, Occupied),
        resource(u, 2, "c1", "pool-a", Some("v2"), BASE + 2 * MIN, Occupied),
        resource(u, 3, "c2", "pool-a", Some("v3"), BASE + 3 * MIN, Occupied),
        resource(u, 4, "c3", "pool-a", Some("v4"), BASE + 4 * MIN, Occupied),
        resource(u, 5, "c1", "pool-a", Some("v1"), BASE + 5 * MIN, Free),
        resource(u, 6, "c2", "pool-a", None, BASE + 6 * MIN, OutOfService),
        resource(u, 7, "c2", "pool-a", Some("v5"), BASE + 7 * MIN, Occupied),
        resource(u, 8, "c1", "pool-a", Some("v2"), BASE + 8 * MIN, Free),
        resource(u, 9, "z1", "pool-x", Some("v9"), BASE + 9 * MIN, Occupied),
    ]
}

/// The test's unique tag.
fn tag(env: &TestEnv) -> String {
    env.cfg.kafka.group_prefix.replace('.', "-")
}

/// Produces the whole script. With `one_by_one`, each resource event is produced only after the
/// worker recorded the previous one: events of different resources sit on different partitions
/// with no order between them, and the pool's in-use count is evaluated in the order the
/// pipeline applies them — the test fixes that order to check the counts exactly.
async fn produce_script(env: &TestEnv, pg: &sqlx::PgPool, one_by_one: bool) -> usize {
    let u = tag(env);
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let producer = KafkaProducer::new(&env.cfg.kafka).unwrap();
    let t = &env.cfg.topics;
    let mut out = Vec::new();
    for m in missions(&u) {
        let payload = codec
            .encode(&t.mission_events, SchemaKind::MissionEvents, &m)
            .await
            .unwrap();
        out.push(OutRecord {
            topic: t.mission_events.clone(),
            key: Some(m.mission_id.into_bytes()),
            payload,
            headers: vec![],
            partition: None,
            timestamp_ms: None,
        });
    }
    out.push(OutRecord {
        topic: t.mission_events.clone(),
        key: Some(b"m1".to_vec()),
        payload: b"not avro".to_vec(),
        headers: vec![],
        partition: None,
        timestamp_ms: None,
    });
    let mut n = out.len();
    producer.send_all("kafka", &out).await.unwrap();
    let mut batch = Vec::new();
    for r in resources(&u) {
        let payload = codec
            .encode(&t.resource_events, SchemaKind::ResourceEvents, &r)
            .await
            .unwrap();
        let record = OutRecord {
            topic: t.resource_events.clone(),
            key: Some(r.resource_id.clone().into_bytes()),
            payload,
            headers: vec![],
            partition: None,
            timestamp_ms: None,
        };
        n += 1;
        if !one_by_one || r.pool_id.ends_with("pool-x") {
            batch.push(record);
            continue;
        }
        producer.send_all("kafka", &[record]).await.unwrap();
        let started = Instant::now();
        loop {
            let seen: i64 =
                sqlx::query_scalar("SELECT count(*) FROM resource_event_log WHERE event_id = $1")
                    .bind(&r.event_id)
                    .fetch_one(pg)
                    .await
                    .unwrap();
            if seen == 1 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "event {} not recorded; logs in {}",
                r.event_id,
                env.log_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    producer.send_all("kafka", &batch).await.unwrap();
    n
}

async fn checkpointed(pg: &sqlx::PgPool, topics: &[&str]) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::bigint FROM stream_checkpoints WHERE topic = ANY($1)",
    )
    .bind(topics)
    .fetch_one(pg)
    .await
    .unwrap()
    .unwrap_or(0)
}

async fn wait_checkpointed(env: &TestEnv, pg: &sqlx::PgPool, expected: i64) {
    let t = &env.cfg.topics;
    let started = Instant::now();
    loop {
        let got = checkpointed(pg, &[&t.mission_events, &t.resource_events]).await;
        if got >= expected {
            assert_eq!(got, expected);
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{got}/{expected} checkpointed; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[derive(Debug, Deserialize, PartialEq)]
struct WindowRow {
    fleet_id: String,
    window_start_ms: i64,
    missions_started: u64,
    missions_completed: u64,
    missions_failed: u64,
    duration_ms_sum: u64,
    safety_events: u64,
    safety_critical: u64,
    distance_m: u64,
}

#[derive(Debug, Deserialize, PartialEq)]
struct SampleRow {
    ts_ms: i64,
    capacity: f64,
    allocated: f64,
    utilization: f64,
}

type Snapshot = (
    Vec<(String, Option<String>, Option<i64>, Option<i64>, i32)>,
    Vec<(String, String, String)>,
    Vec<WindowRow>,
    Vec<SampleRow>,
);

async fn snapshot(env: &TestEnv, pg: &sqlx::PgPool) -> Snapshot {
    let u = tag(env);
    let runs = sqlx::query_as(
        "SELECT substr(mission_id, length($1) + 2), outcome, started_ms, ended_ms, safety_events FROM mission_runs
         WHERE fleet_id LIKE $1 || '-%' ORDER BY mission_id",
    )
    .bind(&u)
    .fetch_all(pg)
    .await
    .unwrap();
    let conflicts = sqlx::query_as(
        "SELECT kind, substr(coalesce(resource_id, ''), length($1) + 2), pool_id FROM resource_conflicts
         WHERE fleet_id LIKE $1 || '-%' ORDER BY kind, resource_id",
    )
    .bind(&u)
    .fetch_all(pg)
    .await
    .unwrap();
    let windows = env
        .ch_rows::<WindowRow>(
            "SELECT fleet_id, window_start_ms, missions_started, missions_completed, missions_failed, duration_ms_sum,
                    safety_events, safety_critical, distance_m
             FROM mission_window_metrics FINAL ORDER BY fleet_id, window_start_ms",
        )
        .await;
    let samples = env
        .ch_rows::<SampleRow>(&format!("SELECT ts_ms, capacity, allocated, utilization FROM resource_pool_utilization FINAL WHERE pool_id = '{u}-pool-a' ORDER BY ts_ms"))
        .await;
    (runs, conflicts, windows, samples)
}

#[tokio::test]
async fn mission_and_resource_metrics_are_exact_and_survive_a_replay() {
    let env = TestEnv::new("operations");
    env.migrate();
    let pg = env.pg().await;
    let u = tag(&env);
    // The registered pool (the API would create it through a command; the store is tested
    // elsewhere) and telemetry distance for fleet A's hour 0 (two partials of 1.5 km and 2 km).
    sqlx::query("INSERT INTO resource_pools (id, fleet_id, name, resource_type, capacity) VALUES ($1 || '-pool-a', $1 || '-fleet-a', 'Chargers', 'charger', 2)")
        .bind(&u)
        .execute(&pg)
        .await
        .unwrap();
    let ch = atlasmesh_sinks::clickhouse::client(&env.cfg.clickhouse);
    for (source, minute, distance) in [(0, 3, 1_500), (1, 30, 2_000)] {
        let start = BASE + minute * MIN;
        ch.query(&format!(
            "INSERT INTO fleet_window_partials (fleet_id, source_partition, window_start, window_start_ms, window_end_ms, version, distance_m)
             VALUES ('{u}-fleet-a', {source}, toDateTime({}), {start}, {}, 1, {distance})",
            start / 1000,
            start + MIN
        ))
        .execute()
        .await
        .unwrap();
    }

    let mut worker = env.spawn_worker_args(1, &["--pipelines", "missions,resources"], &[]);
    let n = produce_script(&env, &pg, true).await as i64;
    wait_checkpointed(&env, &pg, n).await;
    // Let the idle re-write happen too (idle_flush_ms 1.5 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let first = snapshot(&env, &pg).await;
    let (runs, conflicts, windows, samples) = &first;

    let runs: Vec<(&str, Option<&str>, Option<i64>, Option<i64>, i32)> = runs
        .iter()
        .map(|(m, o, s, e, n)| (m.as_str(), o.as_deref(), *s, *e, *n))
        .collect();
    assert_eq!(
        runs,
        [
            (
                "m1",
                Some("completed"),
                Some(BASE + 5 * MIN),
                Some(BASE + 35 * MIN),
                0
            ),
            (
                "m2",
                Some("failed"),
                Some(BASE + 10 * MIN),
                Some(BASE + 20 * MIN),
                1
            ),
            (
                "m3",
                Some("completed"),
                Some(BASE + 50 * MIN),
                Some(BASE + H + 10 * MIN),
                0
            ),
            ("m4", Some("aborted"), None, Some(BASE + 40 * MIN), 0),
            ("m5", None, None, None, 1),
            ("m9", None, Some(BASE + 15 * MIN), None, 0),
        ]
    );
    let w = |fleet: &str, start: i64, s, c, f, d, se, sc, dist| WindowRow {
        fleet_id: fleet.into(),
        window_start_ms: start,
        missions_started: s,
        missions_completed: c,
        missions_failed: f,
        duration_ms_sum: d,
        safety_events: se,
        safety_critical: sc,
        distance_m: dist,
    };
    assert_eq!(
        *windows,
        [
            w(
                &format!("{u}-fleet-a"),
                BASE,
                3,
                1,
                2,
                (40 * MIN) as u64,
                2,
                1,
                3_500
            ),
            w(
                &format!("{u}-fleet-a"),
                BASE + H,
                0,
                1,
                0,
                (20 * MIN) as u64,
                0,
                0,
                0
            ),
            w(&format!("{u}-fleet-b"), BASE, 1, 0, 0, 0, 0, 0, 0),
        ]
    );
    let conflicts: Vec<(&str, &str)> = conflicts
        .iter()
        .map(|(k, r, _)| (k.as_str(), r.as_str()))
        .collect();
    // Over-allocation is raised each time the count crosses the capacity: by c3 (3 > 2) and
    // again by c2 when v5 plugs into it after it left service.
    assert_eq!(
        conflicts,
        [
            ("double_booking", "c1"),
            ("other", "c2"),
            ("over_allocation", "c2"),
            ("over_allocation", "c3")
        ]
    );
    // In use after each registered event: 1, 1 (c1 shared), 2, 3, 3 (v2 still on c1), 2 (c2
    // out of service), 3 (v5 on c2), 2.
    let in_use: Vec<f64> = samples.iter().map(|s| s.allocated).collect();
    assert_eq!(in_use, [1.0, 1.0, 2.0, 3.0, 3.0, 2.0, 3.0, 2.0]);
    assert!(samples
        .iter()
        .all(|s| s.capacity == 2.0 && s.utilization == s.allocated / 2.0));
    assert_eq!(samples[0].ts_ms, BASE + MIN);

    // The dead letters: the unknown pool and the malformed message.
    let consumer = env.consumer(&env.cfg.topics.dlq, "dlq-check");
    let mut reasons = Vec::new();
    while reasons.len() < 2 {
        // The first message also waits for the new consumer group to be joined (slow on a
        // local broker holding a whole test run's topics).
        let wait = Duration::from_secs(if reasons.is_empty() { 180 } else { 30 });
        let m = tokio::time::timeout(wait, consumer.recv())
            .await
            .expect("DLQ message")
            .unwrap();
        let reason = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == "reason")
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).to_string()))
        });
        reasons.push(reason.expect("reason header"));
    }
    reasons.sort();
    assert_eq!(reasons, ["invalid", "undecodable"]);

    // Kill, produce everything again (a producer retrying the whole batch), restart: nothing
    // changes but the offsets.
    sigkill(&mut worker);
    let n2 = produce_script(&env, &pg, false).await as i64;
    let mut worker = env.spawn_worker_args(2, &["--pipelines", "missions,resources"], &[]);
    wait_checkpointed(&env, &pg, n + n2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = snapshot(&env, &pg).await;
    assert_eq!(first.0, second.0, "mission runs changed on replay");
    assert_eq!(first.1, second.1, "conflicts changed on replay");
    assert_eq!(first.2, second.2, "mission windows changed on replay");
    assert_eq!(first.3, second.3, "pool samples changed on replay");
    let logged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mission_event_log WHERE fleet_id LIKE $1 || '-%'")
            .bind(&u)
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(logged, missions(&u).len() as i64);
    sigterm(&mut worker);
}

#[tokio::test]
async fn federation_coordination_metrics_from_shares_and_allocations() {
    let env = TestEnv::new("coordination");
    env.migrate();
    let pg = env.pg().await;
    let u = tag(&env);
    // Federation F with fleets A and B. Pool A (10 units) shares 4 units with B; B holds 3 of
    // them; A holds 5 of its own; B holds 20 of its pool B (30 units); an allocation that has
    // ended (7 units of pool B by A) and a share outside the federation do not count.
    // sharing_efficiency = min(4, 3) / 4 = 0.75; capacity 40; allocated 3 + 5 + 20 = 28 → 0.7;
    // cross-fleet = 3 / 40 = 0.075; shared_capacity = 4.
    let sql = format!(
        "INSERT INTO federations (id, name) VALUES ('{u}-F', 'F');
         INSERT INTO federation_members (id, federation_id, fleet_id, role) VALUES
             ('{u}-ma', '{u}-F', '{u}-A', 'coordinator'), ('{u}-mb', '{u}-F', '{u}-B', 'member');
         INSERT INTO resource_pools (id, fleet_id, name, resource_type, capacity) VALUES
             ('{u}-pa', '{u}-A', 'A', 'bay', 10), ('{u}-pb', '{u}-B', 'B', 'bay', 30);
         INSERT INTO resource_shares (id, fleet_id, target_fleet_id, pool_id, amount, federation_id, starts_at) VALUES
             ('{u}-s1', '{u}-A', '{u}-B', '{u}-pa', 4, '{u}-F', now() - interval '1 hour'),
             ('{u}-s2', '{u}-A', '{u}-C', '{u}-pa', 2, NULL, now() - interval '1 hour');
         INSERT INTO resource_allocations (id, fleet_id, pool_id, amount, holder, starts_at, ends_at) VALUES
             ('{u}-a1', '{u}-B', '{u}-pa', 3, 'b', now() - interval '1 minute', NULL),
             ('{u}-a2', '{u}-A', '{u}-pa', 5, 'a', now() - interval '1 minute', now() + interval '1 hour'),
             ('{u}-a3', '{u}-B', '{u}-pb', 20, 'b', now() - interval '1 minute', NULL),
             ('{u}-a4', '{u}-A', '{u}-pb', 7, 'a', now() - interval '2 hours', now() - interval '1 hour');"
    );
    sqlx::raw_sql(&sql).execute(&pg).await.unwrap();
    let n = atlasmesh_pipelines::resources::coordination::record(&pg)
        .await
        .unwrap();
    assert!(n >= 4);
    // Twice: the same rows, updated in place.
    atlasmesh_pipelines::resources::coordination::record(&pg)
        .await
        .unwrap();
    let rows: Vec<(String, f64)> = sqlx::query_as("SELECT metric, value FROM federation_metrics WHERE federation_id = $1
         AND period_start = (SELECT max(period_start) FROM federation_metrics WHERE federation_id = $1) ORDER BY metric")
        .bind(format!("{u}-F"))
        .fetch_all(&pg)
        .await
        .unwrap();
    let close = |got: &[(String, f64)], want: &[(&str, f64)]| {
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((gm, gv), (wm, wv)) in got.iter().zip(want) {
            assert_eq!(gm, wm);
            assert!((gv - wv).abs() < 1e-12, "{gm}: {gv} != {wv}");
        }
    };
    close(
        &rows,
        &[
            ("cross_fleet_utilization", 0.075),
            ("pool_utilization", 0.7),
            ("shared_capacity", 4.0),
            ("sharing_efficiency", 0.75),
        ],
    );
}
