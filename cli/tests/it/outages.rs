//! Each dependency down for 20–30 s in the middle of a run, with a worker and the API running:
//! nothing is lost or doubled (every window and raw row equals the reference), the worker waits
//! instead of exiting, progress resumes within 5 s of the dependency answering again, the API's
//! `/health` is 200 within 5 s of it, no partition with work waits for long while the backlog
//! is caught up, and (Redis, restarted empty) the hot state is there again.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use atlasmesh_core::TelemetryEvent;
use atlasmesh_simulator::{valid_counted_events, Emitted, SimConfig, Simulator};
use atlasmesh_test_support::{ClickHouseServer, PostgresServer, RedisServer, TansuBroker};

use crate::common::{sigterm, TestEnv};
use crate::reference;

/// How soon after a dependency answers again progress and `/health` must follow.
const RECOVERY: Duration = Duration::from_secs(5);
/// The longest a partition with unprocessed messages may see its checkpoint stand still while
/// the worker catches up.
const MAX_STALL: Duration = Duration::from_secs(15);

/// A dependency a test can take down and bring back.
trait Outage {
    fn stop(&mut self);
    /// Returns once the dependency answers.
    fn restart(&mut self);
    /// Whether offsets can still move while it is down (the broker: the worker may finish what
    /// it fetched before).
    fn progress_while_down(&self) -> bool {
        false
    }
}

impl Outage for ClickHouseServer {
    fn stop(&mut self) {
        ClickHouseServer::stop(self).unwrap();
    }
    fn restart(&mut self) {
        ClickHouseServer::restart(self).unwrap();
    }
}

impl Outage for PostgresServer {
    fn stop(&mut self) {
        PostgresServer::stop(self).unwrap();
    }
    fn restart(&mut self) {
        PostgresServer::restart(self).unwrap();
    }
}

impl Outage for RedisServer {
    fn stop(&mut self) {
        RedisServer::stop(self).unwrap();
    }
    fn restart(&mut self) {
        RedisServer::restart(self).unwrap();
    }
}

impl Outage for TansuBroker {
    fn stop(&mut self) {
        TansuBroker::stop(self).unwrap();
    }
    fn restart(&mut self) {
        TansuBroker::restart(self).unwrap();
    }
    fn progress_while_down(&self) -> bool {
        true
    }
}

/// Checkpointed next offset per telemetry partition; empty when PostgreSQL does not answer.
async fn partition_offsets(env: &TestEnv) -> BTreeMap<i32, i64> {
    let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&env.cfg.postgres.url)
        .await
    else {
        return BTreeMap::new();
    };
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM stream_checkpoints \
         WHERE pipeline = 'telemetry' AND topic = $1",
    )
    .bind(&env.cfg.topics.telemetry)
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    pool.close().await;
    rows.into_iter().collect()
}

async fn health_ok(base: &str) -> bool {
    reqwest::Client::new()
        .get(format!("{base}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
}

/// The whole scenario: `dep` serves the part of the config `use_dep` points at it.
async fn run_outage(
    name: &str,
    dep: &mut dyn Outage,
    use_dep: impl FnOnce(&mut TestEnv),
    down: Duration,
) -> (TestEnv, Vec<Emitted>) {
    let mut env = TestEnv::new(name);
    use_dep(&mut env);
    env.migrate();
    let items = Simulator::new(SimConfig {
        seed: 4242,
        fleets: 2,
        vehicles_per_fleet: 12,
        duplicate_pct: 0.005,
        ..SimConfig::default()
    })
    .take(30_000);
    let counted = valid_counted_events(&items);
    let want_vehicle = reference::vehicle_windows(&counted);
    let want_fleet = reference::fleet_windows(&counted, &want_vehicle);
    let (a, rest) = items.split_at(10_000);
    let (b, c) = rest.split_at(10_000);

    // The worker serves its own /health beside /metrics; both it and the API's must follow.
    let worker_port = atlasmesh_test_support::tansu_broker::free_port().unwrap();
    let worker_listen = format!("127.0.0.1:{worker_port}");
    // The telemetry worker as deployed (deploy/k8s: its own Deployment, `--pipelines
    // telemetry`): the recovery bound is its own, not that of every pipeline on two cores.
    let mut worker = env.spawn_worker_args(
        0,
        &["--pipelines", "telemetry"],
        &[
            ("ATLASMESH_RUNNER__METRICS_LISTEN", &worker_listen),
            (
                "RUST_LOG",
                "info,rdkafka=warn,sqlx=warn,atlasmesh_pipelines::runner=debug",
            ),
        ],
    );
    let worker_base = format!("http://{worker_listen}");
    let (mut api, base) = env.spawn_api(0).await;
    env.produce(a).await;
    let pg = env.pg().await;
    env.wait_checkpointed(&pg, a.len() as i64, Duration::from_secs(90))
        .await;
    pg.close().await;

    if dep.progress_while_down() {
        env.produce(b).await; // nothing can be produced while the broker is down
    }
    dep.stop();
    let down_at = Instant::now();
    if !dep.progress_while_down() {
        env.produce(b).await;
    }
    tokio::time::sleep(down.saturating_sub(down_at.elapsed())).await;
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker must wait for {name}, not exit; logs in {}",
        env.log_dir.display()
    );
    assert!(
        !health_ok(&base).await && !health_ok(&worker_base).await,
        "/health (API and worker) must not be 200 while {name} is down"
    );
    dep.restart();
    let back = Instant::now();
    eprintln!("{name}: down for {:?}", back - down_at);
    let before: i64 = partition_offsets(&env).await.values().sum();
    if !dep.progress_while_down() {
        assert_eq!(
            before,
            a.len() as i64,
            "no offset may move while {name} is down"
        );
    }
    env.produce(c).await;

    // Progress, /health and fairness, polled side by side until everything is checkpointed.
    let total = items.len() as i64;
    let (mut progress, mut health) = (None, None);
    let mut last_move: BTreeMap<i32, (i64, Instant)> = BTreeMap::new();
    let mut worst_stall = (Duration::ZERO, -1);
    loop {
        let now = Instant::now();
        if health.is_none() && health_ok(&base).await && health_ok(&worker_base).await {
            health = Some(now - back);
        }
        let offsets = partition_offsets(&env).await;
        let sum: i64 = offsets.values().sum();
        if progress.is_none() && sum > before {
            progress = Some(now - back);
        }
        for (p, o) in &offsets {
            let e = last_move.entry(*p).or_insert((*o, now));
            if *o != e.0 {
                *e = (*o, now);
            }
        }
        if sum >= total && health.is_some() {
            break;
        }
        // A partition that is not done yet and has not moved: how long it waits.
        for (p, (_, since)) in &last_move {
            let stalled = now - *since;
            if stalled > worst_stall.0 && sum < total {
                worst_stall = (stalled, *p);
            }
        }
        assert!(
            now - back < Duration::from_secs(180),
            "{name}: only {sum}/{total} checkpointed, /health {health:?}, 180 s after it came back; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let progress = progress.expect("progress");
    let health = health.expect("health");
    eprintln!(
        "{name}: progress resumed {progress:?} and /health 200 {health:?} after it answered; \
         (API and worker) longest stall of a partition while catching up {:?} (partition {})",
        worst_stall.0, worst_stall.1
    );
    let pg = env.pg().await;
    env.wait_checkpointed(&pg, total, Duration::from_secs(5))
        .await;
    env.assert_windows(&want_vehicle, &want_fleet, Duration::from_secs(60))
        .await;
    assert_eq!(env.raw_count().await, counted.len() as u64, "raw rows");
    assert!(
        progress <= RECOVERY,
        "{name}: progress resumed {progress:?} after it answered (≤ {RECOVERY:?})"
    );
    assert!(
        health <= RECOVERY,
        "{name}: /health 200 only {health:?} after it answered (≤ {RECOVERY:?})"
    );
    assert!(
        worst_stall.0 <= MAX_STALL,
        "{name}: partition {} stood still for {:?} while it had work",
        worst_stall.1,
        worst_stall.0
    );
    stop(&mut worker, &mut api);
    (env, items)
}

fn stop(worker: &mut Child, api: &mut Child) {
    sigterm(worker);
    sigterm(api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_mid_run() {
    let mut ch = ClickHouseServer::start(None).expect("private ClickHouse");
    let url = ch.url();
    run_outage(
        "ch_down",
        &mut ch,
        |env| env.cfg.clickhouse.url = url,
        Duration::from_secs(25),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_mid_run() {
    let mut pg = PostgresServer::start().expect("private PostgreSQL");
    let server = pg.url("postgres");
    run_outage(
        "pg_down",
        &mut pg,
        |env| {
            let db = env.cfg.postgres.url.rsplit_once('/').unwrap().1.to_string();
            env.cfg.postgres.url = format!("{}/{db}", server.rsplit_once('/').unwrap().0);
        },
        Duration::from_secs(20),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_mid_run() {
    let port = atlasmesh_test_support::tansu_broker::free_port().unwrap();
    let mut broker = TansuBroker::start_on(port).expect("private Tansu");
    let bootstrap = broker.bootstrap();
    run_outage(
        "kafka_down",
        &mut broker,
        |env| env.cfg.kafka.brokers = bootstrap,
        Duration::from_secs(20),
    )
    .await;
}

/// Redis restarted empty (a cache may lose everything): the worker re-publishes the latest
/// sample of every vehicle and the recent fleet windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_mid_run() {
    let mut redis = RedisServer::start().expect("private Redis");
    let url = redis.url();
    let (env, items) = run_outage(
        "redis_down",
        &mut redis,
        |env| env.cfg.redis.url = url,
        Duration::from_secs(20),
    )
    .await;

    // The newest valid sample of every vehicle, from the input.
    let mut want_latest: BTreeMap<(String, String), &TelemetryEvent> = BTreeMap::new();
    for e in valid_counted_events(&items) {
        let k = (e.fleet_id.clone(), e.vehicle_id.clone());
        if want_latest
            .get(&k)
            .is_none_or(|w| (w.ts_ms, w.seq) < (e.ts_ms, e.seq))
        {
            want_latest.insert(k, e);
        }
    }
    // The newest windows of every fleet, from ClickHouse: window start → partition → version.
    #[derive(serde::Deserialize)]
    struct Partial {
        fleet_id: String,
        window_start_ms: i64,
        source_partition: i32,
        version: u32,
    }
    let partials: Vec<Partial> = env
        .ch_rows(
            "SELECT fleet_id, window_start_ms, source_partition, max(version) AS version \
             FROM fleet_window_partials GROUP BY fleet_id, window_start_ms, source_partition",
        )
        .await;
    let mut want_windows: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for p in &partials {
        want_windows.entry(p.fleet_id.clone()).or_default().insert(
            atlasmesh_core::keys::fleet_window_field(p.window_start_ms, p.source_partition),
            p.version,
        );
    }
    let window_ms = env.cfg.telemetry.window_ms;
    for fields in want_windows.values_mut() {
        let newest = fields
            .keys()
            .filter_map(|f| atlasmesh_core::keys::parse_fleet_window_field(f))
            .map(|(ws, _)| ws)
            .max()
            .unwrap();
        let cutoff = newest - (atlasmesh_core::keys::KPI_WINDOWS_KEPT - 1) * window_ms;
        fields
            .retain(|f, _| atlasmesh_core::keys::parse_fleet_window_field(f).unwrap().0 >= cutoff);
    }

    let client = redis::Client::open(env.cfg.redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = &env.cfg.redis.key_prefix;
    let started = Instant::now();
    loop {
        let mut got_latest: BTreeMap<(String, String), TelemetryEvent> = BTreeMap::new();
        let mut got_windows: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        for fleet in want_windows.keys().chain(want_latest.keys().map(|k| &k.0)) {
            let vehicles: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
                .arg(atlasmesh_core::keys::fleet_vehicles(prefix, fleet))
                .query_async(&mut conn)
                .await
                .unwrap();
            for (v, value) in vehicles {
                let e = atlasmesh_core::keys::decode_latest(&value).unwrap();
                got_latest.insert((fleet.clone(), v), e);
            }
            let windows: BTreeMap<String, String> = redis::cmd("HGETALL")
                .arg(atlasmesh_core::keys::fleet_windows(prefix, fleet))
                .query_async(&mut conn)
                .await
                .unwrap();
            let w = got_windows.entry(fleet.clone()).or_default();
            for (field, json) in windows {
                let kpi: atlasmesh_core::keys::FleetPartialKpi =
                    serde_json::from_str(&json).unwrap();
                w.insert(field, kpi.version);
            }
        }
        let latest_ok = got_latest.len() == want_latest.len()
            && want_latest
                .iter()
                .all(|(k, w)| got_latest.get(k) == Some(*w));
        if (latest_ok && got_windows == want_windows) || started.elapsed() > Duration::from_secs(30)
        {
            assert_eq!(
                got_latest.len(),
                want_latest.len(),
                "vehicles with a latest sample in Redis; logs in {}",
                env.log_dir.display()
            );
            for (k, w) in &want_latest {
                assert_eq!(got_latest.get(k), Some(*w), "latest sample of {k:?}");
            }
            assert_eq!(got_windows, want_windows, "recent fleet windows in Redis");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
