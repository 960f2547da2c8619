//! The alert engine end to end: rules in PostgreSQL, window metrics produced straight to the
//! test's metrics topic, the real worker (`--pipelines alerts`), transitions read back from
//! the alerts topic and `alert_transitions`. The worker is stopped with SIGTERM and killed
//! with SIGKILL while one alert is pending and another firing; the final history must equal
//! the uninterrupted one (computed by the same kernel, and for one rule spelled out).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use atlasmesh_core::analytics::alert::{self, AlertRule, AlertScope, AlertState, Comparison, Severity};
use atlasmesh_schemas::{Codec, MetricsScope, SchemaKind, WindowMetricsRecord};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};

use crate::common::{sigkill, sigterm, TestEnv};

const M: i64 = 60_000;
/// Event time of minute 0 (a minute boundary).
const BASE: i64 = 1_700_000_040_000;

/// Utilization per minute (minute k = index k-1): two short dips, a crossing held long enough,
/// noise in the hysteresis band, a short clear, a lasting clear.
const NOISY: [f64; 22] = [
    0.70, 0.52, 0.48, 0.51, 0.47, 0.49, 0.53, 0.46, 0.44, 0.45, 0.43, 0.52, 0.58, 0.55, 0.49, 0.57, 0.62, 0.57, 0.63,
    0.65, 0.66, 0.70,
];
const MINUTES: i64 = 34;

struct Fleet {
    id: String,
    /// Utilization of minute k (1-based).
    series: Vec<f64>,
}

fn rule(id: String, for_ms: u64, resend_ms: u64) -> AlertRule {
    AlertRule {
        id,
        metric: "utilization".into(),
        scope: AlertScope::Fleet,
        comparison: Comparison::Lt,
        threshold: 0.5,
        clear_threshold: Some(0.6),
        for_ms,
        keep_firing_for_ms: 2 * M as u64,
        severity: Severity::Warning,
        labels: BTreeMap::from([("team".into(), "ops".into())]),
        runbook_url: Some("https://runbooks.example/low-utilization".into()),
        resend_interval_ms: resend_ms,
    }
}

/// The fleet partials of minute `k`: two source partitions; source 0 first sends a wrong
/// version 1 that its version 2 replaces.
fn partials(f: &Fleet, k: i64) -> Vec<WindowMetricsRecord> {
    let busy = (f.series[(k - 1) as usize] * 60_000.0).round() as i64;
    let r = |source: i32, version: i32, busy_ms: i64| WindowMetricsRecord {
        scope: MetricsScope::FleetPartial,
        fleet_id: f.id.clone(),
        vehicle_id: String::new(),
        source_partition: source,
        window_start_ms: BASE + (k - 1) * M,
        window_end_ms: BASE + k * M,
        version,
        samples: 12,
        observed_ms: 60_000,
        busy_ms,
        available_ms: 60_000,
        idle_ms: 60_000 - busy_ms,
        charging_ms: 0,
        maintenance_ms: 0,
        fault_ms: 0,
        offline_ms: 0,
        distance_m: 1_000,
        energy_wh: 200,
        moving_samples: 6,
        moving_speed_ckph_sum: 6 * 3_000,
        fault_count: 0,
        mission_count: 1,
        active_vehicles: 2,
        vehicles: 2,
    };
    vec![r(0, 1, 0), r(1, 1, busy), r(0, 2, busy)]
}

/// `(dedup_key, seq, kind, at_ms)` of every transition of `rule` over the fleet's settled
/// minutes `1..=last`, by the kernel itself.
fn expected(rule: &AlertRule, f: &Fleet, last: i64) -> Vec<(String, i64, String, i64)> {
    let mut st = AlertState::default();
    let mut out = Vec::new();
    for k in 1..=last {
        for t in alert::step(rule, &mut st, f.series[(k - 1) as usize], BASE + k * M) {
            let kind = serde_json::to_value(t.kind).unwrap().as_str().unwrap().to_string();
            out.push((alert::dedup_key(&rule.id, &f.id), out.len() as i64 + 1, kind, t.at_ms));
        }
    }
    out
}

async fn insert_rule(pg: &sqlx::PgPool, r: &AlertRule, fleet: &str) {
    sqlx::query(
        "INSERT INTO alert_rules (id, fleet_id, scope, metric, comparison, threshold, clear_threshold, for_ms,
            keep_firing_for_ms, resend_interval_ms, severity, labels, runbook_url)
         VALUES ($1, $2, 'fleet', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&r.id)
    .bind(fleet)
    .bind(&r.metric)
    .bind(r.comparison.as_str())
    .bind(r.threshold)
    .bind(r.clear_threshold)
    .bind(r.for_ms as i64)
    .bind(r.keep_firing_for_ms as i64)
    .bind(r.resend_interval_ms as i64)
    .bind(r.severity.as_str())
    .bind(serde_json::to_value(&r.labels).unwrap())
    .bind(&r.runbook_url)
    .execute(pg)
    .await
    .unwrap();
}

async fn produce_minutes(env: &TestEnv, fleets: &[Fleet], minutes: std::ops::RangeInclusive<i64>) -> usize {
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let mut records = Vec::new();
    for k in minutes {
        for f in fleets {
            for r in partials(f, k) {
                let payload = codec.encode(&env.cfg.topics.metrics, SchemaKind::Metrics, &r).await.unwrap();
                records.push(OutRecord { topic: env.cfg.topics.metrics.clone(), key: Some(f.id.clone().into_bytes()), payload, headers: vec![] });
            }
        }
    }
    KafkaProducer::new(&env.cfg.kafka).unwrap().send_all("kafka", &records).await.unwrap();
    records.len()
}

async fn alerts_checkpointed(env: &TestEnv, pg: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>("SELECT sum(next_offset)::bigint FROM stream_checkpoints WHERE pipeline = 'alerts' AND topic = $1")
        .bind(&env.cfg.topics.metrics)
        .fetch_one(pg)
        .await
        .unwrap()
        .unwrap_or(0)
}

async fn wait_alerts_checkpointed(env: &TestEnv, pg: &sqlx::PgPool, expected: i64) {
    let started = Instant::now();
    while alerts_checkpointed(env, pg).await < expected {
        assert!(started.elapsed() < Duration::from_secs(60), "alerts pipeline did not checkpoint {expected}; logs in {}", env.log_dir.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(alerts_checkpointed(env, pg).await, expected);
}

async fn pg_transitions(pg: &sqlx::PgPool, fleets: &[&str]) -> Vec<(String, i64, String, i64)> {
    sqlx::query_as(
        "SELECT dedup_key, seq, kind, at_ms FROM alert_transitions WHERE fleet_id = ANY($1) ORDER BY dedup_key, seq",
    )
    .bind(fleets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    .fetch_all(pg)
    .await
    .unwrap()
}

async fn instance_status(pg: &sqlx::PgPool, key: &str) -> String {
    sqlx::query_scalar("SELECT status FROM alert_instances WHERE dedup_key = $1").bind(key).fetch_one(pg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn noisy_crossing_survives_sigterm_and_sigkill_without_losing_or_duplicating() {
    let env = TestEnv::new("alerts");
    env.migrate();
    let pg = env.pg().await;
    let unique = env.cfg.kafka.group_prefix.replace('.', "-");
    // Fleet A crosses first; fleet B ten minutes later.
    let calm = [0.70; 12];
    let a = Fleet { id: format!("{unique}-fa"), series: NOISY.iter().copied().chain(calm.iter().copied()).collect() };
    let b = Fleet { id: format!("{unique}-fb"), series: calm[..10].iter().copied().chain(NOISY).chain(calm[..2].iter().copied()).collect() };
    assert!(a.series.len() as i64 >= MINUTES && b.series.len() as i64 >= MINUTES);
    let fleets = [a, b];
    // slow: for 3 min, re-sent every 5 min; fast: for 1 min, never re-sent.
    let rules: Vec<(AlertRule, &Fleet)> = vec![
        (rule(format!("{unique}-slow-a"), 3 * M as u64, 5 * M as u64), &fleets[0]),
        (rule(format!("{unique}-fast-a"), M as u64, 0), &fleets[0]),
        (rule(format!("{unique}-slow-b"), 3 * M as u64, 5 * M as u64), &fleets[1]),
        (rule(format!("{unique}-fast-b"), M as u64, 0), &fleets[1]),
    ];
    for (r, f) in &rules {
        insert_rule(&pg, r, &f.id).await;
    }
    let ids = [fleets[0].id.as_str(), fleets[1].id.as_str()];
    let args = ["--pipelines", "alerts"];
    let fast_refresh = [("ATLASMESH_ALERTS__RULES_REFRESH_MS", "500")];

    // Phase 1: minutes 1..=11 (minute 11's partials settle minute 10). Then fleet A's slow rule
    // is pending (since 8) and its fast rule firing (since 6).
    let mut produced = produce_minutes(&env, &fleets, 1..=11).await as i64;
    let mut worker = env.spawn_worker_args(0, &args, &fast_refresh);
    wait_alerts_checkpointed(&env, &pg, produced).await;
    let key = |i: usize| alert::dedup_key(&rules[i].0.id, &rules[i].1.id);
    assert_eq!(instance_status(&pg, &key(0)).await, "pending");
    assert_eq!(instance_status(&pg, &key(1)).await, "firing");
    // An operator acknowledges both; firing (a new episode) clears the mark of the pending one.
    sqlx::query("UPDATE alert_instances SET acknowledged_at = now(), acknowledged_by = 'alice' WHERE dedup_key = ANY($1)")
        .bind(vec![key(0), key(1)])
        .execute(&pg)
        .await
        .unwrap();
    sigterm(&mut worker);

    // Phase 2: minutes 12..=20. Then fleet B's slow rule is pending (since 18), its fast rule
    // firing (since 16). Killed after the checkpoint, then again with a batch in flight.
    produced += produce_minutes(&env, &fleets, 12..=20).await as i64;
    let mut worker = env.spawn_worker_args(1, &args, &fast_refresh);
    wait_alerts_checkpointed(&env, &pg, produced).await;
    assert_eq!(instance_status(&pg, &key(2)).await, "pending");
    assert_eq!(instance_status(&pg, &key(3)).await, "firing");
    sigkill(&mut worker);
    let mut worker = env.spawn_worker_args(2, &args, &fast_refresh);
    produced += produce_minutes(&env, &fleets, 21..=24).await as i64;
    tokio::time::sleep(Duration::from_millis(700)).await;
    sigkill(&mut worker);

    // Phase 3: the rest, uninterrupted.
    produced += produce_minutes(&env, &fleets, 25..=MINUTES).await as i64;
    let mut worker = env.spawn_worker_args(3, &args, &fast_refresh);
    wait_alerts_checkpointed(&env, &pg, produced).await;
    sigterm(&mut worker);

    // A full replay (checkpoints gone: the whole topic again from an empty state) reproduces
    // every transition with the same (dedup_key, seq): PostgreSQL does not change, the topic
    // gets byte-identical repeats.
    let before = pg_transitions(&pg, &ids).await;
    sqlx::query("DELETE FROM stream_checkpoints WHERE pipeline = 'alerts' AND topic = $1")
        .bind(&env.cfg.topics.metrics)
        .execute(&pg)
        .await
        .unwrap();
    let mut worker = env.spawn_worker_args(4, &args, &fast_refresh);
    wait_alerts_checkpointed(&env, &pg, produced).await;
    assert_eq!(pg_transitions(&pg, &ids).await, before, "a replay changes nothing in PostgreSQL");

    // Expected: every minute but the last settled (the last one waits for a later window).
    let mut want: Vec<(String, i64, String, i64)> = Vec::new();
    for (r, f) in &rules {
        want.extend(expected(r, f, MINUTES - 1));
    }
    want.sort();
    // The slow rule of fleet A, spelled out: no flapping on the noisy crossing.
    let slow_a: Vec<(String, i64)> =
        want.iter().filter(|t| t.0 == key(0)).map(|t| (t.2.clone(), (t.3 - BASE) / M)).collect();
    let spelled: Vec<(String, i64)> = [
        ("pending", 3),
        ("cancelled", 4),
        ("pending", 5),
        ("cancelled", 7),
        ("pending", 8),
        ("firing", 11),
        ("resent", 16),
        ("resolved", 21),
    ]
    .iter()
    .map(|(k, m)| (k.to_string(), *m))
    .collect();
    assert_eq!(slow_a, spelled);

    // PostgreSQL: exactly the uninterrupted history (no transition lost, none twice).
    let got = pg_transitions(&pg, &ids).await;
    assert_eq!(got, want, "alert_transitions; logs in {}", env.log_dir.display());
    for i in 0..4 {
        assert_eq!(instance_status(&pg, &key(i)).await, "resolved", "instance {i}");
    }
    let acked: Vec<(String, Option<String>, i64)> =
        sqlx::query_as("SELECT dedup_key, acknowledged_by, last_transition_seq FROM alert_instances WHERE dedup_key = ANY($1) ORDER BY dedup_key")
            .bind(vec![key(0), key(1)])
            .fetch_all(&pg)
            .await
            .unwrap();
    for (k, by, seq) in acked {
        let want_by = if k == key(1) { Some("alice".to_string()) } else { None };
        assert_eq!(by, want_by, "{k}: the firing alert keeps its ack through resolve; the pending one lost it on firing");
        assert_eq!(seq, want.iter().filter(|t| t.0 == k).count() as i64);
    }

    // The topic: the paged transitions, deduplicated by (dedup_key, seq); repeats allowed
    // (at-least-once) but each repeat is byte-identical.
    let want_paged: Vec<_> = want.iter().filter(|t| ["firing", "resent", "resolved"].contains(&t.2.as_str())).cloned().collect();
    let mut cc = atlasmesh_sinks::kafka::client_config(&env.cfg.kafka);
    cc.set("group.id", format!("{}.alerts-check", env.cfg.kafka.group_prefix)).set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cc.create().unwrap();
    consumer.subscribe(&[&env.cfg.topics.alerts]).unwrap();
    let mut seen: BTreeMap<(String, i64), Vec<u8>> = BTreeMap::new();
    let mut copies: BTreeMap<(String, i64), usize> = BTreeMap::new();
    let mut total = 0;
    let started = Instant::now();
    while seen.len() < want_paged.len() {
        assert!(started.elapsed() < Duration::from_secs(60), "only {} of {} alert messages", seen.len(), want_paged.len());
        let Ok(m) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else { continue };
        let m = m.unwrap();
        total += 1;
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        let seq: i64 = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "seq").and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).parse().unwrap())
            .expect("seq header");
        let payload = m.payload().unwrap().to_vec();
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(json["dedup_key"], key);
        assert_eq!(json["payload"]["custom_details"]["seq"], seq);
        *copies.entry((key.clone(), seq)).or_default() += 1;
        if let Some(prev) = seen.insert((key, seq), payload.clone()) {
            assert_eq!(prev, payload, "a repeat is the same message");
        }
    }
    // The replay's repeats follow; nothing else.
    while let Ok(m) = tokio::time::timeout(Duration::from_secs(3), consumer.recv()).await {
        let m = m.unwrap();
        total += 1;
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        let seq: i64 = m.headers().and_then(|h| h.iter().find(|h| h.key == "seq").and_then(|h| h.value)).map(|v| String::from_utf8_lossy(v).parse().unwrap()).unwrap();
        let payload = m.payload().unwrap().to_vec();
        assert_eq!(seen.get(&(key.clone(), seq)), Some(&payload), "a repeat is the same message");
        *copies.get_mut(&(key, seq)).unwrap() += 1;
    }
    assert!(copies.values().all(|&n| n >= 2), "the replay re-sent every message: {copies:?}");
    let got_keys: BTreeSet<(String, i64)> = seen.keys().cloned().collect();
    let want_keys: BTreeSet<(String, i64)> = want_paged.iter().map(|t| (t.0.clone(), t.1)).collect();
    assert_eq!(got_keys, want_keys);
    for t in &want_paged {
        let json: serde_json::Value = serde_json::from_slice(&seen[&(t.0.clone(), t.1)]).unwrap();
        let action = if t.2 == "resolved" { "resolve" } else { "trigger" };
        assert_eq!(json["event_action"], action);
        assert_eq!(json["payload"]["custom_details"]["transition"], t.2);
        assert_eq!(json["payload"]["timestamp"], alert::rfc3339_ms(t.3));
    }
    eprintln!("alert messages: {} unique, {} received (replay + killed batch repeats: {})", seen.len(), total, total - seen.len());
    sigterm(&mut worker);
}
