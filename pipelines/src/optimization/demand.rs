//! The demand a run plans for when its parameters give none: each zone's requests and
//! arrivals per bucket from the zone demand history the missions pipeline folds, forecast by
//! [`forecast_counts`] (Holt-Winters with a daily season on the √ scale once two days of
//! history exist, fitted on the 1..=horizon-step error of the last day's origins; seasonal
//! naive with one day; the mean of what there is before that). Requests are planned at the
//! run's quantile, arrivals (vehicles ending missions in the zone) at the median. Pure and
//! deterministic: the same history gives the same numbers.

use std::collections::BTreeMap;

use atlasmesh_optimizer::forecast::{forecast_counts, CountForecast, CountSpec};

/// Per zone id: the requests and the arrivals forecasts.
pub type Forecasts = BTreeMap<String, (CountForecast, CountForecast)>;

/// Forecasts requests (at quantile `p`) and arrivals (at the median) of every zone.
pub fn forecast_zones(
    requests: &BTreeMap<String, Vec<f64>>,
    arrivals: &BTreeMap<String, Vec<f64>>,
    season: usize,
    horizon: usize,
    p: f64,
) -> Forecasts {
    requests
        .iter()
        .map(|(zone, r)| {
            let a = arrivals.get(zone).map_or(&[][..], Vec::as_slice);
            (
                zone.clone(),
                (
                    forecast_counts(r, &CountSpec::daily(season, horizon, p)),
                    forecast_counts(a, &CountSpec::daily(season, horizon, 0.5)),
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlasmesh_optimizer::forecast::CountMethod;

    #[test]
    fn requests_at_the_quantile_arrivals_at_the_median() {
        let season = 24;
        let y: Vec<f64> = (0..3 * season).map(|t| 4.0 + (t % 3) as f64).collect();
        let requests = BTreeMap::from([("a".to_string(), y.clone())]);
        let arrivals = BTreeMap::from([("a".to_string(), y[..season].to_vec())]);
        let f = forecast_zones(&requests, &arrivals, season, 4, 0.95);
        let (r, a) = &f["a"];
        assert_eq!(r.method, CountMethod::HoltWinters);
        assert_eq!(a.method, CountMethod::SeasonalNaive);
        assert!(r.steps.iter().all(|s| f64::from(s.planned) >= s.mean));
        // A zone without arrivals history plans none.
        let none = forecast_zones(&requests, &BTreeMap::new(), season, 2, 0.8);
        assert!(none["a"].1.steps.iter().all(|s| s.planned == 0));
    }
}
