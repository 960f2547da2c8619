use atlasmesh_core::domain::coordination::{Federation, FederationMetric, Member, Share};
use atlasmesh_core::Scope;
use serde_json::json;

use crate::common::setup;

#[tokio::test]
async fn shares_are_visible_to_owner_and_target_only_and_changed_by_the_owner() {
    let t = setup("share").await;
    let (a, b, c) = (t.fleet("a"), t.fleet("b"), t.fleet("c"));
    let (sa, sb, sc) = (t.scope(&["a"]), t.scope(&["b"]), t.scope(&["c"]));
    let p = t
        .ok(
            &sa,
            "pool.create",
            json!({"fleet_id": a, "name": "bays", "resource_type": "bay", "capacity": 4}),
        )
        .await;
    let share = |amount: i64| {
        json!({"fleet_id": a, "target_fleet_id": b, "pool_id": p, "amount": amount,
        "starts_at": "2024-05-01T00:00:00Z"})
    };
    let r = t.rejected(&sa, "share.create", share(5)).await;
    assert!(r.contains("capacity 4"), "{r}");
    let r = t.rejected(&sb, "share.create", share(2)).await;
    assert!(
        r.contains("not in scope"),
        "the target cannot create it: {r}"
    );
    let s = t.ok(&sa, "share.create", share(2)).await;
    assert!(t.get::<Share>(&sa, &s).await.is_some());
    assert!(t.get::<Share>(&sb, &s).await.is_some(), "target sees it");
    assert!(t.get::<Share>(&sc, &s).await.is_none(), "others do not");
    assert_eq!(t.list::<Share>(&sb, &[]).await.items.len(), 1);
    assert!(t.list::<Share>(&sc, &[]).await.items.is_empty());
    let r = t
        .rejected(&sb, "share.update", json!({"id": s, "amount": 1}))
        .await;
    assert!(r.contains("no share"), "target cannot change it: {r}");
    let r = t
        .rejected(&sa, "share.update", json!({"id": s, "amount": 9}))
        .await;
    assert!(r.contains("capacity"), "{r}");
    t.ok(&sa, "share.update", json!({"id": s, "amount": 3}))
        .await;
    assert_eq!(t.get::<Share>(&sb, &s).await.unwrap().amount, 3);
    let r = t.rejected(&sb, "share.delete", json!({"id": s})).await;
    assert!(r.contains("no share"), "{r}");
    t.ok(&sa, "share.delete", json!({"id": s})).await;
    let _ = c;
}

#[tokio::test]
async fn federations_members_and_metrics() {
    let t = setup("fed").await;
    let (a, b) = (t.fleet("a"), t.fleet("b"));
    let all = Scope::all();
    let r = t
        .rejected(
            &t.scope(&["a"]),
            "federation.create",
            json!({"name": "north"}),
        )
        .await;
    assert!(r.contains("unrestricted"), "{r}");
    let f = t
        .ok(&all, "federation.create", json!({"name": "north"}))
        .await;
    let fed_admin = Scope::default().with_federations([f.clone()]);
    // Membership puts a fleet's numbers into the federation's totals: a federation manager
    // without a claim on the fleet cannot add it, nor can the fleet's operator join a
    // federation it has no claim on.
    let r = t
        .rejected(
            &fed_admin,
            "member.create",
            json!({"federation_id": f, "fleet_id": a, "role": "coordinator"}),
        )
        .await;
    assert!(r.contains("claim on that fleet"), "{r}");
    let r = t
        .rejected(
            &t.scope(&["a"]),
            "member.create",
            json!({"federation_id": f, "fleet_id": a, "role": "coordinator"}),
        )
        .await;
    assert!(r.contains("not in scope"), "{r}");
    // A claim on both is the consent of both sides.
    let fed_and_a = t.scope(&["a"]).with_federations([f.clone()]);
    let fed_and_b = t.scope(&["b"]).with_federations([f.clone()]);
    t.ok(
        &fed_and_a,
        "member.create",
        json!({"federation_id": f, "fleet_id": a, "role": "coordinator"}),
    )
    .await;
    let r = t
        .rejected(
            &fed_and_a,
            "member.create",
            json!({"federation_id": f, "fleet_id": a, "role": "member"}),
        )
        .await;
    assert!(r.contains("federation_members_unique"), "{r}");
    let mb = t
        .ok(
            &fed_and_b,
            "member.create",
            json!({"federation_id": f, "fleet_id": b, "role": "member"}),
        )
        .await;
    // Member fleets read the federation, its members and metrics; they cannot change them.
    let sa = t.scope(&["a"]);
    assert_eq!(t.get::<Federation>(&sa, &f).await.unwrap().name, "north");
    assert!(t.get::<Federation>(&t.scope(&["z"]), &f).await.is_none());
    assert_eq!(
        t.list::<Member>(&sa, &[("federation_id", f.clone())])
            .await
            .items
            .len(),
        2
    );
    let r = t
        .rejected(&sa, "federation.update", json!({"id": f, "name": "x"}))
        .await;
    assert!(r.contains("no federation"), "{r}");
    t.ok(
        &fed_admin,
        "federation.update",
        json!({"id": f, "description": "depots north of the river"}),
    )
    .await;
    let m = t
        .ok(
            &fed_admin,
            "federation_metric.create",
            json!({"federation_id": f, "metric": "shared_units", "value": 3.0,
        "period_start": "2024-05-01T00:00:00Z", "period_end": "2024-05-02T00:00:00Z"}),
        )
        .await;
    assert_eq!(t.get::<FederationMetric>(&sa, &m).await.unwrap().value, 3.0);
    let r = t
        .rejected(
            &sa,
            "federation_metric.create",
            json!({"federation_id": f, "metric": "x", "value": 1.0,
        "period_start": "2024-05-01T00:00:00Z", "period_end": "2024-05-02T00:00:00Z"}),
        )
        .await;
    assert!(r.contains("not in scope"), "{r}");
    // A federation alert rule shows the whole federation's total: a member fleet's operator
    // without a claim on the federation cannot create one, with the claim it can.
    let fed_rule = json!({"fleet_id": a, "scope": "federation", "federation_id": f,
        "metric": "utilization", "comparison": "lt", "threshold": 0.5, "clear_threshold": 0.6,
        "for_ms": 180000, "keep_firing_for_ms": 120000, "resend_interval_ms": 300000,
        "severity": "warning", "labels": {}});
    let r = t.rejected(&sa, "alert_rule.create", fed_rule.clone()).await;
    assert!(r.contains("claim on that federation"), "{r}");
    let rule = t.ok(&fed_and_a, "alert_rule.create", fed_rule).await;
    let r = t
        .rejected(
            &sa,
            "alert_rule.update",
            json!({"id": rule, "threshold": 0.4}),
        )
        .await;
    assert!(r.contains("claim on that federation"), "{r}");
    t.ok(
        &fed_and_a,
        "alert_rule.update",
        json!({"id": rule, "threshold": 0.4}),
    )
    .await;
    // A share within the federation needs both fleets to be members.
    let sab = t.scope(&["a"]);
    let p = t
        .ok(
            &sab,
            "pool.create",
            json!({"fleet_id": a, "name": "bays", "resource_type": "bay", "capacity": 4}),
        )
        .await;
    let share = |target: &str| {
        json!({"fleet_id": a, "target_fleet_id": target, "pool_id": p, "amount": 1,
        "federation_id": f, "starts_at": "2024-05-01T00:00:00Z"})
    };
    t.ok(&sab, "share.create", share(&b)).await;
    let r = t
        .rejected(&sab, "share.create", share(&t.fleet("outsider")))
        .await;
    assert!(r.contains("members"), "{r}");
    t.ok(&fed_admin, "member.delete", json!({"id": mb})).await;
    assert_eq!(
        t.list::<Member>(&fed_admin, &[("federation_id", f.clone())])
            .await
            .items
            .len(),
        1
    );
}
