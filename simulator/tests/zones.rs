//! The zone demand and fleet model with the rebalancing engine in the loop: determinism,
//! conservation, the closed-loop effect and forecast quality on the simulated demand.
//! `cargo test -p atlasmesh-simulator --test zones -- --nocapture` prints the tables.

use std::collections::BTreeMap;

use atlasmesh_simulator::zones::{
    bench_rebalance, forecast_quality, run_closed_loop, City, DemandModel, RebalanceEngine,
    VehicleState, ZoneEvent, ZoneFleetSim, ZoneSimConfig, TICK_S,
};

fn short(days: u32) -> ZoneSimConfig {
    ZoneSimConfig {
        days,
        ..ZoneSimConfig::default()
    }
}

#[test]
fn same_seed_same_report_other_seed_other_demand() {
    let cfg = short(3);
    let a = run_closed_loop(&cfg, 7, Some(0.5), &mut |_| {}).unwrap();
    let b = run_closed_loop(&cfg, 7, Some(0.5), &mut |_| {}).unwrap();
    assert_eq!(a, b);
    assert!(a.moves_recommended > 0 && a.moves_adopted > 0);
    assert!(
        a.moves_adopted < a.moves_recommended,
        "half adoption: {a:?}"
    );
    let c = run_closed_loop(&cfg, 8, Some(0.5), &mut |_| {}).unwrap();
    assert_ne!(a.requests, c.requests);
    // The demand does not depend on the fleet: same requests with and without the engine.
    let none = run_closed_loop(&cfg, 7, None, &mut |_| {}).unwrap();
    assert_eq!(none.requests, a.requests);
    assert_eq!((none.moves_recommended, none.empty_km), (0, 0.0));
}

#[test]
fn demand_yields_requests_in_time_order_reproducibly() {
    let cfg = ZoneSimConfig::default();
    let city = City::new(&cfg.city, &cfg.fleet).unwrap();
    let a: Vec<_> = DemandModel::new(&city, &cfg.demand, 3)
        .take(5_000)
        .collect();
    let b: Vec<_> = DemandModel::new(&city, &cfg.demand, 3)
        .take_until(a[4_999].at_s + 1)
        .into_iter()
        .take(5_000)
        .collect();
    assert_eq!(a, b);
    assert!(a
        .windows(2)
        .all(|w| w[0].at_s <= w[1].at_s && w[0].id + 1 == w[1].id));
    assert!(a
        .iter()
        .all(|r| r.origin < city.len() && r.destination < city.len()));
}

/// Steps the public API by hand (as a streaming producer would) and checks, every tick, that
/// no vehicle is created or lost and that every request is assigned, expired or pending.
#[test]
fn vehicles_and_requests_are_conserved() {
    let cfg = short(2);
    let city = City::new(&cfg.city, &cfg.fleet).unwrap();
    let vehicles = cfg.fleet.vehicles as usize;
    let mut demand = DemandModel::new(&city, &cfg.demand, 11);
    let mut engine = RebalanceEngine::new(&city, cfg.fleet.speed_kmh, &cfg.engine);
    let mut sim = ZoneFleetSim::new(city, &cfg.fleet);
    let mut fate: BTreeMap<u64, &'static str> = BTreeMap::new();
    let (mut events, mut moved) = (Vec::new(), 0u32);
    let period_s = i64::from(cfg.engine.period_minutes) * 60;
    while sim.now_s() < i64::from(cfg.days) * 86_400 {
        for r in demand.take_until(sim.now_s() + TICK_S) {
            sim.on_request(r, &mut events);
        }
        sim.on_tick(&mut events);
        for e in &events {
            engine.observe(e);
        }
        if sim.now_s() % period_s == 0 {
            let plan = engine.plan(&sim).unwrap();
            for m in &plan.moves {
                // Adopt every other recommended vehicle (rounded up).
                moved += sim.reposition(m.from, m.to, m.vehicles.div_ceil(2), &mut events);
            }
        }
        for e in events.drain(..) {
            match e {
                ZoneEvent::Requested { request, .. } => {
                    assert!(fate.insert(request.id, "pending").is_none());
                }
                ZoneEvent::Assigned {
                    request, wait_s, ..
                } => {
                    assert!(wait_s > 0 && wait_s <= cfg.fleet.max_wait_s, "{wait_s}");
                    assert_eq!(fate.insert(request, "assigned"), Some("pending"));
                }
                ZoneEvent::Expired {
                    request, waited_s, ..
                } => {
                    assert_eq!(waited_s, cfg.fleet.max_wait_s);
                    assert_eq!(fate.insert(request, "expired"), Some("pending"));
                }
                ZoneEvent::VehicleMoved { from, to, km, .. } => {
                    assert!(from != to && km > 0.0);
                }
                ZoneEvent::VehicleIdle { .. } => {}
            }
        }
        let states = sim.vehicles();
        assert_eq!(states.len(), vehicles);
        let idle = states
            .iter()
            .filter(|v| matches!(v, VehicleState::Idle { .. }))
            .count();
        assert_eq!(sim.idle_counts().iter().sum::<u32>() as usize, idle);
        let c = sim.counters();
        assert_eq!(c.requests, c.assigned + c.expired + sim.pending() as u64);
    }
    let count = |s: &str| fate.values().filter(|&&f| f == s).count() as u64;
    let c = sim.counters();
    assert_eq!(count("assigned"), c.assigned);
    assert_eq!(count("expired"), c.expired);
    assert_eq!(count("pending"), sim.pending() as u64);
    assert_eq!(fate.len() as u64, c.requests);
    assert!(moved > 0 && c.vehicles_moved == u64::from(moved));
    assert!(c.expired > 0 && c.assigned > c.expired);
}

/// The claim of the closed loop: on the same seeded demand, following every recommended move
/// removes at least a quarter of the expired requests; the baseline is a fleet that is short
/// where demand starts, not an absurd one (10–30 % of requests expire without the engine).
#[test]
fn full_adoption_cuts_expired_requests_by_a_quarter() {
    let cfg = ZoneSimConfig::default();
    let seeds = [1, 2, 3, 4, 5];
    let report = bench_rebalance(&cfg, &seeds, &[1.0], &mut |_| {}).unwrap();
    eprintln!("{}", report.table());
    let (base, full) = (&report.arms[0], &report.arms[1]);
    assert!(
        (10.0..=30.0).contains(&base.mean.expired_pct),
        "baseline expired share {:.1} %",
        base.mean.expired_pct
    );
    for (b, f) in base.runs.iter().zip(&full.runs) {
        assert_eq!(b.requests, f.requests, "same demand, seed {}", b.seed);
        assert!(f.expired < b.expired, "seed {}", b.seed);
    }
    assert!(
        full.expired_fall_pct >= 25.0,
        "expired fell by {:.1} %",
        full.expired_fall_pct
    );
    assert!(full.mean.empty_km > 0.0);
}

#[test]
fn holt_winters_beats_seasonal_naive_on_the_simulated_demand() {
    let q = forecast_quality(&ZoneSimConfig::default(), 1, 8).unwrap();
    eprintln!("{}", q.table());
    assert!(q.origins >= 10);
    assert_eq!(
        q.zones.len(),
        ZoneSimConfig::default().city.zones,
        "a score per zone"
    );
    assert!(q
        .zones
        .iter()
        .all(|z| z.relative.is_finite() && z.mase_hw > 0.0));
    assert!(
        q.mean_relative() < 1.0,
        "mean HW/naive MASE {:.3}",
        q.mean_relative()
    );
}
