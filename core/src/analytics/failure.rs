//! Failure risk per vehicle for the next N days from its recent fault and precursor pattern.
//!
//! Observations, per vehicle and UTC day ([`FaultDays`] from the telemetry, samples in event
//! time order per vehicle; older or repeated samples are ignored):
//! - **precursors**: samples carrying a warning code (prefix [`FailureParams::precursor_prefix`],
//!   e.g. `W-P0A80`), whatever the status;
//! - **faults**: samples entering `fault` (previous sample of the vehicle not in fault), as the
//!   window counters count them;
//! - **failures**: samples whose fault codes include a failure code (prefix
//!   [`FailureParams::failure_prefix`], e.g. `F-HVB`) when the previous sample had none.
//!
//! Inputs of a prediction made at the end of day `d` ([`RiskInputs`], from days `≤ d` only):
//! the exponentially weighted precursor count (half-life [`FailureParams::half_life_days`]),
//! the precursor rate over the last [`FailureParams::recent_days`] minus the rate over the
//! [`FailureParams::trend_base_days`] before them (the trend), the faults over the last
//! [`FailureParams::fault_window_days`], the failures over the last
//! [`FailureParams::history_days`] and the days since the last failure.
//!
//! Model: logistic regression `p = 1 / (1 + e^(−xᵀβ))` over `x` = (1, ln(1 + weighted
//! precursors), precursor trend, ln(1 + faults), ln(1 + failures), e^(−days since failure / 7)
//! or 0 without one), fitted by iteratively reweighted least squares with a small ridge
//! penalty (not on the intercept) for stability. The interval of a probability is the
//! logistic of `xᵀβ ± z·√(xᵀΣx)`, `Σ` the inverse of the penalized information matrix at the
//! fit (delta method, `z` = [`FailureParams::interval_z`]).
//!
//! Decision: alarm when `p ≥ threshold`, the threshold chosen on the training examples to
//! minimise the cost `cost_fp·FP + cost_fn·FN` ([`cost_optimal_threshold`]; defaults 10 and 500,
//! the Scania APS challenge's cost measure). The same function fits any score's threshold
//! (e.g. a fault-count baseline), so baselines are fitted the same way.
//!
//! Pure and deterministic: no clock, no I/O, no randomness; undefined results are `None` or
//! an error, never NaN.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{TelemetryEvent, VehicleStatus};

const DAY_MS: i64 = 86_400_000;
/// Entries of the model's feature vector (intercept included).
pub const N_FEATURES: usize = 6;
/// Names of the entries of the feature vector, in order.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "intercept",
    "ln1p_precursors_ew",
    "precursor_trend_per_day",
    "ln1p_faults",
    "ln1p_failures",
    "recent_failure",
];

/// Windows, codes, costs and fitting tunables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailureParams {
    /// Predict a failure within this many days after the day of the prediction.
    pub horizon_days: u32,
    pub half_life_days: f64,
    pub recent_days: u32,
    pub trend_base_days: u32,
    pub fault_window_days: u32,
    pub history_days: u32,
    pub precursor_prefix: String,
    pub failure_prefix: String,
    pub cost_fp: f64,
    pub cost_fn: f64,
    pub ridge: f64,
    pub interval_z: f64,
}

impl Default for FailureParams {
    fn default() -> Self {
        FailureParams {
            horizon_days: 7,
            half_life_days: 2.0,
            recent_days: 3,
            trend_base_days: 28,
            fault_window_days: 7,
            history_days: 90,
            precursor_prefix: "W-".into(),
            failure_prefix: "F-".into(),
            cost_fp: 10.0,
            cost_fn: 500.0,
            ridge: 1e-3,
            interval_z: 1.959_964,
        }
    }
}

impl FailureParams {
    /// Days a prediction looks back (the longest window).
    pub fn lookback_days(&self) -> u32 {
        (self.recent_days + self.trend_base_days)
            .max(self.fault_window_days)
            .max(self.history_days)
            .max(1)
    }
}

/// What one vehicle showed on one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    /// Start of the UTC day, epoch ms.
    pub day_ms: i64,
    pub samples: u32,
    pub precursors: u32,
    pub faults: u32,
    pub failures: u32,
}

#[derive(Debug, Clone, Default)]
struct Track {
    last_ts: Option<(i64, i64)>,
    in_fault: bool,
    had_failure_code: bool,
    days: BTreeMap<i64, DayCounts>,
}

/// Whether a sample's fault codes carry a precursor warning and a failure code (by prefix;
/// an empty prefix matches nothing).
pub fn code_flags(codes: &[String], precursor_prefix: &str, failure_prefix: &str) -> (bool, bool) {
    let has = |prefix: &str| !prefix.is_empty() && codes.iter().any(|c| c.starts_with(prefix));
    (has(precursor_prefix), has(failure_prefix))
}

/// Accumulates [`DayCounts`] per vehicle from telemetry (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct FaultDays {
    precursor_prefix: String,
    failure_prefix: String,
    vehicles: BTreeMap<String, Track>,
}

impl FaultDays {
    pub fn new(p: &FailureParams) -> Self {
        FaultDays {
            precursor_prefix: p.precursor_prefix.clone(),
            failure_prefix: p.failure_prefix.clone(),
            vehicles: BTreeMap::new(),
        }
    }

    /// Counts one sample; samples not newer (by `(ts_ms, seq)`) than the vehicle's newest are
    /// ignored.
    pub fn process(&mut self, e: &TelemetryEvent) {
        let t = self.vehicles.entry(e.vehicle_id.clone()).or_default();
        if t.last_ts.is_some_and(|l| (e.ts_ms, e.seq) <= l) {
            return;
        }
        t.last_ts = Some((e.ts_ms, e.seq));
        let (precursor, failure_code) =
            code_flags(&e.fault_codes, &self.precursor_prefix, &self.failure_prefix);
        let fault = e.status == VehicleStatus::Fault;
        let day_ms = e.ts_ms.div_euclid(DAY_MS) * DAY_MS;
        let d = t.days.entry(day_ms).or_insert(DayCounts {
            day_ms,
            ..DayCounts::default()
        });
        d.samples += 1;
        d.precursors += u32::from(precursor);
        d.faults += u32::from(fault && !t.in_fault);
        d.failures += u32::from(failure_code && !t.had_failure_code);
        t.in_fault = fault;
        t.had_failure_code = failure_code;
    }

    /// Vehicle ids seen, in order.
    pub fn vehicle_ids(&self) -> impl Iterator<Item = &str> {
        self.vehicles.keys().map(String::as_str)
    }

    /// The days of one vehicle with at least one sample, in order.
    pub fn days(&self, vehicle_id: &str) -> Vec<DayCounts> {
        self.vehicles
            .get(vehicle_id)
            .map(|t| t.days.values().copied().collect())
            .unwrap_or_default()
    }
}

/// The inputs a prediction used (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskInputs {
    /// Start of the UTC day at whose end the prediction is made.
    pub as_of_day_ms: i64,
    /// Days with samples in the look-back.
    pub observed_days: u32,
    pub precursors_ew: f64,
    pub precursors_recent: u32,
    /// Precursors per day over the recent days minus per day over the days before them.
    pub precursor_trend_per_day: f64,
    pub faults_window: u32,
    pub failures_history: u32,
    pub days_since_failure: Option<u32>,
}

impl RiskInputs {
    /// The model's feature vector (names in [`FEATURE_NAMES`]).
    pub fn vector(&self) -> [f64; N_FEATURES] {
        [
            1.0,
            self.precursors_ew.ln_1p(),
            self.precursor_trend_per_day,
            f64::from(self.faults_window).ln_1p(),
            f64::from(self.failures_history).ln_1p(),
            self.days_since_failure
                .map_or(0.0, |d| (-f64::from(d) / 7.0).exp()),
        ]
    }
}

/// The inputs at the end of day `as_of_day_ms` from one vehicle's days (any order; days
/// after it are not used). `None` when no day of the look-back has samples.
pub fn risk_inputs(days: &[DayCounts], as_of_day_ms: i64, p: &FailureParams) -> Option<RiskInputs> {
    let as_of = as_of_day_ms.div_euclid(DAY_MS);
    let lookback = i64::from(p.lookback_days());
    let mut by_age: BTreeMap<i64, DayCounts> = BTreeMap::new();
    for d in days {
        let age = as_of - d.day_ms.div_euclid(DAY_MS);
        if (0..lookback).contains(&age) {
            let e = by_age.entry(age).or_default();
            e.samples += d.samples;
            e.precursors += d.precursors;
            e.faults += d.faults;
            e.failures += d.failures;
        }
    }
    let observed_days = by_age.values().filter(|d| d.samples > 0).count() as u32;
    if observed_days == 0 {
        return None;
    }
    let half_life = if p.half_life_days > 0.0 {
        p.half_life_days
    } else {
        1.0
    };
    let sum = |from: i64, to: i64, f: fn(&DayCounts) -> u32| -> u32 {
        by_age.range(from..to).map(|(_, d)| f(d)).sum()
    };
    let recent = i64::from(p.recent_days.max(1));
    let base = i64::from(p.trend_base_days.max(1));
    let precursors_recent = sum(0, recent, |d| d.precursors);
    let before = sum(recent, recent + base, |d| d.precursors);
    let precursors_ew = by_age
        .iter()
        .map(|(age, d)| f64::from(d.precursors) * 0.5f64.powf(*age as f64 / half_life))
        .sum();
    let days_since_failure = by_age
        .iter()
        .find(|(_, d)| d.failures > 0)
        .map(|(age, _)| *age as u32);
    Some(RiskInputs {
        as_of_day_ms: as_of * DAY_MS,
        observed_days,
        precursors_ew,
        precursors_recent,
        precursor_trend_per_day: f64::from(precursors_recent) / recent as f64
            - f64::from(before) / base as f64,
        faults_window: sum(0, i64::from(p.fault_window_days.max(1)), |d| d.faults),
        failures_history: sum(0, i64::from(p.history_days.max(1)), |d| d.failures),
        days_since_failure,
    })
}

/// Whether a failure (times in epoch ms) falls in the horizon of a prediction made at the end
/// of day `as_of_day_ms`: from the next day's start for `horizon_days` days.
pub fn failure_within(failures_ms: &[i64], as_of_day_ms: i64, horizon_days: u32) -> bool {
    let from = (as_of_day_ms.div_euclid(DAY_MS) + 1) * DAY_MS;
    let to = from + i64::from(horizon_days) * DAY_MS;
    failures_ms.iter().any(|t| (from..to).contains(t))
}

/// Counts of a binary decision against the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl Confusion {
    /// From `(alarm, failure)` pairs.
    pub fn of(pairs: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let mut c = Confusion::default();
        for (alarm, truth) in pairs {
            match (alarm, truth) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    /// `None` without alarms.
    pub fn precision(&self) -> Option<f64> {
        let d = self.tp + self.fp;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }

    /// `None` without failures.
    pub fn recall(&self) -> Option<f64> {
        let d = self.tp + self.fn_;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }

    pub fn cost(&self, cost_fp: f64, cost_fn: f64) -> f64 {
        cost_fp * self.fp as f64 + cost_fn * self.fn_ as f64
    }
}

/// A decision threshold on a score: alarm when `score ≥ value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub value: f64,
    /// Its confusion and cost on the examples it was chosen on.
    pub confusion: Confusion,
    pub cost: f64,
}

/// The threshold minimising `cost_fp·FP + cost_fn·FN` over `(score, failure)` examples:
/// "never" (above every score), between each two consecutive distinct scores, or at the lowest
/// score (alarm always). Ties go to the higher threshold (fewer alarms). `None` without
/// examples or with a non-finite score or cost.
pub fn cost_optimal_threshold(
    scored: &[(f64, bool)],
    cost_fp: f64,
    cost_fn: f64,
) -> Option<Threshold> {
    if scored.is_empty()
        || !cost_fp.is_finite()
        || !cost_fn.is_finite()
        || scored.iter().any(|(s, _)| !s.is_finite())
    {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = sorted.iter().filter(|s| s.1).count() as u64;
    let negatives = sorted.len() as u64 - positives;
    let mut c = Confusion {
        tp: 0,
        fp: 0,
        tn: negatives,
        fn_: positives,
    };
    let mut best = Threshold {
        value: sorted[0].0 + 1.0,
        confusion: c,
        cost: c.cost(cost_fp, cost_fn),
    };
    let mut i = 0;
    while i < sorted.len() {
        // Alarm on every example with this score too.
        let s = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == s {
            if sorted[i].1 {
                c.tp += 1;
                c.fn_ -= 1;
            } else {
                c.fp += 1;
                c.tn -= 1;
            }
            i += 1;
        }
        let value = sorted.get(i).map_or(s, |next| s - (s - next.0) / 2.0);
        let cost = c.cost(cost_fp, cost_fn);
        if cost < best.cost {
            best = Threshold {
                value,
                confusion: c,
                cost,
            };
        }
    }
    Some(best)
}

/// Why no model could be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RiskError {
    #[error("fitting needs failures and non-failures among the examples")]
    OneClass,
    #[error("an input is not finite")]
    NonFinite,
    #[error("the fit did not converge")]
    NoConvergence,
}

/// A fitted failure-risk model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskModel {
    pub coefficients: [f64; N_FEATURES],
    /// Covariance of the coefficients (inverse penalized information at the fit).
    pub covariance: [[f64; N_FEATURES]; N_FEATURES],
    /// Alarm when the probability is at least this.
    pub threshold: f64,
    pub horizon_days: u32,
    pub interval_z: f64,
    /// On the training examples: count, failures, confusion and cost at the threshold.
    pub training_examples: usize,
    pub training_failures: usize,
    pub training: Confusion,
    pub training_cost: f64,
    pub iterations: usize,
}

/// One vehicle's risk of a failure in the next `horizon_days`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskPrediction {
    pub horizon_days: u32,
    pub probability: f64,
    /// Interval of the probability (see the module docs).
    pub interval: (f64, f64),
    pub alarm: bool,
    pub threshold: f64,
    pub inputs: RiskInputs,
}

fn logistic(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Solves `a·x = b` in place (Gauss–Jordan with partial pivoting); also returns `a⁻¹`.
#[allow(clippy::needless_range_loop)]
fn solve(
    mut a: [[f64; N_FEATURES]; N_FEATURES],
    b: [f64; N_FEATURES],
) -> Option<([f64; N_FEATURES], [[f64; N_FEATURES]; N_FEATURES])> {
    let mut inv = [[0.0; N_FEATURES]; N_FEATURES];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    let mut x = b;
    for col in 0..N_FEATURES {
        let piv = (col..N_FEATURES).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        inv.swap(col, piv);
        x.swap(col, piv);
        let d = a[col][col];
        for k in 0..N_FEATURES {
            a[col][k] /= d;
            inv[col][k] /= d;
        }
        x[col] /= d;
        for r in 0..N_FEATURES {
            if r != col {
                let f = a[r][col];
                if f != 0.0 {
                    for k in 0..N_FEATURES {
                        a[r][k] -= f * a[col][k];
                        inv[r][k] -= f * inv[col][k];
                    }
                    x[r] -= f * x[col];
                }
            }
        }
    }
    Some((x, inv))
}

impl RiskModel {
    /// Fits the model and its cost-optimal threshold on `(inputs, failure in horizon)`
    /// examples (see the module docs).
    pub fn fit(examples: &[(RiskInputs, bool)], p: &FailureParams) -> Result<Self, RiskError> {
        let xs: Vec<([f64; N_FEATURES], bool)> =
            examples.iter().map(|(i, y)| (i.vector(), *y)).collect();
        if xs.iter().any(|(x, _)| x.iter().any(|v| !v.is_finite())) {
            return Err(RiskError::NonFinite);
        }
        let failures = xs.iter().filter(|e| e.1).count();
        if failures == 0 || failures == xs.len() {
            return Err(RiskError::OneClass);
        }
        let ridge = p.ridge.max(0.0);
        let mut beta = [0.0; N_FEATURES];
        // Start at the base rate.
        let rate = failures as f64 / xs.len() as f64;
        beta[0] = (rate / (1.0 - rate)).ln();
        let mut iterations = 0;
        let mut cov = [[0.0; N_FEATURES]; N_FEATURES];
        let mut converged = false;
        for it in 1..=100 {
            iterations = it;
            let mut h = [[0.0; N_FEATURES]; N_FEATURES];
            let mut g = [0.0; N_FEATURES];
            for (x, y) in &xs {
                let eta: f64 = x.iter().zip(&beta).map(|(a, b)| a * b).sum();
                let pr = logistic(eta);
                let w = (pr * (1.0 - pr)).max(1e-12);
                let r = f64::from(u8::from(*y)) - pr;
                for i in 0..N_FEATURES {
                    g[i] += x[i] * r;
                    for j in 0..N_FEATURES {
                        h[i][j] += w * x[i] * x[j];
                    }
                }
            }
            for i in 1..N_FEATURES {
                h[i][i] += ridge * xs.len() as f64;
                g[i] -= ridge * xs.len() as f64 * beta[i];
            }
            let (step, inv) = solve(h, g).ok_or(RiskError::NoConvergence)?;
            cov = inv;
            for (b, s) in beta.iter_mut().zip(&step) {
                *b += s;
            }
            if beta.iter().any(|b| !b.is_finite()) {
                return Err(RiskError::NoConvergence);
            }
            if step.iter().all(|s| s.abs() < 1e-9) {
                converged = true;
                break;
            }
        }
        if !converged {
            return Err(RiskError::NoConvergence);
        }
        let mut model = RiskModel {
            coefficients: beta,
            covariance: cov,
            threshold: 0.5,
            horizon_days: p.horizon_days,
            interval_z: p.interval_z,
            training_examples: xs.len(),
            training_failures: failures,
            training: Confusion::default(),
            training_cost: 0.0,
            iterations,
        };
        let scored: Vec<(f64, bool)> = examples
            .iter()
            .map(|(i, y)| (model.probability(i), *y))
            .collect();
        let t =
            cost_optimal_threshold(&scored, p.cost_fp, p.cost_fn).ok_or(RiskError::NonFinite)?;
        model.threshold = t.value;
        model.training = t.confusion;
        model.training_cost = t.cost;
        Ok(model)
    }

    fn eta(&self, x: &[f64; N_FEATURES]) -> f64 {
        x.iter().zip(&self.coefficients).map(|(a, b)| a * b).sum()
    }

    /// The built-in model: fitted on the simulator's training seed
    /// (`core/src/analytics/failure_model.json`, written by the simulator's example
    /// `fit_failure_model`; its test checks the file is still what the fit gives).
    pub fn builtin() -> RiskModel {
        serde_json::from_str(include_str!("failure_model.json"))
            .expect("failure_model.json is a RiskModel")
    }

    /// The probability of a failure within the horizon.
    pub fn probability(&self, inputs: &RiskInputs) -> f64 {
        logistic(self.eta(&inputs.vector()))
    }

    /// The prediction for `inputs`: probability, interval, alarm and the inputs themselves.
    pub fn predict(&self, inputs: &RiskInputs) -> RiskPrediction {
        let x = inputs.vector();
        let eta = self.eta(&x);
        let mut var = 0.0;
        for i in 0..N_FEATURES {
            for j in 0..N_FEATURES {
                var += x[i] * self.covariance[i][j] * x[j];
            }
        }
        let half = self.interval_z * var.max(0.0).sqrt();
        let probability = logistic(eta);
        RiskPrediction {
            horizon_days: self.horizon_days,
            probability,
            interval: (logistic(eta - half), logistic(eta + half)),
            alarm: probability >= self.threshold,
            threshold: self.threshold,
            inputs: *inputs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const D0: i64 = 20_000 * DAY_MS;

    fn ev(ts_ms: i64, seq: i64, status: VehicleStatus, codes: &[&str]) -> TelemetryEvent {
        TelemetryEvent {
            event_id: format!("e{seq}"),
            fleet_id: "fleet-001".into(),
            vehicle_id: "v1".into(),
            ts_ms,
            seq,
            lat: 0.0,
            lon: 0.0,
            speed_kph: 0.0,
            odometer_km: 0.0,
            energy_pct: 50.0,
            energy_used_kwh: 0.0,
            status,
            mission_id: None,
            zone_id: None,
            payload_kg: 0.0,
            fault_codes: codes.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn days_count_precursors_fault_entries_and_failures() {
        use VehicleStatus::*;
        let p = FailureParams::default();
        let mut f = FaultDays::new(&p);
        let h = 3_600_000;
        let seq = [
            (Idle, vec![]),
            (Idle, vec!["W-P0A80"]),
            (Fault, vec!["E101"]),
            (Fault, vec!["E101"]),
            (Idle, vec!["W110"]), // not a W- code
            (Fault, vec!["W-ISO-RES"]),
            (Idle, vec![]),
            (Fault, vec!["F-HVB"]),
            (Fault, vec!["F-HVB"]),
            (Maintenance, vec![]),
        ];
        for (i, (s, c)) in seq.iter().enumerate() {
            f.process(&ev(D0 + i as i64 * h, i as i64 + 1, *s, c));
        }
        // Older and repeated samples are ignored.
        f.process(&ev(D0, 1, Fault, &["F-DRIVE"]));
        f.process(&ev(D0 + 25 * h, 30, Fault, &["F-DRIVE"]));
        let d = f.days("v1");
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0],
            DayCounts {
                day_ms: D0,
                samples: 10,
                precursors: 2,
                faults: 3,
                failures: 1
            }
        );
        assert_eq!((d[1].faults, d[1].failures), (1, 1));
        assert!(f.days("other").is_empty());
        assert_eq!(f.vehicle_ids().collect::<Vec<_>>(), ["v1"]);
    }

    fn day(n: i64, precursors: u32, faults: u32, failures: u32) -> DayCounts {
        DayCounts {
            day_ms: D0 + n * DAY_MS,
            samples: 100,
            precursors,
            faults,
            failures,
        }
    }

    #[test]
    fn inputs_use_only_the_past_and_their_windows() {
        let p = FailureParams::default();
        let days = vec![
            day(0, 0, 1, 1),
            day(10, 2, 0, 0),
            day(28, 4, 2, 0),
            day(29, 1, 1, 0),
            day(30, 3, 0, 0),
            day(31, 50, 9, 9), // after the prediction day: unused
        ];
        let i = risk_inputs(&days, D0 + 30 * DAY_MS + 5, &p).unwrap();
        assert_eq!(i.as_of_day_ms, D0 + 30 * DAY_MS);
        assert_eq!(i.observed_days, 5);
        assert_eq!(i.precursors_recent, 8);
        // Recent 8/3 per day; the 28 days before: days 2..=27 hold the 2 of day 10.
        assert!((i.precursor_trend_per_day - (8.0 / 3.0 - 2.0 / 28.0)).abs() < 1e-12);
        let ew = 3.0 + 1.0 * 0.5f64.powf(0.5) + 4.0 * 0.5 + 2.0 * 0.5f64.powf(10.0);
        assert!((i.precursors_ew - ew).abs() < 1e-12);
        assert_eq!(i.faults_window, 3);
        assert_eq!(i.failures_history, 1);
        assert_eq!(i.days_since_failure, Some(30));
        assert!(i.vector().iter().all(|v| v.is_finite()));
        // Nothing in the look-back: undefined.
        assert_eq!(risk_inputs(&days, D0 + 400 * DAY_MS, &p), None);
        assert_eq!(risk_inputs(&[], D0, &p), None);
    }

    #[test]
    fn labels_cover_the_next_days_only() {
        let t = [D0 + 3 * DAY_MS + 1];
        assert!(failure_within(&t, D0 + 2 * DAY_MS, 7));
        assert!(!failure_within(&t, D0 + 3 * DAY_MS, 7)); // same day: already happened
        assert!(failure_within(&t, D0 - 4 * DAY_MS, 7));
        assert!(!failure_within(&t, D0 - 5 * DAY_MS, 7));
    }

    #[test]
    fn the_threshold_minimises_the_cost() {
        // Cost 10 per false alarm, 500 per miss.
        let s = [
            (0.9, true),
            (0.8, false),
            (0.5, true),
            (0.3, false),
            (0.2, false),
            (0.1, false),
        ];
        let t = cost_optimal_threshold(&s, 10.0, 500.0).unwrap();
        assert_eq!(
            t.confusion,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 3,
                fn_: 0
            }
        );
        assert_eq!(t.cost, 10.0);
        assert!((t.value - 0.4).abs() < 1e-12);
        // Expensive false alarms: only the top score, whose alarm is right.
        let t = cost_optimal_threshold(&s, 1_000.0, 1.0).unwrap();
        assert_eq!(
            t.confusion,
            Confusion {
                tp: 1,
                fp: 0,
                tn: 4,
                fn_: 1
            }
        );
        assert!((t.value - 0.85).abs() < 1e-12);
        // ... and never alarm when the top score is a false alarm.
        let t = cost_optimal_threshold(&s[1..], 1_000.0, 1.0).unwrap();
        assert_eq!(t.confusion.tp + t.confusion.fp, 0);
        assert!(t.value > 0.8);
        // Ties at one score move together.
        let t = cost_optimal_threshold(&[(1.0, true), (1.0, false), (0.0, false)], 10.0, 500.0)
            .unwrap();
        assert_eq!(
            t.confusion,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                fn_: 0
            }
        );
        assert!(cost_optimal_threshold(&[], 10.0, 500.0).is_none());
        assert!(cost_optimal_threshold(&[(f64::NAN, true)], 10.0, 500.0).is_none());
        let c = Confusion::default();
        assert_eq!((c.precision(), c.recall()), (None, None));
    }

    fn synthetic(n: usize, seed: u64, beta: [f64; N_FEATURES]) -> Vec<(RiskInputs, bool)> {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let inputs = RiskInputs {
                    as_of_day_ms: D0 + i as i64 * DAY_MS,
                    observed_days: 90,
                    precursors_ew: r.gen_range(0.0..20.0),
                    precursors_recent: r.gen_range(0..10),
                    precursor_trend_per_day: r.gen_range(-2.0..4.0),
                    faults_window: r.gen_range(0..6),
                    failures_history: r.gen_range(0..3),
                    days_since_failure: r.gen_bool(0.5).then(|| r.gen_range(0..90)),
                };
                let x = inputs.vector();
                let eta: f64 = x.iter().zip(&beta).map(|(a, b)| a * b).sum();
                let y = r.gen_bool(logistic(eta));
                (inputs, y)
            })
            .collect()
    }

    #[test]
    fn the_fit_recovers_a_known_logistic_model() {
        let beta = [-4.0, 1.2, 0.5, 0.3, 0.4, 1.0];
        let p = FailureParams {
            ridge: 0.0,
            ..FailureParams::default()
        };
        let ex = synthetic(20_000, 3, beta);
        let m = RiskModel::fit(&ex, &p).unwrap();
        for (k, (got, want)) in m.coefficients.iter().zip(&beta).enumerate() {
            let se = m.covariance[k][k].sqrt();
            assert!(
                (got - want).abs() < 4.0 * se,
                "{}: {got} vs {want} (se {se})",
                FEATURE_NAMES[k]
            );
        }
        // Deterministic.
        assert_eq!(m, RiskModel::fit(&ex, &p).unwrap());
        // Predictions: probability inside its interval, alarm at the threshold.
        for (i, _) in ex.iter().take(200) {
            let pr = m.predict(i);
            assert!(pr.interval.0 <= pr.probability && pr.probability <= pr.interval.1);
            assert!(pr.interval.0 >= 0.0 && pr.interval.1 <= 1.0);
            assert_eq!(pr.alarm, pr.probability >= m.threshold);
            assert_eq!(pr.inputs, *i);
        }
        // The threshold is the training cost optimum, and beats alarming never or always.
        let never = m.training_failures as f64 * 500.0;
        let always = (m.training_examples - m.training_failures) as f64 * 10.0;
        assert!(m.training_cost < never.min(always));
        // One class only: no model.
        let neg: Vec<_> = ex.iter().filter(|e| !e.1).copied().collect();
        assert_eq!(RiskModel::fit(&neg, &p), Err(RiskError::OneClass));
    }
}
