//! Settling fleet windows from the per-source-partition fleet partials of `fleet.metrics.v1`,
//! shared by the alert engine and the performance pipeline, so a fleet window is scored with the
//! same sum the alerts evaluate (its serialized form is part of both pipelines' checkpoints):
//!
//! A fleet window `W` is *settled* — summed over the newest version of each source partition's
//! partial and handed out exactly once, in window order — when either
//!   1. every source partition known for the fleet has delivered a partial of a later window, or
//!   2. the fleet has a window ending at least `grace_ms` after `W` ends (event time).
//!
//! A source is known once it delivered a partial and forgotten when its newest partial ends
//! `grace_ms` before the fleet's newest. A partial of an already settled window (a late
//! revision, or a source first seen after the window settled) is ignored: scores and trends
//! never go back in time.

use std::collections::BTreeMap;

use atlasmesh_core::window::Counters;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Partial {
    version: i32,
    counters: Counters,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct OpenWindow {
    end_ms: i64,
    partials: BTreeMap<i32, Partial>,
}

/// A settled fleet window: the sum of the newest partial of every source.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub start_ms: i64,
    pub end_ms: i64,
    pub counters: Counters,
}

/// The open (not yet settled) windows of one fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetWindows {
    /// window start → partials.
    open: BTreeMap<i64, OpenWindow>,
    /// Known source partitions → end of their newest partial.
    sources: BTreeMap<i32, i64>,
    newest_end_ms: i64,
    /// Start of the last settled window: partials of it and earlier windows are ignored.
    settled_through_ms: Option<i64>,
}

impl FleetWindows {
    /// Adds a partial; false when its window has settled already (ignored).
    pub fn add(&mut self, source: i32, start: i64, end: i64, version: i32, counters: Counters, grace_ms: i64) -> bool {
        if self.settled_through_ms.is_some_and(|s| start <= s) {
            return false;
        }
        let w = self.open.entry(start).or_insert_with(|| OpenWindow { end_ms: end, partials: BTreeMap::new() });
        if w.partials.get(&source).is_none_or(|p| p.version < version) {
            w.partials.insert(source, Partial { version, counters });
        }
        let newest = self.sources.entry(source).or_insert(end);
        *newest = (*newest).max(end);
        self.newest_end_ms = self.newest_end_ms.max(end);
        let horizon = self.newest_end_ms - grace_ms;
        self.sources.retain(|_, e| *e > horizon);
        true
    }

    /// Removes and returns the settled windows, oldest first.
    pub fn take_settled(&mut self, grace_ms: i64) -> Vec<Settled> {
        let mut out = Vec::new();
        while let Some((&start, w)) = self.open.first_key_value() {
            let all_passed = !self.sources.is_empty() && self.sources.values().all(|&e| e > w.end_ms);
            let grace_passed = self.newest_end_ms - w.end_ms >= grace_ms;
            if !(all_passed || grace_passed) {
                break;
            }
            let w = self.open.remove(&start).expect("first window");
            let mut counters = Counters::default();
            for p in w.partials.values() {
                counters.add(&p.counters);
            }
            self.settled_through_ms = Some(start);
            out.push(Settled { start_ms: start, end_ms: w.end_ms, counters });
        }
        out
    }

    /// Windows waiting to settle.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    fn c(busy_ms: u64) -> Counters {
        Counters { observed_ms: 60_000, busy_ms, ..Counters::default() }
    }

    #[test]
    fn settles_when_all_sources_passed_or_after_the_grace() {
        let mut f = FleetWindows::default();
        assert!(f.add(0, 0, M, 1, c(10), 2 * M));
        assert!(f.add(1, 0, M, 1, c(20), 2 * M));
        assert!(f.add(0, 0, M, 2, c(30), 2 * M), "newer version replaces");
        assert!(f.add(0, M, 2 * M, 1, c(1), 2 * M));
        assert!(f.take_settled(2 * M).is_empty(), "source 1 has not passed minute 0");
        assert!(f.add(1, M, 2 * M, 1, c(2), 2 * M));
        let s = f.take_settled(2 * M);
        assert_eq!(
            s,
            vec![Settled {
                start_ms: 0,
                end_ms: M,
                counters: Counters { observed_ms: 120_000, busy_ms: 50, ..Counters::default() }
            }]
        );
        assert!(!f.add(1, 0, M, 3, c(60_000), 2 * M), "late revision of a settled window is ignored");
        // Source 1 goes silent: minute 1 settles once a window ends 2 min after it.
        assert!(f.add(0, 2 * M, 3 * M, 1, c(3), 2 * M));
        assert!(f.take_settled(2 * M).is_empty());
        assert!(f.add(0, 3 * M, 4 * M, 1, c(4), 2 * M));
        let s = f.take_settled(2 * M);
        assert_eq!(s.iter().map(|w| w.start_ms).collect::<Vec<_>>(), vec![M, 2 * M]);
        assert_eq!(f.open_len(), 1);
    }
}
