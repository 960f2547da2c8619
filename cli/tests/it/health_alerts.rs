//! Vehicle alert rules on the daily vehicle health metrics, end to end: rules through the API
//! (a fleet or federation rule naming such a metric is refused with a 422 naming the field),
//! the health pipeline's streamed rows written into PostgreSQL the way it writes them (a
//! vehicle-day's score created once and re-written with a higher version; one prediction row
//! per vehicle and kind, overwritten each day), the real worker (`--pipelines
//! alerts,commands`), transitions read back from PostgreSQL, the alert topic and ClickHouse.

use std::collections::{BTreeMap, BTreeSet};

use atlasmesh_core::analytics::alert;
use atlasmesh_core::{Role, Scope};
use reqwest::Method;
use serde_json::json;

use crate::alerts::{call, eventually, paged, transitions_of};
use crate::common::{sigterm, TestEnv, PATIENT_API};

const DAY: i64 = 86_400_000;
/// 2024-05-01T00:00:00Z: day 0.
const DAY0: i64 = 1_714_521_600_000;

/// The end of day `d` (the event time of its values).
fn day_end(d: i64) -> i64 {
    DAY0 + (d + 1) * DAY
}

/// Writes the health score of `vehicle` for day `d` as the health pipeline does: the row of
/// the vehicle-day (id from both), upserted forward by version.
async fn score_row(
    pg: &sqlx::PgPool,
    fleet: &str,
    vehicle: &str,
    d: i64,
    score: f64,
    version: i64,
) {
    sqlx::query(
        "INSERT INTO analytics_health_scores (id, fleet_id, vehicle_id, period_start, period_end, score, source, version)
         VALUES ($1, $2, $3, to_timestamp($4::double precision / 1000), to_timestamp($5::double precision / 1000), $6, 'stream', $7)
         ON CONFLICT (id) DO UPDATE SET score = excluded.score, version = excluded.version, updated_at = now()
         WHERE analytics_health_scores.version < excluded.version",
    )
    .bind(format!("hs-{vehicle}-{d}"))
    .bind(fleet)
    .bind(vehicle)
    .bind(DAY0 + d * DAY)
    .bind(day_end(d))
    .bind(score)
    .bind(version)
    .execute(pg)
    .await
    .unwrap();
}

/// Writes the newest `kind` prediction of `vehicle`, made at the end of day `d`.
async fn prediction_row(
    pg: &sqlx::PgPool,
    fleet: &str,
    vehicle: &str,
    kind: &str,
    d: i64,
    value: Option<f64>,
) {
    sqlx::query(
        "INSERT INTO analytics_predictions (id, fleet_id, vehicle_id, kind, as_of, horizon_days, value, model, source, version)
         VALUES ($1, $2, $3, $4, to_timestamp($5::double precision / 1000), 30, $6, 'it', 'stream', $7)
         ON CONFLICT (id) DO UPDATE SET as_of = excluded.as_of, value = excluded.value,
            version = excluded.version, updated_at = now()
         WHERE analytics_predictions.version < excluded.version",
    )
    .bind(format!("pr-{vehicle}-{kind}"))
    .bind(fleet)
    .bind(vehicle)
    .bind(kind)
    .bind(day_end(d))
    .bind(value)
    .bind(d + 1)
    .execute(pg)
    .await
    .unwrap();
}

/// The event-time clock of `(rule, vehicle)` in the evaluator's state.
async fn clock(pg: &sqlx::PgPool, rule: &str, vehicle: &str) -> Option<i64> {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT clock_ms FROM alert_health_state WHERE rule_id = $1 AND subject = $2",
    )
    .bind(rule)
    .bind(vehicle)
    .fetch_optional(pg)
    .await
    .unwrap()
    .flatten()
}

/// Waits until `key` has at least `n` transitions in PostgreSQL and returns them.
async fn wait_transitions(
    env: &TestEnv,
    pg: &sqlx::PgPool,
    what: &str,
    key: &str,
    n: usize,
) -> Vec<(i64, String, i64, Option<String>)> {
    eventually(what, env, || {
        let (pg, key) = (pg.clone(), key.to_string());
        async move {
            let t = transitions_of(&pg, &key).await;
            (t.len() >= n).then_some(t)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn health_score_and_failure_risk_rules_fire_and_resolve_on_the_daily_rows() {
    let env = TestEnv::new("healthalerts");
    env.migrate();
    let pg = env.pg().await;
    let (mut api, base) = env.spawn_api_with(0, &PATIENT_API).await;
    let mut worker = env.spawn_worker_args(
        0,
        &["--pipelines", "alerts,commands"],
        &[
            ("ATLASMESH_ALERTS__RULES_REFRESH_MS", "300"),
            ("ATLASMESH_RUNNER__CHECKPOINT_INTERVAL_MS", "200"),
        ],
    );
    let http = reqwest::Client::new();
    let unique = env.cfg.kafka.group_prefix.replace('.', "-");
    let fleet = format!("{unique}-f");
    let (v1, v2) = (format!("{unique}-v1"), format!("{unique}-v2"));
    let op = env.token("op", Role::Operator, &Scope::fleets([fleet.as_str()]));
    let op_fed = env.token(
        "op",
        Role::Operator,
        &Scope::fleets([fleet.as_str()]).with_federations(["fed-x"]),
    );
    let rules_url = format!("{base}/api/v1/alerting/rules");
    let inst_url = format!("{base}/api/v1/alerting/instances");

    // The daily health metrics exist per vehicle only: fleet and federation rules naming them
    // are refused by the rule validation, naming the field.
    let health_rule = json!({"fleet_id": fleet, "scope": "vehicle", "metric": "vehicle_health_score",
        "comparison": "lt", "threshold": 50, "clear_threshold": 60, "for_ms": DAY, "severity": "warning",
        "labels": {"team": "maintenance"}});
    let mut fleet_scope = health_rule.clone();
    fleet_scope["scope"] = json!("fleet");
    let (s, v) = call(
        &http,
        Method::POST,
        rules_url.clone(),
        &op,
        Some(fleet_scope),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("metric"), "{v}");
    assert!(v.to_string().contains("scope vehicle"), "{v}");
    let fed_scope = json!({"fleet_id": fleet, "scope": "federation", "federation_id": "fed-x",
        "metric": "failure_risk", "comparison": "gt", "threshold": 0.3, "severity": "critical"});
    let (s, v) = call(
        &http,
        Method::POST,
        rules_url.clone(),
        &op_fed,
        Some(fed_scope),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("scope vehicle"), "{v}");

    // Vehicle rules: health score below 50 for a day (clears at 60); failure risk above 0.3
    // (clears at 0.2), at once.
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{rules_url}?wait=true"),
        &op,
        Some(health_rule),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rule_h = v["entity_id"].as_str().unwrap().to_string();
    let risk_rule = json!({"fleet_id": fleet, "scope": "vehicle", "metric": "failure_risk",
        "comparison": "gt", "threshold": 0.3, "clear_threshold": 0.2, "severity": "critical"});
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{rules_url}?wait=true"),
        &op,
        Some(risk_rule),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rule_r = v["entity_id"].as_str().unwrap().to_string();
    // A rule does not move between daily health and window metrics (refused by the worker).
    let (s, v) = call(
        &http,
        Method::PATCH,
        format!("{rules_url}/{rule_r}?wait=true"),
        &op,
        Some(json!({"metric": "utilization", "threshold": 0.3, "clear_threshold": 0.2})),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains("create a new rule"), "{v}");
    // The evaluator has seen both rules: every row written from now on is judged.
    let (pgr, ids) = (&pg, vec![rule_h.clone(), rule_r.clone()]);
    eventually("health rules seen", &env, || {
        let ids = ids.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM alert_health_marks WHERE rule_id = ANY($1)",
            )
            .bind(ids)
            .fetch_one(pgr)
            .await
            .unwrap();
            (n == 2).then_some(())
        }
    })
    .await;
    let key_h = alert::dedup_key(&rule_h, &v1);
    let key_r = alert::dedup_key(&rule_r, &v1);

    // Days 0..=2: v1's score 70, 45 (pending), 40 (firing: a day below 50); v2 is healthy.
    // v1's failure risk predicted at the end of day 0: 0.1.
    for (d, score) in [(0, 70.0), (1, 45.0), (2, 40.0)] {
        score_row(&pg, &fleet, &v1, d, score, 1).await;
        score_row(&pg, &fleet, &v2, d, 80.0, 1).await;
    }
    prediction_row(&pg, &fleet, &v1, "failure_risk", 0, Some(0.1)).await;
    let t = wait_transitions(&env, &pg, "health score firing", &key_h, 2).await;
    assert_eq!(
        t,
        vec![
            (1, "pending".to_string(), day_end(1), None),
            (2, "firing".to_string(), day_end(2), None),
        ]
    );
    let (pgr, rr, vv) = (&pg, rule_r.as_str(), v1.as_str());
    eventually("day 0 prediction judged", &env, || async move {
        (clock(pgr, rr, vv).await == Some(day_end(0))).then_some(())
    })
    .await;

    // Another vehicle closes days 1 and 2: v1's rows are re-written with newer numbers (a
    // higher version). Judged days are not judged again. The risk predicted on day 1 is 0.4.
    score_row(&pg, &fleet, &v1, 1, 75.0, 2).await;
    score_row(&pg, &fleet, &v1, 2, 95.0, 2).await;
    prediction_row(&pg, &fleet, &v1, "failure_risk", 1, Some(0.4)).await;
    let t = wait_transitions(&env, &pg, "failure risk firing", &key_r, 1).await;
    assert_eq!(t, vec![(1, "firing".to_string(), day_end(1), None)]);
    assert_eq!(
        transitions_of(&pg, &key_h).await.len(),
        2,
        "no re-judged day"
    );

    // The operator resolves the risk alert by hand: the evaluator publishes the resolve.
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{inst_url}/{key_r}/resolve?wait=true"),
        &op,
        Some(json!({"note": "inspected"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (pgr, kr) = (&pg, key_r.as_str());
    let manual = eventually("manual resolve published", &env, || async move {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT manual_resolve_seq FROM alert_instances WHERE dedup_key = $1",
        )
        .bind(kr)
        .fetch_one(pgr)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(manual, 2);

    // Day 3 in the hysteresis band (55: still firing), day 4 clear (65: resolved). The risk
    // of day 2 breaches again (fires at once), that of day 3 clears.
    score_row(&pg, &fleet, &v1, 3, 55.0, 1).await;
    score_row(&pg, &fleet, &v1, 4, 65.0, 1).await;
    prediction_row(&pg, &fleet, &v1, "failure_risk", 2, Some(0.5)).await;
    wait_transitions(&env, &pg, "failure risk firing again", &key_r, 3).await;
    prediction_row(&pg, &fleet, &v1, "failure_risk", 3, Some(0.1)).await;
    let got_h = wait_transitions(&env, &pg, "health score resolved", &key_h, 3).await;
    let got_r = wait_transitions(&env, &pg, "failure risk resolved", &key_r, 4).await;
    assert_eq!(
        got_h,
        vec![
            (1, "pending".to_string(), day_end(1), None),
            (2, "firing".to_string(), day_end(2), None),
            (3, "resolved".to_string(), day_end(4), None),
        ]
    );
    let by = Some("jwt:op".to_string());
    assert_eq!(
        got_r,
        vec![
            (1, "firing".to_string(), day_end(1), None),
            (2, "resolved".to_string(), day_end(1), by),
            (3, "firing".to_string(), day_end(2), None),
            (4, "resolved".to_string(), day_end(3), None),
        ]
    );
    for key in [&key_h, &key_r] {
        let (s, v) = call(&http, Method::GET, format!("{inst_url}/{key}"), &op, None).await;
        assert_eq!(
            (s, v["status"].as_str(), v["subject"].as_str()),
            (200, Some("resolved"), Some(v1.as_str())),
            "{v}"
        );
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_transitions WHERE subject = $1")
        .bind(&v2)
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(n, 0, "the healthy vehicle has no alert");

    // The pager heard firing and resolved of both, seqs increasing per key.
    let consumer = env.consumer(&env.cfg.topics.alerts, "health-alerts-check");
    let want: BTreeMap<(String, i64), &str> = [
        ((key_h.clone(), 2), "trigger"),
        ((key_h.clone(), 3), "resolve"),
        ((key_r.clone(), 1), "trigger"),
        ((key_r.clone(), 2), "resolve"),
        ((key_r.clone(), 3), "trigger"),
        ((key_r.clone(), 4), "resolve"),
    ]
    .into_iter()
    .collect();
    let seen = paged(&consumer, &want.keys().cloned().collect()).await;
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        want.keys().cloned().collect::<BTreeSet<_>>(),
        "only firing and resolved are paged (pending is history only)"
    );
    for ((key, seq), action) in &want {
        let m = &seen[&(key.clone(), *seq)];
        assert_eq!(m["event_action"], *action, "{m}");
        assert_eq!(m["payload"]["custom_details"]["seq"], *seq);
        assert_eq!(m["payload"]["source"], format!("atlasmesh/vehicle/{v1}"));
    }
    let m = &seen[&(key_h.clone(), 2)];
    assert_eq!(m["payload"]["class"], "vehicle_health_score");
    assert_eq!(m["payload"]["custom_details"]["value"], 40.0);
    assert_eq!(m["labels"]["team"], "maintenance");
    assert_eq!(m["startsAt"], alert::rfc3339_ms(day_end(2)));
    let m = &seen[&(key_r.clone(), 2)];
    assert_eq!(m["payload"]["custom_details"]["resolved_by"], "jwt:op");
    assert_eq!(m["payload"]["class"], "failure_risk");

    // ClickHouse alert history: exactly the PostgreSQL transitions.
    #[derive(serde::Deserialize)]
    struct H {
        dedup_key: String,
        status: String,
        at_ms: i64,
        metric: String,
    }
    let pg_rows: BTreeSet<(String, String, i64)> = [(&key_h, &got_h), (&key_r, &got_r)]
        .iter()
        .flat_map(|(k, ts)| ts.iter().map(|t| (k.to_string(), t.1.clone(), t.2)))
        .collect();
    let (envr, fl, want_n) = (&env, fleet.as_str(), pg_rows.len());
    let ch = eventually("alert history in ClickHouse", &env, || async move {
        let rows: Vec<H> = envr
            .ch_rows(&format!(
                "SELECT dedup_key, toString(status) AS status, at_ms, metric FROM alert_history FINAL
                 WHERE fleet_id = '{fl}' ORDER BY dedup_key, at_ms"
            ))
            .await;
        (rows.len() >= want_n).then_some(rows)
    })
    .await;
    let got: BTreeSet<(String, String, i64)> = ch
        .iter()
        .map(|h| (h.dedup_key.clone(), h.status.clone(), h.at_ms))
        .collect();
    assert_eq!(got, pg_rows);
    assert!(ch
        .iter()
        .all(|h| (h.dedup_key == key_h) == (h.metric == "vehicle_health_score")));

    sigterm(&mut worker);
    sigterm(&mut api);
}
