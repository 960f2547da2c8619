use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use atlasmesh_core::metric_names as m;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use tracing::info;

/// Consumer context: records revoked partitions for the runner loop and publishes consumer lag
/// (high watermark − checkpointed offset) per partition from librdkafka statistics.
pub struct RunnerContext {
    pipeline: String,
    revoked: Mutex<Vec<i32>>,
    /// Whether `revoked` holds partitions (changed under its lock): the loop asks after
    /// every message, and reading a flag costs less than taking the lock.
    any_revoked: AtomicBool,
    checkpointed: Mutex<HashMap<i32, i64>>,
    /// Topic → partition → high watermark (looked up without building a key).
    high_watermarks: Mutex<HashMap<String, HashMap<i32, i64>>>,
}

impl RunnerContext {
    pub fn new(pipeline: &str) -> Self {
        RunnerContext {
            pipeline: pipeline.to_string(),
            revoked: Mutex::new(Vec::new()),
            any_revoked: AtomicBool::new(false),
            checkpointed: Mutex::new(HashMap::new()),
            high_watermarks: Mutex::new(HashMap::new()),
        }
    }

    /// The partitions revoked since the last call (none without taking the lock when no
    /// rebalance revoked any).
    pub fn take_revoked(&self) -> Vec<i32> {
        if !self.any_revoked.load(Ordering::Acquire) {
            return Vec::new();
        }
        // The flag changes only under the lock, so it is set whenever the list is not empty.
        let mut revoked = self.revoked.lock().expect("lock");
        self.any_revoked.store(false, Ordering::Relaxed);
        std::mem::take(&mut *revoked)
    }

    /// The partition's high watermark as of the last statistics report (refreshed every second).
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.high_watermarks
            .lock()
            .expect("lock")
            .get(topic)
            .and_then(|t| t.get(&partition))
            .copied()
    }

    pub fn set_checkpointed(&self, partition: i32, next_offset: i64) {
        self.checkpointed
            .lock()
            .expect("lock")
            .insert(partition, next_offset);
    }
}

impl ClientContext for RunnerContext {
    fn stats(&self, stats: Statistics) {
        let checkpointed = self.checkpointed.lock().expect("lock").clone();
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                self.high_watermarks
                    .lock()
                    .expect("lock")
                    .entry(topic.clone())
                    .or_default()
                    .insert(*partition, p.hi_offset);
                let Some(done) = checkpointed.get(partition) else {
                    continue;
                };
                let lag = (p.hi_offset - done).max(0);
                metrics::gauge!(m::CONSUMER_LAG, "pipeline" => self.pipeline.clone(), "topic" => topic.clone(), "partition" => partition.to_string())
                    .set(lag as f64);
            }
        }
    }
}

impl ConsumerContext for RunnerContext {
    fn pre_rebalance(&self, _c: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(pipeline = %self.pipeline, partitions = ?parts, "Partitions revoked.");
                let mut revoked = self.revoked.lock().expect("lock");
                revoked.extend(parts);
                self.any_revoked.store(true, Ordering::Release);
            }
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(pipeline = %self.pipeline, partitions = ?parts, "Partitions assigned.");
            }
            Rebalance::Error(e) => {
                tracing::warn!(pipeline = %self.pipeline, error = %e, "Rebalance error.")
            }
        }
    }
}
