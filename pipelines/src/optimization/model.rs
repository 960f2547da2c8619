//! The pure half of the run executor: a run's `parameters.rebalance`, the fleet's zones and
//! its idle vehicles → an optimizer [`Instance`]; the engine's outcome → the rows of results,
//! recommendations and metrics. No I/O, deterministic (same input, same rows).

use std::collections::BTreeMap;

use atlasmesh_core::domain::optimization::{objective_score, ZoneView};
use atlasmesh_optimizer::model::{Instance, Scenario, TravelConfig, TravelSource, Zone};
use atlasmesh_optimizer::objectives::{pareto_front, ParetoFront};
use atlasmesh_optimizer::plan::{Objective, ObjectiveValues, Weights};
use atlasmesh_optimizer::recommend::{recommend, Recommendations};
use atlasmesh_optimizer::solver::Spec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `parameters.rebalance` of a run: what the engine needs besides the zones and the live
/// idle vehicles. Demand per zone id and period is given here (a what-if), or, when absent,
/// forecast from the fleet's zone demand history (see [`super::demand`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RebalanceParams {
    /// Period length, minutes.
    #[serde(default = "default_period")]
    pub period_minutes: u32,
    /// Periods in the horizon.
    #[serde(default = "default_horizon")]
    pub horizon_periods: usize,
    /// Repositioning speed between zone centroids, km/h.
    #[serde(default = "default_speed")]
    pub speed_kmh: f64,
    /// Cost of an empty km (energy and wear), currency units.
    #[serde(default = "default_cost_per_km")]
    pub cost_per_km: f64,
    /// What an unserved demand unit costs, in cents: the coverage weight's scale.
    #[serde(default = "default_unmet")]
    pub unmet_penalty_cents: i64,
    /// Most vehicle moves in the plan.
    #[serde(default)]
    pub move_budget: Option<u32>,
    /// ε levels of the Pareto front on coverage (≥ 2).
    #[serde(default = "default_points")]
    pub pareto_points: usize,
    /// Demand per zone id, one value per period (missing zones and periods: 0). Empty: the
    /// demand (and the arrivals, unless given) is forecast from the zone demand history.
    #[serde(default)]
    pub demand: BTreeMap<String, Vec<u32>>,
    /// The forecast quantile planned for when forecasting (0.5 = the median).
    #[serde(default = "default_quantile")]
    pub demand_quantile: f64,
    /// Days of zone demand history the forecast reads.
    #[serde(default = "default_history_days")]
    pub history_days: u32,
    /// The forecast's "now", epoch ms: it reads the history before the bucket containing it
    /// and plans from there. Default: when the run was created. Given, the same history gives
    /// the same plan however often the run is repeated.
    #[serde(default)]
    pub as_of_ms: Option<i64>,
    /// Vehicles becoming idle per zone id and period (default none).
    #[serde(default)]
    pub arrivals: BTreeMap<String, Vec<u32>>,
    /// Idle vehicles per zone id instead of the live ones (a what-if).
    #[serde(default)]
    pub idle: Option<BTreeMap<String, u32>>,
    /// Travel between zones as measured (from zone id → to zone id → `[minutes, km]`), for
    /// every ordered pair of the fleet's zones, instead of centroid distance at `speed_kmh`.
    #[serde(default)]
    pub travel_matrix: Option<BTreeMap<String, BTreeMap<String, [f64; 2]>>>,
    /// Re-solve on the live state every `resources.reoptimize_interval_ms` after this run
    /// finished: the executor queues a successor run with the same parameters.
    #[serde(default)]
    pub continuous: bool,
}

fn default_period() -> u32 {
    15
}
fn default_horizon() -> usize {
    8
}
fn default_speed() -> f64 {
    30.0
}
fn default_cost_per_km() -> f64 {
    0.25
}
fn default_unmet() -> i64 {
    2_000
}
fn default_points() -> usize {
    5
}
fn default_quantile() -> f64 {
    0.8
}
fn default_history_days() -> u32 {
    14
}

/// Most days of history a forecast reads.
pub const MAX_HISTORY_DAYS: u32 = 90;

/// Largest zone count and horizon a run may ask for (the solver is exact; keep runs bounded).
pub const MAX_ZONES: usize = 500;
pub const MAX_PERIODS: usize = 96;

impl RebalanceParams {
    /// The run's `parameters.rebalance`, `None` when the run has none (a record managed by
    /// hand, as the seed API has it).
    pub fn of_run(parameters: Option<&Value>) -> Option<Result<RebalanceParams, String>> {
        let r = parameters?.get("rebalance")?;
        Some(
            serde_json::from_value::<RebalanceParams>(r.clone())
                .map_err(|e| format!("parameters.rebalance: {e}"))
                .and_then(|p| {
                    if !(p.demand_quantile > 0.0 && p.demand_quantile < 1.0) {
                        Err("parameters.rebalance.demand_quantile must be in (0, 1)".into())
                    } else if p.history_days == 0 || p.history_days > MAX_HISTORY_DAYS {
                        Err(format!(
                            "parameters.rebalance.history_days must be 1..={MAX_HISTORY_DAYS}"
                        ))
                    } else {
                        Ok(p)
                    }
                }),
        )
    }

    /// Whether the demand comes from the zone demand history.
    pub fn forecasts(&self) -> bool {
        self.demand.is_empty()
    }

    /// The integer weights of the run's 0..1 weights: cost per cent, efficiency per idle
    /// vehicle-minute (a cent-equivalent each), coverage per unserved unit
    /// (`unmet_penalty_cents`), each scaled by 100 so two decimals of a weight count.
    pub fn weights(&self, [wc, we, wv]: [f64; 3]) -> Weights {
        let scale = |w: f64| (w.clamp(0.0, 1.0) * 100.0).round() as i64;
        Weights {
            cost: scale(wc),
            efficiency: scale(we),
            coverage: scale(wv) * self.unmet_penalty_cents.max(1),
        }
    }
}

/// Builds the instance: zones in id order, neighbours by id, idle vehicles per zone.
pub fn instance(
    p: &RebalanceParams,
    zones: &[ZoneView],
    live_idle: &BTreeMap<String, u32>,
) -> Result<Instance, String> {
    if zones.len() < 2 {
        return Err(format!(
            "the fleet has {} zones; rebalancing needs at least 2 (POST /api/v1/fleet-optimization/zones)",
            zones.len()
        ));
    }
    if zones.len() > MAX_ZONES || p.horizon_periods == 0 || p.horizon_periods > MAX_PERIODS {
        return Err(format!(
            "at most {MAX_ZONES} zones and 1..={MAX_PERIODS} periods per run"
        ));
    }
    let mut sorted: Vec<&ZoneView> = zones.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let index: BTreeMap<&str, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, z)| (z.id.as_str(), i))
        .collect();
    for id in p.demand.keys().chain(p.arrivals.keys()) {
        if !index.contains_key(id.as_str()) {
            return Err(format!(
                "parameters.rebalance names zone {id}, not a zone of the fleet"
            ));
        }
    }
    let series = |m: &BTreeMap<String, Vec<u32>>, id: &str| -> Vec<u32> {
        let mut v = m.get(id).cloned().unwrap_or_default();
        v.resize(p.horizon_periods, 0);
        v
    };
    let idle_of = |id: &str| match &p.idle {
        Some(m) => m.get(id).copied().unwrap_or(0),
        None => live_idle.get(id).copied().unwrap_or(0),
    };
    let model_zones = sorted
        .iter()
        .map(|z| Zone {
            id: z.id.clone(),
            lat: z.lat,
            lon: z.lon,
            capacity: u32::try_from(z.vehicle_capacity).unwrap_or(u32::MAX),
            neighbours: z.neighbours.as_ref().map(|n| {
                n.iter()
                    .filter_map(|id| index.get(id.as_str()).copied())
                    .collect()
            }),
        })
        .collect();
    let scenario = Scenario {
        period_minutes: p.period_minutes,
        horizon: p.horizon_periods,
        idle: sorted.iter().map(|z| idle_of(&z.id)).collect(),
        arrivals: sorted.iter().map(|z| series(&p.arrivals, &z.id)).collect(),
        demand: sorted.iter().map(|z| series(&p.demand, &z.id)).collect(),
        move_budget: p.move_budget,
    };
    let source = match &p.travel_matrix {
        None => TravelSource::Haversine {
            speed_kmh: p.speed_kmh,
        },
        Some(m) => {
            let (mut minutes, mut km) = (Vec::new(), Vec::new());
            for a in &sorted {
                let (mut mr, mut kr) = (Vec::new(), Vec::new());
                for b in &sorted {
                    let [t, d] = if a.id == b.id {
                        [0.0, 0.0]
                    } else {
                        *m.get(&a.id).and_then(|r| r.get(&b.id)).ok_or_else(|| {
                            format!(
                                "parameters.rebalance.travel_matrix has no entry from {} to {}",
                                a.id, b.id
                            )
                        })?
                    };
                    mr.push(t);
                    kr.push(d);
                }
                minutes.push(mr);
                km.push(kr);
            }
            TravelSource::Matrix { minutes, km }
        }
    };
    let travel = TravelConfig {
        source,
        cost_per_km: p.cost_per_km,
    };
    Instance::new(model_zones, &travel, scenario).map_err(|e| e.to_string())
}

/// What a run produced, as rows to store.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    /// One per point of the front: (cost, efficiency, coverage) normalized 0..1, score,
    /// details.
    pub results: Vec<(f64, f64, f64, f64, Value)>,
    /// (action, priority, expected gain in coverage points, details).
    pub recommendations: Vec<(String, i32, f64, Value)>,
    /// (metric, value) of the run.
    pub metrics: Vec<(&'static str, f64)>,
}

/// Solves: the Pareto front (its chosen point by the run's weights), shadow prices and
/// recommendations of the chosen plan against doing nothing.
pub fn solve(
    inst: &Instance,
    p: &RebalanceParams,
    run_weights: [f64; 3],
) -> Result<(ParetoFront, Recommendations), String> {
    let weights = p.weights(run_weights);
    let front = pareto_front(inst, weights, p.pareto_points.max(2)).map_err(|e| e.to_string())?;
    let chosen = &front.points[front.chosen].solution;
    let recs = recommend(inst, &Spec::weighted(weights), chosen).map_err(|e| e.to_string())?;
    Ok((front, recs))
}

fn values_json(v: &ObjectiveValues) -> Value {
    json!({
        "cost_cents": v.cost_cents,
        "empty_km": v.empty_km,
        "idle_vehicle_minutes": v.idle_vehicle_minutes,
        "served": v.served,
        "demand": v.demand,
        "moved": v.moved,
        "coverage_pct": v.coverage_pct(),
    })
}

/// The rows of a solved run.
pub fn output(
    inst: &Instance,
    front: &ParetoFront,
    recs: &Recommendations,
    run_weights: [f64; 3],
    elapsed_ms: f64,
) -> RunOutput {
    let range = |o: Objective| {
        front
            .payoff
            .iter()
            .find(|r| r.objective == o)
            .map_or((0, 0), |r| (r.best, r.worst))
    };
    let norm = |v: i64, (best, worst): (i64, i64)| {
        if worst > best {
            (v - best) as f64 / (worst - best) as f64
        } else {
            0.0
        }
    };
    let payoff: Vec<Value> = front
        .payoff
        .iter()
        .map(|r| json!({"objective": format!("{:?}", r.objective).to_lowercase(), "best": r.best, "worst": r.worst}))
        .collect();
    let zones = inst.zones();
    let results = front
        .points
        .iter()
        .map(|pt| {
            let v = pt.values();
            let cost = norm(v.cost_cents, range(Objective::Cost));
            let efficiency = 1.0 - norm(v.idle_vehicle_minutes, range(Objective::Efficiency));
            let coverage = if v.demand > 0 {
                v.served as f64 / v.demand as f64
            } else {
                1.0
            };
            let mut details = json!({
                "chosen": pt.chosen,
                "min_served": pt.min_served,
                "values": values_json(v),
                "lp_bound": pt.solution.lp_bound_f64(),
                "moves": pt.solution.plan.moves.iter().map(|m| json!({
                    "from_zone": zones[m.from].id, "to_zone": zones[m.to].id,
                    "depart_period": m.depart, "vehicles": m.count,
                })).collect::<Vec<_>>(),
            });
            if pt.chosen {
                details["payoff"] = Value::Array(payoff.clone());
                details["shadow_prices"] = pt
                    .solution
                    .shadow_prices
                    .iter()
                    .map(|s| json!({"zone_id": zones[s.zone].id, "value": s.value, "exact": s.exact}))
                    .collect();
            }
            let score = objective_score(run_weights, cost, efficiency, coverage);
            (cost, efficiency, coverage, score, details)
        })
        .collect();
    let n = recs.items.len().max(1) as i32;
    let recommendations = recs
        .items
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let action = format!(
                "move {} idle vehicle{} from {} to {} within {} min; expected coverage +{:.1} %, {:.1} empty km",
                r.vehicles,
                if r.vehicles == 1 { "" } else { "s" },
                r.from_zone,
                r.to_zone,
                r.depart_within_minutes,
                r.expected_coverage_gain_pct,
                r.empty_km
            );
            // Highest expected gain first: 100 down to 1 in rank order.
            let priority = (100 - (i as i32) * 99 / n).clamp(1, 100);
            let details = json!({
                "from_zone": r.from_zone, "to_zone": r.to_zone, "vehicles": r.vehicles,
                "first_depart_period": r.first_depart_period,
                "depart_within_minutes": r.depart_within_minutes,
                "empty_km": r.empty_km, "cost_cents": r.cost_cents,
                "expected_served_gain": r.expected_served_gain,
                "expected_objective_gain": r.expected_objective_gain,
            });
            (action, priority, r.expected_coverage_gain_pct, details)
        })
        .collect();
    let mut metrics = vec![
        ("execution_time_ms", elapsed_ms),
        ("coverage_pct", recs.plan.coverage_pct()),
        ("coverage_gain_pct", recs.coverage_gain_pct),
        ("vehicles_moved", recs.plan.moved as f64),
        ("empty_km", recs.plan.empty_km),
        ("recommendations", recs.items.len() as f64),
        ("pareto_points", front.points.len() as f64),
    ];
    if let Some(r) = recs.objective_reduction_pct {
        metrics.push(("cost_reduction_pct", r));
    }
    RunOutput {
        results,
        recommendations,
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(id: &str, lon: f64, neighbours: Option<Vec<&str>>) -> ZoneView {
        ZoneView {
            id: id.into(),
            fleet_id: "f".into(),
            name: id.into(),
            lat: 52.5,
            lon,
            vehicle_capacity: 20,
            neighbours: neighbours.map(|n| n.into_iter().map(String::from).collect()),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn params(demand: &[(&str, Vec<u32>)]) -> RebalanceParams {
        serde_json::from_value(json!({
            "horizon_periods": 4,
            "demand": demand.iter().map(|(z, d)| (z.to_string(), d.clone())).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    #[test]
    fn a_travel_matrix_replaces_centroid_distance() {
        let zones = [zone("east", 13.43, None), zone("west", 13.40, None)];
        let mut p = params(&[("east", vec![0, 3, 2, 0])]);
        let idle = BTreeMap::from([("west".to_string(), 6)]);
        p.travel_matrix = Some(BTreeMap::from([(
            "west".to_string(),
            BTreeMap::from([("east".to_string(), [50.0, 30.0])]),
        )]));
        let err = instance(&p, &zones, &idle).unwrap_err();
        assert!(err.contains("from east to west"), "{err}");
        p.travel_matrix.as_mut().unwrap().insert(
            "east".to_string(),
            BTreeMap::from([("west".to_string(), [50.0, 30.0])]),
        );
        let inst = instance(&p, &zones, &idle).unwrap();
        // 50 minutes: 4 periods of 15 min; the demand in periods 1–2 is out of reach.
        let (_, recs) = solve(&inst, &p, [0.2, 0.2, 0.6]).unwrap();
        assert_eq!(recs.plan.served, 0, "too far by the matrix");
        p.travel_matrix = None;
        let inst = instance(&p, &zones, &idle).unwrap();
        let (_, recs) = solve(&inst, &p, [0.2, 0.2, 0.6]).unwrap();
        assert_eq!(recs.plan.served, 5, "2 km by the centroids");
    }

    #[test]
    fn idle_vehicles_move_to_the_demand_and_the_rows_say_so() {
        // All idle vehicles in the west, demand in the east 2 km away.
        let zones = [zone("east", 13.43, None), zone("west", 13.40, None)];
        let p = params(&[("east", vec![0, 3, 2, 0])]);
        let idle = BTreeMap::from([("west".to_string(), 6)]);
        let inst = instance(&p, &zones, &idle).unwrap();
        assert_eq!(inst.zones()[0].id, "east", "zones in id order");
        let w = [0.2, 0.2, 0.6];
        let (front, recs) = solve(&inst, &p, w).unwrap();
        assert!(front.points.iter().filter(|p| p.chosen).count() == 1);
        assert_eq!(recs.plan.served, 5, "the chosen plan serves all 5");
        assert_eq!(recs.do_nothing.served, 0, "nothing is served without moves");
        let out = output(&inst, &front, &recs, w, 12.0);
        let (action, priority, gain, details) = &out.recommendations[0];
        assert!(
            action.starts_with("move ") && action.contains("from west to east"),
            "{action}"
        );
        assert_eq!(*priority, 100);
        assert!((*gain - 100.0).abs() < 1e-9, "{gain}");
        assert_eq!(details["vehicles"], 5);
        let chosen: Vec<_> = out
            .results
            .iter()
            .filter(|r| r.4["chosen"] == true)
            .collect();
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].2, 1.0, "full coverage");
        assert_eq!(chosen[0].4["shadow_prices"].as_array().unwrap().len(), 2);
        for (c, e, v, s, _) in &out.results {
            for x in [c, e, v, s] {
                assert!((0.0..=1.0).contains(x), "{x}");
            }
        }
        let m: BTreeMap<_, _> = out.metrics.iter().cloned().collect();
        assert_eq!(m["coverage_gain_pct"], 100.0);
        assert_eq!(m["vehicles_moved"], 5.0);
        // Deterministic: the same input, the same rows.
        let again = output(&inst, &solve(&inst, &p, w).unwrap().0, &recs, w, 12.0);
        assert_eq!(again, out);
    }

    #[test]
    fn bad_runs_say_why() {
        let one = [zone("a", 13.4, None)];
        let p = params(&[]);
        assert!(instance(&p, &one, &BTreeMap::new())
            .unwrap_err()
            .contains("at least 2"));
        let two = [zone("a", 13.4, None), zone("b", 13.5, Some(vec!["a"]))];
        let p = params(&[("nowhere", vec![1])]);
        assert!(instance(&p, &two, &BTreeMap::new())
            .unwrap_err()
            .contains("nowhere"));
        assert!(RebalanceParams::of_run(Some(&json!({"horizon_h": 4}))).is_none());
        let bad = RebalanceParams::of_run(Some(&json!({"rebalance": {"demand": {}, "x": 1}})));
        assert!(bad.unwrap().unwrap_err().contains("unknown field"));
    }
}
