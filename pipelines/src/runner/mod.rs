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
//! - A sink or dependency that fails with a retriable error ([`Classify`]) pauses the assigned
//!   partitions and retries with the [`RetryPolicy`] while still polling the consumer (so the
//!   group does not rebalance); nothing is dropped. A non-retriable error stops the pipeline
//!   with an error (it resumes from its last checkpoint once restarted), and shutdown stops
//!   the retries.
//! - Each pipeline sets its own tick and idle time ([`Pipeline::tick_interval`],
//!   [`Pipeline::idle_flush`], from its config section) and may run background tasks
//!   ([`Pipeline::background`]) that end with it.

mod chain;
mod context;
pub mod replay;
mod retry;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlasmesh_core::config::{Assignment, Config, KafkaConfig};
use atlasmesh_core::metric_names as m;
use atlasmesh_core::Classify;
use atlasmesh_sinks::postgres::{Checkpoint, CheckpointStore, LeaseStore};
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

pub use chain::Chain;
pub use context::RunnerContext;
pub use retry::{requested, Backoff, RetryPolicy};

use crate::ready::Dependency;
use crate::{Error, Result};

/// A consumed message, borrowed from the consumer's buffer until a pipeline keeps part of it
/// (a dead letter copies the bytes it needs).
#[derive(Debug, Clone)]
pub struct InMessage<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The record's headers, in order, when the pipeline reads them ([`Pipeline::HEADERS`]);
    /// empty otherwise (without allocating), and when it has none.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl<'a> InMessage<'a> {
    /// `headers`: whether to read them (librdkafka parses a message's header block, with
    /// allocations, at the first look).
    fn from_borrowed(m: &'a BorrowedMessage<'_>, headers: bool) -> Self {
        InMessage {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload(),
            headers: headers
                .then(|| m.headers().map(owned_headers))
                .flatten()
                .unwrap_or_default(),
        }
    }

    fn from_owned(m: &'a OwnedMessage, headers: bool) -> Self {
        InMessage {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload(),
            headers: headers
                .then(|| m.headers().map(owned_headers))
                .flatten()
                .unwrap_or_default(),
        }
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

fn owned_headers(h: &impl rdkafka::message::Headers) -> Vec<(String, Vec<u8>)> {
    h.iter()
        .map(|h| {
            (
                h.key.to_string(),
                h.value.map(<[u8]>::to_vec).unwrap_or_default(),
            )
        })
        .collect()
}

/// A pipeline's processing-time cadence, from its own config section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// How often the runner ticks (idle checks, [`Pipeline::on_tick`]).
    pub tick: Duration,
    /// How long a partition receives nothing before it counts as idle.
    pub idle_flush: Duration,
}

impl Cadence {
    /// `tick_ms` and `idle_flush_ms` of a pipeline's section; an unset `idle_flush_ms` falls
    /// back to `telemetry.idle_flush_ms`.
    pub fn new(cfg: &Config, tick_ms: u64, idle_flush_ms: Option<u64>) -> Cadence {
        Cadence {
            tick: Duration::from_millis(tick_ms.max(1)),
            idle_flush: Duration::from_millis(idle_flush_ms.unwrap_or(cfg.telemetry.idle_flush_ms)),
        }
    }
}

/// A task a pipeline runs beside its runner (a refresh, a periodic computation). It must end
/// once the shutdown it was given turns true.
pub type Background = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A pipeline the runner drives. `handle` must not change `state` when it returns an error.
pub trait Pipeline: Sized + Send + Sync + 'static {
    /// The pipeline's name: consumer group suffix, checkpoint key, metric label.
    const NAME: &'static str;
    type State: Serialize + DeserializeOwned + Default + Send;
    type Batch: Default + Send;

    /// Connects the pipeline's stores and reads its configuration.
    fn build(cfg: &Config) -> impl Future<Output = Result<Self>> + Send;
    fn topic(&self) -> &str;
    /// How often the runner ticks for this pipeline (`<pipeline>.tick_ms`).
    fn tick_interval(&self) -> Duration;
    /// How long a partition receives nothing before [`Pipeline::on_idle`]
    /// (`<pipeline>.idle_flush_ms`).
    fn idle_flush(&self) -> Duration;
    /// Tasks to run beside the runner; each ends when `shutdown` turns true (or, at the
    /// latest, when the runner has stopped).
    fn background(&self, _cfg: &Config, _shutdown: watch::Receiver<bool>) -> Vec<Background> {
        Vec::new()
    }
    fn handle(
        &self,
        state: &mut Self::State,
        msg: &InMessage<'_>,
        batch: &mut Self::Batch,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The partition received nothing for [`Pipeline::idle_flush`].
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
    /// Called for every partition with state on each runner tick
    /// ([`Pipeline::tick_interval`], processing time), whether or not messages arrive: for
    /// work a partition owes without new input (e.g. an operator's manual resolve of an alert
    /// it holds). Returns whether it changed `state` or `batch`.
    fn on_tick(&self, _state: &mut Self::State, _partition: i32, _batch: &mut Self::Batch) -> bool {
        false
    }
    /// Writes the batch durably and idempotently. May be called again with the same batch
    /// after an error.
    fn flush(&self, batch: &mut Self::Batch) -> impl Future<Output = Result<()>> + Send;
    fn batch_len(&self, batch: &Self::Batch) -> usize;
    /// Empties a flushed batch for the next one. The default drops it; a pipeline whose
    /// batches are big keeps their buffers (no regrowing and page faults every checkpoint).
    fn recycle(&self, batch: &mut Self::Batch) {
        *batch = Self::Batch::default();
    }
    /// Whether `batch` holds outputs others wait on (closed windows, alert transitions): the
    /// runner then checkpoints `runner.urgent_flush_ms` after it first holds one, instead of
    /// at the next checkpoint interval.
    fn urgent(&self, _batch: &Self::Batch) -> bool {
        false
    }

    /// What `atlasmesh replay` of this pipeline writes again (for its log), or `None` (the
    /// default) when its outputs are events others act on (pages, command results) rather
    /// than versioned rows, so a replay would repeat them: such a pipeline is rebuilt with
    /// `atlasmesh reset` instead. See [`replay`].
    const REPLAY: Option<&'static str> = None;

    /// Whether `handle` reads the messages' headers ([`InMessage::headers`]); the runner
    /// leaves them unread (empty) otherwise.
    const HEADERS: bool = false;

    /// Removes from `batch` what a replay must not write again (caches of the newest state,
    /// topic outputs); called before each flush of a replay.
    fn keep_for_replay(&self, _batch: &mut Self::Batch) {}

    /// Reads a checkpointed state (bincode, as the runner writes it). A pipeline whose state
    /// layout changed reads the earlier layouts here too, so an upgrade keeps its state.
    fn decode_state(&self, bytes: &[u8]) -> Result<Self::State> {
        bincode::deserialize(bytes).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Incremental checkpoints: start recording the changes to `state` from now on (called
    /// once its full state was saved or loaded). A pipeline that records none (the default)
    /// saves its whole state at every checkpoint.
    fn start_delta(&self, _state: &mut Self::State) {}

    /// The changes to `state` since [`Pipeline::start_delta`] or the previous call, serialised
    /// (and the recording restarts); `None` saves the whole state instead.
    fn take_delta(&self, _state: &mut Self::State) -> Option<Vec<u8>> {
        None
    }

    /// Applies a delta [`Pipeline::take_delta`] returned to a state equal to the one it was
    /// taken from, giving the state it was taken at.
    fn apply_delta(&self, _state: &mut Self::State, _delta: &[u8]) -> Result<()> {
        Err(Error::Internal(format!(
            "pipeline {} saves no deltas, yet its checkpoint has some",
            Self::NAME
        )))
    }
}

/// Why the runner loop ends before shutdown's final checkpoint.
enum Stop {
    /// Shutdown was requested while waiting for a dependency.
    Shutdown,
    /// A non-retriable error.
    Failed(Error),
}

type Step<T = ()> = std::result::Result<T, Stop>;

/// Whether the batch holds outputs others wait on ([`Pipeline::urgent`]), as first seen.
/// Deadlines, not start times: the loop asks after every message, and comparing two
/// instants costs less than a duration between them.
#[derive(Debug, Clone, Copy)]
enum Urgency {
    /// None so far.
    Calm,
    /// Seen with the partitions caught up: checkpoint at this instant
    /// (`runner.urgent_flush_ms` after).
    FlushAt(Instant),
    /// While catching up on a backlog: the regular interval, so the batches stay big (or
    /// `FlushAt` once a later look, at most every [`URGENT_RECHECK`], finds the partitions
    /// caught up).
    Deferred { look_again: Instant },
}

/// How often a deferred urgent batch looks again whether the partitions are caught up: the
/// high watermarks are those of the last statistics report, which the worker passes within a
/// fetch or two of it.
const URGENT_RECHECK: Duration = Duration::from_millis(5);

/// Messages the consume loop takes while they are already fetched before it looks at
/// shutdown, the urgent flush and the tick again.
const DRAIN: u32 = 256;

/// In a run of messages already fetched, the loop reads the clock once per this many: the
/// questions it answers (checkpoint due, urgent flush, idle) are about milliseconds, and a
/// message takes about a microsecond.
const CLOCK_EVERY: u32 = 16;

/// An error the consumer delivered instead of a message: logged, and a short pause.
async fn consume_error(pipeline: &'static str, e: rdkafka::error::KafkaError) {
    warn!(pipeline, error = %e, "Kafka consume error.");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

struct PartState<S> {
    state: S,
    next_offset: i64,
    last_msg: Instant,
    idle_flushed: bool,
    /// When `on_idle` or `on_still_idle` last ran.
    idle_since: Instant,
    dirty: bool,
    /// No checkpoint: the consumer must be moved to the configured start before anything of
    /// this partition is used (in group mode it otherwise resumes from Kafka's committed
    /// position with empty state). Cleared once the seek succeeded.
    seek_to_start: Option<Offset>,
    /// When this process last kept a snapshot of the partition's checkpoint.
    snapshot_at: Option<Instant>,
    /// What PostgreSQL holds of the partition's checkpoint.
    chain: Chain,
}

struct Runner<'a, P: Pipeline> {
    p: Arc<P>,
    cfg: &'a Config,
    /// Shared so a message can borrow from it while the runner changes its own fields.
    consumer: Arc<StreamConsumer<RunnerContext>>,
    store: CheckpointStore,
    /// By partition: a handful, found faster by comparison than by hashing.
    parts: BTreeMap<i32, PartState<P::State>>,
    batch: P::Batch,
    deferred: VecDeque<OwnedMessage>,
    paused: bool,
    /// When the next regular checkpoint is due (`runner.checkpoint_interval_ms` after the
    /// last).
    checkpoint_due: Instant,
    /// Whether the batch holds outputs others wait on ([`Pipeline::urgent`]).
    urgency: Urgency,
    /// `events_consumed_total` of this pipeline (the handle, not a lookup per message).
    consumed: metrics::Counter,
    shutdown: watch::Receiver<bool>,
    /// Sink writes and checkpoint loads/saves.
    policy: RetryPolicy,
    /// Handling a message: its own wait (e.g. for a command lane) comes on top, so the
    /// delays stay short.
    handle_policy: RetryPolicy,
    /// Manual assignment: the leases of the assigned partitions.
    leases: Option<Leases>,
}

/// Builds `P`, starts its background tasks and returns the future that runs it until
/// `shutdown` turns true (or it fails). Building happens now, so a pipeline that cannot start
/// is an error before anything runs.
pub async fn start<P: Pipeline>(
    cfg: Arc<Config>,
    shutdown: watch::Receiver<bool>,
) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
    let policy = RetryPolicy::from_config(&cfg.runner);
    let mut sd = shutdown.clone();
    let p = starting(P::NAME, "build", policy, &mut sd, || P::build(&cfg))
        .await?
        .map(Arc::new);
    let mut background = JoinSet::new();
    if let Some(p) = &p {
        for task in p.background(&cfg, shutdown.clone()) {
            background.spawn(task);
        }
    }
    Ok(async move {
        let Some(p) = p else {
            info!(
                pipeline = P::NAME,
                "Shut down before the pipeline could start."
            );
            return Ok(());
        };
        let result = run(p, &cfg, shutdown).await;
        // The runner and its pipeline are gone (which closes what e.g. the command lanes
        // wait on); background tasks end with shutdown, or now if the pipeline failed.
        if result.is_err() {
            background.abort_all();
        }
        let grace = Duration::from_millis(cfg.runner.retry_max_ms.max(1_000));
        let joined = tokio::time::timeout(grace, async {
            while let Some(r) = background.join_next().await {
                if r.is_err_and(|e| e.is_panic()) {
                    error!(pipeline = P::NAME, "A background task panicked.");
                }
            }
        })
        .await;
        if joined.is_err() {
            warn!(
                pipeline = P::NAME,
                "Background tasks did not stop in time; aborted."
            );
            background.shutdown().await;
        }
        result
    })
}

/// Consumer settings the runner needs for correctness: offsets live in PostgreSQL with the
/// state, so Kafka must never store or commit them by itself. `kafka.properties` cannot change
/// these.
const FORCED_CONSUMER: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
];

/// The runner's defaults, which `kafka.properties` may override (group timeouts suited to the
/// broker, for example a larger `session.timeout.ms` on a slow one). The fetch sizes keep a
/// backlog from one partition from filling the local queue while the others wait: each fetch
/// brings at most 256 KiB of a partition and at most 16 MiB are queued in all, so partitions
/// catching up after an outage advance side by side.
const DEFAULT_CONSUMER: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("max.partition.fetch.bytes", "262144"),
    ("queued.max.messages.kbytes", "16384"),
    ("session.timeout.ms", "10000"),
    ("heartbeat.interval.ms", "1000"),
    ("max.poll.interval.ms", "300000"),
    ("statistics.interval.ms", "1000"),
];

/// The consumer config of a pipeline in consumer group `group`: the runner's defaults, then
/// `kafka.properties` (the user's word wins), then what correctness forces.
pub fn consumer_config(kafka: &KafkaConfig, group: &str) -> rdkafka::ClientConfig {
    let mut cc = atlasmesh_sinks::kafka::client_config(kafka);
    for (k, v) in DEFAULT_CONSUMER {
        if !kafka.properties.contains_key(*k) {
            cc.set(*k, *v);
        }
    }
    for (k, v) in FORCED_CONSUMER {
        if kafka.properties.get(*k).is_some_and(|u| u != v) {
            warn!(
                property = *k,
                "kafka.properties cannot change this consumer setting; ignored."
            );
        }
        cc.set(*k, *v);
    }
    cc.set("group.id", group);
    cc
}

/// Consumes the pipeline's topic until `shutdown` turns true, then checkpoints and returns.
/// Returns an error (after logging it) when the pipeline meets a non-retriable error.
pub async fn run<P: Pipeline>(
    p: Arc<P>,
    cfg: &Config,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let group = format!("{}.{}", cfg.kafka.group_prefix, P::NAME);
    let ctx = RunnerContext::new(P::NAME);
    let consumer: StreamConsumer<RunnerContext> = consumer_config(&cfg.kafka, &group)
        .create_with_context(ctx)
        .map_err(atlasmesh_sinks::Error::from)?;
    let policy = RetryPolicy::from_config(&cfg.runner);
    let mut sd = shutdown.clone();
    let Some(pool) = starting(
        P::NAME,
        "connect to PostgreSQL",
        policy,
        &mut sd,
        || async { Ok(atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 4).await?) },
    )
    .await?
    else {
        return Ok(());
    };
    let mut store = CheckpointStore::new(pool.clone(), P::NAME)
        .with_snapshot_retention_hours(cfg.runner.snapshot_retention_hours);
    let mut leases = None;
    match cfg.kafka.assignment {
        Assignment::Group => consumer
            .subscribe(&[p.topic()])
            .map_err(atlasmesh_sinks::Error::from)?,
        Assignment::Manual => {
            let partitions: Vec<i32> = if cfg.kafka.assigned_partitions.is_empty() {
                let Some(parts) = starting(
                    P::NAME,
                    "read the topic's partitions",
                    policy,
                    &mut sd,
                    || async {
                        Ok(atlasmesh_sinks::kafka::topic_partitions(
                            consumer.client(),
                            p.topic(),
                        )?)
                    },
                )
                .await?
                else {
                    return Ok(());
                };
                parts
            } else {
                cfg.kafka.assigned_partitions.clone()
            };
            let lease = Leases {
                store: LeaseStore::new(pool, P::NAME, worker_id(&cfg.kafka)),
                topic: p.topic().to_string(),
                partitions,
                ttl_ms: cfg.kafka.lease_ttl_ms,
                renewed: Instant::now(),
            };
            if !lease.acquire::<P>(&mut sd).await? {
                return Ok(()); // shut down while waiting
            }
            store = store.fenced_by(lease.store.owner());
            let assigned = starting(P::NAME, "assign the partitions", policy, &mut sd, || {
                assign_manually(&consumer, &store, p.topic(), &lease.partitions)
            })
            .await?;
            if assigned.is_none() {
                return Ok(());
            }
            leases = Some(lease);
        }
    }
    info!(pipeline = P::NAME, topic = %p.topic(), group = %group, "Pipeline started.");
    let mut r = Runner {
        p,
        cfg,
        consumer: Arc::new(consumer),
        store,
        parts: BTreeMap::new(),
        batch: P::Batch::default(),
        deferred: VecDeque::new(),
        paused: false,
        checkpoint_due: Instant::now() + cfg.runner.checkpoint_interval(),
        urgency: Urgency::Calm,
        consumed: metrics::counter!(m::EVENTS_CONSUMED, "pipeline" => P::NAME),
        shutdown,
        policy,
        handle_policy: policy.capped(Duration::from_secs(1)),
        leases,
    };
    let result = r.consume().await;
    if let Some(l) = &r.leases {
        // Others may take the partitions at once (best effort: unreleased leases expire).
        match tokio::time::timeout(Duration::from_secs(2), l.store.release(&l.topic)).await {
            Ok(Ok(())) => {
                info!(pipeline = P::NAME, partitions = ?l.partitions, "Partition leases released.")
            }
            _ => warn!(
                pipeline = P::NAME,
                "Partition leases not released; they expire after kafka.lease_ttl_ms."
            ),
        }
    }
    match result {
        Ok(()) => {
            info!(pipeline = P::NAME, "Pipeline stopped.");
            Ok(())
        }
        Err(Stop::Shutdown) => {
            info!(
                pipeline = P::NAME,
                "Pipeline stopped while waiting for a dependency; it resumes from its last checkpoint."
            );
            Ok(())
        }
        Err(Stop::Failed(e)) => Err(e),
    }
}

/// Assigns `partitions` starting at their checkpoints.
async fn assign_manually(
    consumer: &StreamConsumer<RunnerContext>,
    store: &CheckpointStore,
    topic: &str,
    partitions: &[i32],
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let offset = match store.load(topic, *p).await? {
            Some(c) => Offset::Offset(c.next_offset),
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(topic, *p, offset)
            .map_err(atlasmesh_sinks::Error::from)?;
    }
    consumer
        .assign(&tpl)
        .map_err(atlasmesh_sinks::Error::from)?;
    info!(topic, partitions = ?partitions, "Partitions assigned manually (no consumer group membership).");
    Ok(())
}

/// This worker's name in the partition leases: `kafka.worker_id`, else unique to the process.
fn worker_id(kafka: &KafkaConfig) -> String {
    if let Some(id) = kafka.worker_id.as_deref().filter(|s| !s.is_empty()) {
        return id.to_string();
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The partition leases of a worker in manual assignment.
struct Leases {
    store: LeaseStore,
    topic: String,
    partitions: Vec<i32>,
    ttl_ms: u64,
    renewed: Instant,
}

impl Leases {
    /// Takes every lease. A lease another owner still renews means a second worker was given
    /// the same partitions: refused with an error. One that stops being renewed (its worker
    /// crashed) is taken over once it expires. False when shutdown came first.
    async fn acquire<P: Pipeline>(&self, shutdown: &mut watch::Receiver<bool>) -> Result<bool> {
        // Holder → when its lease expires, as first seen.
        let mut first_seen: HashMap<(i32, String), Instant> = HashMap::new();
        let mut said = false;
        loop {
            let held = match self
                .store
                .acquire(&self.topic, &self.partitions, self.ttl_ms)
                .await
            {
                Ok(h) => h,
                Err(e) if e.is_retriable() => {
                    warn!(pipeline = P::NAME, error = %e, "Taking the partition leases failed; retrying.");
                    if !sleep_unless_shutdown(Duration::from_secs(1), shutdown).await {
                        return Ok(false);
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if held.is_empty() {
                info!(pipeline = P::NAME, owner = self.store.owner(), partitions = ?self.partitions, ttl_ms = self.ttl_ms, "Partition leases taken.");
                return Ok(true);
            }
            let now = Instant::now();
            for h in &held {
                let expires = now + Duration::from_millis(h.expires_in_ms.max(0) as u64);
                let first = *first_seen
                    .entry((h.partition, h.owner.clone()))
                    .or_insert(expires);
                if expires > first + Duration::from_millis(500) {
                    return Err(Error::Setup(format!(
                        "partition {} of {} is consumed by another worker ({}), which keeps \
                         renewing its lease: two workers must not be given the same partitions \
                         (kafka.assigned_partitions); refusing to start",
                        h.partition, self.topic, h.owner
                    )));
                }
            }
            if !said {
                said = true;
                warn!(pipeline = P::NAME, held = ?held.iter().map(|h| (h.partition, h.owner.as_str(), h.expires_in_ms)).collect::<Vec<_>>(), "Partitions are leased by another owner; waiting: a lease that is not renewed (a crashed worker) is taken over once it expires, one that is renewed means a second worker and this one refuses to start.");
            }
            if !sleep_unless_shutdown(Duration::from_millis(500), shutdown).await {
                return Ok(false);
            }
        }
    }
}

/// Runs a start-up step until it succeeds, waiting out retriable errors (a dependency slow or
/// down while the pipeline starts) with the runner's backoff: a worker started before its
/// stores, or on a loaded machine, waits instead of exiting. `None` once shutdown came first.
async fn starting<T, F, Fut>(
    pipeline: &'static str,
    step: &'static str,
    policy: RetryPolicy,
    shutdown: &mut watch::Receiver<bool>,
    mut f: F,
) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = policy.backoff();
    loop {
        match f().await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e.is_retriable() => {
                warn!(pipeline, step, error = %e, "A dependency failed while the pipeline starts; retrying.");
                if !backoff.wait(shutdown).await {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sleeps `d`; false when shutdown was requested first.
async fn sleep_unless_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = requested(shutdown) => false,
        _ = tokio::time::sleep(d) => true,
    }
}

impl<P: Pipeline> Runner<'_, P> {
    /// The consume loop; returns after the final checkpoint once shutdown is requested.
    async fn consume(&mut self) -> Step {
        let mut tick = tokio::time::interval(self.p.tick_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Messages borrow from this handle (the runner's fields stay free to change); one
        // stream for the loop, not one per message (each registers a waker slot).
        let consumer = self.consumer.clone();
        let mut stream = consumer.stream();
        // The clock as the loop last read it (once per message from the `select!`, once per
        // `CLOCK_EVERY` in a run of messages already fetched).
        let mut now = Instant::now();
        // Messages taken without a pass through the `select!` below since it last ran.
        let mut drained = 0;
        loop {
            self.drop_revoked();
            if let Some(m) = self.deferred.pop_front() {
                let now = Instant::now();
                self.on_message(InMessage::from_owned(&m, P::HEADERS), now)
                    .await?;
                self.maybe_checkpoint(now).await?;
                continue;
            }
            // A message already fetched is taken at once; the `select!` (shutdown, urgent
            // flush, tick) still runs at least every `DRAIN` messages, a fraction of a
            // millisecond. Within such a run the clock is read every `CLOCK_EVERY` messages.
            if drained < DRAIN {
                if let Some(next) = stream.next().now_or_never() {
                    if drained % CLOCK_EVERY == 0 {
                        now = Instant::now();
                    }
                    drained += 1;
                    match next.expect("Kafka streams never end") {
                        Ok(m) => {
                            self.on_message(InMessage::from_borrowed(&m, P::HEADERS), now)
                                .await?;
                            self.maybe_checkpoint(now).await?;
                        }
                        Err(e) => consume_error(P::NAME, e).await,
                    }
                    continue;
                }
            }
            drained = 0;
            let urgent_at = match self.urgency {
                Urgency::FlushAt(at) => Some(at),
                Urgency::Calm | Urgency::Deferred { .. } => None,
            };
            tokio::select! {
                biased;
                _ = requested(&mut self.shutdown) => {
                    let grace = Duration::from_millis(self.cfg.runner.shutdown_grace_ms);
                    return match tokio::time::timeout(grace, self.checkpoint()).await {
                        Ok(step) => step,
                        Err(_) => {
                            warn!(pipeline = P::NAME, grace_ms = grace.as_millis() as u64, "The final checkpoint did not finish within the shutdown grace; stopping without it (the pipeline resumes from its last checkpoint).");
                            Err(Stop::Shutdown)
                        }
                    };
                }
                _ = async {
                    match urgent_at {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.maybe_checkpoint(Instant::now()).await?;
                }
                _ = tick.tick() => {
                    self.renew_leases().await?;
                    self.adopt_assigned().await?;
                    self.check_idle();
                    self.tick_partitions();
                    self.maybe_checkpoint(Instant::now()).await?;
                }
                msg = stream.next() => match msg.expect("Kafka streams never end") {
                    Ok(m) => {
                        now = Instant::now();
                        let m = InMessage::from_borrowed(&m, P::HEADERS);
                        self.on_message(m, now).await?;
                        self.maybe_checkpoint(now).await?;
                    }
                    Err(e) => consume_error(P::NAME, e).await,
                },
            }
        }
    }

    /// Every third of the lease time, extends the partition leases (manual assignment). A
    /// lease that is gone (taken over after this worker failed to renew it in time) stops the
    /// pipeline; a database that does not answer is tried again on the next tick.
    async fn renew_leases(&mut self) -> Step {
        let Some(l) = &mut self.leases else {
            return Ok(());
        };
        if l.renewed.elapsed() < Duration::from_millis(l.ttl_ms / 3) {
            return Ok(());
        }
        match l.store.renew(&l.topic, l.ttl_ms).await {
            Ok(held) => {
                l.renewed = Instant::now();
                let lost: Vec<i32> = l
                    .partitions
                    .iter()
                    .copied()
                    .filter(|p| !held.contains(p))
                    .collect();
                if !lost.is_empty() {
                    let e = Error::Internal(format!(
                        "lost the leases of partitions {lost:?} of {} (not renewed within kafka.lease_ttl_ms; another worker may consume them now)",
                        l.topic
                    ));
                    error!(pipeline = P::NAME, error = %e, "Partition leases lost; stopping the pipeline.");
                    return Err(Stop::Failed(e));
                }
            }
            Err(e) => {
                warn!(pipeline = P::NAME, error = %e, "Renewing the partition leases failed; retrying on the next tick.");
            }
        }
        Ok(())
    }

    fn drop_revoked(&mut self) {
        for partition in self.consumer.context().take_revoked() {
            if self.parts.remove(&partition).is_some() {
                info!(
                    pipeline = P::NAME,
                    partition,
                    "Partition revoked; state dropped (its checkpoint stays authoritative)."
                );
            }
        }
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// After `what` failed with `e`: stops on shutdown or a non-retriable error; otherwise
    /// pauses the assignment and keeps polling for the next delay of `backoff`.
    async fn wait_retry(&mut self, what: &'static str, e: Error, backoff: &mut Backoff) -> Step {
        if self.shutting_down() {
            // Whatever failed is consumed again after the restart.
            warn!(pipeline = P::NAME, what, error = %e, class = %e.class(), "Failed at shutdown; not retrying (the pipeline resumes from its last checkpoint).");
            return Err(Stop::Shutdown);
        }
        if !e.is_retriable() {
            error!(pipeline = P::NAME, what, error = %e, class = %e.class(), "Non-retriable error; stopping the pipeline (it resumes from its last checkpoint once restarted).");
            return Err(Stop::Failed(e));
        }
        let delay = backoff.next_delay();
        let dependency = e.dependency();
        warn!(pipeline = P::NAME, what, error = %e, dependency = dependency.map(|d| d.name()), attempt = backoff.attempts(), backoff_ms = delay.as_millis() as u64, "Dependency unavailable; pausing consumption and retrying.");
        self.pause();
        if self
            .poll_for(delay, dependency, backoff.first_probe_may_end_wait())
            .await
        {
            backoff.probed_up();
            info!(
                pipeline = P::NAME,
                what,
                dependency = dependency.map(|d| d.name()),
                "The dependency answers again; retrying now."
            );
        }
        if self.shutting_down() {
            return Err(Stop::Shutdown);
        }
        Ok(())
    }

    /// `what` succeeded after the failures `backoff` counted: resume consumption.
    fn recovered(&mut self, what: &'static str, backoff: &Backoff) {
        if backoff.attempts() > 0 {
            info!(
                pipeline = P::NAME,
                what,
                attempts = backoff.attempts() + 1,
                "Recovered; resuming."
            );
        }
        self.resume();
    }

    /// Keeps the consumer polled (group membership) for `d`, stashing anything delivered;
    /// returns early on shutdown. With a `dependency`, it is probed every
    /// `runner.retry_probe_ms` meanwhile, and once a probe succeeds after one failed (it was
    /// down and is back) — or on the first success when `down_before` — the wait ends
    /// early: true.
    async fn poll_for(
        &mut self,
        d: Duration,
        dependency: Option<Dependency>,
        down_before: bool,
    ) -> bool {
        let now = tokio::time::Instant::now();
        let deadline = now + d;
        let every = Duration::from_millis(self.cfg.runner.retry_probe_ms);
        let probe_timeout = Duration::from_millis(self.cfg.runner.retry_probe_timeout_ms.max(50));
        let dependency = dependency.filter(|_| !every.is_zero());
        let mut next_probe = now + every;
        let mut was_down = down_before;
        loop {
            let wake = if dependency.is_some() {
                next_probe.min(deadline)
            } else {
                deadline
            };
            tokio::select! {
                biased;
                _ = requested(&mut self.shutdown) => return false,
                r = tokio::time::timeout_at(wake, self.consumer.recv()) => match r {
                    Ok(Ok(m)) => self.deferred.push_back(m.detach()),
                    Ok(Err(_)) => {}
                    Err(_) => {
                        if tokio::time::Instant::now() >= deadline {
                            return false;
                        }
                        let Some(dep) = dependency else { continue };
                        // librdkafka heartbeats on its own threads: a probe of up to
                        // `probe_timeout` without polling keeps the group membership.
                        match dep.probe(self.cfg, probe_timeout).await {
                            Ok(()) if was_down => return true,
                            Ok(()) => debug!(pipeline = P::NAME, dependency = dep.name(), "Probe: the dependency answers."),
                            Err(e) => {
                                debug!(pipeline = P::NAME, dependency = dep.name(), error = %e, "Probe: the dependency does not answer.");
                                was_down = true;
                            }
                        }
                        next_probe = tokio::time::Instant::now() + every;
                    }
                },
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
                metrics::gauge!(m::PARTITIONS_PAUSED, "pipeline" => P::NAME).set(a.count() as f64);
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
        metrics::gauge!(m::PARTITIONS_PAUSED, "pipeline" => P::NAME).set(0.0);
    }

    /// Loads the checkpointed state of every assigned partition that has none in memory yet.
    ///
    /// Eager, not on the first message: a partition whose checkpoint is already at the end of
    /// the log receives no message after a restart, yet its open windows must still close when
    /// it is idle.
    async fn adopt_assigned(&mut self) -> Step {
        let Ok(assignment) = self.consumer.assignment() else {
            return Ok(());
        };
        let topic = self.p.topic().to_string();
        let missing: Vec<i32> = assignment
            .elements_for_topic(&topic)
            .iter()
            .map(|e| e.partition())
            .filter(|p| !self.parts.contains_key(p))
            .collect();
        for partition in missing {
            self.load_partition(&topic, partition, None).await?;
        }
        Ok(())
    }

    /// Loads a partition's state and offset from its checkpoint and positions the consumer
    /// there. `first_offset` is the offset of a message already delivered, if any.
    async fn load_partition(
        &mut self,
        topic: &str,
        partition: i32,
        first_offset: Option<i64>,
    ) -> Step<bool> {
        let mut backoff = self.policy.backoff();
        let loaded = loop {
            match self.store.load(topic, partition).await {
                Ok(c) => break c,
                Err(e) => {
                    self.wait_retry("load checkpoint", e.into(), &mut backoff)
                        .await?
                }
            }
        };
        self.recovered("load checkpoint", &backoff);
        let loaded_none = loaded.is_none();
        // The stored full state (0 before deltas existed: the next save is a full one), its
        // size and the deltas after it.
        let (base, base_bytes, delta_bytes, delta_count) =
            loaded.as_ref().map_or((None, 0, 0, 0), |c| {
                let deltas = c.deltas.iter().map(Vec::len).sum();
                (
                    (c.base_id != 0).then_some(c.base_id),
                    c.state.len(),
                    deltas,
                    c.deltas.len(),
                )
            });
        let (mut state, next_offset) = match loaded {
            Some(c) => match self.restore(&c) {
                Ok(s) => (s, c.next_offset),
                Err(e) => {
                    // Refuse to guess: a state we cannot read must be looked at by a human.
                    let e = Error::Internal(format!(
                        "checkpoint of {topic}/{partition} is unreadable ({e}); refusing to continue"
                    ));
                    error!(pipeline = P::NAME, partition, error = %e, "Unreadable checkpoint; stopping the pipeline.");
                    return Err(Stop::Failed(e));
                }
            },
            None => (P::State::default(), 0),
        };
        self.p.start_delta(&mut state);
        let seek_to_start = if loaded_none {
            let (start, offset) = self.configured_start();
            info!(
                pipeline = P::NAME,
                partition,
                start,
                "No checkpoint for this partition: starting from the configured position (auto.offset.reset), with empty state."
            );
            Some(offset)
        } else {
            info!(
                pipeline = P::NAME,
                partition,
                next_offset,
                state_bytes = base_bytes,
                deltas_applied = delta_count,
                delta_bytes,
                "Partition assigned; state loaded."
            );
            None
        };
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
            warn!(
                pipeline = P::NAME,
                partition,
                expected = next_offset,
                got = o,
                "Offsets between the checkpoint and the first message are gone (retention?)."
            );
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
                seek_to_start,
                snapshot_at: None,
                chain: Chain::stored(base, base_bytes, delta_bytes),
            },
        );
        self.try_seek_to_start(topic, partition);
        Ok(loaded_none)
    }

    /// A checkpoint's state: its full state with its deltas applied in order.
    fn restore(&self, c: &Checkpoint) -> std::result::Result<P::State, String> {
        let mut state = self.p.decode_state(&c.state).map_err(|e| e.to_string())?;
        for (i, d) in c.deltas.iter().enumerate() {
            self.p
                .apply_delta(&mut state, d)
                .map_err(|e| format!("delta {} of {}: {e}", i + 1, c.deltas.len()))?;
        }
        Ok(state)
    }

    /// Handles one message read at `now` (the loop's clock reading, when it last looked).
    async fn on_message(&mut self, msg: InMessage<'_>, now: Instant) -> Step {
        let partition = msg.partition;
        if !self.parts.contains_key(&partition)
            && self
                .load_partition(msg.topic, partition, Some(msg.offset))
                .await?
        {
            // No checkpoint: the consumer was moved to the start; this message (from wherever
            // it stood) comes again in order.
            return Ok(());
        }
        let st = self.parts.get_mut(&partition).expect("partition state");
        if st.seek_to_start.is_some() {
            // Delivered from wherever the consumer stood before the seek to the start (or the
            // seek still failed): it comes again from the start.
            self.try_seek_to_start(msg.topic, partition);
            return Ok(());
        }
        if msg.offset < st.next_offset {
            return Ok(()); // already reflected in the checkpointed state
        }
        self.consumed.increment(1);
        // The first attempt borrows the partition's state once; a failure waits and retries.
        let st = match self.p.handle(&mut st.state, &msg, &mut self.batch).await {
            Ok(()) => st,
            Err(e) => {
                self.retry_handle(&msg, e).await?;
                self.parts.get_mut(&partition).expect("partition state")
            }
        };
        st.next_offset = msg.offset + 1;
        st.last_msg = now;
        st.idle_flushed = false;
        st.dirty = true;
        self.resume();
        Ok(())
    }

    /// Handling `msg` failed with `first`: waits and tries again until it succeeds (or the
    /// pipeline stops).
    async fn retry_handle(&mut self, msg: &InMessage<'_>, first: Error) -> Step {
        let mut backoff = self.handle_policy.backoff();
        let mut e = first;
        loop {
            debug!(
                pipeline = P::NAME,
                partition = msg.partition,
                offset = msg.offset,
                "Handling the message must wait."
            );
            self.wait_retry("handle message", e, &mut backoff).await?;
            let st = self.parts.get_mut(&msg.partition).expect("partition state");
            match self.p.handle(&mut st.state, msg, &mut self.batch).await {
                Ok(()) => break,
                Err(next) => e = next,
            }
        }
        self.recovered("handle message", &backoff);
        Ok(())
    }

    /// Where a partition without a checkpoint starts: `auto.offset.reset` of the consumer
    /// (the runner's default `earliest`, or `kafka.properties`).
    fn configured_start(&self) -> (&'static str, Offset) {
        match self
            .cfg
            .kafka
            .properties
            .get("auto.offset.reset")
            .map(String::as_str)
        {
            Some("latest" | "largest" | "end") => ("latest", Offset::End),
            _ => ("earliest", Offset::Beginning),
        }
    }

    /// Seeks a partition that has no checkpoint to its start; on success later messages are
    /// used. A failed seek (it can fail right after a group assignment) is retried on the next
    /// message of the partition.
    fn try_seek_to_start(&mut self, topic: &str, partition: i32) {
        let Some(st) = self.parts.get_mut(&partition) else {
            return;
        };
        let Some(offset) = st.seek_to_start else {
            return;
        };
        match self
            .consumer
            .seek(topic, partition, offset, Duration::from_secs(5))
        {
            Ok(()) => st.seek_to_start = None,
            Err(e) => {
                debug!(partition, error = %e, "Seek to the start failed; retrying with the next message.")
            }
        }
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
        let idle = self.p.idle_flush();
        let repeat = self.cfg.runner.checkpoint_interval();
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
                debug!(
                    pipeline = P::NAME,
                    partition, "Partition idle; open windows closed."
                );
            }
        }
    }

    /// Every held partition has consumed up to its high watermark as of the last statistics
    /// report (a partition not reported yet counts as caught up).
    fn caught_up(&self) -> bool {
        let topic = self.p.topic();
        let ctx = self.consumer.context();
        self.parts.iter().all(|(partition, st)| {
            ctx.high_watermark(topic, *partition)
                .is_none_or(|high| st.next_offset >= high)
        })
    }

    /// Checkpoints when due at `now` (the loop's clock reading: this runs after every
    /// message).
    async fn maybe_checkpoint(&mut self, now: Instant) -> Step {
        let look = match self.urgency {
            Urgency::Calm => self.p.urgent(&self.batch),
            Urgency::Deferred { look_again } => now >= look_again,
            Urgency::FlushAt(_) => false,
        };
        if look {
            // Only live: a worker catching up on a backlog keeps its big batches.
            self.urgency = if self.caught_up() {
                Urgency::FlushAt(now + Duration::from_millis(self.cfg.runner.urgent_flush_ms))
            } else {
                Urgency::Deferred {
                    look_again: now + URGENT_RECHECK,
                }
            };
        }
        let urgent = matches!(self.urgency, Urgency::FlushAt(at) if now >= at);
        let due = now >= self.checkpoint_due;
        if due || urgent || self.p.batch_len(&self.batch) >= self.cfg.runner.max_batch_events {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Flush sinks, then save state + offsets, then commit to Kafka. Both writes retry with
    /// the same policy.
    async fn checkpoint(&mut self) -> Step {
        self.checkpoint_due = Instant::now() + self.cfg.runner.checkpoint_interval();
        self.urgency = Urgency::Calm;
        if !self.parts.values().any(|s| s.dirty) && self.p.batch_len(&self.batch) == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let mut batch = std::mem::take(&mut self.batch);
        let p = self.p.clone();
        let mut backoff = self.policy.backoff();
        loop {
            match p.flush(&mut batch).await {
                Ok(()) => break,
                Err(e) => self.wait_retry("write batch", e, &mut backoff).await?,
            }
        }
        if backoff.attempts() > 0 {
            info!(
                pipeline = P::NAME,
                attempts = backoff.attempts() + 1,
                "Sinks recovered; batch written."
            );
        }
        if p.batch_len(&self.batch) == 0 {
            p.recycle(&mut batch);
            self.batch = batch;
        }
        let topic = p.topic().to_string();
        let every = Duration::from_millis(self.cfg.runner.snapshot_interval_ms);
        let snapshot_due = |s: &PartState<P::State>| {
            !every.is_zero() && s.snapshot_at.is_none_or(|at| at.elapsed() >= every)
        };
        let incremental = self.cfg.runner.delta_checkpoints;
        let checkpoints: Vec<Checkpoint> = self
            .parts
            .iter_mut()
            .filter(|(_, s)| s.dirty)
            .map(|(partition, s)| {
                let snapshot = snapshot_due(s);
                s.chain.next(
                    &*p,
                    &mut s.state,
                    &topic,
                    *partition,
                    s.next_offset,
                    incremental,
                    snapshot,
                )
            })
            .collect();
        let mut backoff = self.policy.backoff();
        let refused = loop {
            match self.store.save(&checkpoints).await {
                Ok(refused) => break refused,
                Err(e) => {
                    self.wait_retry("save checkpoint", e.into(), &mut backoff)
                        .await?
                }
            }
        };
        self.recovered("save checkpoint", &backoff);
        let mut tpl = TopicPartitionList::new();
        for c in &checkpoints {
            if refused.contains(&c.partition) {
                // Another base is stored (the partition changed hands meanwhile): nothing of
                // this partition was saved; its full state goes next time.
                warn!(pipeline = P::NAME, partition = c.partition, "Checkpoint delta refused: the stored state is not the one it builds on; saving the full state next.");
                if let Some(s) = self.parts.get_mut(&c.partition) {
                    s.chain.refused();
                }
                continue;
            }
            let kind = if c.delta { "delta" } else { "full" };
            metrics::counter!(m::CHECKPOINT_BYTES, "pipeline" => P::NAME, "kind" => kind)
                .increment(c.state.len() as u64);
            if let Some(s) = self.parts.get_mut(&c.partition) {
                s.dirty = false;
                if c.snapshot {
                    s.snapshot_at = Some(Instant::now());
                }
                s.chain.saved(c);
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
        metrics::counter!(m::CHECKPOINTS, "pipeline" => P::NAME).increment(1);
        metrics::histogram!(m::CHECKPOINT_SECONDS, "pipeline" => P::NAME)
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

#[cfg(test)]
mod consumer_config_tests {
    use super::*;

    #[test]
    fn user_properties_override_defaults_but_not_offset_handling() {
        let mut kafka = KafkaConfig::default();
        let cc = consumer_config(&kafka, "g.telemetry");
        assert_eq!(cc.get("session.timeout.ms"), Some("10000"));
        assert_eq!(cc.get("group.id"), Some("g.telemetry"));
        kafka
            .properties
            .insert("session.timeout.ms".into(), "45000".into());
        kafka
            .properties
            .insert("heartbeat.interval.ms".into(), "3000".into());
        kafka
            .properties
            .insert("enable.auto.commit".into(), "true".into());
        let cc = consumer_config(&kafka, "g.telemetry");
        assert_eq!(cc.get("session.timeout.ms"), Some("45000"));
        assert_eq!(cc.get("heartbeat.interval.ms"), Some("3000"));
        assert_eq!(cc.get("max.poll.interval.ms"), Some("300000"));
        assert_eq!(cc.get("enable.auto.commit"), Some("false"));
        assert_eq!(cc.get("enable.auto.offset.store"), Some("false"));
    }
}
