use atlasmesh_core::domain::analytics::{
    CapacityMetric, CapacityStatus, EfficiencyMetric, HealthScore, Prediction, RowSource,
};
use serde_json::json;

use crate::common::setup;

/// Reported rows are stored with their derived columns, as `reported` at version 0; a capacity
/// metric is queued with its defaults and its zone must be one of the fleet's.
#[tokio::test]
async fn analytics_rows_derive_their_columns() {
    let t = setup("analytics").await;
    let (a, b) = (t.fleet("a"), t.fleet("b"));
    let sa = t.scope(&["a"]);
    let all = t.scope(&["a", "b"]);
    let period =
        json!({"period_start": "2024-05-01T00:00:00Z", "period_end": "2024-05-02T00:00:00Z"});
    let mut body = json!({"fleet_id": a, "vehicle_id": "v1", "distance_km": 200.0, "energy_kwh": 40.0,
        "operating_hours": 8.0, "faults": 2, "fault_minutes": 30.0, "fleet_median_kwh_per_km": 0.16});
    body.as_object_mut()
        .unwrap()
        .extend(period.as_object().unwrap().clone());
    let id = t.ok(&sa, "efficiency_metric.create", body).await;
    let m = t.get::<EfficiencyMetric>(&sa, &id).await.unwrap();
    assert_eq!(
        (
            m.kwh_per_km,
            m.efficiency_ratio,
            m.faults_per_1000_km,
            m.faults_per_operating_hour,
            m.fault_minutes_per_1000_km
        ),
        (Some(0.2), Some(1.25), Some(10.0), Some(0.25), Some(150.0))
    );
    assert_eq!((m.source, m.version), (RowSource::Reported, 0));

    let id = t
        .ok(
            &sa,
            "prediction.create",
            json!({"fleet_id": a, "vehicle_id": "v1", "kind": "soh_threshold",
                   "as_of": "2024-05-01T00:00:00Z", "threshold": 80.0, "value": 30.0, "lower": 20.0,
                   "model": "soh-ols"}),
        )
        .await;
    let p = t.get::<Prediction>(&sa, &id).await.unwrap();
    assert_eq!(
        p.predicted_at.as_deref().map(|s| &s[..19]),
        Some("2024-05-31T00:00:00")
    );
    assert_eq!((p.alarm, p.inputs.clone()), (None, json!({})));
    let id = t
        .ok(
            &sa,
            "prediction.create",
            json!({"fleet_id": a, "vehicle_id": "v1", "kind": "failure_risk", "horizon_days": 14,
                   "as_of": "2024-05-01T00:00:00Z", "value": 0.6, "threshold": 0.5, "model": "lr"}),
        )
        .await;
    assert_eq!(
        t.get::<Prediction>(&sa, &id).await.unwrap().alarm,
        Some(true)
    );

    let mut score = json!({"fleet_id": a, "score": 61.5,
        "distribution": {"vehicles": 2, "min": 50.0, "p10": 52.3, "median": 61.5, "mean": 61.5,
                         "worst": [{"vehicle_id": "v1", "score": 50.0}]}});
    score
        .as_object_mut()
        .unwrap()
        .extend(period.as_object().unwrap().clone());
    let id = t.ok(&sa, "health_score.create", score).await;
    let s = t.get::<HealthScore>(&sa, &id).await.unwrap();
    assert_eq!(s.distribution.unwrap()["worst"][0]["vehicle_id"], "v1");

    let zone = t
        .ok(
            &all,
            "zone.create",
            json!({"fleet_id": b, "name": "z", "lat": 0.0, "lon": 0.0, "vehicle_capacity": 1}),
        )
        .await;
    let r = t
        .rejected(
            &all,
            "capacity_metric.create",
            json!({"fleet_id": a, "zone_id": zone}),
        )
        .await;
    assert!(r.contains("another fleet"), "{r}");
    let id = t
        .ok(&sa, "capacity_metric.create", json!({"fleet_id": a}))
        .await;
    let c = t.get::<CapacityMetric>(&sa, &id).await.unwrap();
    assert_eq!(
        (c.status, c.horizon_hours, c.demand_quantile, c.history_days),
        (CapacityStatus::Queued, 12, 0.9, 14)
    );
    let r = t
        .rejected(
            &sa,
            "capacity_metric.update",
            json!({"id": id, "status": "completed"}),
        )
        .await;
    assert!(r.contains("unknown command kind"), "{r}");
}
