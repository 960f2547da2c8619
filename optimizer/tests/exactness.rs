//! Solver exactness (issue 13's acceptance): on seeded random instances up to 50 zones × 8
//! periods, with binding budgets and capacities, the solver's objective equals the optimum of an
//! independent MILP built with good_lp and solved by the pure-Rust microlp backend, and every
//! plan passes the checker (the solver refuses to return one that does not). Also reports how
//! often the LP relaxation is strictly below the integer optimum.

use atlasmesh_optimizer::checker::check;
use atlasmesh_optimizer::model::{Instance, Scenario, TravelConfig, TravelSource, Zone};
use atlasmesh_optimizer::plan::Weights;
use atlasmesh_optimizer::solver::{solve, Spec};
use atlasmesh_optimizer::Error;
use good_lp::{microlp, variable, Expression, ProblemVariables, Solution, SolverModel, Variable};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_instance(rng: &mut ChaCha8Rng, zones: usize, periods: usize) -> Instance {
    let k = if zones > 10 {
        Some(rng.gen_range(3..7))
    } else {
        None
    };
    let zs: Vec<Zone> = (0..zones)
        .map(|i| Zone {
            id: format!("z{i}"),
            lat: 45.45 + rng.gen_range(0.0..0.1),
            lon: -73.65 + rng.gen_range(0.0..0.14),
            capacity: rng.gen_range(2..8),
            neighbours: k.map(|k| {
                let mut v: Vec<usize> = (0..k).map(|_| rng.gen_range(0..zones)).collect();
                v.retain(|&j| j != i);
                v
            }),
        })
        .collect();
    let sparse = |rng: &mut ChaCha8Rng, p: f64, hi: u32| -> Vec<Vec<u32>> {
        (0..zones)
            .map(|_| {
                (0..periods)
                    .map(|_| {
                        if rng.gen_bool(p) {
                            rng.gen_range(1..=hi)
                        } else {
                            0
                        }
                    })
                    .collect()
            })
            .collect()
    };
    let idle: Vec<u32> = (0..zones).map(|_| rng.gen_range(0..4)).collect();
    let arrivals = sparse(rng, 0.15, 2);
    let demand = sparse(rng, 0.35, 3);
    let supply: u32 = idle.iter().sum::<u32>() + arrivals.iter().flatten().sum::<u32>();
    let move_budget = if rng.gen_bool(0.25) {
        None
    } else {
        Some(rng.gen_range(0..=supply / 2 + 1))
    };
    let travel = TravelConfig {
        source: TravelSource::Haversine {
            speed_kmh: rng.gen_range(12.0..40.0),
        },
        cost_per_km: rng.gen_range(0.1..0.6),
    };
    let sc = Scenario {
        period_minutes: 15,
        horizon: periods,
        idle,
        arrivals,
        demand,
        move_budget,
    };
    Instance::new(zs, &travel, sc).expect("valid instance")
}

/// The independent model: variables per (zone, period) and per move, written from the instance
/// data alone (no use of the crate's network or solver).
fn milp(inst: &Instance, w: Weights, integer: bool) -> Option<f64> {
    let (z, t) = (inst.zone_count(), inst.horizon());
    let p = f64::from(inst.period_minutes());
    let mut vars = ProblemVariables::new();
    let int = |v: good_lp::VariableDefinition| if integer { v.integer() } else { v };
    let hold: Vec<Vec<Variable>> = (0..z)
        .map(|zi| {
            let cap = f64::from(inst.zones()[zi].capacity);
            (0..t)
                .map(|_| vars.add(int(variable().min(0).max(cap))))
                .collect()
        })
        .collect();
    let serve: Vec<Vec<Variable>> = (0..z)
        .map(|zi| {
            (0..t)
                .map(|ti| vars.add(int(variable().min(0).max(f64::from(inst.demand()[zi][ti])))))
                .collect()
        })
        .collect();
    let mut moves = Vec::new();
    for (from, links) in inst.links().iter().enumerate() {
        for l in links {
            for dep in 0..t {
                let arr = dep + l.periods as usize;
                if arr < t {
                    let v = vars.add(int(variable().min(0)));
                    moves.push((from, l.to, dep, arr, l.cost_cents as f64, v));
                }
            }
        }
    }
    let mut objective = Expression::from(w.coverage as f64 * inst.total_demand() as f64);
    for zi in 0..z {
        for ti in 0..t {
            objective += w.efficiency as f64 * p * hold[zi][ti];
            objective -= w.coverage as f64 * serve[zi][ti];
        }
    }
    for &(_, _, dep, arr, cost, v) in &moves {
        objective += (w.cost as f64 * cost + w.efficiency as f64 * p * (arr - dep) as f64) * v;
    }
    let mut model = vars.minimise(objective.clone()).using(microlp);
    for zi in 0..z {
        for ti in 0..t {
            let mut lhs = Expression::from(f64::from(inst.supply(zi, ti)));
            if ti > 0 {
                lhs += hold[zi][ti - 1];
            }
            let mut rhs = Expression::from(hold[zi][ti]) + serve[zi][ti];
            for &(from, to, dep, arr, _, v) in &moves {
                if to == zi && arr == ti {
                    lhs += v;
                }
                if from == zi && dep == ti {
                    rhs += v;
                }
            }
            model = model.with(lhs.eq(rhs));
        }
    }
    if let Some(b) = inst.move_budget() {
        let total: Expression = moves.iter().map(|m| m.5).sum();
        model = model.with(total.leq(f64::from(b)));
    }
    let sol = model.solve().ok()?;
    Some(sol.eval(&objective))
}

#[test]
fn solver_matches_microlp_milp_on_random_instances() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let (mut compared, mut infeasible, mut lp_gap, mut binding, mut branched) = (0, 0, 0, 0, 0);
    let mut largest = (0, 0);
    let mut attempt = 0;
    while compared < 300 {
        attempt += 1;
        assert!(attempt < 600, "too many infeasible instances");
        let (zones, periods) = match attempt % 10 {
            0 => (rng.gen_range(30..=50), rng.gen_range(6..=8)),
            1..=3 => (rng.gen_range(10..=25), rng.gen_range(3..=8)),
            _ => (rng.gen_range(2..10), rng.gen_range(2..=8)),
        };
        let zones = if attempt == 1 { 50 } else { zones };
        let periods = if attempt == 1 { 8 } else { periods };
        let inst = random_instance(&mut rng, zones, periods);
        let w = Weights {
            cost: rng.gen_range(0..4),
            efficiency: rng.gen_range(0..3),
            coverage: rng.gen_range(20..400),
        };
        let ours = solve(&inst, &Spec::weighted(w));
        let reference = milp(&inst, w, true);
        match (ours, reference) {
            (Ok(sol), Some(opt)) => {
                check(&inst, &[], &sol.plan).expect("returned plan passes the checker");
                assert!(
                    (sol.plan.objective as f64 - opt).abs() < 1e-6 * opt.abs().max(1.0),
                    "instance {attempt} ({zones}×{periods}): ours {} vs MILP {opt}",
                    sol.plan.objective
                );
                let lp = milp(&inst, w, false).expect("LP relaxation solves");
                let bound = sol.lp_bound_f64();
                assert!(
                    (bound - lp).abs() < 1e-6 * lp.abs().max(1.0),
                    "instance {attempt}: our LP bound {bound} vs microlp LP {lp}"
                );
                if lp < opt - 1e-6 {
                    lp_gap += 1;
                }
                if inst
                    .move_budget()
                    .is_some_and(|b| i64::from(b) == sol.plan.values.moved)
                {
                    binding += 1;
                }
                if sol.stats.bb_nodes > 1 {
                    branched += 1;
                }
                if zones * periods > largest.0 * largest.1 {
                    largest = (zones, periods);
                }
                compared += 1;
            }
            (Err(Error::Infeasible(_)), None) => infeasible += 1,
            (ours, reference) => panic!(
                "instance {attempt}: solver {:?} vs MILP {reference:?}",
                ours.map(|s| s.plan.objective)
            ),
        }
    }
    eprintln!(
        "exactness: {compared} instances equal to the microlp MILP optimum ({infeasible} \
         infeasible in both, largest {}x{}); budget binding in {binding}; LP relaxation \
         strictly below the integer optimum in {lp_gap}; branch and bound needed in {branched}",
        largest.0, largest.1
    );
    assert!(binding >= 50, "too few binding budgets: {binding}");
}
