//! The registry stand-in exercised through schema_registry_converter 6 (the only client our code
//! uses) plus raw HTTP for config and error shapes.

use std::error::Error as _;

use apache_avro::types::Value;
use atlasmesh_test_support::schema_registry::{spawn_ephemeral, spawn_with_data, CONTENT_TYPE};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{
    get_all_subjects, get_all_versions, get_schema_by_id, get_schema_by_subject_and_version,
    is_compatible_schema, post_schema, SrSettings,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    RawError, SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::{json, Value as Json};

const V1: &str = r#"{"type":"record","name":"Ping","namespace":"atlasmesh.test","fields":[{"name":"vehicle_id","type":"string"},{"name":"speed","type":"double"}]}"#;
/// V1 with different key order / whitespace: the same schema.
const V1_REFORMATTED: &str = r#"{ "namespace": "atlasmesh.test", "name": "Ping", "type": "record",
  "fields": [ {"type": "string", "name": "vehicle_id"}, {"name": "speed", "type": "double"} ] }"#;
/// BACKWARD compatible: new field with a default.
const V2: &str = r#"{"type":"record","name":"Ping","namespace":"atlasmesh.test","fields":[{"name":"vehicle_id","type":"string"},{"name":"speed","type":"double"},{"name":"zone_id","type":["null","string"],"default":null}]}"#;
/// Incompatible with V2: new field without a default.
const NO_DEFAULT: &str = r#"{"type":"record","name":"Ping","namespace":"atlasmesh.test","fields":[{"name":"vehicle_id","type":"string"},{"name":"speed","type":"double"},{"name":"zone_id","type":["null","string"],"default":null},{"name":"payload_kg","type":"double"}]}"#;
/// Incompatible with V2: speed double -> string.
const TYPE_CHANGE: &str = r#"{"type":"record","name":"Ping","namespace":"atlasmesh.test","fields":[{"name":"vehicle_id","type":"string"},{"name":"speed","type":"string"},{"name":"zone_id","type":["null","string"],"default":null}]}"#;

fn settings(url: &str) -> SrSettings {
    SrSettings::new_builder(url.to_owned())
        .no_proxy()
        .build()
        .expect("sr settings")
}

fn avro(schema: &str) -> SuppliedSchema {
    SuppliedSchema::new(
        Some("atlasmesh.test.Ping".to_owned()),
        SchemaType::Avro,
        schema.to_owned(),
    )
}

fn error_code(e: &SRCError) -> u32 {
    e.source()
        .and_then(|s| s.downcast_ref::<RawError>())
        .map(|r| r.error_code)
        .unwrap_or_else(|| panic!("no registry error in {e}"))
}

async fn http(method: reqwest::Method, url: String, body: Option<Json>) -> (u16, Json) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req.header("content-type", CONTENT_TYPE).body(b.to_string());
    }
    let resp = req.send().await.expect("http");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ct.as_deref(), Some(CONTENT_TYPE));
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).expect("json body"))
}

#[tokio::test]
async fn register_fetch_evolve_and_refuse() {
    let (url, server) = spawn_ephemeral().await.unwrap();
    let sr = settings(&url);
    let subject = "fleet.telemetry.v1-value".to_owned();

    let r1 = post_schema(&sr, subject.clone(), avro(V1)).await.unwrap();
    assert_eq!(r1.id, 1);
    // Same schema (different formatting) -> same id, no new version.
    let again = post_schema(&sr, subject.clone(), avro(V1_REFORMATTED))
        .await
        .unwrap();
    assert_eq!(again.id, 1);

    let fetched = get_schema_by_id(1, &sr).await.unwrap();
    assert_eq!(fetched.id, 1);
    assert_eq!(fetched.schema, V1);
    assert_eq!(fetched.schema_type, SchemaType::Avro);

    // BACKWARD evolution: new field with default.
    let r2 = post_schema(&sr, subject.clone(), avro(V2)).await.unwrap();
    assert_eq!(r2.id, 2);
    assert_eq!(
        get_all_versions(&sr, subject.clone()).await.unwrap(),
        vec![1, 2]
    );
    let latest = get_schema_by_subject_and_version(&sr, &subject, None)
        .await
        .unwrap();
    assert_eq!(
        (latest.id, latest.version, latest.schema.as_str()),
        (2, Some(2), V2)
    );
    let v1 = get_schema_by_subject_and_version(&sr, &subject, Some(1))
        .await
        .unwrap();
    assert_eq!((v1.id, v1.version), (1, Some(1)));

    // Incompatible evolutions are refused with 409.
    for bad in [NO_DEFAULT, TYPE_CHANGE] {
        let err = post_schema(&sr, subject.clone(), avro(bad))
            .await
            .unwrap_err();
        assert_eq!(error_code(&err), 409, "{err}");
        assert!(!is_compatible_schema(&sr, subject.clone(), avro(bad))
            .await
            .unwrap());
    }
    assert!(is_compatible_schema(&sr, subject.clone(), avro(V2))
        .await
        .unwrap());
    assert_eq!(
        get_all_versions(&sr, subject.clone()).await.unwrap(),
        vec![1, 2]
    );

    // Unparsable schema -> 422 / 42201.
    let err = post_schema(
        &sr,
        subject.clone(),
        avro(r#"{"type":"record","name":"X"}"#),
    )
    .await
    .unwrap_err();
    assert_eq!(error_code(&err), 42201, "{err}");

    // Unknown id -> 40403.
    let err = get_schema_by_id(99, &sr).await.unwrap_err();
    assert_eq!(error_code(&err), 40403, "{err}");

    // Per-subject NONE lets the incompatible one in.
    let (st, body) = http(
        reqwest::Method::PUT,
        format!("{url}/config/{subject}"),
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!((st, body), (200, json!({"compatibility": "NONE"})));
    let (st, body) = http(
        reqwest::Method::GET,
        format!("{url}/config/{subject}"),
        None,
    )
    .await;
    assert_eq!((st, body), (200, json!({"compatibilityLevel": "NONE"})));
    let (st, body) = http(reqwest::Method::GET, format!("{url}/config"), None).await;
    assert_eq!((st, body), (200, json!({"compatibilityLevel": "BACKWARD"})));
    let r3 = post_schema(&sr, subject.clone(), avro(TYPE_CHANGE))
        .await
        .unwrap();
    assert_eq!(r3.id, 3);

    // Ids are global: the same schema in another subject gets the same id.
    let other = post_schema(&sr, "other-value".to_owned(), avro(V2))
        .await
        .unwrap();
    assert_eq!(other.id, 2);
    assert_eq!(
        get_all_subjects(&sr).await.unwrap(),
        vec![
            "fleet.telemetry.v1-value".to_owned(),
            "other-value".to_owned()
        ]
    );

    // Lookup (POST /subjects/{s}) and its 404s.
    let (st, body) = http(
        reqwest::Method::POST,
        format!("{url}/subjects/{subject}"),
        Some(json!({"schema": V2})),
    )
    .await;
    assert_eq!(
        (st, body),
        (
            200,
            json!({"subject": subject, "id": 2, "version": 2, "schema": V2})
        )
    );
    let (st, body) = http(
        reqwest::Method::POST,
        format!("{url}/subjects/{subject}"),
        Some(json!({"schema": NO_DEFAULT})),
    )
    .await;
    assert_eq!((st, body["error_code"].clone()), (404, json!(40403)));
    let (st, body) = http(
        reqwest::Method::GET,
        format!("{url}/subjects/nope/versions/latest"),
        None,
    )
    .await;
    assert_eq!((st, body["error_code"].clone()), (404, json!(40401)));
    let (st, body) = http(
        reqwest::Method::GET,
        format!("{url}/subjects/{subject}/versions/9"),
        None,
    )
    .await;
    assert_eq!((st, body["error_code"].clone()), (404, json!(40402)));

    // Compatibility endpoint against an explicit version, under BACKWARD again.
    let (st, _) = http(
        reqwest::Method::PUT,
        format!("{url}/config/{subject}"),
        Some(json!({"compatibility": "BACKWARD"})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, body) = http(
        reqwest::Method::POST,
        format!("{url}/compatibility/subjects/{subject}/versions/2"),
        Some(json!({"schema": NO_DEFAULT})),
    )
    .await;
    assert_eq!((st, body["is_compatible"].clone()), (200, json!(false)));
    let (st, body) = http(
        reqwest::Method::POST,
        format!("{url}/compatibility/subjects/{subject}/versions/1"),
        Some(json!({"schema": V2})),
    )
    .await;
    assert_eq!((st, body), (200, json!({"is_compatible": true})));

    // Invalid level -> 422 / 42203.
    let (st, body) = http(
        reqwest::Method::PUT,
        format!("{url}/config"),
        Some(json!({"compatibility": "SIDEWAYS"})),
    )
    .await;
    assert_eq!((st, body["error_code"].clone()), (422, json!(42203)));

    // Soft delete.
    let (st, body) = http(
        reqwest::Method::DELETE,
        format!("{url}/subjects/other-value"),
        None,
    )
    .await;
    assert_eq!((st, body), (200, json!([1])));
    assert_eq!(
        get_all_subjects(&sr).await.unwrap(),
        vec!["fleet.telemetry.v1-value".to_owned()]
    );
    // Deleted schemas stay readable by id (old messages must decode).
    assert_eq!(get_schema_by_id(2, &sr).await.unwrap().schema, V2);

    let (st, body) = http(reqwest::Method::GET, format!("{url}/health"), None).await;
    assert_eq!((st, body), (200, json!({})));
    server.abort();
}

#[tokio::test]
async fn backward_transitive_and_forward_levels() {
    let (url, server) = spawn_ephemeral().await.unwrap();
    let sr = settings(&url);
    let put = |subject: &str, level: &str| {
        http(
            reqwest::Method::PUT,
            format!("{url}/config/{subject}"),
            Some(json!({"compatibility": level})),
        )
    };

    // FORWARD: the old schema must read new data. Removing a field that has a default in V2 is
    // fine; adding a required field is fine forward (old reader ignores it).
    assert_eq!(put("fwd", "FORWARD").await.0, 200);
    post_schema(&sr, "fwd".into(), avro(V1)).await.unwrap();
    post_schema(&sr, "fwd".into(), avro(V2)).await.unwrap();
    // Changing speed's type breaks forward too.
    let err = post_schema(&sr, "fwd".into(), avro(TYPE_CHANGE))
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), 409);

    // FULL: V1 -> V2 (optional field with default) passes both ways; NO_DEFAULT fails backward.
    assert_eq!(put("full", "FULL").await.0, 200);
    post_schema(&sr, "full".into(), avro(V1)).await.unwrap();
    post_schema(&sr, "full".into(), avro(V2)).await.unwrap();
    let err = post_schema(&sr, "full".into(), avro(NO_DEFAULT))
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), 409);

    // BACKWARD_TRANSITIVE checks every version, BACKWARD only the latest.
    let a = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"}]}"#;
    let b = r#"{"type":"record","name":"T","fields":[]}"#;
    let c = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string","default":"x"}]}"#;
    for (subject, level, c_ok) in [
        ("bt", "BACKWARD_TRANSITIVE", false),
        ("b", "BACKWARD", true),
    ] {
        assert_eq!(put(subject, level).await.0, 200);
        post_schema(&sr, subject.into(), avro(a)).await.unwrap();
        post_schema(&sr, subject.into(), avro(b)).await.unwrap();
        let r = post_schema(&sr, subject.into(), avro(c)).await;
        assert_eq!(r.is_ok(), c_ok, "{subject}: {r:?}");
    }
    server.abort();
}

#[tokio::test]
async fn encoder_decoder_roundtrip() {
    let (url, server) = spawn_ephemeral().await.unwrap();
    let encoder = AvroEncoder::new(settings(&url));
    let decoder = AvroDecoder::new(settings(&url));
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        "fleet.telemetry.v1".into(),
        false,
        avro(V1),
    );
    let bytes = encoder
        .encode(
            vec![
                ("vehicle_id", Value::String("v-1".into())),
                ("speed", Value::Double(42.5)),
            ],
            strategy,
        )
        .await
        .unwrap();
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1]);
    let decoded = decoder.decode(Some(&bytes)).await.unwrap();
    assert_eq!(
        decoded.value,
        Value::Record(vec![
            ("vehicle_id".into(), Value::String("v-1".into())),
            ("speed".into(), Value::Double(42.5)),
        ])
    );
    server.abort();
}

#[tokio::test]
async fn persistence_survives_restart() {
    let dir = std::env::temp_dir().join(format!("atlasmesh-sr-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("registry.json");

    let (url, server) = spawn_with_data(Some(data.clone())).await.unwrap();
    let sr = settings(&url);
    assert_eq!(
        post_schema(&sr, "s-value".into(), avro(V1))
            .await
            .unwrap()
            .id,
        1
    );
    assert_eq!(
        post_schema(&sr, "s-value".into(), avro(V2))
            .await
            .unwrap()
            .id,
        2
    );
    let (st, _) = http(
        reqwest::Method::PUT,
        format!("{url}/config"),
        Some(json!({"compatibility": "FULL"})),
    )
    .await;
    assert_eq!(st, 200);
    server.abort();
    let _ = server.await;
    assert!(data.exists());

    let (url, server) = spawn_with_data(Some(data.clone())).await.unwrap();
    let sr = settings(&url);
    assert_eq!(get_schema_by_id(1, &sr).await.unwrap().schema, V1);
    assert_eq!(get_schema_by_id(2, &sr).await.unwrap().schema, V2);
    assert_eq!(
        get_all_versions(&sr, "s-value".into()).await.unwrap(),
        vec![1, 2]
    );
    let (_, body) = http(reqwest::Method::GET, format!("{url}/config"), None).await;
    assert_eq!(body, json!({"compatibilityLevel": "FULL"}));
    // Ids keep counting after the restart; compatibility still enforced.
    let err = post_schema(&sr, "s-value".into(), avro(TYPE_CHANGE))
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), 409);
    let other = r#"{"type":"record","name":"Other","fields":[]}"#;
    assert_eq!(
        post_schema(&sr, "o-value".into(), avro(other))
            .await
            .unwrap()
            .id,
        3
    );
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
