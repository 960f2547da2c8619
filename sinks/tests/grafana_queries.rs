//! Every Grafana panel and template-variable query runs against the real ClickHouse (the stack's
//! 18.16 server) over fixture rows and returns rows with the columns its file declares.
//!
//! - A fresh database gets every migration through `atlasmesh_sinks::clickhouse::migrate`,
//!   then `deploy/grafana/queries/fixtures.sql` (shared with scripts/chdb-check.py, which runs
//!   the same queries on chdb / ClickHouse 26.x), then one row per history table through the
//!   sink's own `write_*` functions (so the row structs match the tables).
//! - Each `deploy/grafana/queries/**/*.sql` gets the macro substitution that
//!   `deploy/grafana/queries/macros.json` defines, then must return ≥ 1 row whose column names
//!   equal its `-- columns:` header.
//! - The provisioned dashboards must carry exactly those files as their rawSql / variable
//!   queries (scripts/grafana-build.py renders them), so panel and file cannot drift.
//!
//! Needs CLICKHOUSE_URL (`eval "$(scripts/stack env)"`; default http://127.0.0.1:8123).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atlasmesh_core::config::ClickHouseConfig;
use atlasmesh_sinks::clickhouse::{
    alert_event_action_code, alert_scope_code, alert_severity_code, alert_status_code, client,
    datetime_secs, migration_statements, score_period_code, trend_direction_code, AlertHistoryRow,
    CapacityForecastRow, ClickHouseSink, FleetHealthRow, MissionWindowRow, PlanMoveRow,
    PoolUtilizationRow, ScoreHistoryRow, TrendHistoryRow, VehicleHealthRow, ZoneDemandRow,
    ZoneForecastRow,
};
use serde_json::Value;

mod clickhouse_db;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn queries_dir() -> PathBuf {
    repo().join("deploy/grafana/queries")
}

/// Every panel/variable SQL file, relative to the queries folder, with its text (trimmed).
fn query_files() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|x| x == "sql")
                && p.file_name().unwrap() != "fixtures.sql"
            {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&p).unwrap().trim().to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&queries_dir(), &queries_dir(), &mut out);
    out
}

fn expected_columns(sql: &str) -> Vec<String> {
    let line = sql
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("--")
                .map(str::trim)
                .and_then(|l| l.strip_prefix("columns:"))
        })
        .expect("a '-- columns:' header");
    line.split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// The substitution of macros.json (the same rules as scripts/grafana-build.py `substitute`).
fn substitute(sql: &str, macros: &Value, now_s: i64) -> String {
    let from = (now_s + macros["from_offset_s"].as_i64().unwrap()).to_string();
    let to = (now_s + macros["to_offset_s"].as_i64().unwrap()).to_string();
    let interval = macros["interval_s"].as_i64().unwrap().to_string();
    let fill = |t: &str, arg: Option<&str>| {
        let out = t
            .replace("{from}", &from)
            .replace("{to}", &to)
            .replace("{interval_s}", &interval);
        match arg {
            Some(a) => out.replace("{0}", a),
            None => out,
        }
    };
    let mut names: Vec<(&String, &str)> = macros["macros"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k, v.as_str().unwrap()))
        .collect();
    names.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut sql = sql.to_string();
    for (name, template) in names {
        loop {
            let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
            let mut from_idx = 0;
            let found = loop {
                match sql[from_idx..].find(name.as_str()) {
                    None => break None,
                    Some(i) => {
                        let at = from_idx + i;
                        let end = at + name.len();
                        if end < sql.len() && is_ident(sql.as_bytes()[end]) {
                            from_idx = at + 1;
                        } else {
                            break Some(at);
                        }
                    }
                }
            };
            let Some(at) = found else { break };
            let end = at + name.len();
            if template.contains("{0}") {
                assert_eq!(
                    sql.as_bytes().get(end),
                    Some(&b'('),
                    "{name} needs one argument"
                );
                let (mut depth, mut j) = (0, end);
                loop {
                    match sql.as_bytes()[j] {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let replaced = fill(template, Some(sql[end + 1..j].trim()));
                sql = format!("{}{}{}", &sql[..at], replaced, &sql[j + 1..]);
            } else {
                sql = format!("{}{}{}", &sql[..at], fill(template, None), &sql[end..]);
            }
        }
    }
    for (name, value) in macros["variables"].as_object().unwrap() {
        sql = sql.replace(&format!("${{{name}}}"), value.as_str().unwrap());
    }
    assert!(
        !sql.contains('$'),
        "unsupported macro or variable left in:\n{sql}"
    );
    sql
}

/// rawSql of every ClickHouse panel target and the query of every variable, per dashboard.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(repo().join("deploy/grafana/dashboards")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if let Some(q) = v["query"].as_str() {
                out.push((
                    format!("{name} variable {}", v["name"]),
                    q.trim().to_string(),
                ));
            }
        }
        let mut panels: Vec<&Value> = d["panels"].as_array().into_iter().flatten().collect();
        while let Some(p) = panels.pop() {
            panels.extend(p["panels"].as_array().into_iter().flatten());
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(sql) = t["rawSql"].as_str() {
                    out.push((
                        format!("{name} panel {}", p["title"]),
                        sql.trim().to_string(),
                    ));
                }
            }
        }
    }
    out
}

/// Whether a JSONCompact value is data: not null, zero, empty or NaN.
fn is_data(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => {
            !s.is_empty() && s.parse::<f64>().map_or(true, |f| f != 0.0 && !f.is_nan())
        }
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

async fn fetch_json(ch: &::clickhouse::Client, sql: &str) -> Value {
    let mut cursor = ch.query(sql).fetch_bytes("JSONCompact").expect("query");
    let bytes = cursor
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    serde_json::from_slice(&bytes).expect("JSONCompact")
}

/// One row per history table through the sink's write functions.
async fn write_history_rows(sink: &ClickHouseSink, now_ms: i64) {
    let hour_ms = now_ms - now_ms.rem_euclid(3_600_000) - 3_600_000;
    sink.write_score_history(&[ScoreHistoryRow {
        fleet_id: "fleet-gq-sink".into(),
        vehicle_id: String::new(),
        period: score_period_code("hour").unwrap(),
        period_start: datetime_secs(hour_ms),
        period_start_ms: hour_ms,
        period_end_ms: hour_ms + 3_600_000,
        version: 1,
        total: 80.0,
        efficiency: 81.0,
        utilization: 70.0,
        reliability: 90.0,
        safety: 95.0,
        cost: 60.0,
        benchmark_id: "bench-sink".into(),
        benchmark_pct: 106.7,
        computed_at_ms: now_ms,
    }])
    .await
    .expect("write_score_history");
    sink.write_trend_history(&[TrendHistoryRow {
        fleet_id: "fleet-gq-sink".into(),
        metric: "utilization".into(),
        horizon: "24h".into(),
        computed_at: datetime_secs(now_ms),
        computed_at_ms: now_ms,
        slope: 0.01,
        direction: trend_direction_code("improving").unwrap(),
        change_pct: None,
        forecast: 0.7,
        lower: 0.6,
        upper: 0.8,
        r2: 0.9,
        n: 24,
    }])
    .await
    .expect("write_trend_history");
    sink.write_alert_history(&[AlertHistoryRow {
        dedup_key: "low-utilization/fleet-gq-sink".into(),
        rule_id: "low-utilization".into(),
        scope: alert_scope_code("fleet").unwrap(),
        subject: "fleet-gq-sink".into(),
        fleet_id: "fleet-gq-sink".into(),
        metric: "utilization".into(),
        severity: alert_severity_code("warning").unwrap(),
        status: alert_status_code("firing").unwrap(),
        event_action: alert_event_action_code("firing"),
        value: 0.4,
        threshold: 0.5,
        at: datetime_secs(now_ms),
        at_ms: now_ms,
        starts_at_ms: now_ms,
        ends_at_ms: 0,
        summary: "utilization of fleet-gq-sink is 0.4".into(),
        label_names: vec![],
        label_values: vec![],
    }
    .with_labels([("team", "ops")])])
        .await
        .expect("write_alert_history");
    sink.write_pool_utilization(&[PoolUtilizationRow::new(
        "pool-sink",
        "fleet-gq-sink",
        "charger",
        now_ms,
        8.0,
        6.0,
        1,
    )])
    .await
    .expect("write_pool_utilization");
    sink.write_mission_windows(&[MissionWindowRow {
        fleet_id: "fleet-gq-sink".into(),
        window_start: datetime_secs(hour_ms),
        window_start_ms: hour_ms,
        window_end_ms: hour_ms + 3_600_000,
        version: 1,
        missions_started: 3,
        missions_completed: 2,
        missions_failed: 1,
        duration_ms_sum: 5_400_000,
        planned_duration_ms_sum: 5_000_000,
        safety_events: 1,
        safety_critical: 0,
        distance_m: 42_000,
        emitted_at_ms: now_ms,
    }])
    .await
    .expect("write_mission_windows");
    let bucket_ms = now_ms - now_ms.rem_euclid(900_000) - 900_000;
    sink.write_zone_demand(&[ZoneDemandRow {
        fleet_id: "fleet-gq-sink".into(),
        zone_id: "zone-sink".into(),
        bucket_start: datetime_secs(bucket_ms),
        bucket_start_ms: bucket_ms,
        bucket_end_ms: bucket_ms + 900_000,
        version: 1,
        requests: 9,
        served: 7,
        expired: 2,
        wait_ms_sum: 420_000,
        arrivals: 4,
        idle_vehicles: 3,
        emitted_at_ms: now_ms,
    }])
    .await
    .expect("write_zone_demand");
    sink.write_zone_forecasts(&[ZoneForecastRow {
        fleet_id: "fleet-gq-sink".into(),
        run_id: "run-sink".into(),
        zone_id: "zone-sink".into(),
        bucket_start: datetime_secs(bucket_ms),
        bucket_start_ms: bucket_ms,
        method: "holt_winters".into(),
        mean: 8.2,
        upper80: 10.9,
        upper95: 12.4,
        planned: 10,
        created_at_ms: now_ms,
    }])
    .await
    .expect("write_zone_forecasts");
    sink.write_plan_moves(&[PlanMoveRow {
        fleet_id: "fleet-gq-sink".into(),
        run_id: "run-sink".into(),
        from_zone: "zone-sink".into(),
        to_zone: "zone-sink-2".into(),
        depart_at: datetime_secs(bucket_ms),
        depart_ms: bucket_ms,
        vehicles: 2,
        created_at_ms: now_ms,
    }])
    .await
    .expect("write_plan_moves");
    let day_ms = now_ms - now_ms.rem_euclid(86_400_000) - 86_400_000;
    sink.write_vehicle_health(&[VehicleHealthRow {
        fleet_id: "fleet-gq-sink".into(),
        vehicle_id: "veh-sink".into(),
        day_start: datetime_secs(day_ms),
        day_ms,
        version: 1,
        samples: 1440,
        distance_km: 140.0,
        energy_kwh: 26.6,
        kwh_per_km: Some(0.19),
        fleet_median_kwh_per_km: Some(0.2),
        observed_hours: 24.0,
        operating_hours: 11.0,
        busy_hours: 9.0,
        maintenance_hours: 0.0,
        faults: 1,
        fault_minutes: 12.0,
        precursors: 1,
        failures: 0,
        soh_pct: Some(93.5),
        soh_stderr_pct: Some(0.6),
        soh_segments: 4,
        score: Some(72.0),
        battery: Some(80.0),
        reliability: Some(70.0),
        efficiency: Some(75.0),
        availability: Some(90.0),
        failure_risk: Some(0.12),
        failure_risk_low: Some(0.07),
        failure_risk_high: Some(0.2),
        failure_alarm: 0,
        soh_per_month: Some(-0.4),
        soh_per_1000_km: Some(-0.25),
        soh_crosses_at_ms: Some(day_ms + 400 * 86_400_000),
        days_to_soh_threshold: Some(400.0),
        emitted_at_ms: now_ms,
    }])
    .await
    .expect("write_vehicle_health");
    sink.write_fleet_health(&[FleetHealthRow {
        fleet_id: "fleet-gq-sink".into(),
        day_start: datetime_secs(day_ms),
        day_ms,
        version: 1,
        vehicles: 1,
        scored: 1,
        min_score: Some(72.0),
        p10_score: Some(72.0),
        median_score: Some(72.0),
        mean_score: Some(72.0),
        worst_vehicles: vec!["veh-sink".into()],
        worst_scores: vec![72.0],
        alarms: 0,
        emitted_at_ms: now_ms,
    }])
    .await
    .expect("write_fleet_health");
    let hour_ms = now_ms - now_ms.rem_euclid(3_600_000);
    sink.write_capacity_forecast(&[CapacityForecastRow {
        fleet_id: "fleet-gq-sink".into(),
        metric_id: "cap-sink".into(),
        zone_id: "zone-sink".into(),
        hour_start: datetime_secs(hour_ms),
        hour_ms,
        available: 3,
        demand_mean: 4.5,
        demand_planned: 7.0,
        shortfall: 4.0,
        created_at_ms: now_ms,
    }])
    .await
    .expect("write_capacity_forecast");
}

#[tokio::test]
async fn every_grafana_query_returns_rows_on_clickhouse() {
    let cfg = clickhouse_db::config("grafana");
    let ch = client(&cfg);
    clickhouse_db::with_database(&cfg, || run(&cfg, &ch)).await;
}

async fn run(cfg: &ClickHouseConfig, ch: &::clickhouse::Client) {
    // Fixtures, shared with scripts/chdb-check.py.
    let fixtures = std::fs::read_to_string(queries_dir().join("fixtures.sql")).unwrap();
    for stmt in migration_statements(&fixtures) {
        ch.query(&stmt)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("fixture: {e}\n{stmt}"));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    write_history_rows(&ClickHouseSink::new(cfg), now_ms).await;
    for (table, fleet) in [
        ("performance_score_history", "fleet-gq-sink"),
        ("trend_history", "fleet-gq-sink"),
        ("alert_history", "fleet-gq-sink"),
        ("resource_pool_utilization", "fleet-gq-sink"),
        ("mission_window_metrics", "fleet-gq-sink"),
        ("vehicle_health_daily", "fleet-gq-sink"),
        ("fleet_health_daily", "fleet-gq-sink"),
        ("capacity_forecast", "fleet-gq-sink"),
    ] {
        let out = fetch_json(
            ch,
            &format!("SELECT count() AS n FROM {table} WHERE fleet_id = '{fleet}'"),
        )
        .await;
        assert_eq!(out["data"][0][0], "1", "{table}: the sink's row");
    }
    let labels = fetch_json(
        ch,
        "SELECT label_names, label_values FROM alert_history WHERE fleet_id = 'fleet-gq-sink'",
    )
    .await;
    assert_eq!(labels["data"][0], serde_json::json!([["team"], ["ops"]]));

    // Every query file, macros substituted, returns rows with its declared columns.
    let macros: Value =
        serde_json::from_str(&std::fs::read_to_string(queries_dir().join("macros.json")).unwrap())
            .unwrap();
    let files = query_files();
    assert!(files.len() >= 40, "only {} query files", files.len());
    let now_s = now_ms / 1000;
    let mut failures = Vec::new();
    for (file, text) in &files {
        let sql = substitute(text, &macros, now_s);
        let out = fetch_json(ch, &sql).await;
        let names: Vec<&str> = out["meta"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        let rows = out["rows"].as_u64().unwrap();
        if names != expected_columns(text) || rows == 0 {
            failures.push(format!(
                "{file}: {rows} rows, columns {names:?}, expected {:?}",
                expected_columns(text)
            ));
        } else if !out["data"][0].as_array().unwrap().iter().any(is_data) {
            // An aggregate without GROUP BY always yields one row: it must also find data.
            failures.push(format!(
                "{file}: the first row holds only zeros/nulls: {}",
                out["data"][0]
            ));
        }
        if names.first() == Some(&"time") {
            let t = out["meta"][0]["type"].as_str().unwrap();
            if !t.starts_with("DateTime") {
                failures.push(format!("{file}: time column is {t}, not DateTime"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "queries failing on ClickHouse:\n{}",
        failures.join("\n")
    );

    // The dashboards carry exactly these files.
    let mut unused: BTreeMap<&String, &String> = files.iter().collect();
    for (place, sql) in dashboard_queries() {
        let file = files.iter().find(|(_, text)| **text == sql).map(|(f, _)| f);
        let file = file.unwrap_or_else(|| panic!("{place}: rawSql matches no file under deploy/grafana/queries (run scripts/grafana-build.py)"));
        unused.remove(file);
    }
    assert!(
        unused.is_empty(),
        "query files no dashboard uses: {:?}",
        unused.keys().collect::<Vec<_>>()
    );
}

#[test]
fn substitution_follows_macros_json() {
    let macros: Value =
        serde_json::from_str(&std::fs::read_to_string(queries_dir().join("macros.json")).unwrap())
            .unwrap();
    let now = 1_700_000_000;
    let from = now + macros["from_offset_s"].as_i64().unwrap();
    let to = now + macros["to_offset_s"].as_i64().unwrap();
    let got = substitute(
        "SELECT intDiv(toUInt32(ts), $__interval_s) FROM t WHERE $__timeFilter(toDateTime(ts)) AND f = '${fleet_id}' AND x >= $__fromTime",
        &macros,
        now,
    );
    assert_eq!(
        got,
        format!(
            "SELECT intDiv(toUInt32(ts), {}) FROM t WHERE toDateTime(ts) >= toDateTime({from}) AND toDateTime(ts) <= toDateTime({to}) AND f = '{}' AND x >= toDateTime({from})",
            macros["interval_s"], macros["variables"]["fleet_id"].as_str().unwrap()
        )
    );
    let bad = std::panic::catch_unwind(|| substitute("WHERE $__timeFilter_ms(ts)", &macros, now));
    assert!(bad.is_err(), "an unsupported macro must fail");
}
