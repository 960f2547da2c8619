//! `atlasmesh replay --pipeline NAME --from T --to T`: reprocesses a range of a pipeline's
//! input into its stores without touching the live pipeline.
//!
//! - The range is looked up by Kafka message timestamp (`offsets_for_times`): per partition,
//!   from the first message at or after `from` to the last before `to`.
//! - Each partition starts from the newest checkpoint snapshot at or before the range's first
//!   offset (`checkpoint_snapshots`, kept every `runner.snapshot_interval_ms`), so the range is
//!   reprocessed from exactly the state it first met; without one, from offset 0 with empty
//!   state when the log still starts there, else the replay is refused (the state cannot be
//!   rebuilt).
//! - Processing is the live `handle`, without processing-time work (no idle closes, no ticks),
//!   and the batch goes through [`Pipeline::keep_for_replay`] before each flush: only the
//!   versioned stores are written again (upserts by key and version), so every result the
//!   live run wrote stays as it was.
//! - It reads with its own consumer (assigned, never committing) and saves no checkpoint, so
//!   the live workers can run meanwhile. Interrupted, it leaves nothing to undo: run it again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlasmesh_core::config::Config;
use atlasmesh_core::Classify;
use atlasmesh_sinks::postgres::CheckpointStore;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{consumer_config, requested, InMessage, Pipeline, RetryPolicy};
use crate::{Error, Result};

/// The input range of a replay, as Kafka message timestamps (epoch ms): `from` inclusive,
/// `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRange {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Where a replay read one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReplay {
    pub partition: i32,
    /// Where reading started: the snapshot's offset (or 0).
    pub start_offset: i64,
    /// The first offset of the requested range.
    pub range_offset: i64,
    /// Reading stopped before this offset (the first message at or after `to`).
    pub end_offset: i64,
    /// Whether the state came from a snapshot (else empty state from offset 0).
    pub from_snapshot: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    pub pipeline: String,
    pub partitions: Vec<PartitionReplay>,
    /// Messages handled (from each partition's start offset, so including the lead-in after
    /// the snapshot).
    pub events: u64,
    pub flushes: u64,
    pub elapsed_ms: u64,
}

/// Progress of a running replay (for the progress line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayProgress {
    pub done: u64,
    pub total: u64,
    pub elapsed: Duration,
}

impl ReplayProgress {
    pub fn rate_per_s(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// Seconds left at the rate so far (`None` before anything was done).
    pub fn eta_s(&self) -> Option<f64> {
        let rate = self.rate_per_s();
        (self.done > 0 && rate > 0.0).then(|| self.total.saturating_sub(self.done) as f64 / rate)
    }
}

impl std::fmt::Display for ReplayProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = if self.total == 0 {
            100.0
        } else {
            self.done as f64 * 100.0 / self.total as f64
        };
        write!(
            f,
            "{}/{} events ({pct:.1} %), {:.0} events/s, elapsed {:.0} s",
            self.done,
            self.total,
            self.rate_per_s(),
            self.elapsed.as_secs_f64()
        )?;
        match self.eta_s() {
            Some(eta) => write!(f, ", ETA {eta:.0} s"),
            None => write!(f, ", ETA -"),
        }
    }
}

struct Part<S> {
    state: S,
    next_offset: i64,
    end_offset: i64,
}

/// How long broker lookups may take (a slow local broker included).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Replays `range` of pipeline `P`'s input (see the module docs); `progress` is called about
/// once a second and at the end. Stops early, with an error, when `shutdown` turns true.
pub async fn replay<P: Pipeline>(
    cfg: &Config,
    range: ReplayRange,
    mut shutdown: watch::Receiver<bool>,
    progress: &mut (dyn FnMut(&ReplayProgress) + Send),
) -> Result<ReplaySummary> {
    let Some(writes) = P::REPLAY else {
        return Err(Error::Setup(format!(
            "pipeline {} cannot be replayed (its outputs are events others act on, not versioned rows); \
             use `atlasmesh reset --pipeline {}` to rebuild its state",
            P::NAME,
            P::NAME
        )));
    };
    if range.from_ms >= range.to_ms {
        return Err(Error::Setup("--from must be before --to".into()));
    }
    let started = Instant::now();
    let p = P::build(cfg).await?;
    let topic = p.topic().to_string();
    let group = format!("{}.{}.replay", cfg.kafka.group_prefix, P::NAME);
    let consumer: StreamConsumer = consumer_config(&cfg.kafka, &group)
        .create()
        .map_err(atlasmesh_sinks::Error::from)?;
    let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 2).await?;
    let store = CheckpointStore::new(pool, P::NAME);

    // The range's offsets, by timestamp, and where each partition must start.
    let ids = atlasmesh_sinks::kafka::topic_partitions(consumer.client(), &topic)?;
    let from = offsets_for_time(&consumer, &topic, &ids, range.from_ms)?;
    let to = offsets_for_time(&consumer, &topic, &ids, range.to_ms)?;
    let mut parts = BTreeMap::new();
    let mut summary = ReplaySummary {
        pipeline: P::NAME.to_string(),
        ..ReplaySummary::default()
    };
    let mut assignment = TopicPartitionList::new();
    for &partition in &ids {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, LOOKUP_TIMEOUT)
            .map_err(atlasmesh_sinks::Error::from)?;
        let range_offset = from[&partition].unwrap_or(high).clamp(low, high);
        let end_offset = to[&partition].unwrap_or(high).clamp(low, high);
        if range_offset >= end_offset {
            continue; // nothing of this partition in the range
        }
        let snapshot = store
            .snapshot_at_or_before(&topic, partition, range_offset)
            .await?;
        let from_snapshot = snapshot.is_some();
        let (state, start_offset) = match snapshot {
            Some(c) => match p.decode_state(&c.state) {
                Ok(s) => (s, c.next_offset),
                Err(e) => {
                    return Err(Error::Internal(format!(
                        "the snapshot of {topic}/{partition} at offset {} is unreadable ({e})",
                        c.next_offset
                    )))
                }
            },
            None if low == 0 => (P::State::default(), 0),
            None => {
                return Err(Error::Setup(format!(
                    "no snapshot of {topic}/{partition} at or before offset {range_offset} (kept \
                     runner.snapshot_retention_hours) and the log no longer starts at 0 (it starts at \
                     {low}): the state this range met cannot be rebuilt"
                )))
            }
        };
        summary.partitions.push(PartitionReplay {
            partition,
            start_offset,
            range_offset,
            end_offset,
            from_snapshot,
        });
        assignment
            .add_partition_offset(&topic, partition, Offset::Offset(start_offset))
            .map_err(atlasmesh_sinks::Error::from)?;
        parts.insert(
            partition,
            Part {
                state,
                next_offset: start_offset,
                end_offset,
            },
        );
    }
    let total: u64 = parts
        .values()
        .map(|s| (s.end_offset - s.next_offset) as u64)
        .sum();
    info!(pipeline = P::NAME, writes, from_ms = range.from_ms, to_ms = range.to_ms, partitions = ?summary.partitions, events = total, "Replay starting.");
    if parts.is_empty() {
        summary.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(summary);
    }
    consumer
        .assign(&assignment)
        .map_err(atlasmesh_sinks::Error::from)?;

    let policy = RetryPolicy::from_config(&cfg.runner);
    let flush_every = cfg
        .runner
        .checkpoint_interval()
        .max(Duration::from_millis(100));
    let mut batch = P::Batch::default();
    let mut last_flush = Instant::now();
    let mut last_progress = Instant::now();
    let mut done = 0u64;
    let report = |done: u64| ReplayProgress {
        done,
        total,
        elapsed: started.elapsed(),
    };
    while parts.values().any(|s| s.next_offset < s.end_offset) {
        let msg = tokio::select! {
            biased;
            _ = requested(&mut shutdown) => {
                return Err(Error::Setup("replay interrupted; nothing to undo, run it again".into()));
            }
            m = tokio::time::timeout(Duration::from_secs(1), consumer.recv()) => m,
        };
        match msg {
            Err(_) => {
                // Nothing for a second: a partition whose fetch position passed its end (a gap
                // at the end of the range) is done.
                if let Ok(positions) = consumer.position() {
                    for e in positions.elements_for_topic(&topic) {
                        if let (Offset::Offset(o), Some(s)) =
                            (e.offset(), parts.get_mut(&e.partition()))
                        {
                            if o >= s.end_offset {
                                s.next_offset = s.next_offset.max(s.end_offset);
                            }
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                warn!(pipeline = P::NAME, error = %e, "Kafka consume error during replay.");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Ok(m)) => {
                let partition = m.partition();
                let Some(part) = parts.get_mut(&partition) else {
                    continue;
                };
                let offset = m.offset();
                if offset < part.next_offset {
                    continue;
                }
                if offset >= part.end_offset {
                    part.next_offset = part.end_offset;
                    pause(&consumer, &topic, partition);
                    continue;
                }
                let msg = InMessage::from_borrowed(&m, P::HEADERS);
                let mut backoff = policy.backoff();
                loop {
                    match p.handle(&mut part.state, &msg, &mut batch).await {
                        Ok(()) => break,
                        Err(e) if e.is_retriable() => {
                            warn!(pipeline = P::NAME, partition, offset, error = %e, "Handling must wait; retrying.");
                            if !backoff.wait(&mut shutdown).await {
                                return Err(Error::Setup(
                                    "replay interrupted; nothing to undo, run it again".into(),
                                ));
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                part.next_offset = offset + 1;
                done += 1;
                if part.next_offset >= part.end_offset {
                    pause(&consumer, &topic, partition);
                }
            }
        }
        if p.batch_len(&batch) >= cfg.runner.max_batch_events || last_flush.elapsed() >= flush_every
        {
            flush(&p, &mut batch, &policy, &mut shutdown).await?;
            summary.flushes += 1;
            last_flush = Instant::now();
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            progress(&report(done));
            last_progress = Instant::now();
        }
    }
    flush(&p, &mut batch, &policy, &mut shutdown).await?;
    summary.flushes += 1;
    progress(&report(done));
    summary.events = done;
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    info!(
        pipeline = P::NAME,
        events = done,
        elapsed_ms = summary.elapsed_ms,
        "Replay done."
    );
    Ok(summary)
}

/// Writes what a replay keeps of `batch`, retrying a dependency that is down.
async fn flush<P: Pipeline>(
    p: &P,
    batch: &mut P::Batch,
    policy: &RetryPolicy,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<()> {
    p.keep_for_replay(batch);
    let mut backoff = policy.backoff();
    loop {
        match p.flush(batch).await {
            Ok(()) => break,
            Err(e) if e.is_retriable() => {
                warn!(pipeline = P::NAME, error = %e, "A store is unavailable; retrying the replay's write.");
                if !backoff.wait(shutdown).await {
                    return Err(Error::Setup(
                        "replay interrupted; nothing to undo, run it again".into(),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    *batch = P::Batch::default();
    Ok(())
}

fn pause(consumer: &StreamConsumer, topic: &str, partition: i32) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let _ = consumer.pause(&tpl);
}

/// Per partition, the first offset whose message timestamp is at or after `ts_ms` (`None`: no
/// such message yet).
fn offsets_for_time(
    consumer: &StreamConsumer,
    topic: &str,
    partitions: &[i32],
    ts_ms: i64,
) -> Result<BTreeMap<i32, Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Offset(ts_ms))
            .map_err(atlasmesh_sinks::Error::from)?;
    }
    let found = consumer
        .offsets_for_times(tpl, LOOKUP_TIMEOUT)
        .map_err(atlasmesh_sinks::Error::from)?;
    let mut out = BTreeMap::new();
    for e in found.elements_for_topic(topic) {
        let o = match e.offset() {
            Offset::Offset(o) => Some(o),
            Offset::End => None,
            other => {
                return Err(Error::Internal(format!(
                    "the broker answered {other:?} for the offset of time {ts_ms} in {topic}/{}",
                    e.partition()
                )))
            }
        };
        out.insert(e.partition(), o);
    }
    for p in partitions {
        if !out.contains_key(p) {
            return Err(Error::Internal(format!(
                "the broker did not answer the offset of time {ts_ms} for {topic}/{p}"
            )));
        }
    }
    Ok(out)
}
