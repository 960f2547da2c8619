//! Produces simulator output to the telemetry topic (Confluent-framed Avro, key = vehicle id,
//! message timestamp = the simulated send time),
//! and the mission and resource events derived from it (`atlasmesh_simulator::derived`) to their
//! topics (keys: mission id, resource id).

use std::time::{Duration, Instant};

use anyhow::Context;
use atlasmesh_core::config::Config;
use atlasmesh_pipelines::runner::RetryPolicy;
use atlasmesh_schemas::{Codec, SchemaKind};
use atlasmesh_simulator::derived::Deriver;
use atlasmesh_simulator::{Emitted, EventKind, SimConfig, Simulator};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use atlasmesh_sinks::Classify;

/// Registers the telemetry schema and returns its id (so malformed injections can carry it).
pub async fn telemetry_schema_id(codec: &Codec, cfg: &Config) -> anyhow::Result<u32> {
    let ids = codec
        .register_all(&cfg.topics)
        .await
        .map_err(|e| anyhow::anyhow!("registering schemas: {e}"))?;
    let subject = format!("{}-value", cfg.topics.telemetry);
    ids.into_iter()
        .find(|(s, _)| *s == subject)
        .map(|(_, id)| id)
        .context("telemetry schema not registered")
}

/// Encodes emitted items into records for `topic`.
pub async fn encode(
    codec: &Codec,
    topic: &str,
    items: &[Emitted],
) -> anyhow::Result<Vec<OutRecord>> {
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let (key, payload) = match it {
            Emitted::Event { key, event, .. } => (
                key.clone(),
                codec
                    .encode(topic, SchemaKind::Telemetry, event)
                    .await
                    .map_err(|e| anyhow::anyhow!("encode: {e}"))?,
            ),
            Emitted::Malformed { key, bytes, .. } => (key.clone(), bytes.clone()),
        };
        out.push(OutRecord {
            topic: topic.to_string(),
            key: Some(key.into_bytes()),
            payload,
            headers: vec![],
            partition: None,
            // The simulated send time, so a replay range is simulated time.
            timestamp_ms: it.sent_ms(),
        });
    }
    Ok(out)
}

/// The mission and resource event records `items` cause (duplicates and invalid samples
/// cause none).
pub async fn encode_derived(
    codec: &Codec,
    cfg: &Config,
    deriver: &mut Deriver,
    items: &[Emitted],
) -> anyhow::Result<Vec<OutRecord>> {
    let t = &cfg.topics;
    let mut out = Vec::new();
    for it in items {
        let Emitted::Event {
            event,
            kind: EventKind::Normal | EventKind::OutOfOrder | EventKind::Backlog,
            ..
        } = it
        else {
            continue;
        };
        let d = deriver.observe(event);
        for m in &d.missions {
            let payload = codec
                .encode(&t.mission_events, SchemaKind::MissionEvents, m)
                .await
                .map_err(|e| anyhow::anyhow!("encode: {e}"))?;
            out.push(OutRecord {
                topic: t.mission_events.clone(),
                key: Some(m.mission_id.clone().into_bytes()),
                payload,
                headers: vec![],
                partition: None,
                timestamp_ms: it.sent_ms(),
            });
        }
        for r in &d.resources {
            let payload = codec
                .encode(&t.resource_events, SchemaKind::ResourceEvents, r)
                .await
                .map_err(|e| anyhow::anyhow!("encode: {e}"))?;
            out.push(OutRecord {
                topic: t.resource_events.clone(),
                key: Some(r.resource_id.clone().into_bytes()),
                payload,
                headers: vec![],
                partition: None,
                timestamp_ms: it.sent_ms(),
            });
        }
    }
    Ok(out)
}

/// Options of `atlasmesh simulate`.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    pub sim: SimConfig,
    /// Stop after this many items (0 = run until interrupted).
    pub events: u64,
    /// Target items per second (0 = as fast as possible).
    pub rate: u64,
    pub progress: bool,
    /// Also produce the derived mission and resource events.
    pub derived: bool,
    /// With the derived events, the fleets' zone demand.
    pub demand: Option<atlasmesh_simulator::derived::DemandConfig>,
}

/// Runs the simulator and produces to the configured telemetry topic. Returns items produced.
pub async fn run(cfg: &Config, opts: ProduceOptions) -> anyhow::Result<u64> {
    let codec = Codec::new(&cfg.schema_registry.url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let schema_id = telemetry_schema_id(&codec, cfg).await?;
    let producer = KafkaProducer::new(&cfg.kafka)?;
    let mut sim = Simulator::new(opts.sim.clone()).with_schema_id(schema_id);
    let retry = RetryPolicy::from_config(&cfg.runner);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut produced: u64 = 0;
    let mut derived: u64 = 0;
    let mut deriver = match opts.demand.clone() {
        Some(d) => Deriver::with_demand(d),
        None => Deriver::new(),
    };
    let chunk = if opts.rate > 0 {
        (opts.rate / 10).clamp(1, 5000)
    } else {
        5000
    } as usize;
    loop {
        let want = if opts.events > 0 {
            (opts.events - produced).min(chunk as u64) as usize
        } else {
            chunk
        };
        if want == 0 {
            break;
        }
        let items = sim.take(want);
        let mut records = encode(&codec, &cfg.topics.telemetry, &items).await?;
        if opts.derived {
            let extra = encode_derived(&codec, cfg, &mut deriver, &items).await?;
            derived += extra.len() as u64;
            records.extend(extra);
        }
        send_retrying(&producer, &records, retry).await?;
        produced += items.len() as u64;
        if opts.rate > 0 {
            let due = Duration::from_secs_f64(produced as f64 / opts.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        if opts.progress && last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            let rate = produced as f64 / started.elapsed().as_secs_f64();
            match opts.events {
                0 => eprintln!("simulate: {produced} events produced ({rate:.0}/s), {derived} mission/resource events"),
                n => eprintln!("simulate: {produced}/{n} events ({:.1}%, {rate:.0}/s)", produced as f64 * 100.0 / n as f64),
            }
        }
    }
    Ok(produced)
}

/// Sends `records` until the broker acknowledges all of them: a slow or unreachable broker
/// (a delivery timeout, a refused connection) delays the simulation instead of ending it.
/// Waits between attempts as the workers do (`runner.retry_*`); an attempt that times out
/// has already waited `message.timeout.ms`, so the warnings stay rare. A retry sends the
/// whole chunk again, and the records delivered before the failure twice; the pipelines
/// absorb duplicates (telemetry by vehicle, time and sequence number, mission and resource
/// events by their ids). Errors the project classes as not retriable are returned (every
/// Kafka error is retriable in that classification, `atlasmesh_sinks::Error::class`).
async fn send_retrying(
    producer: &KafkaProducer,
    records: &[OutRecord],
    policy: RetryPolicy,
) -> anyhow::Result<()> {
    let mut backoff = policy.backoff();
    loop {
        match producer.send_all("kafka", records).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retriable() => {
                let wait = backoff.next_delay();
                tracing::warn!(
                    error = %e,
                    attempt = backoff.attempts(),
                    retry_in_ms = wait.as_millis() as u64,
                    records = records.len(),
                    "the broker did not acknowledge a chunk of simulated events; sending it again"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use atlasmesh_core::config::{KafkaConfig, RunnerConfig};

    use super::*;

    /// A broker that does not acknowledge (nothing listens on the port) ends every delivery
    /// with librdkafka's timeout after 0.3 s; `send_retrying` sends again instead of
    /// returning that error, for as long as it lasts.
    #[tokio::test]
    async fn an_unacknowledged_chunk_is_sent_again_not_given_up() {
        let mut cfg = KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            ..KafkaConfig::default()
        };
        cfg.properties
            .insert("message.timeout.ms".into(), "300".into());
        let producer = KafkaProducer::new(&cfg).unwrap();
        let records = [OutRecord {
            topic: "atlasmesh-unit.never".into(),
            key: Some(b"v1".to_vec()),
            payload: b"e".to_vec(),
            headers: vec![],
            partition: None,
            timestamp_ms: None,
        }];
        // One send alone fails within the bound...
        let once =
            tokio::time::timeout(Duration::from_secs(3), producer.send_all("unit", &records))
                .await
                .expect("librdkafka gives up on the delivery after 0.3 s");
        assert!(once.is_err(), "{once:?}");
        // ...and the retrying send, with the workers' default policy (0.2 s doubling), is
        // still at it when the same bound is over (four attempts fit in it).
        let policy = RetryPolicy::from_config(&RunnerConfig::default());
        let retried = tokio::time::timeout(
            Duration::from_secs(3),
            send_retrying(&producer, &records, policy),
        )
        .await;
        assert!(retried.is_err(), "returned {retried:?} instead of retrying");
    }
}
