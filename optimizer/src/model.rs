//! The rebalancing model: zones, travel between them, periods, supply and demand.
//!
//! All quantities the solver optimises are integers (vehicles, demand units, cost in cents,
//! vehicle-minutes), so objectives are exact and plans compare byte for byte.

use crate::{Error, Result};

/// Default period length in minutes.
pub const DEFAULT_PERIOD_MINUTES: u32 = 15;

/// Mean Earth radius used by [`haversine_km`].
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A zone vehicles can idle in and be moved between.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Stable zone id.
    pub id: String,
    /// Centroid latitude in degrees.
    pub lat: f64,
    /// Centroid longitude in degrees.
    pub lon: f64,
    /// Vehicles that may idle in the zone during one period.
    pub capacity: u32,
    /// Zones (by index) reachable by a move; `None` means every other zone.
    pub neighbours: Option<Vec<usize>>,
}

/// Where travel times and distances come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TravelSource {
    /// Explicit matrices indexed `[from][to]`: minutes and kilometres.
    Matrix {
        /// Travel time in minutes.
        minutes: Vec<Vec<f64>>,
        /// Empty distance in km.
        km: Vec<Vec<f64>>,
    },
    /// Great-circle distance between centroids driven at a constant speed.
    Haversine {
        /// Average repositioning speed in km/h.
        speed_kmh: f64,
    },
}

/// Travel configuration: the source of times/distances and the cost of an empty km.
#[derive(Debug, Clone, PartialEq)]
pub struct TravelConfig {
    /// Times and distances.
    pub source: TravelSource,
    /// Energy and wear cost of one empty km, in currency units (costs are kept in cents).
    pub cost_per_km: f64,
}

/// One reachable move of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Destination zone index.
    pub to: usize,
    /// Travel time in whole periods (≥ 1).
    pub periods: u32,
    /// Empty km driven.
    pub km: f64,
    /// Cost of the move in cents (rounded once, here).
    pub cost_cents: i64,
}

/// A validated rebalancing instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    zones: Vec<Zone>,
    period_minutes: u32,
    horizon: usize,
    idle: Vec<u32>,
    arrivals: Vec<Vec<u32>>,
    demand: Vec<Vec<u32>>,
    links: Vec<Vec<Link>>,
    move_budget: Option<u32>,
}

/// Inputs of [`Instance::new`] besides the zones and travel.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Period length in minutes ([`DEFAULT_PERIOD_MINUTES`] by default).
    pub period_minutes: u32,
    /// Number of periods in the horizon.
    pub horizon: usize,
    /// Idle vehicles per zone at period 0.
    pub idle: Vec<u32>,
    /// Forecast vehicles becoming idle per `[zone][period]`.
    pub arrivals: Vec<Vec<u32>>,
    /// Forecast demand (the chosen quantile, integral) per `[zone][period]`.
    pub demand: Vec<Vec<u32>>,
    /// Maximum number of vehicle moves in the plan; `None` for no budget.
    pub move_budget: Option<u32>,
}

/// Great-circle distance in km between two points given in degrees.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Travel time in whole periods: rounded up, at least 1 between different zones.
pub fn periods_for(minutes: f64, period_minutes: u32) -> u32 {
    let p = (minutes / f64::from(period_minutes)).ceil();
    if p.is_finite() && p >= 1.0 {
        p as u32
    } else {
        1
    }
}

/// Indices of the `k` nearest other zones of each zone (ties by index), for neighbour lists.
pub fn nearest_neighbours(zones: &[Zone], k: usize) -> Vec<Vec<usize>> {
    zones
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut d: Vec<(f64, usize)> = zones
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(j, b)| (haversine_km(a.lat, a.lon, b.lat, b.lon), j))
                .collect();
            d.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            d.into_iter().take(k).map(|(_, j)| j).collect()
        })
        .collect()
}

impl Instance {
    /// Validates the inputs and derives the reachable moves with their travel periods and cost.
    pub fn new(zones: Vec<Zone>, travel: &TravelConfig, scenario: Scenario) -> Result<Self> {
        let z = zones.len();
        let Scenario {
            period_minutes,
            horizon,
            idle,
            arrivals,
            demand,
            move_budget,
        } = scenario;
        if z == 0 || horizon == 0 || period_minutes == 0 {
            return Err(Error::Invalid(
                "need zones, a horizon and a period length".into(),
            ));
        }
        let grid_ok = |g: &Vec<Vec<u32>>| g.len() == z && g.iter().all(|r| r.len() == horizon);
        if idle.len() != z || !grid_ok(&arrivals) || !grid_ok(&demand) {
            return Err(Error::Invalid(
                "idle, arrivals and demand must be zones × periods".into(),
            ));
        }
        if !(travel.cost_per_km.is_finite() && travel.cost_per_km >= 0.0) {
            return Err(Error::Invalid("cost per km must be finite and ≥ 0".into()));
        }
        let mut links = Vec::with_capacity(z);
        for (i, zone) in zones.iter().enumerate() {
            let mut targets: Vec<usize> = match &zone.neighbours {
                Some(n) => n.clone(),
                None => (0..z).collect(),
            };
            targets.sort_unstable();
            targets.dedup();
            let mut row = Vec::with_capacity(targets.len());
            for j in targets {
                if j >= z {
                    return Err(Error::Invalid(format!(
                        "zone {} has neighbour {j}",
                        zone.id
                    )));
                }
                if j == i {
                    continue;
                }
                let (minutes, km) = match &travel.source {
                    TravelSource::Matrix { minutes, km } => {
                        let m = minutes.get(i).and_then(|r| r.get(j)).copied();
                        let k = km.get(i).and_then(|r| r.get(j)).copied();
                        match (m, k) {
                            (Some(m), Some(k)) => (m, k),
                            _ => return Err(Error::Invalid("travel matrix too small".into())),
                        }
                    }
                    TravelSource::Haversine { speed_kmh } => {
                        if !(speed_kmh.is_finite() && *speed_kmh > 0.0) {
                            return Err(Error::Invalid("speed must be > 0".into()));
                        }
                        let other = &zones[j];
                        let km = haversine_km(zone.lat, zone.lon, other.lat, other.lon);
                        (km / speed_kmh * 60.0, km)
                    }
                };
                if !(minutes.is_finite() && minutes >= 0.0 && km.is_finite() && km >= 0.0) {
                    return Err(Error::Invalid(format!("bad travel {i}→{j}")));
                }
                let cost_cents = (km * travel.cost_per_km * 100.0).round() as i64;
                row.push(Link {
                    to: j,
                    periods: periods_for(minutes, period_minutes),
                    km,
                    cost_cents,
                });
            }
            links.push(row);
        }
        Ok(Self {
            zones,
            period_minutes,
            horizon,
            idle,
            arrivals,
            demand,
            links,
            move_budget,
        })
    }

    /// The zones.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// Number of zones.
    pub fn zone_count(&self) -> usize {
        self.zones.len()
    }

    /// Period length in minutes.
    pub fn period_minutes(&self) -> u32 {
        self.period_minutes
    }

    /// Number of periods.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// Idle vehicles per zone at period 0.
    pub fn idle(&self) -> &[u32] {
        &self.idle
    }

    /// Forecast arrivals `[zone][period]`.
    pub fn arrivals(&self) -> &[Vec<u32>] {
        &self.arrivals
    }

    /// Forecast demand `[zone][period]`.
    pub fn demand(&self) -> &[Vec<u32>] {
        &self.demand
    }

    /// Reachable moves from each zone, sorted by destination.
    pub fn links(&self) -> &[Vec<Link>] {
        &self.links
    }

    /// The move budget, if any.
    pub fn move_budget(&self) -> Option<u32> {
        self.move_budget
    }

    /// A copy with another move budget.
    pub fn with_move_budget(&self, budget: Option<u32>) -> Self {
        Self {
            move_budget: budget,
            ..self.clone()
        }
    }

    /// A copy in which vehicles cannot be moved `from → to` in any period.
    pub fn without_link(&self, from: usize, to: usize) -> Self {
        let mut c = self.clone();
        if let Some(row) = c.links.get_mut(from) {
            row.retain(|l| l.to != to);
        }
        c
    }

    /// A copy with `extra` more idle vehicles at period 0 in `zone`.
    pub fn with_extra_idle(&self, zone: usize, extra: u32) -> Self {
        let mut c = self.clone();
        c.idle[zone] += extra;
        c
    }

    /// Supply entering node `(zone, period)`: idle vehicles at period 0 plus arrivals.
    pub fn supply(&self, zone: usize, period: usize) -> u32 {
        self.arrivals[zone][period] + if period == 0 { self.idle[zone] } else { 0 }
    }

    /// Total vehicles over the horizon.
    pub fn total_supply(&self) -> u64 {
        (0..self.zone_count())
            .flat_map(|z| (0..self.horizon).map(move |t| (z, t)))
            .map(|(z, t)| u64::from(self.supply(z, t)))
            .sum()
    }

    /// Total forecast demand over the horizon.
    pub fn total_demand(&self) -> u64 {
        self.demand.iter().flatten().map(|&d| u64::from(d)).sum()
    }

    /// The link `from → to`, if reachable.
    pub fn link(&self, from: usize, to: usize) -> Option<&Link> {
        let row = self.links.get(from)?;
        row.binary_search_by_key(&to, |l| l.to)
            .ok()
            .map(|i| &row[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(id: &str, lat: f64, lon: f64) -> Zone {
        Zone {
            id: id.into(),
            lat,
            lon,
            capacity: 5,
            neighbours: None,
        }
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // Montréal (45.5017, -73.5673) to Québec City (46.8139, -71.2080): ≈ 233 km.
        let d = haversine_km(45.5017, -73.5673, 46.8139, -71.2080);
        assert!((d - 233.0).abs() < 2.0, "{d}");
        assert_eq!(haversine_km(1.0, 2.0, 1.0, 2.0), 0.0);
    }

    #[test]
    fn travel_periods_round_up_with_a_minimum_of_one() {
        assert_eq!(periods_for(0.0, 15), 1);
        assert_eq!(periods_for(15.0, 15), 1);
        assert_eq!(periods_for(15.1, 15), 2);
        assert_eq!(periods_for(44.0, 15), 3);
    }

    #[test]
    fn haversine_links_have_speed_based_periods_and_cost() {
        // 0.1° of latitude ≈ 11.1 km; at 20 km/h that is 33.4 min → 3 periods of 15 min.
        let zones = vec![zone("a", 45.0, -73.0), zone("b", 45.1, -73.0)];
        let travel = TravelConfig {
            source: TravelSource::Haversine { speed_kmh: 20.0 },
            cost_per_km: 0.5,
        };
        let sc = Scenario {
            period_minutes: 15,
            horizon: 2,
            idle: vec![1, 0],
            arrivals: vec![vec![0, 0]; 2],
            demand: vec![vec![0, 1]; 2],
            move_budget: None,
        };
        let inst = Instance::new(zones, &travel, sc).unwrap();
        let l = inst.link(0, 1).unwrap();
        assert_eq!(l.periods, 3);
        assert_eq!(l.cost_cents, (l.km * 50.0).round() as i64);
        assert!(inst.link(0, 0).is_none());
        assert_eq!(inst.total_supply(), 1);
        assert_eq!(inst.total_demand(), 2);
    }

    #[test]
    fn matrix_links_and_neighbour_lists() {
        let mut zones = vec![
            zone("a", 0.0, 0.0),
            zone("b", 0.0, 0.0),
            zone("c", 0.0, 0.0),
        ];
        zones[0].neighbours = Some(vec![2]);
        let travel = TravelConfig {
            source: TravelSource::Matrix {
                minutes: vec![vec![0.0, 5.0, 31.0]; 3],
                km: vec![vec![0.0, 2.0, 9.0]; 3],
            },
            cost_per_km: 1.0,
        };
        let sc = Scenario {
            period_minutes: 15,
            horizon: 1,
            idle: vec![0; 3],
            arrivals: vec![vec![0]; 3],
            demand: vec![vec![0]; 3],
            move_budget: Some(2),
        };
        let inst = Instance::new(zones, &travel, sc).unwrap();
        assert_eq!(inst.links()[0].len(), 1);
        assert_eq!(inst.link(0, 2).unwrap().periods, 3);
        assert_eq!(inst.link(0, 2).unwrap().cost_cents, 900);
        assert_eq!(inst.link(1, 0).unwrap().periods, 1);
        assert_eq!(inst.links()[1].len(), 2);
    }

    #[test]
    fn rejects_mis_shaped_inputs() {
        let travel = TravelConfig {
            source: TravelSource::Haversine { speed_kmh: 20.0 },
            cost_per_km: 0.5,
        };
        let sc = Scenario {
            period_minutes: 15,
            horizon: 2,
            idle: vec![1],
            arrivals: vec![vec![0]],
            demand: vec![vec![0, 0]],
            move_budget: None,
        };
        assert!(matches!(
            Instance::new(vec![zone("a", 0.0, 0.0)], &travel, sc),
            Err(Error::Invalid(_))
        ));
    }
}
