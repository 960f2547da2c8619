//! Kafka: client configuration, topic creation, and a producer that waits for every delivery.

use std::time::{Duration, Instant};

use atlasmesh_core::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

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

#[derive(Clone)]
pub struct KafkaProducer {
    producer: FutureProducer,
}

impl KafkaProducer {
    pub fn new(cfg: &KafkaConfig) -> Result<Self> {
        Ok(KafkaProducer {
            producer: producer_config(cfg).create()?,
        })
    }

    pub fn inner(&self) -> &FutureProducer {
        &self.producer
    }

    /// The number of partitions of `topic`, from the broker's metadata.
    pub async fn partition_count(&self, topic: &str) -> Result<i32> {
        let producer = self.producer.clone();
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
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&r.topic)
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
            let fut = loop {
                match self.producer.send_result(rec) {
                    Ok(f) => break f,
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
            };
            pending.push(fut);
        }
        let mut result = Ok(());
        for f in pending {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => result = Err(Error::Kafka(e)),
                Err(_) => result = Err(Error::Unavailable("delivery future cancelled".into())),
            }
        }
        observe(sink, records.len(), started, &result);
        result
    }
}
