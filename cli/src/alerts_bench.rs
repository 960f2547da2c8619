//! `atlasmesh bench-alerts`: latency from a telemetry event that crosses an alert threshold to
//! its alert message on the alert topic, through the real pipelines (telemetry → metrics topic
//! → alerts) running in-process against the configured stack.
//!
//! Isolation as `atlasmesh bench`: fresh topics `bench-alerts-<ts>.*`, group prefix, ClickHouse
//! database and Redis prefix; the rules are inserted into PostgreSQL with ids `bench-alerts-<ts>-*`
//! and deleted at the end.
//!
//! Load: `fleets × vehicles_per_fleet` vehicles report round-robin at `rate` events/s, event
//! time = wall clock at produce time, status `en_route`. Rule per fleet: `fault_count > 0`,
//! `for` 0, keep-firing-for 0, of scope
//! - `vehicle` (default): vehicle *i* reports `fault` in its first sample of every window *w*
//!   with `(w + i) % 3 == 0` (the *crossing event*); its window then fires at the window end,
//!   and the next window resolves it;
//! - `fleet`: every vehicle of fleet *f* reports `fault` in its first sample of every window
//!   *w* with `(w + f) % 3 == 0`; the crossing event is the fleet's first one in the window,
//!   and the fleet window fires once it settles: when the watermarks of every telemetry
//!   partition have passed it (`pipelines/src/settle.rs`).
//!
//! Measured per crossing, on receipt of its `firing` message (a consumer on the alert topic):
//! - `end_to_end`: receipt − produce time of the crossing event. Includes waiting for the
//!   window to end (event-time windows of `window_ms`) plus the out-of-orderness allowance.
//! - `after_window_closable`: receipt − (window end + `out_of_orderness_ms`), i.e. from the
//!   moment event time lets the window close to the alert on the topic: the pipelines' own
//!   latency (two checkpoint-driven flushes, Kafka hops, settle-free vehicle evaluation).
//!
//! - `window_on_metrics_topic_after_closable` (vehicle rules): receipt of the faulted vehicle
//!   window on the metrics topic − the same origin: the telemetry pipeline's share (the rest
//!   is the alerts pipeline and the last hop).
//!
//! Only crossings whose window became closable while the load was still running count (the
//! last windows close on idle flush instead).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use atlasmesh_core::clock::now_ms;
use atlasmesh_core::config::Config;
use atlasmesh_core::telemetry::VehicleStatus;
use atlasmesh_core::TelemetryEvent;
use atlasmesh_schemas::{Codec, MetricsScope, SchemaKind, WindowMetricsRecord};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use tokio::sync::watch;

const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct AlertsBenchOptions {
    pub fleets: u32,
    pub vehicles_per_fleet: u32,
    /// Telemetry events per second.
    pub rate: u64,
    pub secs: u64,
    /// Window length for this run (event time).
    pub window_ms: i64,
    pub out_of_orderness_ms: i64,
    /// The runners' checkpoint (= flush) interval.
    pub checkpoint_interval_ms: u64,
    pub timeout: Duration,
    pub scope: BenchScope,
}

/// The scope of the benchmark's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchScope {
    Vehicle,
    Fleet,
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn stats(mut v: Vec<i64>) -> serde_json::Value {
    v.sort_unstable();
    json!({ "n": v.len(), "p50_ms": percentile(&v, 0.5), "p99_ms": percentile(&v, 0.99), "max_ms": v.last().copied().unwrap_or(0) })
}

/// A consumer of every partition of `topic` from its beginning (no group membership).
fn probe_consumer(cfg: &Config, topic: &str, group: &str) -> anyhow::Result<StreamConsumer> {
    let mut cc = atlasmesh_sinks::kafka::client_config(&cfg.kafka);
    cc.set("group.id", group).set("enable.auto.commit", "false");
    let consumer: StreamConsumer = cc.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..cfg.kafka.partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// A crossing: produce wall time and the end of its window.
#[derive(Debug, Clone, Copy)]
struct Crossing {
    produced_ms: i64,
    window_end_ms: i64,
}

pub async fn run(base: &Config, opts: AlertsBenchOptions) -> anyhow::Result<serde_json::Value> {
    let ts = now_ms();
    let tag = format!("bench-alerts-{ts}");
    let mut cfg = crate::bench::bench_config(base, ts);
    for (slot, name) in [
        (&mut cfg.topics.telemetry, "telemetry"),
        (&mut cfg.topics.metrics, "metrics"),
        (&mut cfg.topics.dlq, "dlq"),
        (&mut cfg.topics.alerts, "alerts"),
    ] {
        *slot = format!("{tag}.{name}");
    }
    cfg.kafka.group_prefix = tag.clone();
    cfg.redis.key_prefix = tag.clone();
    cfg.telemetry.window_ms = opts.window_ms;
    cfg.telemetry.out_of_orderness_ms = opts.out_of_orderness_ms;
    cfg.runner.checkpoint_interval_ms = opts.checkpoint_interval_ms;
    let vehicles: Vec<(String, String)> = (0..opts.fleets)
        .flat_map(|f| {
            let tag = tag.clone();
            (0..opts.vehicles_per_fleet)
                .map(move |v| (format!("{tag}-f{f}"), format!("{tag}-f{f}-v{v}")))
        })
        .collect();
    let fleet_scope = opts.scope == BenchScope::Fleet;
    anyhow::ensure!(
        !vehicles.is_empty() && opts.rate > 0,
        "need vehicles and a rate"
    );
    eprintln!(
        "bench-alerts: topics {tag}.*, {} vehicles at {} events/s for {} s, {} ms windows, checkpoint every {} ms, {:?} rules",
        vehicles.len(),
        opts.rate,
        opts.secs,
        opts.window_ms,
        opts.checkpoint_interval_ms,
        opts.scope
    );
    atlasmesh_pipelines::prepare(&cfg)
        .await
        .context("prepare")?;
    let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 2).await?;
    for f in 0..opts.fleets {
        sqlx::query(
            "INSERT INTO alert_rules (id, fleet_id, scope, metric, comparison, threshold, severity)
             VALUES ($1, $2, $3, 'fault_count', 'gt', 0, 'critical')",
        )
        .bind(format!("{tag}-fault-f{f}"))
        .bind(format!("{tag}-f{f}"))
        .bind(if fleet_scope { "fleet" } else { "vehicle" })
        .execute(&pool)
        .await?;
    }

    // The alert topic consumer: subject → receipt times of firing messages.
    let received: Arc<Mutex<Vec<(String, i64)>>> = Arc::new(Mutex::new(Vec::new()));
    let consumer = probe_consumer(&cfg, &cfg.topics.alerts, &format!("{tag}.probe"))?;
    let rx = received.clone();
    let probe = tokio::spawn(async move {
        let mut seen: std::collections::HashSet<(String, String)> = Default::default();
        loop {
            let Ok(m) = consumer.recv().await else {
                continue;
            };
            let at = now_ms();
            let seq = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "seq").and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).to_string());
            let key = m
                .key()
                .map(|k| String::from_utf8_lossy(k).to_string())
                .unwrap_or_default();
            if !seen.insert((key, seq.unwrap_or_default())) {
                continue; // a repeat
            }
            let Some(v) = m
                .payload()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            else {
                continue;
            };
            if v["payload"]["custom_details"]["transition"] == "firing" {
                if let Some(s) = v["labels"]["subject"].as_str() {
                    rx.lock().expect("lock").push((s.to_string(), at));
                }
            }
        }
    });

    // The metrics topic probe: (vehicle, window end) → receipt time of the first faulted
    // vehicle window, to split the latency at the hop between the two pipelines.
    let windows_seen: Arc<Mutex<HashMap<(String, i64), i64>>> = Arc::default();
    let metrics_consumer =
        probe_consumer(&cfg, &cfg.topics.metrics, &format!("{tag}.probe-metrics"))?;
    let probe_codec =
        Codec::from_config(&cfg.schema_registry).map_err(|e| anyhow::anyhow!("{e}"))?;
    let seen = windows_seen.clone();
    let metrics_probe = tokio::spawn(async move {
        loop {
            let Ok(m) = metrics_consumer.recv().await else {
                continue;
            };
            let at = now_ms();
            let Some(payload) = m.payload() else {
                continue;
            };
            let Ok(r) = probe_codec
                .decode_record::<WindowMetricsRecord>(payload, SchemaKind::Metrics)
                .await
            else {
                continue;
            };
            if r.scope == MetricsScope::Vehicle && r.fault_count > 0 {
                seen.lock()
                    .expect("lock")
                    .entry((r.vehicle_id, r.window_end_ms))
                    .or_insert(at);
            }
        }
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let pcfg = Arc::new(cfg.clone());
    let names = vec![
        atlasmesh_pipelines::telemetry::NAME.to_string(),
        atlasmesh_pipelines::alerts::NAME.to_string(),
    ];
    let pipelines =
        tokio::spawn(
            async move { atlasmesh_pipelines::run_pipelines(pcfg, &names, stop_rx).await },
        );
    tokio::time::sleep(Duration::from_secs(2)).await; // assignment

    // Produce.
    let codec = Codec::from_config(&cfg.schema_registry).map_err(|e| anyhow::anyhow!("{e}"))?;
    let producer = KafkaProducer::new(&cfg.kafka)?;
    let mut crossings: HashMap<String, VecDeque<Crossing>> = HashMap::new();
    let mut seqs = vec![0i64; vehicles.len()];
    let mut last_fault_window = vec![i64::MIN; vehicles.len()];
    let mut fleet_crossed = vec![i64::MIN; opts.fleets as usize];
    let total = opts.rate * opts.secs;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut sent = 0u64;
    let mut last_ts = 0;
    let mut n_crossings = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * opts.rate as f64) as u64).min(total);
        let mut records = Vec::new();
        while sent < due {
            let i = (sent % vehicles.len() as u64) as usize;
            let now = now_ms();
            let w = now.div_euclid(opts.window_ms);
            let f = i / opts.vehicles_per_fleet as usize;
            let k = if fleet_scope { f as i64 } else { i as i64 };
            let fault = (w + k) % 3 == 0 && last_fault_window[i] != w;
            if fault {
                last_fault_window[i] = w;
                let crossing = Crossing {
                    produced_ms: now,
                    window_end_ms: (w + 1) * opts.window_ms,
                };
                if !fleet_scope {
                    n_crossings += 1;
                    crossings
                        .entry(vehicles[i].1.clone())
                        .or_default()
                        .push_back(crossing);
                } else if fleet_crossed[f] != w {
                    fleet_crossed[f] = w;
                    n_crossings += 1;
                    crossings
                        .entry(vehicles[i].0.clone())
                        .or_default()
                        .push_back(crossing);
                }
            }
            seqs[i] += 1;
            let ev = driving_sample(&vehicles[i].0, &vehicles[i].1, seqs[i], now, fault);
            let payload = codec
                .encode(&cfg.topics.telemetry, SchemaKind::Telemetry, &ev)
                .await
                .map_err(|e| anyhow::anyhow!("encode: {e}"))?;
            records.push(OutRecord {
                topic: cfg.topics.telemetry.clone(),
                key: Some(ev.vehicle_id.clone().into_bytes()),
                payload,
                headers: vec![],
                partition: None,
                timestamp_ms: None,
            });
            last_ts = now;
            sent += 1;
        }
        if !records.is_empty() {
            producer.send_all("kafka", &records).await?;
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let alerts = received.lock().expect("lock").len();
            eprintln!("bench-alerts: produced {sent}/{total} ({:.0}/s), {n_crossings} crossings, {alerts} firing alerts received", sent as f64 / started.elapsed().as_secs_f64());
        }
    }

    // Crossings whose window became closable during the load.
    let measurable: usize = crossings
        .values()
        .flatten()
        .filter(|c| c.window_end_ms + opts.out_of_orderness_ms <= last_ts)
        .count();
    let wait_started = Instant::now();
    loop {
        let got = received.lock().expect("lock").len();
        if got >= measurable || wait_started.elapsed() > opts.timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), pipelines).await;
    probe.abort();
    metrics_probe.abort();

    let mut e2e = Vec::new();
    let mut after_close = Vec::new();
    let mut window_on_topic = Vec::new();
    let windows_seen = windows_seen.lock().expect("lock").clone();
    let mut unmatched = 0;
    let got = received.lock().expect("lock").clone();
    let mut by_subject: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (s, at) in got {
        by_subject.entry(s).or_default().push(at);
    }
    for (v, ats) in by_subject {
        let q = crossings.entry(v.clone()).or_default();
        for at in ats {
            let Some(c) = q.pop_front() else {
                unmatched += 1;
                continue;
            };
            if c.window_end_ms + opts.out_of_orderness_ms <= last_ts {
                e2e.push(at - c.produced_ms);
                let closable = c.window_end_ms + opts.out_of_orderness_ms;
                after_close.push(at - closable);
                if let Some(w) = windows_seen.get(&(v.clone(), c.window_end_ms)) {
                    window_on_topic.push(w - closable);
                }
            }
        }
    }
    let missing = measurable.saturating_sub(e2e.len());
    sqlx::query("DELETE FROM alert_rules WHERE id LIKE $1")
        .bind(format!("{tag}-%"))
        .execute(&pool)
        .await?;
    let summary = json!({
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "scope": if fleet_scope { "fleet" } else { "vehicle" },
        "vehicles": vehicles.len(),
        "rate_per_s": opts.rate,
        "seconds": opts.secs,
        "produced": sent,
        "window_ms": opts.window_ms,
        "out_of_orderness_ms": opts.out_of_orderness_ms,
        "checkpoint_interval_ms": opts.checkpoint_interval_ms,
        "partitions": cfg.kafka.partitions,
        "crossings": n_crossings,
        "measurable_crossings": measurable,
        "missing_alerts": missing,
        "unmatched_alerts": unmatched,
        "end_to_end": stats(e2e),
        "after_window_closable": stats(after_close),
        "window_on_metrics_topic_after_closable": stats(window_on_topic),
    });
    eprintln!("bench-alerts: {summary}");
    Ok(summary)
}

/// A vehicle's sample at `ts_ms`, driving (en route) or, with `fault`, faulted with code E42:
/// the live stream of the alert benches and tests.
pub fn driving_sample(
    fleet: &str,
    vehicle: &str,
    seq: i64,
    ts_ms: i64,
    fault: bool,
) -> TelemetryEvent {
    TelemetryEvent {
        event_id: format!("{vehicle}-{seq}"),
        fleet_id: fleet.into(),
        vehicle_id: vehicle.into(),
        ts_ms,
        seq,
        lat: 52.5,
        lon: 13.4,
        speed_kph: 30.0,
        odometer_km: seq as f64 * 0.01,
        energy_pct: 80.0,
        energy_used_kwh: seq as f64 * 0.002,
        status: if fault {
            VehicleStatus::Fault
        } else {
            VehicleStatus::EnRoute
        },
        mission_id: None,
        zone_id: None,
        payload_kg: 0.0,
        fault_codes: if fault { vec!["E42".into()] } else { vec![] },
    }
}
