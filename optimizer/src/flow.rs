//! Exact integral min-cost flow: a primal network simplex on integer data.
//!
//! The network has node supplies (positive = source, negative = sink, summing to zero) and arcs
//! with integer lower and upper bounds. [`NetworkSimplex`] keeps a spanning tree of basic arcs
//! rooted at an artificial node (big-M start: one artificial arc per node), prices arcs by block
//! search and selects the leaving arc by the strongly-feasible-tree rule (last blocking arc of
//! the pivot cycle, oriented from its apex), which rules out cycling. After every pivot only the
//! subtree that moved has its depth and potentials recomputed.
//!
//! The flow stays primal feasible when only the costs change, so [`NetworkSimplex::solve`] can
//! be called again with new costs and resumes from the last tree (warm start): the Lagrangian
//! search of [`crate::constrained`] relies on this.
//!
//! Complexity: each pivot costs O(√m) pricing plus O(cycle length + moved subtree); the number
//! of pivots is not polynomially bounded in theory but is small in practice (a few times the
//! number of nodes on the time-expanded networks here).

use crate::{Error, Result};

const NONE: usize = usize::MAX;
/// Capacity standing for "unbounded" (large enough for any supply here, small enough to add).
pub const INF_CAP: i64 = i64::MAX / 8;

const LOWER: i8 = 1;
const UPPER: i8 = -1;
const TREE: i8 = 0;

/// A directed network with supplies and bounded integral arcs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowNetwork {
    supply: Vec<i64>,
    tail: Vec<usize>,
    head: Vec<usize>,
    lower: Vec<i64>,
    upper: Vec<i64>,
}

impl FlowNetwork {
    /// A network of `nodes` nodes, no arcs, zero supplies.
    pub fn new(nodes: usize) -> Self {
        Self {
            supply: vec![0; nodes],
            ..Self::default()
        }
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.supply.len()
    }

    /// Number of arcs.
    pub fn arc_count(&self) -> usize {
        self.tail.len()
    }

    /// Adds an arc `tail → head` with flow bounds `[lower, upper]`; returns its index.
    pub fn add_arc(&mut self, tail: usize, head: usize, lower: i64, upper: i64) -> usize {
        self.tail.push(tail);
        self.head.push(head);
        self.lower.push(lower);
        self.upper.push(upper);
        self.tail.len() - 1
    }

    /// Adds `amount` to the supply of `node` (negative for demand).
    pub fn add_supply(&mut self, node: usize, amount: i64) {
        self.supply[node] += amount;
    }

    /// Supply of `node`.
    pub fn supply(&self, node: usize) -> i64 {
        self.supply[node]
    }

    /// Tail (origin) of `arc`.
    pub fn tail(&self, arc: usize) -> usize {
        self.tail[arc]
    }

    /// Head (destination) of `arc`.
    pub fn head(&self, arc: usize) -> usize {
        self.head[arc]
    }

    /// Lower bound of `arc`.
    pub fn lower(&self, arc: usize) -> i64 {
        self.lower[arc]
    }

    /// Upper bound of `arc`.
    pub fn upper(&self, arc: usize) -> i64 {
        self.upper[arc]
    }

    /// Replaces the bounds of `arc`.
    pub fn set_bounds(&mut self, arc: usize, lower: i64, upper: i64) {
        self.lower[arc] = lower;
        self.upper[arc] = upper;
    }

    /// Cost of a flow under `cost`, exactly.
    pub fn flow_cost(cost: &[i64], flow: &[i64]) -> i128 {
        cost.iter()
            .zip(flow)
            .map(|(&c, &x)| i128::from(c) * i128::from(x))
            .sum()
    }
}

/// Network simplex solver state for one [`FlowNetwork`] (bounds and supplies fixed, costs may
/// change between calls to [`NetworkSimplex::solve`]).
#[derive(Debug, Clone)]
pub struct NetworkSimplex {
    n: usize,
    m: usize,
    lower: Vec<i64>,
    src: Vec<usize>,
    dst: Vec<usize>,
    cap: Vec<i64>,
    cost: Vec<i64>,
    flow: Vec<i64>,
    state: Vec<i8>,
    parent: Vec<usize>,
    pred: Vec<usize>,
    depth: Vec<usize>,
    pi: Vec<i64>,
    first_child: Vec<usize>,
    next_sib: Vec<usize>,
    prev_sib: Vec<usize>,
    next_arc: usize,
    stack: Vec<usize>,
    /// Pivots made so far (all calls).
    pub pivots: u64,
}

impl NetworkSimplex {
    /// Sets up the artificial starting tree for `net`. Fails if supplies do not balance or a
    /// bound is inconsistent.
    pub fn new(net: &FlowNetwork) -> Result<Self> {
        let n = net.node_count();
        let m = net.arc_count();
        let mut supply = net.supply.clone();
        let mut cap = Vec::with_capacity(m + n);
        for a in 0..m {
            let (lo, hi) = (net.lower[a], net.upper[a]);
            if lo > hi || lo < 0 {
                return Err(Error::Infeasible(format!(
                    "arc {a} has bounds [{lo}, {hi}]"
                )));
            }
            cap.push(hi - lo);
            supply[net.tail[a]] -= lo;
            supply[net.head[a]] += lo;
        }
        if supply.iter().sum::<i64>() != 0 {
            return Err(Error::Infeasible("supplies do not sum to zero".into()));
        }
        let root = n;
        let total = m + n;
        let mut src = net.tail.clone();
        let mut dst = net.head.clone();
        let mut flow = vec![0; total];
        let mut state = vec![LOWER; total];
        src.reserve(n);
        dst.reserve(n);
        let mut s = Self {
            n,
            m,
            lower: net.lower.clone(),
            src: Vec::new(),
            dst: Vec::new(),
            cap: Vec::new(),
            cost: vec![0; total],
            flow: Vec::new(),
            state: Vec::new(),
            parent: vec![NONE; n + 1],
            pred: vec![NONE; n + 1],
            depth: vec![0; n + 1],
            pi: vec![0; n + 1],
            first_child: vec![NONE; n + 1],
            next_sib: vec![NONE; n + 1],
            prev_sib: vec![NONE; n + 1],
            next_arc: 0,
            stack: Vec::new(),
            pivots: 0,
        };
        for (i, &b) in supply.iter().enumerate() {
            let a = m + i;
            if b >= 0 {
                src.push(i);
                dst.push(root);
                flow[a] = b;
            } else {
                src.push(root);
                dst.push(i);
                flow[a] = -b;
            }
            cap.push(INF_CAP);
            state[a] = TREE;
        }
        s.src = src;
        s.dst = dst;
        s.cap = cap;
        s.flow = flow;
        s.state = state;
        for i in 0..n {
            s.parent[i] = root;
            s.pred[i] = m + i;
            s.depth[i] = 1;
            s.link(i, root);
        }
        Ok(s)
    }

    fn link(&mut self, x: usize, p: usize) {
        let f = self.first_child[p];
        self.next_sib[x] = f;
        self.prev_sib[x] = NONE;
        if f != NONE {
            self.prev_sib[f] = x;
        }
        self.first_child[p] = x;
    }

    fn unlink(&mut self, x: usize) {
        let (prev, next) = (self.prev_sib[x], self.next_sib[x]);
        if prev != NONE {
            self.next_sib[prev] = next;
        } else {
            self.first_child[self.parent[x]] = next;
        }
        if next != NONE {
            self.prev_sib[next] = prev;
        }
    }

    /// Recomputes depth and potentials of the subtree rooted at `top` from its parent.
    fn refresh_subtree(&mut self, top: usize) {
        let mut stack = std::mem::take(&mut self.stack);
        stack.clear();
        stack.push(top);
        while let Some(x) = stack.pop() {
            let p = self.parent[x];
            let a = self.pred[x];
            self.depth[x] = self.depth[p] + 1;
            self.pi[x] = if self.src[a] == p {
                self.pi[p] + self.cost[a]
            } else {
                self.pi[p] - self.cost[a]
            };
            let mut c = self.first_child[x];
            while c != NONE {
                stack.push(c);
                c = self.next_sib[c];
            }
        }
        self.stack = stack;
    }

    #[inline]
    fn reduced(&self, a: usize) -> i64 {
        self.cost[a] + self.pi[self.src[a]] - self.pi[self.dst[a]]
    }

    fn find_entering(&mut self) -> Option<usize> {
        let total = self.m + self.n;
        if total == 0 {
            return None;
        }
        let block = ((total as f64).sqrt() as usize).max(10);
        let mut best = 0i64;
        let mut entering = NONE;
        let mut count = block;
        for _ in 0..total {
            let e = self.next_arc;
            self.next_arc += 1;
            if self.next_arc == total {
                self.next_arc = 0;
            }
            let st = self.state[e];
            if st != TREE {
                let v = i64::from(st) * self.reduced(e);
                if v < best {
                    best = v;
                    entering = e;
                }
            }
            count -= 1;
            if count == 0 {
                if entering != NONE {
                    return Some(entering);
                }
                count = block;
            }
        }
        (entering != NONE).then_some(entering)
    }

    /// Solves for `cost` (one integer per arc of the network), resuming from the current tree.
    /// Returns `Err(Error::Infeasible)` when no flow meets the supplies and bounds.
    pub fn solve(&mut self, cost: &[i64]) -> Result<()> {
        assert_eq!(cost.len(), self.m, "one cost per arc");
        let max_abs = cost.iter().map(|c| c.unsigned_abs()).max().unwrap_or(0);
        let art = i64::try_from(max_abs)
            .ok()
            .and_then(|c| c.checked_add(1))
            .and_then(|c| c.checked_mul(self.n as i64 + 1))
            .filter(|&c| c < i64::MAX / 8)
            .ok_or(Error::Overflow)?;
        self.cost[..self.m].copy_from_slice(cost);
        for a in self.m..self.m + self.n {
            self.cost[a] = art;
        }
        let root = self.n;
        self.pi[root] = 0;
        self.depth[root] = 0;
        let mut c = self.first_child[root];
        while c != NONE {
            let next = self.next_sib[c];
            self.refresh_subtree(c);
            c = next;
        }
        while let Some(e) = self.find_entering() {
            self.pivot(e)?;
            self.pivots += 1;
        }
        if (self.m..self.m + self.n).any(|a| self.flow[a] > 0) {
            return Err(Error::Infeasible(
                "no flow meets the supplies and arc bounds".into(),
            ));
        }
        Ok(())
    }

    fn pivot(&mut self, e: usize) -> Result<()> {
        let (first, second) = if self.state[e] == LOWER {
            (self.src[e], self.dst[e])
        } else {
            (self.dst[e], self.src[e])
        };
        let (mut u, mut v) = (first, second);
        while u != v {
            if self.depth[u] > self.depth[v] {
                u = self.parent[u];
            } else if self.depth[v] > self.depth[u] {
                v = self.parent[v];
            } else {
                u = self.parent[u];
                v = self.parent[v];
            }
        }
        let join = u;
        // Orientation from the apex: join → … → first → (e) → second → … → join.
        let mut delta = self.cap[e];
        let mut leaving = e;
        let mut side = 0u8;
        let mut leave_node = NONE;
        let mut x = first;
        while x != join {
            let a = self.pred[x];
            let r = if self.src[a] == x {
                self.flow[a]
            } else {
                self.cap[a] - self.flow[a]
            };
            if r < delta {
                delta = r;
                leaving = a;
                side = 1;
                leave_node = x;
            }
            x = self.parent[x];
        }
        x = second;
        while x != join {
            let a = self.pred[x];
            let r = if self.src[a] == x {
                self.cap[a] - self.flow[a]
            } else {
                self.flow[a]
            };
            if r <= delta {
                delta = r;
                leaving = a;
                side = 2;
                leave_node = x;
            }
            x = self.parent[x];
        }
        if delta >= INF_CAP {
            return Err(Error::Unbounded);
        }
        if delta > 0 {
            if self.state[e] == LOWER {
                self.flow[e] += delta;
            } else {
                self.flow[e] -= delta;
            }
            let mut x = first;
            while x != join {
                let a = self.pred[x];
                if self.src[a] == x {
                    self.flow[a] -= delta;
                } else {
                    self.flow[a] += delta;
                }
                x = self.parent[x];
            }
            x = second;
            while x != join {
                let a = self.pred[x];
                if self.src[a] == x {
                    self.flow[a] += delta;
                } else {
                    self.flow[a] -= delta;
                }
                x = self.parent[x];
            }
        }
        if leaving == e {
            self.state[e] = -self.state[e];
            return Ok(());
        }
        self.state[e] = TREE;
        self.state[leaving] = if self.flow[leaving] == 0 {
            LOWER
        } else {
            UPPER
        };
        let (u_in, v_in) = if side == 1 {
            (first, second)
        } else {
            (second, first)
        };
        // Re-hang the path u_in → … → leave_node below v_in through e, reversing it.
        let mut new_parent = v_in;
        let mut new_pred = e;
        let mut x = u_in;
        loop {
            let old_parent = self.parent[x];
            let old_pred = self.pred[x];
            self.unlink(x);
            self.parent[x] = new_parent;
            self.pred[x] = new_pred;
            self.link(x, new_parent);
            if x == leave_node {
                break;
            }
            new_parent = x;
            new_pred = old_pred;
            x = old_parent;
        }
        self.refresh_subtree(u_in);
        Ok(())
    }

    /// Flow on each arc of the network (lower bounds included).
    pub fn flow(&self) -> Vec<i64> {
        (0..self.m).map(|a| self.flow[a] + self.lower[a]).collect()
    }

    /// Node potentials `π` of the last solve: every arc has reduced cost
    /// `cost + π[tail] − π[head]`, zero on basic arcs, ≥ 0 at the lower and ≤ 0 at the upper
    /// bound.
    pub fn potentials(&self) -> &[i64] {
        &self.pi[..self.n]
    }

    /// For every node `i`, the least cost (under the costs of the last solve) of sending one
    /// more unit from `i` to `target` through the residual network of the optimal flow, i.e. the
    /// exact increase of the optimal cost when `i` gets one more unit of supply and `target` one
    /// more unit of demand; `None` where no residual path exists. Reverse Dijkstra on reduced
    /// costs (non-negative at optimality).
    pub fn marginal_costs_to(&self, target: usize) -> Vec<Option<i128>> {
        let n = self.n;
        let mut start = vec![0usize; n + 1];
        for a in 0..self.m {
            start[self.src[a] + 1] += 1;
            start[self.dst[a] + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut inc = vec![0usize; 2 * self.m];
        for a in 0..self.m {
            inc[fill[self.src[a]]] = a;
            fill[self.src[a]] += 1;
            inc[fill[self.dst[a]]] = a;
            fill[self.dst[a]] += 1;
        }
        let mut dist: Vec<Option<i64>> = vec![None; n];
        let mut done = vec![false; n];
        let mut heap = std::collections::BinaryHeap::new();
        dist[target] = Some(0);
        heap.push(std::cmp::Reverse((0i64, target)));
        while let Some(std::cmp::Reverse((d, v))) = heap.pop() {
            if done[v] {
                continue;
            }
            done[v] = true;
            for &a in &inc[start[v]..start[v + 1]] {
                let rc = self.reduced(a);
                // Residual arcs entering v: forward a (src → v) or backward a (dst → v).
                let (u, w) = if self.dst[a] == v && self.flow[a] < self.cap[a] {
                    (self.src[a], rc)
                } else if self.src[a] == v && self.flow[a] > 0 {
                    (self.dst[a], -rc)
                } else {
                    continue;
                };
                let nd = d + w.max(0);
                if !done[u] && dist[u].is_none_or(|old| nd < old) {
                    dist[u] = Some(nd);
                    heap.push(std::cmp::Reverse((nd, u)));
                }
            }
        }
        (0..n)
            .map(|i| {
                dist[i]
                    .map(|d| i128::from(d) + i128::from(self.pi[target]) - i128::from(self.pi[i]))
            })
            .collect()
    }
}

/// Solves `net` for `cost` from scratch; returns the optimal flow (one value per arc).
pub fn min_cost_flow(net: &FlowNetwork, cost: &[i64]) -> Result<Vec<i64>> {
    let mut s = NetworkSimplex::new(net)?;
    s.solve(cost)?;
    Ok(s.flow())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Exhaustive optimum for tiny networks: enumerate every flow vector within bounds.
    fn brute(net: &FlowNetwork, cost: &[i64]) -> Option<i128> {
        let m = net.arc_count();
        let mut x: Vec<i64> = (0..m).map(|a| net.lower(a)).collect();
        let mut best: Option<i128> = None;
        loop {
            let mut bal = net.supply.clone();
            for a in 0..m {
                bal[net.tail(a)] -= x[a];
                bal[net.head(a)] += x[a];
            }
            if bal.iter().all(|&b| b == 0) {
                let c = FlowNetwork::flow_cost(cost, &x);
                best = Some(best.map_or(c, |b: i128| b.min(c)));
            }
            let mut i = 0;
            loop {
                if i == m {
                    return best;
                }
                if x[i] < net.upper(i) {
                    x[i] += 1;
                    break;
                }
                x[i] = net.lower(i);
                i += 1;
            }
        }
    }

    fn check_flow(net: &FlowNetwork, x: &[i64]) {
        let mut bal = net.supply.clone();
        for a in 0..net.arc_count() {
            assert!(x[a] >= net.lower(a) && x[a] <= net.upper(a));
            bal[net.tail(a)] -= x[a];
            bal[net.head(a)] += x[a];
        }
        assert!(bal.iter().all(|&b| b == 0), "conservation {bal:?}");
    }

    #[test]
    fn matches_brute_force_on_random_small_networks() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut feasible = 0;
        for _ in 0..400 {
            let n = rng.gen_range(2..5);
            let m = rng.gen_range(1..6);
            let mut net = FlowNetwork::new(n);
            for _ in 0..m {
                let t = rng.gen_range(0..n);
                let h = rng.gen_range(0..n);
                let lo = if rng.gen_bool(0.2) { 1 } else { 0 };
                net.add_arc(t, h, lo, lo + rng.gen_range(0..3));
            }
            let s = rng.gen_range(0..3);
            let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
            net.add_supply(a, s);
            net.add_supply(b, -s);
            // Costs are non-negative on cycles only if we allow it: random signs test negative
            // cycles, which are bounded here because every arc has a finite capacity.
            let cost: Vec<i64> = (0..m).map(|_| rng.gen_range(-5..10)).collect();
            let want = brute(&net, &cost);
            match min_cost_flow(&net, &cost) {
                Ok(x) => {
                    check_flow(&net, &x);
                    assert_eq!(Some(FlowNetwork::flow_cost(&cost, &x)), want);
                    feasible += 1;
                }
                Err(Error::Infeasible(_)) => assert_eq!(want, None),
                Err(e) => panic!("{e}"),
            }
        }
        assert!(feasible > 100, "too few feasible cases: {feasible}");
    }

    #[test]
    fn warm_start_gives_the_cold_optimum() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..50 {
            let n = 12;
            let mut net = FlowNetwork::new(n);
            for _ in 0..40 {
                let t = rng.gen_range(0..n);
                let h = rng.gen_range(0..n);
                net.add_arc(t, h, 0, rng.gen_range(1..6));
            }
            for _ in 0..4 {
                let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
                net.add_supply(a, 2);
                net.add_supply(b, -2);
            }
            let mut warm = match NetworkSimplex::new(&net) {
                Ok(w) => w,
                Err(_) => continue,
            };
            for _ in 0..5 {
                let cost: Vec<i64> = (0..40).map(|_| rng.gen_range(0..20)).collect();
                let cold = min_cost_flow(&net, &cost);
                let w = warm.solve(&cost).map(|()| warm.flow());
                match (cold, w) {
                    (Ok(c), Ok(w)) => {
                        check_flow(&net, &w);
                        assert_eq!(
                            FlowNetwork::flow_cost(&cost, &c),
                            FlowNetwork::flow_cost(&cost, &w)
                        );
                    }
                    (Err(_), Err(_)) => break,
                    (c, w) => panic!("cold {c:?} warm {w:?}"),
                }
            }
        }
    }

    #[test]
    fn marginal_cost_equals_resolve_difference() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut checked = 0;
        for _ in 0..100 {
            let n = 8;
            let mut net = FlowNetwork::new(n);
            for _ in 0..25 {
                let t = rng.gen_range(0..n);
                let h = rng.gen_range(0..n);
                net.add_arc(t, h, 0, rng.gen_range(1..4));
            }
            net.add_supply(0, 3);
            net.add_supply(n - 1, -3);
            let cost: Vec<i64> = (0..25).map(|_| rng.gen_range(0..9)).collect();
            let mut s = match NetworkSimplex::new(&net) {
                Ok(s) => s,
                Err(_) => continue,
            };
            if s.solve(&cost).is_err() {
                continue;
            }
            let base = FlowNetwork::flow_cost(&cost, &s.flow());
            let marg = s.marginal_costs_to(n - 1);
            for (i, mc) in marg.iter().enumerate().take(n - 1) {
                let mut more = net.clone();
                more.add_supply(i, 1);
                more.add_supply(n - 1, -1);
                let r = min_cost_flow(&more, &cost).map(|x| FlowNetwork::flow_cost(&cost, &x));
                match (mc, r) {
                    (Some(mc), Ok(v)) => {
                        assert_eq!(base + mc, v);
                        checked += 1;
                    }
                    (None, Err(Error::Infeasible(_))) => {}
                    (mc, r) => panic!("node {i}: marginal {mc:?} resolve {r:?}"),
                }
            }
        }
        assert!(checked > 50);
    }
}
