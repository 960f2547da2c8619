use atlasmesh_core::domain::missions::ExecutionStatus;
use atlasmesh_core::domain::missions::{Execution, SafetyEvent};
use atlasmesh_core::domain::status::CaseStatus;
use serde_json::json;

use crate::common::setup;

#[tokio::test]
async fn executions_start_only_after_their_dependencies_completed() {
    let t = setup("missions").await;
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let tpl = t
        .ok(
            &sa,
            "template.create",
            json!({"fleet_id": a, "name": "delivery", "steps": ["load", "drive"],
        "estimated_duration_s": 600}),
        )
        .await;
    let exec = |v: &str| json!({"fleet_id": a, "template_id": tpl, "vehicle_id": v});
    let first = t.ok(&sa, "execution.create", exec("v1")).await;
    let second = t.ok(&sa, "execution.create", exec("v2")).await;
    let third = t.ok(&sa, "execution.create", exec("v3")).await;
    let dep = |e: &str, d: &str| json!({"fleet_id": a, "execution_id": e, "depends_on_id": d});
    t.ok(&sa, "dependency.create", dep(&second, &first)).await;
    t.ok(&sa, "dependency.create", dep(&third, &second)).await;
    // Cycles, self-dependencies and duplicates are refused.
    let r = t
        .rejected(&sa, "dependency.create", dep(&first, &third))
        .await;
    assert!(r.contains("cycle"), "{r}");
    let r = t
        .rejected(&sa, "dependency.create", dep(&first, &first))
        .await;
    assert!(r.contains("itself"), "{r}");
    let r = t
        .rejected(&sa, "dependency.create", dep(&second, &first))
        .await;
    assert!(r.contains("mission_dependencies_unique"), "{r}");

    let r = t
        .rejected(&sa, "execution.start", json!({"id": second}))
        .await;
    assert_eq!(r, format!("dependencies not completed: {first}"));
    assert_eq!(
        t.get::<Execution>(&sa, &second).await.unwrap().status,
        ExecutionStatus::Scheduled
    );
    let r = t
        .rejected(
            &sa,
            "execution.complete",
            json!({"id": first, "outcome": "completed"}),
        )
        .await;
    assert!(r.contains("cannot go from scheduled to completed"), "{r}");
    let r = t
        .rejected(&sa, "execution.complete", json!({"id": first}))
        .await;
    assert!(r.contains("outcome"), "{r}");
    t.ok(&sa, "execution.start", json!({"id": first})).await;
    let r = t
        .rejected(&sa, "dependency.create", dep(&first, &third))
        .await;
    assert!(
        r.contains("running"),
        "a started execution takes no new dependencies: {r}"
    );
    t.ok(
        &sa,
        "execution.complete",
        json!({"id": first, "outcome": "failed", "note": "flat tyre"}),
    )
    .await;
    let v = t.get::<Execution>(&sa, &first).await.unwrap();
    assert_eq!(
        (v.status, v.note.as_deref()),
        (ExecutionStatus::Failed, Some("flat tyre"))
    );
    assert!(v.started_at.is_some() && v.completed_at.is_some());
    // A failed dependency still blocks.
    let r = t
        .rejected(&sa, "execution.start", json!({"id": second}))
        .await;
    assert!(r.contains("not completed"), "{r}");
    // Removing the dependency unblocks it.
    let deps = t
        .list::<atlasmesh_core::domain::missions::Dependency>(
            &sa,
            &[("execution_id", second.clone())],
        )
        .await
        .items;
    assert_eq!(deps.len(), 1);
    t.ok(&sa, "dependency.delete", json!({"id": deps[0].id}))
        .await;
    t.ok(&sa, "execution.start", json!({"id": second})).await;
    t.ok(
        &sa,
        "execution.complete",
        json!({"id": second, "outcome": "completed"}),
    )
    .await;
    t.ok(&sa, "execution.start", json!({"id": third})).await;
    assert_eq!(
        t.get::<Execution>(&sa, &third).await.unwrap().status,
        ExecutionStatus::Running
    );
    let running = t
        .list::<Execution>(&sa, &[("status", "running".into())])
        .await
        .items;
    assert_eq!(running.len(), 1);

    t.ok(
        &sa,
        "mission_log.create",
        json!({"fleet_id": a, "execution_id": third, "level": "info",
        "message": "left depot", "logged_at": "2024-05-01T08:00:00Z"}),
    )
    .await;
    t.ok(
        &sa,
        "mission_metric.create",
        json!({"fleet_id": a, "execution_id": third, "metric": "distance_km", "value": 12.5}),
    )
    .await;
    // Logs of another fleet's execution are refused.
    let b = t.fleet("b");
    let r = t
        .rejected(
            &t.scope(&["a", "b"]),
            "mission_log.create",
            json!({"fleet_id": b, "execution_id": third,
        "level": "info", "message": "x", "logged_at": "2024-05-01T08:00:00Z"}),
        )
        .await;
    assert!(r.contains("execution_id"), "{r}");

    let ev = t.ok(&sa, "safety_event.create", json!({"fleet_id": a, "execution_id": third, "vehicle_id": "v3",
        "severity": "critical", "kind": "hard_brake", "description": "0.9 g", "occurred_at": "2024-05-01T08:10:00Z"})).await;
    t.ok(
        &sa,
        "safety_event.resolve",
        json!({"id": ev, "note": "driver briefed"}),
    )
    .await;
    let v = t.get::<SafetyEvent>(&sa, &ev).await.unwrap();
    assert_eq!(
        (v.status, v.resolution.as_deref()),
        (CaseStatus::Resolved, Some("driver briefed"))
    );
}

#[tokio::test]
async fn concurrent_opposite_dependencies_never_form_a_cycle() {
    let t = std::sync::Arc::new(setup("depcycle").await);
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    for round in 0..5 {
        let x = t
            .ok(
                &sa,
                "execution.create",
                json!({"fleet_id": a, "vehicle_id": format!("x{round}")}),
            )
            .await;
        let y = t
            .ok(
                &sa,
                "execution.create",
                json!({"fleet_id": a, "vehicle_id": format!("y{round}")}),
            )
            .await;
        let mut tasks = Vec::new();
        for (from, to) in [(x.clone(), y.clone()), (y.clone(), x.clone())] {
            let (t, a, sa) = (t.clone(), a.clone(), sa.clone());
            tasks.push(tokio::spawn(async move {
                t.run(
                    &sa,
                    "dependency.create",
                    json!({"fleet_id": a, "execution_id": from, "depends_on_id": to}),
                )
                .await
            }));
        }
        let mut applied = 0;
        for task in tasks {
            if matches!(
                task.await.unwrap(),
                atlasmesh_sinks::store::Outcome::Applied { .. }
            ) {
                applied += 1;
            }
        }
        assert_eq!(applied, 1, "round {round}");
    }
}
