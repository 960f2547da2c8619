//! Plans, their objective values and the objectives themselves.

use crate::model::Instance;
use crate::network::ArcKind;

/// One of the three objectives, each in its minimisation form and integer unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Objective {
    /// Empty-km cost in cents.
    Cost,
    /// Vehicle-minutes idle or moving empty.
    Efficiency,
    /// Unserved forecast demand units (coverage = served / demand).
    Coverage,
}

impl Objective {
    /// All objectives, in a fixed order.
    pub const ALL: [Objective; 3] = [Objective::Cost, Objective::Efficiency, Objective::Coverage];

    /// Contribution of one unit of flow on an arc of `kind` (the constant part of coverage,
    /// total demand, is in [`Objective::constant`]).
    pub fn coefficient(self, kind: &ArcKind, inst: &Instance) -> i64 {
        match self {
            Self::Cost => kind.cost_cents(inst),
            Self::Efficiency => kind.idle_minutes(inst),
            Self::Coverage => -kind.served(),
        }
    }

    /// Constant term of the objective.
    pub fn constant(self, inst: &Instance) -> i64 {
        match self {
            Self::Coverage => inst.total_demand() as i64,
            _ => 0,
        }
    }

    /// The objective's value in a plan.
    pub fn value(self, v: &ObjectiveValues) -> i64 {
        match self {
            Self::Cost => v.cost_cents,
            Self::Efficiency => v.idle_vehicle_minutes,
            Self::Coverage => v.unmet(),
        }
    }
}

/// Non-negative integer weights of the weighted objective
/// `cost·cents + efficiency·vehicle-minutes + coverage·unmet units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weights {
    /// Weight of one cent of empty-km cost.
    pub cost: i64,
    /// Weight of one idle/empty vehicle-minute.
    pub efficiency: i64,
    /// Penalty of one unserved demand unit.
    pub coverage: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            cost: 1,
            efficiency: 1,
            coverage: 1_000,
        }
    }
}

impl Weights {
    /// Weight of `o`.
    pub fn of(&self, o: Objective) -> i64 {
        match o {
            Objective::Cost => self.cost,
            Objective::Efficiency => self.efficiency,
            Objective::Coverage => self.coverage,
        }
    }

    /// Weights that are `w` on `o` and zero elsewhere.
    pub fn only(o: Objective, w: i64) -> Self {
        let mut s = Self {
            cost: 0,
            efficiency: 0,
            coverage: 0,
        };
        match o {
            Objective::Cost => s.cost = w,
            Objective::Efficiency => s.efficiency = w,
            Objective::Coverage => s.coverage = w,
        }
        s
    }

    /// The weighted objective of `v`, exactly (`None` on overflow).
    pub fn scalar(&self, v: &ObjectiveValues) -> Option<i64> {
        Objective::ALL.iter().try_fold(0i64, |acc, &o| {
            self.of(o)
                .checked_mul(o.value(v))
                .and_then(|x| acc.checked_add(x))
        })
    }
}

/// The objective values of a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectiveValues {
    /// Empty-km cost in cents.
    pub cost_cents: i64,
    /// Empty km driven.
    pub empty_km: f64,
    /// Vehicle-minutes idle or moving empty.
    pub idle_vehicle_minutes: i64,
    /// Demand units served.
    pub served: i64,
    /// Forecast demand units.
    pub demand: i64,
    /// Vehicles moved.
    pub moved: i64,
}

impl ObjectiveValues {
    /// Unserved demand units.
    pub fn unmet(&self) -> i64 {
        self.demand - self.served
    }

    /// Served demand in % of forecast demand (100 when there is no demand).
    pub fn coverage_pct(&self) -> f64 {
        if self.demand == 0 {
            100.0
        } else {
            100.0 * self.served as f64 / self.demand as f64
        }
    }

    /// Vehicle-hours idle or moving empty.
    pub fn efficiency_hours(&self) -> f64 {
        self.idle_vehicle_minutes as f64 / 60.0
    }

    /// `true` when `self` is at least as good in every objective and better in one.
    pub fn dominates(&self, other: &Self) -> bool {
        let le = Objective::ALL
            .iter()
            .all(|&o| o.value(self) <= o.value(other));
        let lt = Objective::ALL
            .iter()
            .any(|&o| o.value(self) < o.value(other));
        le && lt
    }
}

/// Vehicles moved empty from one zone to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Move {
    /// Departure period.
    pub depart: usize,
    /// Origin zone index.
    pub from: usize,
    /// Destination zone index.
    pub to: usize,
    /// Arrival period.
    pub arrive: usize,
    /// Number of vehicles.
    pub count: i64,
}

/// A rebalancing plan over the horizon (all counts integral by type).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Moves, sorted by (departure, origin, destination).
    pub moves: Vec<Move>,
    /// Vehicles idling in `[zone][period]` through that period.
    pub idle: Vec<Vec<i64>>,
    /// Demand served in `[zone][period]`.
    pub served: Vec<Vec<i64>>,
    /// Demand left unserved in `[zone][period]`.
    pub unmet: Vec<Vec<i64>>,
    /// The plan's objective values.
    pub values: ObjectiveValues,
    /// The weights the plan was optimised for.
    pub weights: Weights,
    /// `weights · values`.
    pub objective: i64,
}

impl Plan {
    /// Builds a plan from a flow on the time-expanded network (arc meanings `kinds`).
    pub fn from_flow(inst: &Instance, kinds: &[ArcKind], flow: &[i64], weights: Weights) -> Self {
        let (z, t) = (inst.zone_count(), inst.horizon());
        let mut idle = vec![vec![0; t]; z];
        let mut served = vec![vec![0; t]; z];
        let mut moves = Vec::new();
        for (kind, &x) in kinds.iter().zip(flow) {
            match *kind {
                ArcKind::Hold { zone, period } => idle[zone][period] += x,
                ArcKind::End { zone } => idle[zone][t - 1] += x,
                ArcKind::Serve { zone, period } => served[zone][period] += x,
                ArcKind::Move {
                    from,
                    to,
                    depart,
                    arrive,
                } if x != 0 => {
                    moves.push(Move {
                        depart,
                        from,
                        to,
                        arrive,
                        count: x,
                    });
                }
                ArcKind::Move { .. } | ArcKind::Served => {}
            }
        }
        moves.sort();
        let unmet = (0..z)
            .map(|zi| {
                (0..t)
                    .map(|p| i64::from(inst.demand()[zi][p]) - served[zi][p])
                    .collect()
            })
            .collect();
        let mut plan = Self {
            moves,
            idle,
            served,
            unmet,
            values: ObjectiveValues {
                cost_cents: 0,
                empty_km: 0.0,
                idle_vehicle_minutes: 0,
                served: 0,
                demand: 0,
                moved: 0,
            },
            weights,
            objective: 0,
        };
        plan.values = plan.recompute_values(inst);
        plan.objective = weights.scalar(&plan.values).unwrap_or(i64::MAX);
        plan
    }

    /// Objective values recomputed from the plan's own counts (not from the flow).
    pub fn recompute_values(&self, inst: &Instance) -> ObjectiveValues {
        let p = i64::from(inst.period_minutes());
        let mut v = ObjectiveValues {
            cost_cents: 0,
            empty_km: 0.0,
            idle_vehicle_minutes: 0,
            served: self.served.iter().flatten().sum(),
            demand: inst.total_demand() as i64,
            moved: 0,
        };
        for m in &self.moves {
            if let Some(l) = inst.link(m.from, m.to) {
                v.cost_cents += m.count * l.cost_cents;
                v.empty_km += m.count as f64 * l.km;
            }
            v.idle_vehicle_minutes += m.count * (m.arrive as i64 - m.depart as i64) * p;
            v.moved += m.count;
        }
        v.idle_vehicle_minutes += self.idle.iter().flatten().sum::<i64>() * p;
        v
    }
}
