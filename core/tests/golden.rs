//! Golden-file test of the analytics kernels: a fixed scenario (`golden/scenario.json`: 3
//! fleets × 30 closed fleet windows, score parameters, trend settings, alert rules) must give
//! exactly the scores, trends and alert timeline in `golden/expected.json`, which
//! `golden/compute.py` computed independently of this code (Python stdlib, exact rational
//! regression sums, Student t by numerical integration). Floats compare within 1e-9
//! (absolute + relative), times, kinds, ranks and pager messages exactly.
//!
//! To change the scenario: edit scenario.json, run `python3 core/tests/golden/compute.py`,
//! review the diff of expected.json.

use std::collections::BTreeMap;
use std::path::PathBuf;

use atlasmesh_core::analytics::alert::{pager_message, step, AlertRule, AlertState, Transition, TransitionKind};
use atlasmesh_core::analytics::score::{daily_score, percent_of_benchmark, rank_among, score, ScoreParams};
use atlasmesh_core::analytics::trend::{analyze, sliding, Trend, TrendParams};
use atlasmesh_core::window::Counters;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct TrendMetric {
    name: String,
    higher_is_better: bool,
}

#[derive(Deserialize)]
struct TrendSettings {
    alpha: f64,
    confidence: f64,
    horizon_steps: u32,
    horizons_windows: Vec<u32>,
    metrics: Vec<TrendMetric>,
}

#[derive(Deserialize)]
struct Scenario {
    t0_ms: i64,
    window_ms: i64,
    score_params: ScoreParams,
    benchmark_total: f64,
    trend: TrendSettings,
    rules: Vec<AlertRule>,
    fleets: BTreeMap<String, Vec<Counters>>,
}

fn load(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn scenario() -> (Scenario, Value) {
    let sc: Scenario = serde_json::from_str(&load("scenario.json")).expect("scenario.json");
    let expected: Value = serde_json::from_str(&load("expected.json")).expect("expected.json");
    (sc, expected)
}

#[track_caller]
fn assert_close(got: Option<f64>, want: &Value, what: &str) {
    match (got, want.as_f64()) {
        (None, None) if want.is_null() => {}
        (Some(g), Some(w)) => {
            assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()), "{what}: got {g}, expected {w} (diff {})", (g - w).abs())
        }
        _ => panic!("{what}: got {got:?}, expected {want}"),
    }
}

fn metric(c: &Counters, name: &str, p: &ScoreParams) -> Option<f64> {
    match name {
        "utilization" => c.utilization(),
        "kwh_per_km" => c.kwh_per_km(),
        "score" => score(c, p).unwrap().total,
        other => panic!("unknown metric {other}"),
    }
}

fn assert_score(got: &atlasmesh_core::analytics::score::Score, want: &Value, what: &str) {
    assert_close(got.total, &want["total"], &format!("{what} total"));
    let c = &got.components;
    for (name, v) in [
        ("efficiency", c.efficiency),
        ("utilization", c.utilization),
        ("reliability", c.reliability),
        ("safety", c.safety),
        ("cost", c.cost),
    ] {
        assert_close(v, &want["components"][name], &format!("{what} {name}"));
    }
}

#[test]
fn window_and_daily_scores_benchmark_and_rank() {
    let (sc, exp) = scenario();
    let p = &sc.score_params;
    let mut checked = 0;
    for (fleet, rows) in &sc.fleets {
        let want = exp["window_scores"][fleet].as_array().expect("fleet in expected");
        assert_eq!(want.len(), rows.len());
        for (i, (c, w)) in rows.iter().zip(want).enumerate() {
            assert_eq!(w["window_start_ms"].as_i64(), Some(sc.t0_ms + i as i64 * sc.window_ms));
            assert_score(&score(c, p).unwrap(), w, &format!("{fleet} window {i}"));
            checked += 1;
        }
        let day = daily_score(rows, p).unwrap();
        assert_score(&day, &exp["daily_scores"][fleet], &format!("{fleet} daily"));
        assert_close(
            percent_of_benchmark(day.total.unwrap(), sc.benchmark_total),
            &exp["percent_of_benchmark"][fleet],
            &format!("{fleet} % of benchmark"),
        );
    }
    assert_eq!(checked, 90);
    // A parked window leaves distance-based components undefined.
    assert!(exp["window_scores"]["fleet-a"][0]["components"]["efficiency"].is_null());

    let totals: Vec<(String, f64)> =
        sc.fleets.iter().map(|(f, rows)| (f.clone(), daily_score(rows, p).unwrap().total.unwrap())).collect();
    let ranked = rank_among(&totals, true);
    let want = exp["rank_by_daily_total"].as_array().unwrap();
    assert_eq!(ranked.len(), want.len());
    for (r, w) in ranked.iter().zip(want) {
        assert_eq!(Some(r.fleet_id.as_str()), w["fleet_id"].as_str());
        assert_eq!(Some(u64::from(r.rank)), w["rank"].as_u64());
        assert_close(Some(r.value), &w["value"], "rank value");
    }
}

fn assert_trend(got: &Trend, want: &Value, what: &str) {
    let f = &got.fit;
    let wf = &want["fit"];
    assert_eq!(Some(f.n as u64), wf["n"].as_u64(), "{what} n");
    for (name, v) in [
        ("slope", f.slope),
        ("intercept", f.intercept),
        ("r2", f.r2),
        ("residual_se", f.residual_se),
        ("slope_se", f.slope_se),
        ("t_mean", f.t_mean),
        ("sxx", f.sxx),
        ("t_first", f.t_first),
        ("t_last", f.t_last),
    ] {
        assert_close(Some(v), &wf[name], &format!("{what} {name}"));
    }
    assert_close(f.t_stat, &wf["t_stat"], &format!("{what} t_stat"));
    assert_close(Some(got.p_value), &want["p_value"], &format!("{what} p_value"));
    assert_eq!(Some(got.significant), want["significant"].as_bool(), "{what} significant");
    assert_eq!(Some(got.direction.as_str()), want["direction"].as_str(), "{what} direction");
    assert_close(got.change_pct, &want["change_pct"], &format!("{what} change_pct"));
    let fc = got.forecast.expect("forecast");
    for (name, v) in [("t", fc.t), ("value", fc.value), ("lower", fc.lower), ("upper", fc.upper)] {
        assert_close(Some(v), &want["forecast"][name], &format!("{what} forecast {name}"));
    }
}

#[test]
fn trends_over_sliding_horizons() {
    let (sc, exp) = scenario();
    let want = exp["trends"].as_array().unwrap();
    let mut i = 0;
    let mut directions = BTreeMap::new();
    for (fleet, rows) in &sc.fleets {
        for m in &sc.trend.metrics {
            // t = window end in minutes since t0.
            let series: Vec<(f64, f64)> = rows
                .iter()
                .enumerate()
                .filter_map(|(k, c)| {
                    let t = ((k as i64 + 1) * sc.window_ms) as f64 / 60_000.0;
                    metric(c, &m.name, &sc.score_params).map(|y| (t, y))
                })
                .collect();
            for &h in &sc.trend.horizons_windows {
                let w = &want[i];
                i += 1;
                assert_eq!(w["fleet_id"].as_str(), Some(fleet.as_str()));
                assert_eq!(w["metric"].as_str(), Some(m.name.as_str()));
                assert_eq!(w["horizon_windows"].as_u64(), Some(u64::from(h)));
                let params = TrendParams {
                    higher_is_better: m.higher_is_better,
                    alpha: sc.trend.alpha,
                    horizon_steps: sc.trend.horizon_steps,
                    confidence: sc.trend.confidence,
                };
                let got = analyze(sliding(&series, f64::from(h)), &params).unwrap();
                let what = format!("{fleet} {} over {h}", m.name);
                assert_trend(&got, &w["trend"], &what);
                directions.insert((fleet.clone(), m.name.clone(), h), got.direction.as_str());
            }
        }
    }
    assert_eq!(i, want.len());
    // The scenario was built to show these.
    assert_eq!(directions[&("fleet-a".into(), "utilization".into(), 30)], "improving");
    assert_eq!(directions[&("fleet-c".into(), "kwh_per_km".into(), 30)], "declining");
    assert_eq!(directions[&("fleet-a".into(), "kwh_per_km".into(), 30)], "stable");
}

fn timeline(sc: &Scenario, rule: &AlertRule, fleet: &str) -> Vec<Transition> {
    let mut state = AlertState::default();
    let mut out = vec![];
    for (k, c) in sc.fleets[fleet].iter().enumerate() {
        let at = sc.t0_ms + (k as i64 + 1) * sc.window_ms;
        if let Some(v) = metric(c, &rule.metric, &sc.score_params) {
            // The durable state survives a restart at every step.
            state = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
            out.extend(step(rule, &mut state, v, at));
        }
    }
    out
}

#[test]
fn alert_timeline_and_pager_messages() {
    let (sc, exp) = scenario();
    let mut got_alerts = vec![];
    let mut got_messages = vec![];
    for rule in &sc.rules {
        rule.validate().unwrap();
        for fleet in sc.fleets.keys() {
            for t in timeline(&sc, rule, fleet) {
                got_alerts.push((rule.id.clone(), fleet.clone(), t));
                if let Some(m) = pager_message(rule, fleet, &t) {
                    got_messages.push(m);
                }
            }
        }
    }
    let want = exp["alerts"].as_array().unwrap();
    assert_eq!(got_alerts.len(), want.len(), "{got_alerts:#?}");
    for ((rule, fleet, t), w) in got_alerts.iter().zip(want) {
        let what = format!("{rule} {fleet} {:?} at {}", t.kind, t.at_ms);
        assert_eq!(w["rule_id"].as_str(), Some(rule.as_str()), "{what}");
        assert_eq!(w["subject"].as_str(), Some(fleet.as_str()), "{what}");
        assert_eq!(w["kind"], serde_json::to_value(t.kind).unwrap(), "{what}");
        assert_eq!(w["at_ms"].as_i64(), Some(t.at_ms), "{what}");
        assert_eq!(w["starts_at_ms"].as_i64(), Some(t.starts_at_ms), "{what}");
        assert_eq!(w["ends_at_ms"].as_i64(), t.ends_at_ms, "{what}");
        assert_eq!(w["value"].as_f64(), Some(t.value), "{what}");
    }
    let want = exp["messages"].as_array().unwrap();
    assert_eq!(got_messages.len(), want.len());
    for (m, w) in got_messages.iter().zip(want) {
        assert_eq!(m["dedup_key"], w["key"]);
        assert_eq!(m, &w["message"]);
    }

    // No flapping across fleet-b's noisy crossing: one trigger, one resolve, and the trigger
    // comes only after `for` of continuous breach.
    let b: Vec<&Transition> = got_alerts
        .iter()
        .filter(|(r, f, _)| r == "fleet-low-utilization" && f == "fleet-b")
        .map(|(_, _, t)| t)
        .collect();
    let kinds: Vec<TransitionKind> = b.iter().map(|t| t.kind).filter(|k| k.is_paged()).collect();
    assert_eq!(kinds, [TransitionKind::Firing, TransitionKind::Resent, TransitionKind::Resolved]);
    // The same series without hysteresis or delays would have paged repeatedly.
    let rule = sc.rules.iter().find(|r| r.id == "fleet-low-utilization").unwrap();
    let naive =
        AlertRule { clear_threshold: None, for_ms: 0, keep_firing_for_ms: 0, resend_interval_ms: 0, ..rule.clone() };
    let flaps = timeline(&sc, &naive, "fleet-b").iter().filter(|t| t.kind == TransitionKind::Firing).count();
    assert!(flaps >= 3, "the scenario must be noisy: {flaps} triggers without hysteresis");
}
