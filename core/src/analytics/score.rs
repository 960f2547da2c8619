//! Fleet performance score from closed-window [`Counters`].
//!
//! Every component is on a 0..100 scale (100 = best) and is `None` when the window holds no
//! data to define it. With `observed_h = observed_ms / 3 600 000`, `km = distance_m / 1000`
//! and `kwh = energy_wh / 1000`:
//!
//! - **efficiency** = `100 · min(1, reference_kwh_per_km / (kwh / km))`; 100 when `kwh = 0`.
//!   A fleet at the reference consumption or better scores 100, twice the reference 50.
//!   `None` when `km = 0`.
//! - **utilization** = `100 · busy_ms / observed_ms`. `None` when `observed_ms = 0`.
//! - **reliability** = `100 · availability · max(0, 1 − (fault_count / observed_h) /
//!   max_faults_per_hour)` with `availability = available_ms / observed_ms`.
//!   `None` when `observed_ms = 0`.
//! - **safety** = `100 · max(0, 1 − (fault_count / (km / 1000)) / max_faults_per_1000km)`:
//!   fault onsets (the window kernel's `fault_count`, the safety events the telemetry carries)
//!   per 1000 km against the rate that scores 0. `None` when `km = 0`.
//! - **cost** = `100 · max(0, 1 − cost_per_km / max_cost_per_km)` with
//!   `cost_per_km = (kwh / km) · energy_price_per_kwh`. `None` when `km = 0`.
//!
//! **total** = `Σ wᵢ·cᵢ / Σ wᵢ` over the components that are defined (`Some`), with the weights
//! of [`ScoreWeights`]; `None` when no component with a positive weight is defined. So a parked
//! fleet (no distance) is scored on utilization and reliability alone rather than on made-up
//! values.
//!
//! Counters are additive ([`Counters::add`]), so the daily score is [`score`] of the day's summed
//! counters ([`daily_score`]), not an average of window scores.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::window::Counters;

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Weights of the score components, from configuration. Validated: every weight finite and
/// non-negative, their sum positive. [`ScoreWeights::normalised`] scales them to sum 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreWeights {
    pub efficiency: f64,
    pub utilization: f64,
    pub reliability: f64,
    pub safety: f64,
    pub cost: f64,
}

impl Default for ScoreWeights {
    /// Equal weights, 0.2 each.
    fn default() -> Self {
        ScoreWeights {
            efficiency: 0.2,
            utilization: 0.2,
            reliability: 0.2,
            safety: 0.2,
            cost: 0.2,
        }
    }
}

impl ScoreWeights {
    fn as_array(&self) -> [f64; 5] {
        [
            self.efficiency,
            self.utilization,
            self.reliability,
            self.safety,
            self.cost,
        ]
    }

    pub fn validate(&self) -> Result<()> {
        let names = ["efficiency", "utilization", "reliability", "safety", "cost"];
        for (name, w) in names.iter().zip(self.as_array()) {
            if !w.is_finite() || w < 0.0 {
                return Err(Error::Config(format!(
                    "score weight {name} must be a finite number >= 0, got {w}"
                )));
            }
        }
        if self.as_array().iter().sum::<f64>() <= 0.0 {
            return Err(Error::Config("score weights must not all be 0".into()));
        }
        Ok(())
    }

    /// The weights scaled to sum 1 (after [`ScoreWeights::validate`]).
    pub fn normalised(&self) -> Result<ScoreWeights> {
        self.validate()?;
        let sum: f64 = self.as_array().iter().sum();
        Ok(ScoreWeights {
            efficiency: self.efficiency / sum,
            utilization: self.utilization / sum,
            reliability: self.reliability / sum,
            safety: self.safety / sum,
            cost: self.cost / sum,
        })
    }
}

/// Everything a score depends on besides the counters; `[performance.score]` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreParams {
    pub weights: ScoreWeights,
    /// Consumption that scores 100 on efficiency (kWh/km, > 0).
    pub reference_kwh_per_km: f64,
    /// Fault onsets per observed vehicle-hour that score 0 on the fault part of reliability.
    pub max_faults_per_hour: f64,
    /// Fault onsets per 1000 km that score 0 on safety.
    pub max_faults_per_1000km: f64,
    /// Energy price (currency per kWh, >= 0).
    pub energy_price_per_kwh: f64,
    /// Energy cost per km that scores 0 on cost (currency per km, > 0).
    pub max_cost_per_km: f64,
}

impl Default for ScoreParams {
    fn default() -> Self {
        ScoreParams {
            weights: ScoreWeights::default(),
            reference_kwh_per_km: 0.2,
            max_faults_per_hour: 2.0,
            max_faults_per_1000km: 50.0,
            energy_price_per_kwh: 0.3,
            max_cost_per_km: 0.25,
        }
    }
}

impl ScoreParams {
    pub fn validate(&self) -> Result<()> {
        self.weights.validate()?;
        let positive = [
            ("reference_kwh_per_km", self.reference_kwh_per_km),
            ("max_faults_per_hour", self.max_faults_per_hour),
            ("max_faults_per_1000km", self.max_faults_per_1000km),
            ("max_cost_per_km", self.max_cost_per_km),
        ];
        for (name, v) in positive {
            if !v.is_finite() || v <= 0.0 {
                return Err(Error::Config(format!(
                    "score {name} must be a finite number > 0, got {v}"
                )));
            }
        }
        if !self.energy_price_per_kwh.is_finite() || self.energy_price_per_kwh < 0.0 {
            return Err(Error::Config(format!(
                "score energy_price_per_kwh must be a finite number >= 0, got {}",
                self.energy_price_per_kwh
            )));
        }
        Ok(())
    }
}

/// The five components, each 0..100 or `None` when undefined (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Components {
    pub efficiency: Option<f64>,
    pub utilization: Option<f64>,
    pub reliability: Option<f64>,
    pub safety: Option<f64>,
    pub cost: Option<f64>,
}

/// A performance score: the weighted total (0..100) and its components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub total: Option<f64>,
    pub components: Components,
}

fn clamp01(x: f64) -> f64 {
    x.clamp(0.0, 1.0)
}

/// The components of one set of counters (see the module docs for the definitions).
pub fn components(c: &Counters, p: &ScoreParams) -> Components {
    let observed_h = c.observed_ms as f64 / MS_PER_HOUR;
    let km = c.distance_km();
    let kwh_per_km = c.kwh_per_km();
    let faults = c.fault_count as f64;
    Components {
        efficiency: kwh_per_km.map(|e| {
            if e <= 0.0 {
                100.0
            } else {
                100.0 * clamp01(p.reference_kwh_per_km / e)
            }
        }),
        utilization: c.utilization().map(|u| 100.0 * u),
        reliability: c.availability().map(|a| {
            let per_hour = faults / observed_h;
            100.0 * a * clamp01(1.0 - per_hour / p.max_faults_per_hour)
        }),
        safety: (c.distance_m > 0).then(|| {
            let per_1000km = faults / (km / 1000.0);
            100.0 * clamp01(1.0 - per_1000km / p.max_faults_per_1000km)
        }),
        cost: kwh_per_km
            .map(|e| 100.0 * clamp01(1.0 - e * p.energy_price_per_kwh / p.max_cost_per_km)),
    }
}

/// Weighted total of defined components; `None` when no positively weighted one is defined.
pub fn total(comp: &Components, w: &ScoreWeights) -> Option<f64> {
    let pairs = [
        (comp.efficiency, w.efficiency),
        (comp.utilization, w.utilization),
        (comp.reliability, w.reliability),
        (comp.safety, w.safety),
        (comp.cost, w.cost),
    ];
    let (mut num, mut den) = (0.0, 0.0);
    for (c, w) in pairs {
        if let Some(c) = c {
            num += w * c;
            den += w;
        }
    }
    (den > 0.0).then(|| num / den)
}

/// The score of one set of counters (a window, or a day's sum). `params` must be valid
/// ([`ScoreParams::validate`]); invalid weights give an error rather than a made-up score.
pub fn score(c: &Counters, params: &ScoreParams) -> Result<Score> {
    params.validate()?;
    let components = components(c, params);
    Ok(Score {
        total: total(&components, &params.weights),
        components,
    })
}

/// The score of a day (or any span): [`score`] of the summed window counters.
pub fn daily_score<'a>(
    windows: impl IntoIterator<Item = &'a Counters>,
    params: &ScoreParams,
) -> Result<Score> {
    let mut sum = Counters::default();
    for w in windows {
        sum.add(w);
    }
    score(&sum, params)
}

/// `100 · value / benchmark`: how far a fleet is from its benchmark (100 = on it). `None` when
/// the benchmark is 0 or either number is not finite.
pub fn percent_of_benchmark(value: f64, benchmark: f64) -> Option<f64> {
    if !value.is_finite() || !benchmark.is_finite() || benchmark == 0.0 {
        return None;
    }
    Some(100.0 * value / benchmark)
}

/// One fleet's place among the fleets of a federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    pub fleet_id: String,
    pub value: f64,
    /// 1 = best.
    pub rank: u32,
}

/// Competition ranking ("1224"): a fleet's rank is 1 + the number of fleets strictly better
/// than it, so tied fleets share a rank and the next rank is skipped. Better = higher value
/// when `higher_is_better`, lower otherwise. Fleets whose value is not finite are left out
/// (unranked). The result is ordered by rank, ties by fleet id, so it is stable whatever the
/// input order.
pub fn rank_among(values: &[(String, f64)], higher_is_better: bool) -> Vec<Ranked> {
    let mut v: Vec<(String, f64)> = values
        .iter()
        .filter(|(_, x)| x.is_finite())
        .cloned()
        .collect();
    v.sort_by(|a, b| {
        let ord = if higher_is_better {
            b.1.total_cmp(&a.1)
        } else {
            a.1.total_cmp(&b.1)
        };
        ord.then_with(|| a.0.cmp(&b.0))
    });
    let mut out: Vec<Ranked> = Vec::with_capacity(v.len());
    for (i, (fleet_id, value)) in v.into_iter().enumerate() {
        let rank = match out.last() {
            Some(prev) if prev.value == value => prev.rank,
            _ => i as u32 + 1,
        };
        out.push(Ranked {
            fleet_id,
            value,
            rank,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn window() -> Counters {
        Counters {
            observed_ms: 600_000, // 10 vehicle-minutes
            busy_ms: 360_000,
            available_ms: 540_000,
            distance_m: 8_000,
            energy_wh: 2_000, // 0.25 kWh/km
            fault_count: 0,
            samples: 100,
            vehicles: 10,
            active_vehicles: 10,
            ..Counters::default()
        }
    }

    #[test]
    fn components_follow_their_definitions() {
        let p = ScoreParams::default();
        let c = components(&window(), &p);
        assert!(close(c.efficiency.unwrap(), 100.0 * 0.2 / 0.25));
        assert!(close(c.utilization.unwrap(), 60.0));
        assert!(close(c.reliability.unwrap(), 90.0));
        assert!(close(c.safety.unwrap(), 100.0));
        // 0.25 kWh/km × 0.3 = 0.075 per km against 0.25.
        assert!(close(c.cost.unwrap(), 100.0 * (1.0 - 0.075 / 0.25)));

        let mut faulty = window();
        faulty.fault_count = 1; // 1 per 1/6 h = 6 per hour ≥ 2 → 0; 1 per 8 km = 125 per 1000 km ≥ 50 → 0
        let c = components(&faulty, &p);
        assert_eq!(c.reliability, Some(0.0));
        assert_eq!(c.safety, Some(0.0));

        let mut day = window();
        day.observed_ms = 36_000_000; // 10 h
        day.available_ms = 36_000_000;
        day.distance_m = 100_000;
        day.energy_wh = 10_000;
        day.fault_count = 2; // 0.2 per hour, 20 per 1000 km
        let c = components(&day, &p);
        assert!(close(c.reliability.unwrap(), 100.0 * (1.0 - 0.2 / 2.0)));
        assert!(close(c.safety.unwrap(), 100.0 * (1.0 - 20.0 / 50.0)));
        assert_eq!(c.efficiency, Some(100.0), "0.1 kWh/km beats the reference");
    }

    #[test]
    fn undefined_components_are_none_and_left_out_of_the_total() {
        let p = ScoreParams::default();
        let mut parked = window();
        parked.distance_m = 0;
        parked.energy_wh = 0;
        let s = score(&parked, &p).unwrap();
        assert_eq!(s.components.efficiency, None);
        assert_eq!(s.components.safety, None);
        assert_eq!(s.components.cost, None);
        assert!(close(s.total.unwrap(), (60.0 + 90.0) / 2.0));

        let empty = score(&Counters::default(), &p).unwrap();
        assert_eq!(empty, Score::default());

        // Energy but no consumption recorded: best efficiency and cost.
        let mut free = window();
        free.energy_wh = 0;
        let c = components(&free, &p);
        assert_eq!((c.efficiency, c.cost), (Some(100.0), Some(100.0)));
    }

    #[test]
    fn total_is_the_weighted_mean() {
        let mut p = ScoreParams {
            weights: ScoreWeights {
                efficiency: 0.0,
                utilization: 3.0,
                reliability: 1.0,
                safety: 0.0,
                cost: 0.0,
            },
            ..ScoreParams::default()
        };
        let s = score(&window(), &p).unwrap();
        assert!(close(s.total.unwrap(), (3.0 * 60.0 + 90.0) / 4.0));
        // Only zero-weight components defined → no total.
        p.weights = ScoreWeights {
            efficiency: 1.0,
            utilization: 0.0,
            reliability: 0.0,
            safety: 0.0,
            cost: 0.0,
        };
        let mut parked = window();
        parked.distance_m = 0;
        assert_eq!(score(&parked, &p).unwrap().total, None);
    }

    #[test]
    fn weights_are_validated_and_normalised() {
        let w = ScoreWeights {
            efficiency: 1.0,
            utilization: 1.0,
            reliability: 2.0,
            safety: 0.0,
            cost: 0.0,
        };
        let n = w.normalised().unwrap();
        assert!(close(n.reliability, 0.5) && close(n.efficiency, 0.25) && n.safety == 0.0);
        let zero = ScoreWeights {
            efficiency: 0.0,
            utilization: 0.0,
            reliability: 0.0,
            safety: 0.0,
            cost: 0.0,
        };
        assert!(zero.validate().is_err());
        assert!(ScoreWeights { cost: -0.1, ..w }.validate().is_err());
        assert!(ScoreWeights {
            cost: f64::NAN,
            ..w
        }
        .validate()
        .is_err());
        assert!(ScoreWeights {
            cost: f64::INFINITY,
            ..w
        }
        .normalised()
        .is_err());
        // Same scores with normalised weights.
        let p = ScoreParams {
            weights: w,
            ..ScoreParams::default()
        };
        let pn = ScoreParams {
            weights: n,
            ..ScoreParams::default()
        };
        assert!(close(
            score(&window(), &p).unwrap().total.unwrap(),
            score(&window(), &pn).unwrap().total.unwrap()
        ));
        let bad = ScoreParams {
            reference_kwh_per_km: 0.0,
            ..ScoreParams::default()
        };
        assert!(score(&window(), &bad).is_err());
        let bad = ScoreParams {
            energy_price_per_kwh: -1.0,
            ..ScoreParams::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn weights_deserialize_strictly_with_defaults() {
        let w: ScoreWeights = serde_json::from_str(r#"{"safety": 0.5}"#).unwrap();
        assert_eq!(w.safety, 0.5);
        assert_eq!(w.cost, 0.2);
        assert!(serde_json::from_str::<ScoreWeights>(r#"{"speed": 1}"#).is_err());
        let p: ScoreParams =
            serde_json::from_str(r#"{"weights": {"cost": 0}, "max_cost_per_km": 0.5}"#).unwrap();
        assert_eq!(p.weights.cost, 0.0);
        assert_eq!(p.max_cost_per_km, 0.5);
    }

    #[test]
    fn daily_score_sums_counters_first() {
        let p = ScoreParams::default();
        let a = window();
        let mut b = window();
        b.busy_ms = 0;
        b.observed_ms = 60_000;
        b.available_ms = 60_000;
        let day = daily_score([&a, &b], &p).unwrap();
        // Utilization of the sum, not the mean of 60 and 0.
        assert!(close(
            day.components.utilization.unwrap(),
            100.0 * 360_000.0 / 660_000.0
        ));
        let mut sum = a.clone();
        sum.add(&b);
        assert_eq!(day, score(&sum, &p).unwrap());
    }

    #[test]
    fn percent_of_benchmark_handles_zero_and_nan() {
        assert_eq!(percent_of_benchmark(45.0, 60.0), Some(75.0));
        assert_eq!(percent_of_benchmark(-3.0, 60.0), Some(-5.0));
        assert_eq!(percent_of_benchmark(1.0, 0.0), None);
        assert_eq!(percent_of_benchmark(f64::NAN, 1.0), None);
        assert_eq!(percent_of_benchmark(1.0, f64::INFINITY), None);
    }

    #[test]
    fn competition_rank_with_stable_ties() {
        let v = |xs: &[(&str, f64)]| {
            xs.iter()
                .map(|(f, x)| (f.to_string(), *x))
                .collect::<Vec<_>>()
        };
        let r = rank_among(
            &v(&[
                ("c", 70.0),
                ("a", 80.0),
                ("d", f64::NAN),
                ("b", 70.0),
                ("e", 60.0),
            ]),
            true,
        );
        let got: Vec<(&str, u32)> = r.iter().map(|x| (x.fleet_id.as_str(), x.rank)).collect();
        assert_eq!(got, vec![("a", 1), ("b", 2), ("c", 2), ("e", 4)]);
        let r = rank_among(&v(&[("c", 70.0), ("a", 80.0), ("b", 70.0)]), false);
        let got: Vec<(&str, u32)> = r.iter().map(|x| (x.fleet_id.as_str(), x.rank)).collect();
        assert_eq!(got, vec![("b", 1), ("c", 1), ("a", 3)]);
        assert!(rank_among(&[], true).is_empty());
    }
}
