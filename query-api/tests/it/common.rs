use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use atlasmesh_core::config::Config;
use atlasmesh_query_api::{app, AppState};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::Value;
use sqlx::{Connection, PgPool};
use tower::ServiceExt;

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

pub fn clickhouse_url() -> String {
    env_or("CLICKHOUSE_URL", "http://127.0.0.1:8123")
}

pub fn clickhouse_validation() -> bool {
    env_or("CLICKHOUSE_VALIDATION", "false") == "true"
}

pub fn database_url() -> String {
    env_or(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// A name no other test (or earlier run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "aq_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One Prometheus recorder per test process (the recorder is global).
pub fn prometheus() -> PrometheusHandle {
    static H: OnceLock<PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("install recorder")
    })
    .clone()
}

/// Config pointing at the loopback servers, with the given ClickHouse database and Redis prefix.
pub fn config(ch_database: &str, redis_prefix: &str) -> Config {
    let mut c = Config::default();
    c.kafka.brokers = env_or("KAFKA_BROKERS", "127.0.0.1:9092");
    c.schema_registry.url = env_or("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081");
    c.clickhouse.url = clickhouse_url();
    c.clickhouse.database = ch_database.to_string();
    c.clickhouse.validation = clickhouse_validation();
    c.postgres.url = database_url();
    c.postgres.max_connections = 2;
    c.redis.url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
    c.redis.key_prefix = redis_prefix.to_string();
    c.api.max_page_size = 50;
    c.auth.hs256_secret = Some(TEST_SECRET.into());
    c.command_signing.keys = "qa:query-api-test-command-signing-key-0001".into();
    c
}

/// The HS256 secret of the test configs.
pub const TEST_SECRET: &str = "query-api-test-secret";

/// A token for `scope` with `role`, valid for the test configs.
pub fn token(role: atlasmesh_core::Role, scope: &atlasmesh_core::Scope) -> String {
    atlasmesh_query_api::auth::issue_hs256(
        TEST_SECRET,
        "it",
        role,
        scope,
        std::time::Duration::from_secs(600),
    )
}

/// GET `uri` as a caller with `role` and `scope`.
pub async fn get_as(
    state: &AppState,
    uri: &str,
    role: atlasmesh_core::Role,
    scope: &atlasmesh_core::Scope,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {}", token(role, scope)))
        .body(Body::empty())
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 16 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

pub async fn state(cfg: &Config) -> AppState {
    AppState::connect(cfg, prometheus()).await.expect("connect")
}

/// GET `uri` through the router as a viewer of every fleet; returns status and body (JSON,
/// or a string for text).
pub async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    get_as(
        state,
        uri,
        atlasmesh_core::Role::Viewer,
        &atlasmesh_core::Scope::all(),
    )
    .await
}

/// Asserts a 400 in the API's error shape naming exactly `fields`.
pub fn assert_bad_request(status: StatusCode, body: &Value, fields: &[&str]) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let got: Vec<&str> = body["error"]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no fields in {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, fields, "{body}");
}

pub fn assert_not_found(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert!(body["error"].get("fields").is_none(), "{body}");
}

/// A private PostgreSQL database with every migration applied (through the sinks' migrator,
/// as `atlasmesh migrate` does), dropped by [`PgDb::drop`].
pub struct PgDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl PgDb {
    pub async fn create(tag: &str) -> PgDb {
        let name = unique(tag);
        let mut admin = sqlx::PgConnection::connect(&database_url())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {}: {e}", database_url()));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = url_with_database(&database_url(), &name);
        let pool = PgPool::connect(&url).await.unwrap();
        atlasmesh_sinks::postgres::migrate(&pool).await.unwrap();
        PgDb { name, url, pool }
    }

    pub async fn drop(self) {
        self.pool.close().await;
        let mut admin = sqlx::PgConnection::connect(&database_url()).await.unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

/// `postgres://user@host:port/db?x` with the database replaced.
pub fn url_with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

/// A private ClickHouse database with every migration of `migrations/clickhouse` applied.
pub struct ClickHouseDb {
    pub name: String,
    pub client: clickhouse::Client,
    admin: clickhouse::Client,
}

impl ClickHouseDb {
    pub async fn create(tag: &str) -> ClickHouseDb {
        let name = unique(tag);
        let admin = clickhouse::Client::default()
            .with_url(clickhouse_url())
            .with_validation(clickhouse_validation());
        admin
            .query("CREATE DATABASE ?")
            .bind(clickhouse::sql::Identifier(&name))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("create database at {}: {e}", clickhouse_url()));
        let client = admin.clone().with_database(&name);
        for stmt in migration_statements() {
            client
                .query(&stmt)
                .execute()
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
        ClickHouseDb {
            name,
            client,
            admin,
        }
    }

    pub async fn drop(self) {
        let _ = self
            .admin
            .query("DROP DATABASE IF EXISTS ?")
            .bind(clickhouse::sql::Identifier(&self.name))
            .execute()
            .await;
    }
}

/// Every statement of `migrations/clickhouse/*.sql` in file order (`;` at line end ends one).
pub fn migration_statements() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/clickhouse");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let mut cur = String::new();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            if line.trim_start().starts_with("--") {
                continue;
            }
            let t = line.trim_end();
            if let Some(body) = t.strip_suffix(';') {
                cur.push_str(body);
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            } else {
                cur.push_str(t);
                cur.push('\n');
            }
        }
        assert!(
            cur.trim().is_empty(),
            "{}: statement without `;`",
            f.display()
        );
    }
    out
}

/// The API served on a free loopback port by [`atlasmesh_query_api::serve_listener`] (the
/// production server: connection limit, timeouts, client addresses), until [`Server::stop`].
pub struct Server {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<atlasmesh_query_api::Result<()>>,
}

impl Server {
    pub async fn start(state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(atlasmesh_query_api::serve_listener(
            state,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Server { addr, stop, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, waits for in-flight requests, and returns the server's result.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(std::time::Duration::from_secs(30), self.task)
            .await
            .expect("the server drains within 30 s")
            .unwrap()
            .unwrap();
    }
}
