//! The time-expanded network of an [`Instance`]: one node per (zone, period), a hub collecting
//! served demand, and a sink.
//!
//! Arcs (each carrying its meaning as an [`ArcKind`]):
//! - hold `(z, t) → (z, t+1)`, capacity = zone capacity (vehicles idling through period `t`);
//! - end `(z, T−1) → sink`, capacity = zone capacity (idling through the last period);
//! - move `(z, t) → (z', t + τ)` for every reachable `z'` arriving within the horizon,
//!   uncapacitated, with the link's cost and travel periods `τ`;
//! - serve `(z, t) → hub`, capacity = forecast demand (a vehicle taking a request leaves the
//!   idle pool);
//! - served `hub → sink`, bounds `[min served, total demand]`: the coverage objective and a
//!   coverage floor are a cost and a lower bound on this single arc, so they stay network
//!   structure (no side constraint).
//!
//! Supplies: idle vehicles at period 0 and forecast arrivals at `(z, t)`; the sink absorbs all.

use crate::flow::{FlowNetwork, INF_CAP};
use crate::model::Instance;

/// What an arc of the time-expanded network stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ArcKind {
    /// Vehicles idling in `zone` through `period` (not the last).
    Hold {
        /// Zone index.
        zone: usize,
        /// Period index.
        period: usize,
    },
    /// Vehicles idling in `zone` through the last period.
    End {
        /// Zone index.
        zone: usize,
    },
    /// Empty moves departing `from` at `depart`, arriving at `to` at `arrive`.
    Move {
        /// Origin zone.
        from: usize,
        /// Destination zone.
        to: usize,
        /// Departure period.
        depart: usize,
        /// Arrival period.
        arrive: usize,
    },
    /// Demand served in `zone` at `period`.
    Serve {
        /// Zone index.
        zone: usize,
        /// Period index.
        period: usize,
    },
    /// All served demand (hub → sink).
    Served,
}

impl ArcKind {
    /// Cost in cents of one unit of flow (empty km × cost per km).
    pub fn cost_cents(&self, inst: &Instance) -> i64 {
        match *self {
            Self::Move { from, to, .. } => inst.link(from, to).map_or(0, |l| l.cost_cents),
            _ => 0,
        }
    }

    /// Empty km of one unit of flow.
    pub fn empty_km(&self, inst: &Instance) -> f64 {
        match *self {
            Self::Move { from, to, .. } => inst.link(from, to).map_or(0.0, |l| l.km),
            _ => 0.0,
        }
    }

    /// Vehicle-minutes idle or moving empty of one unit of flow.
    pub fn idle_minutes(&self, inst: &Instance) -> i64 {
        let p = i64::from(inst.period_minutes());
        match *self {
            Self::Hold { .. } | Self::End { .. } => p,
            Self::Move { depart, arrive, .. } => (arrive - depart) as i64 * p,
            Self::Serve { .. } | Self::Served => 0,
        }
    }

    /// Vehicle moves counted against the budget per unit of flow.
    pub fn moves(&self) -> i64 {
        i64::from(matches!(self, Self::Move { .. }))
    }

    /// Demand units served per unit of flow (counted once, on the hub arc).
    pub fn served(&self) -> i64 {
        i64::from(matches!(self, Self::Served))
    }
}

/// The time-expanded network with the meaning of each arc.
#[derive(Debug, Clone)]
pub struct TimeExpanded {
    /// The flow network.
    pub net: FlowNetwork,
    /// Meaning of arc `a`.
    pub kinds: Vec<ArcKind>,
    /// Index of the served-demand arc.
    pub served_arc: usize,
    /// Sink node.
    pub sink: usize,
    horizon: usize,
}

impl TimeExpanded {
    /// Builds the network; at least `min_served` demand units must be served.
    pub fn build(inst: &Instance, min_served: u64) -> Self {
        let (z, t_max) = (inst.zone_count(), inst.horizon());
        let hub = z * t_max;
        let sink = hub + 1;
        let mut net = FlowNetwork::new(sink + 1);
        let mut kinds = Vec::new();
        let node = |zone: usize, period: usize| zone * t_max + period;
        let total = inst.total_supply() as i64;
        let move_cap = total.min(INF_CAP);
        for zone in 0..z {
            let cap = i64::from(inst.zones()[zone].capacity);
            for period in 0..t_max {
                let here = node(zone, period);
                net.add_supply(here, i64::from(inst.supply(zone, period)));
                if period + 1 < t_max {
                    net.add_arc(here, node(zone, period + 1), 0, cap);
                    kinds.push(ArcKind::Hold { zone, period });
                } else {
                    net.add_arc(here, sink, 0, cap);
                    kinds.push(ArcKind::End { zone });
                }
                net.add_arc(here, hub, 0, i64::from(inst.demand()[zone][period]));
                kinds.push(ArcKind::Serve { zone, period });
                for link in &inst.links()[zone] {
                    let arrive = period + link.periods as usize;
                    if arrive < t_max {
                        net.add_arc(here, node(link.to, arrive), 0, move_cap);
                        kinds.push(ArcKind::Move {
                            from: zone,
                            to: link.to,
                            depart: period,
                            arrive,
                        });
                    }
                }
            }
        }
        let demand = inst.total_demand() as i64;
        let served_arc = net.add_arc(hub, sink, min_served as i64, demand);
        kinds.push(ArcKind::Served);
        net.add_supply(sink, -total);
        Self {
            net,
            kinds,
            served_arc,
            sink,
            horizon: t_max,
        }
    }

    /// Node of `(zone, period)`.
    pub fn node(&self, zone: usize, period: usize) -> usize {
        zone * self.horizon + period
    }
}
