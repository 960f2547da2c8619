//! The health pipeline through the running system (issue 14): a week of simulated telemetry
//! with battery ageing (time-lapsed), charging sessions, noisy state of charge, counter resets
//! and failures with precursor warnings goes through Kafka into the real worker; the vehicle-
//! and fleet-days it writes to ClickHouse and PostgreSQL are checked against
//! - the generator's truth (state of health within 1 percentage point),
//! - the pure kernels run here over the same samples in a batch (`discharge_segments` +
//!   `daily_soh`, `FaultDays`, `health_score`, `fleet_health`): the stream gives what the batch
//!   gives.
//!
//! A second worker run over the same topic (a reset pipeline) leaves the same numbers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlasmesh_core::analytics::battery::{daily_soh, discharge_segments, BatterySample, SohParams};
use atlasmesh_core::analytics::failure::{FailureParams, FaultDays};
use atlasmesh_core::VehicleStatus;
use atlasmesh_core::{Role, Scope};
use atlasmesh_simulator::{BatteryModel, FailureModel, SimConfig, Simulator};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::alerts::{call, eventually};
use crate::common::{sigterm, TestEnv, PATIENT_API};

const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 6;

#[derive(Debug, Deserialize)]
struct VehicleDay {
    vehicle_id: String,
    day_ms: i64,
    samples: u32,
    soh_pct: Option<f64>,
    soh_segments: u32,
    faults: u32,
    precursors: u32,
    failures: u32,
    score: Option<f64>,
    failure_risk: Option<f64>,
}

async fn health_checkpointed(env: &TestEnv, pg: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::bigint FROM stream_checkpoints WHERE pipeline = 'health' AND topic = $1",
    )
    .bind(&env.cfg.topics.telemetry)
    .fetch_one(pg)
    .await
    .unwrap()
    .unwrap_or(0)
}

async fn wait_health(env: &TestEnv, pg: &sqlx::PgPool, expected: i64) {
    let started = Instant::now();
    while health_checkpointed(env, pg).await < expected {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "health pipeline did not consume {expected} messages; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn vehicle_days(env: &TestEnv) -> Vec<VehicleDay> {
    env.ch_rows(
        "SELECT vehicle_id, day_ms, samples, soh_pct, soh_segments, faults, precursors,
                failures, score, failure_risk
         FROM vehicle_health_daily FINAL ORDER BY fleet_id, vehicle_id, day_ms",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_from_the_stream_matches_the_batch_and_the_truth() {
    let env = TestEnv::new("health");
    env.migrate();
    let mut sim = Simulator::new(SimConfig {
        seed: 77,
        fleets: 2,
        vehicles_per_fleet: 3,
        interval_ms: 300_000,
        battery: Some(BatteryModel {
            acceleration: 10.0,
            counter_resets_per_day: 0.1,
            ..BatteryModel::default()
        }),
        failures: Some(FailureModel::default()),
        ..SimConfig::default()
    });
    let start = sim.config().start_ms;
    assert_eq!(start % DAY_MS, 0, "the simulation starts at midnight");
    let mut items = Vec::new();
    // DAYS full days, then an hour of the next so the last day closes (5 min delay).
    while sim.now_ms() < start + DAYS * DAY_MS + 3_600_000 {
        items.extend(sim.next_batch());
    }
    let events: Vec<_> = items.iter().filter_map(|i| i.event().cloned()).collect();
    assert_eq!(events.len(), items.len());
    let pg = env.pg().await;
    for v in sim.vehicle_ids() {
        let t = sim.battery_truth(&v).unwrap();
        let fleet = events
            .iter()
            .find(|e| e.vehicle_id == v)
            .unwrap()
            .fleet_id
            .clone();
        sqlx::query(
            "INSERT INTO vehicle_batteries (vehicle_id, fleet_id, nominal_kwh) VALUES ($1, $2, $3)",
        )
        .bind(&v)
        .bind(&fleet)
        .bind(t.nominal_kwh)
        .execute(&pg)
        .await
        .unwrap();
    }
    env.produce(&items).await;
    let extra = [("ATLASMESH_HEALTH__SOH_MIN_DAYS", "3")];
    let mut worker = env.spawn_worker_args(0, &["--pipelines", "health"], &extra);
    wait_health(&env, &pg, items.len() as i64).await;
    sigterm(&mut worker);
    let _ = worker.wait();

    let got = vehicle_days(&env).await;
    assert_eq!(got.len(), 6 * DAYS as usize, "{got:?}");

    // The batch: the pure kernels over all samples of each vehicle.
    let p = FailureParams::default();
    let mut faults = FaultDays::new(&p);
    let mut by_vehicle: BTreeMap<String, Vec<BatterySample>> = BTreeMap::new();
    for e in &events {
        faults.process(e);
        by_vehicle
            .entry(e.vehicle_id.clone())
            .or_default()
            .push(BatterySample {
                ts_ms: e.ts_ms,
                soc_pct: e.energy_pct,
                energy_used_kwh: e.energy_used_kwh,
                odometer_km: e.odometer_km,
                charging: e.status == VehicleStatus::Charging,
            });
    }
    let mut soh_days = 0;
    for (v, samples) in &by_vehicle {
        let truth = sim.battery_truth(v).unwrap();
        let segments = discharge_segments(samples, &SohParams::default());
        let batch: BTreeMap<i64, f64> = daily_soh(&segments, truth.nominal_kwh)
            .into_iter()
            .map(|d| (d.day_ms, d.soh_pct))
            .collect();
        let counts: BTreeMap<i64, (u32, u32, u32)> = faults
            .days(v)
            .into_iter()
            .map(|d| (d.day_ms, (d.faults, d.precursors, d.failures)))
            .collect();
        for d in got.iter().filter(|d| &d.vehicle_id == v) {
            assert!(d.samples > 0);
            assert_eq!(
                counts.get(&d.day_ms).copied().unwrap_or_default(),
                (d.faults, d.precursors, d.failures),
                "{v} day {}",
                d.day_ms
            );
            assert!(d.score.is_some_and(|s| (0.0..=100.0).contains(&s)), "{d:?}");
            assert!(
                d.failure_risk.is_some_and(|r| (0.0..=1.0).contains(&r)),
                "{d:?}"
            );
            // A discharge that runs into the next day belongs to that day in both; the
            // stream ends open runs when their day closes, so compare days the batch has.
            match (d.soh_pct, batch.get(&d.day_ms)) {
                (Some(s), Some(b)) => {
                    soh_days += 1;
                    assert!(
                        (s - b).abs() < 0.5,
                        "{v} day {}: stream {s} batch {b}",
                        d.day_ms
                    );
                    // The generator's truth at the end of the day.
                    let true_soh = truth
                        .trace
                        .iter()
                        .rev()
                        .find(|t| t.ts_ms < d.day_ms + DAY_MS)
                        .unwrap()
                        .soh_pct;
                    assert!(
                        (s - true_soh).abs() < 1.0,
                        "{v} day {}: {s} vs truth {true_soh}",
                        d.day_ms
                    );
                }
                (None, None) => {}
                (s, b) => assert!(
                    d.soh_segments <= 1,
                    "{v} day {}: stream {s:?} batch {b:?}",
                    d.day_ms
                ),
            }
        }
    }
    assert!(
        soh_days >= 20,
        "{soh_days} vehicle-days with a state of health"
    );

    // PostgreSQL: a health row per vehicle-day and per fleet-day, the fleet's distribution
    // made of its vehicles' scores, the predictions of each vehicle.
    let (vehicle_rows, fleet_rows): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE vehicle_id IS NOT NULL), count(*) FILTER (WHERE vehicle_id IS NULL)
         FROM analytics_health_scores WHERE source = 'stream'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!((vehicle_rows, fleet_rows), (6 * DAYS, 2 * DAYS));
    let medians: Vec<(String, f64, f64)> = sqlx::query_as(
        "SELECT f.fleet_id, (f.distribution->>'median')::float8,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY v.score)
         FROM analytics_health_scores f JOIN analytics_health_scores v
           ON v.fleet_id = f.fleet_id AND v.period_start = f.period_start AND v.vehicle_id IS NOT NULL
         WHERE f.vehicle_id IS NULL GROUP BY f.id, f.fleet_id, f.distribution",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    assert_eq!(medians.len(), 2 * DAYS as usize);
    for (fleet, m, expected) in &medians {
        assert!((m - expected).abs() < 1e-9, "{fleet}: {m} vs {expected}");
    }
    let predictions: Vec<(String, String, Option<f64>)> = sqlx::query_as(
        "SELECT vehicle_id, kind, value FROM analytics_predictions WHERE source = 'stream' ORDER BY 1, 2",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    let risk = predictions.iter().filter(|p| p.1 == "failure_risk").count();
    let soh = predictions
        .iter()
        .filter(|p| p.1 == "soh_threshold")
        .count();
    assert_eq!(risk, 6, "{predictions:?}");
    assert!(soh >= 4, "{predictions:?}");
    // Time-lapsed ageing: every battery with a trajectory is degrading.
    let declining: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM analytics_trends WHERE metric = 'soh_pct' AND direction = 'declining'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert!(declining >= 1);

    // The streamed rows through the API: a vehicle's health and its history, the fleet's
    // analytics report (JSON and CSV).
    let (mut api, base) = env.spawn_api_with(0, &PATIENT_API).await;
    let fleets: Vec<String> = {
        let mut f: Vec<String> = events.iter().map(|e| e.fleet_id.clone()).collect();
        f.sort();
        f.dedup();
        f
    };
    let op = env.token(
        "op",
        Role::Operator,
        &Scope::fleets(fleets.iter().map(String::as_str)),
    );
    let http = reqwest::Client::new();
    let v0 = got[0].vehicle_id.clone();
    let (s, h) = call(
        &http,
        Method::GET,
        format!("{base}/api/v1/fleet-analytics/vehicles/{v0}/health?days=366"),
        &op,
        None,
    )
    .await;
    assert_eq!(s, 200, "{h}");
    let history = h["history"].as_array().unwrap();
    assert_eq!(history.len(), DAYS as usize, "{h}");
    let last = got.iter().rfind(|d| d.vehicle_id == v0).unwrap();
    assert_eq!(history[DAYS as usize - 1]["score"].as_f64(), last.score);
    assert_eq!(h["health_score"]["score"].as_f64(), last.score, "{h}");
    let kinds: Vec<&str> = h["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"failure_risk"), "{h}");
    let report = format!(
        "{base}/api/v1/fleets/{}/analytics-report?from={start}&to={}",
        fleets[0],
        start + DAYS * DAY_MS
    );
    let (s, r) = call(&http, Method::GET, report.clone(), &op, None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["daily"].as_array().unwrap().len(), DAYS as usize, "{r}");
    assert_eq!(r["summary"]["vehicles_scored"], 3, "{r}");
    let csv = http
        .get(format!("{report}&format=csv"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    assert!(csv
        .text()
        .await
        .unwrap()
        .starts_with("section,item,field,value"));

    // Reprocessing from the start gives the same numbers (higher versions), while the alert
    // engine judges a rule on the streamed health scores (always true here: every vehicle's
    // newest day fires it). The worker has exited (its final checkpoint is seconds old, hence
    // --force).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlasmesh"))
        .args(["reset", "--pipeline", "health", "--force"])
        .envs(env.envs())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut worker = env.spawn_worker_args(
        1,
        &["--pipelines", "health,alerts,commands"],
        &[extra[0], ("ATLASMESH_ALERTS__RULES_REFRESH_MS", "300")],
    );
    let rule = json!({"fleet_id": fleets[0], "scope": "vehicle", "metric": "vehicle_health_score",
        "comparison": "lt", "threshold": 100.5, "severity": "info"});
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{base}/api/v1/alerting/rules?wait=true"),
        &op,
        Some(rule),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rule_id = v["entity_id"].as_str().unwrap().to_string();
    wait_health(&env, &pg, items.len() as i64).await;
    let firing = eventually(
        "the health rule firing for the fleet's 3 vehicles",
        &env,
        || {
            let (pg, rule_id) = (pg.clone(), rule_id.clone());
            async move {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM alert_instances WHERE rule_id = $1 AND status = 'firing'",
                )
                .bind(&rule_id)
                .fetch_one(&pg)
                .await
                .unwrap();
                (n == 3).then_some(n)
            }
        },
    )
    .await;
    assert_eq!(firing, 3);
    let started = Instant::now();
    loop {
        let v: i64 = sqlx::query_scalar("SELECT min(version) FROM health_day_versions")
            .fetch_one(&pg)
            .await
            .unwrap();
        if v >= 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no rewrite");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sigterm(&mut worker);
    sigterm(&mut api);
    let again = vehicle_days(&env).await;
    assert_eq!(format!("{got:?}"), format!("{again:?}"));
}
