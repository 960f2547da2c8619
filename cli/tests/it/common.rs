//! Per-test isolation (own topics, consumer groups, ClickHouse database, Redis prefix) and
//! helpers to drive the real `atlasmesh` binary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atlasmesh_core::config::Config;
use atlasmesh_core::window::Counters;
use atlasmesh_schemas::{Codec, SchemaKind, WindowMetricsRecord};
use atlasmesh_simulator::Emitted;
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use serde::Deserialize;

/// The HS256 secret every process of a test shares.
pub const JWT_SECRET: &str = "integration-test-secret";
/// The command signing keys of the test configs (the API signs, the worker verifies).
pub const COMMAND_KEYS: &str = "it:integration-test-command-signing-key-0001";

/// Extra API environment for a test whose `?wait=true` writes must end final even while the
/// command worker is still starting (its consumer assignment on the local broker can take
/// longer than the default `api.command_wait_ms` of 5 s).
pub const PATIENT_API: [(&str, &str); 1] = [("ATLASMESH_API__COMMAND_WAIT_MS", "60000")];

pub struct TestEnv {
    pub cfg: Config,
    pub log_dir: PathBuf,
}

impl TestEnv {
    pub fn new(test: &str) -> TestEnv {
        // Tests of one process can start in the same millisecond: a counter tells them apart.
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let unique = format!(
            "{test}_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                % 100_000_000,
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut cfg = Config::load(None).expect("config from env");
        if std::env::var("CLICKHOUSE_VALIDATION").is_err() {
            cfg.clickhouse.validation = false; // the stack's server is 18.16
        }
        cfg.clickhouse.database = format!("it_{unique}");
        let t = &mut cfg.topics;
        for (slot, name) in [
            (&mut t.telemetry, "telemetry"),
            (&mut t.metrics, "metrics"),
            (&mut t.dlq, "dlq"),
            (&mut t.alerts, "alerts"),
            (&mut t.commands, "commands"),
            (&mut t.command_results, "command-results"),
            (&mut t.mission_events, "mission-events"),
            (&mut t.resource_events, "resource-events"),
            (&mut t.coordination, "coordination"),
        ] {
            *slot = format!("it.{unique}.{name}");
        }
        cfg.kafka.group_prefix = format!("it.{unique}");
        cfg.redis.key_prefix = format!("it:{unique}");
        // A database per test: a deployment owns its database (e.g. the federation alert
        // evaluator is one per database, by advisory lock), so tests running side by side must
        // not share one. `scripts/test` drops the `atlasmesh_it_*` databases of earlier runs.
        let base = cfg
            .postgres
            .url
            .rsplit_once('/')
            .map_or(cfg.postgres.url.as_str(), |(b, _)| b)
            .to_string();
        cfg.postgres.url = format!("{base}/atlasmesh_it_{unique}");
        cfg.auth.hs256_secret = Some(JWT_SECRET.into());
        cfg.command_signing.keys = COMMAND_KEYS.into();
        cfg.telemetry.idle_flush_ms = 1_500;
        cfg.runner.checkpoint_interval_ms = 500;
        let log_dir = std::env::temp_dir().join(format!("atlasmesh-it-{unique}"));
        std::fs::create_dir_all(&log_dir).unwrap();
        TestEnv { cfg, log_dir }
    }

    /// Environment that makes the binary use this test's isolated config.
    pub fn envs(&self) -> Vec<(String, String)> {
        let c = &self.cfg;
        let t = &c.topics;
        vec![
            ("KAFKA_BROKERS".into(), c.kafka.brokers.clone()),
            ("SCHEMA_REGISTRY_URL".into(), c.schema_registry.url.clone()),
            ("CLICKHOUSE_URL".into(), c.clickhouse.url.clone()),
            ("CLICKHOUSE_DATABASE".into(), c.clickhouse.database.clone()),
            (
                "CLICKHOUSE_VALIDATION".into(),
                c.clickhouse.validation.to_string(),
            ),
            ("DATABASE_URL".into(), c.postgres.url.clone()),
            ("REDIS_URL".into(), c.redis.url.clone()),
            ("REDIS_KEY_PREFIX".into(), c.redis.key_prefix.clone()),
            (
                "ATLASMESH_KAFKA__GROUP_PREFIX".into(),
                c.kafka.group_prefix.clone(),
            ),
            ("ATLASMESH_TOPICS__TELEMETRY".into(), t.telemetry.clone()),
            ("ATLASMESH_TOPICS__METRICS".into(), t.metrics.clone()),
            ("ATLASMESH_TOPICS__DLQ".into(), t.dlq.clone()),
            ("ATLASMESH_TOPICS__ALERTS".into(), t.alerts.clone()),
            ("ATLASMESH_TOPICS__COMMANDS".into(), t.commands.clone()),
            (
                "ATLASMESH_TOPICS__COMMAND_RESULTS".into(),
                t.command_results.clone(),
            ),
            (
                "ATLASMESH_TOPICS__MISSION_EVENTS".into(),
                t.mission_events.clone(),
            ),
            (
                "ATLASMESH_TOPICS__RESOURCE_EVENTS".into(),
                t.resource_events.clone(),
            ),
            (
                "ATLASMESH_TOPICS__COORDINATION".into(),
                t.coordination.clone(),
            ),
            (
                "ATLASMESH_TELEMETRY__IDLE_FLUSH_MS".into(),
                c.telemetry.idle_flush_ms.to_string(),
            ),
            (
                "ATLASMESH_RUNNER__CHECKPOINT_INTERVAL_MS".into(),
                c.runner.checkpoint_interval_ms.to_string(),
            ),
            ("ATLASMESH_LOG_FORMAT".into(), "json".into()),
            ("ATLASMESH_KAFKA__ASSIGNMENT".into(), "manual".into()),
            ("ATLASMESH_AUTH__HS256_SECRET".into(), JWT_SECRET.into()),
            (
                "ATLASMESH_COMMAND_SIGNING__KEYS".into(),
                COMMAND_KEYS.into(),
            ),
            // The tests drive the API harder than one person would.
            ("ATLASMESH_AUTH__RATE_LIMIT_PER_S".into(), "100000".into()),
            ("ATLASMESH_AUTH__RATE_LIMIT_BURST".into(), "100000".into()),
            // All from 127.0.0.1, many unauthenticated on purpose (the per-address limits
            // are tested in query-api/tests/it/http_limits.rs).
            ("ATLASMESH_API__ADDRESS_RATE_LIMIT_PER_S".into(), "0".into()),
            (
                "ATLASMESH_API__ADDRESS_AUTH_FAILURES_PER_S".into(),
                "0".into(),
            ),
        ]
    }

    /// `atlasmesh migrate` with this env (databases, tables, topics, schemas).
    pub fn migrate(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_atlasmesh"))
            .arg("migrate")
            .envs(self.envs())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts a worker process; its log goes to `<log_dir>/worker-<n>.log`.
    pub fn spawn_worker(&self, n: usize) -> Child {
        self.spawn_worker_with(n, &[])
    }

    /// Like `spawn_worker`, with extra environment overriding this test's config.
    pub fn spawn_worker_with(&self, n: usize, extra: &[(&str, &str)]) -> Child {
        self.spawn_worker_args(n, &[], extra)
    }

    /// Like `spawn_worker_with`, with extra `worker` arguments (e.g. `["--pipelines", "alerts"]`).
    pub fn spawn_worker_args(&self, n: usize, args: &[&str], extra: &[(&str, &str)]) -> Child {
        let log = std::fs::File::create(self.log_dir.join(format!("worker-{n}.log"))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_atlasmesh"))
            .args(["worker", "--no-prepare"])
            .args(args)
            .envs(self.envs())
            // Worker n restarted takes its partition leases back at once (manual mode).
            .env("ATLASMESH_KAFKA__WORKER_ID", format!("worker-{n}"))
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Starts the API process on a free port; returns it and its base URL once `/health`
    /// answers.
    pub async fn spawn_api(&self, n: usize) -> (Child, String) {
        self.spawn_api_with(n, &[]).await
    }

    /// Like `spawn_api`, with extra environment overriding this test's config.
    pub async fn spawn_api_with(&self, n: usize, extra: &[(&str, &str)]) -> (Child, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(self.log_dir.join(format!("api-{n}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_atlasmesh"))
            .arg("api")
            .envs(self.envs())
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("ATLASMESH_API__LISTEN", &listen)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let base = format!("http://{listen}");
        let started = Instant::now();
        while reqwest::get(format!("{base}/health")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "API did not start; logs in {}",
                self.log_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (child, base)
    }

    /// A bearer token for this test's API.
    pub fn token(
        &self,
        subject: &str,
        role: atlasmesh_core::Role,
        scope: &atlasmesh_core::Scope,
    ) -> String {
        atlasmesh_query_api::auth::issue_hs256(
            JWT_SECRET,
            subject,
            role,
            scope,
            Duration::from_secs(3600),
        )
    }

    /// `r` with the signature header the API would give it (the command worker refuses
    /// unsigned commands).
    pub fn signed(&self, mut r: OutRecord) -> OutRecord {
        let keys = self.cfg.command_signing.required_keys().unwrap();
        let sig = keys.sign(r.key.as_deref(), &r.payload).unwrap();
        r.headers.push((
            atlasmesh_core::command_signing::HEADER.to_string(),
            sig.into_bytes(),
        ));
        r
    }

    /// Produces `items` to the telemetry topic. A loaded CI machine can keep Tansu from
    /// acknowledging a large chunk within the producer's 30 s message timeout (a CI run lost
    /// a 20,000-record chunk so): the chunks are small and the timeout is 10 minutes, so a
    /// slow broker delays the test instead of failing it.
    pub async fn produce(&self, items: &[Emitted]) {
        let codec = Codec::new(&self.cfg.schema_registry.url).unwrap();
        let records = atlasmesh::produce::encode(&codec, &self.cfg.topics.telemetry, items)
            .await
            .unwrap();
        let mut kafka = self.cfg.kafka.clone();
        kafka
            .properties
            .insert("message.timeout.ms".into(), "600000".into());
        let producer = KafkaProducer::new(&kafka).unwrap();
        for chunk in records.chunks(2_000) {
            producer.send_all("kafka", chunk).await.unwrap();
        }
    }

    /// A consumer of `topic` from its beginning, in a group of its own (`<prefix>.<tag>`).
    pub fn consumer(&self, topic: &str, tag: &str) -> rdkafka::consumer::StreamConsumer {
        use rdkafka::consumer::Consumer;
        let mut cc = atlasmesh_sinks::kafka::client_config(&self.cfg.kafka);
        cc.set("group.id", format!("{}.{tag}", self.cfg.kafka.group_prefix))
            .set("auto.offset.reset", "earliest");
        let consumer: rdkafka::consumer::StreamConsumer = cc.create().unwrap();
        consumer.subscribe(&[topic]).unwrap();
        consumer
    }

    pub async fn telemetry_schema_id(&self) -> u32 {
        let codec = Codec::new(&self.cfg.schema_registry.url).unwrap();
        atlasmesh::produce::telemetry_schema_id(&codec, &self.cfg)
            .await
            .unwrap()
    }

    pub async fn pg(&self) -> sqlx::PgPool {
        atlasmesh_sinks::postgres::connect(&self.cfg.postgres.url, 2)
            .await
            .unwrap()
    }

    /// Sum of the checkpointed next offsets of the telemetry topic (= messages fully processed).
    pub async fn checkpointed(&self, pg: &sqlx::PgPool) -> i64 {
        sqlx::query_scalar::<_, Option<i64>>("SELECT sum(next_offset)::bigint FROM stream_checkpoints WHERE pipeline = 'telemetry' AND topic = $1")
            .bind(&self.cfg.topics.telemetry)
            .fetch_one(pg)
            .await
            .unwrap()
            .unwrap_or(0)
    }

    /// The most deltas stored after a full state among the telemetry topic's partitions.
    pub async fn checkpoint_deltas(&self, pg: &sqlx::PgPool) -> i32 {
        sqlx::query_scalar::<_, Option<i32>>("SELECT max(deltas) FROM stream_checkpoints WHERE pipeline = 'telemetry' AND topic = $1")
            .bind(&self.cfg.topics.telemetry)
            .fetch_one(pg)
            .await
            .unwrap()
            .unwrap_or(0)
    }

    pub async fn wait_checkpointed(&self, pg: &sqlx::PgPool, expected: i64, timeout: Duration) {
        let started = Instant::now();
        loop {
            let got = self.checkpointed(pg).await;
            if got >= expected {
                assert_eq!(got, expected, "checkpointed offsets overshoot");
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "only {got}/{expected} messages checkpointed after {timeout:?}; logs in {}",
                self.log_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `sql` on this test's ClickHouse database and returns the answer as text.
    pub async fn ch_text(&self, sql: &str) -> String {
        let url = format!(
            "{}/?database={}&output_format_json_quote_64bit_integers=0",
            self.cfg.clickhouse.url.trim_end_matches('/'),
            self.cfg.clickhouse.database
        );
        reqwest::Client::new()
            .post(url)
            .body(sql.to_string())
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Runs a query on this test's ClickHouse database and parses JSONEachRow.
    pub async fn ch_rows<T: for<'de> Deserialize<'de>>(&self, sql: &str) -> Vec<T> {
        let body = self.ch_text(&format!("{sql} FORMAT JSONEachRow")).await;
        body.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    pub async fn vehicle_windows(&self) -> BTreeMap<(String, i64), Counters> {
        #[derive(Deserialize)]
        struct Row {
            vehicle_id: String,
            window_start_ms: i64,
            #[serde(flatten)]
            c: Counters,
        }
        let rows: Vec<Row> = self
            .ch_rows("SELECT * FROM vehicle_window_metrics FINAL")
            .await;
        rows.into_iter()
            .map(|r| ((r.vehicle_id, r.window_start_ms), r.c))
            .collect()
    }

    pub async fn fleet_windows(&self) -> BTreeMap<(String, i64), Counters> {
        #[derive(Deserialize)]
        struct Row {
            fleet_id: String,
            window_start_ms: i64,
            #[serde(flatten)]
            c: Counters,
        }
        let rows: Vec<Row> = self.ch_rows("SELECT * FROM fleet_window_metrics").await;
        rows.into_iter()
            .map(|r| ((r.fleet_id, r.window_start_ms), r.c))
            .collect()
    }

    pub async fn raw_count(&self) -> u64 {
        #[derive(Deserialize)]
        struct N {
            n: u64,
        }
        self.ch_rows::<N>("SELECT count() AS n FROM telemetry_raw FINAL")
            .await[0]
            .n
    }

    /// Polls until ClickHouse holds exactly the expected windows (idle flush and merges are
    /// asynchronous), then asserts equality with a readable diff.
    pub async fn assert_windows(
        &self,
        want_vehicle: &BTreeMap<(String, i64), Counters>,
        want_fleet: &BTreeMap<(String, i64), Counters>,
        timeout: Duration,
    ) {
        let started = Instant::now();
        loop {
            let (v, f) = (self.vehicle_windows().await, self.fleet_windows().await);
            if (&v == want_vehicle && &f == want_fleet) || started.elapsed() > timeout {
                assert_eq!(
                    v.len(),
                    want_vehicle.len(),
                    "vehicle window count; logs in {}",
                    self.log_dir.display()
                );
                for (k, want) in want_vehicle {
                    assert_eq!(v.get(k), Some(want), "vehicle window {k:?}");
                }
                assert_eq!(f.len(), want_fleet.len(), "fleet window count");
                for (k, want) in want_fleet {
                    assert_eq!(f.get(k), Some(want), "fleet window {k:?}");
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A test that fails leaves the processes it started running (its `sigterm` is never reached):
/// kill every `atlasmesh` process started with this test's environment.
impl Drop for TestEnv {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let mark = format!(
            "ATLASMESH_KAFKA__GROUP_PREFIX={}",
            self.cfg.kafka.group_prefix
        );
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let environ = std::fs::read(p.path().join("environ")).unwrap_or_default();
            if environ.split(|&b| b == 0).any(|kv| kv == mark.as_bytes())
                && pid != std::process::id() as i32
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Kills the child hard and reaps it.
/// What the telemetry pipeline writes after a batch, for tests that produce window metrics
/// themselves: the watermarks of telemetry partitions `0..sources`, each closed through
/// `closed_until_ms`, to every partition of the metrics topic (fleet windows settle on them).
pub async fn watermark_records(
    env: &TestEnv,
    codec: &Codec,
    sources: i32,
    closed_until_ms: i64,
) -> Vec<OutRecord> {
    let topic = &env.cfg.topics.metrics;
    let partitions = KafkaProducer::new(&env.cfg.kafka)
        .unwrap()
        .partition_count(topic)
        .await
        .unwrap();
    let mut out = Vec::new();
    for source in 0..sources {
        let r = WindowMetricsRecord::watermark(source, sources, closed_until_ms, false);
        let payload = codec.encode(topic, SchemaKind::Metrics, &r).await.unwrap();
        for partition in 0..partitions {
            out.push(OutRecord {
                topic: topic.clone(),
                key: None,
                payload: payload.clone(),
                headers: vec![],
                partition: Some(partition),
                timestamp_ms: None,
            });
        }
    }
    out
}

pub fn sigkill(child: &mut Child) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.wait();
}

/// Stops the child gracefully (SIGTERM) and waits.
pub fn sigterm(child: &mut Child) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let _ = child.wait();
}
