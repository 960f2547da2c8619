//! Kafka: client configuration, topic creation, and a producer that waits for every delivery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlasmesh_core::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use tokio::sync::oneshot;

use crate::{observe, Error, Result};

/// Base client configuration from [`KafkaConfig`].
/// How long librdkafka waits before reconnecting to a broker that went away, doubling up to
/// the max (its own defaults, 100 ms to 10 s, leave a client idle for up to 10 s after the
/// broker is back); `kafka.properties` may override them.
const RECONNECT: [(&str, &str); 2] = [
    ("reconnect.backoff.ms", "100"),
    ("reconnect.backoff.max.ms", "1000"),
];

pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("fetch.wait.max.ms", cfg.fetch_wait_max_ms.to_string())
        .set("socket.keepalive.enable", "true");
    for (k, v) in RECONNECT {
        c.set(k, v);
    }
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.messages", "1000000");
    for (k, v) in RECONNECT {
        c.set(k, v);
    }
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

/// Creates the topics that are missing (existing ones are left as they are).
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[&str], partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(cfg).create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin.create_topics(&new, &opts).await? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(Error::Other(format!("creating topic {t}: {code}"))),
        }
    }
    Ok(())
}

/// The partition ids of `topic` from the broker's metadata (blocking, up to 10 s); an error
/// when the topic is missing or has none.
pub fn topic_partitions<C: ClientContext>(client: &Client<C>, topic: &str) -> Result<Vec<i32>> {
    let md = client.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let ids: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if ids.is_empty() {
        return Err(Error::Other(format!(
            "topic {topic} has no partitions (does it exist?)"
        )));
    }
    Ok(ids)
}

/// A record to produce.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// An explicit partition (`None`: the partitioner picks one from the key).
    pub partition: Option<i32>,
    /// The message timestamp, epoch ms (`None`: the producer's clock at send). Replay looks
    /// ranges up by it (`offsets_for_times`).
    pub timestamp_ms: Option<i64>,
}

/// Completes each record's delivery channel with librdkafka's verdict.
struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<oneshot::Sender<std::result::Result<(), KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        // The receiver is gone only when `send_all` was dropped mid-batch; nothing waits.
        let _ = tx.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// A producer whose delivery reports are served by a thread of its own, like rdkafka's
/// `FutureProducer`, but polling in periods of a second rather than 100 ms: rdkafka's poll
/// rounds the time left down to whole milliseconds and so spins through the last one of each
/// period, a fixed ~1 % of a core in every process holding a producer, busy or idle (0.1 %
/// now). Reports are served as they arrive either way: a poll handles each event when it is
/// queued and waits again until its period is over.
#[derive(Clone)]
pub struct KafkaProducer {
    inner: Arc<Served>,
}

const POLL_PERIOD: Duration = Duration::from_secs(1);

/// The producer and its serving thread's stop flag. Dropping the last clone stops the thread
/// within a poll period without waiting for it; the thread then drops the producer, which
/// purges and flushes what is still queued (nothing is: `send_all` waits for every delivery).
struct Served {
    producer: Arc<BaseProducer<Deliveries>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl KafkaProducer {
    pub fn new(cfg: &KafkaConfig) -> Result<Self> {
        let producer: Arc<BaseProducer<Deliveries>> =
            Arc::new(producer_config(cfg).create_with_context(Deliveries)?);
        let stop = Arc::new(AtomicBool::new(false));
        {
            let producer = Arc::clone(&producer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("kafka-producer".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        producer.poll(POLL_PERIOD);
                    }
                })
                .map_err(|e| Error::Other(format!("starting the producer's thread: {e}")))?;
        }
        Ok(KafkaProducer {
            inner: Arc::new(Served { producer, stop }),
        })
    }

    /// The number of partitions of `topic`, from the broker's metadata.
    pub async fn partition_count(&self, topic: &str) -> Result<i32> {
        let producer = Arc::clone(&self.inner.producer);
        let t = topic.to_string();
        let ids = tokio::task::spawn_blocking(move || topic_partitions(producer.client(), &t))
            .await
            .map_err(|e| Error::Other(format!("metadata task: {e}")))??;
        Ok(ids.len() as i32)
    }

    /// Produces every record and waits until all are acknowledged. On error some may have
    /// been written: callers retry the whole batch (downstream dedups by key and version).
    pub async fn send_all(&self, sink: &'static str, records: &[OutRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let (tx, rx) = oneshot::channel();
            let mut rec: BaseRecord<'_, [u8], [u8], _> =
                BaseRecord::with_opaque_to(&r.topic, Box::new(tx))
                    .payload(&r.payload[..])
                    .headers(headers);
            if let Some(k) = &r.key {
                rec = rec.key(&k[..]);
            }
            if let Some(p) = r.partition {
                rec = rec.partition(p);
            }
            if let Some(ts) = r.timestamp_ms {
                rec = rec.timestamp(ts);
            }
            // A full local queue is back-pressure: wait and try again, never drop.
            loop {
                match self.inner.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        let r = Err(e.into());
                        observe(sink, 0, started, &r);
                        return r;
                    }
                }
            }
            pending.push(rx);
        }
        let mut result = Ok(());
        for f in pending {
            match f.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(Error::Kafka(e)),
                Err(_) => result = Err(Error::Unavailable("delivery future cancelled".into())),
            }
        }
        observe(sink, records.len(), started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer pointed at a port nothing listens on: librdkafka connects lazily, so it
    /// starts, and every delivery fails once `message.timeout.ms` is over.
    fn unreachable(timeout_ms: u32) -> KafkaConfig {
        let mut cfg = KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            ..KafkaConfig::default()
        };
        cfg.properties
            .insert("message.timeout.ms".into(), timeout_ms.to_string());
        cfg
    }

    #[tokio::test]
    async fn a_failed_delivery_is_reported_not_lost() {
        let producer = KafkaProducer::new(&unreachable(300)).unwrap();
        let record = OutRecord {
            topic: "atlasmesh-unit.never".into(),
            key: Some(b"k".to_vec()),
            payload: b"v".to_vec(),
            headers: vec![("h".into(), b"1".to_vec())],
            partition: None,
            timestamp_ms: Some(1_700_000_000_000),
        };
        let started = Instant::now();
        let r = producer.send_all("unit", &[record.clone(), record]).await;
        // The serving thread delivered librdkafka's verdict (a timeout), not a cancelled
        // channel; the bound only says it came (the message timeout is 0.3 s).
        assert!(matches!(r, Err(Error::Kafka(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn the_serving_thread_ends_with_the_last_clone() {
        let producer = KafkaProducer::new(&unreachable(300)).unwrap();
        // The serving thread holds the other strong reference; it lets go when it ends.
        let held = Arc::downgrade(&producer.inner.producer);
        assert_eq!(held.strong_count(), 2);
        let clone = producer.clone();
        drop(producer);
        std::thread::sleep(POLL_PERIOD * 2);
        assert_eq!(held.strong_count(), 2, "a clone still uses it");
        drop(clone);
        let deadline = Instant::now() + POLL_PERIOD * 5;
        while held.strong_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            held.strong_count(),
            0,
            "the thread ended and the producer is gone"
        );
    }
}
