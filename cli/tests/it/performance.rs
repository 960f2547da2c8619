//! The performance pipeline and the fleet report end to end: fleet partials produced straight
//! to the test's metrics topic (and the same windows written to the ClickHouse window tables,
//! as the telemetry pipeline would), the real worker (`--pipelines performance`) with
//! configured weights, a SIGKILL between two phases, a replay from scratch, then the report
//! through the real API as JSON and CSV.
//!
//! Expected values are worked out by hand from the window counters below, not with the
//! kernels under test. Every window of fleet A: 2 vehicles × 60 s observed, all available,
//! 2 km, 0.4 kWh (0.2 kWh/km), no faults, utilization `u_k = 0.30 + 0.01·k` in minute k;
//! fleet B: the same with `u = 0.5`. With the defaults (reference 0.2 kWh/km, 0.3 per kWh,
//! 0.25 per km scores 0 on cost) the components are efficiency 100, reliability 100,
//! safety 100, cost 100·(1 − 0.2·0.3/0.25) = 76, utilization 100·u; with the configured
//! weights efficiency 1, utilization 2, reliability 1, safety 0, cost 1:
//! `total = (100 + 200u + 100 + 76) / 5 = 55.2 + 40u`.

use std::time::{Duration, Instant};

use atlasmesh_core::analytics::report::rfc3339;
use atlasmesh_core::{Role, Scope};
use atlasmesh_schemas::{Codec, MetricsScope, SchemaKind, WindowMetricsRecord};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use serde::Deserialize;
use serde_json::Value;

use crate::common::{sigkill, sigterm, watermark_records, TestEnv};

const M: i64 = 60_000;
/// 2023-11-15T00:00:00Z.
const DAY1: i64 = 1_700_006_400_000;
const DAY0: i64 = DAY1 - 86_400_000;
/// Minute k starts at BASE + (k − 1)·M: minutes 1..=5 on DAY0, 6.. on DAY1.
const BASE: i64 = DAY1 - 5 * M;
/// Minutes 1..=12 settle; minute 13 waits for a later window.
const LAST: i64 = 13;

const WEIGHTS: [(&str, &str); 5] = [
    ("ATLASMESH_PERFORMANCE__SCORE__WEIGHTS__EFFICIENCY", "1"),
    ("ATLASMESH_PERFORMANCE__SCORE__WEIGHTS__UTILIZATION", "2"),
    ("ATLASMESH_PERFORMANCE__SCORE__WEIGHTS__RELIABILITY", "1"),
    ("ATLASMESH_PERFORMANCE__SCORE__WEIGHTS__SAFETY", "0"),
    ("ATLASMESH_PERFORMANCE__SCORE__WEIGHTS__COST", "1"),
];

fn total(u: f64) -> f64 {
    55.2 + 40.0 * u
}

fn u_a(k: i64) -> f64 {
    0.30 + 0.01 * k as f64
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// The partial of `source` (= vehicle `<fleet>-v<source>`) in minute k: fleet A's source 0 has
/// 6 s less busy time than source 1 (so vehicle v0 is the worse one), fleet B's are equal.
fn partial(fleet: &str, a: bool, source: i32, k: i64, version: i32) -> WindowMetricsRecord {
    let fleet_busy = if a { 36_000 + 1_200 * k } else { 60_000 };
    let skew = if a { 6_000 } else { 0 };
    let busy = fleet_busy / 2 + if source == 0 { -skew } else { skew };
    WindowMetricsRecord {
        scope: MetricsScope::FleetPartial,
        fleet_id: fleet.into(),
        vehicle_id: String::new(),
        source_partition: source,
        window_start_ms: BASE + (k - 1) * M,
        window_end_ms: BASE + k * M,
        version,
        samples: 6,
        observed_ms: 60_000,
        busy_ms: busy,
        available_ms: 60_000,
        idle_ms: 60_000 - busy,
        charging_ms: 0,
        maintenance_ms: 0,
        fault_ms: 0,
        offline_ms: 0,
        distance_m: 1_000,
        energy_wh: 200,
        moving_samples: 3,
        moving_speed_ckph_sum: 9_000,
        fault_count: 0,
        mission_count: 1,
        active_vehicles: 1,
        vehicles: 1,
        source_partitions: 0,
        source_idle: false,
    }
}

/// Minute k of a fleet as produced: each source first a wrong version 1, then version 2.
fn minute(fleet: &str, a: bool, k: i64) -> Vec<WindowMetricsRecord> {
    let mut out = Vec::new();
    for source in [0, 1] {
        let mut wrong = partial(fleet, a, source, k, 1);
        wrong.busy_ms = 0;
        wrong.idle_ms = 60_000;
        out.push(wrong);
        out.push(partial(fleet, a, source, k, 2));
    }
    out
}

async fn produce(
    env: &TestEnv,
    fleets: &[(&str, bool)],
    minutes: std::ops::RangeInclusive<i64>,
) -> i64 {
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let mut records = Vec::new();
    for k in minutes {
        for (f, a) in fleets {
            for r in minute(f, *a, k) {
                let payload = codec
                    .encode(&env.cfg.topics.metrics, SchemaKind::Metrics, &r)
                    .await
                    .unwrap();
                records.push(OutRecord {
                    topic: env.cfg.topics.metrics.clone(),
                    key: Some(f.as_bytes().to_vec()),
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
    records.len() as i64
}

fn ch_time(ms: i64) -> String {
    rfc3339(ms).trim_end_matches('Z').replace('T', " ")
}

/// The windows the telemetry pipeline would have written: fleet partials (both versions) and
/// one vehicle window per source.
async fn insert_window_tables(env: &TestEnv, fleets: &[(&str, bool)]) {
    let mut partials = String::new();
    let mut vehicles = String::new();
    for k in 1..=LAST {
        for (f, a) in fleets {
            for r in minute(f, *a, k) {
                let mut row = serde_json::json!({
                    "fleet_id": r.fleet_id, "window_start": ch_time(r.window_start_ms), "window_start_ms": r.window_start_ms,
                    "window_end_ms": r.window_end_ms, "version": r.version, "source_partition": r.source_partition,
                    "samples": r.samples, "observed_ms": r.observed_ms, "busy_ms": r.busy_ms, "available_ms": r.available_ms,
                    "idle_ms": r.idle_ms, "charging_ms": 0, "maintenance_ms": 0, "fault_ms": 0, "offline_ms": 0,
                    "distance_m": r.distance_m, "energy_wh": r.energy_wh, "moving_samples": r.moving_samples,
                    "moving_speed_ckph_sum": r.moving_speed_ckph_sum, "fault_count": 0, "mission_count": r.mission_count,
                    "active_vehicles": r.active_vehicles, "vehicles": r.vehicles, "emitted_at_ms": 0
                });
                partials.push_str(&row.to_string());
                partials.push('\n');
                row["vehicle_id"] = Value::from(format!("{f}-v{}", r.source_partition));
                vehicles.push_str(&row.to_string());
                vehicles.push('\n');
            }
        }
    }
    for (table, rows) in [
        ("fleet_window_partials", partials),
        ("vehicle_window_metrics", vehicles),
    ] {
        let url = format!(
            "{}/?database={}",
            env.cfg.clickhouse.url.trim_end_matches('/'),
            env.cfg.clickhouse.database
        );
        reqwest::Client::new()
            .post(url)
            .body(format!("INSERT INTO {table} FORMAT JSONEachRow\n{rows}"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
}

async fn checkpointed(env: &TestEnv, pg: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::bigint FROM stream_checkpoints WHERE pipeline = 'performance' AND topic = $1",
    )
    .bind(&env.cfg.topics.metrics)
    .fetch_one(pg)
    .await
    .unwrap()
    .unwrap_or(0)
}

async fn wait_checkpointed(env: &TestEnv, pg: &sqlx::PgPool, expected: i64) {
    let started = Instant::now();
    while checkpointed(env, pg).await < expected {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "performance pipeline did not checkpoint {expected}; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(checkpointed(env, pg).await, expected);
}

#[derive(Debug, Deserialize, PartialEq)]
struct ScoreRow {
    fleet_id: String,
    period: String,
    period_start_ms: i64,
    version: u32,
    total: f64,
    utilization: f64,
    cost: f64,
    benchmark_id: String,
    benchmark_pct: f64,
}

type Latest = (
    String,
    String,
    i64,
    i64,
    f64,
    Option<String>,
    Option<f64>,
    String,
);
type TrendLatest = (
    String,
    String,
    String,
    i32,
    f64,
    String,
    Option<f64>,
    Option<f64>,
    i64,
    String,
);
type RankRow = (String, i64, String, f64, i32, i32, String);

async fn pg_state(
    pg: &sqlx::PgPool,
    a: &str,
    b: &str,
    fed: &str,
) -> (Vec<Latest>, Vec<TrendLatest>, Vec<RankRow>) {
    let fleets = vec![a.to_string(), b.to_string()];
    let latest = sqlx::query_as(
        "SELECT fleet_id, period, period_start_ms, version, total, benchmark_id, benchmark_pct, updated_at::text
         FROM perf_score_latest WHERE fleet_id = ANY($1) ORDER BY fleet_id, period",
    )
    .bind(&fleets)
    .fetch_all(pg)
    .await
    .unwrap();
    let trends = sqlx::query_as(
        "SELECT fleet_id, metric, horizon, n, slope_per_hour, direction, change_pct, forecast, computed_at_ms, updated_at::text
         FROM perf_trend_latest WHERE fleet_id = ANY($1) ORDER BY fleet_id, metric, horizon",
    )
    .bind(&fleets)
    .fetch_all(pg)
    .await
    .unwrap();
    let ranks = sqlx::query_as(
        "SELECT federation_id, day_start_ms, fleet_id, total, rank, fleets, updated_at::text
         FROM perf_federation_ranks WHERE federation_id = $1 ORDER BY day_start_ms, fleet_id",
    )
    .bind(fed)
    .fetch_all(pg)
    .await
    .unwrap();
    (latest, trends, ranks)
}

async fn setup_pg(pg: &sqlx::PgPool, a: &str, b: &str, fed: &str) {
    let exec = |sql: &'static str, binds: Vec<String>| async move {
        let mut q = sqlx::query(sql);
        for v in binds {
            q = q.bind(v);
        }
        q.execute(pg).await.unwrap();
    };
    exec(
        "INSERT INTO federations (id, name) VALUES ($1, $1)",
        vec![fed.into()],
    )
    .await;
    for f in [a, b] {
        exec(
            "INSERT INTO federation_members (id, federation_id, fleet_id, role) VALUES ($1, $2, $3, 'member')",
            vec![format!("{fed}-{f}"), fed.into(), f.into()],
        )
        .await;
    }
    sqlx::query("INSERT INTO perf_benchmarks (id, fleet_id, name, metric, target_value, higher_is_better) VALUES ($1, $2, 'Score target', 'score', 80, true), ($3, $2, 'Utilization, minimum', 'utilization', 0.35, true)")
        .bind(format!("{a}-b-score"))
        .bind(a)
        .bind(format!("{a}-b-util"))
        .execute(pg)
        .await
        .unwrap();
    // Alerts of fleet A: a critical one that fired once, a warning one that fired and was
    // re-sent, one that was only pending (not in the report).
    for (rule, severity) in [("crit", "critical"), ("warn", "warning"), ("pend", "info")] {
        sqlx::query(
            "INSERT INTO alert_rules (id, fleet_id, scope, metric, comparison, threshold, severity)
             VALUES ($1, $2, 'fleet', 'utilization', 'lt', 0.4, $3)",
        )
        .bind(format!("{a}-{rule}"))
        .bind(a)
        .bind(severity)
        .execute(pg)
        .await
        .unwrap();
    }
    let transitions = [
        ("crit", 1, "firing", 3),
        ("crit", 2, "resolved", 6),
        ("warn", 1, "firing", 2),
        ("warn", 2, "resent", 7),
        ("pend", 1, "pending", 4),
    ];
    for (rule, seq, kind, k) in transitions {
        sqlx::query(
            "INSERT INTO alert_transitions (dedup_key, seq, kind, at_ms, rule_id, subject, fleet_id, value)
             VALUES ($1, $2, $3, $4, $5, $6, $6, 0.35)",
        )
        .bind(format!("{a}-{rule}-key"))
        .bind(seq as i64)
        .bind(kind)
        .bind(BASE + k * M)
        .bind(format!("{a}-{rule}"))
        .bind(a)
        .execute(pg)
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scores_trends_ranks_and_report_are_exact_across_restart_and_replay() {
    let env = TestEnv::new("performance");
    env.migrate();
    let pg = env.pg().await;
    let unique = env.cfg.kafka.group_prefix.replace('.', "-");
    let (a, b, fed) = (
        format!("{unique}-fa"),
        format!("{unique}-fb"),
        format!("{unique}-fed"),
    );
    setup_pg(&pg, &a, &b, &fed).await;
    let fleets = [(a.as_str(), true), (b.as_str(), false)];
    let mut extra: Vec<(&str, &str)> = WEIGHTS.to_vec();
    extra.push(("ATLASMESH_PERFORMANCE__WINDOW_HORIZONS", "[60, 5]"));
    let args = ["--pipelines", "performance"];

    // Phase 1: minutes 1..=7, then SIGKILL once checkpointed.
    let mut produced = produce(&env, &fleets, 1..=7).await;
    let mut worker = env.spawn_worker_args(0, &args, &extra);
    wait_checkpointed(&env, &pg, produced).await;
    sigkill(&mut worker);
    // Phase 2: the rest, on a restarted worker that resumes from the checkpointed state.
    produced += produce(&env, &fleets, 8..=LAST).await;
    let mut worker = env.spawn_worker_args(1, &args, &extra);
    wait_checkpointed(&env, &pg, produced).await;

    // ClickHouse history, exactly.
    let sql = format!(
        "SELECT fleet_id, toString(period) AS period, period_start_ms, version, total, utilization, cost, benchmark_id, benchmark_pct
         FROM performance_score_history FINAL WHERE fleet_id IN ('{a}', '{b}') ORDER BY fleet_id, period, period_start_ms"
    );
    let scores: Vec<ScoreRow> = env.ch_rows(&sql).await;
    // Each (key, version) written once (background merges could only hide duplicates).
    let dup_sql = format!(
        "SELECT count() AS n FROM (SELECT fleet_id, period, period_start_ms, version, count() AS c FROM performance_score_history
         WHERE fleet_id IN ('{a}', '{b}') GROUP BY fleet_id, period, period_start_ms, version HAVING c > 1)"
    );
    let dups: Vec<Value> = env.ch_rows(&dup_sql).await;
    assert_eq!(dups[0]["n"], 0, "no duplicate rows after the restart");
    // 12 window, 2 hour and 2 day scores per fleet.
    assert_eq!(scores.len(), 32, "{scores:#?}");
    for s in &scores {
        let is_a = s.fleet_id == a;
        let (want_start, want_u, want_version) = match s.period.as_str() {
            "window" => {
                let k = (s.period_start_ms - BASE) / M + 1;
                assert!((1..=12).contains(&k), "{s:?}");
                (BASE + (k - 1) * M, if is_a { u_a(k) } else { 0.5 }, 1)
            }
            // The day (and hour) before midnight: mean of u_1..u_5; after: mean of u_6..u_12.
            "day" if s.period_start_ms == DAY0 => (DAY0, if is_a { 0.33 } else { 0.5 }, 5),
            "day" => (DAY1, if is_a { 0.39 } else { 0.5 }, 7),
            "hour" if s.period_start_ms < DAY1 => {
                (DAY1 - 3_600_000, if is_a { 0.33 } else { 0.5 }, 5)
            }
            "hour" => (DAY1, if is_a { 0.39 } else { 0.5 }, 7),
            other => panic!("{other}"),
        };
        assert_eq!(
            (s.period_start_ms, s.version),
            (want_start, want_version),
            "{s:?}"
        );
        assert!(
            close(s.total, total(want_u), 1e-9),
            "{s:?} want {}",
            total(want_u)
        );
        assert!(
            close(s.utilization, 100.0 * want_u, 1e-9) && close(s.cost, 76.0, 1e-9),
            "{s:?}"
        );
        if is_a {
            assert_eq!(s.benchmark_id, format!("{a}-b-score"));
            assert!(
                close(s.benchmark_pct, 100.0 * total(want_u) / 80.0, 1e-9),
                "{s:?}"
            );
        } else {
            assert_eq!((s.benchmark_id.as_str(), s.benchmark_pct), ("", 0.0));
        }
    }
    #[derive(Deserialize, Debug)]
    struct TrendRow {
        metric: String,
        horizon: String,
        n: u32,
        slope: f64,
    }
    let trends: Vec<TrendRow> = env
        .ch_rows(&format!("SELECT metric, horizon, n, slope FROM trend_history FINAL WHERE fleet_id = '{a}' AND metric = 'score' ORDER BY horizon, computed_at_ms"))
        .await;
    // Trends from the third window on, per horizon; the score rises 0.4 per minute = 24 per hour.
    assert_eq!(
        trends.iter().filter(|t| t.horizon == "60w").count(),
        10,
        "{trends:?}"
    );
    assert_eq!(trends.iter().filter(|t| t.horizon == "5w").count(), 10);
    assert!(
        trends
            .iter()
            .all(|t| t.metric == "score" && close(t.slope, 24.0, 1e-6)),
        "{trends:?}"
    );
    assert_eq!(
        trends
            .iter()
            .filter(|t| t.horizon == "5w")
            .map(|t| t.n)
            .max(),
        Some(5)
    );

    // PostgreSQL latest values and ranks.
    let (latest, trend_latest, ranks) = pg_state(&pg, &a, &b, &fed).await;
    let row = |f: &str, p: &str| {
        latest
            .iter()
            .find(|r| r.0 == f && r.1 == p)
            .unwrap_or_else(|| panic!("{f} {p}: {latest:?}"))
            .clone()
    };
    let aw = row(&a, "window");
    assert_eq!((aw.2, aw.3), (BASE + 11 * M, 1));
    assert!(
        close(aw.4, 72.0, 1e-9) && close(aw.6.unwrap(), 90.0, 1e-9),
        "{aw:?}"
    );
    let ad = row(&a, "day");
    assert_eq!(
        (ad.2, ad.3, ad.5.as_deref()),
        (DAY1, 7, Some(format!("{a}-b-score").as_str()))
    );
    assert!(
        close(ad.4, 70.8, 1e-9) && close(ad.6.unwrap(), 88.5, 1e-9),
        "{ad:?}"
    );
    let bd = row(&b, "day");
    assert!(close(bd.4, 75.2, 1e-9) && bd.6.is_none(), "{bd:?}");
    let t = |f: &str, m: &str, h: &str| {
        trend_latest
            .iter()
            .find(|r| r.0 == f && r.1 == m && r.2 == h)
            .unwrap_or_else(|| panic!("{f} {m} {h}"))
            .clone()
    };
    let t60 = t(&a, "score", "60w");
    assert_eq!(
        (t60.3, t60.5.as_str(), t60.8),
        (12, "improving", BASE + 12 * M)
    );
    assert!(close(t60.4, 24.0, 1e-6), "{t60:?}");
    assert!(
        close(t60.6.unwrap(), 100.0 * (72.0 - 67.6) / 67.6, 1e-6),
        "{t60:?}"
    );
    assert!(
        close(t60.7.unwrap(), total(u_a(17)), 1e-6),
        "forecast 5 windows ahead: {t60:?}"
    );
    let t5 = t(&a, "score", "5w");
    assert_eq!(t5.3, 5);
    assert!(
        close(t5.6.unwrap(), 100.0 * (72.0 - 70.4) / 70.4, 1e-6),
        "{t5:?}"
    );
    let tb = t(&b, "score", "60w");
    assert_eq!((tb.5.as_str(), tb.6), ("stable", Some(0.0)));
    let tu = t(&a, "kwh_per_km", "60w");
    assert_eq!(tu.5, "stable");
    assert!(
        !trend_latest.iter().any(|r| r.2 == "14d"),
        "two days only: no day trend"
    );
    let want_ranks = [(DAY0, &a, 2), (DAY0, &b, 1), (DAY1, &a, 2), (DAY1, &b, 1)];
    let got: Vec<(i64, &String, i32, i32)> = ranks.iter().map(|r| (r.1, &r.2, r.4, r.5)).collect();
    assert_eq!(
        got,
        want_ranks
            .iter()
            .map(|(d, f, r)| (*d, *f, *r, 2))
            .collect::<Vec<_>>()
    );

    // Replay from scratch (checkpoints deleted): same rows, PostgreSQL untouched (updated_at).
    let before = pg_state(&pg, &a, &b, &fed).await;
    sigterm(&mut worker);
    sqlx::query("DELETE FROM stream_checkpoints WHERE pipeline = 'performance' AND topic = $1")
        .bind(&env.cfg.topics.metrics)
        .execute(&pg)
        .await
        .unwrap();
    let mut worker = env.spawn_worker_args(2, &args, &extra);
    wait_checkpointed(&env, &pg, produced).await;
    sigterm(&mut worker);
    assert_eq!(
        pg_state(&pg, &a, &b, &fed).await,
        before,
        "a replay changes nothing in PostgreSQL"
    );
    let again: Vec<ScoreRow> = env.ch_rows(&sql).await;
    assert_eq!(
        again, scores,
        "a replay changes nothing in ClickHouse (FINAL)"
    );

    // The report, through the API with the same weights.
    insert_window_tables(&env, &fleets).await;
    let (mut api, base) = env.spawn_api_with(0, &WEIGHTS).await;
    let http = reqwest::Client::new();
    let url = format!(
        "{base}/api/v1/fleets/{a}/report?from={BASE}&to={}",
        BASE + 12 * M
    );
    let token = env.token("perf-viewer", Role::Viewer, &Scope::fleets([a.clone()]));
    let res = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let r: Value = res.json().await.unwrap();
    // Minutes 1..=12: mean utilization 0.30 + 0.01·6.5 = 0.365 → total 69.8.
    assert_eq!(r["summary"]["windows"], 12);
    assert_eq!(r["summary"]["vehicles"], 2);
    assert!(
        close(r["summary"]["utilization"].as_f64().unwrap(), 0.365, 1e-12),
        "{r}"
    );
    assert!(close(
        r["summary"]["distance_km"].as_f64().unwrap(),
        24.0,
        1e-12
    ));
    assert!(
        close(r["score"]["total"].as_f64().unwrap(), 69.8, 1e-9),
        "{}",
        r["score"]
    );
    assert!(close(r["score"]["cost"].as_f64().unwrap(), 76.0, 1e-9));
    assert_eq!(r["weights"]["utilization"], 2.0);
    let daily = r["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 2);
    assert!(
        close(daily[0]["total"].as_f64().unwrap(), 68.4, 1e-9)
            && close(daily[1]["total"].as_f64().unwrap(), 70.8, 1e-9),
        "{daily:?}"
    );
    let bm = r["benchmarks"].as_array().unwrap();
    assert_eq!(bm.len(), 2);
    assert_eq!(
        (bm[0]["metric"].as_str(), bm[0]["met"].as_bool()),
        (Some("score"), Some(false))
    );
    assert!(close(
        bm[0]["percent_of_target"].as_f64().unwrap(),
        100.0 * 69.8 / 80.0,
        1e-9
    ));
    assert_eq!(
        (bm[1]["metric"].as_str(), bm[1]["met"].as_bool()),
        (Some("utilization"), Some(true))
    );
    assert!(close(
        bm[1]["percent_of_target"].as_f64().unwrap(),
        100.0 * 0.365 / 0.35,
        1e-9
    ));
    let ranks = r["ranks"].as_array().unwrap();
    assert_eq!(
        ranks
            .iter()
            .map(|x| (x["rank"].as_i64().unwrap(), x["fleets"].as_i64().unwrap()))
            .collect::<Vec<_>>(),
        [(2, 2), (2, 2)]
    );
    let score_trend = r["trends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"] == "score")
        .unwrap();
    assert_eq!(
        (
            score_trend["points"].as_i64(),
            score_trend["direction"].as_str()
        ),
        (Some(12), Some("improving"))
    );
    assert!(
        close(score_trend["slope_per_hour"].as_f64().unwrap(), 24.0, 1e-6),
        "{score_trend}"
    );
    let alerts: Vec<(&str, i64)> = r["top_alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["severity"].as_str().unwrap(),
                x["firings"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(alerts, [("critical", 1), ("warning", 2)]);
    // Vehicle v0 had 6 s less busy time per minute: utilization 0.365 − 0.1.
    let worst: Vec<&str> = r["worst_vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vehicle_id"].as_str().unwrap())
        .collect();
    assert_eq!(worst, [format!("{a}-v0"), format!("{a}-v1")]);
    assert!(close(
        r["worst_vehicles"][0]["total"].as_f64().unwrap(),
        total(0.265),
        1e-9
    ));

    // CSV: the same numbers, one value per line.
    let res = http
        .get(format!("{url}&format=csv"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = res.text().await.unwrap();
    let value = |section: &str, item: &str, field: &str| -> String {
        csv.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{section},{item},{field},"))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("{section},{item},{field} missing in\n{csv}"))
    };
    assert!(csv.starts_with("section,item,field,value\r\n"));
    assert_eq!(value("summary", "", "windows"), "12");
    assert!(close(
        value("score", "period", "total").parse().unwrap(),
        69.8,
        1e-9
    ));
    assert_eq!(value("benchmark", "Score target", "met"), "false");
    assert_eq!(
        value("benchmark", "\"Utilization, minimum\"", "met"),
        "true"
    );
    assert_eq!(value("trend", "score", "direction"), "improving");
    assert!(close(
        value("vehicle", &format!("{a}-v0"), "total")
            .parse()
            .unwrap(),
        total(0.265),
        1e-9
    ));

    // Scope: a caller of fleet B only is refused fleet A's report; no credentials → 401.
    let other = env.token("perf-other", Role::Viewer, &Scope::fleets([b.clone()]));
    assert_eq!(
        http.get(&url)
            .bearer_auth(&other)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        http.get(format!("{url}&format=xml"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    // The endpoint is in the OpenAPI document with its parameters and both content types.
    let doc: Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = &doc["paths"]["/api/v1/fleets/{fleet_id}/report"]["get"];
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["fleet_id", "from", "to", "format"]);
    let content = op["responses"]["200"]["content"].as_object().unwrap();
    assert!(
        content.contains_key("application/json") && content.contains_key("text/csv"),
        "{op}"
    );
    assert!(doc["components"]["schemas"]["FleetReport"].is_object());
    sigterm(&mut api);
}
