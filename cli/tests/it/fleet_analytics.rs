//! Fleet analytics (issue 14) through the running system: the real API and command worker.
//! Every entity of `/api/v1/fleet-analytics/…` is created through the command path and read
//! back in its list, by fleet (and by vehicle); rows the health pipeline would write stand in as
//! `stream` rows inserted into PostgreSQL, its daily history as rows of ClickHouse
//! `vehicle_health_daily`, and the capacity engine's result as an update of the queued metric.
//! Then a vehicle's health, the fleet's analytics report (JSON and CSV) and a stored report's
//! content are checked against numbers worked out by hand below, and callers of another fleet
//! are refused on every route.
//!
//! Three UTC days D0..D2 (D2 = today) of vehicles v1..v3; health scores (API rows `reported`,
//! the others `stream`):
//!
//! | vehicle | D0 | D1 | period mean |
//! |---|---|---|---|
//! | v1 | 40 (API, battery 60, SoH 88) | 50 (stream v2) | 45 |
//! | v2 | 80 | 90 | 85 |
//! | v3 | 60 | 70 | 65 |
//!
//! Period distribution: min 45, p10 = 45 + 0.2·(65 − 45) = 49, median 65, mean 65. D0 has no
//! fleet row: its distribution is the vehicles' (40, 60, 80 → median 60); D1 has a reported
//! fleet row (score 11) and the stream's (version 3, score 70), which wins.

use atlasmesh_core::analytics::report::{day_start, rfc3339};
use atlasmesh_core::{Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{sigterm, TestEnv, PATIENT_API};

const FA: &str = "/api/v1/fleet-analytics";
const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

async fn call(
    http: &reqwest::Client,
    token: &str,
    method: Method,
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

fn ch_time(ms: i64) -> String {
    rfc3339(ms).trim_end_matches('Z').replace('T', " ")
}

/// The ids of a page's items.
fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no page: {page}"))
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_analytics_through_the_running_system() {
    let env = TestEnv::new("fanalytics");
    env.migrate();
    let (mut api, base) = env.spawn_api_with(0, &PATIENT_API).await;
    let mut worker = env.spawn_worker_args(
        0,
        &["--pipelines", "commands"],
        &[("ATLASMESH_RUNNER__CHECKPOINT_INTERVAL_MS", "100")],
    );
    let http = reqwest::Client::new();
    let unique = env.cfg.kafka.group_prefix.replace('.', "-");
    let (fleet, other) = (format!("{unique}-f"), format!("{unique}-g"));
    let v = |n: u32| format!("{fleet}-v{n}");
    let (v1, v2, v3, v9) = (v(1), v(2), v(3), v(9));
    let op = env.token("analyst", Role::Operator, &Scope::fleets([fleet.as_str()]));
    let viewer = env.token("viewer", Role::Viewer, &Scope::fleets([fleet.as_str()]));
    let foreign = env.token("foreign", Role::Operator, &Scope::fleets([other.as_str()]));
    let d0 = day_start(atlasmesh_core::clock::now_ms()) - 2 * DAY;
    let (d1, d3) = (d0 + DAY, d0 + 3 * DAY);
    let t = |ms: i64| rfc3339(ms);

    // ---------------------------------------------------------------- creates
    let create = |path: &str, body: Value| {
        let url = format!("{base}{path}?wait=true");
        let (http, op) = (http.clone(), op.clone());
        async move {
            let (s, v) = call(&http, &op, Method::POST, url, Some(body.clone())).await;
            assert_eq!(s, StatusCode::CREATED, "{body}: {v}");
            v["entity_id"].as_str().unwrap().to_string()
        }
    };
    let zone = create(
        "/api/v1/fleet-optimization/zones",
        json!({"fleet_id": fleet, "name": "centre", "lat": 52.52, "lon": 13.40, "vehicle_capacity": 10}),
    )
    .await;
    let score_v1 = create(
        &format!("{FA}/health-scores"),
        json!({"fleet_id": fleet, "vehicle_id": v1, "period_start": t(d0), "period_end": t(d1),
               "score": 40.0, "battery": 60.0, "soh_pct": 88.0, "soh_stderr_pct": 1.5}),
    )
    .await;
    let score_fleet = create(
        &format!("{FA}/health-scores"),
        json!({"fleet_id": fleet, "period_start": t(d1), "period_end": t(d1 + DAY), "score": 11.0,
               "distribution": {"vehicles": 1, "min": 11.0, "p10": 11.0, "median": 11.0, "mean": 11.0,
                                "worst": [{"vehicle_id": v1, "score": 11.0}]}}),
    )
    .await;
    let efficiency = create(
        &format!("{FA}/efficiency-metrics"),
        json!({"fleet_id": fleet, "vehicle_id": v1, "period_start": t(d0), "period_end": t(d1),
               "distance_km": 200.0, "energy_kwh": 40.0, "operating_hours": 8.0, "faults": 2,
               "fault_minutes": 30.0, "fleet_median_kwh_per_km": 0.16, "utilization_pct": 55.0}),
    )
    .await;
    let failure = create(
        &format!("{FA}/predictions"),
        json!({"fleet_id": fleet, "vehicle_id": v1, "kind": "failure_risk", "as_of": t(d1 + 12 * HOUR),
               "horizon_days": 14, "value": 0.7, "lower": 0.55, "upper": 0.8, "threshold": 0.5,
               "inputs": {"faults_7d": 4}, "model": "logistic-v1"}),
    )
    .await;
    let soh = create(
        &format!("{FA}/predictions"),
        json!({"fleet_id": fleet, "vehicle_id": v2, "kind": "soh_threshold", "as_of": t(d1),
               "threshold": 80.0, "value": 30.0, "lower": 20.0, "upper": 45.0, "slope_per_month": -0.5,
               "model": "soh-ols"}),
    )
    .await;
    let trend = create(
        &format!("{FA}/trends"),
        json!({"fleet_id": fleet, "vehicle_id": v1, "metric": "soh_pct", "period_start": t(d0),
               "period_end": t(d0 + 3 * DAY), "points": 3, "slope_per_day": -0.25, "slope_se": 0.05,
               "direction": "declining", "value_now": 93.9}),
    )
    .await;
    let capacity = create(
        &format!("{FA}/capacity-metrics"),
        json!({"fleet_id": fleet, "zone_id": zone, "as_of": t(d1 + 6 * HOUR), "horizon_hours": 3}),
    )
    .await;
    let queued = create(
        &format!("{FA}/capacity-metrics"),
        json!({"fleet_id": fleet, "as_of": t(d1 + 7 * HOUR)}),
    )
    .await;
    let report = create(
        &format!("{FA}/reports"),
        json!({"fleet_id": fleet, "title": "Fleet health, 3 days", "period_start": t(d0),
               "period_end": t(d3), "worst_n": 1}),
    )
    .await;

    // Read back: as created, reported, version 0; derived columns; defaults.
    let get = |path: String| {
        let url = format!("{base}{path}");
        let (http, viewer) = (http.clone(), viewer.clone());
        async move {
            let (s, v) = call(&http, &viewer, Method::GET, url, None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let e = get(format!("{FA}/efficiency-metrics/{efficiency}")).await;
    assert_eq!(
        (e["source"].as_str(), e["version"].as_i64()),
        (Some("reported"), Some(0))
    );
    assert!(close(&e["kwh_per_km"], 0.2), "{e}");
    assert!(close(&e["efficiency_ratio"], 1.25), "{e}");
    assert!(close(&e["faults_per_1000_km"], 10.0), "{e}");
    assert!(close(&e["faults_per_operating_hour"], 0.25), "{e}");
    assert!(close(&e["fault_minutes_per_1000_km"], 150.0), "{e}");
    let p = get(format!("{FA}/predictions/{failure}")).await;
    assert_eq!(p["alarm"], json!(true), "derived from the threshold: {p}");
    let p = get(format!("{FA}/predictions/{soh}")).await;
    assert_eq!(
        &p["predicted_at"].as_str().unwrap()[..19],
        &t(d1 + 30 * DAY)[..19]
    );
    let c = get(format!("{FA}/capacity-metrics/{queued}")).await;
    assert_eq!(
        (
            &c["status"],
            &c["horizon_hours"],
            &c["demand_quantile"],
            &c["history_days"]
        ),
        (&json!("queued"), &json!(12), &json!(0.9), &json!(14))
    );
    let r = get(format!("{FA}/reports/{report}")).await;
    assert_eq!(
        (&r["worst_n"], &r["title"]),
        (&json!(1), &json!("Fleet health, 3 days"))
    );

    // Bad bodies: 422 naming the field; clients set neither source nor status; viewers write nothing.
    for (path, body, field) in [
        (
            "predictions",
            json!({"fleet_id": fleet, "vehicle_id": v1, "kind": "failure_risk", "as_of": t(d1),
                   "horizon_days": 14, "model": "m"}),
            "value",
        ),
        (
            "health-scores",
            json!({"fleet_id": fleet, "period_start": t(d0), "period_end": t(d1), "score": 1.0,
                   "source": "stream"}),
            "source",
        ),
        (
            "capacity-metrics",
            json!({"fleet_id": fleet, "horizon_hours": 73}),
            "horizon_hours",
        ),
        (
            "capacity-metrics",
            json!({"fleet_id": fleet, "status": "completed"}),
            "status",
        ),
        (
            "reports",
            json!({"fleet_id": fleet, "title": "x", "period_start": t(d1), "period_end": t(d0)}),
            "period_end",
        ),
    ] {
        let (s, v) = call(
            &http,
            &op,
            Method::POST,
            format!("{base}{FA}/{path}"),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
        assert!(v["error"]["fields"][field].is_string(), "{path}: {v}");
    }
    let (s, _) = call(
        &http,
        &viewer,
        Method::POST,
        format!("{base}{FA}/trends"),
        Some(json!({"fleet_id": fleet})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &http,
        &op,
        Method::PATCH,
        format!("{base}{FA}/capacity-metrics/{capacity}"),
        Some(json!({"status": "completed"})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::METHOD_NOT_ALLOWED,
        "no update of capacity metrics"
    );

    // ---------------------------------------------------------------- what the pipelines write
    let pg = env.pg().await;
    let score_row = |id: String,
                     vehicle: Option<String>,
                     start: i64,
                     score: f64,
                     version: i64,
                     dist: Option<Value>| {
        let pg = pg.clone();
        let fleet = fleet.clone();
        async move {
            sqlx::query(
                "INSERT INTO analytics_health_scores
                   (id, fleet_id, vehicle_id, period_start, period_end, score, distribution, source, version)
                 VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), to_timestamp($5::float8 / 1000), $6, $7, 'stream', $8)",
            )
            .bind(id)
            .bind(fleet)
            .bind(vehicle)
            .bind(start as f64)
            .bind((start + DAY) as f64)
            .bind(score)
            .bind(dist)
            .bind(version)
            .execute(&pg)
            .await
            .unwrap();
        }
    };
    for (vehicle, day, score, version) in [
        (&v1, d1, 50.0, 2),
        (&v2, d0, 80.0, 1),
        (&v2, d1, 90.0, 1),
        (&v3, d0, 60.0, 1),
        (&v3, d1, 70.0, 1),
    ] {
        score_row(
            format!("{vehicle}-{day}"),
            Some(vehicle.clone()),
            day,
            score,
            version,
            None,
        )
        .await;
    }
    score_row(
        format!("{fleet}-{d1}"),
        None,
        d1,
        70.0,
        3,
        Some(
            json!({"vehicles": 3, "min": 50.0, "p10": 54.0, "median": 70.0, "mean": 70.0,
                    "worst": [{"vehicle_id": v1, "score": 50.0}]}),
        ),
    )
    .await;
    // An older efficiency metric of v1 (inserted after the API's, ordered by period) and the
    // stream's failure risk of v3.
    sqlx::query(
        "INSERT INTO analytics_efficiency_metrics (id, fleet_id, vehicle_id, period_start, period_end,
           distance_km, energy_kwh, operating_hours, source, version)
         VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), to_timestamp($5::float8 / 1000), 90, 27, 5, 'stream', 1)",
    )
    .bind(format!("{v1}-eff"))
    .bind(&fleet)
    .bind(&v1)
    .bind((d0 - DAY) as f64)
    .bind(d0 as f64)
    .execute(&pg)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO analytics_predictions (id, fleet_id, vehicle_id, kind, as_of, horizon_days, value,
           alarm, inputs, model, source, version)
         VALUES ($1, $2, $3, 'failure_risk', to_timestamp($4::float8 / 1000), 14, 0.2, false, '{}', 'stream-lr', 'stream', 1)",
    )
    .bind(format!("{v3}-failure_risk"))
    .bind(&fleet)
    .bind(&v3)
    .bind(d1 as f64)
    .execute(&pg)
    .await
    .unwrap();
    // The capacity engine completes the first metric: 2 of 3 hours short in the zone.
    let hours = json!([
        {"zone_id": zone, "hour_start": t(d1 + 6 * HOUR), "available": 4, "demand_mean": 5.0, "demand_planned": 6.5, "shortfall": 2.5},
        {"zone_id": zone, "hour_start": t(d1 + 7 * HOUR), "available": 4, "demand_mean": 3.0, "demand_planned": 3.5, "shortfall": 0.0},
        {"zone_id": zone, "hour_start": t(d1 + 8 * HOUR), "available": 4, "demand_mean": 4.0, "demand_planned": 5.0, "shortfall": 1.0},
    ]);
    sqlx::query(
        "UPDATE analytics_capacity_metrics SET status = 'completed', hours = $2, available_vehicles = 4,
           peak_demand = 6.5, max_shortfall = 2.5, shortfall_hours = 2, started_at = now(), finished_at = now()
         WHERE id = $1",
    )
    .bind(&capacity)
    .bind(&hours)
    .execute(&pg)
    .await
    .unwrap();
    // The daily history: v1's D0 written twice (version 2 wins), D1; v9 only in ClickHouse.
    let mut rows = String::new();
    for (vehicle, day, version, soh, score) in [
        (&v1, d0, 1u32, 95.0, 41.0),
        (&v1, d0, 2, 94.0, 40.0),
        (&v1, d1, 1, 93.9, 50.0),
        (&v2, d1, 1, 99.0, 90.0),
        (&v9, d1, 1, 97.0, 75.0),
    ] {
        rows.push_str(
            &json!({"fleet_id": fleet, "vehicle_id": vehicle, "day_start": ch_time(day), "day_ms": day,
                    "version": version, "samples": 100, "distance_km": 120.0, "soh_pct": soh,
                    "soh_stderr_pct": 0.5, "soh_segments": 3, "score": score, "failure_alarm": 0,
                    "emitted_at_ms": day + DAY})
            .to_string(),
        );
        rows.push('\n');
    }
    env.ch_text(&format!(
        "INSERT INTO vehicle_health_daily FORMAT JSONEachRow\n{rows}"
    ))
    .await;

    // ---------------------------------------------------------------- lists, by fleet, by vehicle
    for (path, created, by_vehicle) in [
        ("health-scores", vec![&score_v1, &score_fleet], Some(&v1)),
        ("efficiency-metrics", vec![&efficiency], Some(&v1)),
        ("predictions", vec![&failure, &soh], None),
        ("trends", vec![&trend], None),
        ("capacity-metrics", vec![&capacity, &queued], None),
        ("reports", vec![&report], None),
    ] {
        let listed = ids(&get(format!("{FA}/{path}?fleet_id={fleet}&limit=1000")).await);
        let by_fleet = ids(&get(format!("{FA}/{path}/by-fleet/{fleet}?limit=1000")).await);
        for id in &created {
            assert!(listed.contains(id), "{path}: {id} not listed");
            assert!(by_fleet.contains(id), "{path}: {id} not by fleet");
        }
        if let Some(vehicle) = by_vehicle {
            let mine = ids(&get(format!("{FA}/{path}/by-vehicle/{vehicle}")).await);
            assert!(mine.contains(created[0]), "{path} by vehicle");
            assert!(
                !mine.iter().any(|i| created[1..].contains(&i)),
                "{path}: another vehicle's"
            );
        }
        // Another fleet's caller: by fleet and filtered lists refused, its list holds nothing of
        // this fleet, an entity by id is not found.
        for url in [
            format!("{base}{FA}/{path}/by-fleet/{fleet}"),
            format!("{base}{FA}/{path}?fleet_id={fleet}"),
        ] {
            let (s, v) = call(&http, &foreign, Method::GET, url, None).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
            assert_eq!(v["error"]["code"], "forbidden");
        }
        let (s, v) = call(
            &http,
            &foreign,
            Method::GET,
            format!("{base}{FA}/{path}?limit=1000"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(!v.to_string().contains(&fleet), "{path} leaks: {v}");
        let (s, _) = call(
            &http,
            &foreign,
            Method::GET,
            format!("{base}{FA}/{path}/{}", created[0]),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let stream_listed = ids(&get(format!("{FA}/health-scores/by-vehicle/{v1}")).await);
    assert!(
        stream_listed.contains(&format!("{v1}-{d1}")),
        "stream rows list with reported ones"
    );
    let (s, v) = call(
        &http,
        &foreign,
        Method::GET,
        format!("{base}{FA}/predictions/by-vehicle/{v1}"),
        None,
    )
    .await;
    assert_eq!(
        (s, ids(&v).len()),
        (StatusCode::OK, 0),
        "another fleet's vehicle: nothing"
    );

    // ---------------------------------------------------------------- a vehicle's health
    let h = get(format!("{FA}/vehicles/{v1}/health")).await;
    assert_eq!(h["fleet_ids"], json!([fleet]));
    let s = &h["health_score"];
    assert_eq!(
        (&s["score"], &s["source"], &s["version"]),
        (&json!(50.0), &json!("stream"), &json!(2)),
        "{h}"
    );
    assert_eq!(
        h["efficiency"]["id"],
        json!(efficiency),
        "the newest period, not the newest insert"
    );
    assert!(close(&h["efficiency"]["kwh_per_km"], 0.2));
    let kinds: Vec<(&str, &str)> = h["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["id"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("failure_risk", failure.as_str())]);
    assert_eq!(h["trends"][0]["id"], json!(trend));
    assert_eq!(h["days"], json!(30));
    let history: Vec<(String, f64, u64)> = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().to_string(),
                d["soh_pct"].as_f64().unwrap(),
                d["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            (t(d0)[..10].to_string(), 94.0, 2),
            (t(d1)[..10].to_string(), 93.9, 1)
        ],
        "{h}"
    );
    let h = get(format!("{FA}/vehicles/{v1}/health?days=2")).await;
    assert_eq!(
        h["history"].as_array().unwrap().len(),
        1,
        "yesterday and today: {h}"
    );
    let h = get(format!("{FA}/vehicles/{v9}/health")).await;
    assert_eq!(
        (
            h["health_score"].is_null(),
            h["history"][0]["soh_pct"].as_f64()
        ),
        (true, Some(97.0)),
        "{h}"
    );
    for (url, status, code) in [
        (
            format!("{FA}/vehicles/{v1}/health?days=0"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            format!("{FA}/vehicles/{v1}/health?days=367"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            format!("{FA}/vehicles/{v1}/health?hours=1"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            format!("{FA}/vehicles/{unique}-nobody/health"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let (s, v) = call(&http, &viewer, Method::GET, format!("{base}{url}"), None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{url}: {v}"
        );
    }
    for vehicle in [&v1, &v9] {
        let (s, v) = call(
            &http,
            &foreign,
            Method::GET,
            format!("{base}{FA}/vehicles/{vehicle}/health"),
            None,
        )
        .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{v}"
        );
    }

    // ---------------------------------------------------------------- the fleet's report
    let url = format!(
        "/api/v1/fleets/{fleet}/analytics-report?from={d0}&to={}",
        t(d3)
    );
    let r = get(url.clone()).await;
    let d = &r["distribution"];
    assert_eq!(
        (&d["vehicles"], &d["min"], &d["median"], &d["mean"]),
        (&json!(3), &json!(45.0), &json!(65.0), &json!(65.0)),
        "{r}"
    );
    assert!(close(&d["p10"], 49.0), "{d}");
    let daily: Vec<(&str, &str, f64)> = r["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["day"].as_str().unwrap(),
                x["basis"].as_str().unwrap(),
                x["score"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        daily,
        [
            (&t(d0)[..10], "vehicles", 60.0),
            (&t(d1)[..10], "fleet_row", 70.0)
        ],
        "{r}"
    );
    assert_eq!(r["daily"][1]["distribution"]["p10"], json!(54.0));
    let worst: Vec<(&str, f64)> = r["worst_vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["vehicle_id"].as_str().unwrap(),
                x["score"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        worst,
        [
            (v1.as_str(), 45.0),
            (v3.as_str(), 65.0),
            (v2.as_str(), 85.0)
        ]
    );
    let w1 = &r["worst_vehicles"][0];
    assert_eq!(
        (&w1["battery"], &w1["soh_pct"], &w1["rows"]),
        (&json!(60.0), &json!(88.0), &json!(2))
    );
    let failures: Vec<(&str, bool, f64)> = r["predicted_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["vehicle_id"].as_str().unwrap(),
                x["alarm"].as_bool().unwrap(),
                x["probability"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failures,
        [(v1.as_str(), true, 0.7), (v3.as_str(), false, 0.2)]
    );
    assert_eq!(r["predicted_failures"][0]["horizon_days"], json!(14));
    let b = &r["battery_replacements"];
    assert_eq!(b.as_array().unwrap().len(), 1, "{r}");
    assert_eq!(
        (
            &b[0]["vehicle_id"],
            &b[0]["predicted_date"],
            &b[0]["earliest"],
            &b[0]["latest"],
            &b[0]["days"]
        ),
        (
            &json!(v2),
            &json!(t(d1 + 30 * DAY)[..10]),
            &json!(t(d1 + 20 * DAY)),
            &json!(t(d1 + 45 * DAY)),
            &json!(30.0)
        )
    );
    let c = &r["capacity_shortfalls"];
    assert_eq!(
        c.as_array().unwrap().len(),
        1,
        "the queued metric is not computed: {r}"
    );
    assert_eq!(
        (&c[0]["metric_id"], &c[0]["max_shortfall"], &c[0]["zone_id"]),
        (&json!(capacity), &json!(2.5), &json!(zone))
    );
    assert_eq!(
        c[0]["zones"],
        json!([{"zone_id": zone, "hours_short": 2, "max_shortfall": 2.5}])
    );
    let sum = &r["summary"];
    assert_eq!(
        (
            &sum["vehicles_scored"],
            &sum["failure_alarms"],
            &sum["battery_replacements"],
            &sum["capacity_shortfalls"],
            &sum["shortfall_hours"]
        ),
        (&json!(3), &json!(1), &json!(1), &json!(1), &json!(2))
    );
    let r = get(format!("{url}&replacement_within_days=10&worst_n=1")).await;
    assert_eq!(
        r["battery_replacements"],
        json!([]),
        "crosses 27 days after the period"
    );
    assert_eq!(r["worst_vehicles"].as_array().unwrap().len(), 1);

    // CSV: the same numbers in long form.
    let res = http
        .get(format!("{base}{url}&format=csv"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    assert!(csv.starts_with("section,item,field,value\r\n"), "{csv}");
    let cells: std::collections::BTreeMap<(String, String, String), String> = csv
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "{l}");
            ((f[0].into(), f[1].into(), f[2].into()), f[3].to_string())
        })
        .collect();
    let cell = |section: &str, item: &str, field: &str| {
        cells
            .get(&(section.into(), item.into(), field.into()))
            .unwrap_or_else(|| panic!("{section},{item},{field} missing in\n{csv}"))
            .clone()
    };
    let number =
        |section: &str, item: &str, field: &str| cell(section, item, field).parse::<f64>().unwrap();
    assert_eq!(number("distribution", "period", "median"), 65.0);
    assert!((number("distribution", "period", "p10") - 49.0).abs() < 1e-9);
    assert_eq!(cell("daily", &t(d0)[..10], "basis"), "vehicles");
    assert_eq!(number("daily", &t(d1)[..10], "score"), 70.0);
    assert_eq!(cell("daily", &t(d1)[..10], "worst_1_vehicle"), v1);
    assert_eq!(number("vehicle", &v1, "score"), 45.0);
    assert_eq!(number("vehicle", &v2, "score"), 85.0);
    assert_eq!(cell("failure", &v1, "alarm"), "true");
    assert_eq!(number("failure", &v3, "probability"), 0.2);
    assert_eq!(
        cell("battery", &v2, "predicted_date"),
        &t(d1 + 30 * DAY)[..10]
    );
    assert_eq!(number("capacity", &capacity, "max_shortfall"), 2.5);
    assert_eq!(
        number("capacity", &format!("{capacity}/{zone}"), "hours_short"),
        2.0
    );
    assert_eq!(number("summary", "", "failure_alarms"), 1.0);

    // The stored report: its own period and worst_n (1).
    let r = get(format!("{FA}/reports/{report}/content")).await;
    assert_eq!(
        (&r["report_id"], &r["title"], &r["from_ms"], &r["to_ms"]),
        (
            &json!(report),
            &json!("Fleet health, 3 days"),
            &json!(d0),
            &json!(d3)
        )
    );
    assert_eq!(r["worst_vehicles"].as_array().unwrap().len(), 1);
    assert_eq!(r["worst_vehicles"][0]["vehicle_id"], json!(v1));
    assert_eq!(
        r["predicted_failures"].as_array().unwrap().len(),
        1,
        "the alarm only"
    );
    assert_eq!(
        r["distribution"]["worst"],
        json!([{"vehicle_id": v1, "score": 45.0}])
    );
    let res = http
        .get(format!("{base}{FA}/reports/{report}/content?format=csv"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    let csv = res.text().await.unwrap();
    assert!(
        csv.contains(&format!("report,{fleet},report_id,{report}\r\n")),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("vehicle,{v1},soh_pct,88\r\n")),
        "{csv}"
    );

    // Refusals: another fleet's caller, bad parameters, unknown reports.
    for (token, url, status) in [
        (
            &foreign,
            format!("/api/v1/fleets/{fleet}/analytics-report"),
            StatusCode::FORBIDDEN,
        ),
        (
            &foreign,
            format!("{FA}/reports/{report}/content"),
            StatusCode::NOT_FOUND,
        ),
        (
            &viewer,
            format!("{FA}/reports/{unique}-none/content"),
            StatusCode::NOT_FOUND,
        ),
        (
            &viewer,
            format!("{url}&format=xml&worst_n=0"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &viewer,
            format!("{FA}/reports/{report}/content?replacement_within_days=0"),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, v) = call(&http, token, Method::GET, format!("{base}{url}"), None).await;
        assert_eq!(s, status, "{url}: {v}");
        assert!(v["error"]["code"].is_string(), "{url}: {v}");
    }
    let (_, v) = call(
        &http,
        &viewer,
        Method::GET,
        format!("{base}{url}&format=xml&worst_n=0"),
        None,
    )
    .await;
    let bad: Vec<&String> = v["error"]["fields"].as_object().unwrap().keys().collect();
    assert_eq!(bad, ["format", "worst_n"]);

    // The OpenAPI document lists the routes.
    let (_, doc) = call(
        &http,
        &viewer,
        Method::GET,
        format!("{base}/api/v1/openapi.json"),
        None,
    )
    .await;
    for p in [
        "/api/v1/fleet-analytics/vehicles/{vehicle_id}/health",
        "/api/v1/fleet-analytics/reports/{id}/content",
        "/api/v1/fleets/{fleet_id}/analytics-report",
        "/api/v1/fleet-analytics/health-scores/by-vehicle/{value}",
        "/api/v1/fleet-analytics/capacity-metrics",
    ] {
        assert!(doc["paths"][p]["get"].is_object(), "{p} not documented");
    }
    assert!(doc["components"]["schemas"]["FleetHealthReport"].is_object());

    sigterm(&mut worker);
    sigterm(&mut api);
}
