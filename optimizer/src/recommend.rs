//! Recommendations from a plan: concrete moves an operator can accept or reject, each with the
//! effect the model expects, and the plan against doing nothing.
//!
//! - **Do nothing** is the same instance solved with a move budget of 0 (same spec): the
//!   reference for coverage gain (percentage points) and cost reduction (%).
//! - A **recommendation** is one origin → destination pair of the plan: its vehicles (summed
//!   over departure periods), the first departure period, their empty km and cost. Its
//!   **expected effect** is exact and counterfactual: the instance solved again with that pair
//!   forbidden (every other move still free to change); the demand served and the objective the
//!   optimum loses without it. Effects of pairs do not add up in general (moves substitute for
//!   each other); each says what the plan would lose without that move.
//!
//! Deterministic: recommendations are ordered by expected served gain (descending), then by
//! origin and destination index.

use crate::model::Instance;
use crate::plan::ObjectiveValues;
use crate::solver::{solve, Solution, Spec};
use crate::Result;

/// One move to recommend.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub from: usize,
    pub to: usize,
    pub from_zone: String,
    pub to_zone: String,
    /// Vehicles to move (over all departure periods of the plan).
    pub vehicles: i64,
    /// The first departure period; the move is due before its end.
    pub first_depart_period: usize,
    /// Minutes from the plan's start by which the first vehicles must have left.
    pub depart_within_minutes: u32,
    pub empty_km: f64,
    pub cost_cents: i64,
    /// Demand units the optimum serves less without this move.
    pub expected_served_gain: i64,
    /// The same in percentage points of forecast demand.
    pub expected_coverage_gain_pct: f64,
    /// Objective units the optimum loses without this move (≥ 0).
    pub expected_objective_gain: i64,
}

/// A plan's recommendations and its effect against doing nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendations {
    pub items: Vec<Recommendation>,
    pub do_nothing: ObjectiveValues,
    pub plan: ObjectiveValues,
    /// Coverage of the plan minus coverage without moves, percentage points.
    pub coverage_gain_pct: f64,
    /// Cost (empty-km cost plus the weighted objective) reduction against doing nothing, % of
    /// the do-nothing objective; `None` when that objective is 0.
    pub objective_reduction_pct: Option<f64>,
}

/// The recommendations of `solution`, an optimum of `inst` for `spec`.
pub fn recommend(inst: &Instance, spec: &Spec, solution: &Solution) -> Result<Recommendations> {
    let plan = &solution.plan;
    let baseline = solve(&inst.with_move_budget(Some(0)), spec)?;
    let demand = plan.values.demand.max(1) as f64;
    let mut pairs: std::collections::BTreeMap<(usize, usize), (i64, usize)> = Default::default();
    for m in &plan.moves {
        let e = pairs.entry((m.from, m.to)).or_insert((0, m.depart));
        e.0 += m.count;
        e.1 = e.1.min(m.depart);
    }
    let mut items = Vec::with_capacity(pairs.len());
    for ((from, to), (vehicles, first)) in pairs {
        let link = inst.link(from, to).ok_or_else(|| {
            crate::Error::Invalid(format!("plan moves {from}→{to} without a link"))
        })?;
        let without = solve(&inst.without_link(from, to), spec)?;
        let served_gain = plan.values.served - without.plan.values.served;
        items.push(Recommendation {
            from,
            to,
            from_zone: inst.zones()[from].id.clone(),
            to_zone: inst.zones()[to].id.clone(),
            vehicles,
            first_depart_period: first,
            depart_within_minutes: (first as u32 + 1) * inst.period_minutes(),
            empty_km: link.km * vehicles as f64,
            cost_cents: link.cost_cents * vehicles,
            expected_served_gain: served_gain,
            expected_coverage_gain_pct: 100.0 * served_gain as f64 / demand,
            expected_objective_gain: (without.plan.objective - plan.objective).max(0),
        });
    }
    items.sort_by(|a, b| {
        b.expected_served_gain
            .cmp(&a.expected_served_gain)
            .then(a.from.cmp(&b.from))
            .then(a.to.cmp(&b.to))
    });
    let base = baseline.plan.objective;
    Ok(Recommendations {
        items,
        do_nothing: baseline.plan.values,
        plan: plan.values,
        coverage_gain_pct: plan.values.coverage_pct() - baseline.plan.values.coverage_pct(),
        objective_reduction_pct: (base != 0)
            .then(|| 100.0 * (base - plan.objective) as f64 / base as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Scenario, TravelConfig, TravelSource, Zone};
    use crate::plan::{Objective, Weights};

    /// Three zones on a line; all idle vehicles start in zone 0, demand waits in zones 1 and 2.
    fn instance(budget: Option<u32>) -> Instance {
        let zone = |id: &str, lon: f64| Zone {
            id: id.into(),
            lat: 45.5,
            lon,
            capacity: 50,
            neighbours: None,
        };
        let zones = vec![
            zone("west", -73.70),
            zone("centre", -73.60),
            zone("east", -73.50),
        ];
        let t = 6;
        let mut demand = vec![vec![0u32; t]; 3];
        demand[1][3] = 4;
        demand[2][4] = 2;
        Instance::new(
            zones,
            &TravelConfig {
                source: TravelSource::Haversine { speed_kmh: 30.0 },
                cost_per_km: 0.25,
            },
            Scenario {
                period_minutes: 15,
                horizon: t,
                idle: vec![6, 0, 0],
                arrivals: vec![vec![0; t]; 3],
                demand,
                move_budget: budget,
            },
        )
        .unwrap()
    }

    #[test]
    fn moves_with_their_counterfactual_effect() {
        let inst = instance(None);
        let spec = Spec::weighted(Weights {
            cost: 1,
            efficiency: 0,
            coverage: 1_000,
        });
        let sol = solve(&inst, &spec).unwrap();
        let r = recommend(&inst, &spec, &sol).unwrap();
        assert_eq!(r.do_nothing.moved, 0);
        assert!(r.objective_reduction_pct.unwrap() > 0.0);
        assert_eq!(
            r.do_nothing.served, 0,
            "nothing in zones 1 and 2 without moves"
        );
        assert_eq!(r.plan.served, 6);
        assert!((r.coverage_gain_pct - 100.0).abs() < 1e-9);
        let moved: i64 = r.items.iter().map(|i| i.vehicles).sum();
        assert_eq!(moved, sol.plan.values.moved);
        // A pair's effect is what the optimum loses without it (another route may stand in).
        for i in &r.items {
            assert!(i.expected_served_gain >= 0);
            assert!(i.cost_cents > 0 && i.empty_km > 0.0);
            assert!(i.depart_within_minutes >= 15);
        }
        let total_gain: i64 = r.items.iter().map(|i| i.expected_served_gain).sum();
        assert!(total_gain >= 1);
    }

    #[test]
    fn a_budget_limits_what_is_recommended() {
        let inst = instance(Some(4));
        let spec = Spec::weighted(Weights::only(Objective::Coverage, 1000));
        let sol = solve(&inst, &spec).unwrap();
        let r = recommend(&inst, &spec, &sol).unwrap();
        assert_eq!(r.plan.moved, 4);
        assert_eq!(r.plan.served, 4);
        assert_eq!(r.items.iter().map(|i| i.vehicles).sum::<i64>(), 4);
    }
}
