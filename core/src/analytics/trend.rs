//! Trends of a metric over time: ordinary least squares on `(t, y)` points.
//!
//! Definitions, with `n` points, `t̄`, `ȳ` the means, `Sxx = Σ(t−t̄)²`, `Sxy = Σ(t−t̄)(y−ȳ)`,
//! `Syy = Σ(y−ȳ)²`:
//! - `slope = Sxy / Sxx`, `intercept = ȳ − slope·t̄`, fitted `ŷ(t) = intercept + slope·t`;
//! - `SSE = Σ(y − ŷ)²`, `r² = 1 − SSE/Syy` (1 when `Syy = 0`: a flat series is fitted exactly),
//!   residual standard error `s = √(SSE/(n−2))`, `se(slope) = s/√Sxx`, `t = slope/se(slope)`;
//! - **significance**: two-sided p-value of `t` under Student's t with `n − 2` degrees of
//!   freedom; the slope is significant when `p < alpha` (equivalently `|t| > t_crit`, the
//!   `1 − alpha/2` quantile). An exact fit (`se = 0`) is significant iff its slope is non-zero;
//! - **direction**: `Stable` unless significant; then `Improving` when the slope's sign agrees
//!   with the metric's `higher_is_better` flag, else `Declining`;
//! - **change %** = `100 · (ŷ(t_last) − ŷ(t_first)) / |ŷ(t_first)|`, `None` when
//!   `|ŷ(t_first)| < 1e-12`;
//! - **forecast** `h` steps ahead, a step being the mean spacing `(t_last − t_first)/(n − 1)`:
//!   `ŷ(t_f)` with the prediction interval `ŷ ± q · s · √(1 + 1/n + (t_f − t̄)²/Sxx)`, `q` the
//!   Student-t quantile `1 − (1 − confidence)/2` with `n − 2` degrees of freedom (not the
//!   normal quantile: windows are few, and the t quantile widens the interval accordingly).
//!
//! Fewer than 3 points, a non-finite input or all points at the same time are errors; no
//! result is ever NaN or infinite.

use serde::{Deserialize, Serialize};

/// Why no trend could be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrendError {
    #[error("a trend needs at least 3 points, got {n}")]
    TooFewPoints { n: usize },
    #[error("point {index} is not finite")]
    NonFinite { index: usize },
    #[error("all points have the same time")]
    ZeroVarianceT,
    #[error("invalid trend parameter: {0}")]
    InvalidParams(&'static str),
}

/// An ordinary least-squares line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub n: usize,
    pub slope: f64,
    pub intercept: f64,
    pub r2: f64,
    /// Residual standard error `s`.
    pub residual_se: f64,
    pub slope_se: f64,
    /// `slope / slope_se`; `None` for an exact fit (`slope_se = 0`).
    pub t_stat: Option<f64>,
    pub t_mean: f64,
    pub sxx: f64,
    pub t_first: f64,
    pub t_last: f64,
}

impl Fit {
    pub fn predict(&self, t: f64) -> f64 {
        self.intercept + self.slope * t
    }

    /// Degrees of freedom of the residuals.
    pub fn df(&self) -> f64 {
        (self.n - 2) as f64
    }

    /// Two-sided p-value of the slope (1 for an exact flat fit, 0 for an exact sloped one).
    pub fn p_value(&self) -> f64 {
        match self.t_stat {
            Some(t) => student_t_two_sided_p(t, self.df()),
            None if self.slope == 0.0 => 1.0,
            None => 0.0,
        }
    }

    /// Prediction interval for a new observation at `t` (see the module docs).
    pub fn prediction_interval(&self, t: f64, confidence: f64) -> Option<(f64, f64)> {
        let valid = confidence > 0.0 && confidence < 1.0 && t.is_finite();
        if !valid {
            return None;
        }
        let q = student_t_quantile(1.0 - (1.0 - confidence) / 2.0, self.df())?;
        let n = self.n as f64;
        let half =
            q * self.residual_se * (1.0 + 1.0 / n + (t - self.t_mean).powi(2) / self.sxx).sqrt();
        let y = self.predict(t);
        (half.is_finite() && y.is_finite()).then_some((y - half, y + half))
    }
}

/// Least-squares fit of `points` `(t, y)` (any order).
pub fn fit(points: &[(f64, f64)]) -> Result<Fit, TrendError> {
    let n = points.len();
    if n < 3 {
        return Err(TrendError::TooFewPoints { n });
    }
    if let Some(index) = points
        .iter()
        .position(|(t, y)| !t.is_finite() || !y.is_finite())
    {
        return Err(TrendError::NonFinite { index });
    }
    let nf = n as f64;
    let t_mean = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let y_mean = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for &(t, y) in points {
        let (dt, dy) = (t - t_mean, y - y_mean);
        sxx += dt * dt;
        sxy += dt * dy;
        syy += dy * dy;
    }
    if sxx == 0.0 {
        return Err(TrendError::ZeroVarianceT);
    }
    let slope = sxy / sxx;
    let intercept = y_mean - slope * t_mean;
    let sse: f64 = points
        .iter()
        .map(|&(t, y)| ((y - y_mean) - slope * (t - t_mean)).powi(2))
        .sum();
    let r2 = if syy == 0.0 {
        1.0
    } else {
        (1.0 - sse / syy).clamp(0.0, 1.0)
    };
    let residual_se = (sse / (nf - 2.0)).sqrt();
    let slope_se = residual_se / sxx.sqrt();
    let t_stat = (slope_se > 0.0).then(|| slope / slope_se);
    let t_first = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let t_last = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let all = [
        slope,
        intercept,
        r2,
        residual_se,
        slope_se,
        t_stat.unwrap_or(0.0),
        t_mean,
        sxx,
    ];
    if all.iter().any(|x| !x.is_finite()) {
        // Only reachable with values near f64::MAX, whose squares overflow.
        return Err(TrendError::NonFinite { index: 0 });
    }
    Ok(Fit {
        n,
        slope,
        intercept,
        r2,
        residual_se,
        slope_se,
        t_stat,
        t_mean,
        sxx,
        t_first,
        t_last,
    })
}

/// Whether a metric's trend is good, neutral or bad for the fleet (not up or down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TrendDirection))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Improving,
    Stable,
    Declining,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Improving => "improving",
            Direction::Stable => "stable",
            Direction::Declining => "declining",
        }
    }
}

/// Per-metric trend settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrendParams {
    /// Whether a rising metric is good (utilization, score) or bad (kWh/km, faults).
    pub higher_is_better: bool,
    /// Significance level of the slope test, in (0, 1).
    pub alpha: f64,
    /// Forecast this many mean spacings after the last point; 0 = no forecast.
    pub horizon_steps: u32,
    /// Coverage of the forecast's prediction interval, in (0, 1).
    pub confidence: f64,
}

impl Default for TrendParams {
    fn default() -> Self {
        TrendParams {
            higher_is_better: true,
            alpha: 0.05,
            horizon_steps: 5,
            confidence: 0.95,
        }
    }
}

/// A point forecast with its prediction interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub t: f64,
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
    pub confidence: f64,
}

/// Everything the performance pipeline reports about a metric's trend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub fit: Fit,
    pub p_value: f64,
    pub significant: bool,
    pub direction: Direction,
    pub change_pct: Option<f64>,
    pub forecast: Option<Forecast>,
}

/// Fits `points` and derives direction, change % and forecast (see the module docs).
pub fn analyze(points: &[(f64, f64)], params: &TrendParams) -> Result<Trend, TrendError> {
    if !(params.alpha > 0.0 && params.alpha < 1.0) {
        return Err(TrendError::InvalidParams("alpha must be in (0, 1)"));
    }
    if !(params.confidence > 0.0 && params.confidence < 1.0) {
        return Err(TrendError::InvalidParams("confidence must be in (0, 1)"));
    }
    let fit = fit(points)?;
    let p_value = fit.p_value();
    let significant = p_value < params.alpha;
    let direction = if !significant || fit.slope == 0.0 {
        Direction::Stable
    } else if (fit.slope > 0.0) == params.higher_is_better {
        Direction::Improving
    } else {
        Direction::Declining
    };
    let start = fit.predict(fit.t_first);
    let end = fit.predict(fit.t_last);
    let change_pct = (start.abs() >= 1e-12)
        .then(|| 100.0 * (end - start) / start.abs())
        .filter(|x| x.is_finite());
    let forecast = if params.horizon_steps == 0 {
        None
    } else {
        let step = (fit.t_last - fit.t_first) / (fit.n - 1) as f64;
        let t = fit.t_last + params.horizon_steps as f64 * step;
        fit.prediction_interval(t, params.confidence)
            .map(|(lower, upper)| Forecast {
                t,
                value: fit.predict(t),
                lower,
                upper,
                confidence: params.confidence,
            })
    };
    Ok(Trend {
        fit,
        p_value,
        significant,
        direction,
        change_pct,
        forecast,
    })
}

/// The points of the sliding horizon ending at `end` (the newest window, whether or not the
/// metric is defined there): those with `end − horizon < t ≤ end` (`points` sorted by `t`).
/// This is the performance pipeline's "last N windows".
pub fn sliding(points: &[(f64, f64)], end: f64, horizon: f64) -> &[(f64, f64)] {
    let from = points.partition_point(|p| p.0 <= end - horizon);
    let to = points.partition_point(|p| p.0 <= end);
    &points[from..to.max(from)]
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error about 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// Regularised incomplete beta `I_x(a, b)`.
fn reg_inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// `P(|T| ≥ |t|)` for Student's t with `df` degrees of freedom.
pub fn student_t_two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return 1.0; // no evidence
    }
    if t.is_infinite() {
        return 0.0;
    }
    reg_inc_beta(df / 2.0, 0.5, df / (df + t * t)).clamp(0.0, 1.0)
}

/// The quantile `q` with `P(T ≤ q) = p` for Student's t with `df > 0` degrees of freedom;
/// `None` outside `0 < p < 1`. Bisection on the CDF to full double precision.
pub fn student_t_quantile(p: f64, df: f64) -> Option<f64> {
    let valid = p > 0.0 && p < 1.0 && df > 0.0 && df.is_finite();
    if !valid {
        return None;
    }
    if p == 0.5 {
        return Some(0.0);
    }
    let upper = p > 0.5;
    // Two-sided tail mass beyond |q|.
    let tail = if upper { 2.0 * (1.0 - p) } else { 2.0 * p };
    let mut hi = 1.0;
    while student_t_two_sided_p(hi, df) > tail {
        hi *= 2.0;
        if hi > 1e300 {
            return None;
        }
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if student_t_two_sided_p(mid, df) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let q = 0.5 * (lo + hi);
    Some(if upper { q } else { -q })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn exact_line() {
        let pts: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 3.0 + 2.0 * i as f64)).collect();
        let f = fit(&pts).unwrap();
        assert!(close(f.slope, 2.0, 1e-12) && close(f.intercept, 3.0, 1e-12));
        assert_eq!(f.r2, 1.0);
        assert_eq!(f.t_stat, None);
        assert_eq!(f.p_value(), 0.0);
        let t = analyze(&pts, &TrendParams::default()).unwrap();
        assert_eq!(t.direction, Direction::Improving);
        assert!(close(t.change_pct.unwrap(), 100.0 * 8.0 / 3.0, 1e-12));
        let fc = t.forecast.unwrap();
        assert!(close(fc.t, 9.0, 1e-12) && close(fc.value, 21.0, 1e-12));
        assert_eq!(
            (fc.lower, fc.upper),
            (fc.value, fc.value),
            "no residuals, no spread"
        );
        let lower_better = TrendParams {
            higher_is_better: false,
            ..TrendParams::default()
        };
        assert_eq!(
            analyze(&pts, &lower_better).unwrap().direction,
            Direction::Declining
        );
    }

    #[test]
    fn textbook_regression() {
        // Worked by hand: t̄ = 3, ȳ = 4, Sxx = 10, Sxy = 6, Syy = 6: slope 0.6, intercept 2.2,
        // SSE = Syy − Sxy²/Sxx = 2.4, r² = 0.6, s² = 0.8, se = √0.08, t = 2.1213 on 3 df.
        let pts = [(1.0, 2.0), (2.0, 4.0), (3.0, 5.0), (4.0, 4.0), (5.0, 5.0)];
        let f = fit(&pts).unwrap();
        assert!(close(f.slope, 0.6, 1e-12));
        assert!(close(f.intercept, 2.2, 1e-12));
        assert!(close(f.r2, 0.6, 1e-12));
        assert!(close(f.slope_se, 0.08f64.sqrt(), 1e-12));
        assert!(close(f.t_stat.unwrap(), 0.6 / 0.08f64.sqrt(), 1e-12));
        // p ≈ 0.124027 (Simpson integration of the t density) → stable at 5 %, not at 15 %.
        assert!(
            close(f.p_value(), 0.124_027_062_657_550_6, 1e-9),
            "{}",
            f.p_value()
        );
        let t = analyze(&pts, &TrendParams::default()).unwrap();
        assert!(!t.significant);
        assert_eq!(t.direction, Direction::Stable);
        let loose = TrendParams {
            alpha: 0.15,
            ..TrendParams::default()
        };
        assert_eq!(
            analyze(&pts, &loose).unwrap().direction,
            Direction::Improving
        );
        // Interval at t = 3 (the mean): ŷ = 4 ± t(0.975, 3)·s·√(1 + 1/5).
        let (lo, hi) = f.prediction_interval(3.0, 0.95).unwrap();
        let half = 3.182_446_305_284_263 * 0.8f64.sqrt() * 1.2f64.sqrt();
        assert!(
            close(hi - 4.0, half, 1e-9) && close(4.0 - lo, half, 1e-9),
            "{lo} {hi}"
        );
    }

    #[test]
    fn student_t_matches_tables() {
        // Closed forms: df 1 is Cauchy, df 2 has q = (2p−1)·√(2/(4p(1−p))).
        for p in [0.6, 0.9, 0.975, 0.995] {
            let cauchy = (std::f64::consts::PI * (p - 0.5)).tan();
            assert!(
                close(student_t_quantile(p, 1.0).unwrap(), cauchy, 1e-10),
                "{p}"
            );
            let df2 = (2.0 * p - 1.0) * (2.0 / (4.0 * p * (1.0 - p))).sqrt();
            assert!(
                close(student_t_quantile(p, 2.0).unwrap(), df2, 1e-10),
                "{p}"
            );
        }
        assert!(close(
            student_t_quantile(0.975, 10.0).unwrap(),
            2.228_138_851_986_274,
            1e-10
        ));
        assert!(close(
            student_t_quantile(0.975, 28.0).unwrap(),
            2.048_407_141_795_244,
            1e-10
        ));
        assert!(close(
            student_t_quantile(0.025, 28.0).unwrap(),
            -2.048_407_141_795_244,
            1e-10
        ));
        assert_eq!(student_t_quantile(0.5, 4.0), Some(0.0));
        assert_eq!(student_t_quantile(1.0, 4.0), None);
        assert_eq!(student_t_quantile(0.9, 0.0), None);
        assert!(close(
            student_t_two_sided_p(2.228_138_851_986_274, 10.0),
            0.05,
            1e-10
        ));
        assert_eq!(student_t_two_sided_p(0.0, 5.0), 1.0);
        assert_eq!(student_t_two_sided_p(f64::INFINITY, 5.0), 0.0);
        // Large df approaches the normal quantile.
        assert!(close(
            student_t_quantile(0.975, 1e7).unwrap(),
            1.959_964,
            1e-6
        ));
    }

    #[test]
    fn degenerate_inputs_are_errors_not_nan() {
        assert_eq!(fit(&[]).unwrap_err(), TrendError::TooFewPoints { n: 0 });
        assert_eq!(
            fit(&[(0.0, 1.0), (1.0, 2.0)]).unwrap_err(),
            TrendError::TooFewPoints { n: 2 }
        );
        assert_eq!(
            fit(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]).unwrap_err(),
            TrendError::ZeroVarianceT
        );
        assert_eq!(
            fit(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)]).unwrap_err(),
            TrendError::NonFinite { index: 1 }
        );
        assert_eq!(
            fit(&[(0.0, 1.0), (f64::INFINITY, 1.0), (2.0, 3.0)]).unwrap_err(),
            TrendError::NonFinite { index: 1 }
        );
        let flat = [(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)];
        let t = analyze(&flat, &TrendParams::default()).unwrap();
        assert_eq!((t.fit.slope, t.fit.r2, t.p_value), (0.0, 1.0, 1.0));
        assert_eq!(t.direction, Direction::Stable);
        assert_eq!(t.change_pct, Some(0.0));
        let zero_start = [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)];
        assert_eq!(
            analyze(&zero_start, &TrendParams::default())
                .unwrap()
                .change_pct,
            None
        );
        let bad = TrendParams {
            alpha: 0.0,
            ..TrendParams::default()
        };
        assert!(matches!(
            analyze(&flat, &bad),
            Err(TrendError::InvalidParams(_))
        ));
        let bad = TrendParams {
            confidence: 1.0,
            ..TrendParams::default()
        };
        assert!(matches!(
            analyze(&flat, &bad),
            Err(TrendError::InvalidParams(_))
        ));
        let no_forecast = TrendParams {
            horizon_steps: 0,
            ..TrendParams::default()
        };
        assert_eq!(analyze(&flat, &no_forecast).unwrap().forecast, None);
    }

    #[test]
    fn large_epoch_times_keep_precision() {
        // Epoch milliseconds: centring keeps the slope exact where naive sums would not.
        let t0 = 1.7e12;
        let pts: Vec<(f64, f64)> = (0..30)
            .map(|i| (t0 + 60_000.0 * i as f64, 0.5 + 1e-7 * i as f64))
            .collect();
        let f = fit(&pts).unwrap();
        assert!(close(f.slope, 1e-7 / 60_000.0, 1e-6), "{}", f.slope);
    }

    #[test]
    fn sliding_horizon_keeps_the_tail() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64)).collect();
        assert_eq!(sliding(&pts, 9.0, 3.0), &pts[7..]);
        assert_eq!(sliding(&pts, 9.0, 100.0), &pts[..]);
        // The newest window has no value: the horizon still ends there.
        assert_eq!(sliding(&pts, 10.0, 3.0), &pts[8..]);
        assert_eq!(sliding(&pts, 5.0, 3.0), &pts[3..6]);
        assert!(sliding(&[], 3.0, 3.0).is_empty());
    }

    #[test]
    fn declining_significant_trend() {
        let ys = [10.0, 9.1, 8.3, 6.8, 6.1, 5.2, 3.9, 3.1];
        let pts: Vec<(f64, f64)> = ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect();
        let t = analyze(&pts, &TrendParams::default()).unwrap();
        assert!(t.significant && t.p_value < 1e-6);
        assert_eq!(t.direction, Direction::Declining);
        assert!(t.change_pct.unwrap() < -50.0);
        let fc = t.forecast.unwrap();
        assert!(fc.lower < fc.value && fc.value < fc.upper);
        let bad_for_cost = TrendParams {
            higher_is_better: false,
            ..TrendParams::default()
        };
        assert_eq!(
            analyze(&pts, &bad_for_cost).unwrap().direction,
            Direction::Improving
        );
    }
}
