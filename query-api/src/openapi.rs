//! The OpenAPI document of every endpoint, served at `GET /api/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use crate::auth::openapi::SecuritySchemes;

#[derive(OpenApi)]
#[openapi(
    info(title = "AtlasMesh query API", description = "Read API over the fleet stream workers' stores."),
    modifiers(&SecuritySchemes),
    paths(
        crate::health::health,
        crate::metrics::render,
        crate::kpis::fleet_kpis,
        crate::kpis::vehicle_latest,
        crate::window_metrics::list,
        crate::window_metrics::list_for_fleet,
        crate::reports::fleet_report,
        crate::analytics::vehicle_health,
        crate::analytics::fleet_analytics_report,
        crate::analytics::report_content,
        crate::auth::whoami,
        crate::commands::get_command,
        document,
    ),
    components(schemas(
        crate::commands::CommandView,
        crate::error::ErrorBody,
        crate::error::ErrorDetail,
        crate::error::ErrorCode,
        crate::health::Health,
        crate::health::Check,
        crate::health::CheckStatus,
        crate::health::HealthStatus,
        crate::kpis::FleetKpis,
        crate::kpis::LiveKpis,
        crate::kpis::WindowKpis,
        crate::kpis::VehicleLatest,
        crate::window_metrics::Scope,
        crate::window_metrics::WindowMetric,
        crate::window_metrics::WindowMetricsPage,
        crate::views::CounterValues,
        crate::views::Derived,
        atlasmesh_core::analytics::report::FleetReport,
        atlasmesh_core::analytics::report::Summary,
        atlasmesh_core::analytics::report::ReportScore,
        atlasmesh_core::analytics::report::Weights,
        atlasmesh_core::analytics::report::DailyScore,
        atlasmesh_core::analytics::report::BenchmarkComparison,
        atlasmesh_core::analytics::report::RankInput,
        atlasmesh_core::analytics::report::ReportTrend,
        atlasmesh_core::analytics::report::AlertInput,
        atlasmesh_core::analytics::report::VehicleScore,
        crate::analytics::VehicleHealth,
        crate::analytics::HealthDay,
        atlasmesh_core::analytics::health_report::FleetHealthReport,
        atlasmesh_core::analytics::health_report::HealthReportSummary,
        atlasmesh_core::analytics::health_report::DailyHealth,
        atlasmesh_core::analytics::health_report::DailyBasis,
        atlasmesh_core::analytics::health_report::WorstVehicle,
        atlasmesh_core::analytics::health_report::PredictedFailure,
        atlasmesh_core::analytics::health_report::BatteryReplacement,
        atlasmesh_core::analytics::health_report::CapacityShortfall,
        atlasmesh_core::analytics::health_report::ZoneShortfall,
        atlasmesh_core::domain::analytics::HealthDistribution,
        atlasmesh_core::domain::analytics::ScoredVehicle,
        atlasmesh_core::domain::analytics::RowSource,
    )),
    tags(
        (name = "operations", description = "Health and Prometheus metrics"),
        (name = "fleets", description = "Live fleet and vehicle state (Redis)"),
        (name = "fleet-performance", description = "Closed window metrics (ClickHouse)"),
        (name = "auth", description = "The authenticated caller (JWT bearer or API key)"),
        (name = "commands", description = "The state of write requests (commands on fleet.commands.v1)"),
        (name = "fleet-analytics", description = "Vehicle and fleet health, efficiency, predictions, capacity, trends and analytics reports"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::resources::openapi::document());
    Json(doc)
}
