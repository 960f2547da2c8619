//! The optimization engine in the running system (issue 13, item 5): zones through the command
//! path, idle vehicles from live telemetry (the Redis hot state), a run created through the API
//! executed by the worker — completed with a Pareto front, shadow prices, recommendations and
//! metrics; an accepted recommendation becomes a plan that follows the vehicles that moved; the
//! same input gives the same plan; a bad run fails with its reason; a run without
//! `parameters.rebalance` stays a hand-managed record.

use std::time::{Duration, Instant};

use atlasmesh_core::telemetry::{TelemetryEvent, VehicleStatus};
use atlasmesh_core::{Role, Scope};
use atlasmesh_simulator::{Emitted, EventKind};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{sigterm, TestEnv};

const ZONES: &str = "/api/v1/fleet-optimization/zones";
const RUNS: &str = "/api/v1/fleet-optimization/runs";

async fn call(
    http: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_through_the_api_is_solved_on_live_idle_vehicles() {
    let env = TestEnv::new("optruns");
    env.migrate();
    let (mut api, base) = env.spawn_api(0).await;
    let mut worker = env.spawn_worker_args(
        0,
        &["--pipelines", "telemetry,commands,resources"],
        &[
            ("ATLASMESH_RESOURCES__OPTIMIZATION_INTERVAL_MS", "200"),
            ("ATLASMESH_RESOURCES__REOPTIMIZE_INTERVAL_MS", "1000"),
        ],
    );
    let http = reqwest::Client::new();
    let fleet = format!("{}-f", env.cfg.kafka.group_prefix.replace('.', "-"));
    let op = env.token("planner", Role::Operator, &Scope::fleets([fleet.as_str()]));
    let post = |path: &str, body: Value| {
        let url = format!("{base}{path}?wait=true");
        let (http, op) = (http.clone(), op.clone());
        async move {
            let (s, v) = call(&http, &op, reqwest::Method::POST, url, Some(body)).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["entity_id"].as_str().unwrap().to_string()
        }
    };
    let get = |path: String| {
        let url = format!("{base}{path}");
        let (http, op) = (http.clone(), op.clone());
        async move {
            let (s, v) = call(&http, &op, reqwest::Method::GET, url, None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };

    // Three zones on a line, ~2 km apart; moves from the north may go to the centre only.
    let north = post(
        ZONES,
        json!({"fleet_id": fleet, "name": "north", "lat": 52.54, "lon": 13.40, "vehicle_capacity": 30}),
    )
    .await;
    let centre = post(
        ZONES,
        json!({"fleet_id": fleet, "name": "centre", "lat": 52.52, "lon": 13.40, "vehicle_capacity": 30}),
    )
    .await;
    let south = post(
        ZONES,
        json!({"fleet_id": fleet, "name": "south", "lat": 52.50, "lon": 13.40, "vehicle_capacity": 30}),
    )
    .await;
    post(
        ZONES,
        json!({"fleet_id": fleet, "name": "far", "lat": 48.14, "lon": 11.58, "vehicle_capacity": 5}),
    )
    .await;
    let (s, _) = call(
        &http,
        &op,
        reqwest::Method::PATCH,
        format!("{base}{ZONES}/{north}?wait=true"),
        Some(json!({"neighbours": [centre]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Live state: six vehicles idle in the north, two on a mission in the centre.
    let sample = |v: i64, seq: i64, ts_ms: i64, zone: &str, status: VehicleStatus| {
        let event = TelemetryEvent {
            event_id: format!("{fleet}-v{v}-{seq}"),
            fleet_id: fleet.clone(),
            vehicle_id: format!("{fleet}-v{v}"),
            ts_ms,
            seq,
            lat: 52.54,
            lon: 13.40,
            speed_kph: 0.0,
            odometer_km: 100.0 + seq as f64,
            energy_pct: 80.0,
            energy_used_kwh: 10.0,
            status,
            mission_id: None,
            zone_id: Some(zone.to_string()),
            payload_kg: 0.0,
            fault_codes: vec![],
        };
        Emitted::Event {
            key: event.vehicle_id.clone(),
            event,
            kind: EventKind::Normal,
            sent_ms: None,
        }
    };
    let now = atlasmesh_core::clock::now_ms();
    let mut items = Vec::new();
    for v in 0..8 {
        let (zone, status) = if v < 6 {
            (&north, VehicleStatus::Idle)
        } else {
            (&centre, VehicleStatus::OnMission)
        };
        for seq in 0..2 {
            items.push(sample(v, seq, now - 10_000 + seq * 1_000, zone, status));
        }
    }
    env.produce(&items).await;
    let redis = redis::Client::open(env.cfg.redis.url.as_str()).unwrap();
    let mut rc = redis.get_multiplexed_async_connection().await.unwrap();
    let key = atlasmesh_core::keys::fleet_vehicles(&env.cfg.redis.key_prefix, &fleet);
    let started = Instant::now();
    loop {
        let n: usize = redis::cmd("HLEN")
            .arg(&key)
            .query_async(&mut rc)
            .await
            .unwrap();
        if n == 8 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "hot state holds {n}/8 vehicles; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Demand in the centre (periods 1–2) and the south (period 3): 6 units.
    let rebalance = json!({"horizon_periods": 4,
        "demand": {centre.as_str(): [0, 3, 1, 0], south.as_str(): [0, 0, 0, 2]}});
    let run_body = |name: &str, rebalance: Value| {
        json!({"fleet_id": fleet, "name": name, "cost_weight": 0.2, "efficiency_weight": 0.2,
               "coverage_weight": 0.6, "parameters": {"rebalance": rebalance}})
    };
    let wait_final = |id: String| {
        let get = &get;
        async move {
            let started = Instant::now();
            loop {
                let v = get(format!("{RUNS}/{id}")).await;
                if v["status"] == "completed" || v["status"] == "failed" {
                    return v;
                }
                assert!(started.elapsed() < Duration::from_secs(60), "{v}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let run = post(RUNS, run_body("morning", rebalance.clone())).await;
    let done = wait_final(run.clone()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());

    let results = get(format!("{RUNS}/{run}/results?limit=100")).await;
    let points = results["items"].as_array().unwrap();
    assert!(points.len() >= 2, "a front: {results}");
    let chosen: Vec<&Value> = points
        .iter()
        .filter(|p| p["details"]["chosen"] == true)
        .collect();
    assert_eq!(chosen.len(), 1, "{results}");
    let chosen = chosen[0];
    assert_eq!(
        chosen["coverage"], 1.0,
        "six idle vehicles serve all six units"
    );
    assert_eq!(chosen["details"]["values"]["served"], 6);
    let prices = chosen["details"]["shadow_prices"].as_array().unwrap();
    assert_eq!(prices.len(), 4, "one per zone");
    assert_eq!(chosen["details"]["payoff"].as_array().unwrap().len(), 3);
    // The north may only send to the centre: the south is served through the centre's
    // vehicles or not at all, never directly.
    for m in chosen["details"]["moves"].as_array().unwrap() {
        if m["from_zone"] == north.as_str() {
            assert_eq!(m["to_zone"], centre.as_str(), "{m}");
        }
    }

    let recs = get(format!("{RUNS}/{run}/recommendations?limit=100")).await;
    let mut recs = recs["items"].as_array().unwrap().clone();
    assert!(!recs.is_empty());
    // Highest priority (expected gain) first.
    recs.sort_by_key(|r| -r["priority"].as_i64().unwrap());
    assert!(
        recs[0]["action"]
            .as_str()
            .unwrap()
            .contains(&format!("from {north} to {centre}")),
        "{}",
        recs[0]
    );
    assert_eq!(recs[0]["priority"], 100);
    assert_eq!(recs[0]["status"], "issued");

    // Accepting the top move plans it (an approved rebalancing record); rejecting the next
    // decides it; neither decides twice; the run's adoption rate counts them.
    let act = |id: String, action: &str| {
        let url =
            format!("{base}/api/v1/fleet-optimization/recommendations/{id}/{action}?wait=true");
        let (http, op) = (http.clone(), op.clone());
        async move { call(&http, &op, reqwest::Method::POST, url, Some(json!({}))).await }
    };
    let top = recs[0]["id"].as_str().unwrap().to_string();
    let (s, v) = act(top.clone(), "accept").await;
    assert!(s.is_success(), "{s} {v}");
    let r = get(format!("/api/v1/fleet-optimization/recommendations/{top}")).await;
    assert_eq!(r["status"], "accepted", "{r}");
    assert!(
        r["decided_by"].as_str().unwrap().ends_with("planner"),
        "{r}"
    );
    let accepted_plan = get(format!(
        "/api/v1/fleet-optimization/rebalancing/{}",
        r["rebalancing_id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(accepted_plan["status"], "approved", "{accepted_plan}");
    assert_eq!(accepted_plan["run_id"], run.as_str());
    assert_eq!(accepted_plan["from_zone"], north.as_str());
    assert_eq!(accepted_plan["to_zone"], centre.as_str());
    assert_eq!(
        accepted_plan["vehicle_count"],
        recs[0]["details"]["vehicles"]
    );
    assert_eq!(accepted_plan["moved_vehicles"], 0);
    assert!(accepted_plan["approved_at"].is_string(), "{accepted_plan}");
    let (s, v) = act(top.clone(), "reject").await;
    assert_eq!(s, StatusCode::CONFLICT, "decided once: {v}");
    for r in &recs[1..] {
        let (s, v) = act(r["id"].as_str().unwrap().to_string(), "reject").await;
        assert!(s.is_success(), "{s} {v}");
    }

    let metrics = get(format!("/api/v1/fleet-optimization/metrics/by-run/{run}")).await;
    let metric = |name: &str| {
        metrics["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .and_then(|m| m["value"].as_f64())
    };
    assert!(metric("execution_time_ms").unwrap() > 0.0, "{metrics}");
    assert_eq!(metric("coverage_pct"), Some(100.0));
    assert_eq!(
        metric("coverage_gain_pct"),
        Some(100.0),
        "nothing is served without moves"
    );
    assert_eq!(metric("adoption_rate"), Some(1.0 / recs.len() as f64));

    // The same input, the same plan.
    let again = post(RUNS, run_body("morning again", rebalance.clone())).await;
    assert_eq!(wait_final(again.clone()).await["status"], "completed");
    let plan = |v: &Value| -> Vec<Value> {
        let mut p: Vec<Value> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["cost"], r["efficiency"], r["coverage"], r["details"]]))
            .collect();
        p.sort_by_key(|x| x.to_string());
        p
    };
    assert_eq!(
        plan(&results),
        plan(&get(format!("{RUNS}/{again}/results?limit=100")).await)
    );

    // A run naming a zone the fleet does not have fails with the reason.
    let bad = post(
        RUNS,
        run_body("bad", json!({"demand": {"zone-nowhere": [1]}})),
    )
    .await;
    let v = wait_final(bad).await;
    assert_eq!(v["status"], "failed");
    assert!(v["error"].as_str().unwrap().contains("zone-nowhere"), "{v}");

    // Without `parameters.rebalance` a run is the seed API's record: nobody executes it.
    let manual = post(
        RUNS,
        json!({"fleet_id": fleet, "name": "by hand", "cost_weight": 0.5, "efficiency_weight": 0.5,
               "coverage_weight": 0.0, "parameters": {"horizon_h": 4}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(format!("{RUNS}/{manual}")).await["status"], "queued");
    // A hand-written recommendation is no move: it can be rejected, not accepted into a plan.
    let note = post(
        &format!("{RUNS}/{manual}/recommendations"),
        json!({"fleet_id": fleet, "action": "call the depot", "priority": 10, "expected_gain": 0.0}),
    )
    .await;
    let (s, v) = act(note.clone(), "accept").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v.to_string().contains("no move"), "{v}");
    let (s, _) = act(note, "reject").await;
    assert!(s.is_success());

    // The fleet's engine metrics: three runs finished, one failed.
    let fleet_metrics = get(format!(
        "/api/v1/fleet-optimization/metrics/by-fleet/{fleet}?limit=1000"
    ))
    .await;
    let fleet_metric = |name: &str| {
        fleet_metrics["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name && m["run_id"].is_null())
            .and_then(|m| m["value"].as_f64())
    };
    assert_eq!(
        fleet_metric("success_rate"),
        Some(2.0 / 3.0),
        "{fleet_metrics}"
    );
    let (p50, p99) = (
        fleet_metric("execution_time_ms_p50").unwrap(),
        fleet_metric("execution_time_ms_p99").unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99, "{p50} {p99}");

    // The accepted plan follows the vehicles: those that report from the north and then the
    // centre after the approval moved; at the planned count the plan is executed.
    let planned = accepted_plan["vehicle_count"].as_i64().unwrap();
    let now = atlasmesh_core::clock::now_ms();
    let mut moves = Vec::new();
    for v in 0..planned {
        moves.push(sample(v, 2, now + 1_000, &north, VehicleStatus::EnRoute));
        moves.push(sample(v, 3, now + 120_000, &centre, VehicleStatus::Idle));
    }
    env.produce(&moves).await;
    let plan_path = format!(
        "/api/v1/fleet-optimization/rebalancing/{}",
        accepted_plan["id"].as_str().unwrap()
    );
    let started = Instant::now();
    let done = loop {
        let p = get(plan_path.clone()).await;
        if p["status"] == "executed" {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{p}; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(done["moved_vehicles"], planned);
    assert!(done["executed_at"].is_string());
    let run_metrics = get(format!("/api/v1/fleet-optimization/metrics/by-run/{run}")).await;
    let moved_rate = run_metrics["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "moved_rate")
        .and_then(|m| m["value"].as_f64());
    assert_eq!(moved_rate, Some(1.0), "{run_metrics}");

    // Continuous: a finished run marked so gets a successor a re-optimization interval later,
    // solved on the then live state (unchanged here, so the same plan).
    let mut standing = rebalance.clone();
    standing["continuous"] = json!(true);
    let first = post(RUNS, run_body("standing", standing)).await;
    assert_eq!(wait_final(first.clone()).await["status"], "completed");
    let started = Instant::now();
    let next = loop {
        let runs = get(format!("{RUNS}/by-fleet/{fleet}?limit=1000")).await;
        let found = runs["items"].as_array().unwrap().iter().find(|r| {
            r["name"] == "standing" && r["id"] != first.as_str() && r["status"] == "completed"
        });
        if let Some(r) = found {
            break r["id"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no successor; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        plan(&get(format!("{RUNS}/{first}/results?limit=100")).await),
        plan(&get(format!("{RUNS}/{next}/results?limit=100")).await)
    );

    sigterm(&mut worker);
    sigterm(&mut api);
}
