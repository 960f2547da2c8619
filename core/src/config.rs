//! Configuration: serde structs with defaults, layered defaults → TOML file → environment.
//!
//! Environment: `ATLASMESH_<SECTION>__<KEY>` for any key (e.g. `ATLASMESH_TELEMETRY__ALLOWED_LATENESS_MS`),
//! plus the conventional names the stack script prints: `KAFKA_BROKERS`, `SCHEMA_REGISTRY_URL`,
//! `CLICKHOUSE_URL`, `CLICKHOUSE_DATABASE`, `CLICKHOUSE_USER`, `CLICKHOUSE_PASSWORD`, `DATABASE_URL`,
//! `REDIS_URL`. Secrets (passwords) belong in the environment, not in the file.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub topics: Topics,
    pub schema_registry: SchemaRegistryConfig,
    pub clickhouse: ClickHouseConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub telemetry: TelemetryConfig,
    pub runner: RunnerConfig,
    pub startup: StartupConfig,
    pub alerts: AlertsConfig,
    pub performance: PerformanceConfig,
    pub commands: CommandsConfig,
    pub missions: MissionsConfig,
    pub health: HealthConfig,
    pub resources: ResourcesConfig,
    pub api: ApiConfig,
    pub auth: AuthConfig,
    pub command_signing: CommandSigningConfig,
}

/// The keys commands are signed with (see [`crate::command_signing`]): the API signs with
/// the first, the command worker accepts any. Both refuse to run without one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandSigningConfig {
    /// `id:secret[,id:secret…]`, secrets of at least 32 bytes. A secret: set it in the
    /// environment (`ATLASMESH_COMMAND_SIGNING__KEYS`), not in the file.
    pub keys: String,
}

impl CommandSigningConfig {
    /// The parsed keys; an error names what is wrong (never a secret).
    pub fn signing_keys(&self) -> Result<crate::command_signing::SigningKeys> {
        crate::command_signing::SigningKeys::parse(&self.keys)
            .map_err(|e| Error::Config(format!("command_signing.keys: {e}")))
    }

    /// The parsed keys, of which there must be at least one.
    pub fn required_keys(&self) -> Result<crate::command_signing::SigningKeys> {
        let keys = self.signing_keys()?;
        if keys.is_empty() {
            return Err(Error::Config(
                "command_signing.keys is empty: commands are signed (set \
                 ATLASMESH_COMMAND_SIGNING__KEYS=id:<secret of 32+ bytes> on the API and the \
                 command worker alike)"
                    .into(),
            ));
        }
        Ok(keys)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub brokers: String,
    /// Consumer groups are `<group_prefix>.<pipeline>`.
    pub group_prefix: String,
    /// Partitions for topics the workers create when missing.
    pub partitions: i32,
    pub fetch_wait_max_ms: u32,
    /// Extra librdkafka properties applied to every client. They override the runner's
    /// consumer defaults (`session.timeout.ms`, `heartbeat.interval.ms`,
    /// `max.poll.interval.ms`, `auto.offset.reset`, `statistics.interval.ms`), not the offset
    /// handling it relies on (`enable.auto.commit`, `enable.auto.offset.store`: false).
    pub properties: std::collections::BTreeMap<String, String>,
    /// `group`: partitions are spread by the consumer group (Kafka, Redpanda). `manual`: the
    /// worker assigns itself `assigned_partitions` (all when empty) without group membership;
    /// offsets live in PostgreSQL either way. Use `manual` with brokers whose group
    /// coordinator does not evict crashed members (Tansu 0.6).
    pub assignment: Assignment,
    pub assigned_partitions: Vec<i32>,
    /// Manual assignment: a worker leases its partitions in PostgreSQL for this long and
    /// renews the leases every third of it; a second worker given a partition whose lease is
    /// alive refuses to start, and one left by a crashed worker is taken over once expired.
    pub lease_ttl_ms: u64,
    /// Manual assignment: this worker's name in the leases. A worker restarted under the same
    /// name (a StatefulSet pod, a systemd unit) takes its leases back at once; unset, every
    /// process is a new owner (`<host>:<pid>:<random>`) and waits for its predecessor's
    /// leases to expire.
    pub worker_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    Group,
    Manual,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_prefix: "atlasmesh".into(),
            partitions: 4,
            fetch_wait_max_ms: 10,
            properties: Default::default(),
            assignment: Assignment::Group,
            assigned_partitions: Vec::new(),
            lease_ttl_ms: 15_000,
            worker_id: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    pub telemetry: String,
    pub mission_events: String,
    pub resource_events: String,
    pub commands: String,
    pub command_results: String,
    pub metrics: String,
    pub alerts: String,
    pub dlq: String,
    /// Inter-fleet communication, keyed by the recipient fleet.
    pub coordination: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            telemetry: "fleet.telemetry.v1".into(),
            mission_events: "fleet.mission-events.v1".into(),
            resource_events: "fleet.resource-events.v1".into(),
            commands: "fleet.commands.v1".into(),
            command_results: "fleet.command-results.v1".into(),
            metrics: "fleet.metrics.v1".into(),
            alerts: "fleet.alerts.v1".into(),
            dlq: "fleet.dlq.v1".into(),
            coordination: "fleet.coordination.v1".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistryConfig {
    pub url: String,
    /// Decoding limits (a message over any of them is dead-lettered as `undecodable`): the
    /// largest message, in bytes.
    pub max_message_bytes: usize,
    /// The most values (fields, items, map entries, union branches) one message may hold:
    /// what decoding it may allocate is proportional to this.
    pub max_values: u64,
    /// The deepest nesting of records, arrays, maps and unions in one message.
    pub max_depth: u32,
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        SchemaRegistryConfig {
            url: "http://127.0.0.1:8081".into(),
            max_message_bytes: 1 << 20,
            max_values: 100_000,
            max_depth: 32,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: String,
    /// Row-type validation of the clickhouse crate. Must be off against ClickHouse 18.16
    /// (it lacks RowBinaryWithNamesAndTypes); keep it on for 23+.
    pub validation: bool,
    /// Compression of inserts and results: `auto` (none when the server is on loopback, where
    /// LZ4 costs most of a flush's CPU and saves nothing; LZ4 otherwise), `none` or `lz4`.
    pub compression: ClickHouseCompression,
}

/// See [`ClickHouseConfig::compression`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClickHouseCompression {
    Auto,
    None,
    Lz4,
}

impl ClickHouseConfig {
    /// Whether inserts and results are LZ4-compressed (see [`ClickHouseConfig::compression`]).
    pub fn lz4(&self) -> bool {
        match self.compression {
            ClickHouseCompression::None => false,
            ClickHouseCompression::Lz4 => true,
            ClickHouseCompression::Auto => !is_loopback_url(&self.url),
        }
    }
}

/// Whether `url`'s host is a loopback address or `localhost`.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "atlasmesh".into(),
            user: "default".into(),
            password: String::new(),
            validation: true,
            compression: ClickHouseCompression::Auto,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    pub url: String,
    pub max_connections: u32,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: "postgres://postgres@127.0.0.1:5432/atlasmesh".into(),
            max_connections: 8,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    pub url: String,
    /// Every key starts with `<key_prefix>:`.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "am".into(),
        }
    }
}

/// The default runner tick of every pipeline (`<pipeline>.tick_ms`).
pub const DEFAULT_TICK_MS: u64 = 200;

/// Event-time windowing of the telemetry pipeline. See `window` for the exact definitions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub window_ms: i64,
    /// A window closes when the partition watermark (max event time − out_of_orderness_ms)
    /// passes its end.
    pub out_of_orderness_ms: i64,
    /// Events up to this far behind the closed frontier re-emit their windows with a higher
    /// version; older ones go to the DLQ as late.
    pub allowed_lateness_ms: i64,
    /// A reported status holds for at most this long; silence beyond it is unobserved time.
    pub max_gap_ms: i64,
    /// A partition with no messages for this long (processing time) closes its open windows.
    pub idle_flush_ms: u64,
    pub max_future_ms: i64,
    /// The runner's tick for this pipeline (idle checks, per-partition `on_tick`), ms of
    /// processing time.
    pub tick_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            window_ms: 60_000,
            out_of_orderness_ms: 5_000,
            allowed_lateness_ms: 120_000,
            max_gap_ms: 60_000,
            idle_flush_ms: 5_000,
            max_future_ms: 5 * 60_000,
            tick_ms: DEFAULT_TICK_MS,
        }
    }
}

/// The alert engine (`pipelines/src/alerts`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How often rules are re-read from PostgreSQL (processing time).
    pub rules_refresh_ms: u64,
    /// A firing subject without observations for this long (event time, against the metrics
    /// partition's watermark) is advanced by `tick` (re-send, keep-firing-for resolve).
    pub silent_after_ms: i64,
    /// The runner's tick for this pipeline (idle checks, per-partition `on_tick`), ms of
    /// processing time.
    pub tick_ms: u64,
    /// A partition with no messages for this long (processing time) is idle; unset: the
    /// telemetry pipeline's `idle_flush_ms`.
    pub idle_flush_ms: Option<u64>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            rules_refresh_ms: 5_000,
            silent_after_ms: 300_000,
            tick_ms: DEFAULT_TICK_MS,
            idle_flush_ms: None,
        }
    }
}

/// The performance pipeline (`pipelines/src/performance`) and the fleet reports of the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PerformanceConfig {
    /// Score weights and reference values (`[performance.score]`, `[performance.score.weights]`).
    pub score: crate::analytics::score::ScoreParams,
    /// Metrics whose trends are computed (window metrics of `analytics::metrics::METRICS`).
    pub trend_metrics: Vec<String>,
    /// Sliding trend horizons in windows: the last N settled windows of a fleet.
    pub window_horizons: Vec<u32>,
    /// Sliding trend horizons in UTC days: the daily values of the last N days (today included).
    pub day_horizons: Vec<u32>,
    /// Significance level of a trend's slope test, in (0, 1).
    pub trend_alpha: f64,
    /// Forecast this many steps (windows or days) after the last point; 0 = none.
    pub forecast_steps: u32,
    /// Coverage of the forecast's prediction interval, in (0, 1).
    pub forecast_confidence: f64,
    /// Alerts and vehicles listed in a fleet report.
    pub report_top_alerts: u32,
    pub report_worst_vehicles: u32,
    /// Longest period a report may cover.
    pub report_max_days: u32,
    /// The runner's tick for this pipeline (idle checks, per-partition `on_tick`), ms of
    /// processing time.
    pub tick_ms: u64,
    /// A partition with no messages for this long (processing time) is idle; unset: the
    /// telemetry pipeline's `idle_flush_ms`.
    pub idle_flush_ms: Option<u64>,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        PerformanceConfig {
            score: Default::default(),
            trend_metrics: ["score", "utilization", "availability", "kwh_per_km"]
                .map(String::from)
                .to_vec(),
            window_horizons: vec![60],
            day_horizons: vec![14],
            trend_alpha: 0.05,
            forecast_steps: 5,
            forecast_confidence: 0.95,
            report_top_alerts: 10,
            report_worst_vehicles: 10,
            report_max_days: 93,
            tick_ms: DEFAULT_TICK_MS,
            idle_flush_ms: None,
        }
    }
}

impl PerformanceConfig {
    pub fn validate(&self) -> Result<()> {
        self.score.validate()?;
        let bad = |m: String| Err(Error::Config(format!("performance.{m}")));
        if let Some(m) = self
            .trend_metrics
            .iter()
            .find(|m| !crate::analytics::metrics::is_window_metric(m))
        {
            return bad(format!("trend_metrics: unknown window metric {m:?}"));
        }
        if self
            .window_horizons
            .iter()
            .chain(&self.day_horizons)
            .any(|h| *h < 3)
        {
            return bad(
                "window_horizons and day_horizons must be at least 3 (a trend needs 3 points)"
                    .into(),
            );
        }
        if !(self.trend_alpha > 0.0 && self.trend_alpha < 1.0) {
            return bad("trend_alpha must be in (0, 1)".into());
        }
        if !(self.forecast_confidence > 0.0 && self.forecast_confidence < 1.0) {
            return bad("forecast_confidence must be in (0, 1)".into());
        }
        if self.report_max_days < 1 {
            return bad("report_max_days must be at least 1".into());
        }
        Ok(())
    }
}

/// The missions pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MissionsConfig {
    /// Length of the fleet mission windows written to ClickHouse (must divide a day).
    pub window_ms: i64,
    /// The runner's tick for this pipeline (idle checks, per-partition `on_tick`), ms of
    /// processing time.
    pub tick_ms: u64,
    /// A partition with no messages for this long (processing time) is idle; unset: the
    /// telemetry pipeline's `idle_flush_ms`.
    pub idle_flush_ms: Option<u64>,
    /// Bucket of the zone demand rows (requests, served, expired, arrivals per zone) and the
    /// optimization engine's period when it forecasts from them (must divide a day).
    pub zone_bucket_ms: i64,
}

impl Default for MissionsConfig {
    fn default() -> Self {
        MissionsConfig {
            window_ms: 3_600_000,
            tick_ms: DEFAULT_TICK_MS,
            idle_flush_ms: None,
            zone_bucket_ms: 900_000,
        }
    }
}

/// The health pipeline (fleet analytics: vehicle health, battery state of health,
/// predictions; `pipelines/src/health`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// The runner's tick for this pipeline, ms of processing time.
    pub tick_ms: u64,
    /// A partition with no messages for this long is idle; unset: telemetry's `idle_flush_ms`.
    pub idle_flush_ms: Option<u64>,
    /// A vehicle's UTC day closes once the partition's watermark (newest event time minus
    /// `telemetry.out_of_orderness_ms`) is this far past the day's end.
    pub close_delay_ms: i64,
    /// Nominal battery capacity of vehicles without a row in `vehicle_batteries`, kWh; unset:
    /// no state of health for them (their usable capacity is still estimated).
    pub default_nominal_kwh: Option<f64>,
    /// The state of health whose crossing date is predicted, %.
    pub soh_threshold_pct: f64,
    /// Daily state-of-health estimates kept per vehicle for its trajectory.
    pub soh_history_days: u32,
    /// Fewest daily estimates a trajectory is fitted on.
    pub soh_min_days: u32,
    /// The fleet's worst vehicles listed with its health.
    pub worst_vehicles: usize,
    /// How often the nominal capacities are re-read, ms.
    pub batteries_refresh_ms: u64,
    /// A failure-risk model (JSON of `atlasmesh_core::analytics::failure::RiskModel`, as
    /// `atlasmesh fit-failure-model` writes it); unset: the built-in one.
    pub failure_model_file: Option<String>,
    pub score: crate::analytics::health::HealthParams,
    pub failure: crate::analytics::failure::FailureParams,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            tick_ms: DEFAULT_TICK_MS,
            idle_flush_ms: None,
            close_delay_ms: 300_000,
            default_nominal_kwh: None,
            soh_threshold_pct: 80.0,
            soh_history_days: 180,
            soh_min_days: 7,
            worst_vehicles: 5,
            batteries_refresh_ms: 60_000,
            failure_model_file: None,
            score: Default::default(),
            failure: Default::default(),
        }
    }
}

/// The resources pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesConfig {
    /// How often federation coordination metrics are recomputed (processing time).
    pub coordination_interval_ms: u64,
    /// How often the coordination relay looks for inter-fleet messages to publish on
    /// `topics.coordination` (processing time).
    pub relay_interval_ms: u64,
    /// How often the optimization run executor looks for queued engine runs (processing
    /// time); a run found is followed at once by the next.
    pub optimization_interval_ms: u64,
    /// A finished engine run with `parameters.rebalance.continuous` gets a successor (same
    /// parameters, live state) this long after it finished (processing time).
    pub reoptimize_interval_ms: u64,
    /// The runner's tick for this pipeline (idle checks, per-partition `on_tick`), ms of
    /// processing time.
    pub tick_ms: u64,
    /// A partition with no messages for this long (processing time) is idle; unset: the
    /// telemetry pipeline's `idle_flush_ms`.
    pub idle_flush_ms: Option<u64>,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        ResourcesConfig {
            coordination_interval_ms: 60_000,
            relay_interval_ms: 500,
            optimization_interval_ms: 1_000,
            reoptimize_interval_ms: 900_000,
            tick_ms: DEFAULT_TICK_MS,
            idle_flush_ms: None,
        }
    }
}

/// The command worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandsConfig {
    /// Commands applied concurrently. Commands with the same Kafka key (the entity they are
    /// about) always share a lane and are applied in log order; each lane holds one
    /// PostgreSQL connection while it applies.
    pub lanes: usize,
    /// Commands queued per lane before consumption waits (backpressure).
    pub lane_capacity: usize,
    /// Most commands a lane applies in one transaction (group commit): the commands queued
    /// in the lane are applied in order and committed together; a rejection concerns its
    /// command only, an error rolls back and retries the whole group. 1: one transaction per
    /// command.
    pub group_max: usize,
    /// The runner's tick for this pipeline (idle checks, per-partition `on_tick`), ms of
    /// processing time.
    pub tick_ms: u64,
    /// A partition with no messages for this long (processing time) is idle; unset: the
    /// telemetry pipeline's `idle_flush_ms`.
    pub idle_flush_ms: Option<u64>,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        CommandsConfig {
            lanes: 8,
            lane_capacity: 128,
            group_max: 32,
            tick_ms: DEFAULT_TICK_MS,
            idle_flush_ms: None,
        }
    }
}

/// The generic Kafka runner: how often state and offsets are checkpointed, and retry backoff.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    pub checkpoint_interval_ms: u64,
    /// A batch holding outputs others wait on (closed windows, alert transitions) is
    /// checkpointed this long after the first of them, instead of at the next
    /// `checkpoint_interval_ms`: the wait gathers the rest of a burst into the same flush. At
    /// or above `checkpoint_interval_ms` it changes nothing. 5 ms: with 20 ms the closed
    /// windows' p99 on the topic measured ~50 ms more (BENCHMARKS §4f).
    pub urgent_flush_ms: u64,
    pub max_batch_events: usize,
    pub retry_initial_ms: u64,
    /// Cap of the retry backoff: a few seconds, so work resumes soon after a dependency is
    /// back even without a probe.
    pub retry_max_ms: u64,
    /// While waiting to retry after a dependency failed, probe it (the start-up probe:
    /// `SELECT 1`, `PING`, one topic's metadata, …) this often; once a probe that had failed
    /// succeeds, the wait ends and the work is retried at once. 0 turns probing off.
    pub retry_probe_ms: u64,
    /// Bound of one such probe.
    pub retry_probe_timeout_ms: u64,
    /// A partition's checkpoint is also kept as a snapshot when its last snapshot is older
    /// than this (`atlasmesh reset --to-time`); 0 keeps none.
    pub snapshot_interval_ms: u64,
    /// Snapshots older than this are deleted.
    pub snapshot_retention_hours: u64,
    /// Incremental checkpoints for pipelines that record their changes (telemetry): a
    /// checkpoint appends what changed since the previous one onto the stored full state,
    /// which is written again once the deltas after it weigh as much as it does (and at each
    /// snapshot). Off: every checkpoint writes the whole state.
    pub delta_checkpoints: bool,
    /// Address for the worker's own Prometheus endpoint (when not run together with the API).
    pub metrics_listen: Option<String>,
    /// At shutdown, the final checkpoint gets this long; a dependency that does not answer by
    /// then is given up on (the pipeline resumes from its last checkpoint), so a stop is never
    /// held by a store that is down.
    pub shutdown_grace_ms: u64,
}

impl RunnerConfig {
    /// `checkpoint_interval_ms` as a duration.
    pub fn checkpoint_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.checkpoint_interval_ms)
    }
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            checkpoint_interval_ms: 1_000,
            urgent_flush_ms: 5,
            max_batch_events: 50_000,
            retry_initial_ms: 200,
            retry_max_ms: 3_000,
            retry_probe_ms: 500,
            retry_probe_timeout_ms: 1_000,
            snapshot_interval_ms: 300_000,
            snapshot_retention_hours: 24,
            delta_checkpoints: true,
            metrics_listen: None,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// How a process waits for its dependencies at start-up (`atlasmesh_pipelines::ready`): each
/// is probed with exponential backoff from `backoff_initial_ms` to `backoff_max_ms`, every probe
/// bounded by `probe_timeout_ms`, until all answer or `deadline_secs` have passed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StartupConfig {
    pub deadline_secs: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub probe_timeout_ms: u64,
}

impl Default for StartupConfig {
    fn default() -> Self {
        StartupConfig {
            deadline_secs: 300,
            backoff_initial_ms: 250,
            backoff_max_ms: 5_000,
            probe_timeout_ms: 10_000,
        }
    }
}

/// The HTTP API: where it listens, page sizes, and the limits that protect it from slow,
/// greedy or hostile clients (connection count, read timeouts, header size and per-address
/// request rates; see the README's "API limits").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: String,
    pub max_page_size: u32,
    /// Longest `?wait=true` (and `X-Consistency-Token`) wait for a command's outcome.
    pub command_wait_ms: u64,
    /// Time a client has to send a request's complete head (request line and headers),
    /// counted from the first byte of the request or, on a kept-alive connection, from the end
    /// of the previous response; then the connection is closed. Also bounds idle keep-alive.
    pub header_read_timeout_ms: u64,
    /// Time a handler waits for a request body it reads; then 408 (JSON).
    pub body_read_timeout_ms: u64,
    /// Connections served at once; further clients wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Largest request head (request line plus header names and values) answered; larger is
    /// 431 (JSON). At four times this size the HTTP parser itself closes the connection.
    pub max_header_bytes: usize,
    /// Sustained requests per second from one client address (IPv4 address or IPv6 /64),
    /// counted before authentication; beyond it 429 with `Retry-After`. 0 disables the
    /// address limits (e.g. behind a reverse proxy, where every client has its address).
    pub address_rate_limit_per_s: u32,
    /// Requests one address may make at once before its rate applies.
    pub address_rate_limit_burst: u32,
    /// Sustained failed authentications (401) per second from one address; once its burst is
    /// spent every request of that address is 429 until the bucket refills. 0 disables.
    pub address_auth_failures_per_s: u32,
    /// Failed authentications one address may make at once.
    pub address_auth_failure_burst: u32,
    /// `/health` answers from probes at most this old (load balancers polling it do not
    /// multiply the probes); each probe opens its own connection, so the answer follows the
    /// dependency within about this long. 0 probes on every request.
    pub health_cache_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            max_page_size: 1000,
            command_wait_ms: 5_000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            max_connections: 1024,
            max_header_bytes: 32 * 1024,
            address_rate_limit_per_s: 1000,
            address_rate_limit_burst: 2000,
            address_auth_failures_per_s: 10,
            address_auth_failure_burst: 100,
            health_cache_ms: 1_000,
        }
    }
}

impl ApiConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("api.{m}")));
        if self.header_read_timeout_ms == 0 || self.body_read_timeout_ms == 0 {
            return bad("header_read_timeout_ms and body_read_timeout_ms must be positive");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_header_bytes < 1024 {
            return bad("max_header_bytes must be at least 1024");
        }
        Ok(())
    }
}

/// Authentication of API callers: JWT bearer tokens (HS256 with a shared secret and/or RS256
/// with a public key) and API keys (stored hashed in PostgreSQL), plus the per-caller rate
/// limit. With neither `hs256_secret` nor an RS256 key, JWTs are refused and only API keys
/// authenticate. The secret belongs in the environment (`ATLASMESH_JWT_SECRET` or
/// `ATLASMESH_AUTH__HS256_SECRET`), not in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub hs256_secret: Option<String>,
    /// RS256 verification key as PEM text (`-----BEGIN PUBLIC KEY-----`).
    pub rs256_public_key_pem: Option<String>,
    /// RS256 verification key read from this PEM file (when `rs256_public_key_pem` is unset).
    pub rs256_public_key_file: Option<std::path::PathBuf>,
    /// Required `iss` claim, when set.
    pub issuer: Option<String>,
    /// Required `aud` claim, when set.
    pub audience: Option<String>,
    /// Sustained requests per second per caller (token bucket refill rate).
    pub rate_limit_per_s: u32,
    /// Requests a caller may make at once before the refill rate applies (bucket size).
    pub rate_limit_burst: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            hs256_secret: None,
            rs256_public_key_pem: None,
            rs256_public_key_file: None,
            issuer: None,
            audience: None,
            rate_limit_per_s: 200,
            rate_limit_burst: 400,
        }
    }
}

/// Conventional environment names and the config keys they set.
const PLAIN_ENV: &[(&str, &str)] = &[
    ("KAFKA_BROKERS", "kafka.brokers"),
    ("SCHEMA_REGISTRY_URL", "schema_registry.url"),
    ("CLICKHOUSE_URL", "clickhouse.url"),
    ("CLICKHOUSE_DATABASE", "clickhouse.database"),
    ("CLICKHOUSE_USER", "clickhouse.user"),
    ("CLICKHOUSE_PASSWORD", "clickhouse.password"),
    ("CLICKHOUSE_VALIDATION", "clickhouse.validation"),
    ("DATABASE_URL", "postgres.url"),
    ("REDIS_URL", "redis.url"),
    ("REDIS_KEY_PREFIX", "redis.key_prefix"),
    ("ATLASMESH_JWT_SECRET", "auth.hs256_secret"),
];

impl Config {
    /// Defaults, then the TOML file (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(Error::Config(format!(
                    "config file {} not found",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only nested keys: ATLASMESH_CONFIG and ATLASMESH_LOG_FORMAT belong to the CLI.
        fig = fig.merge(
            Env::prefixed("ATLASMESH_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        for (var, key) in PLAIN_ENV {
            let key: &'static str = key;
            fig = fig.merge(Env::raw().only(&[var]).map(move |_| key.into()));
        }
        fig.extract().map_err(|e| Error::Config(e.to_string()))
    }

    pub fn validate(&self) -> Result<()> {
        let t = &self.telemetry;
        if t.window_ms <= 0 || 86_400_000 % t.window_ms != 0 {
            return Err(Error::Config(
                "telemetry.window_ms must divide a day".into(),
            ));
        }
        if t.allowed_lateness_ms < 0 || t.out_of_orderness_ms < 0 || t.max_gap_ms <= 0 {
            return Err(Error::Config(
                "telemetry durations must not be negative".into(),
            ));
        }
        if self.kafka.partitions < 1 {
            return Err(Error::Config("kafka.partitions must be at least 1".into()));
        }
        if self.kafka.lease_ttl_ms < 3_000 {
            return Err(Error::Config(
                "kafka.lease_ttl_ms must be at least 3000 (leases are renewed every third of it)"
                    .into(),
            ));
        }
        if self.missions.window_ms <= 0 || 86_400_000 % self.missions.window_ms != 0 {
            return Err(Error::Config("missions.window_ms must divide a day".into()));
        }
        if self.missions.zone_bucket_ms < 60_000 || 86_400_000 % self.missions.zone_bucket_ms != 0 {
            return Err(Error::Config(
                "missions.zone_bucket_ms must be at least a minute and divide a day".into(),
            ));
        }
        if self.resources.reoptimize_interval_ms == 0 {
            return Err(Error::Config(
                "resources.reoptimize_interval_ms must be positive".into(),
            ));
        }
        if self.resources.optimization_interval_ms == 0 {
            return Err(Error::Config(
                "resources.optimization_interval_ms must be positive".into(),
            ));
        }
        if self.resources.relay_interval_ms == 0 {
            return Err(Error::Config(
                "resources.relay_interval_ms must be positive".into(),
            ));
        }
        if self.resources.coordination_interval_ms == 0 {
            return Err(Error::Config(
                "resources.coordination_interval_ms must be positive".into(),
            ));
        }
        if self.commands.lanes < 1 || self.commands.lane_capacity < 1 || self.commands.group_max < 1
        {
            return Err(Error::Config(
                "commands.lanes, commands.lane_capacity and commands.group_max must be at least 1"
                    .into(),
            ));
        }
        let ticks = [
            ("telemetry", self.telemetry.tick_ms),
            ("commands", self.commands.tick_ms),
            ("alerts", self.alerts.tick_ms),
            ("missions", self.missions.tick_ms),
            ("health", self.health.tick_ms),
            ("resources", self.resources.tick_ms),
            ("performance", self.performance.tick_ms),
        ];
        if let Some((section, _)) = ticks.iter().find(|(_, ms)| *ms == 0) {
            return Err(Error::Config(format!("{section}.tick_ms must be positive")));
        }
        self.performance.validate()?;
        let h = &self.health;
        if h.close_delay_ms < 0 || h.batteries_refresh_ms == 0 || h.soh_min_days < 3 {
            return Err(Error::Config(
                "health: close_delay_ms must not be negative, batteries_refresh_ms positive, soh_min_days at least 3".into(),
            ));
        }
        if h.default_nominal_kwh
            .is_some_and(|k| !(k.is_finite() && k > 0.0))
        {
            return Err(Error::Config(
                "health.default_nominal_kwh must be positive".into(),
            ));
        }
        self.command_signing.signing_keys()?;
        self.api.validate()?;
        Ok(())
    }
}

#[cfg(test)]
// figment::Jail::expect_with takes closures returning its large `figment::Error`.
#[allow(clippy::result_large_err)]
mod tests {

    #[test]
    fn clickhouse_compression_auto_is_off_on_loopback_only() {
        let mut c = ClickHouseConfig::default();
        for (url, lz4) in [
            ("http://127.0.0.1:8123", false),
            ("http://localhost:8123/", false),
            ("http://user:pw@[::1]:8123", false),
            ("https://ch.example.com:8443", true),
            ("http://10.0.0.7:8123", true),
            ("http://127.0.0.1.example.com", true),
        ] {
            c.url = url.into();
            assert_eq!(c.lz4(), lz4, "{url}");
        }
        c.compression = ClickHouseCompression::Lz4;
        c.url = "http://127.0.0.1:8123".into();
        assert!(c.lz4());
        c.compression = ClickHouseCompression::None;
        c.url = "https://ch.example.com".into();
        assert!(!c.lz4());
    }
    use super::*;

    #[test]
    fn file_then_env_override_defaults() {
        let dir = std::env::temp_dir().join(format!("am-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[telemetry]\nallowed_lateness_ms = 1000\n[redis]\nkey_prefix = \"x\"\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("ATLASMESH_REDIS__KEY_PREFIX", "from-env");
            jail.set_env("KAFKA_BROKERS", "127.0.0.1:19092");
            let c = Config::load(Some(&file)).unwrap();
            assert_eq!(c.telemetry.allowed_lateness_ms, 1000);
            assert_eq!(c.telemetry.window_ms, 60_000);
            assert_eq!(c.redis.key_prefix, "from-env");
            assert_eq!(c.kafka.brokers, "127.0.0.1:19092");
            Ok(())
        });
    }

    #[test]
    fn performance_config_is_validated_and_read_from_env() {
        assert!(PerformanceConfig::default().validate().is_ok());
        let bad = |f: fn(&mut PerformanceConfig)| {
            let mut c = PerformanceConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.score.weights.cost = -1.0));
        assert!(bad(|c| c.trend_metrics.push("nope".into())));
        // A daily vehicle health metric has no window values to trend.
        assert!(bad(|c| c.trend_metrics.push("vehicle_health_score".into())));
        assert!(bad(|c| c.window_horizons = vec![2]));
        assert!(bad(|c| c.trend_alpha = 1.0));
        assert!(bad(|c| c.forecast_confidence = 0.0));
        figment::Jail::expect_with(|jail| {
            jail.set_env("ATLASMESH_PERFORMANCE__SCORE__WEIGHTS__UTILIZATION", "2");
            jail.set_env("ATLASMESH_PERFORMANCE__WINDOW_HORIZONS", "[60, 5]");
            let c = Config::load(None).unwrap();
            assert_eq!(c.performance.score.weights.utilization, 2.0);
            assert_eq!(c.performance.score.weights.cost, 0.2);
            assert_eq!(c.performance.window_horizons, vec![60, 5]);
            assert!(c.validate().is_ok());
            jail.set_env("ATLASMESH_PERFORMANCE__SCORE__WEIGHTS__SAFETY", "-1");
            assert!(Config::load(None).unwrap().validate().is_err());
            jail.set_env("ATLASMESH_PERFORMANCE__SCORE__WEIGHTS__SAFETY", "0.2");
            assert!(Config::load(None).unwrap().validate().is_ok());
            // The settle graces are gone (fleet windows settle on watermarks): refused as unknown.
            jail.set_env("ATLASMESH_PERFORMANCE__SETTLE_GRACE_MS", "180000");
            assert!(Config::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        // In a Jail: the other tests set ATLASMESH_* variables inside theirs, and the jail's lock
        // keeps this load from seeing them.
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[telemetry]\nlateness = 1\n")?;
            let err = Config::load(Some(std::path::Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("lateness"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn auth_from_env() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert_eq!(c.auth.hs256_secret, None);
            assert_eq!(
                (c.auth.rate_limit_per_s, c.auth.rate_limit_burst),
                (200, 400)
            );
            jail.set_env("ATLASMESH_JWT_SECRET", "s3cret-from-plain-env");
            jail.set_env("ATLASMESH_AUTH__RATE_LIMIT_BURST", "7");
            jail.set_env("ATLASMESH_AUTH__ISSUER", "atlasmesh-idp");
            let c = Config::load(None).unwrap();
            assert_eq!(
                c.auth.hs256_secret.as_deref(),
                Some("s3cret-from-plain-env")
            );
            assert_eq!(c.auth.rate_limit_burst, 7);
            assert_eq!(c.auth.issuer.as_deref(), Some("atlasmesh-idp"));
            Ok(())
        });
    }

    #[test]
    fn api_limits_have_defaults_and_are_validated() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert_eq!(
                (c.api.header_read_timeout_ms, c.api.body_read_timeout_ms),
                (10_000, 30_000)
            );
            assert_eq!(c.api.max_connections, 1024);
            assert!(c.validate().is_ok());
            jail.set_env("ATLASMESH_API__MAX_CONNECTIONS", "3");
            jail.set_env("ATLASMESH_API__ADDRESS_RATE_LIMIT_PER_S", "0");
            let c = Config::load(None).unwrap();
            assert_eq!(c.api.max_connections, 3);
            assert_eq!(c.api.address_rate_limit_per_s, 0);
            jail.set_env("ATLASMESH_API__HEADER_READ_TIMEOUT_MS", "0");
            assert!(Config::load(None).unwrap().validate().is_err());
            Ok(())
        });
        let api = ApiConfig {
            max_header_bytes: 100,
            ..ApiConfig::default()
        };
        assert!(api.validate().is_err());
    }
}
