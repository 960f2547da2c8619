//! `atlasmesh bench-pipeline`: the telemetry pipeline's own CPU time per event, in process,
//! with no broker on the event path.
//!
//! Simulated telemetry is encoded (Confluent Avro, the registered schema) a checkpoint's worth
//! at a time, outside the measurement; then each message goes through what the worker does
//! with it: the message as the runner hands it over ([`InMessage`], borrowed from the
//! consumer's buffer), the runner's consumed counter, [`TelemetryPipeline`]'s `handle` (decode, validation, window
//! kernel and its journal, raw row, latest value, window rows), and per checkpoint the
//! pipeline's `flush` to the real sinks (ClickHouse inserts, Redis, closed windows and
//! watermarks produced to the metrics topic) and the runner's checkpoint (each touched
//! partition's delta, or its full state the first time, saved to PostgreSQL). The Prometheus
//! recorder is installed as in the worker.
//!
//! CPU time is the whole process's (every thread, `CLOCK_PROCESS_CPUTIME_ID`), read around
//! the handling of a batch, its flush and its checkpoint: the clients' threads (rdkafka,
//! tokio, hyper) count, the servers (ClickHouse, PostgreSQL, Redis, the broker) do not.
//! Progress on stderr, JSON on stdout.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use anyhow::Context;
use atlasmesh_core::clock::now_ms;
use atlasmesh_core::config::Config;
use atlasmesh_core::metric_names as m;
use atlasmesh_core::window::PartitionWindows;
use atlasmesh_pipelines::runner::{Chain, InMessage};
use atlasmesh_pipelines::telemetry::{TelemetryBatch, TelemetryPipeline, NAME};
use atlasmesh_pipelines::Pipeline;
use atlasmesh_schemas::Codec;
use atlasmesh_simulator::Simulator;
use atlasmesh_sinks::postgres::CheckpointStore;
use clap::Args;
use serde::Serialize;

use crate::cpu::process_cpu_ns;

const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Args, Debug, Clone)]
pub struct BenchPipelineArgs {
    #[arg(long, default_value_t = 10)]
    pub fleets: u32,
    #[arg(long, default_value_t = 1_000)]
    pub vehicles_per_fleet: u32,
    /// Events fed through the pipeline (each vehicle reports once a second of event time).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Events per checkpoint (flush + state save): the event rate times
    /// `runner.checkpoint_interval_ms` (10,000 = 10,000 vehicles at 1 Hz, 1 s checkpoints).
    #[arg(long, default_value_t = 10_000)]
    pub batch_events: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep the bench's ClickHouse database (dropped at the end by default).
    #[arg(long)]
    pub keep_database: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct PipelineSummary {
    pub build: &'static str,
    pub vehicles: u64,
    pub partitions: i32,
    pub events: u64,
    pub batch_events: usize,
    pub checkpoints: u64,
    /// Partition checkpoints that saved the whole state (the rest are deltas), and the bytes
    /// of all of them.
    pub full_checkpoints: u64,
    pub checkpoint_bytes: u64,
    pub raw_rows: u64,
    pub window_rows: u64,
    pub dead_letters: u64,
    /// Process CPU per event: handling, flushing, checkpointing and the sum.
    pub handle_cpu_us_per_event: f64,
    pub flush_cpu_us_per_event: f64,
    pub checkpoint_cpu_us_per_event: f64,
    pub cpu_us_per_event: f64,
    /// Events per second one core sustains at that cost.
    pub events_per_core_second: f64,
    /// Wall time of the measured part (the servers' work included), seconds.
    pub wall_s: f64,
    pub clickhouse_database: String,
}

/// A fixed partition per key (the test does not need librdkafka's partitioner, only a stable
/// spread).
fn partition_of(key: &[u8], partitions: i32) -> i32 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % partitions.max(1) as u64) as i32
}

/// A partition's checkpoint bookkeeping, as the runner keeps it.
#[derive(Default)]
struct Part {
    state: PartitionWindows,
    next_offset: i64,
    dirty: bool,
    chain: Chain,
}

pub async fn run(base: &Config, args: &BenchPipelineArgs) -> anyhow::Result<PipelineSummary> {
    let _ = crate::install_metrics();
    let ts = now_ms();
    let cfg = crate::bench::bench_config(base, ts);
    let vehicles = u64::from(args.fleets * args.vehicles_per_fleet).max(1);
    eprintln!(
        "bench-pipeline: {} events from {vehicles} vehicles, {} per checkpoint; topics {}, ClickHouse database {}",
        args.events, args.batch_events, cfg.topics.telemetry, cfg.clickhouse.database
    );
    atlasmesh_pipelines::prepare(&cfg)
        .await
        .context("prepare")?;
    let codec = Codec::from_config(&cfg.schema_registry).map_err(|e| anyhow::anyhow!("{e}"))?;
    let schema_id = crate::produce::telemetry_schema_id(&codec, &cfg).await?;
    let mut sim = Simulator::new(crate::bench::sim_ending_at(
        args.seed,
        args.fleets,
        args.vehicles_per_fleet,
        args.events,
        ts,
    ))
    .with_schema_id(schema_id);
    let p = TelemetryPipeline::build(&cfg).await?;
    let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 2).await?;
    let store = CheckpointStore::new(pool, NAME);
    let partitions = cfg.kafka.partitions.max(1);
    let topic = cfg.topics.telemetry.clone();
    let mut parts: BTreeMap<i32, Part> = BTreeMap::new();
    let mut batch = TelemetryBatch::default();
    let mut s = PipelineSummary {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        vehicles,
        partitions,
        batch_events: args.batch_events.max(1),
        clickhouse_database: cfg.clickhouse.database.clone(),
        ..Default::default()
    };
    let (mut handle_ns, mut flush_ns, mut checkpoint_ns) = (0u64, 0u64, 0u64);
    let mut wall = Duration::ZERO;
    let mut last_report = Instant::now();
    // The runner's own counter, registered once as it does.
    let consumed = metrics::counter!(m::EVENTS_CONSUMED, "pipeline" => NAME);
    while s.events < args.events {
        let n = s.batch_events.min((args.events - s.events) as usize);
        // Not measured: the stream, as the consumer's buffers would hold it.
        let records = crate::produce::encode(&codec, &topic, &sim.take(n)).await?;
        let mut msgs: Vec<(i32, i64, Vec<u8>, Vec<u8>)> = Vec::with_capacity(records.len());
        for r in records {
            let key = r.key.unwrap_or_default();
            let partition = partition_of(&key, partitions);
            let part = parts.entry(partition).or_default();
            msgs.push((partition, part.next_offset, key, r.payload));
            part.next_offset += 1;
        }

        let started = Instant::now();
        let c0 = process_cpu_ns();
        for (partition, offset, key, payload) in &msgs {
            let msg = InMessage {
                topic: &topic,
                partition: *partition,
                offset: *offset,
                key: Some(key),
                payload: Some(payload),
                headers: Vec::new(),
            };
            consumed.increment(1);
            let part = parts.get_mut(partition).expect("partition");
            p.handle(&mut part.state, &msg, &mut batch).await?;
            part.dirty = true;
        }
        let c1 = process_cpu_ns();
        s.raw_rows += batch.raw_rows().len() as u64;
        s.window_rows += (batch.vehicle_rows.len() + batch.fleet_rows.len()) as u64;
        s.dead_letters += batch.dlq.len() as u64;
        p.flush(&mut batch).await?;
        p.recycle(&mut batch);
        let c2 = process_cpu_ns();
        // The runner's checkpoint of every touched partition (`runner.delta_checkpoints`).
        let incremental = cfg.runner.delta_checkpoints;
        let mut checkpoints = Vec::new();
        for (partition, part) in parts.iter_mut().filter(|(_, part)| part.dirty) {
            checkpoints.push(part.chain.next(
                &p,
                &mut part.state,
                &topic,
                *partition,
                part.next_offset,
                incremental,
                false,
            ));
        }
        let refused = store.save(&checkpoints).await?;
        anyhow::ensure!(refused.is_empty(), "checkpoints refused for {refused:?}");
        for c in &checkpoints {
            s.full_checkpoints += u64::from(!c.delta);
            s.checkpoint_bytes += c.state.len() as u64;
            let part = parts.get_mut(&c.partition).expect("partition");
            part.chain.saved(c);
            part.dirty = false;
        }
        let c3 = process_cpu_ns();
        wall += started.elapsed();
        handle_ns += c1 - c0;
        flush_ns += c2 - c1;
        checkpoint_ns += c3 - c2;
        s.events += n as u64;
        s.checkpoints += 1;
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            eprintln!(
                "bench-pipeline: {}/{} events, {:.2} µs CPU per event so far",
                s.events,
                args.events,
                (handle_ns + flush_ns + checkpoint_ns) as f64 / 1e3 / s.events as f64
            );
        }
    }
    let per = |ns: u64| ((ns as f64 / 1e3 / s.events.max(1) as f64) * 1000.0).round() / 1000.0;
    s.handle_cpu_us_per_event = per(handle_ns);
    s.flush_cpu_us_per_event = per(flush_ns);
    s.checkpoint_cpu_us_per_event = per(checkpoint_ns);
    s.cpu_us_per_event = per(handle_ns + flush_ns + checkpoint_ns);
    s.events_per_core_second = (1e6 / s.cpu_us_per_event.max(1e-9)).round();
    s.wall_s = (wall.as_secs_f64() * 100.0).round() / 100.0;
    eprintln!(
        "bench-pipeline: {} events: {} µs CPU per event (handle {}, flush {}, checkpoint {})",
        s.events,
        s.cpu_us_per_event,
        s.handle_cpu_us_per_event,
        s.flush_cpu_us_per_event,
        s.checkpoint_cpu_us_per_event
    );
    if !args.keep_database {
        crate::bench::drop_database(&cfg).await?;
    }
    Ok(s)
}
