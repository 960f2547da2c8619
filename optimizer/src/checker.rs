//! The plan checker: every plan is verified against the instance before it is returned.
//!
//! It recomputes everything from the plan's own counts: non-negativity (integrality holds by
//! type: every count is an `i64`), reachability and timing of moves, flow conservation at every
//! (zone, period), idle capacities, served ≤ demand and served + unmet = demand, the move
//! budget, the objective bounds of the run, and the objective values and weighted objective
//! reported by the plan.

use crate::model::Instance;
use crate::plan::{Objective, Plan};
use crate::{Error, Result};

fn fail<T>(msg: String) -> Result<T> {
    Err(Error::Check(msg))
}

/// Checks `plan` for `inst` under the run's objective `bounds` (`value ≤ bound`).
pub fn check(inst: &Instance, bounds: &[(Objective, i64)], plan: &Plan) -> Result<()> {
    let (z, t) = (inst.zone_count(), inst.horizon());
    let shaped = |g: &Vec<Vec<i64>>| g.len() == z && g.iter().all(|r| r.len() == t);
    if !shaped(&plan.idle) || !shaped(&plan.served) || !shaped(&plan.unmet) {
        return fail("plan grids are not zones × periods".into());
    }
    let mut balance: Vec<Vec<i64>> = (0..z)
        .map(|zi| (0..t).map(|p| i64::from(inst.supply(zi, p))).collect())
        .collect();
    let mut moved = 0i64;
    for m in &plan.moves {
        if m.count < 0 {
            return fail(format!("negative move count {m:?}"));
        }
        if m.from >= z || m.to >= z || m.depart >= t || m.arrive >= t {
            return fail(format!("move outside the model {m:?}"));
        }
        let Some(link) = inst.link(m.from, m.to) else {
            return fail(format!("move between unlinked zones {m:?}"));
        };
        if m.arrive != m.depart + link.periods as usize {
            return fail(format!("move timing does not match travel time {m:?}"));
        }
        balance[m.from][m.depart] -= m.count;
        balance[m.to][m.arrive] += m.count;
        moved += m.count;
    }
    #[allow(clippy::needless_range_loop)] // zone and period index five parallel grids
    for zi in 0..z {
        let cap = i64::from(inst.zones()[zi].capacity);
        for p in 0..t {
            let (idle, served, unmet) = (plan.idle[zi][p], plan.served[zi][p], plan.unmet[zi][p]);
            if idle < 0 || served < 0 || unmet < 0 {
                return fail(format!("negative count at zone {zi} period {p}"));
            }
            if idle > cap {
                return fail(format!(
                    "zone {zi} period {p}: {idle} idle > capacity {cap}"
                ));
            }
            let demand = i64::from(inst.demand()[zi][p]);
            if served + unmet != demand {
                return fail(format!(
                    "zone {zi} period {p}: served + unmet ≠ demand {demand}"
                ));
            }
            let inflow = balance[zi][p] + if p > 0 { plan.idle[zi][p - 1] } else { 0 };
            if inflow != idle + served {
                return fail(format!(
                    "conservation at zone {zi} period {p}: in {inflow} ≠ idle {idle} + served {served}"
                ));
            }
        }
    }
    if let Some(b) = inst.move_budget() {
        if moved > i64::from(b) {
            return fail(format!("{moved} moves exceed the budget {b}"));
        }
    }
    let values = plan.recompute_values(inst);
    if values != plan.values {
        return fail(format!(
            "reported values {:?} ≠ recomputed {values:?}",
            plan.values
        ));
    }
    match plan.weights.scalar(&values) {
        Some(obj) if obj == plan.objective => {}
        other => {
            return fail(format!(
                "reported objective {} ≠ recomputed {other:?}",
                plan.objective
            ))
        }
    }
    for &(o, bound) in bounds {
        if o.value(&values) > bound {
            return fail(format!(
                "{o:?} = {} exceeds its bound {bound}",
                o.value(&values)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Scenario, TravelConfig, TravelSource, Zone};
    use crate::plan::{Move, Weights};
    use crate::solver::{solve, Spec};

    fn instance(budget: Option<u32>) -> Instance {
        let zones = (0..3)
            .map(|i| Zone {
                id: format!("z{i}"),
                lat: 45.5 + 0.01 * i as f64,
                lon: -73.6,
                capacity: 4,
                neighbours: None,
            })
            .collect();
        let travel = TravelConfig {
            source: TravelSource::Haversine { speed_kmh: 20.0 },
            cost_per_km: 0.4,
        };
        let sc = Scenario {
            period_minutes: 15,
            horizon: 3,
            idle: vec![4, 0, 1],
            arrivals: vec![vec![0, 1, 0], vec![0, 0, 0], vec![0, 0, 0]],
            demand: vec![vec![0, 0, 0], vec![0, 2, 1], vec![1, 0, 1]],
            move_budget: budget,
        };
        Instance::new(zones, &travel, sc).unwrap()
    }

    fn good() -> (Instance, Plan) {
        let inst = instance(Some(3));
        let sol = solve(&inst, &Spec::weighted(Weights::default())).unwrap();
        assert!(
            !sol.plan.moves.is_empty(),
            "the fixture should move vehicles"
        );
        (inst, sol.plan)
    }

    fn refused(inst: &Instance, plan: &Plan, bounds: &[(Objective, i64)]) -> String {
        match check(inst, bounds, plan) {
            Err(Error::Check(m)) => m,
            other => panic!("checker accepted a broken plan: {other:?}"),
        }
    }

    #[test]
    fn accepts_the_solver_plan() {
        let (inst, plan) = good();
        check(&inst, &[], &plan).unwrap();
    }

    #[test]
    fn refuses_broken_conservation() {
        let (inst, mut plan) = good();
        plan.idle[0][0] += 1;
        plan.values = plan.recompute_values(&inst);
        plan.objective = plan.weights.scalar(&plan.values).unwrap();
        assert!(refused(&inst, &plan, &[]).contains("conservation"));
    }

    #[test]
    fn refuses_exceeded_capacity() {
        let (mut inst, mut plan) = good();
        let z = (0..3)
            .find(|&z| plan.idle[z].iter().any(|&x| x > 0))
            .unwrap();
        let worst = *plan.idle[z].iter().max().unwrap();
        let mut zones = inst.zones().to_vec();
        zones[z].capacity = (worst - 1) as u32;
        inst = rebuild(&inst, zones);
        plan.values = plan.recompute_values(&inst);
        assert!(refused(&inst, &plan, &[]).contains("capacity"));
    }

    fn rebuild(inst: &Instance, zones: Vec<Zone>) -> Instance {
        let travel = TravelConfig {
            source: TravelSource::Haversine { speed_kmh: 20.0 },
            cost_per_km: 0.4,
        };
        let sc = Scenario {
            period_minutes: inst.period_minutes(),
            horizon: inst.horizon(),
            idle: inst.idle().to_vec(),
            arrivals: inst.arrivals().to_vec(),
            demand: inst.demand().to_vec(),
            move_budget: inst.move_budget(),
        };
        Instance::new(zones, &travel, sc).unwrap()
    }

    #[test]
    fn refuses_a_blown_budget() {
        let (inst, plan) = good();
        let tight = inst.with_move_budget(Some(plan.values.moved as u32 - 1));
        assert!(refused(&tight, &plan, &[]).contains("budget"));
    }

    #[test]
    fn refuses_negative_counts() {
        let (inst, mut plan) = good();
        plan.moves.push(Move {
            depart: 0,
            from: 0,
            to: 1,
            arrive: 1,
            count: -1,
        });
        plan.moves.push(Move {
            depart: 0,
            from: 0,
            to: 1,
            arrive: 1,
            count: 1,
        });
        assert!(refused(&inst, &plan, &[]).contains("negative"));
        let (inst, mut plan) = good();
        plan.unmet[0][0] = -1;
        plan.served[0][0] += 1;
        assert!(refused(&inst, &plan, &[]).contains("negative"));
    }

    #[test]
    fn refuses_served_beyond_demand() {
        let (inst, mut plan) = good();
        plan.served[0][2] += 1;
        assert!(refused(&inst, &plan, &[]).contains("demand"));
    }

    #[test]
    fn refuses_moves_with_wrong_timing_or_outside_links() {
        let (inst, mut plan) = good();
        plan.moves[0].arrive += 1;
        assert!(refused(&inst, &plan, &[]).contains("timing"));
        let (inst, mut plan) = good();
        plan.moves[0].to = plan.moves[0].from;
        assert!(refused(&inst, &plan, &[]).contains("unlinked"));
    }

    #[test]
    fn refuses_a_wrong_objective() {
        let (inst, mut plan) = good();
        plan.objective += 1;
        assert!(refused(&inst, &plan, &[]).contains("objective"));
        let (inst, mut plan) = good();
        plan.values.cost_cents -= 1;
        assert!(refused(&inst, &plan, &[]).contains("values"));
    }

    #[test]
    fn refuses_a_violated_objective_bound() {
        let (inst, plan) = good();
        let bound = plan.values.cost_cents - 1;
        assert!(refused(&inst, &plan, &[(Objective::Cost, bound)]).contains("bound"));
    }
}
