//! A partition's stored checkpoint chain (a full state and the deltas after it), and which
//! kind its next checkpoint is.

use atlasmesh_sinks::postgres::Checkpoint;

use super::Pipeline;

/// What PostgreSQL holds of one partition: the full state deltas are appended to (`None`: the
/// next checkpoint saves the full state), its size, and the bytes of the deltas stored after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chain {
    base: Option<i64>,
    base_bytes: usize,
    delta_bytes: usize,
}

impl Chain {
    /// The chain as loaded: `base` is `None` for rows saved before deltas existed.
    pub fn stored(base: Option<i64>, base_bytes: usize, delta_bytes: usize) -> Chain {
        Chain {
            base,
            base_bytes,
            delta_bytes,
        }
    }

    /// The partition's next checkpoint: with `incremental`, a delta onto the stored full state
    /// until the deltas weigh as much as it (so storage and restore stay within twice its
    /// size); otherwise, at a `snapshot`, or with no full state stored, the whole state, after
    /// which the pipeline records its changes anew.
    #[allow(clippy::too_many_arguments)]
    pub fn next<P: Pipeline>(
        &self,
        p: &P,
        state: &mut P::State,
        topic: &str,
        partition: i32,
        next_offset: i64,
        incremental: bool,
        snapshot: bool,
    ) -> Checkpoint {
        let delta = match self.base {
            Some(base) if incremental && !snapshot && self.delta_bytes < self.base_bytes => {
                p.take_delta(state).map(|d| (base, d))
            }
            _ => None,
        };
        match delta {
            Some((base, d)) => Checkpoint::delta(topic, partition, next_offset, d, base),
            None => {
                let bytes = bincode::serialize(state).expect("state serialises");
                p.start_delta(state);
                Checkpoint::full(
                    topic,
                    partition,
                    next_offset,
                    bytes,
                    new_base_id(),
                    snapshot,
                )
            }
        }
    }

    /// `c`, made by [`Chain::next`], was saved.
    pub fn saved(&mut self, c: &Checkpoint) {
        if c.delta {
            self.delta_bytes += c.state.len();
        } else {
            *self = Chain::stored(Some(c.base_id), c.state.len(), 0);
        }
    }

    /// The store refused a delta (another full state is stored: the partition changed hands
    /// meanwhile): the next checkpoint saves the full state.
    pub fn refused(&mut self) {
        self.base = None;
    }
}

/// A fresh id for a full state saved: deltas name the base they build on.
fn new_base_id() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static NEXT: AtomicI64 = AtomicI64::new(0);
    // The clock and a process-wide counter, mixed with the process id: distinct across the
    // workers that may hold a partition one after another.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = (now ^ (i64::from(std::process::id()) << 40)).wrapping_add(n);
    if id == 0 {
        1
    } else {
        id
    }
}
