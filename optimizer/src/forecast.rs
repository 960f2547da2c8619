//! Zone demand forecasts (pure): seasonal naive baseline and additive Holt-Winters with
//! prediction intervals, and a rolling-origin backtest scored by MASE.
//!
//! Holt-Winters is our own code rather than `augurs` (augurs-ets): augurs' ETS crate brings
//! nalgebra, lstsq, rand, rand_distr, distrs and roots for what is here a few dozen lines, and
//! its automatic model selection would choose among model classes per series, while the
//! engine wants one fixed, replay-deterministic model (additive error, trend and season) whose
//! fitting procedure is fully specified below.
//!
//! Model: ETS(A,A,A) in error-correction form with season `m`:
//! `ŷ_t = ℓ + b + s_{t mod m}`, `e_t = y_t − ŷ_t`, `ℓ ← ℓ + b + α e_t`, `b ← b + β e_t`,
//! `s_{t mod m} ← s_{t mod m} + γ e_t`, with `0 ≤ α ≤ 1`, `0 ≤ β ≤ α`, `0 ≤ γ ≤ 1 − α`.
//! Initial state from the first two seasons (level = mean of season 1 centred on its middle,
//! trend = difference of the two seasonal means / m, seasonal indices = deviations from that
//! line), which is exact for a noise-free linear trend plus a zero-sum seasonal pattern.
//! Parameters: a deterministic grid over the unit cube (α, β/α, γ/(1−α)) followed by
//! Nelder-Mead from the best grid point, minimising the one-step-ahead SSE
//! ([`FitCriterion::OneStep`], the default) or the mean squared 1..H-step in-sample error
//! ([`FitCriterion::MultiStep`]). On the hourly Bikeshare series the one-step fit picks α ≈ 0.8
//! (the level chases each hour) and loses to seasonal naive at middle horizons; the multi-step
//! fit beats it at every horizon (figures in BENCHMARKS.md).
//! Counts may be modelled on a [`Transform`]ed scale (√ or log1p): additive seasonality there is
//! a seasonal amplitude growing with the level, as in demand over a year.
//! Intervals: analytic (not empirical backtest quantiles), from the residual variance `σ² = SSE/(n − 3)` and the standard horizon
//! variance of ETS(A,A,A) (Hyndman, Koehler, Ord & Snyder 2008, class 1):
//! `v_h = σ² (1 + Σ_{j=1}^{h−1} c_j²)`, `c_j = α + jβ + γ·[j mod m = 0]`, Gaussian quantiles.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// z-value of a central 80 % interval.
pub const Z80: f64 = 1.281_551_565_545;
/// z-value of a central 95 % interval.
pub const Z95: f64 = 1.959_963_984_540;

/// A variance-stabilising transform the model is fitted on (additive seasonality on the
/// transformed scale). Forecast quantiles are transformed back exactly (the transforms are
/// monotone), so the point forecast is the back-transformed median.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transform {
    /// The counts as they are.
    #[default]
    Identity,
    /// `ln(1 + y)`: seasonal amplitude proportional to the level (counts over a year).
    Log1p,
    /// `√y`: the variance-stabilising transform of Poisson counts.
    Sqrt,
}

impl Transform {
    /// To the model scale.
    pub fn forward(self, y: f64) -> f64 {
        match self {
            Self::Identity => y,
            Self::Log1p => y.max(0.0).ln_1p(),
            Self::Sqrt => y.max(0.0).sqrt(),
        }
    }

    /// Back to counts.
    pub fn inverse(self, x: f64) -> f64 {
        match self {
            Self::Identity => x,
            Self::Log1p => x.exp_m1(),
            Self::Sqrt => x.max(0.0) * x.max(0.0),
        }
    }
}

/// One forecast step with its prediction intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Steps ahead (1-based).
    pub horizon: usize,
    /// Point forecast in counts (the mean; the median when a transform is used).
    pub mean: f64,
    /// Centre of the Gaussian forecast distribution on the model scale.
    pub center: f64,
    /// Forecast standard deviation on the model scale.
    pub sd: f64,
    /// The model scale.
    pub transform: Transform,
    /// 80 % interval.
    pub lo80: f64,
    /// 80 % interval.
    pub hi80: f64,
    /// 95 % interval.
    pub lo95: f64,
    /// 95 % interval.
    pub hi95: f64,
}

impl Forecast {
    fn new(horizon: usize, center: f64, sd: f64, transform: Transform) -> Self {
        let q = |z: f64| transform.inverse(center + z * sd);
        Self {
            horizon,
            mean: q(0.0),
            center,
            sd,
            transform,
            lo80: q(-Z80),
            hi80: q(Z80),
            lo95: q(-Z95),
            hi95: q(Z95),
        }
    }

    /// The `p`-quantile of the forecast distribution, in counts.
    pub fn quantile(&self, p: f64) -> f64 {
        self.transform
            .inverse(self.center + normal_quantile(p) * self.sd)
    }

    /// The `p`-quantile of the Gaussian forecast distribution as an integral demand (rounded
    /// up, at least 0): the solver's demand input.
    pub fn demand_quantile(&self, p: f64) -> u32 {
        let q = self.quantile(p);
        if q.is_finite() && q > 0.0 {
            q.ceil().min(f64::from(u32::MAX)) as u32
        } else {
            0
        }
    }
}

/// Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Seasonal naive point forecasts: the value one season earlier (`horizon` steps).
pub fn seasonal_naive(history: &[f64], season: usize, horizon: usize) -> Result<Vec<f64>> {
    let n = history.len();
    if season == 0 || n < season {
        return Err(Error::Invalid(
            "seasonal naive needs at least one season".into(),
        ));
    }
    Ok((0..horizon)
        .map(|h| history[n - season + h % season])
        .collect())
}

/// Holt-Winters smoothing parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HwParams {
    /// Level smoothing α.
    pub alpha: f64,
    /// Trend smoothing β (≤ α).
    pub beta: f64,
    /// Seasonal smoothing γ (≤ 1 − α).
    pub gamma: f64,
}

impl HwParams {
    /// Maps the unit cube onto the admissible region.
    fn from_cube(u: [f64; 3]) -> Self {
        let c = |x: f64| x.clamp(0.0, 1.0);
        let alpha = c(u[0]);
        Self {
            alpha,
            beta: c(u[1]) * alpha,
            gamma: c(u[2]) * (1.0 - alpha),
        }
    }
}

/// A fitted additive Holt-Winters model (state after the last observation).
#[derive(Debug, Clone, PartialEq)]
pub struct HoltWinters {
    /// Season length.
    pub season: usize,
    /// Parameters.
    pub params: HwParams,
    /// One-step SSE over the history.
    pub sse: f64,
    /// Residual variance `SSE / (n − 3)` (model scale).
    pub sigma2: f64,
    /// The scale the model was fitted on.
    pub transform: Transform,
    level: f64,
    trend: f64,
    seasonals: Vec<f64>,
    n: usize,
}

/// What the parameter search minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FitCriterion {
    /// Sum of squared one-step-ahead errors over the whole history (the classic criterion).
    #[default]
    OneStep,
    /// Mean of the squared 1..=`horizon`-step-ahead in-sample errors from each of the last
    /// `window` origins (the "AMSE" criterion of ETS estimation): for forecasts used
    /// `horizon` steps ahead, it keeps the level from chasing hour-to-hour noise.
    MultiStep {
        /// Steps ahead (≤ season).
        horizon: usize,
        /// Last origins of the history counted.
        window: usize,
    },
}

/// Runs the filter; returns the final state, the one-step SSE and the criterion's value.
fn filter_scored(
    y: &[f64],
    m: usize,
    p: HwParams,
    crit: FitCriterion,
) -> (f64, f64, Vec<f64>, f64, f64) {
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (m1, m2) = (mean(&y[..m]), mean(&y[m..2 * m]));
    let trend0 = (m2 - m1) / m as f64;
    let mid = (m as f64 - 1.0) / 2.0;
    let mut seas: Vec<f64> = (0..m)
        .map(|i| y[i] - (m1 + trend0 * (i as f64 - mid)))
        .collect();
    let mut level = m1 - trend0 * (mid + 1.0);
    let mut trend = trend0;
    let mut sse = 0.0;
    let (h_max, first) = match crit {
        FitCriterion::OneStep => (0, usize::MAX),
        FitCriterion::MultiStep { horizon, window } => {
            let h = horizon.min(m);
            (h, y.len().saturating_sub(window + h))
        }
    };
    let (mut multi, mut count) = (0.0, 0usize);
    for (t, &obs) in y.iter().enumerate() {
        if t >= first {
            for h in 1..=h_max.min(y.len() - t) {
                let e = y[t + h - 1] - (level + h as f64 * trend + seas[(t + h - 1) % m]);
                multi += e * e;
                count += 1;
            }
        }
        let s = seas[t % m];
        let e = obs - (level + trend + s);
        sse += e * e;
        level += trend + p.alpha * e;
        trend += p.beta * e;
        seas[t % m] = s + p.gamma * e;
    }
    let score = if h_max == 0 {
        sse
    } else {
        multi / count.max(1) as f64
    };
    (level, trend, seas, sse, score)
}

fn filter(y: &[f64], m: usize, p: HwParams) -> (f64, f64, Vec<f64>, f64) {
    let (l, b, s, sse, _) = filter_scored(y, m, p, FitCriterion::OneStep);
    (l, b, s, sse)
}

fn nelder_mead(f: &dyn Fn([f64; 3]) -> f64, start: [f64; 3], iters: usize) -> [f64; 3] {
    let clamp = |x: [f64; 3]| x.map(|v| v.clamp(0.0, 1.0));
    let mut simplex: Vec<([f64; 3], f64)> = (0..4)
        .map(|i| {
            let mut x = start;
            if i > 0 {
                let d = if x[i - 1] > 0.5 { -0.1 } else { 0.1 };
                x[i - 1] += d;
            }
            let x = clamp(x);
            (x, f(x))
        })
        .collect();
    let lerp =
        |a: [f64; 3], b: [f64; 3], t: f64| clamp([0, 1, 2].map(|i| a[i] + t * (b[i] - a[i])));
    for _ in 0..iters {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        if (simplex[3].1 - simplex[0].1).abs() <= 1e-10 * (1.0 + simplex[0].1.abs()) {
            break;
        }
        let c = [0, 1, 2].map(|i| (simplex[0].0[i] + simplex[1].0[i] + simplex[2].0[i]) / 3.0);
        let worst = simplex[3];
        let r = lerp(c, worst.0, -1.0);
        let fr = f(r);
        if fr < simplex[0].1 {
            let e = lerp(c, worst.0, -2.0);
            let fe = f(e);
            simplex[3] = if fe < fr { (e, fe) } else { (r, fr) };
        } else if fr < simplex[2].1 {
            simplex[3] = (r, fr);
        } else {
            let k = lerp(c, worst.0, 0.5);
            let fk = f(k);
            if fk < worst.1 {
                simplex[3] = (k, fk);
            } else {
                let best = simplex[0].0;
                for v in simplex.iter_mut().skip(1) {
                    let x = lerp(best, v.0, 0.5);
                    *v = (x, f(x));
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex[0].0
}

impl HoltWinters {
    /// Runs the filter with given parameters on the counts as they are.
    pub fn with_params(y: &[f64], season: usize, params: HwParams) -> Result<Self> {
        Self::with_params_on(y, season, params, Transform::Identity)
    }

    fn with_params_on(
        y: &[f64],
        season: usize,
        params: HwParams,
        transform: Transform,
    ) -> Result<Self> {
        if season < 2 || y.len() < 2 * season || y.iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid(
                "Holt-Winters needs two full seasons of finite data".into(),
            ));
        }
        let (level, trend, seasonals, sse) = filter(y, season, params);
        let dof = (y.len() as f64 - 3.0).max(1.0);
        Ok(Self {
            season,
            params,
            sse,
            sigma2: sse / dof,
            transform,
            level,
            trend,
            seasonals,
            n: y.len(),
        })
    }

    /// Fits the parameters (grid, then Nelder-Mead on the one-step SSE) and runs the filter.
    pub fn fit(y: &[f64], season: usize) -> Result<Self> {
        Self::fit_on(y, season, Transform::Identity)
    }

    /// [`HoltWinters::fit`] on the `transform`ed series; forecasts come back in counts.
    pub fn fit_on(y: &[f64], season: usize, transform: Transform) -> Result<Self> {
        Self::fit_by(y, season, transform, FitCriterion::OneStep)
    }

    /// [`HoltWinters::fit_on`] with an explicit fitting criterion.
    pub fn fit_by(
        y: &[f64],
        season: usize,
        transform: Transform,
        criterion: FitCriterion,
    ) -> Result<Self> {
        let owned: Vec<f64> = y.iter().map(|&v| transform.forward(v)).collect();
        let y = owned.as_slice();
        Self::with_params(
            y,
            season,
            HwParams {
                alpha: 0.5,
                beta: 0.0,
                gamma: 0.0,
            },
        )?;
        let sse = |u: [f64; 3]| filter_scored(y, season, HwParams::from_cube(u), criterion).4;
        let mut best = ([0.5, 0.0, 0.0], f64::INFINITY);
        for a in [0.02, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9] {
            for b in [0.0, 0.02, 0.1, 0.3] {
                for g in [0.0, 0.05, 0.15, 0.3, 0.6] {
                    let v = sse([a, b, g]);
                    if v < best.1 {
                        best = ([a, b, g], v);
                    }
                }
            }
        }
        let u = nelder_mead(&sse, best.0, 200);
        let u = if sse(u) <= best.1 { u } else { best.0 };
        Self::with_params_on(y, season, HwParams::from_cube(u), transform)
    }

    /// Forecasts `horizon` steps with 80 % and 95 % intervals.
    pub fn forecast(&self, horizon: usize) -> Vec<Forecast> {
        let HwParams { alpha, beta, gamma } = self.params;
        let mut acc = 0.0;
        (1..=horizon)
            .map(|h| {
                if h > 1 {
                    let j = h - 1;
                    let seasonal = if j % self.season == 0 { gamma } else { 0.0 };
                    let c = alpha + j as f64 * beta + seasonal;
                    acc += c * c;
                }
                let mean = self.level
                    + h as f64 * self.trend
                    + self.seasonals[(self.n + h - 1) % self.season];
                Forecast::new(h, mean, (self.sigma2 * (1.0 + acc)).sqrt(), self.transform)
            })
            .collect()
    }
}

/// Rolling-origin backtest settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacktestConfig {
    /// Season length.
    pub season: usize,
    /// Steps forecast from each origin.
    pub horizon: usize,
    /// Observations before the first origin.
    pub min_train: usize,
    /// Distance between origins.
    pub step: usize,
    /// Scale Holt-Winters is fitted on.
    pub transform: Transform,
    /// Season of the seasonal naive baseline (and of the MASE scale).
    pub baseline_season: usize,
    /// Holt-Winters fitting criterion.
    pub criterion: FitCriterion,
}

/// Scores at one horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HorizonScore {
    /// Steps ahead.
    pub horizon: usize,
    /// MASE of Holt-Winters (scale: in-sample one-season naive MAE of each training window).
    pub mase_hw: f64,
    /// MASE of the seasonal naive forecast (same scale).
    pub mase_naive: f64,
    /// `mase_hw / mase_naive`: below 1 when Holt-Winters beats the baseline.
    pub relative: f64,
    /// Share of actuals inside the 80 % interval.
    pub coverage80: f64,
    /// Share of actuals inside the 95 % interval.
    pub coverage95: f64,
}

/// Backtest result.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    /// Forecast origins evaluated.
    pub origins: usize,
    /// Per-horizon scores, `horizon` 1..=H.
    pub horizons: Vec<HorizonScore>,
}

impl Backtest {
    /// Mean of `relative` over horizons.
    pub fn mean_relative(&self) -> f64 {
        self.horizons.iter().map(|h| h.relative).sum::<f64>() / self.horizons.len().max(1) as f64
    }
}

/// Rolling-origin backtest: refit at each origin, forecast `horizon` steps, score both models.
pub fn backtest(y: &[f64], cfg: BacktestConfig) -> Result<Backtest> {
    let BacktestConfig {
        season,
        horizon,
        min_train,
        step,
        transform,
        baseline_season,
        criterion,
    } = cfg;
    if baseline_season == 0 || min_train < baseline_season + 1 {
        return Err(Error::Invalid(
            "baseline season longer than the training window".into(),
        ));
    }
    if step == 0 || horizon == 0 || min_train < 2 * season || y.len() < min_train + horizon {
        return Err(Error::Invalid("backtest window too short".into()));
    }
    let mut hw_err = vec![0.0; horizon];
    let mut sn_err = vec![0.0; horizon];
    let mut in80 = vec![0usize; horizon];
    let mut in95 = vec![0usize; horizon];
    let mut origins = 0usize;
    let mut origin = min_train;
    while origin + horizon <= y.len() {
        let train = &y[..origin];
        let scale = train
            .windows(baseline_season + 1)
            .map(|w| (w[baseline_season] - w[0]).abs())
            .sum::<f64>()
            / (origin - baseline_season) as f64;
        let scale = if scale > 0.0 { scale } else { 1.0 };
        let model = HoltWinters::fit_by(train, season, transform, criterion)?;
        let fc = model.forecast(horizon);
        let sn = seasonal_naive(train, baseline_season, horizon)?;
        for h in 0..horizon {
            let actual = y[origin + h];
            hw_err[h] += (actual - fc[h].mean).abs() / scale;
            sn_err[h] += (actual - sn[h]).abs() / scale;
            in80[h] += usize::from(fc[h].lo80 <= actual && actual <= fc[h].hi80);
            in95[h] += usize::from(fc[h].lo95 <= actual && actual <= fc[h].hi95);
        }
        origins += 1;
        origin += step;
    }
    let o = origins as f64;
    let horizons = (0..horizon)
        .map(|h| {
            let (a, b) = (hw_err[h] / o, sn_err[h] / o);
            HorizonScore {
                horizon: h + 1,
                mase_hw: a,
                mase_naive: b,
                relative: if b > 0.0 { a / b } else { f64::INFINITY },
                coverage80: in80[h] as f64 / o,
                coverage95: in95[h] as f64 / o,
            }
        })
        .collect();
    Ok(Backtest { origins, horizons })
}

/// How [`forecast_counts`] forecast a series (by the history it had).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountMethod {
    /// Less than one season: the mean of the recent buckets, flat, Poisson spread (nothing
    /// seen: zero).
    RecentMean,
    /// One season: the same bucket one season back, with the spread of the seasonal
    /// differences seen (Poisson when there are none).
    SeasonalNaive,
    /// Two seasons or more: Holt-Winters with additive seasonality.
    HoltWinters,
}

impl CountMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CountMethod::RecentMean => "recent_mean",
            CountMethod::SeasonalNaive => "seasonal_naive",
            CountMethod::HoltWinters => "holt_winters",
        }
    }
}

/// One step of a count forecast.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CountStep {
    /// Point forecast (the mean; the median on a transformed scale), ≥ 0.
    pub mean: f64,
    /// Upper bound of the 80 % interval.
    pub upper80: f64,
    /// Upper bound of the 95 % interval.
    pub upper95: f64,
    /// The demand to plan for: the spec's quantile, rounded up (the solver's input).
    pub planned: u32,
}

/// A count forecast and, for Holt-Winters, the parameters it used (to reuse them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountForecast {
    pub method: CountMethod,
    pub steps: Vec<CountStep>,
    #[serde(skip)]
    pub params: Option<HwParams>,
}

/// What [`forecast_counts`] does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountSpec {
    /// Buckets in a season (a day of 15-minute buckets: 96).
    pub season: usize,
    pub horizon: usize,
    /// The quantile planned for (0.5: the median).
    pub quantile: f64,
    /// Holt-Winters' scale (`Sqrt` suits Poisson counts).
    pub transform: Transform,
    /// Holt-Winters fit: the multi-step criterion over the last `fit_window` origins.
    pub fit_window: usize,
    /// Reuse these Holt-Winters parameters instead of fitting (a caller refitting daily).
    pub params: Option<HwParams>,
    /// Buckets the recent mean reads (0: all).
    pub recent: usize,
}

impl CountSpec {
    /// Counts of `season` buckets a day planned at `quantile`: √ scale, fitted over the last
    /// season's origins, no reused parameters, the recent mean over all buckets.
    pub fn daily(season: usize, horizon: usize, quantile: f64) -> Self {
        CountSpec {
            season,
            horizon,
            quantile,
            transform: Transform::Sqrt,
            fit_window: season,
            params: None,
            recent: 0,
        }
    }
}

/// Forecasts a count series (one value per bucket, oldest first) `spec.horizon` buckets
/// ahead with the best method its length allows (see [`CountMethod`]), with intervals and the
/// integral demand at `spec.quantile`. Deterministic; never NaN. The one forecaster of zone
/// demand: the optimization run executor and the closed-loop simulator both plan with it.
pub fn forecast_counts(series: &[f64], spec: &CountSpec) -> CountForecast {
    let p = spec.quantile.clamp(0.001, 0.999);
    let (n, m, h) = (series.len(), spec.season, spec.horizon);
    let nonneg = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
    let gaussian = |mean: f64, sd: f64| {
        let q = |z: f64| nonneg(mean + z * sd);
        CountStep {
            mean: nonneg(mean),
            upper80: q(Z80),
            upper95: q(Z95),
            planned: ceil_count(q(normal_quantile(p))),
        }
    };
    if m >= 2 && n >= 2 * m && series.iter().all(|v| v.is_finite()) {
        let model = match spec.params {
            Some(params) => {
                let y: Vec<f64> = series.iter().map(|&v| spec.transform.forward(v)).collect();
                HoltWinters::with_params_on(&y, m, params, spec.transform)
            }
            None => HoltWinters::fit_by(
                series,
                m,
                spec.transform,
                FitCriterion::MultiStep {
                    horizon: h.clamp(1, m),
                    window: spec.fit_window.max(1),
                },
            ),
        };
        if let Ok(model) = model {
            let steps: Vec<CountStep> = model
                .forecast(h)
                .iter()
                .map(|f| CountStep {
                    mean: nonneg(f.mean),
                    upper80: nonneg(f.hi80),
                    upper95: nonneg(f.hi95),
                    planned: f.demand_quantile(p),
                })
                .collect();
            return CountForecast {
                method: CountMethod::HoltWinters,
                steps,
                params: Some(model.params),
            };
        }
    }
    if m >= 1 && n >= m {
        let diffs: Vec<f64> = (m..n).map(|t| series[t] - series[t - m]).collect();
        let sd = (!diffs.is_empty())
            .then(|| (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt());
        let steps = (0..h)
            .map(|j| {
                let mean = series[n - m + j % m];
                gaussian(mean, sd.unwrap_or(nonneg(mean).sqrt()))
            })
            .collect();
        return CountForecast {
            method: CountMethod::SeasonalNaive,
            steps,
            params: None,
        };
    }
    let recent = if spec.recent == 0 {
        n
    } else {
        spec.recent.min(n)
    };
    let mean = if recent == 0 {
        0.0
    } else {
        series[n - recent..].iter().sum::<f64>() / recent as f64
    };
    CountForecast {
        method: CountMethod::RecentMean,
        steps: vec![gaussian(mean, nonneg(mean).sqrt()); h],
        params: None,
    }
}

fn ceil_count(v: f64) -> u32 {
    if v.is_finite() && v > 0.0 {
        v.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
        let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen_range(0.0..1.0));
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    const PATTERN: [f64; 6] = [3.0, -1.0, 4.0, -2.0, 0.5, -4.5];

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        let y: Vec<f64> = (0..20).map(|t| PATTERN[t % 6]).collect();
        let f = seasonal_naive(&y, 6, 9).unwrap();
        let want: Vec<f64> = (20..29).map(|t| PATTERN[t % 6]).collect();
        assert_eq!(f, want);
    }

    #[test]
    fn holt_winters_is_exact_on_a_noise_free_trend_and_season() {
        let y: Vec<f64> = (0..48)
            .map(|t| 10.0 + 0.5 * t as f64 + PATTERN[t % 6])
            .collect();
        for params in [
            HwParams {
                alpha: 0.3,
                beta: 0.1,
                gamma: 0.2,
            },
            HwParams {
                alpha: 0.9,
                beta: 0.0,
                gamma: 0.05,
            },
        ] {
            let m = HoltWinters::with_params(&y, 6, params).unwrap();
            assert!(m.sse < 1e-18, "{}", m.sse);
            for f in m.forecast(13) {
                let t = 47 + f.horizon;
                let want = 10.0 + 0.5 * t as f64 + PATTERN[t % 6];
                assert!(
                    (f.mean - want).abs() < 1e-9,
                    "h {} {} vs {want}",
                    f.horizon,
                    f.mean
                );
            }
        }
        let fitted = HoltWinters::fit(&y, 6).unwrap();
        assert!(fitted.sse < 1e-18);
    }

    #[test]
    fn horizon_variance_follows_the_ets_formula() {
        let y: Vec<f64> = (0..30)
            .map(|t| 5.0 + PATTERN[t % 6] + (t % 7) as f64 * 0.1)
            .collect();
        let p = HwParams {
            alpha: 0.4,
            beta: 0.1,
            gamma: 0.3,
        };
        let m = HoltWinters::with_params(&y, 6, p).unwrap();
        let f = m.forecast(8);
        assert!((f[0].sd * f[0].sd - m.sigma2).abs() < 1e-12);
        // h = 8: j = 1..7; c_j = α + jβ (+ γ when j = 6).
        let s: f64 = (1..8)
            .map(|j| {
                let c = 0.4 + 0.1 * j as f64 + if j == 6 { 0.3 } else { 0.0 };
                c * c
            })
            .sum();
        assert!((f[7].sd * f[7].sd - m.sigma2 * (1.0 + s)).abs() < 1e-9);
        assert!((f[7].hi95 - f[7].mean - Z95 * f[7].sd).abs() < 1e-12);
    }

    #[test]
    fn noisy_season_beats_naive_and_intervals_cover() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let y: Vec<f64> = (0..24 * 40)
            .map(|t| 20.0 + 3.0 * PATTERN[t % 6] + gaussian(&mut rng))
            .collect();
        let bt = backtest(
            &y,
            BacktestConfig {
                season: 6,
                horizon: 6,
                min_train: 24 * 20,
                step: 1,
                transform: Transform::Identity,
                baseline_season: 6,
                criterion: FitCriterion::OneStep,
            },
        )
        .unwrap();
        assert!(bt.origins > 400);
        for h in &bt.horizons {
            // White noise: the naive error has variance 2σ², Holt-Winters ≈ σ²: ratio ≈ 0.71.
            assert!(
                (0.6..0.8).contains(&h.relative),
                "h {}: {}",
                h.horizon,
                h.relative
            );
            assert!(
                (0.92..=0.98).contains(&h.coverage95),
                "h {}: {}",
                h.horizon,
                h.coverage95
            );
            assert!(
                (0.75..=0.86).contains(&h.coverage80),
                "h {}: {}",
                h.horizon,
                h.coverage80
            );
        }
    }

    #[test]
    fn normal_quantiles_and_demand() {
        assert!((normal_quantile(0.975) - Z95).abs() < 1e-8);
        assert!((normal_quantile(0.9) - Z80).abs() < 1e-8);
        assert!((normal_quantile(0.01) + 2.326_347_874).abs() < 1e-8);
        assert_eq!(normal_quantile(0.5), 0.0);
        let f = Forecast::new(1, 4.2, 1.0, Transform::Identity);
        assert_eq!(f.demand_quantile(0.5), 5);
        assert_eq!(f.demand_quantile(0.9), 6);
        assert_eq!(
            Forecast::new(1, -3.0, 1.0, Transform::Identity).demand_quantile(0.5),
            0
        );
    }

    fn spec(season: usize, horizon: usize, quantile: f64) -> CountSpec {
        CountSpec::daily(season, horizon, quantile)
    }

    fn daily(days: usize, season: usize) -> Vec<f64> {
        (0..days * season)
            .map(|t| {
                let phase = (t % season) as f64 / season as f64;
                (10.0 + 8.0 * (std::f64::consts::TAU * phase).sin()).round()
            })
            .collect()
    }

    #[test]
    fn count_method_follows_the_history_available() {
        let m = 24;
        let hw = forecast_counts(&daily(3, m), &spec(m, 4, 0.8));
        assert_eq!(hw.method, CountMethod::HoltWinters);
        assert!(hw.params.is_some());
        // Reusing the parameters gives the same forecast without fitting.
        let again = forecast_counts(
            &daily(3, m),
            &CountSpec {
                params: hw.params,
                ..spec(m, 4, 0.8)
            },
        );
        assert_eq!(again.steps, hw.steps);
        assert_eq!(
            forecast_counts(&daily(1, m), &spec(m, 4, 0.8)).method,
            CountMethod::SeasonalNaive
        );
        let short = forecast_counts(&[4.0, 6.0], &spec(m, 3, 0.5));
        assert_eq!(short.method, CountMethod::RecentMean);
        assert_eq!(short.steps.len(), 3);
        assert_eq!(short.steps[0].mean, 5.0);
        let recent = forecast_counts(
            &[0.0, 0.0, 8.0],
            &CountSpec {
                recent: 1,
                ..spec(m, 1, 0.5)
            },
        );
        assert_eq!(recent.steps[0].mean, 8.0);
        assert_eq!(forecast_counts(&[], &spec(m, 2, 0.9)).steps[0].planned, 0);
    }

    #[test]
    fn a_clean_daily_pattern_is_forecast_and_quantiles_are_ordered() {
        let m = 24;
        let y = daily(4, m);
        let f = forecast_counts(&y, &spec(m, 6, 0.8));
        assert_eq!(f, forecast_counts(&y, &spec(m, 6, 0.8)), "deterministic");
        for (h, s) in f.steps.iter().enumerate() {
            let want = y[y.len() - m + h];
            assert!((s.mean - want).abs() < 1.0, "h {h}: {} vs {want}", s.mean);
            assert!(s.mean <= s.upper80 + 1e-9 && s.upper80 <= s.upper95 + 1e-9);
            assert!(f64::from(s.planned) >= s.mean.floor());
        }
        // Seasonal naive repeats the last season's bucket (no noise: no spread).
        let n = forecast_counts(&y[..m], &spec(m, 3, 0.95));
        assert_eq!(n.method, CountMethod::SeasonalNaive);
        assert_eq!(n.steps[2].mean, y[2]);
    }
}
