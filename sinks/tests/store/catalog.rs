//! Every resource of the catalog through the generic path: create its examples, read them
//! back typed (the view matches the table), list them by fleet with pages, update, delete.

use atlasmesh_core::domain::{self, Ids, ListQuery, Resource};
use atlasmesh_core::Scope;
use atlasmesh_sinks::store::{self, Outcome};
use serde_json::json;

use crate::common::setup;

#[tokio::test]
async fn every_resource_creates_reads_lists_updates_and_deletes() {
    let t = setup("catalog").await;
    let fleet = t.fleet("a");
    let all = Scope::all();
    let mut ids = Ids::new();
    let mut created = Vec::new();
    // Resources without a create (alert instances: the alert engine writes them) have nothing
    // to start from here; their actions are tested with the engine.
    for e in domain::catalog().into_iter().filter(|e| e.info.ops.create) {
        for _ in 0..e.example_count {
            let body = (e.example)(&fleet, &ids);
            let id = t.ok(&all, &format!("{}.create", e.info.name), body).await;
            ids.entry(e.info.name).or_default().push(id.clone());
            created.push((e.info, id));
        }
    }
    // Typed reads: every row deserializes into its view (deny_unknown_fields), by id and in lists.
    macro_rules! read_back {
        ($($r:ty),* $(,)?) => {$({
            let name = <$r as Resource>::INFO.name;
            let none = Vec::new();
            let mine = if <$r as Resource>::INFO.ops.create { ids.get(name).unwrap() } else { &none };
            // Examples of another fleet (a federation's partner member) are not in its list.
            let mut of_fleet = Vec::new();
            for id in mine {
                let v = t.get::<$r>(&all, id).await;
                assert!(v.is_some(), "{name} {id} reads back");
                let v = serde_json::to_value(&v).unwrap();
                if v.get("fleet_id").is_none_or(|f| f == &json!(fleet)) {
                    of_fleet.push(id.clone());
                }
            }
            let mine = &of_fleet;
            let filters = if <$r as Resource>::INFO.filter_column("fleet_id").is_some() {
                vec![("fleet_id", fleet.clone())]
            } else {
                vec![]
            };
            let q = ListQuery { filters, limit: 1000, ..ListQuery::default() };
            let page = store::list::<$r>(&t.pool, &all, &q).await.unwrap();
            for id in mine {
                let json = serde_json::to_value(&page.items).unwrap();
                assert!(json.as_array().unwrap().iter().any(|v| v["id"] == json!(id)), "{name} {id} listed");
            }
        })*};
    }
    atlasmesh_core::for_each_resource!(read_back);

    // Updates: an empty update of every updatable resource is applied and bumps updated_at.
    for (info, id) in &created {
        if info.ops.update {
            match t
                .run(&all, &format!("{}.update", info.name), json!({"id": id}))
                .await
            {
                Outcome::Applied { entity_id, .. } => assert_eq!(&entity_id, id),
                // The example request was served at once (the pool had room); served requests
                // no longer change.
                Outcome::Rejected { reason } if info.name == "request" => {
                    assert!(reason.contains("fulfilled"), "{reason}")
                }
                other => panic!("{} update: {other:?}", info.name),
            }
        }
    }
    // Deletes, children first.
    for (info, id) in created.iter().rev() {
        if !info.ops.delete {
            continue;
        }
        let kind = format!("{}.delete", info.name);
        let out = t.run(&all, &kind, json!({"id": id})).await;
        if info.name == "pool" {
            // The example request was served from the queue: that allocation still holds it.
            assert!(
                matches!(&out, Outcome::Rejected { reason } if reason.contains("allocations")),
                "{out:?}"
            );
            continue;
        }
        assert!(matches!(out, Outcome::Applied { .. }), "{kind}: {out:?}");
        let again = t.run(&all, &kind, json!({"id": id})).await;
        assert!(
            matches!(again, Outcome::Rejected { .. }),
            "{kind} twice: {again:?}"
        );
    }
    assert_eq!(
        t.count(
            "SELECT count(*) FROM perf_benchmarks WHERE fleet_id = $1",
            &fleet
        )
        .await,
        0
    );
}

#[tokio::test]
async fn unknown_kinds_and_bad_payloads_are_rejected() {
    let t = setup("kinds").await;
    let all = Scope::all();
    for kind in [
        "nope.create",
        "benchmark",
        "benchmark.resolve",
        "score.update",
        "score.delete",
    ] {
        let r = t.rejected(&all, kind, json!({"id": "x"})).await;
        assert!(r.contains("unknown command kind"), "{kind}: {r}");
    }
    let r = t
        .rejected(&all, "benchmark.create", json!({"fleet_id": "f"}))
        .await;
    assert!(r.starts_with("invalid payload"), "{r}");
    let r = t
        .rejected(
            &all,
            "benchmark.create",
            json!({"fleet_id": "f", "name": "n", "metric": "m", "target_value": 1.0,
                                                    "higher_is_better": true, "extra": 1}),
        )
        .await;
    assert!(r.contains("unknown field"), "{r}");
    let r = t
        .rejected(
            &all,
            "benchmark.create",
            json!({"fleet_id": "bad fleet", "name": " ", "metric": "m",
                                                    "target_value": 1.0, "higher_is_better": true}),
        )
        .await;
    assert!(r.contains("fleet_id") && r.contains("name"), "{r}");
    let r = t
        .rejected(&all, "benchmark.update", json!({"name": "x"}))
        .await;
    assert!(r.contains("\"id\""), "{r}");
    let r = t
        .rejected(&all, "benchmark.update", json!({"id": "missing"}))
        .await;
    assert!(r.contains("no benchmark missing"), "{r}");
}
