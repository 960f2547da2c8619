//! The pure domain rules the command worker enforces inside its transaction: capacity, the
//! request priority queue, double-booking overlap, mission dependencies (and cycles), status
//! transitions, and the derived numbers (overall score, trend, objective score).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- capacity and the queue

/// Whether `amount` more fits into a pool of `capacity` with `allocated` in use.
pub fn fits(capacity: i64, allocated: i64, amount: i64) -> bool {
    amount >= 0
        && allocated
            .checked_add(amount)
            .is_some_and(|total| total <= capacity)
}

/// Why an allocation of `amount` is refused, if it is.
pub fn capacity_error(capacity: i64, allocated: i64, amount: i64) -> Option<String> {
    (!fits(capacity, allocated, amount)).then(|| {
        format!(
            "over capacity: {amount} requested, {} free of {capacity}",
            (capacity - allocated).max(0)
        )
    })
}

/// A pending resource request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    /// Higher is served first.
    pub priority: i32,
    /// Creation time (epoch microseconds); older is served first among equal priorities.
    pub created_us: i64,
    pub amount: i64,
}

/// The requests to turn into allocations when `free` capacity is available: in queue order
/// (priority descending, then oldest, then id), as long as each fits. The queue stops at the
/// first request that does not fit, so a large high-priority request is never starved by
/// smaller ones behind it.
pub fn serve_queue(free: i64, pending: &[Queued]) -> Vec<String> {
    let mut order: Vec<&Queued> = pending.iter().collect();
    order.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.created_us.cmp(&b.created_us))
            .then(a.id.cmp(&b.id))
    });
    let mut left = free;
    let mut served = Vec::new();
    for q in order {
        if q.amount > left {
            break;
        }
        left -= q.amount;
        served.push(q.id.clone());
    }
    served
}

// ---------------------------------------------------------------- double booking

/// A half-open time range `[start, end)`; no end = open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

/// Whether two ranges share any instant.
pub fn overlaps(a: Interval, b: Interval) -> bool {
    let a_before_b_ends = b.end_ms.is_none_or(|e| a.start_ms < e);
    let b_before_a_ends = a.end_ms.is_none_or(|e| b.start_ms < e);
    a_before_b_ends && b_before_a_ends
}

// ---------------------------------------------------------------- mission dependencies

/// The dependencies (id, status) that are not completed yet, which keep an execution from
/// starting.
pub fn unmet_dependencies(deps: &[(String, ExecutionStatus)]) -> Vec<String> {
    deps.iter()
        .filter(|(_, s)| *s != ExecutionStatus::Completed)
        .map(|(id, _)| id.clone())
        .collect()
}

/// Whether adding the edge `from` depends on `to` to `edges` (pairs execution → dependency)
/// closes a cycle (including `from == to`).
pub fn creates_cycle(edges: &[(String, String)], from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a.as_str()).or_default().push(b.as_str());
    }
    // A cycle exists when `from` is reachable from `to`.
    let mut seen = BTreeSet::new();
    let mut stack = vec![to];
    while let Some(n) = stack.pop() {
        if n == from {
            return true;
        }
        if seen.insert(n) {
            stack.extend(next.get(n).into_iter().flatten().copied());
        }
    }
    false
}

// ---------------------------------------------------------------- status machines

macro_rules! status_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }
     transitions { $($from:ident => [$($to:ident),*]),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$v),)* _ => None }
            }

            /// The states this one may move to.
            pub fn next(self) -> &'static [$name] {
                #[allow(unreachable_patterns)]
                match self { $($name::$from => &[$($name::$to),*],)* _ => &[] }
            }

            pub fn can_become(self, to: $name) -> bool {
                self.next().contains(&to)
            }

            /// Why `self → to` is refused, if it is.
            pub fn transition_error(self, to: $name) -> Option<String> {
                (!self.can_become(to)).then(|| format!("cannot go from {} to {}", self.as_str(), to.as_str()))
            }
        }
    };
}

status_enum! {
    /// Alert lifecycle (the alerts pipeline raises `firing`; people resolve).
    AlertStatus { Firing = "firing", Resolved = "resolved" }
    transitions { Firing => [Resolved] }
}

status_enum! {
    /// Resource conflicts and safety events: open until resolved.
    CaseStatus { Open = "open", Resolved = "resolved" }
    transitions { Open => [Resolved] }
}

status_enum! {
    /// A resource request waits in the pool's queue until served or cancelled.
    RequestStatus { Pending = "pending", Fulfilled = "fulfilled", Cancelled = "cancelled" }
    transitions { Pending => [Fulfilled, Cancelled] }
}

status_enum! {
    /// Mission execution: scheduled → running → completed / failed / aborted.
    ExecutionStatus {
        Scheduled = "scheduled",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Aborted = "aborted",
    }
    transitions { Scheduled => [Running, Aborted], Running => [Completed, Failed, Aborted] }
}

status_enum! {
    /// Optimization run: queued → running → completed / failed; cancellable until finished.
    RunStatus {
        Queued = "queued",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
    transitions { Queued => [Running, Cancelled], Running => [Completed, Failed, Cancelled] }
}

status_enum! {
    /// Rebalancing plan: proposed → approved → executed, or rejected.
    RebalancingStatus {
        Proposed = "proposed",
        Approved = "approved",
        Executed = "executed",
        Rejected = "rejected",
    }
    transitions { Proposed => [Approved, Rejected], Approved => [Executed, Rejected] }
}

impl ExecutionStatus {
    pub fn is_final(self) -> bool {
        self.next().is_empty()
    }
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        self.next().is_empty()
    }
}

// ---------------------------------------------------------------- derived numbers

/// Weights of the performance score components (sum 1).
pub const SCORE_WEIGHTS: [(&str, f64); 5] = [
    ("efficiency", 0.25),
    ("utilization", 0.20),
    ("reliability", 0.20),
    ("safety", 0.25),
    ("cost", 0.10),
];

/// The overall score 0..=100 of components 0..=100, in the order of [`SCORE_WEIGHTS`].
pub fn overall_score(components: [f64; 5]) -> f64 {
    let s: f64 = components
        .iter()
        .zip(SCORE_WEIGHTS)
        .map(|(v, (_, w))| v * w)
        .sum();
    (s * 100.0).round() / 100.0
}

/// Direction of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
    Flat,
}

/// The statistics of an evenly spaced series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendStats {
    /// Least-squares slope per step.
    pub slope: f64,
    pub direction: Direction,
    /// Change from the first to the last fitted value, percent of the first; `None` when it
    /// is zero.
    pub change_pct: Option<f64>,
    /// The fitted value one step after the last sample.
    pub forecast: f64,
}

/// Least-squares trend of `values` (at least two). A slope whose fitted change over the series
/// is under 1 % of the mean magnitude counts as flat.
pub fn trend(values: &[f64]) -> Option<TrendStats> {
    let n = values.len();
    if n < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let nf = n as f64;
    let mean_x = (nf - 1.0) / 2.0;
    let mean_y = values.iter().sum::<f64>() / nf;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let first = intercept;
    let last = intercept + slope * (nf - 1.0);
    let scale = values.iter().map(|v| v.abs()).sum::<f64>() / nf;
    let direction = if (last - first).abs() <= 0.01 * scale || slope == 0.0 {
        Direction::Flat
    } else if slope > 0.0 {
        Direction::Up
    } else {
        Direction::Down
    };
    let change_pct = (first != 0.0).then(|| (last - first) / first.abs() * 100.0);
    Some(TrendStats {
        slope,
        direction,
        change_pct,
        forecast: intercept + slope * nf,
    })
}

/// Weighted objective of an optimization result: `efficiency` and `coverage` in 0..=1 higher is
/// better, `cost` in 0..=1 lower is better. Weights need not sum to 1 (at least one > 0).
pub fn objective_score(weights: [f64; 3], cost: f64, efficiency: f64, coverage: f64) -> f64 {
    let [wc, we, wv] = weights;
    let total = wc + we + wv;
    if total <= 0.0 {
        return 0.0;
    }
    (wc * (1.0 - cost) + we * efficiency + wv * coverage) / total
}

/// In-use share of a capacity; `None` for a zero capacity.
pub fn utilization(in_use: i64, capacity: i64) -> Option<f64> {
    (capacity > 0).then(|| in_use as f64 / capacity as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: &str, priority: i32, created_us: i64, amount: i64) -> Queued {
        Queued {
            id: id.into(),
            priority,
            created_us,
            amount,
        }
    }

    #[test]
    fn capacity() {
        assert!(fits(10, 7, 3));
        assert!(!fits(10, 7, 4));
        assert!(!fits(10, 12, 0), "already over capacity");
        assert!(!fits(10, 0, -1));
        assert!(!fits(i64::MAX, i64::MAX, 1), "no overflow");
        assert_eq!(capacity_error(10, 7, 3), None);
        assert_eq!(
            capacity_error(10, 7, 5).unwrap(),
            "over capacity: 5 requested, 3 free of 10"
        );
    }

    #[test]
    fn queue_serves_highest_priority_then_oldest_while_it_fits() {
        let pending = [
            q("low-old", 1, 1, 1),
            q("high-new", 9, 5, 2),
            q("high-old", 9, 2, 2),
            q("mid", 5, 0, 1),
        ];
        assert_eq!(
            serve_queue(10, &pending),
            ["high-old", "high-new", "mid", "low-old"]
        );
        assert_eq!(serve_queue(4, &pending), ["high-old", "high-new"]);
        assert_eq!(serve_queue(5, &pending), ["high-old", "high-new", "mid"]);
        assert!(
            serve_queue(1, &pending).is_empty(),
            "head of line does not fit: nobody jumps it"
        );
        assert!(serve_queue(0, &[]).is_empty());
        // Same priority and time: id decides, so the order is total.
        assert_eq!(
            serve_queue(2, &[q("b", 1, 1, 1), q("a", 1, 1, 1)]),
            ["a", "b"]
        );
    }

    #[test]
    fn overlap_is_half_open() {
        let i = |s, e| Interval {
            start_ms: s,
            end_ms: e,
        };
        assert!(overlaps(i(0, Some(10)), i(5, Some(15))));
        assert!(overlaps(i(5, Some(15)), i(0, Some(10))));
        assert!(
            !overlaps(i(0, Some(10)), i(10, Some(20))),
            "touching ends do not overlap"
        );
        assert!(overlaps(i(0, None), i(100, Some(200))), "open-ended");
        assert!(!overlaps(i(300, None), i(100, Some(200))));
        assert!(overlaps(i(0, None), i(5, None)));
        assert!(overlaps(i(0, Some(100)), i(10, Some(20))), "containment");
    }

    #[test]
    fn dependencies_and_cycles() {
        use ExecutionStatus::*;
        let deps = vec![
            ("a".to_string(), Completed),
            ("b".to_string(), Running),
            ("c".to_string(), Failed),
        ];
        assert_eq!(unmet_dependencies(&deps), ["b", "c"]);
        assert!(unmet_dependencies(&deps[..1]).is_empty());
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        let edges = vec![e("a", "b"), e("b", "c")];
        assert!(creates_cycle(&edges, "c", "a"));
        assert!(creates_cycle(&edges, "a", "a"));
        assert!(!creates_cycle(&edges, "a", "c"), "redundant edge, no cycle");
        assert!(!creates_cycle(&edges, "d", "a"));
    }

    #[test]
    fn transitions() {
        use ExecutionStatus::*;
        assert!(Scheduled.can_become(Running));
        assert!(Running.can_become(Completed));
        assert!(!Scheduled.can_become(Completed));
        assert!(!Completed.can_become(Running));
        assert!(Completed.is_final() && !Running.is_final());
        assert_eq!(
            Completed.transition_error(Running).unwrap(),
            "cannot go from completed to running"
        );
        assert!(AlertStatus::Firing.can_become(AlertStatus::Resolved));
        assert!(
            !AlertStatus::Resolved.can_become(AlertStatus::Resolved),
            "resolving twice is refused"
        );
        assert!(RunStatus::Queued.can_become(RunStatus::Cancelled));
        assert!(!RunStatus::Completed.can_become(RunStatus::Cancelled));
        assert!(!RequestStatus::Fulfilled.can_become(RequestStatus::Cancelled));
        assert!(RebalancingStatus::Approved.can_become(RebalancingStatus::Executed));
        assert!(!RebalancingStatus::Proposed.can_become(RebalancingStatus::Executed));
        for s in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn derived_numbers() {
        assert_eq!(overall_score([100.0; 5]), 100.0);
        assert_eq!(overall_score([80.0, 60.0, 90.0, 100.0, 50.0]), 80.0);
        let t = trend(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((t.slope - 1.0).abs() < 1e-12);
        assert_eq!(t.direction, Direction::Up);
        assert!((t.change_pct.unwrap() - 300.0).abs() < 1e-9);
        assert!((t.forecast - 5.0).abs() < 1e-12);
        assert_eq!(trend(&[5.0, 5.0, 5.0]).unwrap().direction, Direction::Flat);
        assert_eq!(trend(&[10.0, 8.0, 6.0]).unwrap().direction, Direction::Down);
        assert_eq!(trend(&[0.0, 0.0]).unwrap().change_pct, None);
        assert!(trend(&[1.0]).is_none());
        assert!(trend(&[1.0, f64::NAN]).is_none());
        assert!((objective_score([1.0, 1.0, 2.0], 0.2, 0.6, 0.5) - 0.6).abs() < 1e-12);
        assert_eq!(objective_score([0.0, 0.0, 0.0], 0.0, 1.0, 1.0), 0.0);
        assert_eq!(utilization(3, 4), Some(0.75));
        assert_eq!(utilization(3, 0), None);
    }
}
