//! The rebalancing solver: weighted objective, move budget and objective bounds on the
//! time-expanded network, solved exactly by [`crate::constrained`], every plan checked.

use crate::checker::check;
use crate::constrained::{solve_constrained, SideConstraint};
use crate::model::Instance;
use crate::network::TimeExpanded;
use crate::plan::{Objective, Plan, Weights};
use crate::{Error, Result};

/// Default branch-and-bound node limit.
pub const DEFAULT_MAX_NODES: usize = 20_000;

/// What one solve optimises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Weights of the scalar objective.
    pub weights: Weights,
    /// Upper bounds `value ≤ bound` on objectives (lexicographic levels, ε-constraints).
    pub bounds: Vec<(Objective, i64)>,
    /// Branch-and-bound node limit.
    pub max_nodes: usize,
}

impl Spec {
    /// Plain weighted solve.
    pub fn weighted(weights: Weights) -> Self {
        Self {
            weights,
            bounds: Vec::new(),
            max_nodes: DEFAULT_MAX_NODES,
        }
    }

    /// The same spec with one more bound.
    pub fn with_bound(mut self, o: Objective, bound: i64) -> Self {
        self.bounds.push((o, bound));
        self
    }
}

/// Value of one more idle vehicle at period 0 in a zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShadowPrice {
    /// Zone index.
    pub zone: usize,
    /// Decrease of the optimal objective (objective units) for one more vehicle; `None` when
    /// one more vehicle would make the instance infeasible (no capacity to hold it).
    pub value: Option<f64>,
    /// `true` when the value is the exact re-solve difference (no side constraint was active at
    /// the root); otherwise it is the Lagrangian dual at the optimal multiplier λ*, which is at
    /// least the exact re-solve difference minus the root gap (optimum − LP bound).
    pub exact: bool,
}

/// Solver effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolveStats {
    /// Nodes of the time-expanded network.
    pub nodes: usize,
    /// Arcs of the time-expanded network.
    pub arcs: usize,
    /// Min-cost flows solved.
    pub flow_solves: usize,
    /// Branch-and-bound nodes.
    pub bb_nodes: usize,
    /// Simplex pivots.
    pub pivots: u64,
}

/// A checked optimal plan with its certificate data.
#[derive(Debug, Clone)]
pub struct Solution {
    /// The optimal plan (passed the checker).
    pub plan: Plan,
    /// Root bound (objective units) as `(numerator, denominator)`: the LP relaxation's optimum
    /// when at most one side constraint (the budget or one objective bound) is present.
    pub lp_bound: (i128, i128),
    /// Per-zone shadow prices of one more vehicle at period 0.
    pub shadow_prices: Vec<ShadowPrice>,
    /// Effort.
    pub stats: SolveStats,
}

impl Solution {
    /// The root bound as a float.
    pub fn lp_bound_f64(&self) -> f64 {
        self.lp_bound.0 as f64 / self.lp_bound.1 as f64
    }
}

/// Solves `inst` for `spec` exactly and checks the plan before returning it.
pub fn solve(inst: &Instance, spec: &Spec) -> Result<Solution> {
    let w = spec.weights;
    if Objective::ALL.iter().any(|&o| w.of(o) < 0) {
        return Err(Error::Invalid("weights must be ≥ 0".into()));
    }
    let demand = inst.total_demand() as i64;
    let mut min_served = 0i64;
    let mut side = Vec::new();
    let te_kinds_probe = TimeExpanded::build(inst, 0);
    if let Some(b) = inst.move_budget() {
        side.push(SideConstraint {
            coef: te_kinds_probe.kinds.iter().map(|k| k.moves()).collect(),
            rhs: i64::from(b),
        });
    }
    for &(o, bound) in &spec.bounds {
        match o {
            Objective::Coverage => min_served = min_served.max(demand - bound),
            _ => side.push(SideConstraint {
                coef: te_kinds_probe
                    .kinds
                    .iter()
                    .map(|k| o.coefficient(k, inst))
                    .collect(),
                rhs: bound,
            }),
        }
    }
    let te = if min_served > 0 {
        TimeExpanded::build(inst, min_served as u64)
    } else {
        te_kinds_probe
    };
    let cost: Vec<i64> = te
        .kinds
        .iter()
        .map(|k| {
            Objective::ALL.iter().try_fold(0i64, |acc, &o| {
                w.of(o)
                    .checked_mul(o.coefficient(k, inst))
                    .and_then(|x| acc.checked_add(x))
            })
        })
        .collect::<Option<_>>()
        .ok_or(Error::Overflow)?;
    let constant: i128 = Objective::ALL
        .iter()
        .map(|&o| i128::from(w.of(o)) * i128::from(o.constant(inst)))
        .sum();
    let sol = solve_constrained(&te.net, &cost, &side, spec.max_nodes)?;
    let plan = Plan::from_flow(inst, &te.kinds, &sol.flow, w);
    check(inst, &spec.bounds, &plan)?;
    if i128::from(plan.objective) != sol.cost + constant {
        return Err(Error::Check(format!(
            "plan objective {} ≠ flow cost {}",
            plan.objective,
            sol.cost + constant
        )));
    }
    let root = &sol.root;
    let marginal = root.simplex.marginal_costs_to(te.sink);
    let shadow_prices = (0..inst.zone_count())
        .map(|z| ShadowPrice {
            zone: z,
            value: marginal[te.node(z, 0)].map(|m| -(m as f64) / root.q as f64),
            exact: root.constraint.is_none(),
        })
        .collect();
    let (num, den) = sol.root_bound;
    Ok(Solution {
        plan,
        lp_bound: (num + constant * den, den),
        shadow_prices,
        stats: SolveStats {
            nodes: te.net.node_count(),
            arcs: te.net.arc_count(),
            flow_solves: sol.flow_solves,
            bb_nodes: sol.nodes,
            pivots: sol.pivots,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Scenario, TravelConfig, TravelSource, Zone};

    fn line(n: usize, minutes: Vec<Vec<f64>>, km: Vec<Vec<f64>>, sc: Scenario) -> Instance {
        let zones = (0..n)
            .map(|i| Zone {
                id: format!("z{i}"),
                lat: 0.0,
                lon: 0.0,
                capacity: 10,
                neighbours: None,
            })
            .collect();
        let travel = TravelConfig {
            source: TravelSource::Matrix { minutes, km },
            cost_per_km: 1.0,
        };
        Instance::new(zones, &travel, sc).unwrap()
    }

    /// One vehicle in A, demand in C at period 2. Direct A→C costs 60, A→B→C costs 2 + 2, an
    /// unmet request costs 100. Budget 1: the LP mixes half the two-move route with half
    /// "unserved" (value 52), the integer optimum is the direct move (60).
    fn gap_instance() -> Instance {
        let km = vec![
            vec![0.0, 0.02, 0.6],
            vec![0.02, 0.0, 0.02],
            vec![0.6, 0.02, 0.0],
        ];
        let minutes = vec![vec![0.0, 10.0, 10.0]; 3];
        let sc = Scenario {
            period_minutes: 15,
            horizon: 3,
            idle: vec![1, 0, 0],
            arrivals: vec![vec![0; 3]; 3],
            demand: vec![vec![0; 3], vec![0; 3], vec![0, 0, 1]],
            move_budget: Some(1),
        };
        line(3, minutes, km, sc)
    }

    #[test]
    fn closes_an_lp_gap_created_by_the_budget() {
        let inst = gap_instance();
        let w = Weights {
            cost: 1,
            efficiency: 0,
            coverage: 100,
        };
        let sol = solve(&inst, &Spec::weighted(w)).unwrap();
        assert_eq!(sol.plan.objective, 60);
        assert_eq!(sol.lp_bound, (52, 1));
        assert!(sol.stats.bb_nodes > 1 || sol.plan.objective == 60);
        assert_eq!(sol.plan.moves.len(), 1);
        assert_eq!((sol.plan.moves[0].from, sol.plan.moves[0].to), (0, 2));
        // Without a budget the two-move route wins.
        let free = solve(&inst.with_move_budget(None), &Spec::weighted(w)).unwrap();
        assert_eq!(free.plan.objective, 4);
        assert_eq!(free.lp_bound, (4, 1));
    }

    #[test]
    fn is_deterministic() {
        let inst = gap_instance().with_move_budget(Some(2));
        let a = solve(&inst, &Spec::weighted(Weights::default())).unwrap();
        let b = solve(&inst, &Spec::weighted(Weights::default())).unwrap();
        assert_eq!(format!("{:?}", a.plan), format!("{:?}", b.plan));
    }

    #[test]
    fn shadow_prices_equal_resolving_with_one_more_vehicle() {
        // Non-binding budget: the dual value is exact.
        let km = vec![
            vec![0.0, 1.0, 3.0],
            vec![1.0, 0.0, 1.5],
            vec![3.0, 1.5, 0.0],
        ];
        let minutes = vec![
            vec![0.0, 10.0, 20.0],
            vec![10.0, 0.0, 14.0],
            vec![20.0, 14.0, 0.0],
        ];
        let sc = Scenario {
            period_minutes: 15,
            horizon: 4,
            idle: vec![1, 0, 2],
            arrivals: vec![vec![0, 1, 0, 0], vec![0; 4], vec![0; 4]],
            demand: vec![vec![0, 1, 2, 0], vec![1, 2, 0, 1], vec![0, 0, 1, 3]],
            move_budget: None,
        };
        let inst = line(3, minutes, km, sc);
        let w = Weights {
            cost: 1,
            efficiency: 1,
            coverage: 500,
        };
        let base = solve(&inst, &Spec::weighted(w)).unwrap();
        for sp in &base.shadow_prices {
            assert!(sp.exact);
            let more = solve(&inst.with_extra_idle(sp.zone, 1), &Spec::weighted(w)).unwrap();
            let diff = (base.plan.objective - more.plan.objective) as f64;
            assert_eq!(sp.value, Some(diff), "zone {}", sp.zone);
        }
        assert!(base.shadow_prices.iter().any(|s| s.value.unwrap() > 0.0));
    }

    #[test]
    fn binding_budget_shadow_price_bounds_the_resolve_difference() {
        let inst = gap_instance();
        let w = Weights {
            cost: 1,
            efficiency: 0,
            coverage: 100,
        };
        let base = solve(&inst, &Spec::weighted(w)).unwrap();
        for sp in &base.shadow_prices {
            assert!(!sp.exact);
            let more = solve(&inst.with_extra_idle(sp.zone, 1), &Spec::weighted(w)).unwrap();
            let diff = (base.plan.objective - more.plan.objective) as f64;
            // L(λ*) is a lower bound of the optimum with one more vehicle, and equals the
            // optimum here only up to the gap: value ≥ diff − (optimum − bound).
            let gap = base.plan.objective as f64 - base.lp_bound_f64();
            assert!(sp.value.unwrap() + 1e-9 >= diff - gap, "zone {}", sp.zone);
        }
    }

    #[test]
    fn coverage_floor_and_cost_bound_are_honoured() {
        let inst = gap_instance().with_move_budget(Some(2));
        let w = Weights {
            cost: 1,
            efficiency: 0,
            coverage: 0,
        };
        let cheap = solve(&inst, &Spec::weighted(w)).unwrap();
        assert_eq!(cheap.plan.values.served, 0);
        let covered = solve(&inst, &Spec::weighted(w).with_bound(Objective::Coverage, 0)).unwrap();
        assert_eq!(covered.plan.values.served, 1);
        assert_eq!(covered.plan.values.cost_cents, 4);
        let r = solve(
            &inst,
            &Spec::weighted(w)
                .with_bound(Objective::Coverage, 0)
                .with_bound(Objective::Cost, 3),
        );
        assert!(matches!(r, Err(Error::Infeasible(_))), "{r:?}");
    }
}
