//! Zone-level demand and fleet model with the rebalancing engine in the loop: the closed-loop
//! benchmark of `atlasmesh bench-rebalance`. Pure and deterministic per seed (no clock, no I/O).
//!
//! # City
//! A centre zone, an inner ring and an outer ring of zones around a configurable centre
//! ([`CityConfig`]), or an explicit zone list. Each zone has a centroid, a vehicle capacity and
//! two weights: `homes` (where trips start in the morning and end in the evening) and `jobs`
//! (the reverse). Distances are the optimizer's great-circle distance between centroids
//! ([`atlasmesh_optimizer::model::haversine_km`]; a trip inside a zone drives
//! `intra_zone_km`), travel times that distance at `speed_kmh`.
//!
//! # Demand ([`DemandModel`])
//! Mission requests per origin zone are Poisson arrivals (drawn minute by minute) of three
//! kinds, each with an hourly daily profile (linear between hours) and a weekly factor:
//! - **commute out**: rate ∝ the zone's `homes`, morning profile; destination ∝ `jobs`;
//! - **commute back**: rate ∝ `jobs` (scaled so both commutes have the same daily volume),
//!   evening profile; destination ∝ `homes`;
//! - **other**: rate ∝ `homes + jobs`, daytime profile; destination ∝ `homes + jobs`;
//!
//! destinations weighted by `exp(−distance / decay_km)`. Mornings drain the residential ring
//! into the centre, evenings the reverse: without repositioning, idle vehicles pile up where
//! trips end and requests expire where they start. Demand has its own random stream, so every
//! run with the same seed sees the same requests whatever the fleet does.
//!
//! # Fleet ([`ZoneFleetSim`])
//! One-minute ticks. A request waits in its origin zone; at the end of each tick pending
//! requests (oldest first) are assigned to the longest-idle vehicle in their zone, else in the
//! nearest zone within `reach_minutes` of pickup. A request not assigned within `max_wait_s` is
//! `expired`. Wait to assignment is counted from the request to the end of the tick that
//! assigned it (one-minute dispatch batches). An assigned vehicle drives to the pickup, then
//! the trip, and becomes idle at the destination. Every change is a typed [`ZoneEvent`]
//! (serde-tagged, ready to be produced onto a topic).
//!
//! # Engine ([`RebalanceEngine`])
//! Every `period_minutes` it forecasts, per zone, the requests and the trips ending there for
//! the next `horizon` periods from the events it has observed (Holt-Winters with a daily
//! season from [`atlasmesh_optimizer::forecast`] once two days are observed, parameters
//! refitted daily on the multi-step criterion; seasonal naive after one day; the mean of the
//! last hour before). It builds an optimizer [`Instance`]: supply = idle vehicles per zone +
//! arrivals (vehicles repositioning there, plus the larger of the trips known to end there and
//! the forecast trip ends), demand = the forecast at the configured quantile plus the requests
//! pending now; solves it exactly ([`atlasmesh_optimizer::solver::solve`], weights: cost 1 per
//! cent, coverage `unmet_penalty_cents` per unserved request) and recommends the plan's moves
//! of idle vehicles that depart now (the plan is made again every period, so later moves are
//! only intentions). Each recommended vehicle move is adopted with probability `adoption` (its
//! own random stream); adopted vehicles drive empty to the target zone (empty km) and are idle
//! there on arrival. A zone's capacity in the instance is at least the vehicles already there
//! or arriving, so capacities limit moves into a zone and never make an instance infeasible.
//!
//! [`bench_rebalance`] runs the same seeded demand with no engine and with the engine at each
//! adoption level, side by side.

use std::collections::VecDeque;

use atlasmesh_optimizer::forecast::{
    backtest, forecast_counts, BacktestConfig, CountSpec, FitCriterion, HorizonScore, HwParams,
    Transform,
};
use atlasmesh_optimizer::model::{
    haversine_km, Instance, Scenario, TravelConfig, TravelSource, Zone,
};
use atlasmesh_optimizer::plan::Weights;
use atlasmesh_optimizer::solver::{solve, Spec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Simulation tick, seconds.
pub const TICK_S: i64 = 60;
const DAY_S: i64 = 86_400;
/// Random stream of the demand (the fleet draws nothing; adoption has its own stream).
const STREAM_DEMAND: u64 = 1;
const STREAM_ADOPTION: u64 = 2;

/// Errors of the zone simulation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoneSimError {
    /// The configuration is not usable (user error).
    #[error("invalid zone simulation config: {0}")]
    Config(String),
    /// The optimizer failed on an instance the engine built (internal error).
    #[error("rebalancing engine: {0}")]
    Engine(#[from] atlasmesh_optimizer::Error),
}

/// Result with [`ZoneSimError`].
pub type Result<T, E = ZoneSimError> = std::result::Result<T, E>;

fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(ZoneSimError::Config(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Demand weights of a zone: trips start at homes in the morning, at jobs in the evening.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneWeights {
    pub homes: f64,
    pub jobs: f64,
}

/// One zone of the city.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    /// Vehicles the zone can hold idle (limits repositioning into it).
    pub capacity: u32,
    #[serde(flatten)]
    pub weights: ZoneWeights,
}

/// City layout: a centre zone and two rings around `centre_lat/lon`, or `custom` zones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CityConfig {
    pub centre_lat: f64,
    pub centre_lon: f64,
    /// Zones in the generated layout (centre + inner ring + outer ring), ≥ 2.
    pub zones: usize,
    /// Zones on the inner ring (default: half of the ring zones, rounded down).
    pub inner_zones: Option<usize>,
    pub inner_ring_km: f64,
    pub outer_ring_km: f64,
    /// Capacity of every generated zone.
    pub capacity: u32,
    pub centre: ZoneWeights,
    pub inner: ZoneWeights,
    pub outer: ZoneWeights,
    /// Explicit zones instead of the generated layout (used when non-empty).
    pub custom: Vec<ZoneSpec>,
}

impl Default for CityConfig {
    fn default() -> Self {
        Self {
            // Montréal, Place Ville Marie.
            centre_lat: 45.5017,
            centre_lon: -73.5673,
            zones: 10,
            inner_zones: None,
            inner_ring_km: 3.0,
            outer_ring_km: 6.5,
            capacity: 40,
            centre: ZoneWeights {
                homes: 0.4,
                jobs: 4.0,
            },
            inner: ZoneWeights {
                homes: 1.0,
                jobs: 1.2,
            },
            outer: ZoneWeights {
                homes: 1.8,
                jobs: 0.3,
            },
            custom: Vec::new(),
        }
    }
}

/// Mission request demand: rates, daily and weekly profiles, destination choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemandConfig {
    /// Commute-out requests per hour per unit of `homes` at the morning peak (profile 1.0).
    pub commute_per_hour: f64,
    /// Other requests per hour per unit of `homes + jobs` at the daytime peak.
    pub other_per_hour: f64,
    /// 24 hourly values (at each hour's start, linear in between) of the commute-out rate.
    pub morning_profile: Vec<f64>,
    /// The same for the commute back (from jobs).
    pub evening_profile: Vec<f64>,
    /// The same for other trips.
    pub other_profile: Vec<f64>,
    /// 7 daily factors, Monday first, of both commutes.
    pub weekly_commute: Vec<f64>,
    /// 7 daily factors, Monday first, of other trips.
    pub weekly_other: Vec<f64>,
    /// Destination weight `exp(−km / decay_km)`.
    pub decay_km: f64,
}

impl Default for DemandConfig {
    fn default() -> Self {
        Self {
            commute_per_hour: 11.0,
            other_per_hour: 4.0,
            morning_profile: vec![
                0.02, 0.01, 0.01, 0.01, 0.03, 0.10, 0.35, 0.80, 1.00, 0.70, 0.35, 0.20, 0.15, 0.12,
                0.10, 0.10, 0.10, 0.10, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02,
            ],
            evening_profile: vec![
                0.05, 0.03, 0.02, 0.01, 0.01, 0.02, 0.04, 0.06, 0.08, 0.10, 0.10, 0.12, 0.15, 0.15,
                0.20, 0.35, 0.70, 1.00, 0.85, 0.50, 0.30, 0.20, 0.12, 0.08,
            ],
            other_profile: vec![
                0.25, 0.15, 0.10, 0.06, 0.05, 0.08, 0.20, 0.40, 0.55, 0.65, 0.75, 0.85, 0.95, 0.90,
                0.85, 0.85, 0.90, 0.95, 1.00, 0.95, 0.85, 0.70, 0.55, 0.40,
            ],
            weekly_commute: vec![1.0, 1.0, 1.0, 1.0, 0.95, 0.35, 0.25],
            weekly_other: vec![0.9, 0.9, 0.95, 1.0, 1.1, 1.25, 1.0],
            decay_km: 6.0,
        }
    }
}

/// Fleet and dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    pub vehicles: u32,
    /// Speed of every drive (trips, pickups, repositioning), km/h.
    pub speed_kmh: f64,
    /// Length of a trip inside one zone, km.
    pub intra_zone_km: f64,
    /// A request not assigned within this many seconds expires.
    pub max_wait_s: i64,
    /// Idle vehicles in other zones this many minutes of driving away may take a request.
    pub reach_minutes: f64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            vehicles: 70,
            speed_kmh: 25.0,
            intra_zone_km: 1.5,
            max_wait_s: 600,
            reach_minutes: 8.0,
        }
    }
}

/// The rebalancing engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Planning period, minutes (divides a day).
    pub period_minutes: u32,
    /// Periods planned ahead.
    pub horizon: usize,
    /// Cost of an empty km, currency units.
    pub cost_per_km: f64,
    /// Penalty of an unserved forecast request, cents.
    pub unmet_penalty_cents: i64,
    /// Forecast quantile planned for (0..1).
    pub demand_quantile: f64,
    /// Most vehicle moves per plan.
    pub move_budget: Option<u32>,
    /// Holt-Winters parameters are refitted every this many days.
    pub refit_days: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            period_minutes: 15,
            horizon: 8,
            cost_per_km: 0.25,
            unmet_penalty_cents: 2_000,
            demand_quantile: 0.5,
            move_budget: None,
            refit_days: 1,
        }
    }
}

/// Everything a closed-loop run needs besides the seed and the adoption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoneSimConfig {
    pub city: CityConfig,
    pub demand: DemandConfig,
    pub fleet: FleetConfig,
    pub engine: EngineConfig,
    /// Simulated days (the first is a Monday).
    pub days: u32,
}

impl Default for ZoneSimConfig {
    fn default() -> Self {
        Self {
            city: CityConfig::default(),
            demand: DemandConfig::default(),
            fleet: FleetConfig::default(),
            engine: EngineConfig::default(),
            days: 14,
        }
    }
}

fn finite_non_negative(name: &str, v: &[f64], len: usize) -> Result<()> {
    if v.len() != len || v.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
        return invalid(format!("{name} needs {len} finite values ≥ 0"));
    }
    Ok(())
}

impl ZoneSimConfig {
    /// Checks what the model relies on.
    pub fn validate(&self) -> Result<()> {
        let d = &self.demand;
        finite_non_negative("morning_profile", &d.morning_profile, 24)?;
        finite_non_negative("evening_profile", &d.evening_profile, 24)?;
        finite_non_negative("other_profile", &d.other_profile, 24)?;
        finite_non_negative("weekly_commute", &d.weekly_commute, 7)?;
        finite_non_negative("weekly_other", &d.weekly_other, 7)?;
        finite_non_negative("rates", &[d.commute_per_hour, d.other_per_hour], 2)?;
        if !(d.decay_km.is_finite() && d.decay_km > 0.0) {
            return invalid("decay_km must be > 0");
        }
        let f = &self.fleet;
        if f.vehicles == 0 {
            return invalid("need at least one vehicle");
        }
        if !(f.speed_kmh.is_finite() && f.speed_kmh > 0.0) {
            return invalid("speed_kmh must be > 0");
        }
        if !(f.intra_zone_km.is_finite() && f.intra_zone_km >= 0.0) {
            return invalid("intra_zone_km must be ≥ 0");
        }
        if !(f.reach_minutes.is_finite() && f.reach_minutes >= 0.0) {
            return invalid("reach_minutes must be ≥ 0");
        }
        if f.max_wait_s < TICK_S {
            return invalid(format!("max_wait_s must be ≥ {TICK_S}"));
        }
        let e = &self.engine;
        if e.period_minutes == 0 || 1440 % e.period_minutes != 0 {
            return invalid("period_minutes must divide a day");
        }
        if e.horizon == 0 || e.horizon > 96 {
            return invalid("horizon must be 1..=96 periods");
        }
        if !(e.demand_quantile > 0.0 && e.demand_quantile < 1.0) {
            return invalid("demand_quantile must be in (0, 1)");
        }
        if !(e.cost_per_km.is_finite() && e.cost_per_km >= 0.0) || e.unmet_penalty_cents < 0 {
            return invalid("cost_per_km and unmet_penalty_cents must be ≥ 0");
        }
        if e.refit_days == 0 {
            return invalid("refit_days must be ≥ 1");
        }
        if self.days == 0 {
            return invalid("days must be ≥ 1");
        }
        let city = City::new(&self.city, f)?;
        let capacity: u64 = city.zones.iter().map(|z| u64::from(z.capacity)).sum();
        if capacity < u64::from(f.vehicles) {
            return invalid(format!(
                "zone capacities ({capacity}) cannot hold {} vehicles",
                f.vehicles
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// City
// ---------------------------------------------------------------------------------------------

/// The zones with their distances and travel times.
#[derive(Debug, Clone, PartialEq)]
pub struct City {
    pub zones: Vec<ZoneSpec>,
    /// Driving distance `[from][to]`, km (the diagonal: a trip inside the zone).
    km: Vec<Vec<f64>>,
    /// Driving time `[from][to]`, seconds (whole, rounded up).
    travel_s: Vec<Vec<i64>>,
}

/// Degrees of latitude per km (mean Earth radius of the optimizer).
fn km_to_deg() -> f64 {
    180.0 / (std::f64::consts::PI * atlasmesh_optimizer::model::EARTH_RADIUS_KM)
}

impl City {
    /// The city of `cfg`, with distances and times at the fleet's speed.
    pub fn new(cfg: &CityConfig, fleet: &FleetConfig) -> Result<Self> {
        let zones = if cfg.custom.is_empty() {
            generated_zones(cfg)?
        } else {
            cfg.custom.clone()
        };
        if zones.len() < 2 {
            return invalid("need at least 2 zones");
        }
        for z in &zones {
            let w = [z.weights.homes, z.weights.jobs, z.lat, z.lon];
            if w.iter().any(|x| !x.is_finite()) || z.weights.homes < 0.0 || z.weights.jobs < 0.0 {
                return invalid(format!("zone {}: bad centroid or weights", z.id));
            }
        }
        let (h, j): (f64, f64) = zones.iter().fold((0.0, 0.0), |a, z| {
            (a.0 + z.weights.homes, a.1 + z.weights.jobs)
        });
        if h <= 0.0 || j <= 0.0 {
            return invalid("the city needs homes and jobs");
        }
        let km: Vec<Vec<f64>> = zones
            .iter()
            .enumerate()
            .map(|(i, a)| {
                zones
                    .iter()
                    .enumerate()
                    .map(|(k, b)| {
                        if i == k {
                            fleet.intra_zone_km
                        } else {
                            haversine_km(a.lat, a.lon, b.lat, b.lon)
                        }
                    })
                    .collect()
            })
            .collect();
        let travel_s = km
            .iter()
            .map(|row| {
                row.iter()
                    .map(|d| (d / fleet.speed_kmh * 3600.0).ceil() as i64)
                    .collect()
            })
            .collect();
        Ok(Self {
            zones,
            km,
            travel_s,
        })
    }

    /// Number of zones.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// `false`: a city has at least two zones.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// Driving distance in km (a trip inside the zone on the diagonal).
    pub fn km(&self, from: usize, to: usize) -> f64 {
        self.km[from][to]
    }

    /// Driving time in seconds.
    pub fn travel_s(&self, from: usize, to: usize) -> i64 {
        self.travel_s[from][to]
    }

    /// The zones as the optimizer sees them.
    pub fn optimizer_zones(&self) -> Vec<Zone> {
        self.zones
            .iter()
            .map(|z| Zone {
                id: z.id.clone(),
                lat: z.lat,
                lon: z.lon,
                capacity: z.capacity,
                neighbours: None,
            })
            .collect()
    }
}

fn generated_zones(cfg: &CityConfig) -> Result<Vec<ZoneSpec>> {
    if cfg.zones < 2 {
        return invalid("need at least 2 zones");
    }
    let ring = cfg.zones - 1;
    let inner = cfg.inner_zones.unwrap_or(ring / 2).min(ring);
    let outer = ring - inner;
    if !(cfg.inner_ring_km > 0.0 && cfg.outer_ring_km > 0.0) {
        return invalid("ring radii must be > 0");
    }
    let deg = km_to_deg();
    let at = |r_km: f64, theta: f64| {
        let lat = cfg.centre_lat + r_km * theta.cos() * deg;
        let lon = cfg.centre_lon + r_km * theta.sin() * deg / cfg.centre_lat.to_radians().cos();
        (lat, lon)
    };
    let mut zones = vec![ZoneSpec {
        id: "z00-centre".into(),
        lat: cfg.centre_lat,
        lon: cfg.centre_lon,
        capacity: cfg.capacity,
        weights: cfg.centre,
    }];
    let tau = std::f64::consts::TAU;
    for i in 0..inner {
        let (lat, lon) = at(cfg.inner_ring_km, tau * i as f64 / inner as f64);
        zones.push(ZoneSpec {
            id: format!("z{:02}-inner", zones.len()),
            lat,
            lon,
            capacity: cfg.capacity,
            weights: cfg.inner,
        });
    }
    for i in 0..outer {
        let (lat, lon) = at(cfg.outer_ring_km, tau * (i as f64 + 0.5) / outer as f64);
        zones.push(ZoneSpec {
            id: format!("z{:02}-outer", zones.len()),
            lat,
            lon,
            capacity: cfg.capacity,
            weights: cfg.outer,
        });
    }
    Ok(zones)
}

// ---------------------------------------------------------------------------------------------
// Demand
// ---------------------------------------------------------------------------------------------

/// One mission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Sequence number (in time order from 0).
    pub id: u64,
    /// Seconds since the start of the simulation (a Monday, 00:00).
    pub at_s: i64,
    pub origin: usize,
    pub destination: usize,
}

/// The three trip kinds of the demand model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CommuteOut,
    CommuteBack,
    Other,
}

const KINDS: [Kind; 3] = [Kind::CommuteOut, Kind::CommuteBack, Kind::Other];

/// Seeded Poisson request generator; yields requests in time order, forever.
#[derive(Debug, Clone)]
pub struct DemandModel {
    cfg: DemandConfig,
    /// Requests per hour at profile 1.0 and weekly factor 1.0, `[kind][zone]`.
    base: [Vec<f64>; 3],
    /// Cumulative destination weights `[kind][origin][destination]`.
    dest_cdf: [Vec<Vec<f64>>; 3],
    rng: ChaCha8Rng,
    minute: i64,
    buffer: VecDeque<Request>,
    next_id: u64,
}

fn interpolate(profile: &[f64], at_s: i64) -> f64 {
    let s = at_s.rem_euclid(DAY_S) as f64 / 3600.0;
    let h = s.floor() as usize % 24;
    let frac = s - s.floor();
    profile[h] * (1.0 - frac) + profile[(h + 1) % 24] * frac
}

/// Knuth's method; the per-minute rates here are small.
fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let limit = (-lambda).exp();
    let (mut k, mut p) = (0u32, 1.0f64);
    loop {
        p *= rng.gen::<f64>();
        if p <= limit {
            return k;
        }
        k += 1;
    }
}

impl DemandModel {
    /// The demand of `city` for `seed`.
    pub fn new(city: &City, cfg: &DemandConfig, seed: u64) -> Self {
        let homes: Vec<f64> = city.zones.iter().map(|z| z.weights.homes).collect();
        let jobs: Vec<f64> = city.zones.iter().map(|z| z.weights.jobs).collect();
        let both: Vec<f64> = homes.iter().zip(&jobs).map(|(h, j)| h + j).collect();
        let (sum_h, sum_j): (f64, f64) = (homes.iter().sum(), jobs.iter().sum());
        // Commuting back carries as many people per day as commuting out.
        let back_scale = sum_h / sum_j;
        let base = [
            homes.iter().map(|h| cfg.commute_per_hour * h).collect(),
            jobs.iter()
                .map(|j| cfg.commute_per_hour * j * back_scale)
                .collect(),
            both.iter().map(|b| cfg.other_per_hour * b).collect(),
        ];
        let cdf = |attract: &[f64]| -> Vec<Vec<f64>> {
            (0..city.len())
                .map(|o| {
                    let mut acc = 0.0;
                    (0..city.len())
                        .map(|d| {
                            acc += attract[d] * (-city.km(o, d) / cfg.decay_km).exp();
                            acc
                        })
                        .collect()
                })
                .collect()
        };
        let dest_cdf = [cdf(&jobs), cdf(&homes), cdf(&both)];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(STREAM_DEMAND);
        Self {
            cfg: cfg.clone(),
            base,
            dest_cdf,
            rng,
            minute: 0,
            buffer: VecDeque::new(),
            next_id: 0,
        }
    }

    fn factor(&self, kind: Kind, at_s: i64) -> f64 {
        let day = (at_s.div_euclid(DAY_S)).rem_euclid(7) as usize;
        let c = &self.cfg;
        match kind {
            Kind::CommuteOut => interpolate(&c.morning_profile, at_s) * c.weekly_commute[day],
            Kind::CommuteBack => interpolate(&c.evening_profile, at_s) * c.weekly_commute[day],
            Kind::Other => interpolate(&c.other_profile, at_s) * c.weekly_other[day],
        }
    }

    /// Expected requests per hour from `zone` at `at_s` (the Poisson intensity).
    pub fn rate_per_hour(&self, zone: usize, at_s: i64) -> f64 {
        KINDS
            .iter()
            .enumerate()
            .map(|(k, &kind)| self.base[k][zone] * self.factor(kind, at_s))
            .sum()
    }

    /// Draws the next minute's requests into the buffer.
    fn draw_minute(&mut self) {
        let start = self.minute * TICK_S;
        let mut batch = Vec::new();
        for origin in 0..self.base[0].len() {
            for (k, &kind) in KINDS.iter().enumerate() {
                // The intensity at the middle of the minute.
                let per_minute = self.base[k][origin] * self.factor(kind, start + 30) / 60.0;
                for _ in 0..poisson(&mut self.rng, per_minute) {
                    let offset = self.rng.gen_range(0..TICK_S);
                    let cdf = &self.dest_cdf[k][origin];
                    let u = self.rng.gen::<f64>() * cdf[cdf.len() - 1];
                    let destination = cdf.partition_point(|&c| c <= u).min(cdf.len() - 1);
                    batch.push((start + offset, origin, destination));
                }
            }
        }
        batch.sort_unstable();
        for (at_s, origin, destination) in batch {
            self.buffer.push_back(Request {
                id: self.next_id,
                at_s,
                origin,
                destination,
            });
            self.next_id += 1;
        }
        self.minute += 1;
    }

    /// All requests before `t_s` not yet taken, in time order.
    pub fn take_until(&mut self, t_s: i64) -> Vec<Request> {
        while self.minute * TICK_S < t_s {
            self.draw_minute();
        }
        let n = self.buffer.partition_point(|r| r.at_s < t_s);
        self.buffer.drain(..n).collect()
    }
}

impl Iterator for DemandModel {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        while self.buffer.is_empty() {
            self.draw_minute();
        }
        self.buffer.pop_front()
    }
}

/// Requests per zone and bucket of `bucket_s` seconds over `buckets` buckets (a forecasting
/// series), from a fresh demand model of `seed`.
pub fn demand_series(
    cfg: &ZoneSimConfig,
    seed: u64,
    bucket_s: i64,
    buckets: usize,
) -> Result<Vec<Vec<f64>>> {
    cfg.validate()?;
    if bucket_s <= 0 {
        return invalid("bucket length must be > 0");
    }
    let city = City::new(&cfg.city, &cfg.fleet)?;
    let mut demand = DemandModel::new(&city, &cfg.demand, seed);
    let mut series = vec![vec![0.0; buckets]; city.len()];
    for r in demand.take_until(bucket_s * buckets as i64) {
        series[r.origin][(r.at_s / bucket_s) as usize] += 1.0;
    }
    Ok(series)
}

// ---------------------------------------------------------------------------------------------
// Fleet
// ---------------------------------------------------------------------------------------------

/// Why a vehicle became idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleCause {
    TripEnded,
    Repositioned,
}

/// What the zone fleet simulation emits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ZoneEvent {
    /// A request entered its origin zone's queue.
    Requested { at_s: i64, request: Request },
    /// A vehicle took a request.
    Assigned {
        at_s: i64,
        request: u64,
        origin: usize,
        destination: usize,
        vehicle: u32,
        /// Zone the vehicle was idle in (the origin, or one within reach).
        vehicle_zone: usize,
        /// Seconds from the request to the assignment.
        wait_s: i64,
        /// Seconds of driving to the pickup (0 inside the zone).
        pickup_s: i64,
    },
    /// No vehicle took the request within the maximum wait.
    Expired {
        at_s: i64,
        request: u64,
        origin: usize,
        waited_s: i64,
    },
    /// An idle vehicle left to reposition, empty.
    VehicleMoved {
        at_s: i64,
        vehicle: u32,
        from: usize,
        to: usize,
        km: f64,
        arrive_s: i64,
    },
    /// A vehicle became idle in a zone.
    VehicleIdle {
        at_s: i64,
        vehicle: u32,
        zone: usize,
        cause: IdleCause,
    },
}

/// A vehicle's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VehicleState {
    Idle { zone: usize },
    OnTrip { to: usize, until_s: i64 },
    Repositioning { to: usize, until_s: i64 },
}

/// Running totals of a simulation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetCounters {
    pub requests: u64,
    pub assigned: u64,
    pub expired: u64,
    pub wait_s_total: i64,
    /// Empty km driven to reposition.
    pub repositioning_km: f64,
    /// Empty km driven to a pickup in another zone.
    pub pickup_km: f64,
    /// Km driven with a passenger or load.
    pub trip_km: f64,
    pub vehicles_moved: u64,
}

/// The zone fleet: idle vehicles per zone, vehicles on trips and moves, pending requests.
#[derive(Debug, Clone)]
pub struct ZoneFleetSim {
    city: City,
    max_wait_s: i64,
    now_s: i64,
    vehicles: Vec<VehicleState>,
    /// Idle vehicles per zone, longest idle first.
    idle: Vec<VecDeque<u32>>,
    pending: VecDeque<Request>,
    /// Per origin: the other zones within pickup reach, nearest first.
    reach: Vec<Vec<usize>>,
    counters: FleetCounters,
}

impl ZoneFleetSim {
    /// The fleet at time 0, vehicles idle in zones in proportion to their homes (largest
    /// remainders; ties by zone index).
    pub fn new(city: City, fleet: &FleetConfig) -> Self {
        let n = city.len();
        let homes: Vec<f64> = city.zones.iter().map(|z| z.weights.homes).collect();
        let total: f64 = homes.iter().sum();
        let quota: Vec<f64> = homes
            .iter()
            .map(|h| h / total * f64::from(fleet.vehicles))
            .collect();
        let mut count: Vec<u32> = quota.iter().map(|q| q.floor() as u32).collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            let ra = quota[a] - quota[a].floor();
            let rb = quota[b] - quota[b].floor();
            rb.total_cmp(&ra).then(a.cmp(&b))
        });
        let mut left = fleet.vehicles - count.iter().sum::<u32>();
        for &z in order.iter().cycle() {
            if left == 0 {
                break;
            }
            count[z] += 1;
            left -= 1;
        }
        let mut vehicles = Vec::with_capacity(fleet.vehicles as usize);
        let mut idle = vec![VecDeque::new(); n];
        for (z, &c) in count.iter().enumerate() {
            for _ in 0..c {
                idle[z].push_back(vehicles.len() as u32);
                vehicles.push(VehicleState::Idle { zone: z });
            }
        }
        let reach_s = (fleet.reach_minutes * 60.0).floor() as i64;
        let reach = (0..n)
            .map(|o| {
                let mut r: Vec<usize> = (0..n)
                    .filter(|&z| z != o && city.travel_s(z, o) <= reach_s)
                    .collect();
                r.sort_by_key(|&z| (city.travel_s(z, o), z));
                r
            })
            .collect();
        Self {
            city,
            max_wait_s: fleet.max_wait_s,
            now_s: 0,
            vehicles,
            idle,
            pending: VecDeque::new(),
            reach,
            counters: FleetCounters::default(),
        }
    }

    /// The city.
    pub fn city(&self) -> &City {
        &self.city
    }

    /// Simulated time, seconds since the start.
    pub fn now_s(&self) -> i64 {
        self.now_s
    }

    /// Running totals.
    pub fn counters(&self) -> &FleetCounters {
        &self.counters
    }

    /// Every vehicle's state, by vehicle number.
    pub fn vehicles(&self) -> &[VehicleState] {
        &self.vehicles
    }

    /// Idle vehicles per zone.
    pub fn idle_counts(&self) -> Vec<u32> {
        self.idle.iter().map(|q| q.len() as u32).collect()
    }

    /// Requests waiting, per origin zone.
    pub fn pending_counts(&self) -> Vec<u32> {
        let mut c = vec![0; self.city.len()];
        for r in &self.pending {
            c[r.origin] += 1;
        }
        c
    }

    /// Requests waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Vehicles becoming idle per `[zone][period]` over `horizon` periods of `period_s` from
    /// now (later ones are left out): `(on trips, repositioning)`.
    pub fn incoming(&self, period_s: i64, horizon: usize) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
        let mut trips = vec![vec![0u32; horizon]; self.city.len()];
        let mut moves = trips.clone();
        for v in &self.vehicles {
            let (grid, to, until_s) = match *v {
                VehicleState::OnTrip { to, until_s } => (&mut trips, to, until_s),
                VehicleState::Repositioning { to, until_s } => (&mut moves, to, until_s),
                VehicleState::Idle { .. } => continue,
            };
            let p = ((until_s - self.now_s).max(0) / period_s) as usize;
            if p < horizon {
                grid[to][p] += 1;
            }
        }
        (trips, moves)
    }

    /// A request arrives (at or after now; it is handled at the end of the tick it falls in).
    pub fn on_request(&mut self, request: Request, out: &mut Vec<ZoneEvent>) {
        self.counters.requests += 1;
        self.pending.push_back(request);
        out.push(ZoneEvent::Requested {
            at_s: request.at_s,
            request,
        });
    }

    /// Advances one tick: vehicles arrive, pending requests are assigned, old ones expire.
    pub fn on_tick(&mut self, out: &mut Vec<ZoneEvent>) {
        let end = self.now_s + TICK_S;
        let mut arriving: Vec<(i64, u32, usize, IdleCause)> = self
            .vehicles
            .iter()
            .enumerate()
            .filter_map(|(id, v)| match *v {
                VehicleState::OnTrip { to, until_s } if until_s <= end => {
                    Some((until_s, id as u32, to, IdleCause::TripEnded))
                }
                VehicleState::Repositioning { to, until_s } if until_s <= end => {
                    Some((until_s, id as u32, to, IdleCause::Repositioned))
                }
                _ => None,
            })
            .collect();
        arriving.sort_unstable_by_key(|a| (a.0, a.1));
        for (at_s, vehicle, zone, cause) in arriving {
            self.vehicles[vehicle as usize] = VehicleState::Idle { zone };
            self.idle[zone].push_back(vehicle);
            out.push(ZoneEvent::VehicleIdle {
                at_s,
                vehicle,
                zone,
                cause,
            });
        }
        let mut still = VecDeque::with_capacity(self.pending.len());
        while let Some(r) = self.pending.pop_front() {
            if r.at_s >= end {
                still.push_back(r);
                continue;
            }
            if end - r.at_s > self.max_wait_s {
                // Its maximum wait ended during this tick, unserved.
                self.counters.expired += 1;
                out.push(ZoneEvent::Expired {
                    at_s: r.at_s + self.max_wait_s,
                    request: r.id,
                    origin: r.origin,
                    waited_s: self.max_wait_s,
                });
                continue;
            }
            let idle = &mut self.idle;
            let found = std::iter::once(r.origin)
                .chain(self.reach[r.origin].iter().copied())
                .find_map(|z| idle[z].pop_front().map(|v| (z, v)));
            let Some((vz, vehicle)) = found else {
                still.push_back(r);
                continue;
            };
            let pickup_s = if vz == r.origin {
                0
            } else {
                self.counters.pickup_km += self.city.km(vz, r.origin);
                self.city.travel_s(vz, r.origin)
            };
            let until_s = end + pickup_s + self.city.travel_s(r.origin, r.destination);
            self.vehicles[vehicle as usize] = VehicleState::OnTrip {
                to: r.destination,
                until_s,
            };
            let wait_s = end - r.at_s;
            self.counters.assigned += 1;
            self.counters.wait_s_total += wait_s;
            self.counters.trip_km += self.city.km(r.origin, r.destination);
            out.push(ZoneEvent::Assigned {
                at_s: end,
                request: r.id,
                origin: r.origin,
                destination: r.destination,
                vehicle,
                vehicle_zone: vz,
                wait_s,
                pickup_s,
            });
        }
        self.pending = still;
        self.now_s = end;
    }

    /// Sends up to `count` idle vehicles (longest idle first) from `from` to `to`, empty;
    /// returns how many left.
    pub fn reposition(
        &mut self,
        from: usize,
        to: usize,
        count: u32,
        out: &mut Vec<ZoneEvent>,
    ) -> u32 {
        if from == to || from >= self.city.len() || to >= self.city.len() {
            return 0;
        }
        let mut moved = 0;
        while moved < count {
            let Some(vehicle) = self.idle[from].pop_front() else {
                break;
            };
            let km = self.city.km(from, to);
            let arrive_s = self.now_s + self.city.travel_s(from, to);
            self.vehicles[vehicle as usize] = VehicleState::Repositioning {
                to,
                until_s: arrive_s,
            };
            self.counters.repositioning_km += km;
            self.counters.vehicles_moved += 1;
            out.push(ZoneEvent::VehicleMoved {
                at_s: self.now_s,
                vehicle,
                from,
                to,
                km,
                arrive_s,
            });
            moved += 1;
        }
        moved
    }
}

// ---------------------------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------------------------

/// How a forecast was made: the optimizer's count forecaster's methods (nothing observed
/// yet is its recent mean of nothing: zero).
pub use atlasmesh_optimizer::forecast::CountMethod as ForecastMethod;

/// One move the engine recommends now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendedMove {
    pub from: usize,
    pub to: usize,
    pub vehicles: u32,
}

/// The engine's output at one period.
#[derive(Debug, Clone, PartialEq)]
pub struct EnginePlan {
    /// Moves of idle vehicles departing now.
    pub moves: Vec<RecommendedMove>,
    pub method: ForecastMethod,
    /// Forecast requests (at the quantile) per `[zone][period]`, pending ones included.
    pub demand: Vec<Vec<u32>>,
    /// Vehicles expected to become idle per `[zone][period]`: known (on trips and moves now)
    /// and forecast (trips not started yet).
    pub arrivals: Vec<Vec<u32>>,
}

/// The engine's forecast per `[zone][period]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneForecast {
    /// Requests at the demand quantile, as the optimizer's integral demand (rounded up).
    pub demand: Vec<Vec<u32>>,
    /// Trips ending in the zone (point forecast, rounded).
    pub trip_ends: Vec<Vec<u32>>,
    /// The method of the request forecast (trip ends use the same, on their own history).
    pub method: ForecastMethod,
}

/// Observed counts per `[zone][bucket]` and their forecaster.
#[derive(Debug, Clone)]
struct ZoneSeries {
    counts: Vec<Vec<f64>>,
    params: Vec<Option<HwParams>>,
    fitted_at: Option<usize>,
}

/// A forecast step: point (mean or median) and the planning quantile, in counts.
type Step = (f64, u32);

impl ZoneSeries {
    fn new(zones: usize) -> Self {
        Self {
            counts: vec![Vec::new(); zones],
            params: vec![None; zones],
            fitted_at: None,
        }
    }

    fn add(&mut self, zone: usize, bucket: usize) {
        let row = &mut self.counts[zone];
        if row.len() <= bucket {
            row.resize(bucket + 1, 0.0);
        }
        row[bucket] += 1.0;
    }

    /// Forecasts `h` buckets from bucket `k` (buckets `0..k` are complete) with the
    /// optimizer's count forecaster: season `m` buckets, quantile `q`, Holt-Winters parameters
    /// refitted every `refit` buckets (in between they are reused: the same model, refiltered
    /// on the new counts).
    fn forecast(
        &mut self,
        k: usize,
        h: usize,
        m: usize,
        q: f64,
        refit: usize,
    ) -> (Vec<Vec<Step>>, ForecastMethod) {
        let refit_now = self.fitted_at.is_none_or(|f| k >= f + refit);
        let mut method = ForecastMethod::RecentMean;
        let mut out = Vec::with_capacity(self.counts.len());
        for (z, row) in self.counts.iter().enumerate() {
            let mut y: Vec<f64> = row.iter().take(k).copied().collect();
            y.resize(k, 0.0);
            let f = forecast_counts(
                &y,
                &CountSpec {
                    season: m,
                    horizon: h,
                    quantile: q,
                    transform: Transform::Identity,
                    fit_window: 7 * m,
                    params: if refit_now { None } else { self.params[z] },
                    recent: (m / 24).max(1),
                },
            );
            if refit_now || f.params.is_none() {
                self.params[z] = f.params;
            }
            method = f.method;
            out.push(f.steps.iter().map(|s| (s.mean, s.planned)).collect());
        }
        if refit_now && method == ForecastMethod::HoltWinters {
            self.fitted_at = Some(k);
        }
        (out, method)
    }
}

/// Forecast → instance → exact solve, once per period.
#[derive(Debug, Clone)]
pub struct RebalanceEngine {
    cfg: EngineConfig,
    zones: Vec<Zone>,
    travel: TravelConfig,
    /// Requests per origin zone and bucket.
    requests: ZoneSeries,
    /// Trips ending per destination zone and bucket.
    trip_ends: ZoneSeries,
}

impl RebalanceEngine {
    /// An engine for `city`, repositioning at `speed_kmh`.
    pub fn new(city: &City, speed_kmh: f64, cfg: &EngineConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            zones: city.optimizer_zones(),
            travel: TravelConfig {
                source: TravelSource::Haversine { speed_kmh },
                cost_per_km: cfg.cost_per_km,
            },
            requests: ZoneSeries::new(city.len()),
            trip_ends: ZoneSeries::new(city.len()),
        }
    }

    fn period_s(&self) -> i64 {
        i64::from(self.cfg.period_minutes) * 60
    }

    fn bucket(&self, at_s: i64) -> usize {
        (at_s.max(0) / self.period_s()) as usize
    }

    /// Observes an event: requests (demand) and trips ending (vehicles coming back).
    pub fn observe(&mut self, event: &ZoneEvent) {
        match *event {
            ZoneEvent::Requested { request, .. } => {
                let b = self.bucket(request.at_s);
                self.requests.add(request.origin, b);
            }
            ZoneEvent::VehicleIdle {
                at_s,
                zone,
                cause: IdleCause::TripEnded,
                ..
            } => {
                let b = self.bucket(at_s);
                self.trip_ends.add(zone, b);
            }
            _ => {}
        }
    }

    /// Forecast requests and trip ends for the `horizon` periods from `now_s` (a period
    /// boundary), from the buckets completed before it.
    pub fn forecast(&mut self, now_s: i64) -> Result<ZoneForecast> {
        let k = self.bucket(now_s);
        let (h, q) = (self.cfg.horizon, self.cfg.demand_quantile);
        let m = (1440 / self.cfg.period_minutes) as usize;
        let refit = m * self.cfg.refit_days as usize;
        let (demand, method) = self.requests.forecast(k, h, m, q, refit);
        let (ends, _) = self.trip_ends.forecast(k, h, m, 0.5, refit);
        let round = |v: f64| v.round().clamp(0.0, 1e6) as u32;
        let demand = demand
            .iter()
            .map(|r| r.iter().map(|&(_, planned)| planned).collect())
            .collect();
        let ends = ends
            .iter()
            .map(|r| r.iter().map(|&(p, _)| round(p)).collect())
            .collect();
        Ok(ZoneForecast {
            demand,
            trip_ends: ends,
            method,
        })
    }

    /// Plans at a period boundary: forecast, instance from the fleet's state, exact solve; the
    /// moves of the optimal plan that depart now.
    ///
    /// Arrivals per zone and period: the vehicles repositioning there, plus the larger of the
    /// trips known to end there (vehicles on trips now) and the forecast trip ends (which also
    /// count trips not started yet).
    pub fn plan(&mut self, sim: &ZoneFleetSim) -> Result<EnginePlan> {
        let now = sim.now_s();
        let ZoneForecast {
            mut demand,
            trip_ends: ends,
            method,
        } = self.forecast(now)?;
        for (z, p) in sim.pending_counts().into_iter().enumerate() {
            demand[z][0] += p;
        }
        let idle = sim.idle_counts();
        let (on_trips, moving) = sim.incoming(self.period_s(), self.cfg.horizon);
        let arrivals: Vec<Vec<u32>> = (0..idle.len())
            .map(|z| {
                (0..self.cfg.horizon)
                    .map(|t| moving[z][t] + on_trips[z][t].max(ends[z][t]))
                    .collect()
            })
            .collect();
        let zones = self
            .zones
            .iter()
            .enumerate()
            .map(|(z, zone)| {
                let present = idle[z] + arrivals[z].iter().sum::<u32>();
                Zone {
                    capacity: zone.capacity.max(present),
                    ..zone.clone()
                }
            })
            .collect();
        let inst = Instance::new(
            zones,
            &self.travel,
            Scenario {
                period_minutes: self.cfg.period_minutes,
                horizon: self.cfg.horizon,
                idle,
                arrivals: arrivals.clone(),
                demand: demand.clone(),
                move_budget: self.cfg.move_budget,
            },
        )?;
        let weights = Weights {
            cost: 1,
            efficiency: 0,
            coverage: self.cfg.unmet_penalty_cents,
        };
        let solution = solve(&inst, &Spec::weighted(weights))?;
        // Period-0 supply includes vehicles arriving later in the period; only the idle ones
        // can leave now (the others are planned again at the next period).
        let mut free = inst.idle().to_vec();
        let mut moves = Vec::new();
        for m in solution.plan.moves.iter().filter(|m| m.depart == 0) {
            let vehicles = (m.count.max(0) as u32).min(free[m.from]);
            if vehicles > 0 {
                free[m.from] -= vehicles;
                moves.push(RecommendedMove {
                    from: m.from,
                    to: m.to,
                    vehicles,
                });
            }
        }
        Ok(EnginePlan {
            moves,
            method,
            demand,
            arrivals,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Closed loop and bench
// ---------------------------------------------------------------------------------------------

/// The outcome of one run (one seed, one arm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub seed: u64,
    /// `None`: no engine.
    pub adoption: Option<f64>,
    pub requests: u64,
    pub assigned: u64,
    pub expired: u64,
    /// Requests still waiting at the end.
    pub pending_at_end: u64,
    /// Assigned, % of requests.
    pub served_pct: f64,
    /// Expired, % of requests.
    pub expired_pct: f64,
    /// Mean wait from request to assignment, seconds.
    pub mean_wait_s: f64,
    /// Empty km driven to reposition.
    pub empty_km: f64,
    /// Empty km driven to pickups in other zones.
    pub pickup_km: f64,
    pub trip_km: f64,
    /// Vehicle moves the engine recommended.
    pub moves_recommended: u64,
    /// Recommended vehicle moves adopted (and driven).
    pub moves_adopted: u64,
    /// Engine runs by forecast method: none, recent mean, seasonal naive, Holt-Winters.
    pub engine_runs: [u64; 4],
}

/// Progress of a bench: one simulated day done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchProgress {
    pub seed: u64,
    pub adoption: Option<f64>,
    pub day: u32,
    pub days: u32,
    /// Runs finished before this one, and in all.
    pub run: usize,
    pub runs: usize,
}

/// Runs the zone fleet on the demand of `seed` for `cfg.days` days, with the engine when
/// `adoption` is `Some` (share of recommended vehicle moves followed, 0..=1).
pub fn run_closed_loop(
    cfg: &ZoneSimConfig,
    seed: u64,
    adoption: Option<f64>,
    on_day: &mut dyn FnMut(u32),
) -> Result<RunReport> {
    cfg.validate()?;
    if let Some(a) = adoption {
        if !(0.0..=1.0).contains(&a) {
            return invalid(format!("adoption {a} is not in 0..=1"));
        }
    }
    let city = City::new(&cfg.city, &cfg.fleet)?;
    let mut demand = DemandModel::new(&city, &cfg.demand, seed);
    let mut engine =
        adoption.map(|_| RebalanceEngine::new(&city, cfg.fleet.speed_kmh, &cfg.engine));
    let mut sim = ZoneFleetSim::new(city, &cfg.fleet);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(STREAM_ADOPTION);
    let period_s = i64::from(cfg.engine.period_minutes) * 60;
    let end_s = i64::from(cfg.days) * DAY_S;
    let (mut recommended, mut adopted, mut runs) = (0u64, 0u64, [0u64; 4]);
    let mut events = Vec::new();
    while sim.now_s() < end_s {
        for r in demand.take_until(sim.now_s() + TICK_S) {
            sim.on_request(r, &mut events);
        }
        sim.on_tick(&mut events);
        if let Some(engine) = engine.as_mut() {
            for e in events.drain(..) {
                engine.observe(&e);
            }
            if sim.now_s() % period_s == 0 && sim.now_s() < end_s {
                let plan = engine.plan(&sim)?;
                runs[plan.method as usize] += 1;
                let share = adoption.unwrap_or(0.0);
                for m in &plan.moves {
                    recommended += u64::from(m.vehicles);
                    let take = (0..m.vehicles).filter(|_| rng.gen_bool(share)).count() as u32;
                    adopted += u64::from(sim.reposition(m.from, m.to, take, &mut events));
                }
            }
        }
        events.clear();
        if sim.now_s() % DAY_S == 0 {
            on_day((sim.now_s() / DAY_S) as u32);
        }
    }
    let c = *sim.counters();
    let pct = |x: u64| 100.0 * x as f64 / c.requests.max(1) as f64;
    Ok(RunReport {
        seed,
        adoption,
        requests: c.requests,
        assigned: c.assigned,
        expired: c.expired,
        pending_at_end: sim.pending() as u64,
        served_pct: pct(c.assigned),
        expired_pct: pct(c.expired),
        mean_wait_s: c.wait_s_total as f64 / c.assigned.max(1) as f64,
        empty_km: c.repositioning_km,
        pickup_km: c.pickup_km,
        trip_km: c.trip_km,
        moves_recommended: recommended,
        moves_adopted: adopted,
        engine_runs: runs,
    })
}

/// Means over the seeds of one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmMean {
    pub requests: f64,
    pub served_pct: f64,
    pub expired: f64,
    pub expired_pct: f64,
    pub mean_wait_s: f64,
    pub empty_km: f64,
    pub pickup_km: f64,
    pub moves_recommended: f64,
    pub moves_adopted: f64,
}

/// One arm of the bench: no engine, or the engine at one adoption level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    pub adoption: Option<f64>,
    pub runs: Vec<RunReport>,
    pub mean: ArmMean,
    /// `100 × (1 − expired / expired without engine)`, expired summed over the seeds.
    pub expired_fall_pct: f64,
}

impl ArmReport {
    /// "no engine" or "adoption 0.50".
    pub fn label(&self) -> String {
        match self.adoption {
            None => "no engine".into(),
            Some(a) => format!("adoption {a:.2}"),
        }
    }
}

/// The side-by-side comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub seeds: Vec<u64>,
    pub days: u32,
    pub zones: usize,
    pub vehicles: u32,
    /// The no-engine arm first, then one per adoption level.
    pub arms: Vec<ArmReport>,
}

fn mean_of(runs: &[RunReport]) -> ArmMean {
    let n = runs.len().max(1) as f64;
    let m = |f: &dyn Fn(&RunReport) -> f64| runs.iter().map(f).sum::<f64>() / n;
    ArmMean {
        requests: m(&|r| r.requests as f64),
        served_pct: m(&|r| r.served_pct),
        expired: m(&|r| r.expired as f64),
        expired_pct: m(&|r| r.expired_pct),
        mean_wait_s: m(&|r| r.mean_wait_s),
        empty_km: m(&|r| r.empty_km),
        pickup_km: m(&|r| r.pickup_km),
        moves_recommended: m(&|r| r.moves_recommended as f64),
        moves_adopted: m(&|r| r.moves_adopted as f64),
    }
}

/// Runs the same seeded demand with no engine and with the engine at each adoption level;
/// `progress` is called after every simulated day of every run.
pub fn bench_rebalance(
    cfg: &ZoneSimConfig,
    seeds: &[u64],
    adoptions: &[f64],
    progress: &mut dyn FnMut(&BenchProgress),
) -> Result<BenchReport> {
    cfg.validate()?;
    if seeds.is_empty() {
        return invalid("need at least one seed");
    }
    let arms: Vec<Option<f64>> = std::iter::once(None)
        .chain(adoptions.iter().map(|&a| Some(a)))
        .collect();
    let total = arms.len() * seeds.len();
    let mut reports: Vec<ArmReport> = Vec::with_capacity(arms.len());
    let mut run = 0;
    for &adoption in &arms {
        let mut runs = Vec::with_capacity(seeds.len());
        for &seed in seeds {
            let mut on_day = |day: u32| {
                progress(&BenchProgress {
                    seed,
                    adoption,
                    day,
                    days: cfg.days,
                    run,
                    runs: total,
                })
            };
            runs.push(run_closed_loop(cfg, seed, adoption, &mut on_day)?);
            run += 1;
        }
        let expired: u64 = runs.iter().map(|r| r.expired).sum();
        let base: u64 = reports
            .first()
            .map_or(expired, |b| b.runs.iter().map(|r| r.expired).sum());
        reports.push(ArmReport {
            adoption,
            mean: mean_of(&runs),
            runs,
            expired_fall_pct: if base == 0 {
                0.0
            } else {
                100.0 * (1.0 - expired as f64 / base as f64)
            },
        });
    }
    Ok(BenchReport {
        seeds: seeds.to_vec(),
        days: cfg.days,
        zones: City::new(&cfg.city, &cfg.fleet)?.len(),
        vehicles: cfg.fleet.vehicles,
        arms: reports,
    })
}

impl BenchReport {
    /// A plain-text table: one row per arm and seed, a mean row per arm, the fall of expired
    /// requests against no engine.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} zones, {} vehicles, {} days, seeds {:?}",
            self.zones, self.vehicles, self.days, self.seeds
        );
        let _ = writeln!(
            s,
            "{:<14} {:>5} {:>9} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10} {:>15}",
            "arm",
            "seed",
            "requests",
            "served%",
            "expired",
            "expired%",
            "wait s",
            "empty km",
            "pickup km",
            "moves rec/adopt"
        );
        for arm in &self.arms {
            for r in &arm.runs {
                let _ = writeln!(
                    s,
                    "{:<14} {:>5} {:>9} {:>8.2} {:>8} {:>9.2} {:>10.1} {:>10.1} {:>10.1} {:>15}",
                    arm.label(),
                    r.seed,
                    r.requests,
                    r.served_pct,
                    r.expired,
                    r.expired_pct,
                    r.mean_wait_s,
                    r.empty_km,
                    r.pickup_km,
                    format!("{}/{}", r.moves_recommended, r.moves_adopted)
                );
            }
            let m = &arm.mean;
            let _ = writeln!(
                s,
                "{:<14} {:>5} {:>9.1} {:>8.2} {:>8.1} {:>9.2} {:>10.1} {:>10.1} {:>10.1} {:>15}",
                arm.label(),
                "mean",
                m.requests,
                m.served_pct,
                m.expired,
                m.expired_pct,
                m.mean_wait_s,
                m.empty_km,
                m.pickup_km,
                format!("{:.0}/{:.0}", m.moves_recommended, m.moves_adopted)
            );
        }
        for arm in self.arms.iter().skip(1) {
            let _ = writeln!(
                s,
                "{}: expired requests {:+.1} % against no engine (fall {:.1} %)",
                arm.label(),
                -arm.expired_fall_pct,
                arm.expired_fall_pct
            );
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Forecast quality on the simulated demand
// ---------------------------------------------------------------------------------------------

/// Holt-Winters against seasonal naive on the simulator's hourly per-zone demand.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastQuality {
    /// Weeks simulated.
    pub weeks: usize,
    /// Forecast origins per zone.
    pub origins: usize,
    /// Per horizon (hours ahead), scores averaged over the zones (the fleet).
    pub horizons: Vec<HorizonScore>,
    /// Per zone, scores averaged over the horizons.
    pub zones: Vec<ZoneScore>,
}

/// One zone's backtest, averaged over the horizons.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneScore {
    pub zone_id: String,
    pub mase_hw: f64,
    pub mase_naive: f64,
    /// `mase_hw / mase_naive`.
    pub relative: f64,
}

impl ForecastQuality {
    /// Mean over horizons of HW MASE / naive MASE.
    pub fn mean_relative(&self) -> f64 {
        self.horizons.iter().map(|h| h.relative).sum::<f64>() / self.horizons.len().max(1) as f64
    }

    /// A plain-text table, one row per horizon.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "{} weeks hourly per-zone demand, {} origins per zone\nh | MASE HW | MASE naive | HW/naive | cover80 | cover95\n",
            self.weeks, self.origins
        );
        for h in &self.horizons {
            let _ = writeln!(
                s,
                "{} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2}",
                h.horizon, h.mase_hw, h.mase_naive, h.relative, h.coverage80, h.coverage95
            );
        }
        let _ = writeln!(s, "mean HW/naive {:.3}", self.mean_relative());
        let _ = writeln!(
            s,
            "zone | MASE HW | MASE naive | HW/naive (means over h = 1..24)"
        );
        for z in &self.zones {
            let _ = writeln!(
                s,
                "{} | {:.3} | {:.3} | {:.3}",
                z.zone_id, z.mase_hw, z.mase_naive, z.relative
            );
        }
        s
    }
}

/// Rolling-origin backtest of each zone's hourly requests over `weeks` weeks of `seed`'s
/// demand: Holt-Winters (weekly season 168 on the √ scale, fitted on the 1..24-step criterion,
/// as the optimizer's own forecast-quality test) against the same hour yesterday; MASE and
/// interval coverage per horizon, averaged over the zones (MASE ratio: of the averages).
pub fn forecast_quality(cfg: &ZoneSimConfig, seed: u64, weeks: usize) -> Result<ForecastQuality> {
    if weeks < 4 {
        return invalid("the backtest needs at least 4 weeks");
    }
    let series = demand_series(cfg, seed, 3600, weeks * 168)?;
    let bt_cfg = BacktestConfig {
        season: 168,
        horizon: 24,
        min_train: 24 * 21,
        step: 24 * 3 + 5,
        transform: Transform::Sqrt,
        baseline_season: 24,
        criterion: FitCriterion::MultiStep {
            horizon: 24,
            window: 24 * 28,
        },
    };
    let mut sums = vec![(0.0, 0.0, 0.0, 0.0); bt_cfg.horizon];
    let mut origins = 0;
    let city = City::new(&cfg.city, &cfg.fleet)?;
    let mut zones = Vec::with_capacity(series.len());
    for (z, y) in series.iter().enumerate() {
        let bt = backtest(y, bt_cfg)?;
        origins = bt.origins;
        let h = bt.horizons.len().max(1) as f64;
        let hw = bt.horizons.iter().map(|s| s.mase_hw).sum::<f64>() / h;
        let naive = bt.horizons.iter().map(|s| s.mase_naive).sum::<f64>() / h;
        zones.push(ZoneScore {
            zone_id: city.zones[z].id.clone(),
            mase_hw: hw,
            mase_naive: naive,
            relative: hw / naive,
        });
        for (s, h) in sums.iter_mut().zip(&bt.horizons) {
            s.0 += h.mase_hw;
            s.1 += h.mase_naive;
            s.2 += h.coverage80;
            s.3 += h.coverage95;
        }
    }
    let n = series.len() as f64;
    let horizons = sums
        .iter()
        .enumerate()
        .map(|(i, &(hw, naive, c80, c95))| HorizonScore {
            horizon: i + 1,
            mase_hw: hw / n,
            mase_naive: naive / n,
            relative: hw / naive,
            coverage80: c80 / n,
            coverage95: c95 / n,
        })
        .collect();
    Ok(ForecastQuality {
        weeks,
        origins,
        horizons,
        zones,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_interpolate_between_hours() {
        let mut p = vec![0.0; 24];
        p[8] = 1.0;
        assert_eq!(interpolate(&p, 8 * 3600), 1.0);
        assert!((interpolate(&p, 7 * 3600 + 1800) - 0.5).abs() < 1e-12);
        assert_eq!(interpolate(&p, 8 * 3600 + DAY_S * 3), 1.0);
        p[0] = 2.0;
        assert!((interpolate(&p, 23 * 3600 + 900) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn poisson_draws_have_the_right_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 200_000;
        let sum: u64 = (0..n).map(|_| u64::from(poisson(&mut rng, 0.7))).sum();
        let mean = sum as f64 / n as f64;
        assert!((mean - 0.7).abs() < 0.01, "{mean}");
        assert_eq!(poisson(&mut rng, 0.0), 0);
    }

    #[test]
    fn generated_rings_are_at_their_radius() {
        let cfg = ZoneSimConfig::default();
        let city = City::new(&cfg.city, &cfg.fleet).unwrap();
        assert_eq!(city.len(), 10);
        assert_eq!(city.zones[0].id, "z00-centre");
        assert_eq!(city.zones[4].id, "z04-inner");
        assert_eq!(city.zones[5].id, "z05-outer");
        for z in 1..10 {
            let want = if z <= 4 { 3.0 } else { 6.5 };
            assert!(
                (city.km(0, z) - want).abs() < 0.01,
                "zone {z}: {}",
                city.km(0, z)
            );
            assert_eq!(city.km(z, 0), city.km(0, z));
        }
        assert_eq!(city.km(3, 3), cfg.fleet.intra_zone_km);
        // 6.5 km at 25 km/h: 15.6 min.
        assert_eq!(
            city.travel_s(0, 5),
            (city.km(0, 5) / 25.0 * 3600.0).ceil() as i64
        );
    }

    #[test]
    fn observed_counts_match_the_intensity() {
        // One week of requests per zone against the integral of the rate (Poisson: the
        // relative error of a count near 2 000 is about 2 %).
        let cfg = ZoneSimConfig::default();
        let city = City::new(&cfg.city, &cfg.fleet).unwrap();
        let model = DemandModel::new(&city, &cfg.demand, 9);
        let series = demand_series(&cfg, 9, 7 * DAY_S, 1).unwrap();
        for (z, s) in series.iter().enumerate() {
            let expected: f64 = (0..7 * 1440)
                .map(|m| model.rate_per_hour(z, m * 60 + 30) / 60.0)
                .sum();
            assert!(
                (s[0] - expected).abs() < 4.0 * expected.sqrt(),
                "zone {z}: {} vs {expected}",
                s[0]
            );
        }
        // Mornings flow to the centre, evenings out of it.
        let mut d = DemandModel::new(&city, &cfg.demand, 9);
        let reqs = d.take_until(DAY_S);
        let share_to_centre = |from_h: i64, to_h: i64| {
            let w: Vec<_> = reqs
                .iter()
                .filter(|r| r.at_s >= from_h * 3600 && r.at_s < to_h * 3600)
                .collect();
            w.iter().filter(|r| r.destination == 0).count() as f64 / w.len() as f64
        };
        assert!(share_to_centre(7, 10) > 2.0 * share_to_centre(16, 19));
    }

    #[test]
    fn rejects_bad_configs() {
        let mut cfg = ZoneSimConfig::default();
        cfg.demand.weekly_other.pop();
        assert!(matches!(cfg.validate(), Err(ZoneSimError::Config(_))));
        let mut cfg = ZoneSimConfig::default();
        cfg.fleet.vehicles = 10_000;
        assert!(cfg.validate().is_err(), "capacities too small");
        let cfg = ZoneSimConfig::default();
        assert!(run_closed_loop(&cfg, 1, Some(1.5), &mut |_| {}).is_err());
    }
}
