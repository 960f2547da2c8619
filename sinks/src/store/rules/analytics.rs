//! fleet-analytics: the rates of efficiency metrics and the derived date and alarm of
//! predictions. Status, hours and results of capacity metrics are the engine's (clients cannot
//! update them); the other entities are stored as reported.

use atlasmesh_core::domain::analytics::{
    AnalyticsReport, AnalyticsTrend, CapacityMetric, EfficiencyMetric, EfficiencyMetricCreate,
    HealthScore, Prediction, PredictionCreate,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

use super::StoreRules;
use crate::store::sql::Record;
use crate::store::{CommandCtx, StoreError, StoreResult};

impl StoreRules for HealthScore {}

impl StoreRules for CapacityMetric {}

impl StoreRules for AnalyticsTrend {}

impl StoreRules for AnalyticsReport {}

/// The create body of `rec` (already validated by the store).
fn create_of<T: DeserializeOwned>(rec: &Record) -> StoreResult<T> {
    serde_json::from_value(Value::Object(rec.clone()))
        .map_err(|e| StoreError::Rejected(format!("invalid payload: {e}")))
}

/// Adds the fields of `derived` (a struct serializing to an object) to `rec`.
fn add<T: Serialize>(rec: &mut Record, derived: &T) {
    if let Ok(Value::Object(m)) = serde_json::to_value(derived) {
        rec.extend(m);
    }
}

impl StoreRules for EfficiencyMetric {
    async fn before_create(
        _conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let c: EfficiencyMetricCreate = create_of(rec)?;
        add(rec, &c.rates());
        Ok(())
    }
}

impl StoreRules for Prediction {
    async fn before_create(
        _conn: &mut PgConnection,
        _cmd: &CommandCtx<'_>,
        rec: &mut Record,
    ) -> StoreResult {
        let c: PredictionCreate = create_of(rec)?;
        add(rec, &c.derived());
        Ok(())
    }
}
