//! The alert engine end to end: rules in PostgreSQL, window metrics produced straight to the
//! test's metrics topic, the real worker (`--pipelines alerts`), transitions read back from
//! the alerts topic and `alert_transitions`. The worker is stopped with SIGTERM and killed
//! with SIGKILL while one alert is pending and another firing; the final history must equal
//! the uninterrupted one (computed by the same kernel, and for one rule spelled out).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use atlasmesh_core::analytics::alert::{
    self, AlertRule, AlertScope, AlertState, Comparison, Severity,
};
use atlasmesh_schemas::{Codec, MetricsScope, SchemaKind, WindowMetricsRecord};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use rdkafka::message::{Headers, Message};

use crate::common::{sigkill, sigterm, watermark_records, TestEnv};

const M: i64 = 60_000;
/// Event time of minute 0 (a minute boundary).
const BASE: i64 = 1_700_000_040_000;

/// Utilization per minute (minute k = index k-1): two short dips, a crossing held long enough,
/// noise in the hysteresis band, a short clear, a lasting clear.
const NOISY: [f64; 22] = [
    0.70, 0.52, 0.48, 0.51, 0.47, 0.49, 0.53, 0.46, 0.44, 0.45, 0.43, 0.52, 0.58, 0.55, 0.49, 0.57,
    0.62, 0.57, 0.63, 0.65, 0.66, 0.70,
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
        source_partitions: 0,
        source_idle: false,
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
            let kind = serde_json::to_value(t.kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string();
            out.push((
                alert::dedup_key(&rule.id, &f.id),
                out.len() as i64 + 1,
                kind,
                t.at_ms,
            ));
        }
    }
    out
}

pub(crate) async fn insert_rule(pg: &sqlx::PgPool, r: &AlertRule, fleet: &str) {
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

async fn produce_minutes(
    env: &TestEnv,
    fleets: &[Fleet],
    minutes: std::ops::RangeInclusive<i64>,
) -> usize {
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let mut records = Vec::new();
    for k in minutes {
        for f in fleets {
            for r in partials(f, k) {
                let payload = codec
                    .encode(&env.cfg.topics.metrics, SchemaKind::Metrics, &r)
                    .await
                    .unwrap();
                records.push(OutRecord {
                    topic: env.cfg.topics.metrics.clone(),
                    key: Some(f.id.clone().into_bytes()),
                    payload,
                    headers: vec![],
                    partition: None,
                    timestamp_ms: None,
                });
            }
        }
        // Both sources have closed the minute before: it settles.
        records.extend(watermark_records(env, &codec, 2, BASE + (k - 1) * M).await);
    }
    KafkaProducer::new(&env.cfg.kafka)
        .unwrap()
        .send_all("kafka", &records)
        .await
        .unwrap();
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
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "alerts pipeline did not checkpoint {expected}; logs in {}",
            env.log_dir.display()
        );
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
    sqlx::query_scalar("SELECT status FROM alert_instances WHERE dedup_key = $1")
        .bind(key)
        .fetch_one(pg)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn noisy_crossing_survives_sigterm_and_sigkill_without_losing_or_duplicating() {
    let env = TestEnv::new("alerts");
    env.migrate();
    let pg = env.pg().await;
    let unique = env.cfg.kafka.group_prefix.replace('.', "-");
    // Fleet A crosses first; fleet B ten minutes later.
    let calm = [0.70; 12];
    let a = Fleet {
        id: format!("{unique}-fa"),
        series: NOISY.iter().copied().chain(calm.iter().copied()).collect(),
    };
    let b = Fleet {
        id: format!("{unique}-fb"),
        series: calm[..10]
            .iter()
            .copied()
            .chain(NOISY)
            .chain(calm[..2].iter().copied())
            .collect(),
    };
    assert!(a.series.len() as i64 >= MINUTES && b.series.len() as i64 >= MINUTES);
    let fleets = [a, b];
    // slow: for 3 min, re-sent every 5 min; fast: for 1 min, never re-sent.
    let rules: Vec<(AlertRule, &Fleet)> = vec![
        (
            rule(format!("{unique}-slow-a"), 3 * M as u64, 5 * M as u64),
            &fleets[0],
        ),
        (rule(format!("{unique}-fast-a"), M as u64, 0), &fleets[0]),
        (
            rule(format!("{unique}-slow-b"), 3 * M as u64, 5 * M as u64),
            &fleets[1],
        ),
        (rule(format!("{unique}-fast-b"), M as u64, 0), &fleets[1]),
    ];
    for (r, f) in &rules {
        insert_rule(&pg, r, &f.id).await;
    }
    let ids = [fleets[0].id.as_str(), fleets[1].id.as_str()];
    let args = ["--pipelines", "alerts"];
    let fast_refresh = [("ATLASMESH_ALERTS__RULES_REFRESH_MS", "500")];

    // Phase 1: minutes 1..=11 (the watermarks after minute 11 settle minute 10). Then fleet A's slow rule
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
    assert_eq!(
        pg_transitions(&pg, &ids).await,
        before,
        "a replay changes nothing in PostgreSQL"
    );

    // Expected: every minute but the last settled (the last one waits for a later window).
    let mut want: Vec<(String, i64, String, i64)> = Vec::new();
    for (r, f) in &rules {
        want.extend(expected(r, f, MINUTES - 1));
    }
    want.sort();
    // The slow rule of fleet A, spelled out: no flapping on the noisy crossing.
    let slow_a: Vec<(String, i64)> = want
        .iter()
        .filter(|t| t.0 == key(0))
        .map(|t| (t.2.clone(), (t.3 - BASE) / M))
        .collect();
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
    assert_eq!(
        got,
        want,
        "alert_transitions; logs in {}",
        env.log_dir.display()
    );
    for i in 0..4 {
        assert_eq!(
            instance_status(&pg, &key(i)).await,
            "resolved",
            "instance {i}"
        );
    }
    let acked: Vec<(String, Option<String>, i64)> =
        sqlx::query_as("SELECT dedup_key, acknowledged_by, last_transition_seq FROM alert_instances WHERE dedup_key = ANY($1) ORDER BY dedup_key")
            .bind(vec![key(0), key(1)])
            .fetch_all(&pg)
            .await
            .unwrap();
    for (k, by, seq) in acked {
        let want_by = if k == key(1) {
            Some("alice".to_string())
        } else {
            None
        };
        assert_eq!(by, want_by, "{k}: the firing alert keeps its ack through resolve; the pending one lost it on firing");
        assert_eq!(seq, want.iter().filter(|t| t.0 == k).count() as i64);
    }

    // The topic: the paged transitions, deduplicated by (dedup_key, seq); repeats allowed
    // (at-least-once) but each repeat is byte-identical.
    let want_paged: Vec<_> = want
        .iter()
        .filter(|t| ["firing", "resent", "resolved"].contains(&t.2.as_str()))
        .cloned()
        .collect();
    let consumer = env.consumer(&env.cfg.topics.alerts, "alerts-check");
    let mut seen: BTreeMap<(String, i64), Vec<u8>> = BTreeMap::new();
    let mut copies: BTreeMap<(String, i64), usize> = BTreeMap::new();
    let mut total = 0;
    let started = Instant::now();
    while seen.len() < want_paged.len() {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "only {} of {} alert messages",
            seen.len(),
            want_paged.len()
        );
        let Ok(m) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else {
            continue;
        };
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
        let seq: i64 = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "seq").and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).parse().unwrap())
            .unwrap();
        let payload = m.payload().unwrap().to_vec();
        assert_eq!(
            seen.get(&(key.clone(), seq)),
            Some(&payload),
            "a repeat is the same message"
        );
        *copies.get_mut(&(key, seq)).unwrap() += 1;
    }
    assert!(
        copies.values().all(|&n| n >= 2),
        "the replay re-sent every message: {copies:?}"
    );
    let got_keys: BTreeSet<(String, i64)> = seen.keys().cloned().collect();
    let want_keys: BTreeSet<(String, i64)> =
        want_paged.iter().map(|t| (t.0.clone(), t.1)).collect();
    assert_eq!(got_keys, want_keys);
    for t in &want_paged {
        let json: serde_json::Value = serde_json::from_slice(&seen[&(t.0.clone(), t.1)]).unwrap();
        let action = if t.2 == "resolved" {
            "resolve"
        } else {
            "trigger"
        };
        assert_eq!(json["event_action"], action);
        assert_eq!(json["payload"]["custom_details"]["transition"], t.2);
        assert_eq!(json["payload"]["timestamp"], alert::rfc3339_ms(t.3));
    }
    eprintln!(
        "alert messages: {} unique, {} received (replay + killed batch repeats: {})",
        seen.len(),
        total,
        total - seen.len()
    );
    sigterm(&mut worker);
}

// ---------------------------------------------------------------- the API, manual resolve, federation

/// Fleet partials of minute `k` for fleets with utilization `u` (one entry per fleet).
async fn produce_partials(
    env: &TestEnv,
    minutes: std::ops::RangeInclusive<i64>,
    fleets: &[&Fleet],
) {
    let owned: Vec<Fleet> = fleets
        .iter()
        .map(|f| Fleet {
            id: f.id.clone(),
            series: f.series.clone(),
        })
        .collect();
    produce_minutes(env, &owned, minutes).await;
}

pub(crate) async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut rb = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The messages of the alert topic by (dedup key, seq), read until every one of `want` has
/// arrived (at most 180 s: a new consumer group joins slowly on a busy local broker). At-least-once: a repeat (a seq not above the key's last) is dropped,
/// as a pager consumer does.
pub(crate) async fn paged(
    consumer: &rdkafka::consumer::StreamConsumer,
    want: &BTreeSet<(String, i64)>,
) -> BTreeMap<(String, i64), serde_json::Value> {
    use rdkafka::message::{Headers, Message};
    let mut seen: BTreeMap<(String, i64), serde_json::Value> = BTreeMap::new();
    let mut last_seq: BTreeMap<String, i64> = BTreeMap::new();
    let started = Instant::now();
    while !want.iter().all(|k| seen.contains_key(k)) {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "alert messages: got {:?}",
            seen.keys().collect::<Vec<_>>()
        );
        let Ok(m) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else {
            continue;
        };
        let m = m.unwrap();
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        let seq: i64 = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "seq").and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).parse().unwrap())
            .expect("seq header");
        if last_seq.get(&key).is_some_and(|s| seq <= *s) {
            continue;
        }
        last_seq.insert(key.clone(), seq);
        seen.insert(
            (key, seq),
            serde_json::from_slice(m.payload().unwrap()).unwrap(),
        );
    }
    seen
}

/// Polls `f` every 200 ms until it returns `Some`, for at most 60 s.
pub(crate) async fn eventually<T, F, Fut>(what: &str, env: &TestEnv, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `(seq, kind, at_ms, resolved_by in the message)` of the transitions of `key` in PostgreSQL.
pub(crate) async fn transitions_of(
    pg: &sqlx::PgPool,
    key: &str,
) -> Vec<(i64, String, i64, Option<String>)> {
    sqlx::query_as(
        "SELECT seq, kind, at_ms, message #>> '{payload,custom_details,resolved_by}' FROM alert_transitions
         WHERE dedup_key = $1 ORDER BY seq",
    )
    .bind(key)
    .fetch_all(pg)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_and_instances_through_the_api_manual_resolve_reaches_the_pager_and_federations_sum_members(
) {
    use atlasmesh_core::{Role, Scope};
    use reqwest::Method;
    use serde_json::json;

    let env = TestEnv::new("alertapi");
    env.migrate();
    let pg = env.pg().await;
    let (mut api, base) = env.spawn_api(0).await;
    let mut worker = env.spawn_worker_args(
        0,
        &["--pipelines", "alerts,commands"],
        &[
            ("ATLASMESH_ALERTS__RULES_REFRESH_MS", "300"),
            ("ATLASMESH_RUNNER__CHECKPOINT_INTERVAL_MS", "200"),
        ],
    );
    let http = reqwest::Client::new();
    let unique = env.cfg.kafka.group_prefix.replace('.', "-");
    let (fa, fc, fb) = (
        format!("{unique}-fa"),
        format!("{unique}-fc"),
        format!("{unique}-fb"),
    );
    let root = env.token("root", Role::Admin, &Scope::all());
    let op_a = env.token("op-a", Role::Operator, &Scope::fleets([fa.as_str()]));
    let op_b = env.token("op-b", Role::Operator, &Scope::fleets([fb.as_str()]));
    let rules_url = format!("{base}/api/v1/alerting/rules");
    let inst_url = format!("{base}/api/v1/alerting/instances");

    // A federation of fleets A and C (coordination tables, through the API as well).
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{base}/api/v1/fleet-coordination/federations?wait=true"),
        &root,
        Some(json!({"name": "North"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let fed = v["entity_id"].as_str().unwrap().to_string();
    for f in [&fa, &fc] {
        let body = json!({"federation_id": fed, "fleet_id": f, "role": "member"});
        let (s, v) = call(
            &http,
            Method::POST,
            format!("{base}/api/v1/fleet-coordination/members?wait=true"),
            &root,
            Some(body),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }

    // Rules through the command path. The kernel's validation answers before any command.
    let fleet_rule = json!({"fleet_id": fa, "scope": "fleet", "metric": "utilization", "comparison": "lt",
        "threshold": 0.5, "clear_threshold": 0.6, "for_ms": 2 * M, "severity": "warning", "labels": {"team": "ops"}});
    let mut wrong_side = fleet_rule.clone();
    wrong_side["clear_threshold"] = json!(0.4);
    let (s, v) = call(
        &http,
        Method::POST,
        rules_url.clone(),
        &op_a,
        Some(wrong_side),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("clear_threshold"), "{v}");
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{rules_url}?wait=true"),
        &op_a,
        Some(fleet_rule.clone()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rule_a = v["entity_id"].as_str().unwrap().to_string();
    // An update that would put the stored clear threshold on the firing side is refused by the
    // worker (the merged rule is validated); a harmless one is applied.
    let (s, v) = call(
        &http,
        Method::PATCH,
        format!("{rules_url}/{rule_a}?wait=true"),
        &op_a,
        Some(json!({"threshold": 0.7})),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = call(
        &http,
        Method::PATCH,
        format!("{rules_url}/{rule_a}?wait=true"),
        &op_a,
        Some(json!({"runbook_url": "https://runbooks.example/a"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(
        &http,
        Method::GET,
        format!("{rules_url}/{rule_a}"),
        &op_a,
        None,
    )
    .await;
    assert_eq!(
        (s, v["threshold"].as_f64(), v["runbook_url"].as_str()),
        (200, Some(0.5), Some("https://runbooks.example/a")),
        "{v}"
    );
    // Federation rule: owned by A (a member). Fleet B is no member: refused.
    let fed_rule = json!({"fleet_id": fa, "scope": "federation", "federation_id": fed, "metric": "utilization",
        "comparison": "lt", "threshold": 0.45, "clear_threshold": 0.5, "severity": "critical"});
    let mut foreign = fed_rule.clone();
    foreign["fleet_id"] = json!(fb);
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{rules_url}?wait=true"),
        &op_b,
        Some(foreign),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains("not a member"), "{v}");
    // A's operator without a claim on the federation: its instance would show the whole
    // federation's total, so it is refused; with the claim it is created.
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{rules_url}?wait=true"),
        &op_a,
        Some(fed_rule.clone()),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains("claim on that federation"), "{v}");
    let op_a_fed = env.token(
        "op-a",
        Role::Operator,
        &Scope::fleets([fa.as_str()]).with_federations([fed.as_str()]),
    );
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{rules_url}?wait=true"),
        &op_a_fed,
        Some(fed_rule),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rule_f = v["entity_id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &http,
        Method::GET,
        format!("{rules_url}?fleet_id={fa}"),
        &op_b,
        None,
    )
    .await;
    assert_eq!(s, 403, "{v}");
    // The engine starts a federation rule after the windows already settled: wait until it
    // has seen this one, so every window below counts.
    let (pgr, rf) = (&pg, rule_f.as_str());
    eventually("federation rule state", &env, || async move {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM alert_federation_state WHERE rule_id = $1")
                .bind(rf)
                .fetch_one(pgr)
                .await
                .unwrap();
        (n == 1).then_some(())
    })
    .await;

    // Utilization per minute. A: calm, breach (pending at 2, firing at 4: for 2 min), the
    // hysteresis band, breach again. C: low all along. Federation: (A + C) / 2.
    let a = Fleet {
        id: fa.clone(),
        series: vec![0.7, 0.4, 0.4, 0.4, 0.55, 0.55, 0.4, 0.4, 0.4, 0.4, 0.4],
    };
    let c = Fleet {
        id: fc.clone(),
        series: vec![0.3; 11],
    };
    // Phase 1: minutes 1..=5 and the watermarks settle 1..=4 of each fleet, and so federation
    // windows 1..=4 (every metrics partition settled them): minute 1 is 0.5 (no breach
    // although C alone is 0.3), minute 2 is 0.35 and fires (for 0).
    produce_partials(&env, 1..=5, &[&a, &c]).await;
    let key_a = alert::dedup_key(&rule_a, &fa);
    let key_f = alert::dedup_key(&rule_f, &fed);
    let instance = |key: String, token: String| {
        let (http, url) = (http.clone(), format!("{inst_url}/{key}"));
        async move {
            let (s, v) = call(&http, Method::GET, url, &token, None).await;
            (s == 200).then_some(v)
        }
    };
    let firing = |key: &str| {
        let (key, op) = (key.to_string(), op_a.clone());
        let instance = &instance;
        async move { instance(key, op).await.filter(|v| v["status"] == "firing") }
    };
    let va = eventually("fleet A firing", &env, || firing(&key_a)).await;
    assert_eq!(
        (
            va["rule_id"].as_str(),
            va["subject"].as_str(),
            va["last_transition_seq"].as_i64()
        ),
        (Some(rule_a.as_str()), Some(fa.as_str()), Some(2))
    );
    assert_eq!(va["started_at_ms"], BASE + 4 * M);
    let vf = eventually("federation firing", &env, || firing(&key_f)).await;
    assert_eq!(
        (
            vf["subject"].as_str(),
            vf["fleet_id"].as_str(),
            vf["last_transition_seq"].as_i64()
        ),
        (Some(fed.as_str()), Some(fa.as_str()), Some(1))
    );
    assert_eq!(vf["started_at_ms"], BASE + 2 * M);
    let combined = (2.0 * 24_000.0 + 2.0 * 18_000.0) / 240_000.0;
    assert_eq!(
        vf["value"].as_f64(),
        Some(combined),
        "the federation window sums the members' counters"
    );
    // The evaluator judges windows 3 and 4 (0.35: still firing, no transition) on later
    // refreshes. The manual resolve below is meant for its clock at the end of window 4: one
    // applied at 2 or 3 starts the machine over, the next window fires it again (for 0) and
    // the new episode clears `manual_resolve_seq` (a race this test lost under load).
    let (pgr, rf) = (&pg, rule_f.as_str());
    eventually("federation window 4 judged", &env, || async move {
        let clock: Option<i64> =
            sqlx::query_scalar("SELECT clock_ms FROM alert_federation_state WHERE rule_id = $1")
                .bind(rf)
                .fetch_one(pgr)
                .await
                .unwrap();
        (clock == Some(BASE + 4 * M)).then_some(())
    })
    .await;

    // Lists: scoped, filtered, paginated in a stable order.
    let (s, v) = call(
        &http,
        Method::GET,
        format!("{inst_url}?fleet_id={fa}&limit=1"),
        &op_a,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let cursor = v["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let (_, v2) = call(
        &http,
        Method::GET,
        format!("{inst_url}?fleet_id={fa}&limit=1&cursor={cursor}"),
        &op_a,
        None,
    )
    .await;
    let mut ids: Vec<String> = [&v, &v2]
        .iter()
        .map(|p| p["items"][0]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want_ids = vec![key_a.clone(), key_f.clone()];
    want_ids.sort();
    assert_eq!(ids, want_ids);
    assert!(v2["next_cursor"].is_null(), "{v2}");
    let (_, v) = call(
        &http,
        Method::GET,
        format!("{inst_url}/by-status/firing?fleet_id={fa}"),
        &op_a,
        None,
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");
    let (_, v) = call(
        &http,
        Method::GET,
        format!("{inst_url}/by-rule/{rule_a}"),
        &op_a,
        None,
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    // Another fleet's operator sees nothing of A and cannot act on it.
    assert_eq!(
        call(
            &http,
            Method::GET,
            format!("{inst_url}/{key_a}"),
            &op_b,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &http,
            Method::GET,
            format!("{inst_url}?fleet_id={fa}"),
            &op_b,
            None
        )
        .await
        .0,
        403
    );
    let (_, v) = call(&http, Method::GET, inst_url.clone(), &op_b, None).await;
    assert!(!v.to_string().contains(&fa), "{v}");
    assert_eq!(
        call(
            &http,
            Method::POST,
            format!("{inst_url}/{key_a}/acknowledge"),
            &op_b,
            Some(json!({}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &http,
            Method::POST,
            format!("{inst_url}/{key_a}/resolve"),
            &op_b,
            Some(json!({}))
        )
        .await
        .0,
        404
    );

    // Acknowledge (actor recorded), once.
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{inst_url}/{key_a}/acknowledge?wait=true"),
        &op_a,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let v = instance(key_a.clone(), op_a.clone()).await.unwrap();
    assert_eq!(
        (v["acknowledged_by"].as_str(), v["status"].as_str()),
        (Some("jwt:op-a"), Some("firing"))
    );
    assert!(v["acknowledged_at"].is_string());
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{inst_url}/{key_a}/acknowledge?wait=true"),
        &op_a,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 409, "{v}");

    // Resolve both by hand. The federation's resolve is published by the evaluator on its
    // next refresh (resolve at its clock, the end of window 4).
    for key in [&key_a, &key_f] {
        let (s, v) = call(
            &http,
            Method::POST,
            format!("{inst_url}/{key}/resolve?wait=true"),
            &op_a,
            Some(json!({"note": "depot closed"})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let v = instance(key_a.clone(), op_a.clone()).await.unwrap();
    assert_eq!(
        (
            v["status"].as_str(),
            v["resolved_by"].as_str(),
            v["resolution_note"].as_str()
        ),
        (Some("resolved"), Some("jwt:op-a"), Some("depot closed"))
    );
    let (s, _) = call(
        &http,
        Method::POST,
        format!("{inst_url}/{key_a}/resolve?wait=true"),
        &op_a,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 409, "resolving twice is refused");
    let manual_seq = |key: String| {
        let pg = pg.clone();
        async move {
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT manual_resolve_seq FROM alert_instances WHERE dedup_key = $1",
            )
            .bind(key)
            .fetch_one(&pg)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        eventually("federation manual resolve published", &env, || manual_seq(
            key_f.clone()
        ))
        .await,
        2
    );
    // The partition holding A's instance receives nothing now; it publishes the manual resolve
    // on its own (runner tick) as seq 3, at its clock (the end of minute 4).
    assert_eq!(
        eventually("fleet A manual resolve published", &env, || manual_seq(
            key_a.clone()
        ))
        .await,
        3
    );
    // Phase 2: minute 6 settles minute 5 of A (0.55: in the band, no breach).
    produce_partials(&env, 6..=6, &[&a, &c]).await;
    let row: (String, Option<String>, i64) = sqlx::query_as(
        "SELECT status, resolved_by, last_transition_seq FROM alert_instances WHERE dedup_key = $1",
    )
    .bind(&key_a)
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(
        row,
        ("resolved".to_string(), Some("jwt:op-a".to_string()), 3)
    );

    // Phase 3: A breaches again from minute 7: a fresh pending, firing only after `for`.
    produce_partials(&env, 7..=11, &[&a, &c]).await;
    // The recorded actor is the caller identity (kind and subject).
    let by = Some("jwt:op-a".to_string());
    let want_a = vec![
        (1, "pending".to_string(), BASE + 2 * M, None),
        (2, "firing".to_string(), BASE + 4 * M, None),
        (3, "resolved".to_string(), BASE + 4 * M, by.clone()),
        (4, "pending".to_string(), BASE + 7 * M, None),
        (5, "firing".to_string(), BASE + 9 * M, None),
    ];
    let got_a = eventually("fleet A fires again", &env, || {
        let (pg, key, n) = (pg.clone(), key_a.clone(), want_a.len());
        async move {
            let t = transitions_of(&pg, &key).await;
            (t.len() >= n).then_some(t)
        }
    })
    .await;
    assert_eq!(got_a, want_a, "logs in {}", env.log_dir.display());
    // Federation: fired at 2, resolved by hand at 4, fires again on window 5 (0.425; for 0).
    let want_f = vec![
        (1, "firing".to_string(), BASE + 2 * M, None),
        (2, "resolved".to_string(), BASE + 4 * M, by.clone()),
        (3, "firing".to_string(), BASE + 5 * M, None),
    ];
    let got_f = eventually("federation fires again", &env, || {
        let (pg, key) = (pg.clone(), key_f.clone());
        async move {
            let t = transitions_of(&pg, &key).await;
            (t.len() >= 3).then_some(t)
        }
    })
    .await;
    assert_eq!(got_f, want_f);
    let v = instance(key_a.clone(), op_a.clone()).await.unwrap();
    assert_eq!(
        (
            v["status"].as_str(),
            v["resolved_by"].as_str(),
            v["acknowledged_by"].as_str()
        ),
        (Some("firing"), None, None),
        "a new episode clears the marks"
    );

    // The pager heard the manual resolves: `resolve` with the next seq, keyed by dedup key.
    let consumer = env.consumer(&env.cfg.topics.alerts, "alerts-api-check");
    let want_paged: BTreeSet<(String, i64)> = [
        (&key_a, 2),
        (&key_a, 3),
        (&key_a, 5),
        (&key_f, 1),
        (&key_f, 2),
        (&key_f, 3),
    ]
    .iter()
    .map(|(k, s)| (k.to_string(), *s))
    .collect();
    let seen = paged(&consumer, &want_paged).await;
    let got_paged: BTreeSet<(String, i64)> = seen.keys().cloned().collect();
    assert_eq!(
        got_paged, want_paged,
        "only firing/resent/resolved are paged"
    );
    for key in [&key_a, &key_f] {
        let seq = if *key == key_a { 3 } else { 2 };
        let m = &seen[&(key.to_string(), seq)];
        assert_eq!(
            (m["event_action"].as_str(), m["dedup_key"].as_str()),
            (Some("resolve"), Some(key.as_str())),
            "{m}"
        );
        assert_eq!(m["payload"]["custom_details"]["resolved_by"], "jwt:op-a");
        assert_eq!(m["payload"]["custom_details"]["seq"], seq);
        assert!(m["endsAt"].is_string());
    }
    assert_eq!(
        seen[&(key_f.clone(), 1)]["payload"]["source"],
        format!("atlasmesh/federation/{fed}")
    );

    // ClickHouse alert history: exactly the PostgreSQL transitions (FINAL collapses repeats).
    #[derive(serde::Deserialize)]
    struct H {
        dedup_key: String,
        status: String,
        at_ms: i64,
        event_action: String,
    }
    let pg_rows: BTreeSet<(String, String, i64)> = [(&key_a, &got_a), (&key_f, &got_f)]
        .iter()
        .flat_map(|(k, ts)| ts.iter().map(|t| (k.to_string(), t.1.clone(), t.2)))
        .collect();
    let (envr, fa_r, want_n) = (&env, fa.as_str(), pg_rows.len());
    let ch_rows = eventually("alert history in ClickHouse", &env, || async move {
        let rows: Vec<H> = envr
            .ch_rows(&format!(
                "SELECT dedup_key, toString(status) AS status, at_ms, toString(event_action) AS event_action FROM alert_history FINAL
                 WHERE fleet_id = '{fa_r}' ORDER BY dedup_key, at_ms"
            ))
            .await;
        (rows.len() >= want_n).then_some(rows)
    })
    .await;
    let got: BTreeSet<(String, String, i64)> = ch_rows
        .iter()
        .map(|h| (h.dedup_key.clone(), h.status.clone(), h.at_ms))
        .collect();
    assert_eq!(got, pg_rows);
    assert_eq!(ch_rows.len(), pg_rows.len());
    assert!(ch_rows
        .iter()
        .all(|h| h.event_action == ch_action(&h.status)));

    // Deleting a rule (admin) through the command path.
    let admin_a = env.token("admin-a", Role::Admin, &Scope::fleets([fa.as_str()]));
    let (s, v) = call(
        &http,
        Method::DELETE,
        format!("{rules_url}/{rule_a}?wait=true"),
        &admin_a,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        call(
            &http,
            Method::GET,
            format!("{rules_url}/{rule_a}"),
            &op_a,
            None
        )
        .await
        .0,
        404
    );

    sigterm(&mut worker);
    sigterm(&mut api);
}

fn ch_action(status: &str) -> &'static str {
    match status {
        "firing" | "resent" => "trigger",
        "resolved" => "resolve",
        _ => "none",
    }
}
