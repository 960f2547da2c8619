//! Inter-fleet communication (issue 15): three member fleets of a federation and one outside
//! it, through the real API, command worker and relay. Messages reach their recipients only
//! (on the coordination topic, keyed by the recipient), logs are visible only to sender and
//! recipient, the outsider is refused (403) on every route, and delivery and acknowledgement
//! feed the federation's coordination metrics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlasmesh_core::{Role, Scope};
use atlasmesh_schemas::{Codec, CoordinationRecord, SchemaKind};
use rdkafka::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{sigterm, TestEnv};

const FEDERATIONS: &str = "/api/v1/fleet-coordination/federations";
const COMMS: &str = "/api/v1/fleet-coordination/communications";

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn post(&self, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}?wait=true", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates through the command path and returns the new entity's id.
    async fn create(&self, token: &str, path: &str, body: Value) -> String {
        let (s, v) = self.post(token, path, &body).await;
        assert_eq!(s, StatusCode::CREATED, "POST {path} {body}: {v}");
        v["entity_id"].as_str().unwrap().to_string()
    }

    /// The ids of a list's items, sorted.
    async fn ids(&self, token: &str, path: &str) -> Vec<String> {
        let (s, v) = self.get(token, path).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        let mut ids: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_members_only_and_the_outsider_is_refused() {
    let env = TestEnv::new("comms");
    env.migrate();
    let (mut api_proc, base) = env.spawn_api(0).await;
    let mut worker = env.spawn_worker_args(
        0,
        &["--pipelines", "commands,resources"],
        &[("ATLASMESH_RESOURCES__COORDINATION_INTERVAL_MS", "1000")],
    );
    let api = Api {
        http: reqwest::Client::new(),
        base,
    };
    let admin = env.token("admin", Role::Admin, &Scope::all());
    let op = |f: &str| env.token(&format!("op-{f}"), Role::Operator, &Scope::fleets([f]));
    let (ta, tb, tc, tx) = (op("fleet-a"), op("fleet-b"), op("fleet-c"), op("fleet-x"));

    let fed = api
        .create(&admin, FEDERATIONS, json!({"name": "Northern depots"}))
        .await;
    for (fleet, role) in [
        ("fleet-a", "coordinator"),
        ("fleet-b", "member"),
        ("fleet-c", "member"),
    ] {
        api.create(
            &admin,
            &format!("{FEDERATIONS}/{fed}/members"),
            json!({"fleet_id": fleet, "role": role}),
        )
        .await;
    }

    // a → b; a → everyone (one row per other member); b answers a in the first conversation.
    let offer = api
        .create(
            &ta,
            COMMS,
            json!({"federation_id": fed, "fleet_id": "fleet-a", "target_fleet_id": "fleet-b",
                   "kind": "resource_offer", "body": {"pool": "chargers", "units": 2}}),
        )
        .await;
    let notice = api
        .create(
            &ta,
            COMMS,
            json!({"federation_id": fed, "fleet_id": "fleet-a", "kind": "notice",
                   "body": {"text": "depot north closed 22:00-06:00"}}),
        )
        .await;
    let reply = api
        .create(
            &tb,
            COMMS,
            json!({"federation_id": fed, "fleet_id": "fleet-b", "target_fleet_id": "fleet-a",
                   "kind": "resource_request", "conversation_id": offer, "body": {"units": 1}}),
        )
        .await;
    // The broadcast's rows: to fleet-b (its first row) and to fleet-c.
    let (s, all) = api
        .get(&admin, &format!("{COMMS}/by-federation/{fed}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let rows: BTreeMap<String, Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i.clone()))
        .collect();
    assert_eq!(rows.len(), 4, "{all}");
    let notice_to_c = rows
        .values()
        .find(|r| r["message_id"] == notice.as_str() && r["target_fleet_id"] == "fleet-c")
        .expect("the broadcast reached fleet-c")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rows[&notice]["target_fleet_id"], "fleet-b");
    assert_eq!(rows[&reply]["conversation_id"], offer.as_str());
    assert_eq!(rows[&offer]["conversation_id"], offer.as_str());
    assert_eq!(
        rows[&offer]["body"],
        json!({"pool": "chargers", "units": 2})
    );

    // Each fleet reads what was sent to it or by it, nothing else.
    let by_fed = format!("{COMMS}/by-federation/{fed}");
    assert_eq!(
        api.ids(&ta, &by_fed).await,
        sorted(vec![
            offer.clone(),
            notice.clone(),
            notice_to_c.clone(),
            reply.clone()
        ])
    );
    assert_eq!(
        api.ids(&tb, &by_fed).await,
        sorted(vec![offer.clone(), notice.clone(), reply.clone()])
    );
    assert_eq!(api.ids(&tc, &by_fed).await, vec![notice_to_c.clone()]);
    assert_eq!(
        api.ids(&tb, &format!("{COMMS}/by-conversation/{offer}"))
            .await,
        sorted(vec![offer.clone(), reply.clone()])
    );
    assert!(api
        .ids(&tc, &format!("{COMMS}/by-conversation/{offer}"))
        .await
        .is_empty());
    let (s, _) = api.get(&tc, &format!("{COMMS}/{offer}")).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a member reads only its own messages"
    );
    let (s, v) = api.get(&tb, &format!("{COMMS}/{offer}")).await;
    assert_eq!(
        (s, v["fleet_id"].as_str()),
        (StatusCode::OK, Some("fleet-a"))
    );

    // The outsider: refused everywhere it names the federation or one of its messages.
    let (s, v) = api
        .post(
            &tx,
            COMMS,
            &json!({"federation_id": fed, "fleet_id": "fleet-x", "target_fleet_id": "fleet-a",
                    "kind": "notice", "body": {}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "outsider sends: {v}");
    for path in [
        by_fed.clone(),
        format!("{COMMS}/by-conversation/{offer}"),
        format!("{COMMS}/{offer}"),
        format!("{COMMS}/{notice_to_c}"),
        format!("{COMMS}?federation_id={fed}"),
    ] {
        let (s, v) = api.get(&tx, &path).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "outsider GET {path}: {v}");
        assert!(v.is_object(), "a JSON error body: {v}");
    }
    let (s, _) = api
        .post(&tx, &format!("{COMMS}/{offer}/acknowledge"), &json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "outsider acknowledges");
    // …and its own unfiltered list holds nothing of the federation.
    assert!(api.ids(&tx, COMMS).await.is_empty());
    // A member may not send as another fleet, nor to a fleet outside the federation.
    let (s, _) = api
        .post(
            &ta,
            COMMS,
            &json!({"federation_id": fed, "fleet_id": "fleet-b", "kind": "notice", "body": {}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "fleet-a writes as fleet-b");
    let (s, v) = api
        .post(
            &ta,
            COMMS,
            &json!({"federation_id": fed, "fleet_id": "fleet-a", "target_fleet_id": "fleet-x",
                    "kind": "notice", "body": {}}),
        )
        .await;
    assert!(s.is_client_error(), "to a non-member: {s} {v}");
    assert!(v.to_string().contains("not a member"), "{v}");

    // Delivery: every row on the coordination topic once, keyed by its recipient.
    let codec = Codec::new(&env.cfg.schema_registry.url).unwrap();
    let consumer = env.consumer(&env.cfg.topics.coordination, "pager");
    let mut delivered: BTreeMap<String, (String, CoordinationRecord)> = BTreeMap::new();
    let started = Instant::now();
    while delivered.len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "delivered {:?}; logs in {}",
            delivered.keys().collect::<Vec<_>>(),
            env.log_dir.display()
        );
        let Ok(m) = tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await else {
            continue;
        };
        let m = m.unwrap();
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        let rec: CoordinationRecord = codec
            .decode_record(m.payload().unwrap(), SchemaKind::Coordination)
            .await
            .unwrap();
        delivered.insert(rec.id.clone(), (key, rec));
    }
    assert_eq!(
        delivered.keys().cloned().collect::<Vec<_>>(),
        sorted(vec![
            offer.clone(),
            notice.clone(),
            notice_to_c.clone(),
            reply.clone()
        ])
    );
    for (key, rec) in delivered.values() {
        assert_eq!(key, &rec.to_fleet_id, "keyed by the recipient");
        assert_eq!(rec.federation_id, fed);
    }
    assert_eq!(delivered[&offer].1.from_fleet_id, "fleet-a");
    assert_eq!(delivered[&offer].1.to_fleet_id, "fleet-b");
    assert_eq!(
        serde_json::from_str::<Value>(&delivered[&offer].1.body_json).unwrap(),
        json!({"pool": "chargers", "units": 2})
    );
    assert_eq!(delivered[&notice_to_c].1.to_fleet_id, "fleet-c");
    assert_eq!(delivered[&notice_to_c].1.message_id, notice);

    // The log records the delivery…
    let started = Instant::now();
    loop {
        let (_, v) = api.get(&ta, &format!("{COMMS}/{offer}")).await;
        if v["status"] == "delivered" {
            assert!(v["delivered_at"].is_string() && v["acknowledged_at"].is_null());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // …and the recipient's acknowledgement; the sender may not acknowledge for it.
    let (s, _) = api
        .post(
            &ta,
            &format!("{COMMS}/{notice_to_c}/acknowledge"),
            &json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the sender acknowledges");
    let (s, v) = api
        .post(&tb, &format!("{COMMS}/{offer}/acknowledge"), &json!({}))
        .await;
    assert!(s.is_success(), "{s} {v}");
    let (_, v) = api.get(&ta, &format!("{COMMS}/{offer}")).await;
    assert_eq!(v["status"], "acknowledged", "{v}");
    assert!(v["acknowledged_at"].is_string());
    assert!(
        v["acknowledged_by"]
            .as_str()
            .unwrap()
            .ends_with("op-fleet-b"),
        "{v}"
    );
    let (s, _) = api
        .post(&tb, &format!("{COMMS}/{offer}/acknowledge"), &json!({}))
        .await;
    assert!(s.is_client_error(), "acknowledged once only");

    // The federation's coordination metrics: every message delivered, one of four
    // acknowledged, a measured latency.
    let started = Instant::now();
    let metrics = loop {
        let (s, v) = api
            .get(
                &admin,
                &format!("/api/v1/fleet-coordination/metrics/by-federation/{fed}"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let m: BTreeMap<String, f64> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["metric"].as_str().unwrap().to_string(),
                    i["value"].as_f64().unwrap(),
                )
            })
            .collect();
        if m.get("acknowledgement_rate") == Some(&0.25) {
            break m;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{m:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(metrics["messages_sent"], 4.0);
    assert_eq!(metrics["coordination_success_rate"], 1.0);
    assert!(metrics["communication_latency_ms"] >= 0.0);
    sigterm(&mut worker);
    sigterm(&mut api_proc);
}
