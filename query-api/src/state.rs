//! Shared state of the API: one client per backing store, the config and the Prometheus handle.
//!
//! Every client connects lazily, so the API starts (and `/health` reports which dependency is
//! down) even when a store is unreachable at start-up.

use std::sync::Arc;
use std::time::Duration;

use atlasmesh_core::config::Config;
use metrics_exporter_prometheus::PrometheusHandle;
use rdkafka::consumer::BaseConsumer;
use rdkafka::ClientConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// How long one health probe may take.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound of one store round-trip made on behalf of a request.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// What every request shares; cloned per middleware layer and extractor, so it is one
/// reference count (cloning the members themselves — the ClickHouse client's strings among
/// them — cost ~5 % of a KPI read's CPU). Reads reach the members through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The members to change, copied first if other clones share them (tests swap one).
    pub fn make_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }
}

/// The members of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub clickhouse: clickhouse::Client,
    pub postgres: PgPool,
    pub redis: RedisHandle,
    /// Used for metadata and watermark look-ups only (never subscribes).
    pub kafka: Arc<BaseConsumer>,
    pub http: reqwest::Client,
    pub prometheus: PrometheusHandle,
    /// Produces commands to fleet.commands.v1.
    pub producer: atlasmesh_sinks::kafka::KafkaProducer,
    /// Avro encoding with the schema registry (Confluent framing).
    pub codec: Arc<atlasmesh_schemas::Codec>,
    /// Credential verification, API key cache and per-caller rate limits.
    pub auth: Arc<crate::auth::Auth>,
    /// Signs every produced command (the command worker refuses unsigned ones).
    pub signer: Arc<atlasmesh_core::command_signing::SigningKeys>,
    /// Per-client-address request and failed-authentication budgets.
    pub addresses: Arc<crate::limits::AddressLimits>,
    /// The last `/health` probes and when they ran (`api.health_cache_ms`).
    pub health: Arc<tokio::sync::Mutex<Option<(std::time::Instant, crate::health::Health)>>>,
}

impl AppState {
    /// Builds every client from the config. Nothing is contacted yet.
    pub async fn connect(cfg: &Config, prometheus: PrometheusHandle) -> Result<AppState> {
        let clickhouse = atlasmesh_sinks::clickhouse::client(&cfg.clickhouse);
        let postgres = PgPoolOptions::new()
            .max_connections(cfg.postgres.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(&cfg.postgres.url)?;
        let redis = RedisHandle::new(&cfg.redis.url)?;
        let mut kc = ClientConfig::new();
        kc.set("bootstrap.servers", &cfg.kafka.brokers)
            .set("group.id", format!("{}.query-api", cfg.kafka.group_prefix))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("socket.timeout.ms", "5000")
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "1000");
        for (k, v) in &cfg.kafka.properties {
            kc.set(k, v);
        }
        let kafka: BaseConsumer = kc.create()?;
        let http = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .build()
            .map_err(Error::Http)?;
        let producer = atlasmesh_sinks::kafka::KafkaProducer::new(&cfg.kafka)
            .map_err(|e| Error::Config(format!("kafka producer: {e}")))?;
        let codec = atlasmesh_schemas::Codec::from_config(&cfg.schema_registry)
            .map_err(|e| Error::Config(format!("schema registry client: {e}")))?;
        let auth = crate::auth::Auth::from_config(&cfg.auth)?;
        let signer = cfg
            .command_signing
            .required_keys()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(AppState(Arc::new(Shared {
            signer: Arc::new(signer),
            auth: Arc::new(auth),
            addresses: Arc::new(crate::limits::AddressLimits::from_config(&cfg.api)),
            health: Arc::default(),
            producer,
            codec: Arc::new(codec),
            config: Arc::new(cfg.clone()),
            clickhouse,
            postgres,
            redis,
            kafka: Arc::new(kafka),
            http,
            prometheus,
        })))
    }
}

/// A Redis [`ConnectionManager`] created on first use (and retried on the next use when the
/// server was down), so a Redis outage at start-up does not keep the API from starting.
#[derive(Clone)]
pub struct RedisHandle {
    client: redis::Client,
    conn: Arc<OnceCell<ConnectionManager>>,
}

impl RedisHandle {
    pub fn new(url: &str) -> Result<RedisHandle> {
        Ok(RedisHandle {
            client: redis::Client::open(url)?,
            conn: Arc::new(OnceCell::new()),
        })
    }

    pub async fn get(&self) -> Result<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(PROBE_TIMEOUT)
                    .set_response_timeout(QUERY_TIMEOUT)
                    // Fail fast (one quick retry) so a request or probe reports Redis down
                    // instead of hanging in backoff; the next use tries again.
                    .set_number_of_retries(1)
                    .set_factor(2)
                    .set_max_delay(200);
                ConnectionManager::new_with_config(self.client.clone(), cfg).await
            })
            .await?;
        Ok(conn.clone())
    }
}
