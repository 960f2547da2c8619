//! The realistic fixture instance: size, exact solve, checker, shadow prices.

mod fixture;

use atlasmesh_optimizer::checker::check;
use atlasmesh_optimizer::network::TimeExpanded;
use atlasmesh_optimizer::plan::Weights;
use atlasmesh_optimizer::solver::{solve, Spec};

#[test]
fn realistic_instance_solves_and_checks() {
    let inst = fixture::realistic_instance(Some(fixture::BUDGET));
    let te = TimeExpanded::build(&inst, 0);
    let sol = solve(&inst, &Spec::weighted(Weights::default())).unwrap();
    check(&inst, &[], &sol.plan).unwrap();
    let v = sol.plan.values;
    eprintln!(
        "realistic: {} zones, {} nodes, {} arcs; supply {}, demand {}; served {} ({:.1} %), \
         moved {}, empty km {:.1}, cost {} cents, idle {:.1} vehicle-h; objective {}, LP bound \
         {:.2}; flow solves {}, B&B nodes {}, pivots {}",
        inst.zone_count(),
        te.net.node_count(),
        te.net.arc_count(),
        inst.total_supply(),
        inst.total_demand(),
        v.served,
        v.coverage_pct(),
        v.moved,
        v.empty_km,
        v.cost_cents,
        v.efficiency_hours(),
        sol.plan.objective,
        sol.lp_bound_f64(),
        sol.stats.flow_solves,
        sol.stats.bb_nodes,
        sol.stats.pivots
    );
    assert_eq!(inst.zone_count(), 249);
    assert!(
        (80_000..100_000).contains(&te.net.arc_count()),
        "{}",
        te.net.arc_count()
    );
    assert_eq!(
        v.moved,
        i64::from(fixture::BUDGET),
        "the fixture's budget binds"
    );
    assert_eq!(sol.shadow_prices.len(), 249);
    let unbudgeted = solve(
        &inst.with_move_budget(None),
        &Spec::weighted(Weights::default()),
    )
    .unwrap();
    assert!(unbudgeted.plan.objective < sol.plan.objective);
}

#[test]
fn realistic_pareto_front_has_at_least_five_points() {
    use atlasmesh_optimizer::objectives::pareto_front;
    let inst = fixture::realistic_instance(Some(fixture::BUDGET));
    // Cost against coverage (with the default weights efficiency and coverage agree: serving a
    // request ends a vehicle's idle time, and the front collapses to a few points).
    let w = Weights {
        cost: 1,
        efficiency: 0,
        coverage: 50,
    };
    let front = pareto_front(&inst, w, 10).unwrap();
    eprintln!(
        "front: {} points (chosen {})",
        front.points.len(),
        front.chosen
    );
    for p in &front.points {
        let v = p.values();
        eprintln!(
            "  served ≥ {:>4}: coverage {:.1} %, cost {} cents ({:.1} km), idle {:.1} vehicle-h, moved {}{}",
            p.min_served,
            v.coverage_pct(),
            v.cost_cents,
            v.empty_km,
            v.efficiency_hours(),
            v.moved,
            if p.chosen { "  <- chosen" } else { "" }
        );
    }
    for row in &front.payoff {
        eprintln!(
            "  payoff {:?}: best {} worst {}",
            row.objective, row.best, row.worst
        );
    }
    assert!(front.points.len() >= 5);
    for a in &front.points {
        for b in &front.points {
            assert!(!a.values().dominates(b.values()));
        }
    }
}
