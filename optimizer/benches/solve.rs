//! Solver benches on the realistic fixture instance (249 zones × 12 periods, 30 nearest
//! neighbours, ≈ 88k arcs): one exact solve, a 10-point Pareto front, and microlp on the same
//! model (good_lp MILP, the exactness test's reference) for the ratio; `OPT_BENCH_MICROLP_ZONES`
//! (e.g. `25,50,100`) adds both solvers on subsets of the zones.

#[path = "../tests/fixture/mod.rs"]
mod fixture;

use atlasmesh_optimizer::objectives::pareto_front;
use atlasmesh_optimizer::plan::Weights;
use atlasmesh_optimizer::solver::{solve, Spec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;

fn zones_for_microlp() -> Vec<usize> {
    std::env::var("OPT_BENCH_MICROLP_ZONES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn benches(c: &mut Criterion) {
    let inst = fixture::realistic_instance(Some(fixture::BUDGET));
    let w = Weights::default();
    let mut g = c.benchmark_group("optimizer");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("solve_realistic_249x12_budget", |b| {
        b.iter(|| solve(&inst, &Spec::weighted(w)).unwrap())
    });
    let free = inst.with_move_budget(None);
    g.bench_function("solve_realistic_249x12_no_budget", |b| {
        b.iter(|| solve(&free, &Spec::weighted(w)).unwrap())
    });
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    // Cost against coverage: with the default weights efficiency and coverage agree and the
    // front has only a few points.
    let wp = Weights {
        cost: 1,
        efficiency: 0,
        coverage: 50,
    };
    g.bench_function("pareto_front_10_realistic", |b| {
        b.iter(|| pareto_front(&inst, wp, 10).unwrap())
    });
    g.bench_function("microlp_milp_realistic_249x12_budget", |b| {
        b.iter(|| fixture::reference::milp(&inst, w, true).unwrap())
    });
    for zones in zones_for_microlp() {
        let sub = fixture::realistic_subset(zones, Some(fixture::BUDGET));
        g.bench_with_input(BenchmarkId::new("ours_subset", zones), &sub, |b, sub| {
            b.iter(|| solve(sub, &Spec::weighted(w)).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("microlp_milp_subset", zones),
            &sub,
            |b, sub| b.iter(|| fixture::reference::milp(sub, w, true).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(solve_benches, benches);
criterion_main!(solve_benches);
