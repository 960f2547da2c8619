//! The seed service specs (`../shared/seeds/00*.txt`) are the contract existing clients were
//! written against. Read at run time, every `METHOD path` they list is walked against the real
//! API and command worker (none may answer 404 or 405), and each group goes through its round
//! trip on the seed routes: create, read back, `PUT`, delete.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use atlasmesh_core::domain::{catalog, Ids, ResourceInfo};
use atlasmesh_core::{Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api_matrix::seed;
use crate::common::{sigterm, TestEnv};

/// `(METHOD, path)` of every route line (`` - `PUT /api/v1/…/{id}` - … ``) of the seed specs,
/// in file order, each once.
fn seed_routes() -> Vec<(Method, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/seeds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("00") && n.ends_with(".txt"))
        })
        .collect();
    files.sort();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let Some(rest) = line.trim_start().strip_prefix("- `") else {
                continue;
            };
            let Some(spec) = rest.split('`').next() else {
                continue;
            };
            let Some((method, path)) = spec.split_once(' ') else {
                continue;
            };
            if !path.starts_with('/')
                || !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method)
            {
                continue;
            }
            if seen.insert(spec.to_string()) {
                out.push((method.parse().unwrap(), path.to_string()));
            }
        }
    }
    out
}

/// The resource whose collection path is `path` (or accepts creates there).
fn resource_at(path: &str) -> Option<&'static ResourceInfo> {
    catalog()
        .into_iter()
        .map(|e| e.info)
        .find(|i| i.path == path || i.create_also_at == Some(path))
}

/// The resource nested under `parent_path` as `segment`.
fn nested_at(parent_path: &str, segment: &str) -> Option<&'static ResourceInfo> {
    catalog().into_iter().map(|e| e.info).find(|i| {
        i.nested
            .is_some_and(|n| n.parent_path == parent_path && n.segment == segment)
    })
}

/// The first example body of resource `name` (resources with several examples vary them by
/// how many of their own kind `ids` holds: a member for `fleet` itself, not a partner).
fn example(name: &str, fleet: &str, ids: &Ids) -> Value {
    let e = catalog().into_iter().find(|e| e.info.name == name).unwrap();
    let mut first = ids.clone();
    first.remove(name);
    (e.example)(fleet, &first)
}

/// A full `PUT` body of each resource with updates, valid for its example entity.
fn replace_body(name: &str) -> Value {
    match name {
        "benchmark" => json!({"name": "Utilization target v2", "target_value": 0.85,
                              "higher_is_better": true, "description": "raised"}),
        "pool" => json!({"name": "Depot A chargers (extended)", "capacity": 12}),
        "allocation" => json!({"amount": 1, "ends_at": "2024-05-01T11:00:00Z"}),
        "request" => json!({"priority": 70, "amount": 1, "status": "pending"}),
        "plan" => json!({"name": "Q3 charger plan v2", "horizon_start": "2024-07-01T00:00:00Z",
                         "horizon_end": "2024-10-01T00:00:00Z", "planned_capacity": 16,
                         "expected_demand": 13, "notes": "after review"}),
        "federation" => json!({"name": "Northern depots (renamed)", "description": "north"}),
        "share" => json!({"amount": 1, "ends_at": "2024-05-09T00:00:00Z"}),
        "optimization_run" => json!({"name": "Morning rebalance v2", "status": "running"}),
        "rebalancing" => json!({"vehicle_count": 4, "status": "proposed"}),
        other => panic!("no PUT body for {other}"),
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = if method == Method::GET {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}{sep}wait=true", self.base)
        };
        let mut rb = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates through `path`, answering the new entity's id.
    async fn create(&self, path: &str, body: &Value) -> String {
        let (s, v) = self.call(Method::POST, path, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "POST {path} {body}: {v}");
        v["entity_id"].as_str().unwrap().to_string()
    }
}

/// Equal as the API means them: instants in any RFC 3339 offset, numbers of any JSON type.
fn same(a: &Value, b: &Value) -> bool {
    use atlasmesh_core::clock::parse_instant;
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            x == y || matches!((parse_instant(x), parse_instant(y)), (Some(p), Some(q)) if p == q)
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether the page `v` (or entity) holds the entity `id`.
fn holds(v: &Value, id: &str) -> bool {
    v["id"] == json!(id)
        || v["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == json!(id)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_route_is_served_and_round_trips() {
    let routes = seed_routes();
    let api_routes = routes
        .iter()
        .filter(|(_, p)| p.starts_with("/api/"))
        .count();
    assert_eq!(api_routes, 76, "the seed specs list 76 API routes");

    let env = TestEnv::new("seedroutes");
    env.migrate();
    let (mut api_proc, base) = env.spawn_api(0).await;
    let mut worker =
        env.spawn_worker_with(0, &[("ATLASMESH_RUNNER__CHECKPOINT_INTERVAL_MS", "100")]);
    let http = reqwest::Client::new();
    let fleet = format!("{}-s", env.cfg.kafka.group_prefix.replace('.', "-"));
    let root = env.token("root", Role::Admin, &Scope::all());
    let ids = seed(&http, &base, &root, &fleet).await;
    let api = Api {
        http,
        base,
        token: root,
    };

    // ------------------------------------------------------------ the walk
    // Writes last among them deletes, in reverse order (children before parents).
    let (deletes, others): (Vec<_>, Vec<_>) =
        routes.iter().partition(|(m, _)| *m == Method::DELETE);
    let order: Vec<&(Method, String)> = others
        .into_iter()
        .chain(deletes.into_iter().rev())
        .collect();
    let mut walked: BTreeMap<String, u16> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (method, template) in order {
        let (collection, rest) = match template.find("/{") {
            Some(i) => (&template[..i], &template[i..]),
            None => (template.as_str(), ""),
        };
        let first_id = |name: &str| -> String {
            ids.get(name)
                .and_then(|v| v.first())
                .unwrap_or_else(|| panic!("no {name} seeded for {template}"))
                .clone()
        };
        let path = if rest.is_empty() {
            template.clone()
        } else if *method == Method::DELETE {
            // Deletes remove an entity made for them, so the seeded ones stay for the rest.
            let owner = resource_at(collection).unwrap_or_else(|| panic!("{template}"));
            let parent = first_id(owner.name);
            match template.split_once("/{id}/") {
                Some((_, segment)) => {
                    // `…/{id}/members/{fleet_id}`: a member added for it, removed by fleet.
                    let child = nested_at(collection, segment.split('/').next().unwrap())
                        .unwrap_or_else(|| panic!("{template}"));
                    let leaving = format!("{fleet}-leaving");
                    let mut b = example(child.name, &leaving, &ids);
                    b.as_object_mut()
                        .unwrap()
                        .remove(child.nested.unwrap().column);
                    api.create(
                        &format!("{collection}/{parent}/{segment}").replace("/{fleet_id}", ""),
                        &b,
                    )
                    .await;
                    template
                        .replace("{id}", &parent)
                        .replace("{fleet_id}", &leaving)
                }
                None => {
                    let fresh = api
                        .create(collection, &example(owner.name, &fleet, &ids))
                        .await;
                    template.replace("{id}", &fresh)
                }
            }
        } else {
            let owner = resource_at(collection).map(|i| i.name);
            template
                .replace("{fleet_id}", &fleet)
                .replace("{pool_id}", &first_id("pool"))
                .replace(
                    "{id}",
                    &first_id(owner.unwrap_or_else(|| panic!("no resource at {collection}"))),
                )
        };
        let body = match *method {
            Method::POST if rest.is_empty() => {
                let i = resource_at(collection).unwrap_or_else(|| panic!("{template}"));
                Some(example(i.name, &fleet, &ids))
            }
            Method::POST => {
                // `…/{id}/<segment>`: a nested create or an action.
                let segment = rest.rsplit('/').next().unwrap();
                match nested_at(collection, segment) {
                    Some(child) => {
                        let n = child.nested.unwrap();
                        let other = format!("{fleet}-walk");
                        let mut b = example(child.name, &other, &ids);
                        b.as_object_mut().unwrap().remove(n.column);
                        if child.name == "member" {
                            b["fleet_id"] = json!(other);
                        } else {
                            b["fleet_id"] = json!(fleet);
                        }
                        Some(b)
                    }
                    None => Some(json!({"note": "seed route walk"})),
                }
            }
            Method::PUT => {
                let i = resource_at(collection).unwrap();
                Some(replace_body(i.name))
            }
            _ => None,
        };
        let (s, v) = api.call(method.clone(), &path, body.as_ref()).await;
        walked.insert(format!("{method} {template}"), s.as_u16());
        if s == StatusCode::NOT_FOUND || s == StatusCode::METHOD_NOT_ALLOWED {
            wrong.push(format!("{method} {path} → {s}: {v}"));
        }
    }
    eprintln!("seed routes walked: {}", walked.len());
    for (r, s) in &walked {
        eprintln!("  {s} {r}");
    }
    assert!(
        wrong.is_empty(),
        "seed routes not served:\n{}",
        wrong.join("\n")
    );
    assert_eq!(walked.len(), routes.len());

    // ------------------------------------------------------------ round trips
    // Groups with `PUT`: create through the seed route, read back, replace, delete.
    let has = |m: &str, p: String| routes.iter().any(|(rm, rp)| rm.as_str() == m && *rp == p);
    let mut round_trips = 0;
    let mut ids_rt = ids.clone();
    for (m, template) in &routes {
        if *m != Method::PUT {
            continue;
        }
        let collection = template.strip_suffix("/{id}").unwrap();
        let i = resource_at(collection).unwrap();
        let mut body = example(i.name, &fleet, &ids_rt);
        // Names are unique per fleet (the walk created and renamed the examples).
        if let Some(name) = body.get("name").and_then(Value::as_str) {
            body["name"] = json!(format!("{name} (round trip)"));
        }
        if i.name == "request" {
            // A request on a pool without room stays queued (pending), so it can change.
            let empty = api
                .create(
                    "/api/v1/fleet-resources/pools",
                    &json!({"fleet_id": fleet, "name": "Full pool", "resource_type": "bay", "capacity": 0}),
                )
                .await;
            body["pool_id"] = json!(empty);
        }
        let id = api.create(collection, &body).await;
        ids_rt.entry(i.name).or_default().push(id.clone());
        // Read back: by id where the spec has it, else the spec's list.
        let item = format!("{collection}/{id}");
        let read_path = if has("GET", format!("{collection}/{{id}}")) {
            item.clone()
        } else {
            format!("{collection}?limit=1000")
        };
        let (s, v) = api.call(Method::GET, &read_path, None).await;
        assert!(
            s == StatusCode::OK && holds(&v, &id),
            "read {read_path}: {s} {v}"
        );
        let entity = |v: &Value| -> Value {
            if v["id"] == json!(id) {
                v.clone()
            } else {
                v["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["id"] == json!(id))
                    .cloned()
                    .unwrap()
            }
        };
        let created = entity(&v);
        for (k, want) in body.as_object().unwrap() {
            assert!(
                same(&created[k], want),
                "{} created {k}: {} vs {want}",
                i.name,
                created[k]
            );
        }
        // PUT: every field replaced, read back through the same route.
        let mut replacement = replace_body(i.name);
        if let Some(name) = replacement.get("name").and_then(Value::as_str) {
            replacement["name"] = json!(format!("{name} (round trip)"));
        }
        let (s, v) = api.call(Method::PUT, &item, Some(&replacement)).await;
        assert_eq!(s, StatusCode::OK, "PUT {item} {replacement}: {v}");
        let (_, v) = api.call(Method::GET, &read_path, None).await;
        let updated = entity(&v);
        for (k, want) in replacement.as_object().unwrap() {
            assert!(
                same(&updated[k], want),
                "{} after PUT {k}: {} vs {want}",
                i.name,
                updated[k]
            );
        }
        // PUT without a required field is refused before it becomes a command.
        if let Some(k) = created
            .as_object()
            .unwrap()
            .keys()
            .find(|k| replacement.get(*k).is_some() && !created[*k].is_null())
        {
            let mut partial = replacement.clone();
            partial.as_object_mut().unwrap().remove(k);
            let (s, v) = api.call(Method::PUT, &item, Some(&partial)).await;
            if s == StatusCode::UNPROCESSABLE_ENTITY {
                assert!(v["error"]["fields"][k].is_string(), "{v}");
            } else {
                // An optional field (absent stays as it is).
                assert_eq!(s, StatusCode::OK, "partial PUT {item}: {v}");
            }
        }
        // Delete, then it is gone.
        let (s, v) = api.call(Method::DELETE, &item, None).await;
        assert_eq!(s, StatusCode::OK, "DELETE {item}: {v}");
        let (s, v) = api.call(Method::GET, &read_path, None).await;
        assert!(
            s == StatusCode::NOT_FOUND || (s == StatusCode::OK && !holds(&v, &id)),
            "{} still there after DELETE: {s} {v}",
            i.name
        );
        round_trips += 1;
    }

    // Groups without `PUT`: create through the seed route and read back through the seed
    // route keyed by fleet, pool or parent (scores/{fleet_id}, utilization/{pool_id}, …).
    let mut read_backs = 0;
    let other = format!("{fleet}-rt");
    for (m, template) in &routes {
        if *m != Method::POST || template.ends_with("/resolve") {
            continue;
        }
        let (create_path, read_path, body, id_field) =
            if let Some((parent, segment)) = template.split_once("/{id}/") {
                let child = nested_at(parent, segment).unwrap();
                let n = child.nested.unwrap();
                let parent_name = resource_at(parent).unwrap().name;
                let pid = ids_rt[parent_name][0].clone();
                let mut b = example(child.name, &other, &ids_rt);
                b.as_object_mut().unwrap().remove(n.column);
                if child.name != "member" {
                    b["fleet_id"] = json!(fleet);
                }
                let p = template.replace("{id}", &pid);
                (p.clone(), p, b, None)
            } else {
                let i = resource_at(template).unwrap();
                if i.ops.update {
                    continue; // done above
                }
                let b = example(i.name, &fleet, &ids_rt);
                let keyed = routes.iter().find_map(|(rm, rp)| {
                    (*rm == Method::GET)
                        .then(|| rp.strip_prefix(&format!("{template}/")))
                        .flatten()
                        .filter(|k| *k == "{fleet_id}" || *k == "{pool_id}")
                });
                let read = match keyed {
                    Some("{fleet_id}") => format!("{template}/{fleet}"),
                    Some(_) => format!("{template}/{}", b["pool_id"].as_str().unwrap()),
                    None if has("GET", format!("{template}/{{id}}")) => format!("{template}/"),
                    None => format!("{template}?limit=1000"),
                };
                (template.clone(), read, b, Some(i))
            };
        let id = api.create(&create_path, &body).await;
        let read_path = if read_path.ends_with('/') {
            format!("{read_path}{id}")
        } else if read_path.contains('?') || create_path != read_path {
            read_path
        } else {
            format!("{read_path}?limit=1000")
        };
        let (s, v) =
            if let Some(i) = id_field.filter(|i| i.create_also_at == Some(template.as_str())) {
                // `POST …/fleet-performance/metrics`: `GET` there is the stream's window metrics;
                // the created metric reads back from its resource.
                api.call(Method::GET, &i.entity_path(&id), None).await
            } else {
                api.call(Method::GET, &read_path, None).await
            };
        assert!(
            s == StatusCode::OK && holds(&v, &id),
            "{template}: read {read_path}: {s} {v}"
        );
        read_backs += 1;
    }
    // The member added through the nested route leaves through it, by fleet id.
    let fed = ids_rt["federation"][0].clone();
    let members = format!("/api/v1/fleet-coordination/federations/{fed}/members");
    let (s, v) = api
        .call(Method::DELETE, &format!("{members}/{other}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = api.call(Method::GET, &members, None).await;
    assert!(
        !v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["fleet_id"] == json!(other)),
        "{v}"
    );
    let (s, _) = api
        .call(Method::DELETE, &format!("{members}/{other}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "already removed");
    let (s, _) = api
        .call(
            Method::GET,
            "/api/v1/fleet-coordination/federations/no-such/members",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "members of an unknown federation");
    eprintln!("round trips with PUT: {round_trips}; create + read back: {read_backs}");
    assert_eq!(round_trips, 9);
    sigterm(&mut worker);
    sigterm(&mut api_proc);
}
