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

#[tokio::test]
async fn zones_list_only_zones_of_their_fleet_as_neighbours() {
    use atlasmesh_core::domain::optimization::ServiceZone;

    let t = setup("zones").await;
    let (a, b) = (t.fleet("a"), t.fleet("b"));
    let (sa, sb) = (t.scope(&["a"]), t.scope(&["b"]));
    let zone = |fleet: &str, name: &str, neighbours: serde_json::Value| {
        json!({"fleet_id": fleet, "name": name, "lat": 52.5, "lon": 13.4,
               "vehicle_capacity": 10, "neighbours": neighbours})
    };
    let north = t.ok(&sa, "zone.create", zone(&a, "north", json!([]))).await;
    let foreign = t
        .ok(&sb, "zone.create", zone(&b, "elsewhere", json!([])))
        .await;
    let r = t
        .rejected(&sa, "zone.create", zone(&a, "centre", json!([foreign])))
        .await;
    assert!(r.contains("no zones") && r.contains(&foreign), "{r}");
    let centre = t
        .ok(&sa, "zone.create", zone(&a, "centre", json!([north])))
        .await;
    let v = t.get::<ServiceZone>(&sa, &centre).await.unwrap();
    assert_eq!(v.neighbours, Some(vec![north.clone()]));
    assert!(t.get::<ServiceZone>(&sb, &centre).await.is_none());
    let r = t
        .rejected(
            &sa,
            "zone.update",
            json!({"id": north, "neighbours": [north]}),
        )
        .await;
    assert!(r.contains("own neighbour"), "{r}");
    t.ok(
        &sa,
        "zone.update",
        json!({"id": north, "neighbours": [centre], "vehicle_capacity": 12}),
    )
    .await;
    // Listed by another zone: the delete waits until it is taken off the list.
    let r = t.rejected(&sa, "zone.delete", json!({"id": north})).await;
    assert!(r.contains("neighbour of zones"), "{r}");
    t.ok(&sa, "zone.update", json!({"id": centre, "neighbours": []}))
        .await;
    t.ok(&sa, "zone.delete", json!({"id": north})).await;
}
