//! The health pipeline (fleet analytics): per vehicle and UTC day, from `fleet.telemetry.v1`
//! (its own consumer group beside the telemetry pipeline's), the day's utilization,
//! efficiency and reliability, the battery's state of health, a health score, and the
//! predictions made at the end of the day; per fleet and day the distribution of the scores.
//!
//! - **Fold** (`state.rs`, pure, checkpointed with the offsets): samples in `(ts, seq)` order
//!   per vehicle fill its open days ([`atlasmesh_core::analytics::vehicle_day`]: the window
//!   kernel's definitions for a day-long window, discharge segments, precursor and failure
//!   counts). A day closes for every vehicle of the partition once the partition's watermark
//!   (newest event time − `telemetry.out_of_orderness_ms`) is `health.close_delay_ms` past its
//!   end; samples of a closed day are counted as late and left out. At the close: the day's
//!   state of health (segments pooled by inverse variance, relative to the vehicle's nominal
//!   capacity from `vehicle_batteries` or `health.default_nominal_kwh`), the trajectory over
//!   the last `health.soh_history_days` estimates and the date it crosses
//!   `health.soh_threshold_pct`, and the failure risk for the next `health.failure.horizon_days`
//!   from the fault and precursor counts of the look-back (the built-in model, or
//!   `health.failure_model_file`).
//! - **Flush** (`store.rs`): the closed vehicle-days are stored as facts
//!   (`health_vehicle_days`), the predictions and the state-of-health trend upserted (newest
//!   per vehicle and kind, only forward); then every fleet-day they touched is recomputed from
//!   the facts of all its vehicles (a fleet's vehicles are spread over the partitions): the
//!   fleet's median kWh/km of the day, each vehicle's health score with its components
//!   (`health.score` weights), the fleet's distribution and worst vehicles, written with the
//!   fleet-day's next version to ClickHouse (`vehicle_health_daily`, `fleet_health_daily`) and
//!   PostgreSQL (`analytics_health_scores`, `analytics_efficiency_metrics`, source `stream`).
//!   Writing the same day again writes the same numbers under a higher version, so restarts and
//!   replays change nothing.

mod state;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use atlasmesh_core::analytics::battery::SohParams;
use atlasmesh_core::analytics::failure::RiskModel;
use atlasmesh_core::analytics::health::HealthParams;
use atlasmesh_core::analytics::vehicle_day::DayParams;
use atlasmesh_core::clock::FutureBoundClock;
use atlasmesh_core::config::{Config, Topics};
use atlasmesh_core::metric_names as m;
use atlasmesh_core::telemetry::{validate, ValidationLimits};
use atlasmesh_core::TelemetryEvent;
use atlasmesh_schemas::{Codec, SchemaKind};
use atlasmesh_sinks::clickhouse::ClickHouseSink;
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::warn;

pub use state::{fleet_median_kwh_per_km, FoldParams, Folded, HealthState, VehicleDayFacts};

use crate::dlq::Decoded;
use crate::runner::{Background, Cadence, InMessage, Pipeline};
use crate::{Error, Result};

pub const NAME: &str = "health";

/// Nominal battery capacities by vehicle id (`vehicle_batteries`), re-read in the background.
type Nominals = Arc<RwLock<HashMap<String, f64>>>;

#[derive(Default)]
pub struct HealthBatch {
    consumed: usize,
    days: Vec<VehicleDayFacts>,
    /// The processing clock samples are validated against.
    clock: FutureBoundClock,
}

pub struct HealthPipeline {
    codec: Codec,
    topics: Topics,
    limits: ValidationLimits,
    pool: PgPool,
    clickhouse: ClickHouseSink,
    fold: FoldParams,
    score: HealthParams,
    worst_vehicles: usize,
    model: RiskModel,
    model_name: String,
    default_nominal_kwh: Option<f64>,
    nominals: Nominals,
    batteries_refresh: Duration,
    cadence: Cadence,
}

impl HealthPipeline {
    fn nominal(&self, vehicle_id: &str) -> Option<f64> {
        self.nominals
            .read()
            .expect("nominals lock")
            .get(vehicle_id)
            .copied()
            .or(self.default_nominal_kwh)
    }
}

/// The failure-risk model the configuration names, and what to call it in predictions.
fn load_model(cfg: &Config) -> Result<(RiskModel, String)> {
    match &cfg.health.failure_model_file {
        None => Ok((RiskModel::builtin(), "builtin-logistic-v1".into())),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Setup(format!("health.failure_model_file {path}: {e}")))?;
            let model = serde_json::from_str(&text)
                .map_err(|e| Error::Setup(format!("health.failure_model_file {path}: {e}")))?;
            Ok((model, format!("file:{path}")))
        }
    }
}

impl Pipeline for HealthPipeline {
    const NAME: &'static str = NAME;
    type State = HealthState;
    type Batch = HealthBatch;
    const REPLAY: Option<&'static str> = Some(
        "the closed vehicle-days' facts, predictions and health rows (upserts by day and version)",
    );

    async fn build(cfg: &Config) -> Result<Self> {
        let h = &cfg.health;
        let pool = atlasmesh_sinks::postgres::connect(&cfg.postgres.url, 3).await?;
        let nominals: Nominals = Arc::default();
        *nominals.write().expect("nominals lock") = store::nominals(&pool).await?;
        let (model, model_name) = load_model(cfg)?;
        Ok(HealthPipeline {
            codec: Codec::from_config(&cfg.schema_registry)
                .map_err(|e| Error::setup("schema registry", e))?,
            topics: cfg.topics.clone(),
            limits: ValidationLimits {
                max_future_ms: cfg.telemetry.max_future_ms,
                ..ValidationLimits::default()
            },
            pool,
            clickhouse: ClickHouseSink::new(&cfg.clickhouse),
            fold: FoldParams {
                day: DayParams {
                    max_gap_ms: cfg.telemetry.max_gap_ms,
                    soh: SohParams::default(),
                    precursor_prefix: h.failure.precursor_prefix.clone(),
                    failure_prefix: h.failure.failure_prefix.clone(),
                },
                close_lag_ms: cfg.telemetry.out_of_orderness_ms + h.close_delay_ms,
                soh_threshold_pct: h.soh_threshold_pct,
                soh_history_days: h.soh_history_days as usize,
                soh_min_days: h.soh_min_days as usize,
                fault_days: h.failure.lookback_days() as usize,
                failure: h.failure.clone(),
            },
            score: h.score,
            worst_vehicles: h.worst_vehicles,
            model,
            model_name,
            default_nominal_kwh: h.default_nominal_kwh,
            nominals,
            batteries_refresh: Duration::from_millis(h.batteries_refresh_ms),
            cadence: Cadence::new(cfg, h.tick_ms, h.idle_flush_ms),
        })
    }

    fn topic(&self) -> &str {
        &self.topics.telemetry
    }

    fn tick_interval(&self) -> Duration {
        self.cadence.tick
    }

    fn idle_flush(&self) -> Duration {
        self.cadence.idle_flush
    }

    fn background(&self, _cfg: &Config, shutdown: watch::Receiver<bool>) -> Vec<Background> {
        vec![Box::pin(refresh_nominals(
            self.pool.clone(),
            self.nominals.clone(),
            self.batteries_refresh,
            shutdown,
        ))]
    }

    async fn handle(
        &self,
        state: &mut HealthState,
        msg: &InMessage<'_>,
        batch: &mut HealthBatch,
    ) -> Result<()> {
        batch.consumed += 1;
        // The telemetry pipeline dead-letters what cannot be decoded or is invalid; here it is
        // only counted.
        let ev: TelemetryEvent =
            match crate::dlq::decode(&self.codec, msg, SchemaKind::Telemetry).await? {
                Decoded::Ok(ev) => ev,
                Decoded::DeadLetter(reason, _) => {
                    metrics::counter!(m::HEALTH_SAMPLES_SKIPPED, "reason" => reason.as_str())
                        .increment(1);
                    return Ok(());
                }
            };
        let now = batch.clock.now_for(ev.ts_ms, self.limits.max_future_ms);
        if validate(&ev, now, &self.limits).is_err() {
            metrics::counter!(m::HEALTH_SAMPLES_SKIPPED, "reason" => "invalid").increment(1);
            return Ok(());
        }
        let before = batch.days.len();
        let nominal = |v: &str| self.nominal(v);
        match state.fold(&ev, &self.fold, &self.model, &nominal, &mut batch.days) {
            Folded::Accepted => {}
            Folded::Older => {
                metrics::counter!(m::HEALTH_SAMPLES_SKIPPED, "reason" => "older").increment(1)
            }
            Folded::Late => {
                metrics::counter!(m::HEALTH_SAMPLES_SKIPPED, "reason" => "late").increment(1)
            }
        }
        let closed = batch.days.len() - before;
        if closed > 0 {
            metrics::counter!(m::HEALTH_DAYS_CLOSED).increment(closed as u64);
        }
        Ok(())
    }

    fn on_idle(&self, _state: &mut HealthState, _partition: i32, _batch: &mut HealthBatch) {
        // Days close on event time only: an idle partition keeps its newest day open.
    }

    async fn flush(&self, batch: &mut HealthBatch) -> Result<()> {
        if batch.days.is_empty() {
            return Ok(());
        }
        store::write(self, &batch.days).await
    }

    fn batch_len(&self, batch: &HealthBatch) -> usize {
        batch.consumed
    }
}

/// Re-reads the nominal capacities every `every` until shutdown; a store that is down keeps
/// the last ones.
async fn refresh_nominals(
    pool: PgPool,
    nominals: Nominals,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = crate::runner::requested(&mut shutdown) => return,
        }
        match store::nominals(&pool).await {
            Ok(n) => *nominals.write().expect("nominals lock") = n,
            Err(e) => {
                warn!(pipeline = NAME, error = %e, "Reading vehicle_batteries failed; keeping the last capacities.")
            }
        }
    }
}
