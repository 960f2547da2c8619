//! `atlasmesh bench`: end-to-end throughput and latency against the configured stack, in one run.
//!
//! Isolation: every run uses fresh names derived from the start time — topics
//! `bench-<ts>.telemetry|metrics|dlq`, consumer group prefix `bench-<ts>`, ClickHouse database
//! `bench_<ts>`, Redis key prefix `bench-<ts>`. PostgreSQL checkpoint rows are keyed by
//! pipeline + topic, so the fresh topic isolates them too.
//!
//! Phases:
//! 1. `prepare` (migrations, topics, schemas), then produce `events` simulator events as fast
//!    as possible, event times ending near now.
//! 2. Raw consume: a plain rdkafka `StreamConsumer` (own group id, all partitions assigned from
//!    the beginning) reads the topic start to end, no decoding. msgs/s.
//! 3. Minimal consumer: the same, decoding each message with serde_avro_fast (the writer
//!    schema, the two fields it uses) and folding the odometer per vehicle into a `HashMap`:
//!    the least a consumer that uses the data does. msgs/s and CPU per message.
//! 4. Pipeline: `run_pipelines(["telemetry"])` in-process on the same topic until the sum of
//!    `stream_checkpoints.next_offset` over the topic's partitions equals the produced count.
//!    msgs/s, CPU per message, and the ratios pipeline/raw (rate) and pipeline/minimal (CPU).
//! 5. Latency: with the pipeline still running, produce at a fixed rate with event time = wall
//!    clock at produce time; once checkpointed, p50/p99 of `ingested_at_ms - ts_ms` over that
//!    phase's rows of `telemetry_raw FINAL` (ingested_at_ms is stamped just before the
//!    ClickHouse insert of a checkpoint batch).
//!
//! CPU is this process's (every thread, `CLOCK_PROCESS_CPUTIME_ID`) over a phase: the
//! consumers' and the pipeline's own, not the broker's or the stores'. The pipeline's includes
//! its start-up and its writes to ClickHouse, Redis, PostgreSQL and the metrics topic.
//!
//! Progress goes to stderr every 2 s; the summary is returned as JSON (printed on stdout by main).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use atlasmesh_core::clock::now_ms;
use atlasmesh_core::config::Config;
use atlasmesh_schemas::{Codec, SchemaKind};
use atlasmesh_simulator::{Emitted, SimConfig, Simulator};
use atlasmesh_sinks::kafka::KafkaProducer;
use atlasmesh_sinks::postgres::CheckpointStore;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::json;
use tokio::sync::watch;

use crate::cpu::process_cpu_ns;

const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Options of `atlasmesh bench`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub events: u64,
    pub fleets: u32,
    pub vehicles_per_fleet: u32,
    pub seed: u64,
    /// Messages per second in the latency phase (0 skips the phase).
    pub latency_rate: u64,
    pub latency_secs: u64,
    /// Give up a phase after this long.
    pub timeout: Duration,
    /// Drop the bench ClickHouse database at the end.
    pub drop_database: bool,
}

/// The isolated configuration of one bench run.
pub fn bench_config(base: &Config, ts: i64) -> Config {
    let mut cfg = base.clone();
    let tag = format!("bench-{ts}");
    cfg.topics.telemetry = format!("{tag}.telemetry");
    cfg.topics.metrics = format!("{tag}.metrics");
    cfg.topics.dlq = format!("{tag}.dlq");
    cfg.clickhouse.database = format!("bench_{ts}");
    cfg.kafka.group_prefix = tag.clone();
    cfg.redis.key_prefix = tag;
    cfg
}

fn rate(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        return 0.0;
    }
    n as f64 / d.as_secs_f64()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What a baseline consumer does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Baseline {
    /// Nothing: it looks at the payload's length.
    Raw,
    /// Decodes it with serde_avro_fast against the writer schema (the fields it uses,
    /// borrowed) and adds the odometer reading to its vehicle's entry in a `HashMap`.
    Minimal,
}

impl Baseline {
    fn label(self) -> &'static str {
        match self {
            Baseline::Raw => "raw consume",
            Baseline::Minimal => "minimal consumer",
        }
    }

    /// Its consumer group's suffix (each reads the topic from the start on its own).
    fn group_suffix(self) -> &'static str {
        match self {
            Baseline::Raw => "raw",
            Baseline::Minimal => "minimal",
        }
    }
}

/// The two fields the minimal consumer uses.
#[derive(serde::Deserialize)]
struct Odometer<'a> {
    vehicle_id: &'a str,
    odometer_km: f64,
}

/// A baseline consumer's run over the topic.
struct Consumed {
    messages: u64,
    /// From assignment to the last message, and from the first message to the last.
    wall: Duration,
    steady: Duration,
    /// This process's CPU time over the run.
    cpu: Duration,
    /// Messages the minimal consumer could not decode.
    undecodable: u64,
}

/// Reads the telemetry topic from the start (all partitions assigned) until `expected`
/// messages arrived, doing with each what `baseline` says.
async fn raw_consume(
    cfg: &Config,
    expected: u64,
    timeout: Duration,
    baseline: Baseline,
) -> anyhow::Result<Consumed> {
    let schema: serde_avro_fast::Schema = SchemaKind::Telemetry
        .schema()
        .parse()
        .context("the telemetry schema for serde_avro_fast")?;
    let mut odometers: HashMap<String, f64> = HashMap::new();
    let mut undecodable = 0u64;
    let cpu0 = Duration::from_nanos(process_cpu_ns());
    let mut cc = atlasmesh_sinks::kafka::client_config(&cfg.kafka);
    cc.set(
        "group.id",
        format!("{}.{}", cfg.kafka.group_prefix, baseline.group_suffix()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cc.create().context("creating raw consumer")?;
    // Assign every partition from the beginning (no group membership, no rebalance wait; the
    // pipeline does the same with kafka.assignment = manual).
    let started = Instant::now();
    let topic = cfg.topics.telemetry.as_str();
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    anyhow::ensure!(!parts.is_empty(), "topic {topic} has no partitions");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in parts {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut first: Option<Instant> = None;
    let mut last = started;
    let mut n = 0u64;
    let mut last_report = Instant::now();
    while n < expected {
        if started.elapsed() > timeout {
            anyhow::bail!(
                "{}: only {n}/{expected} messages after {timeout:?}",
                baseline.label()
            );
        }
        match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            Ok(Ok(m)) => {
                let payload = rdkafka::Message::payload(&m).unwrap_or_default();
                match baseline {
                    Baseline::Raw => {
                        std::hint::black_box(payload.len());
                    }
                    Baseline::Minimal => {
                        // After the Confluent framing (magic byte, schema id).
                        let decoded = payload.get(5..).and_then(|datum| {
                            serde_avro_fast::from_datum_slice::<Odometer<'_>>(datum, &schema).ok()
                        });
                        match decoded {
                            Some(o) => match odometers.get_mut(o.vehicle_id) {
                                Some(v) => *v += o.odometer_km,
                                None => {
                                    odometers.insert(o.vehicle_id.to_owned(), o.odometer_km);
                                }
                            },
                            None => undecodable += 1,
                        }
                    }
                }
                n += 1;
                last = Instant::now();
                first.get_or_insert(last);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "raw consume error"),
            Err(_) => {}
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            eprintln!(
                "bench: {} {n}/{expected} ({:.0} msgs/s)",
                baseline.label(),
                rate(n, started.elapsed())
            );
        }
    }
    let cpu = Duration::from_nanos(process_cpu_ns()).saturating_sub(cpu0);
    std::hint::black_box(&odometers);
    let first = first.unwrap_or(started);
    Ok(Consumed {
        messages: n,
        wall: last - started,
        steady: last - first,
        cpu,
        undecodable,
    })
}

/// Sum of the checkpointed next offsets of every partition of the telemetry topic (one
/// aggregate row: the poll reads no state, so its CPU stays out of the pipeline's figure).
async fn checkpointed(store: &CheckpointStore, topic: &str) -> anyhow::Result<u64> {
    Ok(store.checkpointed_total(topic).await?.max(0) as u64)
}

/// Polls the checkpoints until they cover `target` messages. Returns the time it took and the
/// (time, sum, process CPU) of the first observation above `baseline` (for steady-state
/// figures).
async fn wait_checkpointed(
    store: &CheckpointStore,
    cfg: &Config,
    baseline: u64,
    target: u64,
    timeout: Duration,
    pipeline: &tokio::task::JoinHandle<anyhow::Result<()>>,
    label: &str,
) -> anyhow::Result<(Duration, Option<(Duration, u64, Duration)>)> {
    let started = Instant::now();
    let mut first_progress = None;
    let mut last_report = Instant::now();
    loop {
        let sum = checkpointed(store, &cfg.topics.telemetry).await?;
        if sum > baseline && first_progress.is_none() {
            first_progress = Some((
                started.elapsed(),
                sum,
                Duration::from_nanos(process_cpu_ns()),
            ));
        }
        if sum >= target {
            return Ok((started.elapsed(), first_progress));
        }
        if pipeline.is_finished() {
            anyhow::bail!(
                "{label}: the pipeline stopped early at {sum}/{target} checkpointed messages"
            );
        }
        if started.elapsed() > timeout {
            anyhow::bail!("{label}: only {sum}/{target} messages checkpointed after {timeout:?}");
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let done = sum - baseline.min(sum);
            eprintln!(
                "bench: {label} {done}/{} checkpointed ({:.0} msgs/s)",
                target - baseline,
                rate(done, started.elapsed())
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces at `rate` msgs/s for `secs`, each event stamped with the wall clock at produce time.
async fn produce_paced(
    cfg: &Config,
    sim: SimConfig,
    rate_per_s: u64,
    secs: u64,
) -> anyhow::Result<u64> {
    let codec = Codec::from_config(&cfg.schema_registry).map_err(|e| anyhow::anyhow!("{e}"))?;
    let schema_id = crate::produce::telemetry_schema_id(&codec, cfg).await?;
    let producer = KafkaProducer::new(&cfg.kafka)?;
    let mut sim = Simulator::new(sim).with_schema_id(schema_id);
    let total = rate_per_s * secs;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate_per_s as f64) as u64).min(total);
        if due <= sent {
            continue;
        }
        let mut items = sim.take((due - sent) as usize);
        let now = now_ms();
        for it in &mut items {
            if let Emitted::Event { event, .. } = it {
                event.ts_ms = now;
            }
        }
        let records = crate::produce::encode(&codec, &cfg.topics.telemetry, &items).await?;
        producer.send_all("kafka", &records).await?;
        sent += items.len() as u64;
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            eprintln!(
                "bench: latency phase produced {sent}/{total} ({:.0}/s)",
                rate(sent, started.elapsed())
            );
        }
    }
    Ok(sent)
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct LatencyRow {
    p50: f64,
    p99: f64,
    max: f64,
    rows: u64,
}

/// Simulated fleets reporting once a second whose `events` samples end near `end_ms`.
pub fn sim_ending_at(
    seed: u64,
    fleets: u32,
    vehicles_per_fleet: u32,
    events: u64,
    end_ms: i64,
) -> SimConfig {
    let vehicles = u64::from(fleets * vehicles_per_fleet).max(1);
    SimConfig {
        seed,
        fleets,
        vehicles_per_fleet,
        start_ms: end_ms - (events / vehicles) as i64 * 1000,
        interval_ms: 1000,
        ..Default::default()
    }
}

/// Drops a bench run's ClickHouse database.
pub async fn drop_database(cfg: &Config) -> anyhow::Result<()> {
    let mut admin = cfg.clickhouse.clone();
    admin.database = "default".into();
    atlasmesh_sinks::clickhouse::client(&admin)
        .query(&format!(
            "DROP DATABASE IF EXISTS {}",
            cfg.clickhouse.database
        ))
        .execute()
        .await
        .context("dropping bench database")
}

/// Runs the whole bench and returns the JSON summary.
pub async fn run(base: &Config, opts: BenchOptions) -> anyhow::Result<serde_json::Value> {
    let ts = now_ms();
    let cfg = bench_config(base, ts);
    let vehicles = u64::from(opts.fleets * opts.vehicles_per_fleet).max(1);
    eprintln!(
        "bench: topic {}, ClickHouse database {}, group prefix {}, {} events from {vehicles} vehicles",
        cfg.topics.telemetry, cfg.clickhouse.database, cfg.kafka.group_prefix, opts.events
    );
    let t = Instant::now();
    atlasmesh_pipelines::prepare(&cfg)
        .await
        .context("prepare")?;
    let prepare_s = t.elapsed().as_secs_f64();

    // Phase 1: produce, event times ending near now.
    let sim = sim_ending_at(
        opts.seed,
        opts.fleets,
        opts.vehicles_per_fleet,
        opts.events,
        ts,
    );
    let t = Instant::now();
    let produced = crate::produce::run(
        &cfg,
        crate::produce::ProduceOptions {
            sim: sim.clone(),
            events: opts.events,
            rate: 0,
            progress: true,
            derived: false,
            demand: None,
        },
    )
    .await
    .context("producing")?;
    let produce_d = t.elapsed();
    eprintln!(
        "bench: produced {produced} in {:.1} s ({:.0} msgs/s)",
        produce_d.as_secs_f64(),
        rate(produced, produce_d)
    );

    // Phase 2: raw consume; phase 3: the minimal consumer.
    let raw = raw_consume(&cfg, produced, opts.timeout, Baseline::Raw).await?;
    let raw_wall_rate = rate(raw.messages, raw.wall);
    let raw_steady_rate = rate(raw.messages.saturating_sub(1), raw.steady);
    let per_msg_us = |cpu: Duration, n: u64| round3(cpu.as_secs_f64() * 1e6 / n.max(1) as f64);
    eprintln!(
        "bench: raw consume {} msgs: {raw_wall_rate:.0} msgs/s incl. assignment, {raw_steady_rate:.0} msgs/s first→last, {} µs CPU per message",
        raw.messages,
        per_msg_us(raw.cpu, raw.messages)
    );
    let minimal = raw_consume(&cfg, produced, opts.timeout, Baseline::Minimal).await?;
    let minimal_cpu_us = per_msg_us(minimal.cpu, minimal.messages);
    eprintln!(
        "bench: minimal consumer {} msgs ({} undecodable): {:.0} msgs/s first→last, {minimal_cpu_us} µs CPU per message",
        minimal.messages,
        minimal.undecodable,
        rate(minimal.messages.saturating_sub(1), minimal.steady)
    );

    // Phase 4: the telemetry pipeline in-process.
    let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 2).await?;
    let store = CheckpointStore::new(pool, atlasmesh_pipelines::telemetry::NAME);
    let (stop_tx, stop_rx) = watch::channel(false);
    let pcfg = Arc::new(cfg.clone());
    let pipe_cpu0 = Duration::from_nanos(process_cpu_ns());
    let pipeline = tokio::spawn(async move {
        atlasmesh_pipelines::run_pipelines(
            pcfg,
            &[atlasmesh_pipelines::telemetry::NAME.to_string()],
            stop_rx,
        )
        .await
        .map_err(anyhow::Error::from)
    });
    let (pipe_wall, first) = wait_checkpointed(
        &store,
        &cfg,
        0,
        produced,
        opts.timeout,
        &pipeline,
        "pipeline",
    )
    .await?;
    let pipe_cpu1 = Duration::from_nanos(process_cpu_ns());
    let pipe_wall_rate = rate(produced, pipe_wall);
    let pipe_steady_rate = match first {
        Some((t0, s0, _)) if pipe_wall > t0 && produced > s0 => rate(produced - s0, pipe_wall - t0),
        _ => pipe_wall_rate,
    };
    let pipe_cpu_us = per_msg_us(pipe_cpu1.saturating_sub(pipe_cpu0), produced);
    let pipe_steady_cpu_us = match first {
        Some((_, s0, c0)) if produced > s0 => {
            per_msg_us(pipe_cpu1.saturating_sub(c0), produced - s0)
        }
        _ => pipe_cpu_us,
    };
    eprintln!("bench: pipeline {produced} msgs: {pipe_wall_rate:.0} msgs/s incl. start-up, {pipe_steady_rate:.0} msgs/s between checkpoints; {pipe_cpu_us} µs CPU per message incl. start-up, {pipe_steady_cpu_us} µs from the first checkpoint on");
    let over_minimal = |us: f64| {
        if minimal_cpu_us > 0.0 {
            round3(us / minimal_cpu_us)
        } else {
            0.0
        }
    };

    // Phase 5: latency at a fixed rate.
    let mut latency = serde_json::Value::Null;
    if opts.latency_rate > 0 && opts.latency_secs > 0 {
        let phase_start_ms = now_ms();
        let lsim = SimConfig {
            seed: opts.seed + 1,
            fleets: opts.fleets,
            vehicles_per_fleet: opts.vehicles_per_fleet,
            start_ms: phase_start_ms,
            interval_ms: ((vehicles * 1000) / opts.latency_rate).max(1) as i64,
            ..Default::default()
        };
        // Distinct vehicle ids are not needed: the kernel orders by (ts, seq) and ts is now.
        let sent = produce_paced(&cfg, lsim, opts.latency_rate, opts.latency_secs).await?;
        wait_checkpointed(
            &store,
            &cfg,
            produced,
            produced + sent,
            opts.timeout,
            &pipeline,
            "latency phase",
        )
        .await?;
        let ch = atlasmesh_sinks::clickhouse::client(&cfg.clickhouse);
        let row: LatencyRow = ch
            .query(
                "SELECT toFloat64(quantileExact(0.5)(d)) AS p50, toFloat64(quantileExact(0.99)(d)) AS p99, \
                 toFloat64(max(d)) AS max, count() AS rows \
                 FROM (SELECT ingested_at_ms - ts_ms AS d FROM telemetry_raw FINAL WHERE ts_ms >= ?)",
            )
            .bind(phase_start_ms)
            .fetch_one()
            .await
            .context("latency query")?;
        eprintln!(
            "bench: latency event→ClickHouse over {} rows: p50 {} ms, p99 {} ms, max {} ms",
            row.rows, row.p50, row.p99, row.max
        );
        latency = json!({
            "rate_per_s": opts.latency_rate,
            "seconds": opts.latency_secs,
            "produced": sent,
            "rows": row.rows,
            "p50_ms": row.p50,
            "p99_ms": row.p99,
            "max_ms": row.max,
            "measure": "telemetry_raw FINAL: ingested_at_ms - ts_ms, ts_ms = wall clock at produce time",
        });
    }

    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(30), pipeline).await {
        Ok(r) => r.context("pipeline task")?.context("pipeline")?,
        Err(_) => eprintln!("bench: pipeline did not stop within 30 s"),
    }
    if opts.drop_database {
        drop_database(&cfg).await?;
    }

    Ok(json!({
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "topic": cfg.topics.telemetry,
        "clickhouse_database": cfg.clickhouse.database,
        "partitions": cfg.kafka.partitions,
        "vehicles": vehicles,
        "prepare_s": round1(prepare_s),
        "produce": { "messages": produced, "seconds": round1(produce_d.as_secs_f64()), "msgs_per_s": rate(produced, produce_d).round() },
        "raw_consume": {
            "messages": raw.messages,
            "msgs_per_s_incl_assign": raw_wall_rate.round(),
            "msgs_per_s_first_to_last": raw_steady_rate.round(),
            "cpu_us_per_msg": per_msg_us(raw.cpu, raw.messages),
        },
        "minimal_consumer": {
            "what": "rdkafka StreamConsumer + serde_avro_fast (writer schema, vehicle_id and odometer_km borrowed) + HashMap<String, f64> fold",
            "messages": minimal.messages,
            "undecodable": minimal.undecodable,
            "msgs_per_s_first_to_last": rate(minimal.messages.saturating_sub(1), minimal.steady).round(),
            "cpu_us_per_msg": minimal_cpu_us,
        },
        "pipeline": {
            "messages": produced,
            "seconds": round1(pipe_wall.as_secs_f64()),
            "msgs_per_s_incl_startup": pipe_wall_rate.round(),
            "msgs_per_s_steady": pipe_steady_rate.round(),
            "cpu_us_per_msg_incl_startup": pipe_cpu_us,
            "cpu_us_per_msg_steady": pipe_steady_cpu_us,
        },
        "cpu_ratio_pipeline_over_minimal": {
            "incl_startup": over_minimal(pipe_cpu_us),
            "steady": over_minimal(pipe_steady_cpu_us),
        },
        "ratio_pipeline_over_raw": {
            "incl_startup": if raw_wall_rate > 0.0 { (pipe_wall_rate / raw_wall_rate * 1000.0).round() / 1000.0 } else { 0.0 },
            "steady": if raw_steady_rate > 0.0 { (pipe_steady_rate / raw_steady_rate * 1000.0).round() / 1000.0 } else { 0.0 },
        },
        "latency": latency,
    }))
}
