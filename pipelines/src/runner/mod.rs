//! The generic Kafka runner.
//!
//! - `enable.auto.offset.store=false`, `enable.auto.commit=false`: the authoritative offset of a
//!   partition lives in PostgreSQL next to the partition's operator state (`stream_checkpoints`).
//! - A checkpoint first flushes the pipeline's batch to every sink (idempotent writes), then
//!   saves state + next offset of every touched partition in one transaction, then commits the
//!   same offsets to Kafka (for lag tooling only).
//! - On (re)assignment a partition's state is loaded from its checkpoint and the consumer seeks
//!   to the stored offset; messages before it are skipped. A crash therefore replays at most
//!   one batch, which the idempotent sinks absorb.
//! - A sink or dependency that fails with a retriable error pauses the assigned partitions and
//!   retries with backoff while still polling the consumer (so the group does not rebalance);
//!   nothing is dropped.

mod context;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlasmesh_core::config::{Assignment, Config};
use atlasmesh_core::metric_names as m;
use atlasmesh_sinks::postgres::{Checkpoint, CheckpointStore};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use context::RunnerContext;

/// A consumed message, owned.
#[derive(Debug, Clone)]
pub struct InMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

impl InMessage {
    fn from_borrowed(m: &BorrowedMessage<'_>) -> Self {
        InMessage {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
        }
    }

    fn from_owned(m: &OwnedMessage) -> Self {
        InMessage {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
        }
    }
}

/// Handling a message failed in a way a retry can fix (a dependency is down).
#[derive(Debug, thiserror::Error)]
#[error("retry later: {0}")]
pub struct RetryLater(pub String);

/// A pipeline the runner drives. `handle` must not change `state` when it returns an error.
pub trait Pipeline: Send + Sync + 'static {
    type State: Serialize + DeserializeOwned + Default + Send;
    type Batch: Default + Send;

    fn name(&self) -> &str;
    fn topic(&self) -> &str;
    fn handle(
        &self,
        state: &mut Self::State,
        msg: &InMessage,
        batch: &mut Self::Batch,
    ) -> impl Future<Output = Result<(), RetryLater>> + Send;
    /// The partition received nothing for `idle_flush_ms`.
    fn on_idle(&self, state: &mut Self::State, partition: i32, batch: &mut Self::Batch);
    /// Called about every `runner.checkpoint_interval_ms` for a partition that stays idle after
    /// `on_idle` (caught up, nothing received); true when it changed the state.
    fn on_still_idle(
        &self,
        _state: &mut Self::State,
        _partition: i32,
        _batch: &mut Self::Batch,
    ) -> bool {
        false
    }
    /// Called for every partition with state on each runner tick (about every 200 ms,
    /// processing time), whether or not messages arrive: for work a partition owes without
    /// new input (e.g. an operator's manual resolve of an alert it holds). Returns whether it
    /// changed `state` or `batch`.
    fn on_tick(&self, _state: &mut Self::State, _partition: i32, _batch: &mut Self::Batch) -> bool {
        false
    }
    /// Writes the batch durably and idempotently. May be called again with the same batch
    /// after an error.
    fn flush(
        &self,
        batch: &mut Self::Batch,
    ) -> impl Future<Output = atlasmesh_sinks::Result<()>> + Send;
    fn batch_len(&self, batch: &Self::Batch) -> usize;
}

struct PartState<S> {
    state: S,
    next_offset: i64,
    last_msg: Instant,
    idle_flushed: bool,
    /// When `on_idle` or `on_still_idle` last ran.
    idle_since: Instant,
    dirty: bool,
}

struct Runner<'a, P: Pipeline> {
    p: Arc<P>,
    cfg: &'a Config,
    consumer: StreamConsumer<RunnerContext>,
    store: CheckpointStore,
    parts: HashMap<i32, PartState<P::State>>,
    batch: P::Batch,
    deferred: VecDeque<OwnedMessage>,
    paused: bool,
    last_checkpoint: Instant,
}

/// Consumes the pipeline's topic until `shutdown` turns true, then checkpoints and returns.
pub async fn run<P: Pipeline>(
    p: Arc<P>,
    cfg: &Config,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let group = format!("{}.{}", cfg.kafka.group_prefix, p.name());
    let ctx = RunnerContext::new(p.name());
    let mut cc = atlasmesh_sinks::kafka::client_config(&cfg.kafka);
    cc.set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "300000")
        .set("statistics.interval.ms", "1000");
    let consumer: StreamConsumer<RunnerContext> = cc.create_with_context(ctx)?;
    let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 4).await?;
    let store = CheckpointStore::new(pool, p.name());
    match cfg.kafka.assignment {
        Assignment::Group => consumer.subscribe(&[p.topic()])?,
        Assignment::Manual => {
            assign_manually(&consumer, &store, p.topic(), &cfg.kafka.assigned_partitions).await?
        }
    }
    info!(pipeline = %p.name(), topic = %p.topic(), group = %group, "Pipeline started.");
    let mut r = Runner {
        p,
        cfg,
        consumer,
        store,
        parts: HashMap::new(),
        batch: P::Batch::default(),
        deferred: VecDeque::new(),
        paused: false,
        last_checkpoint: Instant::now(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        r.drop_revoked();
        if let Some(m) = r.deferred.pop_front() {
            r.on_message(InMessage::from_owned(&m)).await;
            r.maybe_checkpoint(false).await;
            continue;
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    r.checkpoint().await;
                    info!(pipeline = %r.p.name(), "Pipeline stopped.");
                    return Ok(());
                }
            }
            _ = tick.tick() => {
                r.adopt_assigned().await;
                r.check_idle();
                r.tick_partitions();
                r.maybe_checkpoint(false).await;
            }
            msg = r.consumer.recv() => match msg {
                Ok(m) => {
                    let m = InMessage::from_borrowed(&m);
                    r.on_message(m).await;
                    r.maybe_checkpoint(false).await;
                }
                Err(e) => {
                    warn!(pipeline = %r.p.name(), error = %e, "Kafka consume error.");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
}

/// Assigns `partitions` (all of the topic's when empty) starting at their checkpoints.
async fn assign_manually(
    consumer: &StreamConsumer<RunnerContext>,
    store: &CheckpointStore,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<()> {
    let partitions: Vec<i32> = if partitions.is_empty() {
        atlasmesh_sinks::kafka::topic_partitions(consumer.client(), topic)?
    } else {
        partitions.to_vec()
    };
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let offset = match store.load(topic, *p).await? {
            Some(c) => Offset::Offset(c.next_offset),
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(topic, *p, offset)?;
    }
    consumer.assign(&tpl)?;
    info!(topic, partitions = ?partitions, "Partitions assigned manually (no consumer group membership).");
    Ok(())
}

impl<P: Pipeline> Runner<'_, P> {
    fn drop_revoked(&mut self) {
        for partition in self.consumer.context().take_revoked() {
            if self.parts.remove(&partition).is_some() {
                info!(pipeline = %self.p.name(), partition, "Partition revoked; state dropped (its checkpoint stays authoritative).");
            }
        }
    }

    /// Runs `op` until it succeeds, pausing the assignment and polling meanwhile. Stops early
    /// (returning `None`) only when `op` fails with a non-retriable error.
    async fn retry<T, E, F, Fut>(&mut self, what: &str, mut op: F) -> Option<T>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, (E, bool)>>,
    {
        let mut backoff = Duration::from_millis(self.cfg.runner.retry_initial_ms);
        let max = Duration::from_millis(self.cfg.runner.retry_max_ms);
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(v) => {
                    if attempt > 0 {
                        info!(pipeline = %self.p.name(), what, attempts = attempt + 1, "Recovered; resuming.");
                    }
                    self.resume();
                    return Some(v);
                }
                Err((e, retriable)) => {
                    if !retriable {
                        warn!(pipeline = %self.p.name(), what, error = %e, "Non-retriable error.");
                        return None;
                    }
                    attempt += 1;
                    warn!(pipeline = %self.p.name(), what, error = %e, attempt, backoff_ms = backoff.as_millis() as u64, "Dependency unavailable; pausing consumption and retrying.");
                    self.pause();
                    self.poll_for(backoff).await;
                    backoff = (backoff * 2).min(max);
                }
            }
        }
    }

    /// Keeps the consumer polled (group membership) for `d`, stashing anything delivered.
    async fn poll_for(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(r) = tokio::time::timeout_at(deadline, self.consumer.recv()).await {
            if let Ok(m) = r {
                self.deferred.push_back(m.detach());
            }
        }
    }

    fn pause(&mut self) {
        if self.paused {
            return;
        }
        if let Ok(a) = self.consumer.assignment() {
            if self.consumer.pause(&a).is_ok() {
                self.paused = true;
                metrics::gauge!(m::PARTITIONS_PAUSED, "pipeline" => self.p.name().to_string())
                    .set(a.count() as f64);
            }
        }
    }

    fn resume(&mut self) {
        if !self.paused {
            return;
        }
        if let Ok(a) = self.consumer.assignment() {
            let _ = self.consumer.resume(&a);
        }
        self.paused = false;
        metrics::gauge!(m::PARTITIONS_PAUSED, "pipeline" => self.p.name().to_string()).set(0.0);
    }

    /// Loads the checkpointed state of every assigned partition that has none in memory yet.
    ///
    /// Eager, not on the first message: a partition whose checkpoint is already at the end of
    /// the log receives no message after a restart, yet its open windows must still close when
    /// it is idle.
    async fn adopt_assigned(&mut self) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let topic = self.p.topic().to_string();
        let missing: Vec<i32> = assignment
            .elements_for_topic(&topic)
            .iter()
            .map(|e| e.partition())
            .filter(|p| !self.parts.contains_key(p))
            .collect();
        for partition in missing {
            self.load_partition(&topic, partition, None).await;
        }
    }

    /// Loads a partition's state and offset from its checkpoint and positions the consumer
    /// there. `first_offset` is the offset of a message already delivered, if any.
    async fn load_partition(&mut self, topic: &str, partition: i32, first_offset: Option<i64>) {
        let store = self.store.clone();
        let t = topic.to_string();
        let loaded = self
            .retry("load checkpoint", || {
                let store = store.clone();
                let t = t.clone();
                async move {
                    store.load(&t, partition).await.map_err(|e| {
                        let r = e.is_retriable();
                        (e, r)
                    })
                }
            })
            .await
            .flatten();
        let (state, next_offset) = match loaded {
            Some(c) => match bincode::deserialize::<P::State>(&c.state) {
                Ok(s) => (s, c.next_offset),
                Err(e) => {
                    // Refuse to guess: a state we cannot read must be looked at by a human.
                    panic!("checkpoint of {topic}/{partition} is unreadable ({e}); refusing to continue");
                }
            },
            None => (P::State::default(), 0),
        };
        info!(pipeline = %self.p.name(), partition, next_offset, "Partition assigned; state loaded.");
        let behind = first_offset.is_none_or(|o| o < next_offset);
        if behind && next_offset > 0 {
            // Messages before the checkpoint are skipped in `on_message` whether or not the
            // seek succeeds (it can fail right after a group assignment).
            if let Err(e) = self.consumer.seek(
                topic,
                partition,
                Offset::Offset(next_offset),
                Duration::from_secs(5),
            ) {
                debug!(partition, error = %e, "Seek failed; skipping up to the checkpoint instead.");
            }
        } else if let Some(o) = first_offset.filter(|o| *o > next_offset && next_offset > 0) {
            warn!(pipeline = %self.p.name(), partition, expected = next_offset, got = o, "Offsets between the checkpoint and the first message are gone (retention?).");
        }
        // `idle_flushed: false`: a partition already at its end closes its windows once idle.
        self.parts.insert(
            partition,
            PartState {
                state,
                next_offset,
                last_msg: Instant::now(),
                idle_flushed: false,
                idle_since: Instant::now(),
                dirty: false,
            },
        );
    }

    async fn on_message(&mut self, msg: InMessage) {
        let partition = msg.partition;
        if !self.parts.contains_key(&partition) {
            self.load_partition(&msg.topic.clone(), partition, Some(msg.offset))
                .await;
        }
        if msg.offset < self.parts[&partition].next_offset {
            return; // already reflected in the checkpointed state
        }
        metrics::counter!(m::EVENTS_CONSUMED, "pipeline" => self.p.name().to_string()).increment(1);
        loop {
            let p = self.p.clone();
            let st = self.parts.get_mut(&partition).expect("partition state");
            match p.handle(&mut st.state, &msg, &mut self.batch).await {
                Ok(()) => break,
                Err(e) => {
                    warn!(pipeline = %self.p.name(), partition, offset = msg.offset, error = %e, "Message handling must wait for a dependency; pausing.");
                    self.pause();
                    self.poll_for(Duration::from_millis(
                        self.cfg.runner.retry_max_ms.min(1000),
                    ))
                    .await;
                }
            }
        }
        self.resume();
        let st = self.parts.get_mut(&partition).expect("partition state");
        st.next_offset = msg.offset + 1;
        st.last_msg = Instant::now();
        st.idle_flushed = false;
        st.dirty = true;
    }

    fn tick_partitions(&mut self) {
        let p = self.p.clone();
        for (partition, st) in self.parts.iter_mut() {
            if p.on_tick(&mut st.state, *partition, &mut self.batch) {
                st.dirty = true;
            }
        }
    }

    fn check_idle(&mut self) {
        let idle = Duration::from_millis(self.cfg.telemetry.idle_flush_ms);
        let repeat = Duration::from_millis(self.cfg.runner.checkpoint_interval_ms);
        let p = self.p.clone();
        let topic = p.topic().to_string();
        for (partition, st) in self.parts.iter_mut() {
            if st.idle_flushed {
                if st.idle_since.elapsed() >= repeat {
                    st.idle_since = Instant::now();
                    st.dirty |= p.on_still_idle(&mut st.state, *partition, &mut self.batch);
                }
                continue;
            }
            if st.last_msg.elapsed() < idle {
                continue;
            }
            // Idle means caught up, not merely starved while other partitions are consumed:
            // the cached high watermark must be reached.
            let caught_up = self
                .consumer
                .context()
                .high_watermark(&topic, *partition)
                .is_some_and(|high| st.next_offset >= high);
            if caught_up {
                p.on_idle(&mut st.state, *partition, &mut self.batch);
                st.idle_flushed = true;
                st.idle_since = Instant::now();
                st.dirty = true;
                debug!(pipeline = %p.name(), partition, "Partition idle; open windows closed.");
            }
        }
    }

    async fn maybe_checkpoint(&mut self, force: bool) {
        let due = self.last_checkpoint.elapsed()
            >= Duration::from_millis(self.cfg.runner.checkpoint_interval_ms);
        if force || due || self.p.batch_len(&self.batch) >= self.cfg.runner.max_batch_events {
            self.checkpoint().await;
        }
    }

    /// Flush sinks, then save state + offsets, then commit to Kafka.
    async fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if !self.parts.values().any(|s| s.dirty) && self.p.batch_len(&self.batch) == 0 {
            return;
        }
        let started = Instant::now();
        let mut batch = std::mem::take(&mut self.batch);
        let p = self.p.clone();
        let batch_ref = &mut batch;
        let attempts = {
            let mut backoff = Duration::from_millis(self.cfg.runner.retry_initial_ms);
            let max = Duration::from_millis(self.cfg.runner.retry_max_ms);
            let mut attempts = 0u32;
            loop {
                match p.flush(batch_ref).await {
                    Ok(()) => break attempts,
                    Err(e) => {
                        attempts += 1;
                        warn!(pipeline = %p.name(), error = %e, retriable = e.is_retriable(), attempt = attempts, "Sink write failed; pausing consumption and retrying the batch.");
                        self.pause();
                        self.poll_for(backoff).await;
                        backoff = (backoff * 2).min(max);
                    }
                }
            }
        };
        if attempts > 0 {
            info!(pipeline = %p.name(), attempts = attempts + 1, "Sinks recovered; batch written.");
        }
        let topic = p.topic().to_string();
        let checkpoints: Vec<Checkpoint> = self
            .parts
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(partition, s)| Checkpoint {
                topic: topic.clone(),
                partition: *partition,
                next_offset: s.next_offset,
                state: bincode::serialize(&s.state).expect("state serialises"),
            })
            .collect();
        let store = self.store.clone();
        let cps = Arc::new(checkpoints);
        let saved = self
            .retry("save checkpoint", || {
                let store = store.clone();
                let cps = cps.clone();
                async move { store.save(&cps).await.map_err(|e| (e, true)) }
            })
            .await;
        if saved.is_none() {
            return;
        }
        self.resume();
        let mut tpl = TopicPartitionList::new();
        for c in cps.iter() {
            if let Some(s) = self.parts.get_mut(&c.partition) {
                s.dirty = false;
            }
            let _ = tpl.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.next_offset));
            self.consumer
                .context()
                .set_checkpointed(c.partition, c.next_offset);
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                debug!(error = %e, "Kafka offset commit failed (informational only).");
            }
        }
        metrics::counter!(m::CHECKPOINTS, "pipeline" => p.name().to_string()).increment(1);
        metrics::histogram!(m::CHECKPOINT_SECONDS, "pipeline" => p.name().to_string())
            .record(started.elapsed().as_secs_f64());
    }
}
