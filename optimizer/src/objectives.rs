//! Multi-objective modes over cost, efficiency and coverage: weighted, lexicographic with
//! tolerances, and a Pareto front by ε-constraint on coverage with its payoff table.
//!
//! Every solve goes through [`crate::solver::solve`], so every plan here is exact and checked.
//! - **Weighted**: one solve with the run's integer weights.
//! - **Lexicographic**: levels in priority order; level `i` minimises its objective subject to
//!   `value_j ≤ bound_j` for every earlier level `j`, where `bound_j` is level `j`'s optimum
//!   relaxed by its relative tolerance (`⌊opt·(1+tol)⌋` for cost and efficiency; for coverage the
//!   served demand may fall to `⌈served·(1−tol)⌉`). Coverage bounds are a lower bound on the
//!   served-demand arc (network structure); cost and efficiency bounds are side constraints,
//!   handled exactly by the Lagrangian branch and bound. With tolerance 0 this is the exact
//!   lexicographic optimum.
//! - **Pareto** (ε-constraint on coverage): for served-demand floors `s` spread over
//!   `[s_min, s_max]` minimise `M·(w_cost·cost + w_eff·efficiency) + unmet` with `M = demand + 1`.
//!   Since unmet ≤ demand < M and all values are integers, this is exactly the lexicographic
//!   minimum (first the weighted secondary objective, then the most coverage among its ties),
//!   so no returned point is weakly dominated through coverage. Duplicates and dominated points
//!   (in all three objectives) are removed; the point minimising the run's weights is marked.

use crate::model::Instance;
use crate::plan::{Objective, ObjectiveValues, Weights};
use crate::solver::{solve, Solution, Spec};
use crate::{Error, Result};

/// One lexicographic level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// The objective minimised at this level.
    pub objective: Objective,
    /// Relative tolerance (≥ 0) later levels may give up on this one.
    pub tolerance: f64,
}

/// A multi-objective mode of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Minimise the weighted sum.
    Weighted(Weights),
    /// Minimise level by level.
    Lexicographic(Vec<Level>),
    /// ε-constraint front on coverage; `points` floors, the chosen point by `weights`.
    Pareto {
        /// The run's weights (secondary objective and choice of the point).
        weights: Weights,
        /// Number of ε levels (≥ 2).
        points: usize,
    },
}

/// The result of a run in some [`Mode`].
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Weighted solve.
    Weighted(Solution),
    /// Lexicographic solve.
    Lexicographic(Lexicographic),
    /// Pareto front.
    Pareto(ParetoFront),
}

impl Mode {
    /// Runs the mode on `inst`.
    pub fn run(&self, inst: &Instance) -> Result<Outcome> {
        match self {
            Self::Weighted(w) => solve(inst, &Spec::weighted(*w)).map(Outcome::Weighted),
            Self::Lexicographic(levels) => lexicographic(inst, levels).map(Outcome::Lexicographic),
            Self::Pareto { weights, points } => {
                pareto_front(inst, *weights, *points).map(Outcome::Pareto)
            }
        }
    }
}

impl Outcome {
    /// The plan to act on: the weighted optimum, the last lexicographic level, or the chosen
    /// point of the front.
    pub fn solution(&self) -> &Solution {
        match self {
            Self::Weighted(s) => s,
            Self::Lexicographic(l) => &l.solution,
            Self::Pareto(p) => &p.points[p.chosen].solution,
        }
    }
}

/// A lexicographic result.
#[derive(Debug, Clone)]
pub struct Lexicographic {
    /// Per level: objective, its optimum at that level, and the bound imposed on later levels.
    pub levels: Vec<(Objective, i64, i64)>,
    /// The plan of the last level (meets every earlier bound).
    pub solution: Solution,
}

/// Solves `levels` in order (see the module docs).
pub fn lexicographic(inst: &Instance, levels: &[Level]) -> Result<Lexicographic> {
    if levels.is_empty()
        || levels
            .iter()
            .any(|l| !(l.tolerance >= 0.0 && l.tolerance.is_finite()))
    {
        return Err(Error::Invalid(
            "need levels with finite tolerances ≥ 0".into(),
        ));
    }
    let demand = inst.total_demand() as i64;
    let mut spec = Spec::weighted(Weights::only(levels[0].objective, 1));
    let mut out = Vec::new();
    let mut last = None;
    for level in levels {
        spec.weights = Weights::only(level.objective, 1);
        let sol = solve(inst, &spec)?;
        let opt = level.objective.value(&sol.plan.values);
        let bound = match level.objective {
            Objective::Coverage => {
                let served = demand - opt;
                demand - (served as f64 * (1.0 - level.tolerance)).ceil().max(0.0) as i64
            }
            _ => opt + (opt.abs() as f64 * level.tolerance).floor() as i64,
        };
        spec = spec.with_bound(level.objective, bound);
        out.push((level.objective, opt, bound));
        last = Some(sol);
    }
    let solution = last.ok_or_else(|| Error::Invalid("no level".into()))?;
    Ok(Lexicographic {
        levels: out,
        solution,
    })
}

/// One point of the front.
#[derive(Debug, Clone)]
pub struct ParetoPoint {
    /// The served-demand floor (ε) this point was solved for.
    pub min_served: i64,
    /// The checked optimal plan at that floor.
    pub solution: Solution,
    /// `true` for the point the run's weights choose.
    pub chosen: bool,
}

impl ParetoPoint {
    /// The point's objective values.
    pub fn values(&self) -> &ObjectiveValues {
        &self.solution.plan.values
    }
}

/// Best and worst value of one objective over the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayoffRow {
    /// The objective.
    pub objective: Objective,
    /// Its best (lowest) value on the front.
    pub best: i64,
    /// Its worst (highest) value on the front.
    pub worst: i64,
}

/// A Pareto front with its payoff table.
#[derive(Debug, Clone)]
pub struct ParetoFront {
    /// Non-dominated points, by increasing served demand.
    pub points: Vec<ParetoPoint>,
    /// Index of the chosen point.
    pub chosen: usize,
    /// Best and worst of each objective over the front.
    pub payoff: Vec<PayoffRow>,
}

/// The ε-constraint front on coverage (see the module docs). `weights` give the secondary
/// objective (cost and efficiency; both 1 when both are 0) and choose the marked point.
pub fn pareto_front(inst: &Instance, weights: Weights, points: usize) -> Result<ParetoFront> {
    if points < 2 {
        return Err(Error::Invalid("a front needs at least 2 ε levels".into()));
    }
    let demand = inst.total_demand() as i64;
    let (wc, we) = match (weights.cost, weights.efficiency) {
        (0, 0) => (1, 1),
        other => other,
    };
    let big = demand + 1;
    let eps_weights = Weights {
        cost: wc.checked_mul(big).ok_or(Error::Overflow)?,
        efficiency: we.checked_mul(big).ok_or(Error::Overflow)?,
        coverage: 1,
    };
    let most = solve(inst, &Spec::weighted(Weights::only(Objective::Coverage, 1)))?;
    let s_max = most.plan.values.served;
    let cheapest = solve(inst, &Spec::weighted(eps_weights))?;
    let s_min = cheapest.plan.values.served;
    let mut floors: Vec<i64> = (0..points)
        .map(|i| {
            let span = (s_max - s_min) as i128 * i as i128;
            s_min + (span / (points as i128 - 1)) as i64
        })
        .collect();
    floors.dedup();
    let mut found: Vec<ParetoPoint> = Vec::new();
    for &s in &floors {
        let sol = if s == s_min {
            cheapest.clone()
        } else {
            solve(
                inst,
                &Spec::weighted(eps_weights).with_bound(Objective::Coverage, demand - s),
            )?
        };
        found.push(ParetoPoint {
            min_served: s,
            solution: sol,
            chosen: false,
        });
    }
    let mut kept: Vec<ParetoPoint> = Vec::new();
    for (i, p) in found.iter().enumerate() {
        let v = p.values();
        let dominated = found.iter().any(|q| q.values().dominates(v));
        let duplicate = found[..i].iter().any(|q| same(q.values(), v));
        if !dominated && !duplicate {
            kept.push(p.clone());
        }
    }
    kept.sort_by_key(|p| (p.values().served, p.min_served));
    let chosen = (0..kept.len())
        .min_by_key(|&i| (weights.scalar(kept[i].values()).unwrap_or(i64::MAX), i))
        .ok_or_else(|| Error::Infeasible("empty front".into()))?;
    kept[chosen].chosen = true;
    let payoff = Objective::ALL
        .iter()
        .map(|&o| {
            let vals = kept.iter().map(|p| o.value(p.values()));
            PayoffRow {
                objective: o,
                best: vals.clone().min().unwrap_or(0),
                worst: vals.max().unwrap_or(0),
            }
        })
        .collect();
    Ok(ParetoFront {
        points: kept,
        chosen,
        payoff,
    })
}

fn same(a: &ObjectiveValues, b: &ObjectiveValues) -> bool {
    Objective::ALL.iter().all(|&o| o.value(a) == o.value(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Scenario, TravelConfig, TravelSource, Zone};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Vehicles concentrated in a few zones, demand spread out: serving more costs more km.
    fn spread_instance(seed: u64, budget: Option<u32>) -> Instance {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = 12;
        let zones = (0..n)
            .map(|i| Zone {
                id: format!("z{i}"),
                lat: 45.45 + 0.012 * (i % 4) as f64,
                lon: -73.65 + 0.015 * (i / 4) as f64,
                capacity: 20,
                neighbours: None,
            })
            .collect();
        let idle = (0..n).map(|i| if i % 5 == 0 { 6 } else { 0 }).collect();
        let demand = (0..n)
            .map(|i| {
                (0..4)
                    .map(|_| if i % 5 == 0 { 0 } else { rng.gen_range(0..3) })
                    .collect()
            })
            .collect();
        let travel = TravelConfig {
            source: TravelSource::Haversine { speed_kmh: 25.0 },
            cost_per_km: 0.5,
        };
        let sc = Scenario {
            period_minutes: 15,
            horizon: 4,
            idle,
            arrivals: vec![vec![0; 4]; n],
            demand,
            move_budget: budget,
        };
        Instance::new(zones, &travel, sc).unwrap()
    }

    #[test]
    fn front_has_five_non_dominated_points_and_a_consistent_payoff_table() {
        let inst = spread_instance(1, None);
        let w = Weights {
            cost: 1,
            efficiency: 0,
            coverage: 60,
        };
        let front = pareto_front(&inst, w, 10).unwrap();
        assert!(
            front.points.len() >= 5,
            "only {} points",
            front.points.len()
        );
        for (i, a) in front.points.iter().enumerate() {
            for (j, b) in front.points.iter().enumerate() {
                if i != j {
                    assert!(!a.values().dominates(b.values()), "{i} dominates {j}");
                    assert!(!same(a.values(), b.values()));
                }
            }
            assert!(a.values().served >= a.min_served);
        }
        assert_eq!(front.points.iter().filter(|p| p.chosen).count(), 1);
        let chosen = front.points[front.chosen].values();
        // The chosen point is the run's weighted optimum when that optimum lies on the front.
        let weighted = solve(&inst, &Spec::weighted(w)).unwrap();
        assert!(w.scalar(chosen).unwrap() >= weighted.plan.objective);
        for row in &front.payoff {
            let vals: Vec<i64> = front
                .points
                .iter()
                .map(|p| row.objective.value(p.values()))
                .collect();
            assert_eq!(row.best, *vals.iter().min().unwrap());
            assert_eq!(row.worst, *vals.iter().max().unwrap());
        }
        // Coverage and cost conflict along the front.
        let first = front.points.first().unwrap().values();
        let last = front.points.last().unwrap().values();
        assert!(last.served > first.served && last.cost_cents > first.cost_cents);
    }

    #[test]
    fn each_front_point_is_the_epsilon_optimum() {
        let inst = spread_instance(2, Some(5));
        let w = Weights {
            cost: 1,
            efficiency: 1,
            coverage: 60,
        };
        let front = pareto_front(&inst, w, 6).unwrap();
        for p in &front.points {
            // Nothing with at least as much coverage is cheaper in the secondary objective.
            let alt = solve(
                &inst,
                &Spec::weighted(Weights {
                    cost: 1,
                    efficiency: 1,
                    coverage: 0,
                })
                .with_bound(Objective::Coverage, p.values().unmet()),
            )
            .unwrap();
            let sec = |v: &ObjectiveValues| v.cost_cents + v.idle_vehicle_minutes;
            assert_eq!(sec(&alt.plan.values), sec(p.values()));
            assert!(p.values().moved <= 5);
        }
    }

    #[test]
    fn lexicographic_respects_priorities_and_tolerances() {
        let inst = spread_instance(3, Some(6));
        let strict = lexicographic(
            &inst,
            &[
                Level {
                    objective: Objective::Coverage,
                    tolerance: 0.0,
                },
                Level {
                    objective: Objective::Cost,
                    tolerance: 0.0,
                },
            ],
        )
        .unwrap();
        let best_cov = solve(
            &inst,
            &Spec::weighted(Weights::only(Objective::Coverage, 1)),
        )
        .unwrap();
        let v = strict.solution.plan.values;
        assert_eq!(v.served, best_cov.plan.values.served);
        // Exactly the large-weight lexicographic optimum (exact for integer data).
        let m = inst.total_demand() as i64 + 1;
        let big = Weights {
            cost: 1,
            efficiency: 0,
            coverage: 1_000_000 * m,
        };
        let weighted = solve(&inst, &Spec::weighted(big)).unwrap();
        assert_eq!(v.cost_cents, weighted.plan.values.cost_cents);
        assert_eq!(v.served, weighted.plan.values.served);

        let loose = lexicographic(
            &inst,
            &[
                Level {
                    objective: Objective::Coverage,
                    tolerance: 0.3,
                },
                Level {
                    objective: Objective::Cost,
                    tolerance: 0.0,
                },
            ],
        )
        .unwrap();
        let lv = loose.solution.plan.values;
        let floor = (v.served as f64 * 0.7).ceil() as i64;
        assert!(lv.served >= floor);
        assert!(lv.cost_cents <= v.cost_cents);
        assert_eq!(loose.levels[0].2, inst.total_demand() as i64 - floor);

        // A cost level first, then coverage under a 20 % cost tolerance (a side constraint).
        let cost_first = lexicographic(
            &inst,
            &[
                Level {
                    objective: Objective::Efficiency,
                    tolerance: 0.2,
                },
                Level {
                    objective: Objective::Coverage,
                    tolerance: 0.0,
                },
            ],
        )
        .unwrap();
        let (o, opt, bound) = cost_first.levels[0];
        assert_eq!(o, Objective::Efficiency);
        assert_eq!(bound, opt + (opt as f64 * 0.2).floor() as i64);
        assert!(cost_first.solution.plan.values.idle_vehicle_minutes <= bound);
    }

    #[test]
    fn modes_dispatch() {
        let inst = spread_instance(4, None);
        let w = Weights::default();
        let a = Mode::Weighted(w).run(&inst).unwrap();
        let b = Mode::Pareto {
            weights: w,
            points: 5,
        }
        .run(&inst)
        .unwrap();
        assert!(w.scalar(&b.solution().plan.values).unwrap() >= a.solution().plan.objective);
    }
}
