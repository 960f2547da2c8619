//! atlasmesh-query-api: the read-mostly HTTP API of AtlasMesh (axum).
//!
//! - `GET /health` — one probe per dependency (Kafka, ClickHouse, PostgreSQL, Redis, schema
//!   registry); 200 when all are up, 503 `degraded` otherwise.
//! - `GET /metrics` — Prometheus text of the process (request counters, dependency gauges,
//!   consumer lag from [`spawn_lag_monitor`]).
//! - `GET /api/v1/fleets/{fleet_id}/kpis`, `GET /api/v1/fleets/{fleet_id}/vehicles/{vehicle_id}/latest`
//!   — live values from Redis.
//! - `GET /api/v1/fleet-performance/metrics[/{fleet_id}]` — window metrics from ClickHouse.
//! - `GET /api/v1/fleets/{fleet_id}/report` — a fleet performance report (JSON or CSV).
//! - `GET /api/v1/fleet-analytics/vehicles/{vehicle_id}/health`, `GET /api/v1/fleets/{fleet_id}/analytics-report`,
//!   `GET /api/v1/fleet-analytics/reports/{id}/content` — fleet analytics beside its entities ([`analytics`]).
//! - The generic resource routes of every domain entity ([`resources`]).
//! - `GET /api/v1/whoami` — the authenticated caller (JWT bearer or API key, see [`auth`]).
//! - `GET /api/v1/openapi.json` — the OpenAPI document of all of the above.
//!
//! The binary (the CLI crate) loads the config, installs the Prometheus recorder and calls
//! [`AppState::connect`], [`spawn_lag_monitor`] and [`serve`].
//!
//! Hostile or careless clients are bounded before any handler runs: connection count and
//! header read timeout ([`server`]), head size and per-address rates ([`limits`]), body type,
//! size and read timeout ([`body`]); every error answer has one JSON shape ([`error`]).

#[macro_use]
mod macros;

pub mod analytics;
pub mod auth;
pub mod body;
pub mod commands;
pub mod error;
pub mod health;
pub mod kpis;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod reports;
pub mod resources;
pub mod server;
pub mod state;
pub mod views;
pub mod window_metrics;

use axum::routing::get;
use axum::Router;

pub use error::{ApiError, Error, Result};
pub use metrics::spawn_lag_monitor;
pub use server::{serve, serve_listener};
pub use state::AppState;

/// The router with every endpoint and the middleware, outermost first: request metrics, JSON
/// error answers, head size limit, per-address limits, NUL refusal, read-your-writes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::render))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/whoami", get(auth::whoami))
        .route("/api/v1/fleets/{fleet_id}/kpis", get(kpis::fleet_kpis))
        .route(
            "/api/v1/fleets/{fleet_id}/report",
            get(reports::fleet_report),
        )
        .route(
            "/api/v1/fleets/{fleet_id}/analytics-report",
            get(analytics::fleet_analytics_report),
        )
        .route(
            "/api/v1/fleet-analytics/vehicles/{vehicle_id}/health",
            get(analytics::vehicle_health),
        )
        .route(
            "/api/v1/fleet-analytics/reports/{id}/content",
            get(analytics::report_content),
        )
        .route(
            "/api/v1/fleets/{fleet_id}/vehicles/{vehicle_id}/latest",
            get(kpis::vehicle_latest),
        )
        .route(
            "/api/v1/fleet-performance/metrics",
            get(window_metrics::list),
        )
        .route(
            "/api/v1/fleet-performance/metrics/{fleet_id}",
            get(window_metrics::list_for_fleet),
        )
        .route("/api/v1/commands/{command_id}", get(commands::get_command))
        .merge(resources::router())
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::http(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            commands::read_your_writes,
        ))
        .layer(axum::middleware::from_fn(params::refuse_nul))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::limit_address,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::limit_head,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}
