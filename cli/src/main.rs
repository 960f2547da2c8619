//! `atlasmesh`: parses configuration, sets up logs and metrics, and calls the libraries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use atlasmesh::{init_logging, install_metrics, LogFormat};
use atlasmesh_core::config::Config;
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

mod bench_rebalance;

#[derive(Parser)]
#[command(name = "atlasmesh", version, about = "AtlasMesh fleet stream workers: telemetry → rolling fleet metrics in ClickHouse, PostgreSQL, Redis and Kafka.", long_about = None)]
struct Cli {
    /// TOML configuration file (layered: defaults → file → environment; see README).
    #[arg(long, short, global = true, env = "ATLASMESH_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "json",
        env = "ATLASMESH_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything in one process: migrations, the pipelines and the query API.
    Run(RunArgs),
    /// Run pipelines (consumer group per pipeline; start more processes to spread partitions).
    Worker(WorkerArgs),
    /// Serve the query API.
    Api,
    /// Create databases, tables, topics and register the Avro schemas, then exit.
    Migrate,
    /// Rebuild a pipeline's derived state from the start of its topic: deletes its
    /// checkpoints (state and offsets together); its workers, started again, reprocess the
    /// topic from the beginning and rewrite the same results. Stop its workers first.
    Reset(ResetArgs),
    /// Reprocess a time range of a pipeline's input into its stores (offsets looked up by
    /// message timestamp), starting from the state a checkpoint snapshot held before it; the
    /// live workers may keep running. Progress on stderr, JSON summary on stdout.
    Replay(ReplayArgs),
    /// Produce simulated vehicle telemetry to the telemetry topic.
    Simulate(SimulateArgs),
    /// Print the zones of the simulated fleets' cities (the zone ids their telemetry and zone
    /// demand carry), as JSON or as SQL inserts into optimization_zones for a local stack.
    SimZones(SimZonesArgs),
    /// The simulated vehicles' nominal battery capacities (for `vehicle_batteries`, which the
    /// health pipeline's state of health is relative to), as `atlasmesh simulate` with the same
    /// seed and sizes generates them.
    SimBatteries(SimBatteriesArgs),
    /// End-to-end bench on fresh topics/database: produce, raw consume rate, pipeline rate,
    /// event→ClickHouse latency. Progress on stderr, JSON summary on stdout.
    Bench(BenchArgs),
    /// Load on the query API: reads at a fixed concurrency, then write requests through the
    /// command path until every accepted command is final. Progress on stderr, JSON on stdout.
    BenchApi(BenchApiArgs),
    /// Alert latency: telemetry crossing a rule's threshold → alert message on the alert topic,
    /// through the telemetry and alerts pipelines in-process, at a fixed event rate.
    BenchAlerts(BenchAlertsArgs),
    /// Closed-loop rebalancing in the zone simulator (in-process, no servers): the same seeded
    /// demand with no engine and with the engine at each adoption level. Progress on stderr,
    /// a table (or JSON) on stdout.
    BenchRebalance(bench_rebalance::BenchRebalanceArgs),
    /// The window kernel's memory and checkpoint cost at fleet scale (in-process, no
    /// servers): state per vehicle, RSS growth, checkpoint bytes and CPU per second with
    /// deltas and with full states. Progress on stderr, JSON on stdout.
    BenchState(atlasmesh::state_bench::BenchStateArgs),
    /// The telemetry pipeline's own CPU time per event, in process with no broker on the
    /// event path: decode, kernel, rows, flushes to the real sinks and checkpoints. Progress
    /// on stderr, JSON on stdout.
    BenchPipeline(atlasmesh::pipeline_bench::BenchPipelineArgs),
    /// Print a JWT for the query API, signed with the configured HS256 secret
    /// (ATLASMESH_JWT_SECRET), e.g. `atlasmesh token --role operator --fleets fleet-a,fleet-b`.
    Token(atlasmesh::credentials::TokenArgs),
    /// Create, revoke or list query API keys (stored hashed in PostgreSQL).
    #[command(subcommand)]
    ApiKey(atlasmesh::credentials::ApiKeyCmd),
}

#[derive(Args)]
struct BenchApiArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Duration of the read phase, seconds.
    #[arg(long, default_value_t = 20)]
    read_secs: u64,
    /// Paths read round-robin in the read phase, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "/api/v1/fleet-resources/pools?fleet_id=fleet-001&limit=20,/api/v1/fleet-resources/pools/by-fleet/fleet-001?limit=5,/api/v1/fleet-performance/metrics/fleet-001?limit=5"
    )]
    read_paths: Vec<String>,
    /// Write requests to send in the command phase.
    #[arg(long, default_value_t = 20_000)]
    commands: u64,
    /// Path the write requests are POSTed to.
    #[arg(long, default_value = "/api/v1/fleet-resources/pools")]
    command_path: String,
    /// JSON body of each write request; `{i}` is replaced by the request number.
    #[arg(
        long,
        default_value = r#"{"fleet_id":"fleet-001","name":"bench-pool-{i}","resource_type":"charger","capacity":10}"#
    )]
    command_body: String,
    /// Give up waiting for commands to become final after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Read from this running API (e.g. `http://127.0.0.1:8080`) instead of one started in
    /// this process; reads only (`--commands 0`).
    #[arg(long)]
    api_url: Option<String>,
    /// Process id of the API at `--api-url`: its CPU time per request is reported.
    #[arg(long, requires = "api_url")]
    api_pid: Option<u32>,
    /// Open loop: read requests per second over all clients, latency counted from each
    /// request's scheduled time. Without it every client reads as fast as it is answered.
    #[arg(long)]
    read_rate: Option<f64>,
}

#[derive(Args)]
struct BenchAlertsArgs {
    #[arg(long, default_value_t = 2)]
    fleets: u32,
    #[arg(long, default_value_t = 50)]
    vehicles_per_fleet: u32,
    /// Telemetry events per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Duration of the load, seconds.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Window length for this run, ms (event time).
    #[arg(long, default_value_t = 10_000)]
    window_ms: i64,
    #[arg(long, default_value_t = 1_000)]
    out_of_orderness_ms: i64,
    /// The runners' checkpoint (= sink flush) interval, ms.
    #[arg(long, default_value_t = 1_000)]
    checkpoint_interval_ms: u64,
    /// Give up waiting for the last alerts after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Rule scope: `vehicle` (a vehicle window fires as soon as it closes) or `fleet` (a fleet
    /// window fires once every telemetry partition's watermark has passed it).
    #[arg(long, value_enum, default_value = "vehicle")]
    scope: atlasmesh::alerts_bench::BenchScope,
}

#[derive(Args)]
struct BenchArgs {
    /// Messages to produce for the throughput phases.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    #[arg(long, default_value_t = 5)]
    fleets: u32,
    #[arg(long, default_value_t = 20)]
    vehicles_per_fleet: u32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Messages per second in the latency phase (0 skips it).
    #[arg(long, default_value_t = 2000)]
    latency_rate: u64,
    /// Duration of the latency phase, seconds.
    #[arg(long, default_value_t = 20)]
    latency_secs: u64,
    /// Give up a phase after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Drop the bench ClickHouse database afterwards (topics and checkpoint rows stay).
    #[arg(long)]
    drop_database: bool,
}

#[derive(Args)]
struct WorkerArgs {
    /// Pipelines to run, comma separated (default: all of them).
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(atlasmesh_pipelines::names()),
        default_values = atlasmesh_pipelines::names()
    )]
    pipelines: Vec<String>,
    /// Skip migrations/topic creation/schema registration at start-up.
    #[arg(long)]
    no_prepare: bool,
}

#[derive(Args)]
struct ResetArgs {
    /// The pipeline to reset.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(atlasmesh_pipelines::names()))]
    pipeline: String,
    /// Put state and offsets back to what they were at this time (RFC 3339, e.g.
    /// 2026-12-03T14:00:00Z): each partition's newest checkpoint snapshot taken at or before
    /// it; what came after is reprocessed. Without it, from the start of the topic.
    #[arg(long)]
    to_time: Option<String>,
    /// Reset even though a checkpoint was saved moments ago (a worker in group mode may still
    /// run; it would keep its in-memory state).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ReplayArgs {
    /// The pipeline to replay (one whose outputs are versioned rows: telemetry).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(atlasmesh_pipelines::names()))]
    pipeline: String,
    /// Start of the range (RFC 3339 or epoch ms), inclusive, by Kafka message timestamp.
    #[arg(long, value_parser = parse_time)]
    from: i64,
    /// End of the range (RFC 3339 or epoch ms), exclusive.
    #[arg(long, value_parser = parse_time)]
    to: i64,
}

fn parse_time(s: &str) -> Result<i64, String> {
    atlasmesh_core::clock::parse_instant(s).ok_or_else(|| {
        format!("{s:?} is neither RFC 3339 (2026-12-03T14:00:00Z) nor epoch milliseconds")
    })
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    worker: WorkerArgs,
}

#[derive(Args)]
struct SimZonesArgs {
    /// Fleets 1..=N (`fleet-001`, …), as `atlasmesh simulate --fleets`.
    #[arg(long, default_value_t = 2)]
    fleets: u32,
    /// Vehicles a zone may hold idle.
    #[arg(long, default_value_t = 30)]
    capacity: u32,
    /// SQL (`INSERT … ON CONFLICT DO NOTHING`) instead of JSON.
    #[arg(long)]
    sql: bool,
}

#[derive(Args)]
struct SimBatteriesArgs {
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 2)]
    fleets: u32,
    #[arg(long, default_value_t = 10)]
    vehicles_per_fleet: u32,
    /// SQL (`INSERT … ON CONFLICT DO UPDATE`) instead of JSON.
    #[arg(long)]
    sql: bool,
}

#[derive(Args)]
struct SimulateArgs {
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 2)]
    fleets: u32,
    #[arg(long, default_value_t = 10)]
    vehicles_per_fleet: u32,
    /// Stop after this many messages (0 = until interrupted).
    #[arg(long, default_value_t = 0)]
    events: u64,
    /// Messages per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Event time starts now and advances with the wall clock (rate = one sample per vehicle per interval).
    #[arg(long)]
    realtime: bool,
    /// Telemetry only: do not derive mission and resource events (fleet.mission-events.v1,
    /// fleet.resource-events.v1) from the vehicles' status changes.
    #[arg(long)]
    no_derived: bool,
    /// Zone demand with the derived events (rider requests per zone, assigned or expired; see
    /// README "Zone demand"): requests per hour per zone at the daily peak (0 = none).
    #[arg(long, default_value_t = 12.0)]
    zone_demand_per_hour: f64,
    /// Event-time start, epoch ms (default: the simulator's fixed start, or now with --realtime).
    #[arg(long)]
    start_ms: Option<i64>,
    /// Sample period per vehicle, ms.
    #[arg(long, default_value_t = 1000)]
    interval_ms: i64,
    /// Probability per sample of an out-of-order emission.
    #[arg(long, default_value_t = 0.0)]
    out_of_order: f64,
    /// Probability per sample of a duplicate.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Probability per sample of malformed bytes.
    #[arg(long, default_value_t = 0.0)]
    malformed: f64,
    /// Probability per sample of invalid values (NaN, negative energy, far future).
    #[arg(long, default_value_t = 0.0)]
    invalid: f64,
    /// Probability per sample of an extra event far beyond the allowed lateness.
    #[arg(long, default_value_t = 0.0)]
    too_late: f64,
    /// Probability per vehicle step of going silent and later uploading a backlog.
    #[arg(long, default_value_t = 0.0)]
    backlog: f64,
}

/// Turns true on SIGTERM or Ctrl-C. From then on the process has `deadline` to stop by
/// itself; past it (a client library blocked on a dependency that is gone), it exits anyway:
/// every pipeline resumes from its last checkpoint, as after a crash, so a stop never hangs.
fn shutdown_signal(deadline: Duration) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        tracing::info!(
            deadline_ms = deadline.as_millis() as u64,
            "Shutdown requested."
        );
        let _ = tx.send(true);
        // A thread, not a task: it must fire even if the runtime is blocked.
        std::thread::spawn(move || {
            std::thread::sleep(deadline);
            tracing::error!(
                deadline_ms = deadline.as_millis() as u64,
                "Shutdown did not finish in time; exiting now (pipelines resume from their last checkpoints)."
            );
            std::process::exit(1);
        });
    });
    rx
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The worker's own `/metrics` and `/health`, until `shutdown` turns true.
async fn serve_metrics(
    listen: String,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    health: atlasmesh::worker_health::WorkerHealth,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let h = handle.clone();
                async move { h.render() }
            }),
        )
        .route(
            "/health",
            axum::routing::get(move || {
                let h = health.clone();
                async move { h.answer().await }
            }),
        );
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(listen = %listen, "Worker metrics listening.");
    axum::serve(listener, app)
        .with_graceful_shutdown(wait_true(shutdown))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let cfg = Config::load(cli.config.as_deref()).context("loading configuration")?;
    cfg.validate().context("invalid configuration")?;
    let cfg = Arc::new(cfg);
    let stop_deadline =
        Duration::from_millis(cfg.runner.shutdown_grace_ms) + Duration::from_secs(10);
    match cli.cmd {
        Cmd::Migrate => {
            use atlasmesh_pipelines::ready::{self, Dependency};
            let mut shutdown = shutdown_signal(stop_deadline);
            let deps = [
                Dependency::Postgres,
                Dependency::ClickHouse,
                Dependency::Kafka,
                Dependency::SchemaRegistry,
            ];
            ready::wait_for(&cfg, &deps, &mut shutdown).await?;
            atlasmesh_pipelines::prepare(&cfg).await?;
            tracing::info!("Migrations applied.");
        }
        Cmd::Reset(r) => {
            let deleted =
                atlasmesh_pipelines::reset(&cfg, &r.pipeline, r.to_time.as_deref(), r.force)
                    .await?;
            match &r.to_time {
                None => eprintln!(
                    "reset: deleted {deleted} checkpoints of pipeline {}; its workers reprocess its topic from the start (auto.offset.reset) when started",
                    r.pipeline
                ),
                Some(t) => eprintln!(
                    "reset: {deleted} partitions of pipeline {} put back to their newest snapshot at or before {t} (none: from the start); its workers reprocess from there when started",
                    r.pipeline
                ),
            }
        }
        Cmd::Replay(r) => {
            let shutdown = shutdown_signal(stop_deadline);
            let range = atlasmesh_pipelines::runner::replay::ReplayRange {
                from_ms: r.from,
                to_ms: r.to,
            };
            let mut progress = |p: &atlasmesh_pipelines::runner::replay::ReplayProgress| {
                eprintln!("replay {}: {p}", r.pipeline);
            };
            let summary =
                atlasmesh_pipelines::replay(&cfg, &r.pipeline, range, shutdown, &mut progress)
                    .await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Cmd::Worker(w) => {
            let handle = install_metrics()?;
            let mut shutdown = shutdown_signal(stop_deadline);
            let metrics = cfg.runner.metrics_listen.clone().map(|listen| {
                let health = atlasmesh::worker_health::WorkerHealth::new(cfg.clone());
                tokio::spawn(serve_metrics(listen, handle, health, shutdown.clone()))
            });
            atlasmesh_pipelines::ready::wait_for(
                &cfg,
                &atlasmesh_pipelines::ready::Dependency::ALL,
                &mut shutdown,
            )
            .await?;
            if !w.no_prepare {
                atlasmesh_pipelines::prepare(&cfg).await?;
            }
            let done =
                atlasmesh_pipelines::run_pipelines(cfg.clone(), &w.pipelines, shutdown).await;
            if let Some(m) = metrics {
                m.abort(); // stopped by the shutdown signal, or not needed after a failure
            }
            done?;
        }
        Cmd::Api => {
            let handle = install_metrics()?;
            let shutdown = shutdown_signal(stop_deadline);
            let state = atlasmesh_query_api::AppState::connect(&cfg, handle).await?;
            let lag = atlasmesh_query_api::spawn_lag_monitor(state.clone(), shutdown.clone());
            atlasmesh_query_api::serve(state, &cfg.api.listen, wait_true(shutdown)).await?;
            lag.await?;
        }
        Cmd::Run(r) => {
            let handle = install_metrics()?;
            let mut shutdown = shutdown_signal(stop_deadline);
            // The API first: it connects lazily, so /health tells what is still missing while
            // the worker waits for its dependencies.
            let state = atlasmesh_query_api::AppState::connect(&cfg, handle).await?;
            let lag = atlasmesh_query_api::spawn_lag_monitor(state.clone(), shutdown.clone());
            let mut api = tokio::spawn({
                let cfg = cfg.clone();
                let sd = shutdown.clone();
                async move { atlasmesh_query_api::serve(state, &cfg.api.listen, wait_true(sd)).await }
            });
            let worker = async {
                atlasmesh_pipelines::ready::wait_for(
                    &cfg,
                    &atlasmesh_pipelines::ready::Dependency::ALL,
                    &mut shutdown,
                )
                .await?;
                if !r.worker.no_prepare {
                    atlasmesh_pipelines::prepare(&cfg).await?;
                }
                atlasmesh_pipelines::run_pipelines(cfg.clone(), &r.worker.pipelines, shutdown)
                    .await?;
                anyhow::Ok(())
            };
            tokio::pin!(worker);
            tokio::select! {
                done = &mut worker => {
                    done?;
                    api.await??;
                }
                // The API ended first: on an error (its port taken, say) the process stops and
                // says why rather than running on without an API.
                served = &mut api => {
                    served?.context("query API")?;
                    worker.await?;
                }
            }
            lag.await?;
        }
        Cmd::Simulate(s) => {
            let mut sim = atlasmesh_simulator::SimConfig {
                seed: s.seed,
                fleets: s.fleets,
                vehicles_per_fleet: s.vehicles_per_fleet,
                interval_ms: s.interval_ms,
                out_of_order_pct: s.out_of_order,
                duplicate_pct: s.duplicate,
                malformed_pct: s.malformed,
                invalid_pct: s.invalid,
                late_pct: s.too_late,
                offline_backlog_pct: s.backlog,
                ..Default::default()
            };
            let mut rate = s.rate;
            if s.realtime {
                sim.start_ms = atlasmesh_core::clock::now_ms();
                if rate == 0 {
                    rate = (u64::from(s.fleets) * u64::from(s.vehicles_per_fleet) * 1000
                        / s.interval_ms.max(1) as u64)
                        .max(1);
                }
            }
            if let Some(start) = s.start_ms {
                sim.start_ms = start;
            }
            let seed = sim.seed;
            let opts = atlasmesh::produce::ProduceOptions {
                sim,
                events: s.events,
                rate,
                progress: true,
                derived: !s.no_derived,
                demand: (s.zone_demand_per_hour > 0.0).then(|| {
                    atlasmesh_simulator::derived::DemandConfig {
                        seed,
                        peak_per_hour: s.zone_demand_per_hour,
                        ..Default::default()
                    }
                }),
            };
            let mut shutdown = shutdown_signal(stop_deadline);
            {
                use atlasmesh_pipelines::ready::{self, Dependency};
                let deps = [Dependency::Kafka, Dependency::SchemaRegistry];
                ready::wait_for(&cfg, &deps, &mut shutdown).await?;
            }
            let n = tokio::select! {
                n = atlasmesh::produce::run(&cfg, opts) => n?,
                _ = wait_true(shutdown) => 0,
            };
            eprintln!("simulate: done, {n} messages produced");
        }
        Cmd::Bench(b) => {
            let opts = atlasmesh::bench::BenchOptions {
                events: b.events,
                fleets: b.fleets,
                vehicles_per_fleet: b.vehicles_per_fleet,
                seed: b.seed,
                latency_rate: b.latency_rate,
                latency_secs: b.latency_secs,
                timeout: std::time::Duration::from_secs(b.timeout_secs),
                drop_database: b.drop_database,
            };
            let summary = atlasmesh::bench::run(&cfg, opts).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Cmd::BenchAlerts(b) => {
            let opts = atlasmesh::alerts_bench::AlertsBenchOptions {
                fleets: b.fleets.max(1),
                vehicles_per_fleet: b.vehicles_per_fleet.max(1),
                rate: b.rate,
                secs: b.secs,
                window_ms: b.window_ms.max(1_000),
                out_of_orderness_ms: b.out_of_orderness_ms.max(0),
                checkpoint_interval_ms: b.checkpoint_interval_ms.max(10),
                timeout: std::time::Duration::from_secs(b.timeout_secs),
                scope: b.scope,
            };
            let summary = atlasmesh::alerts_bench::run(&cfg, opts).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Cmd::BenchApi(b) => {
            let opts = atlasmesh::api_bench::ApiBenchOptions {
                concurrency: b.concurrency.max(1),
                read_secs: b.read_secs,
                read_paths: b.read_paths,
                commands: b.commands,
                command_path: b.command_path,
                command_body: b.command_body,
                timeout: std::time::Duration::from_secs(b.timeout_secs),
                api_url: b.api_url,
                api_pid: b.api_pid,
                read_rate: b.read_rate.filter(|r| *r > 0.0),
            };
            let summary = atlasmesh::api_bench::run(&cfg, opts).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Cmd::BenchRebalance(b) => bench_rebalance::run(&b)?,
        Cmd::BenchState(b) => {
            let summary = atlasmesh::state_bench::run(&b, &cfg)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Cmd::BenchPipeline(b) => {
            let summary = atlasmesh::pipeline_bench::run(&cfg, &b).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Cmd::SimZones(z) => {
            let zones: Vec<_> = (1..=z.fleets)
                .flat_map(atlasmesh_simulator::fleet_zones)
                .collect();
            if z.sql {
                for s in &zones {
                    println!(
                        "INSERT INTO optimization_zones (id, fleet_id, name, lat, lon, vehicle_capacity) \
                         VALUES ('{}', '{}', '{}', {}, {}, {}) ON CONFLICT (id) DO NOTHING;",
                        s.id, s.fleet_id, s.name, s.lat, s.lon, z.capacity
                    );
                }
            } else {
                println!("{}", serde_json::to_string_pretty(&zones)?);
            }
        }
        Cmd::SimBatteries(b) => {
            let sim = atlasmesh_simulator::Simulator::new(atlasmesh_simulator::SimConfig {
                seed: b.seed,
                fleets: b.fleets,
                vehicles_per_fleet: b.vehicles_per_fleet,
                ..Default::default()
            });
            let batteries = sim.batteries();
            if b.sql {
                for (fleet, vehicle, kwh) in &batteries {
                    println!(
                        "INSERT INTO vehicle_batteries (vehicle_id, fleet_id, nominal_kwh) \
                         VALUES ('{vehicle}', '{fleet}', {kwh}) \
                         ON CONFLICT (vehicle_id) DO UPDATE SET nominal_kwh = EXCLUDED.nominal_kwh;"
                    );
                }
            } else {
                let rows: Vec<_> = batteries
                    .iter()
                    .map(|(f, v, k)| serde_json::json!({"fleet_id": f, "vehicle_id": v, "nominal_kwh": k}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            }
        }
        Cmd::Token(t) => println!("{}", atlasmesh::credentials::token(&cfg, &t)?),
        Cmd::ApiKey(k) => println!("{}", atlasmesh::credentials::api_key(&cfg, &k).await?),
    }
    Ok(())
}
