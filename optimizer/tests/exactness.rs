//! Solver exactness (issue 13's acceptance): on seeded random instances up to 50 zones × 8
//! periods, with binding budgets and capacities, the solver's objective equals the optimum of an
//! independent MILP built with good_lp and solved by the pure-Rust microlp backend, and every
//! plan passes the checker (the solver refuses to return one that does not). Also reports how
//! often the LP relaxation is strictly below the integer optimum.

mod fixture;

use atlasmesh_optimizer::checker::check;
use atlasmesh_optimizer::model::{Instance, Scenario, TravelConfig, TravelSource, Zone};
use atlasmesh_optimizer::plan::Weights;
use atlasmesh_optimizer::solver::{solve, Spec};
use atlasmesh_optimizer::Error;
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
        let reference = fixture::reference::milp(&inst, w, true);
        match (ours, reference) {
            (Ok(sol), Some(opt)) => {
                check(&inst, &[], &sol.plan).expect("returned plan passes the checker");
                assert!(
                    (sol.plan.objective as f64 - opt).abs() < 1e-6 * opt.abs().max(1.0),
                    "instance {attempt} ({zones}×{periods}): ours {} vs MILP {opt}",
                    sol.plan.objective
                );
                let lp = fixture::reference::milp(&inst, w, false).expect("LP relaxation solves");
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
