//! Settling fleet windows from the per-source-partition fleet partials of `fleet.metrics.v1`,
//! shared by the alert engine and the performance pipeline, so a fleet window is scored with the
//! same sum the alerts evaluate (its serialized form is part of both pipelines' checkpoints).
//!
//! Every telemetry partition (a *source*) closes its windows in event-time order and, after
//! writing the partials of a batch, writes a *watermark* to every metrics partition: "every
//! window of mine ending at or before `T` is closed" ([`WindowMetricsRecord::watermark`]).
//! A metrics partition therefore hears from every source, whether or not the source holds
//! vehicles of the partition's fleets, and it knows how many sources there are.
//!
//! A fleet window `W` is *settled* — summed over the newest version of each source's partial
//! and handed out exactly once, in window order — when every source of the telemetry topic has
//! closed it: `W.end <= frontier`, the minimum of the sources' watermarks (as Flink combines
//! the watermarks of its inputs). Until every source has spoken, nothing settles: a telemetry
//! partition that nobody consumes holds the fleet windows back instead of letting them settle
//! with part of the vehicles, which is what a replayed backlog needs.
//!
//! An *idle* source (caught up with its log; the telemetry pipeline has closed every window it
//! holds) must not hold the others back. Its watermark says so, and it is moved up to the
//! furthest other source at the moment the marker is read; the telemetry worker repeats the
//! marker while the partition stays idle, so the source keeps pace. A source whose worker is
//! down sends nothing and holds settling back: a stopped telemetry worker pauses scores and
//! alerts rather than letting them be computed from a part of the fleet.
//!
//! A partial of a window at or behind the frontier (a late revision, or a vehicle of an idle
//! source reporting into a window the others have closed) is ignored: scores and alert
//! timelines never go back in time. Everything here is a function of the records in their
//! order, so a replay settles the same windows with the same sums.
//!
//! [`WindowMetricsRecord::watermark`]: atlasmesh_schemas::WindowMetricsRecord::watermark

use std::collections::BTreeMap;

use atlasmesh_core::window::Counters;
use atlasmesh_schemas::WindowMetricsRecord;
use serde::{Deserialize, Serialize};

/// What each source has closed, from its watermarks (one per metrics partition).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceWatermarks {
    /// Partitions of the telemetry topic: the largest count a watermark carried.
    count: i32,
    /// Source partition → every window of it ending at or before this is closed (monotonic).
    closed: BTreeMap<i32, i64>,
}

impl SourceWatermarks {
    /// Folds in one watermark of `source` (of `count` sources). An idle source is moved up to
    /// the furthest other source: it holds nothing open.
    pub fn observe(&mut self, source: i32, count: i32, closed_until_ms: i64, idle: bool) {
        self.count = self.count.max(count);
        let mut closed = closed_until_ms;
        if idle {
            let others = self
                .closed
                .iter()
                .filter(|(s, _)| **s != source)
                .map(|(_, c)| *c)
                .max();
            closed = closed.max(others.unwrap_or(i64::MIN));
        }
        let e = self.closed.entry(source).or_insert(closed);
        *e = (*e).max(closed);
    }

    /// Every fleet window ending at or before this is closed by every source; `None` until
    /// every source has sent a watermark.
    pub fn frontier(&self) -> Option<i64> {
        // Called for every partial and watermark: no allocation.
        let mut min: Option<i64> = None;
        for s in 0..self.count {
            let c = *self.closed.get(&s)?;
            min = Some(min.map_or(c, |m| m.min(c)));
        }
        min
    }
}

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
    /// Start of the last settled window: partials of it and earlier windows are ignored.
    settled_through_ms: Option<i64>,
}

impl FleetWindows {
    /// Adds a partial; false when its window has settled already or is at or behind the
    /// `frontier` (ignored).
    pub fn add(
        &mut self,
        source: i32,
        start: i64,
        end: i64,
        version: i32,
        counters: Counters,
        frontier: Option<i64>,
    ) -> bool {
        if self.settled_through_ms.is_some_and(|s| start <= s) || frontier.is_some_and(|f| end <= f)
        {
            return false;
        }
        let w = self.open.entry(start).or_insert_with(|| OpenWindow {
            end_ms: end,
            partials: BTreeMap::new(),
        });
        if w.partials.get(&source).is_none_or(|p| p.version < version) {
            w.partials.insert(source, Partial { version, counters });
        }
        true
    }

    /// Removes and returns the windows ending at or before `frontier`, oldest first.
    pub fn take_settled(&mut self, frontier: Option<i64>) -> Vec<Settled> {
        let mut out = Vec::new();
        let Some(frontier) = frontier else { return out };
        while let Some((&start, w)) = self.open.first_key_value() {
            if w.end_ms > frontier {
                break;
            }
            let w = self.open.remove(&start).expect("first window");
            let mut counters = Counters::default();
            for p in w.partials.values() {
                counters.add(&p.counters);
            }
            self.settled_through_ms = Some(start);
            out.push(Settled {
                start_ms: start,
                end_ms: w.end_ms,
                counters,
            });
        }
        out
    }

    /// Windows waiting to settle.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }
}

/// Settles the windows (`windows` of each value) of every fleet up to `frontier`, in
/// event-time order across fleets (window end, then fleet id), so consumers that keep a clock
/// per partition see time move forward only.
pub fn settle_fleets<T>(
    fleets: &mut BTreeMap<String, T>,
    windows: impl Fn(&mut T) -> &mut FleetWindows,
    frontier: Option<i64>,
) -> Vec<(String, Settled)> {
    let mut out: Vec<(String, Settled)> = Vec::new();
    if frontier.is_none() {
        return out;
    }
    for (fleet, f) in fleets.iter_mut() {
        out.extend(
            windows(f)
                .take_settled(frontier)
                .into_iter()
                .map(|w| (fleet.clone(), w)),
        );
    }
    out.sort_by(|a, b| (a.1.end_ms, &a.0).cmp(&(b.1.end_ms, &b.0)));
    out
}

/// A fleet partial of `fleet.metrics.v1` into its fleet's windows (`windows` of the fleet's
/// entry, created when new); false when it is ignored (see [`FleetWindows::add`]).
pub fn add_partial<T: Default>(
    fleets: &mut BTreeMap<String, T>,
    windows: impl Fn(&mut T) -> &mut FleetWindows,
    sources: &SourceWatermarks,
    r: &WindowMetricsRecord,
) -> bool {
    let frontier = sources.frontier();
    windows(fleets.entry(r.fleet_id.clone()).or_default()).add(
        r.source_partition,
        r.window_start_ms,
        r.window_end_ms,
        r.version,
        r.counters(),
        frontier,
    )
}

/// A watermark of `fleet.metrics.v1`: observed, then every fleet window it lets settle, in
/// the order of [`settle_fleets`].
pub fn on_watermark<T>(
    fleets: &mut BTreeMap<String, T>,
    windows: impl Fn(&mut T) -> &mut FleetWindows,
    sources: &mut SourceWatermarks,
    r: &WindowMetricsRecord,
) -> Vec<(String, Settled)> {
    sources.observe(
        r.source_partition,
        r.source_partitions,
        r.window_end_ms,
        r.source_idle,
    );
    settle_fleets(fleets, windows, sources.frontier())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    fn c(busy_ms: u64) -> Counters {
        Counters {
            observed_ms: 60_000,
            busy_ms,
            ..Counters::default()
        }
    }

    #[test]
    fn the_frontier_is_the_slowest_source_and_waits_for_every_source() {
        let mut w = SourceWatermarks::default();
        assert_eq!(w.frontier(), None, "no source has spoken");
        w.observe(0, 3, 5 * M, false);
        w.observe(2, 3, 9 * M, false);
        assert_eq!(w.frontier(), None, "source 1 of 3 has not spoken");
        w.observe(1, 3, 2 * M, false);
        assert_eq!(w.frontier(), Some(2 * M));
        w.observe(1, 3, M, false);
        assert_eq!(
            w.frontier(),
            Some(2 * M),
            "a watermark never goes back (a replayed marker)"
        );
        w.observe(1, 3, 7 * M, false);
        assert_eq!(w.frontier(), Some(5 * M));
        // An idle source catches up with the furthest other source, now and every time it
        // repeats its marker.
        let mut w = SourceWatermarks::default();
        w.observe(0, 2, 3 * M, false);
        w.observe(1, 2, 5 * M, false);
        assert_eq!(w.frontier(), Some(3 * M));
        w.observe(0, 2, 3 * M, true);
        assert_eq!(w.frontier(), Some(5 * M));
        w.observe(1, 2, 8 * M, false);
        assert_eq!(
            w.frontier(),
            Some(5 * M),
            "an idle source moves only when it says so again"
        );
        w.observe(0, 2, 3 * M, true);
        assert_eq!(w.frontier(), Some(8 * M));
        // Every source idle: they converge on the furthest.
        let mut w = SourceWatermarks::default();
        w.observe(0, 3, 2 * M, true);
        w.observe(1, 3, 8 * M, true);
        w.observe(2, 3, 9 * M, true);
        assert_eq!(
            w.frontier(),
            Some(2 * M),
            "source 0 spoke before the others"
        );
        w.observe(0, 3, 2 * M, true);
        w.observe(1, 3, 8 * M, true);
        assert_eq!(w.frontier(), Some(9 * M));
        // An idle source that never held data.
        let mut w = SourceWatermarks::default();
        w.observe(0, 2, i64::MIN, true);
        w.observe(1, 2, 4 * M, false);
        assert_eq!(w.frontier(), Some(i64::MIN));
        w.observe(0, 2, i64::MIN, true);
        assert_eq!(w.frontier(), Some(4 * M));
    }

    #[test]
    fn windows_settle_in_order_once_the_frontier_passes_them() {
        let mut f = FleetWindows::default();
        assert!(f.add(0, 0, M, 1, c(10), None));
        assert!(f.add(1, 0, M, 1, c(20), None));
        assert!(f.add(0, 0, M, 2, c(30), None), "newer version replaces");
        assert!(
            f.add(0, 0, M, 1, c(99), None),
            "an older version is accepted but does not replace"
        );
        assert!(f.add(0, M, 2 * M, 1, c(1), None));
        assert!(f.take_settled(None).is_empty(), "no frontier yet");
        assert!(f.take_settled(Some(M - 1)).is_empty());
        let s = f.take_settled(Some(M));
        assert_eq!(
            s,
            vec![Settled {
                start_ms: 0,
                end_ms: M,
                counters: Counters {
                    observed_ms: 120_000,
                    busy_ms: 50,
                    ..Counters::default()
                }
            }]
        );
        assert!(
            !f.add(1, 0, M, 3, c(60_000), Some(M)),
            "late revision of a settled window is ignored"
        );
        assert!(
            !f.add(1, 2 * M, 3 * M, 1, c(5), Some(3 * M)),
            "a window at the frontier is closed by every source"
        );
        assert!(f.add(1, M, 2 * M, 1, c(2), Some(M)));
        assert!(f.add(0, 3 * M, 4 * M, 1, c(4), Some(M)));
        let s = f.take_settled(Some(10 * M));
        assert_eq!(
            s.iter()
                .map(|w| (w.start_ms, w.counters.busy_ms))
                .collect::<Vec<_>>(),
            vec![(M, 3), (3 * M, 4)]
        );
        assert_eq!(f.open_len(), 0);
    }

    #[test]
    fn fleets_settle_in_event_time_order() {
        let mut fleets: BTreeMap<String, FleetWindows> = BTreeMap::new();
        for (fleet, start) in [("b", 0), ("b", M), ("a", M), ("a", 2 * M), ("c", 5 * M)] {
            assert!(fleets.entry(fleet.into()).or_default().add(
                0,
                start,
                start + M,
                1,
                c(1),
                None
            ));
        }
        assert!(settle_fleets(&mut fleets, |f| f, None).is_empty());
        let s = settle_fleets(&mut fleets, |f| f, Some(3 * M));
        let order: Vec<(&str, i64)> = s.iter().map(|(f, w)| (f.as_str(), w.start_ms)).collect();
        assert_eq!(order, vec![("b", 0), ("a", M), ("b", M), ("a", 2 * M)]);
        assert_eq!(fleets["c"].open_len(), 1);
    }
}
