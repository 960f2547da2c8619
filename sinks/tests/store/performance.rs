use atlasmesh_core::domain::performance::{Alert, Benchmark, Report, Score, Trend};
use atlasmesh_core::domain::performance::{AlertStatus, Direction};
use atlasmesh_core::domain::{Cursor, ListQuery};
use atlasmesh_sinks::store::{self, Outcome};
use serde_json::json;

use crate::common::setup;

fn benchmark(fleet: &str, name: &str) -> serde_json::Value {
    json!({"fleet_id": fleet, "name": name, "metric": "utilization", "target_value": 0.8, "higher_is_better": true})
}

#[tokio::test]
async fn benchmarks_crud_in_scope_only() {
    let t = setup("bench").await;
    let (a, b) = (t.fleet("a"), t.fleet("b"));
    let sa = t.scope(&["a"]);
    let id = t.ok(&sa, "benchmark.create", benchmark(&a, "util")).await;
    let v = t.get::<Benchmark>(&sa, &id).await.unwrap();
    assert_eq!(
        (v.fleet_id.as_str(), v.name.as_str(), v.target_value),
        (a.as_str(), "util", 0.8)
    );

    // Another fleet's caller neither sees nor changes it.
    let sb = t.scope(&["b"]);
    assert!(t.get::<Benchmark>(&sb, &id).await.is_none());
    assert!(t
        .list::<Benchmark>(&sb, &[("fleet_id", a.clone())])
        .await
        .items
        .is_empty());
    let r = t
        .rejected(
            &sb,
            "benchmark.update",
            json!({"id": id, "target_value": 0.1}),
        )
        .await;
    assert!(r.contains("no benchmark"), "{r}");
    let r = t.rejected(&sb, "benchmark.delete", json!({"id": id})).await;
    assert!(r.contains("no benchmark"), "{r}");
    // Creating in a fleet outside the scope is refused and writes nothing.
    let r = t
        .rejected(&sa, "benchmark.create", benchmark(&b, "x"))
        .await;
    assert!(r.contains("not in scope"), "{r}");
    assert_eq!(
        t.count(
            "SELECT count(*) FROM perf_benchmarks WHERE fleet_id = $1",
            &b
        )
        .await,
        0
    );

    t.ok(
        &sa,
        "benchmark.update",
        json!({"id": id, "target_value": 0.9, "description": "raised"}),
    )
    .await;
    let v2 = t.get::<Benchmark>(&sa, &id).await.unwrap();
    assert_eq!(
        (v2.target_value, v2.description.as_deref(), v2.name.as_str()),
        (0.9, Some("raised"), "util")
    );
    assert!(
        v2.updated_at > v.updated_at,
        "{} > {}",
        v2.updated_at,
        v.updated_at
    );
    // Invalid update values and duplicate names are rejections.
    let r = t
        .rejected(&sa, "benchmark.update", json!({"id": id, "name": ""}))
        .await;
    assert!(r.contains("name"), "{r}");
    t.ok(&sa, "benchmark.create", benchmark(&a, "other")).await;
    let r = t
        .rejected(&sa, "benchmark.update", json!({"id": id, "name": "other"}))
        .await;
    assert!(r.contains("perf_benchmarks_name_unique"), "{r}");

    t.ok(&sa, "benchmark.delete", json!({"id": id})).await;
    assert!(t.get::<Benchmark>(&sa, &id).await.is_none());
}

#[tokio::test]
async fn replayed_create_yields_the_same_entity_once() {
    let t = setup("replay").await;
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let cid = t.next_id();
    let first = t
        .run_as(&cid, &sa, "benchmark.create", benchmark(&a, "util"))
        .await;
    let again = t
        .run_as(&cid, &sa, "benchmark.create", benchmark(&a, "util"))
        .await;
    assert_eq!(first, again);
    assert!(
        matches!(&first, Outcome::Applied { entity_id, fleet_id: Some(f), .. } if *entity_id == cid && *f == a)
    );
    assert_eq!(
        t.count(
            "SELECT count(*) FROM perf_benchmarks WHERE fleet_id = $1",
            &a
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_rejection_inside_a_transaction_keeps_earlier_writes_and_writes_nothing_itself() {
    let t = setup("savepoint").await;
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let mut tx = t.pool.begin().await.unwrap();
    let p1 = benchmark(&a, "one");
    let ok = store::apply(
        &mut tx,
        store::CommandCtx {
            command_id: &t.next_id(),
            kind: "benchmark.create",
            actor: "x",
            scope: &sa,
            issued_at_ms: 1,
            payload: &p1,
        },
    )
    .await
    .unwrap();
    assert!(matches!(ok, Outcome::Applied { .. }));
    // Same name: the unique constraint fails inside the savepoint and becomes a rejection.
    let dup = store::apply(
        &mut tx,
        store::CommandCtx {
            command_id: &t.next_id(),
            kind: "benchmark.create",
            actor: "x",
            scope: &sa,
            issued_at_ms: 2,
            payload: &p1,
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(&dup, Outcome::Rejected { reason } if reason.contains("unique")),
        "{dup:?}"
    );
    // The transaction is still usable.
    let p3 = benchmark(&a, "three");
    let ok3 = store::apply(
        &mut tx,
        store::CommandCtx {
            command_id: &t.next_id(),
            kind: "benchmark.create",
            actor: "x",
            scope: &sa,
            issued_at_ms: 3,
            payload: &p3,
        },
    )
    .await
    .unwrap();
    assert!(matches!(ok3, Outcome::Applied { .. }));
    tx.commit().await.unwrap();
    assert_eq!(
        t.count(
            "SELECT count(*) FROM perf_benchmarks WHERE fleet_id = $1",
            &a
        )
        .await,
        2
    );
}

#[tokio::test]
async fn scores_reports_trends_and_alerts() {
    let t = setup("perf").await;
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let score = |eff: f64, start: &str, end: &str| {
        json!({"fleet_id": a, "period_start": start, "period_end": end, "efficiency": eff, "utilization": 60.0,
               "reliability": 90.0, "safety": 100.0, "cost": 50.0})
    };
    let s1 = t
        .ok(
            &sa,
            "score.create",
            score(80.0, "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"),
        )
        .await;
    t.ok(
        &sa,
        "score.create",
        score(40.0, "2024-05-01T12:00:00Z", "2024-05-02T00:00:00Z"),
    )
    .await;
    t.ok(
        &sa,
        "score.create",
        score(100.0, "2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z"),
    )
    .await;
    assert_eq!(t.get::<Score>(&sa, &s1).await.unwrap().overall, 80.0);
    let r = t
        .rejected(
            &sa,
            "score.create",
            score(101.0, "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"),
        )
        .await;
    assert!(r.contains("efficiency"), "{r}");
    let r = t
        .rejected(
            &sa,
            "score.create",
            score(50.0, "2024-05-02T00:00:00Z", "2024-05-01T00:00:00Z"),
        )
        .await;
    assert!(r.contains("period_end"), "{r}");
    // A benchmark of another fleet cannot be referenced.
    let other = t.fleet("b");
    let bench_b = t
        .ok(&t.scope(&["b"]), "benchmark.create", benchmark(&other, "b"))
        .await;
    let mut with_ref = score(50.0, "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z");
    with_ref["benchmark_id"] = json!(bench_b);
    let r = t.rejected(&sa, "score.create", with_ref).await;
    assert!(r.contains("benchmark_id"), "{r}");

    for v in [0.2, 0.4] {
        t.ok(
            &sa,
            "performance_metric.create",
            json!({"fleet_id": a, "metric": "kwh_per_km", "value": v,
            "period_start": "2024-05-01T06:00:00Z", "period_end": "2024-05-01T07:00:00Z"}),
        )
        .await;
    }
    let rep = t
        .ok(
            &sa,
            "report.create",
            json!({"fleet_id": a, "title": "May 1",
        "period_start": "2024-05-01T00:00:00Z", "period_end": "2024-05-02T00:00:00Z"}),
        )
        .await;
    let rep = t.get::<Report>(&sa, &rep).await.unwrap();
    assert_eq!(rep.summary["score_count"], 2);
    assert_eq!(rep.summary["avg_overall"].as_f64().unwrap(), 75.0);
    assert_eq!(rep.summary["metrics"]["kwh_per_km"]["count"], 2);
    assert!(
        (rep.summary["metrics"]["kwh_per_km"]["avg"]
            .as_f64()
            .unwrap()
            - 0.3)
            .abs()
            < 1e-9
    );

    let tr = t
        .ok(
            &sa,
            "trend.create",
            json!({"fleet_id": a, "metric": "utilization", "samples": [4.0, 3.0, 2.0],
        "period_start": "2024-05-01T00:00:00Z", "period_end": "2024-05-02T00:00:00Z"}),
        )
        .await;
    let tr = t.get::<Trend>(&sa, &tr).await.unwrap();
    assert_eq!(tr.direction, Direction::Down);
    assert!((tr.slope + 1.0).abs() < 1e-12 && (tr.forecast - 1.0).abs() < 1e-12);
    assert_eq!(tr.samples, vec![4.0, 3.0, 2.0]);

    let al = t
        .ok(
            &sa,
            "alert.create",
            json!({"fleet_id": a, "severity": "critical", "message": "low battery"}),
        )
        .await;
    assert_eq!(
        t.get::<Alert>(&sa, &al).await.unwrap().status,
        AlertStatus::Firing
    );
    let r = t
        .rejected(&t.scope(&["b"]), "alert.resolve", json!({"id": al}))
        .await;
    assert!(r.contains("no alert"), "{r}");
    t.ok(&sa, "alert.resolve", json!({"id": al, "note": "charged"}))
        .await;
    let v = t.get::<Alert>(&sa, &al).await.unwrap();
    assert_eq!(
        (
            v.status,
            v.resolved_by.as_deref(),
            v.resolution_note.as_deref()
        ),
        (AlertStatus::Resolved, Some("tester"), Some("charged"))
    );
    assert!(v.resolved_at.is_some());
    let r = t.rejected(&sa, "alert.resolve", json!({"id": al})).await;
    assert!(r.contains("cannot go from resolved to resolved"), "{r}");
    let r = t
        .rejected(
            &sa,
            "alert.resolve",
            json!({"id": al, "outcome": "completed"}),
        )
        .await;
    assert!(r.contains("outcome"), "{r}");
    let firing = t.list::<Alert>(&sa, &[("status", "firing".into())]).await;
    assert!(firing.items.is_empty());
}

#[tokio::test]
async fn pages_are_stable_and_filter_by_fleet_and_time() {
    let t = setup("pages").await;
    let (a, b) = (t.fleet("a"), t.fleet("b"));
    let sab = t.scope(&["a", "b"]);
    let mut mine = Vec::new();
    for i in 0..7 {
        mine.push(
            t.ok(&sab, "benchmark.create", benchmark(&a, &format!("b{i}")))
                .await,
        );
        t.ok(&sab, "benchmark.create", benchmark(&b, &format!("b{i}")))
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = ListQuery {
            filters: vec![("fleet_id", a.clone())],
            limit: 3,
            after: cursor.as_deref().map(|c| Cursor::decode(c).unwrap()),
            ..ListQuery::default()
        };
        let page = store::list::<Benchmark>(&t.pool, &sab, &q).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|v| v.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, mine, "every row once, in creation order");
    // Without a fleet filter the scope decides: fleet a only sees its own.
    let only_a = t.scope(&["a"]);
    let q = ListQuery {
        limit: 100,
        ..ListQuery::default()
    };
    let page = store::list::<Benchmark>(&t.pool, &only_a, &q)
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|v| v.id.clone()).collect::<Vec<_>>(),
        mine
    );
    // Time window on created_at (commands of this test are 1 s apart).
    let first = t.get::<Benchmark>(&sab, &mine[0]).await.unwrap();
    let t0 = atlasmesh_core::clock::parse_rfc3339(&first.created_at).unwrap();
    let q = ListQuery {
        filters: vec![("fleet_id", a.clone())],
        from_ms: Some(t0 + 1),
        to_ms: Some(t0 + 4001),
        limit: 100,
        after: None,
    };
    let page = store::list::<Benchmark>(&t.pool, &sab, &q).await.unwrap();
    assert_eq!(
        page.items.iter().map(|v| v.id.clone()).collect::<Vec<_>>(),
        mine[1..3].to_vec()
    );
}
