//! Golden-file tests of the analytics kernels, against numbers `golden/compute.py` computed
//! independently of this code (Python stdlib, its own window arithmetic, exact rational
//! regression sums, Student t by numerical integration). Floats compare within 1e-9
//! (absolute + relative); window counters, times, kinds, ranks and pager messages exactly.
//!
//! - `golden/telemetry.json`: raw telemetry of 8 vehicles in 3 fleets over 30 minutes, in
//!   arrival order with out-of-order, late, too-late and repeated samples, a silent vehicle and
//!   a counter reset. Through the window kernel (spread over 3 source partitions, then flushed
//!   idle, which closes the tail window) it must give exactly the fleet windows, scores,
//!   trends and alert timeline of `golden/expected_telemetry.json`.
//! - `golden/scenario.json`: 3 fleets × 30 closed fleet windows (plus the score parameters,
//!   trend settings and alert rules both cases use) → `golden/expected.json`.
//!
//! To change a scenario: edit scenario.json (or make_telemetry.py, then run it), run
//! `python3 core/tests/golden/compute.py`, review the diff of the expected files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use atlasmesh_core::analytics::alert::{
    pager_message, step, AlertRule, AlertState, Transition, TransitionKind,
};
use atlasmesh_core::analytics::score::{
    daily_score, percent_of_benchmark, rank_among, score, ScoreParams,
};
use atlasmesh_core::analytics::trend::{analyze, sliding, Trend, TrendParams};
use atlasmesh_core::hash::fnv1a64;
use atlasmesh_core::window::{
    Counters, Ingest, PartitionWindows, WindowParams, WindowResult, WindowScope,
};
use atlasmesh_core::TelemetryEvent;
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

/// Per-fleet window counters and what compute.py expects of them.
struct Case {
    t0_ms: i64,
    window_ms: i64,
    fleets: BTreeMap<String, Vec<Counters>>,
    expected: Value,
}

fn load(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn scenario() -> (Scenario, Case) {
    let sc: Scenario = serde_json::from_str(&load("scenario.json")).expect("scenario.json");
    let expected: Value = serde_json::from_str(&load("expected.json")).expect("expected.json");
    let case = Case {
        t0_ms: sc.t0_ms,
        window_ms: sc.window_ms,
        fleets: sc.fleets.clone(),
        expected,
    };
    (sc, case)
}

#[track_caller]
fn assert_close(got: Option<f64>, want: &Value, what: &str) {
    match (got, want.as_f64()) {
        (None, None) if want.is_null() => {}
        (Some(g), Some(w)) => {
            assert!(
                (g - w).abs() <= 1e-9 * (1.0 + w.abs()),
                "{what}: got {g}, expected {w} (diff {})",
                (g - w).abs()
            )
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

/// Window and daily scores, percent of benchmark and the federation rank of `case`.
fn check_scores(sc: &Scenario, case: &Case) -> usize {
    let (p, exp) = (&sc.score_params, &case.expected);
    let mut checked = 0;
    for (fleet, rows) in &case.fleets {
        let want = exp["window_scores"][fleet]
            .as_array()
            .expect("fleet in expected");
        assert_eq!(want.len(), rows.len());
        for (i, (c, w)) in rows.iter().zip(want).enumerate() {
            assert_eq!(
                w["window_start_ms"].as_i64(),
                Some(case.t0_ms + i as i64 * case.window_ms)
            );
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
    let totals: Vec<(String, f64)> = case
        .fleets
        .iter()
        .map(|(f, rows)| (f.clone(), daily_score(rows, p).unwrap().total.unwrap()))
        .collect();
    let ranked = rank_among(&totals, true);
    let want = exp["rank_by_daily_total"].as_array().unwrap();
    assert_eq!(ranked.len(), want.len());
    for (r, w) in ranked.iter().zip(want) {
        assert_eq!(Some(r.fleet_id.as_str()), w["fleet_id"].as_str());
        assert_eq!(Some(u64::from(r.rank)), w["rank"].as_u64());
        assert_close(Some(r.value), &w["value"], "rank value");
    }
    checked
}

#[test]
fn window_and_daily_scores_benchmark_and_rank() {
    let (sc, case) = scenario();
    assert_eq!(check_scores(&sc, &case), 90);
    // A parked window leaves distance-based components undefined.
    assert!(case.expected["window_scores"]["fleet-a"][0]["components"]["efficiency"].is_null());
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
    assert_close(
        Some(got.p_value),
        &want["p_value"],
        &format!("{what} p_value"),
    );
    assert_eq!(
        Some(got.significant),
        want["significant"].as_bool(),
        "{what} significant"
    );
    assert_eq!(
        Some(got.direction.as_str()),
        want["direction"].as_str(),
        "{what} direction"
    );
    assert_close(
        got.change_pct,
        &want["change_pct"],
        &format!("{what} change_pct"),
    );
    let fc = got.forecast.expect("forecast");
    for (name, v) in [
        ("t", fc.t),
        ("value", fc.value),
        ("lower", fc.lower),
        ("upper", fc.upper),
    ] {
        assert_close(
            Some(v),
            &want["forecast"][name],
            &format!("{what} forecast {name}"),
        );
    }
}

/// Trends of every fleet, metric and horizon of `case`; returns the directions found.
fn check_trends(sc: &Scenario, case: &Case) -> BTreeMap<(String, String, u32), &'static str> {
    let want = case.expected["trends"].as_array().unwrap();
    let mut i = 0;
    let mut directions = BTreeMap::new();
    for (fleet, rows) in &case.fleets {
        for m in &sc.trend.metrics {
            // t = window end in minutes since t0.
            let series: Vec<(f64, f64)> = rows
                .iter()
                .enumerate()
                .filter_map(|(k, c)| {
                    let t = ((k as i64 + 1) * case.window_ms) as f64 / 60_000.0;
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
                // The horizon ends at the newest window, defined there or not.
                let end = (rows.len() as i64 * case.window_ms) as f64 / 60_000.0;
                let got = analyze(sliding(&series, end, f64::from(h)), &params).unwrap();
                let what = format!("{fleet} {} over {h}", m.name);
                assert_trend(&got, &w["trend"], &what);
                directions.insert((fleet.clone(), m.name.clone(), h), got.direction.as_str());
            }
        }
    }
    assert_eq!(i, want.len());
    directions
}

#[test]
fn trends_over_sliding_horizons() {
    let (sc, case) = scenario();
    let directions = check_trends(&sc, &case);
    // The scenario was built to show these.
    assert_eq!(
        directions[&("fleet-a".into(), "utilization".into(), 30)],
        "improving"
    );
    assert_eq!(
        directions[&("fleet-c".into(), "kwh_per_km".into(), 30)],
        "declining"
    );
    assert_eq!(
        directions[&("fleet-a".into(), "kwh_per_km".into(), 30)],
        "stable"
    );
}

fn timeline(sc: &Scenario, case: &Case, rule: &AlertRule, fleet: &str) -> Vec<Transition> {
    let mut state = AlertState::default();
    let mut out = vec![];
    for (k, c) in case.fleets[fleet].iter().enumerate() {
        let at = case.t0_ms + (k as i64 + 1) * case.window_ms;
        if let Some(v) = metric(c, &rule.metric, &sc.score_params) {
            // The durable state survives a restart at every step.
            state = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
            out.extend(step(rule, &mut state, v, at));
        }
    }
    out
}

/// The alert timeline and pager messages of every rule and fleet of `case`.
fn check_alerts(sc: &Scenario, case: &Case) -> Vec<(String, String, Transition)> {
    let mut got_alerts = vec![];
    let mut got_messages = vec![];
    for rule in &sc.rules {
        rule.validate().unwrap();
        for fleet in case.fleets.keys() {
            for t in timeline(sc, case, rule, fleet) {
                got_alerts.push((rule.id.clone(), fleet.clone(), t));
                if let Some(m) = pager_message(rule, fleet, &t) {
                    got_messages.push(m);
                }
            }
        }
    }
    let want = case.expected["alerts"].as_array().unwrap();
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
    let want = case.expected["messages"].as_array().unwrap();
    assert_eq!(got_messages.len(), want.len());
    for (m, w) in got_messages.iter().zip(want) {
        assert_eq!(m["dedup_key"], w["key"]);
        assert_eq!(m, &w["message"]);
    }
    got_alerts
}

/// Fleet `fleet`'s low-utilization pages: exactly `pages`, and the same series without
/// hysteresis or delays would have paged at least three times.
fn assert_no_flapping(
    sc: &Scenario,
    case: &Case,
    alerts: &[(String, String, Transition)],
    fleet: &str,
    pages: &[TransitionKind],
) {
    let kinds: Vec<TransitionKind> = alerts
        .iter()
        .filter(|(r, f, t)| r == "fleet-low-utilization" && f == fleet && t.kind.is_paged())
        .map(|(_, _, t)| t.kind)
        .collect();
    assert_eq!(kinds, pages, "{fleet}");
    let rule = sc
        .rules
        .iter()
        .find(|r| r.id == "fleet-low-utilization")
        .unwrap();
    let naive = AlertRule {
        clear_threshold: None,
        for_ms: 0,
        keep_firing_for_ms: 0,
        resend_interval_ms: 0,
        ..rule.clone()
    };
    let flaps = timeline(sc, case, &naive, fleet)
        .iter()
        .filter(|t| t.kind == TransitionKind::Firing)
        .count();
    assert!(
        flaps >= 3,
        "the scenario must be noisy: {flaps} triggers without hysteresis"
    );
}

#[test]
fn alert_timeline_and_pager_messages() {
    let (sc, case) = scenario();
    let alerts = check_alerts(&sc, &case);
    // No flapping across fleet-b's noisy crossing: one trigger, one resolve, and the trigger
    // comes only after `for` of continuous breach.
    assert_no_flapping(
        &sc,
        &case,
        &alerts,
        "fleet-b",
        &[
            TransitionKind::Firing,
            TransitionKind::Resent,
            TransitionKind::Resolved,
        ],
    );
}

// ---------------------------------------------------------------- from raw telemetry

#[derive(Deserialize)]
struct TelemetryScenario {
    t0_ms: i64,
    windows: usize,
    window_params: TelemetryWindowParams,
    events: Vec<TelemetryEvent>,
}

#[derive(Deserialize)]
struct TelemetryWindowParams {
    window_ms: i64,
    out_of_orderness_ms: i64,
    allowed_lateness_ms: i64,
    max_gap_ms: i64,
}

/// Source partitions the events are spread over by vehicle, as the topic does: a fleet window
/// is the sum of its partitions' partials.
const PARTITIONS: u64 = 3;

/// Runs the window kernel over the telemetry in arrival order; returns the fleet windows (newest
/// version of each partition's partial, summed), the ids dropped as too late, the repeats
/// ignored, and the highest partial version seen.
fn kernel_windows(
    tel: &TelemetryScenario,
) -> (BTreeMap<String, Vec<Counters>>, Vec<String>, usize, u32) {
    let wp = &tel.window_params;
    let p = WindowParams {
        window_ms: wp.window_ms,
        out_of_orderness_ms: wp.out_of_orderness_ms,
        allowed_lateness_ms: wp.allowed_lateness_ms,
        max_gap_ms: wp.max_gap_ms,
    };
    let mut parts: Vec<PartitionWindows> = (0..PARTITIONS)
        .map(|_| PartitionWindows::default())
        .collect();
    let mut partials: BTreeMap<(String, i64, usize), (u32, Counters)> = BTreeMap::new();
    let (mut dropped, mut repeats) = (vec![], 0);
    let mut keep = |out: Vec<WindowResult>, part: usize| {
        for r in out
            .into_iter()
            .filter(|r| r.scope == WindowScope::FleetPartial)
        {
            let slot = partials
                .entry((r.fleet_id, r.window_start_ms, part))
                .or_insert((0, Counters::default()));
            assert!(r.version > slot.0, "versions only grow");
            *slot = (r.version, r.counters);
        }
    };
    for e in &tel.events {
        let part = (fnv1a64(e.vehicle_id.as_bytes()) % PARTITIONS) as usize;
        let mut out = vec![];
        match parts[part].ingest(&p, e, &mut out) {
            Ingest::TooLate { .. } => dropped.push(e.event_id.clone()),
            Ingest::Duplicate => repeats += 1,
            Ingest::Accepted { .. } => {}
        }
        keep(out, part);
    }
    for (part, w) in parts.iter_mut().enumerate() {
        let mut out = vec![];
        w.flush_idle(&p, &mut out);
        keep(out, part);
    }
    let max_version = partials.values().map(|(v, _)| *v).max().unwrap_or(0);
    // Every window up to the last one the partitions closed: past the scenario's last sample a
    // vehicle's status still holds for up to max_gap (the tail window), and the idle flush
    // closes that window too.
    let n = partials
        .keys()
        .map(|(_, ws, _)| (ws - tel.t0_ms) / wp.window_ms + 1)
        .max()
        .unwrap_or(0) as usize;
    assert_eq!(n, tel.windows + 1, "the scenario's windows and the tail");
    let mut fleets: BTreeMap<String, Vec<Counters>> = BTreeMap::new();
    for ((fleet, ws, _), (_, c)) in &partials {
        let i = (ws - tel.t0_ms) / wp.window_ms;
        fleets
            .entry(fleet.clone())
            .or_insert_with(|| vec![Counters::default(); n])[i as usize]
            .add(c);
    }
    (fleets, dropped, repeats, max_version)
}

/// The whole chain from raw telemetry: window kernel → fleet windows → scores, benchmark, rank,
/// trends and the alert timeline with its pager messages, against compute.py's numbers from
/// the same events (expected_telemetry.json).
#[test]
fn telemetry_scenario_gives_the_expected_windows_scores_trends_and_alerts() {
    let (sc, _) = scenario();
    let tel: TelemetryScenario =
        serde_json::from_str(&load("telemetry.json")).expect("telemetry.json");
    let expected: Value =
        serde_json::from_str(&load("expected_telemetry.json")).expect("expected_telemetry.json");
    let (fleets, dropped, repeats, max_version) = kernel_windows(&tel);

    // Admission: the 9-minute-late sample is dropped, the exact repeat ignored, and the
    // 90-second-late sample re-emitted closed windows.
    assert_eq!(
        serde_json::to_value(&dropped).unwrap(),
        expected["dropped_too_late"]
    );
    assert_eq!(Some(repeats as u64), expected["repeats_ignored"].as_u64());
    assert_eq!((dropped.len(), repeats), (1, 1));
    assert!(max_version >= 2, "a late sample re-emits its windows");

    // Every counter of every fleet window, exactly.
    let want = expected["fleet_windows"]
        .as_object()
        .expect("fleet_windows");
    assert_eq!(
        fleets.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (fleet, rows) in &fleets {
        let want = want[fleet].as_array().unwrap();
        assert_eq!(rows.len(), want.len(), "{fleet}");
        for (i, (c, w)) in rows.iter().zip(want).enumerate() {
            let mut got = serde_json::to_value(c).unwrap();
            got["window_start_ms"] = (tel.t0_ms + i as i64 * tel.window_params.window_ms).into();
            assert_eq!(&got, w, "{fleet} window {i}");
        }
    }

    let case = Case {
        t0_ms: tel.t0_ms,
        window_ms: tel.window_params.window_ms,
        fleets,
        expected,
    };
    assert_eq!(check_scores(&sc, &case), 93);
    assert!(
        case.expected["window_scores"]["fleet-a"][0]["components"]["efficiency"].is_null(),
        "fleet-a's first minute is parked"
    );
    let directions = check_trends(&sc, &case);
    assert_eq!(
        directions[&("fleet-a".into(), "utilization".into(), 30)],
        "improving"
    );
    assert_eq!(
        directions[&("fleet-c".into(), "utilization".into(), 30)],
        "declining"
    );
    assert_eq!(
        directions[&("fleet-c".into(), "kwh_per_km".into(), 30)],
        "declining"
    );
    let alerts = check_alerts(&sc, &case);
    // fleet-b wanders across 0.5 for 15 minutes before its real breach: one page, one resend,
    // one resolve.
    assert_no_flapping(
        &sc,
        &case,
        &alerts,
        "fleet-b",
        &[
            TransitionKind::Firing,
            TransitionKind::Resent,
            TransitionKind::Resolved,
        ],
    );
    assert!(
        alerts.iter().any(|(r, f, t)| r == "fleet-high-consumption"
            && f == "fleet-c"
            && t.kind == TransitionKind::Firing),
        "fleet-c's climbing consumption pages"
    );
}
