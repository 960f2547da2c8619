use std::sync::Arc;

use atlasmesh_core::domain::resources::RequestStatus;
use atlasmesh_core::domain::resources::{
    Allocation, Conflict, ConflictKind, Pool, Request, Utilization,
};
use atlasmesh_core::domain::status::CaseStatus;
use atlasmesh_core::Scope;
use atlasmesh_sinks::store::{self, CommandCtx, Outcome};
use serde_json::{json, Value};

use crate::common::{setup, T};

async fn pool(t: &T, scope: &Scope, fleet: &str, capacity: i64) -> String {
    t.ok(scope, "pool.create", json!({"fleet_id": fleet, "name": "chargers", "resource_type": "charger", "capacity": capacity}))
        .await
}

fn alloc(
    fleet: &str,
    pool: &str,
    amount: i64,
    resource: Option<&str>,
    start: &str,
    end: Option<&str>,
) -> Value {
    let mut v = json!({"fleet_id": fleet, "pool_id": pool, "amount": amount, "holder": "vehicle-1", "starts_at": start});
    if let Some(r) = resource {
        v["resource_id"] = json!(r);
    }
    if let Some(e) = end {
        v["ends_at"] = json!(e);
    }
    v
}

fn request(fleet: &str, pool: &str, amount: i64, priority: i32, holder: &str) -> Value {
    json!({"fleet_id": fleet, "pool_id": pool, "amount": amount, "priority": priority, "holder": holder,
           "starts_at": "2024-05-01T08:00:00Z"})
}

const S: &str = "2024-05-01T08:00:00Z";

#[tokio::test]
async fn allocations_track_capacity_and_refuse_over_capacity() {
    let t = setup("capacity").await;
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let p = pool(&t, &sa, &a, 5).await;
    let a1 = t
        .ok(&sa, "allocation.create", alloc(&a, &p, 3, None, S, None))
        .await;
    assert_eq!(t.get::<Pool>(&sa, &p).await.unwrap().allocated, 3);
    let r = t
        .rejected(&sa, "allocation.create", alloc(&a, &p, 3, None, S, None))
        .await;
    assert_eq!(r, "over capacity: 3 requested, 2 free of 5");
    assert_eq!(
        t.get::<Pool>(&sa, &p).await.unwrap().allocated,
        3,
        "a rejection writes nothing"
    );
    assert_eq!(
        t.list::<Allocation>(&sa, &[("pool_id", p.clone())])
            .await
            .items
            .len(),
        1
    );
    // Raising an allocation must fit too; lowering frees capacity.
    let r = t
        .rejected(&sa, "allocation.update", json!({"id": a1, "amount": 6}))
        .await;
    assert!(r.starts_with("over capacity"), "{r}");
    t.ok(&sa, "allocation.update", json!({"id": a1, "amount": 5}))
        .await;
    assert_eq!(t.get::<Pool>(&sa, &p).await.unwrap().allocated, 5);
    t.ok(&sa, "allocation.update", json!({"id": a1, "amount": 1}))
        .await;
    assert_eq!(t.get::<Pool>(&sa, &p).await.unwrap().allocated, 1);
    // A pool in use cannot be deleted; after the allocation goes, it can.
    let r = t
        .rejected(&t.scope(&["a"]), "pool.delete", json!({"id": p}))
        .await;
    assert!(r.contains("1 allocations"), "{r}");
    t.ok(&sa, "allocation.delete", json!({"id": a1})).await;
    assert_eq!(t.get::<Pool>(&sa, &p).await.unwrap().allocated, 0);
    // References: a pool of another fleet, or a missing one.
    let b = t.fleet("b");
    let sab = t.scope(&["a", "b"]);
    let pb = pool(&t, &sab, &b, 5).await;
    let r = t
        .rejected(&sab, "allocation.create", alloc(&a, &pb, 1, None, S, None))
        .await;
    assert!(r.contains("pool_id") && r.contains("another fleet"), "{r}");
    let r = t
        .rejected(&sa, "allocation.create", alloc(&a, &pb, 1, None, S, None))
        .await;
    assert!(r.contains("pool_id") && r.contains("in scope"), "{r}");
    let r = t
        .rejected(
            &sa,
            "allocation.create",
            alloc(&a, "missing", 1, None, S, None),
        )
        .await;
    assert!(r.contains("pool_id"), "{r}");
    t.ok(&sa, "pool.delete", json!({"id": p})).await;
}

#[tokio::test]
async fn queued_requests_are_served_by_priority_then_age_when_capacity_frees() {
    let t = setup("queue").await;
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let p = pool(&t, &sa, &a, 4).await;
    let blocker = t
        .ok(&sa, "allocation.create", alloc(&a, &p, 4, None, S, None))
        .await;
    // Queue (created in this order): low, high-old, mid, high-new, big.
    let low = t
        .ok(&sa, "request.create", request(&a, &p, 1, 1, "low"))
        .await;
    let high_old = t
        .ok(&sa, "request.create", request(&a, &p, 2, 9, "high-old"))
        .await;
    let mid = t
        .ok(&sa, "request.create", request(&a, &p, 1, 5, "mid"))
        .await;
    let high_new = t
        .ok(&sa, "request.create", request(&a, &p, 1, 9, "high-new"))
        .await;
    for id in [&low, &high_old, &mid, &high_new] {
        assert_eq!(
            t.get::<Request>(&sa, id).await.unwrap().status,
            RequestStatus::Pending,
            "nothing free yet"
        );
    }
    // 4 units free: high-old (2), high-new (1), mid (1) fit in that order; low waits.
    t.ok(&sa, "allocation.delete", json!({"id": blocker})).await;
    let status = |id: String| {
        let t = &t;
        let sa = sa.clone();
        async move { t.get::<Request>(&sa, &id).await.unwrap() }
    };
    for id in [&high_old, &high_new, &mid] {
        let r = status(id.clone()).await;
        assert_eq!(r.status, RequestStatus::Fulfilled, "{}", r.holder);
        let al = t
            .get::<Allocation>(&sa, r.allocation_id.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(
            (al.request_id.as_deref(), al.amount, al.holder.as_str()),
            (Some(id.as_str()), r.amount, r.holder.as_str())
        );
    }
    assert_eq!(status(low.clone()).await.status, RequestStatus::Pending);
    assert_eq!(t.get::<Pool>(&sa, &p).await.unwrap().allocated, 4);
    assert_eq!(
        t.list::<Allocation>(&sa, &[("pool_id", p.clone())])
            .await
            .items
            .len(),
        3
    );

    // Head of line: a big request ahead blocks smaller ones behind it.
    let big = t
        .ok(&sa, "request.create", request(&a, &p, 3, 50, "big"))
        .await;
    let mid_alloc = status(mid.clone()).await.allocation_id.unwrap();
    t.ok(&sa, "allocation.delete", json!({"id": mid_alloc}))
        .await; // 1 free: big (3) does not fit
    assert_eq!(status(big.clone()).await.status, RequestStatus::Pending);
    assert_eq!(
        status(low.clone()).await.status,
        RequestStatus::Pending,
        "low does not jump the queue"
    );
    // Lowering the big request's priority below low lets low through.
    t.ok(&sa, "request.update", json!({"id": big, "priority": 0}))
        .await;
    assert_eq!(status(low.clone()).await.status, RequestStatus::Fulfilled);
    // Cancelling; fulfilled requests no longer change.
    t.ok(
        &sa,
        "request.update",
        json!({"id": big, "status": "cancelled"}),
    )
    .await;
    assert_eq!(status(big.clone()).await.status, RequestStatus::Cancelled);
    let r = t
        .rejected(&sa, "request.update", json!({"id": low, "priority": 3}))
        .await;
    assert!(r.contains("fulfilled"), "{r}");
    let r = t
        .rejected(
            &sa,
            "request.update",
            json!({"id": mid, "status": "fulfilled"}),
        )
        .await;
    assert!(r.contains("status"), "{r}");
    // A capacity raise serves the queue too.
    let waiting = t
        .ok(&sa, "request.create", request(&a, &p, 2, 1, "late"))
        .await;
    assert_eq!(status(waiting.clone()).await.status, RequestStatus::Pending);
    t.ok(&sa, "pool.update", json!({"id": p, "capacity": 6}))
        .await;
    assert_eq!(status(waiting).await.status, RequestStatus::Fulfilled);
    assert_eq!(t.get::<Pool>(&sa, &p).await.unwrap().allocated, 6);
}

#[tokio::test]
async fn double_booking_and_over_allocation_raise_conflicts() {
    let t = setup("conflicts").await;
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let p = pool(&t, &sa, &a, 10).await;
    let x = t
        .ok(
            &sa,
            "allocation.create",
            alloc(
                &a,
                &p,
                1,
                Some("charger-1"),
                "2024-05-01T08:00:00Z",
                Some("2024-05-01T10:00:00Z"),
            ),
        )
        .await;
    // Touching ranges and other chargers are fine.
    t.ok(
        &sa,
        "allocation.create",
        alloc(
            &a,
            &p,
            1,
            Some("charger-1"),
            "2024-05-01T10:00:00Z",
            Some("2024-05-01T11:00:00Z"),
        ),
    )
    .await;
    t.ok(
        &sa,
        "allocation.create",
        alloc(&a, &p, 1, Some("charger-2"), "2024-05-01T09:00:00Z", None),
    )
    .await;
    assert!(t
        .list::<Conflict>(&sa, &[("pool_id", p.clone())])
        .await
        .items
        .is_empty());
    // Overlapping the first booking of charger-1: one double_booking conflict.
    let y = t
        .ok(
            &sa,
            "allocation.create",
            alloc(&a, &p, 1, Some("charger-1"), "2024-05-01T09:30:00Z", None),
        )
        .await;
    let conflicts = t
        .list::<Conflict>(&sa, &[("pool_id", p.clone())])
        .await
        .items;
    // y is open-ended, so it overlaps both charger-1 bookings.
    assert_eq!(conflicts.len(), 2, "{conflicts:?}");
    let c = conflicts
        .iter()
        .find(|c| c.allocation_ids.contains(&x))
        .unwrap();
    assert_eq!(
        (c.kind, c.status, c.resource_id.as_deref()),
        (
            ConflictKind::DoubleBooking,
            CaseStatus::Open,
            Some("charger-1")
        )
    );
    assert!(c.allocation_ids.contains(&y));
    // Shortening y so it ends before x starts overlapping... still overlaps x; no duplicate conflict.
    t.ok(
        &sa,
        "allocation.update",
        json!({"id": y, "ends_at": "2024-05-01T09:45:00Z"}),
    )
    .await;
    assert_eq!(
        t.list::<Conflict>(&sa, &[("pool_id", p.clone())])
            .await
            .items
            .len(),
        2
    );
    // Resolving.
    t.ok(
        &sa,
        "conflict.resolve",
        json!({"id": c.id, "note": "moved vehicle-1 to charger-3"}),
    )
    .await;
    let c2 = t.get::<Conflict>(&sa, &c.id).await.unwrap();
    assert_eq!(
        (c2.status, c2.resolution.as_deref()),
        (CaseStatus::Resolved, Some("moved vehicle-1 to charger-3"))
    );
    let r = t
        .rejected(&sa, "conflict.resolve", json!({"id": c.id}))
        .await;
    assert!(r.contains("resolved to resolved"), "{r}");
    // Capacity cut below what is allocated (4): accepted, over_allocation raised.
    t.ok(&sa, "pool.update", json!({"id": p, "capacity": 2}))
        .await;
    let over: Vec<_> = t
        .list::<Conflict>(&sa, &[("pool_id", p.clone())])
        .await
        .items
        .into_iter()
        .filter(|c| c.kind == ConflictKind::OverAllocation)
        .collect();
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].allocation_ids.len(), 4);
    // And no new allocation fits while over.
    let r = t
        .rejected(&sa, "allocation.create", alloc(&a, &p, 1, None, S, None))
        .await;
    assert!(r.starts_with("over capacity"), "{r}");
    // Utilization samples derive their ratio and list by pool.
    t.ok(
        &sa,
        "utilization.create",
        json!({"fleet_id": a, "pool_id": p, "measured_at": S, "in_use": 3, "capacity": 4}),
    )
    .await;
    let u = t
        .list::<Utilization>(&sa, &[("pool_id", p.clone())])
        .await
        .items;
    assert_eq!(u[0].utilization, Some(0.75));
}

#[tokio::test]
async fn concurrent_allocations_never_exceed_capacity() {
    let t = Arc::new(setup("concurrent").await);
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let p = pool(&t, &sa, &a, 7).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (t, a, p, sa) = (t.clone(), a.clone(), p.clone(), sa.clone());
        tasks.push(tokio::spawn(async move {
            let payload = alloc(&a, &p, 1, None, S, None);
            let id = format!("{}-conc-{i}", t.tag);
            let mut tx = t.pool.begin().await.unwrap();
            let out = store::apply(
                &mut tx,
                CommandCtx {
                    command_id: &id,
                    kind: "allocation.create",
                    actor: "x",
                    scope: &sa,
                    issued_at_ms: 1_000 + i,
                    payload: &payload,
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            out
        }));
    }
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap() {
            Outcome::Applied { .. } => applied += 1,
            Outcome::Rejected { reason } => {
                assert!(reason.starts_with("over capacity"), "{reason}")
            }
        }
    }
    assert_eq!(applied, 7);
    assert_eq!(t.get::<Pool>(&sa, &p).await.unwrap().allocated, 7);
    assert_eq!(
        t.count(
            "SELECT count(*) FROM resource_allocations WHERE pool_id = $1",
            &p
        )
        .await,
        7
    );
}

#[tokio::test]
async fn concurrent_requests_are_queued_without_deadlocks() {
    let t = Arc::new(setup("concurrent-req").await);
    let a = t.fleet("a");
    let sa = t.scope(&["a"]);
    let p = pool(&t, &sa, &a, 3).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (t, a, p, sa) = (t.clone(), a.clone(), p.clone(), sa.clone());
        tasks.push(tokio::spawn(async move {
            t.run(
                &sa,
                "request.create",
                request(&a, &p, 1, i, &format!("v{i}")),
            )
            .await
        }));
    }
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Outcome::Applied { .. }));
    }
    let fulfilled = t
        .list::<Request>(
            &sa,
            &[("pool_id", p.clone()), ("status", "fulfilled".into())],
        )
        .await
        .items;
    assert_eq!(fulfilled.len(), 3);
    assert_eq!(
        t.list::<Request>(&sa, &[("pool_id", p.clone()), ("status", "pending".into())])
            .await
            .items
            .len(),
        9
    );
    assert_eq!(t.get::<Pool>(&sa, &p).await.unwrap().allocated, 3);
}
