//! Zone demand into the optimization engine (issue 13, items 1, 2 and 6): mission requests per
//! origin zone on the mission-events topic (`requested`, then `assigned` or `expired`; arrivals
//! as `completed` with a zone), folded by the missions pipeline into ClickHouse `zone_demand`
//! per zone and 15-minute bucket, with the vehicles telemetry shows idle there; a run created through the API without demand plans for the
//! demand forecast from that history (Holt-Winters on three days), stores the forecast with
//! its chosen plan and in ClickHouse, and recommends moving vehicles to where the forecast
//! demand is; the same input produced again (a replay: every event twice) gives the identical
//! plan. Expected counts come from the script below, not from the code under test.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlasmesh_core::telemetry::{TelemetryEvent, VehicleStatus};
use atlasmesh_core::{Role, Scope};
use atlasmesh_schemas::{Codec, MissionEventKind, MissionEventRecord, SchemaKind};
use atlasmesh_simulator::{Emitted, EventKind};
use atlasmesh_sinks::kafka::{KafkaProducer, OutRecord};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::{sigterm, TestEnv};

const ZONES: &str = "/api/v1/fleet-optimization/zones";
const RUNS: &str = "/api/v1/fleet-optimization/runs";
const BUCKET: i64 = 900_000;
const DAY: i64 = 86_400_000;
/// A UTC day boundary (2026-11-01).
const D0: i64 = 1_761_955_200_000;
/// The forecast's "now": three days of history and 07:00 of the fourth.
const AS_OF: i64 = D0 + 3 * DAY + 7 * 3_600_000;

/// Requests per bucket in each zone: the centre has a morning peak (07:00–09:00), the north a
/// steady trickle.
fn requests(zone: usize, bucket_start: i64) -> u64 {
    let hour = bucket_start.rem_euclid(DAY) / 3_600_000;
    match zone {
        0 => 1,
        _ if (7..9).contains(&hour) => 6,
        _ => 2,
    }
}

/// One bucket's expected row: (requests, served, expired, wait_ms_sum, arrivals, idle vehicles).
type Expected = (u64, u64, u64, u64, u64, u64);

/// The bucket in which two vehicles report idle in the centre (and a third on a mission).
const IDLE_BUCKET: i64 = AS_OF - BUCKET;

/// The script: per zone and bucket, request i at +i·20 s, assigned after 60 s when i is even,
/// expired after 300 s when odd; one arrival (a completed mission) in the north per bucket.
fn script(
    fleet: &str,
    zones: &[String; 2],
) -> (Vec<MissionEventRecord>, BTreeMap<(String, i64), Expected>) {
    let mut events = Vec::new();
    let mut expected = BTreeMap::new();
    let mut b = D0;
    while b < AS_OF {
        for (z, zone) in zones.iter().enumerate() {
            let n = requests(z, b);
            let ev = |mission: &str, at: i64, kind: MissionEventKind, vehicle: Option<String>| {
                MissionEventRecord {
                    event_id: format!("{mission}:{}", kind.as_str()),
                    mission_id: mission.to_string(),
                    fleet_id: fleet.to_string(),
                    vehicle_id: vehicle,
                    ts_ms: at,
                    kind,
                    severity: None,
                    detail: None,
                    zone_id: Some(zone.clone()),
                }
            };
            for i in 0..n {
                let mission = format!("{fleet}-{z}-{b}-{i}");
                let at = b + i as i64 * 20_000;
                events.push(ev(&mission, at, MissionEventKind::Requested, None));
                if i % 2 == 0 {
                    events.push(ev(
                        &mission,
                        at + 60_000,
                        MissionEventKind::Assigned,
                        Some(format!("{fleet}-v{i}")),
                    ));
                } else {
                    events.push(ev(&mission, at + 300_000, MissionEventKind::Expired, None));
                }
            }
            let served = n.div_ceil(2);
            let arrivals = u64::from(z == 0);
            if arrivals == 1 {
                let mission = format!("{fleet}-arrival-{b}");
                events.push(ev(
                    &mission,
                    b + 450_000,
                    MissionEventKind::Completed,
                    Some(format!("{fleet}-v9")),
                ));
            }
            let idle = if z == 1 && b == IDLE_BUCKET { 2 } else { 0 };
            expected.insert(
                (zone.clone(), b),
                (n, served, n - served, served * 60_000, arrivals, idle),
            );
        }
        b += BUCKET;
    }
    (events, expected)
}

async fn produce(env: &TestEnv, events: &[MissionEventRecord]) {
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let topic = &env.cfg.topics.mission_events;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        out.push(OutRecord {
            topic: topic.clone(),
            key: Some(e.mission_id.clone().into_bytes()),
            payload: codec
                .encode(topic, SchemaKind::MissionEvents, e)
                .await
                .unwrap(),
            headers: vec![],
            partition: None,
            timestamp_ms: Some(e.ts_ms),
        });
    }
    KafkaProducer::new(&env.cfg.kafka)
        .unwrap()
        .send_all("kafka", &out)
        .await
        .unwrap();
}

async fn wait_recorded(env: &TestEnv, pg: &sqlx::PgPool, expected: i64) {
    let started = Instant::now();
    loop {
        let got: Option<i64> = sqlx::query_scalar(
            "SELECT sum(next_offset)::bigint FROM stream_checkpoints WHERE topic = $1",
        )
        .bind(&env.cfg.topics.mission_events)
        .fetch_one(pg)
        .await
        .unwrap();
        if got.unwrap_or(0) >= expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{got:?}/{expected} mission events checkpointed; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[derive(Debug, Deserialize)]
struct Row {
    zone_id: String,
    bucket_start_ms: i64,
    requests: u64,
    served: u64,
    expired: u64,
    wait_ms_sum: u64,
    arrivals: u64,
    idle_vehicles: u64,
}

async fn zone_demand(env: &TestEnv, fleet: &str) -> BTreeMap<(String, i64), Expected> {
    env.ch_rows::<Row>(&format!(
        "SELECT zone_id, bucket_start_ms, requests, served, expired, wait_ms_sum, arrivals, idle_vehicles
         FROM zone_demand FINAL WHERE fleet_id = '{fleet}'"
    ))
    .await
    .into_iter()
    .map(|r| {
        (
            (r.zone_id, r.bucket_start_ms),
            (
                r.requests,
                r.served,
                r.expired,
                r.wait_ms_sum,
                r.arrivals,
                r.idle_vehicles,
            ),
        )
    })
    .collect()
}

/// Polls until the fleet's `zone_demand` rows are `expected`; fails with the first differences.
async fn wait_zone_demand(
    env: &TestEnv,
    fleet: &str,
    expected: &BTreeMap<(String, i64), Expected>,
) {
    let started = Instant::now();
    loop {
        let got = zone_demand(env, fleet).await;
        if &got == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "zone_demand: {} of {} buckets, first differences: {:?}",
            got.len(),
            expected.len(),
            expected
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(*v))
                .take(3)
                .map(|(k, v)| (k, v, got.get(k)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_plan_for_the_forecast_of_the_zone_demand_history() {
    let env = TestEnv::new("zonedemand");
    env.migrate();
    let (mut api, base) = env.spawn_api(0).await;
    let mut worker = env.spawn_worker_args(
        0,
        &["--pipelines", "telemetry,missions,commands,resources"],
        &[("ATLASMESH_RESOURCES__OPTIMIZATION_INTERVAL_MS", "200")],
    );
    let http = reqwest::Client::new();
    let fleet = format!("{}-f", env.cfg.kafka.group_prefix.replace('.', "-"));
    let op = env.token("planner", Role::Operator, &Scope::fleets([fleet.as_str()]));
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (http, op, url) = (http.clone(), op.clone(), format!("{base}{path}"));
        async move {
            let mut rb = http.request(method, url).bearer_auth(op);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            let r = rb.send().await.unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let post = |path: &str, body: Value| {
        let c = call(
            reqwest::Method::POST,
            format!("{path}?wait=true"),
            Some(body),
        );
        async move {
            let (s, v) = c.await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["entity_id"].as_str().unwrap().to_string()
        }
    };
    let get = |path: String| {
        let c = call(reqwest::Method::GET, path, None);
        async move {
            let (s, v) = c.await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
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
    let zones = [north.clone(), centre.clone()];

    // The vehicles idle in a zone come from telemetry: two idle in the centre, one on a
    // mission, in the bucket before `AS_OF` (in ClickHouse before that bucket is written).
    let sample = |v: i64, status: VehicleStatus| {
        let event = TelemetryEvent {
            event_id: format!("{fleet}-v{v}"),
            fleet_id: fleet.clone(),
            vehicle_id: format!("{fleet}-v{v}"),
            ts_ms: IDLE_BUCKET + 60_000 * v,
            seq: 0,
            lat: 52.52,
            lon: 13.40,
            speed_kph: 0.0,
            odometer_km: 100.0,
            energy_pct: 80.0,
            energy_used_kwh: 10.0,
            status,
            mission_id: None,
            zone_id: Some(centre.clone()),
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
    env.produce(&[
        sample(1, VehicleStatus::Idle),
        sample(2, VehicleStatus::Idle),
        sample(3, VehicleStatus::OnMission),
    ])
    .await;
    let started = Instant::now();
    while env.raw_count().await < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "telemetry not in ClickHouse; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // 1. The history, folded per zone and bucket: exactly the script's counts.
    let (events, expected) = script(&fleet, &zones);
    let pg = env.pg().await;
    produce(&env, &events).await;
    wait_recorded(&env, &pg, events.len() as i64).await;
    wait_zone_demand(&env, &fleet, &expected).await;

    // 2. A run without demand: forecast from the history, idle vehicles given (all north).
    let rebalance = json!({"horizon_periods": 4, "as_of_ms": AS_OF, "demand_quantile": 0.8,
        "idle": {north.as_str(): 10, centre.as_str(): 0}});
    let body = |name: &str| {
        json!({"fleet_id": fleet, "name": name, "cost_weight": 0.2, "efficiency_weight": 0.1,
               "coverage_weight": 0.7, "parameters": {"rebalance": rebalance}})
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
    let run = post(RUNS, body("forecast")).await;
    let done = wait_final(run.clone()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let results = get(format!("{RUNS}/{run}/results?limit=100")).await;
    let chosen = results["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["details"]["chosen"] == true)
        .cloned()
        .expect("a chosen point");
    let demand = &chosen["details"]["demand"];
    assert_eq!(demand["source"], "forecast", "{demand}");
    assert_eq!(demand["from_ms"], AS_OF, "{demand}");
    assert_eq!(demand["history_start_ms"], D0, "{demand}");
    assert_eq!(demand["history_buckets"], (AS_OF - D0) / BUCKET, "{demand}");
    for z in &zones {
        assert_eq!(demand["zones"][z]["method"], "holt_winters", "{demand}");
    }
    // The morning peak in the centre (6 per bucket) is forecast; the north stays low.
    let planned = |z: &str| -> Vec<u64> {
        demand["zones"][z]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["planned"].as_u64().unwrap())
            .collect()
    };
    let (pc, pn) = (planned(&centre), planned(&north));
    assert_eq!(pc.len(), 4);
    assert!(pc.iter().all(|&d| (5..=9).contains(&d)), "centre {pc:?}");
    assert!(pn.iter().all(|&d| d <= 3), "north {pn:?}");
    for s in demand["zones"][&centre]["requests"].as_array().unwrap() {
        let (mean, up80, up95) = (
            s["mean"].as_f64().unwrap(),
            s["upper80"].as_f64().unwrap(),
            s["upper95"].as_f64().unwrap(),
        );
        assert!((mean - 6.0).abs() < 1.0, "{s}");
        assert!(mean <= up80 && up80 <= up95, "{s}");
    }
    // Vehicles go to the centre.
    let recs = get(format!("{RUNS}/{run}/recommendations?limit=100")).await;
    let recs = recs["items"].as_array().unwrap();
    assert!(
        recs.iter()
            .any(|r| r["details"]["from_zone"] == north.as_str()
                && r["details"]["to_zone"] == centre.as_str()),
        "{recs:?}"
    );
    // The dashboard's copies.
    #[derive(Deserialize)]
    struct N {
        n: u64,
    }
    let count = |sql: String| {
        let env = &env;
        async move { env.ch_rows::<N>(&sql).await[0].n }
    };
    assert_eq!(
        count(format!(
            "SELECT count() AS n FROM zone_demand_forecast WHERE run_id = '{run}' AND bucket_start_ms >= {AS_OF}"
        ))
        .await,
        8,
        "2 zones × 4 buckets"
    );
    assert!(
        count(format!(
            "SELECT count() AS n FROM optimization_plan_moves WHERE run_id = '{run}' AND to_zone = '{centre}'"
        ))
        .await
            > 0
    );

    // 3. The same input again (every event produced a second time): nothing changes in the
    // history, and a run on it gives the identical plan.
    produce(&env, &events).await;
    wait_recorded(&env, &pg, 2 * events.len() as i64).await;
    assert_eq!(zone_demand(&env, &fleet).await, expected);
    let again = post(RUNS, body("forecast again")).await;
    assert_eq!(wait_final(again.clone()).await["status"], "completed");
    let plan = |v: &Value| -> Vec<String> {
        let mut p: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["cost"], r["efficiency"], r["coverage"], r["details"]]).to_string())
            .collect();
        p.sort();
        p
    };
    assert_eq!(
        plan(&results),
        plan(&get(format!("{RUNS}/{again}/results?limit=100")).await),
        "same history, same plan"
    );
    let moves = |v: &Value| -> Vec<String> {
        let mut p: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["action"], r["priority"], r["details"]]).to_string())
            .collect();
        p.sort();
        p
    };
    assert_eq!(
        moves(&get(format!("{RUNS}/{run}/recommendations?limit=100")).await),
        moves(&get(format!("{RUNS}/{again}/recommendations?limit=100")).await)
    );

    // 4. No history before `as_of`: the run fails and says why.
    let early = json!({"fleet_id": fleet, "name": "too early", "cost_weight": 0.2,
        "efficiency_weight": 0.1, "coverage_weight": 0.7,
        "parameters": {"rebalance": {"as_of_ms": D0, "idle": {north.as_str(): 1}}}});
    let failed = wait_final(post(RUNS, early).await).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("no zone demand"),
        "{failed}"
    );

    sigterm(&mut worker);
    sigterm(&mut api);
}

/// The simulator's zone demand (`Deriver::with_demand`, what `atlasmesh simulate` produces)
/// through the running system: two hours of a fleet's telemetry and its derived mission
/// events, folded by the telemetry and missions pipelines; every `zone_demand` bucket equals
/// what the produced events and samples say, counted here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_zone_demand_is_folded_exactly() {
    use atlasmesh_simulator::derived::{DemandConfig, Deriver};
    use atlasmesh_simulator::{valid_counted_events, SimConfig, Simulator};

    let env = TestEnv::new("simdemand");
    env.migrate();
    let mut worker = env.spawn_worker_args(0, &["--pipelines", "telemetry,missions"], &[]);
    // 07:00–09:00 UTC: the morning peak; four vehicles, one sample every 5 s.
    let start = 1_767_225_600_000 + 7 * 3_600_000;
    let mut sim = Simulator::new(SimConfig {
        seed: 5,
        fleets: 1,
        vehicles_per_fleet: 4,
        start_ms: start,
        interval_ms: 5_000,
        ..SimConfig::default()
    });
    let mut items = Vec::new();
    while sim.now_ms() < start + 2 * 3_600_000 {
        items.extend(sim.next_batch());
    }
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let mut deriver = Deriver::with_demand(DemandConfig::default());
    let derived = atlasmesh::produce::encode_derived(&codec, &env.cfg, &mut deriver, &items)
        .await
        .unwrap();
    let mission_records: Vec<&OutRecord> = derived
        .iter()
        .filter(|r| r.topic == env.cfg.topics.mission_events)
        .collect();
    // The same events, decoded, for the expectation.
    let mut events: Vec<MissionEventRecord> = Vec::new();
    for r in &mission_records {
        let (_, v) = codec.decode_value(&r.payload).await.unwrap();
        events.push(apache_avro::from_value(&v).unwrap());
    }
    let fleet = events
        .iter()
        .find(|e| e.kind == MissionEventKind::Requested)
        .expect("requests in the morning peak")
        .fleet_id
        .clone();
    let bucket = |ts: i64| ts.div_euclid(BUCKET) * BUCKET;
    let mut expected: BTreeMap<(String, i64), Expected> = BTreeMap::new();
    let mut requested_at: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
    for e in &events {
        let zone = e.zone_id.clone();
        match e.kind {
            MissionEventKind::Requested => {
                let z = zone.unwrap();
                requested_at.insert(&e.mission_id, (e.ts_ms, e.zone_id.as_deref().unwrap()));
                expected.entry((z, bucket(e.ts_ms))).or_default().0 += 1;
            }
            MissionEventKind::Assigned => {
                let (at, z) = requested_at[e.mission_id.as_str()];
                let row = expected.entry((z.to_string(), bucket(at))).or_default();
                row.1 += 1;
                row.3 += (e.ts_ms - at) as u64;
            }
            MissionEventKind::Expired => {
                let (at, z) = requested_at[e.mission_id.as_str()];
                expected.entry((z.to_string(), bucket(at))).or_default().2 += 1;
            }
            MissionEventKind::Completed if zone.is_some() => {
                expected
                    .entry((zone.unwrap(), bucket(e.ts_ms)))
                    .or_default()
                    .4 += 1;
            }
            _ => {}
        }
    }
    let served: u64 = expected.values().map(|r| r.1).sum();
    let expired: u64 = expected.values().map(|r| r.2).sum();
    assert!(
        served > 0 && expired > 0,
        "served {served}, expired {expired}"
    );
    // Idle vehicles per zone and bucket, from the samples the pipeline accepts.
    let mut idle: BTreeMap<(String, i64), std::collections::BTreeSet<String>> = BTreeMap::new();
    for e in valid_counted_events(&items) {
        if let (VehicleStatus::Idle, Some(z)) = (e.status, &e.zone_id) {
            idle.entry((z.clone(), bucket(e.ts_ms)))
                .or_default()
                .insert(e.vehicle_id.clone());
        }
    }
    for (k, row) in expected.iter_mut() {
        row.5 = idle.get(k).map_or(0, |v| v.len() as u64);
    }

    // Telemetry first (the idle counts are read from ClickHouse when a bucket is written).
    env.produce(&items).await;
    let started = Instant::now();
    let want_raw = valid_counted_events(&items).len() as u64;
    while env.raw_count().await < want_raw {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "telemetry not in ClickHouse; logs in {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let records: Vec<OutRecord> = mission_records.into_iter().cloned().collect();
    KafkaProducer::new(&env.cfg.kafka)
        .unwrap()
        .send_all("kafka", &records)
        .await
        .unwrap();
    let pg = env.pg().await;
    wait_recorded(&env, &pg, records.len() as i64).await;
    wait_zone_demand(&env, &fleet, &expected).await;
    sigterm(&mut worker);
}
