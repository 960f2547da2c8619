use atlasmesh_core::domain::optimization::{Rebalancing, Run, RunResult};
use atlasmesh_core::domain::optimization::{RebalancingStatus, RunStatus};
use serde_json::json;

use crate::common::setup;

#[tokio::test]
async fn runs_move_through_their_statuses_and_score_results() {
    let t = setup("optim").await;
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let run = t
        .ok(
            &sa,
            "optimization_run.create",
            json!({"fleet_id": a, "name": "am", "cost_weight": 0.25,
        "efficiency_weight": 0.25, "coverage_weight": 0.5}),
        )
        .await;
    assert_eq!(
        t.get::<Run>(&sa, &run).await.unwrap().status,
        RunStatus::Queued
    );
    let r = t
        .rejected(
            &sa,
            "optimization_run.update",
            json!({"id": run, "status": "completed"}),
        )
        .await;
    assert!(r.contains("cannot go from queued to completed"), "{r}");
    t.ok(
        &sa,
        "optimization_run.update",
        json!({"id": run, "status": "running"}),
    )
    .await;
    let res = t
        .ok(
            &sa,
            "optimization_result.create",
            json!({"fleet_id": a, "run_id": run, "cost": 0.2,
        "efficiency": 0.6, "coverage": 0.5}),
        )
        .await;
    // (0.25 * 0.8 + 0.25 * 0.6 + 0.5 * 0.5) / 1
    assert!((t.get::<RunResult>(&sa, &res).await.unwrap().score - 0.6).abs() < 1e-12);
    t.ok(
        &sa,
        "recommendation.create",
        json!({"fleet_id": a, "run_id": run, "action": "move 2 vehicles",
        "priority": 70, "expected_gain": 0.05}),
    )
    .await;
    t.ok(
        &sa,
        "optimization_metric.create",
        json!({"fleet_id": a, "run_id": run, "metric": "solve_seconds", "value": 3.5}),
    )
    .await;
    t.ok(
        &sa,
        "optimization_run.update",
        json!({"id": run, "status": "completed"}),
    )
    .await;
    let v = t.get::<Run>(&sa, &run).await.unwrap();
    assert_eq!(v.status, RunStatus::Completed);
    assert!(v.started_at.is_some() && v.finished_at.is_some());
    let r = t
        .rejected(
            &sa,
            "optimization_run.update",
            json!({"id": run, "status": "cancelled"}),
        )
        .await;
    assert!(r.contains("completed to cancelled"), "{r}");

    let cancelled = t
        .ok(
            &sa,
            "optimization_run.create",
            json!({"fleet_id": a, "name": "x", "cost_weight": 1.0,
        "efficiency_weight": 0.0, "coverage_weight": 0.0}),
        )
        .await;
    t.ok(
        &sa,
        "optimization_run.update",
        json!({"id": cancelled, "status": "cancelled"}),
    )
    .await;
    let r = t
        .rejected(
            &sa,
            "optimization_result.create",
            json!({"fleet_id": a, "run_id": cancelled, "cost": 0.2,
        "efficiency": 0.6, "coverage": 0.5}),
        )
        .await;
    assert!(r.contains("cancelled"), "{r}");
    let r = t
        .rejected(
            &sa,
            "optimization_run.create",
            json!({"fleet_id": a, "name": "x", "cost_weight": 0.0,
        "efficiency_weight": 0.0, "coverage_weight": 0.0}),
        )
        .await;
    assert!(r.contains("cost_weight"), "{r}");

    let rb = t
        .ok(
            &sa,
            "rebalancing.create",
            json!({"fleet_id": a, "run_id": run, "from_zone": "n", "to_zone": "c",
        "vehicle_count": 2}),
        )
        .await;
    let r = t
        .rejected(
            &sa,
            "rebalancing.update",
            json!({"id": rb, "status": "executed"}),
        )
        .await;
    assert!(r.contains("proposed to executed"), "{r}");
    t.ok(
        &sa,
        "rebalancing.update",
        json!({"id": rb, "vehicle_count": 3, "status": "approved"}),
    )
    .await;
    let r = t
        .rejected(
            &sa,
            "rebalancing.update",
            json!({"id": rb, "vehicle_count": 4}),
        )
        .await;
    assert!(r.contains("proposed"), "{r}");
    t.ok(
        &sa,
        "rebalancing.update",
        json!({"id": rb, "status": "executed"}),
    )
    .await;
    let v = t.get::<Rebalancing>(&sa, &rb).await.unwrap();
    assert_eq!(
        (v.status, v.vehicle_count),
        (RebalancingStatus::Executed, 3)
    );
    let results = t
        .list::<RunResult>(&sa, &[("run_id", run.clone())])
        .await
        .items;
    assert_eq!(results.len(), 1);
}
