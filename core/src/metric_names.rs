//! Prometheus metric names. Labels stay bounded: pipeline, topic, partition, sink, reason —
//! never vehicle or fleet ids.

pub const EVENTS_CONSUMED: &str = "atlasmesh_events_consumed_total";
pub const EVENTS_ACCEPTED: &str = "atlasmesh_events_accepted_total";
pub const EVENTS_DUPLICATE: &str = "atlasmesh_events_duplicate_total";
pub const EVENTS_LATE_ACCEPTED: &str = "atlasmesh_events_late_accepted_total";
pub const DLQ_MESSAGES: &str = "atlasmesh_dlq_messages_total";
pub const WINDOWS_EMITTED: &str = "atlasmesh_windows_emitted_total";
pub const CONSUMER_LAG: &str = "atlasmesh_consumer_lag_messages";
pub const CHECKPOINTS: &str = "atlasmesh_checkpoints_total";
pub const CHECKPOINT_SECONDS: &str = "atlasmesh_checkpoint_duration_seconds";
/// Bytes of checkpoint state written, by `kind` (`full` or `delta`).
pub const CHECKPOINT_BYTES: &str = "atlasmesh_checkpoint_bytes_total";
pub const SINK_WRITE_SECONDS: &str = "atlasmesh_sink_write_duration_seconds";
pub const SINK_ERRORS: &str = "atlasmesh_sink_errors_total";
pub const SINK_ROWS: &str = "atlasmesh_sink_rows_total";
pub const PARTITIONS_PAUSED: &str = "atlasmesh_partitions_paused";
pub const HTTP_REQUESTS: &str = "atlasmesh_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "atlasmesh_http_request_duration_seconds";
pub const DEPENDENCY_UP: &str = "atlasmesh_dependency_up";
pub const COMMANDS_APPLIED: &str = "atlasmesh_commands_applied_total";
pub const COMMANDS_REPLAYED: &str = "atlasmesh_commands_replayed_total";
pub const COMMANDS_RETRIED: &str = "atlasmesh_commands_retried_total";
pub const COMMANDS_SUBMITTED: &str = "atlasmesh_commands_submitted_total";
/// Conflicts the resources pipeline raised, by kind.
pub const RESOURCE_CONFLICTS: &str = "atlasmesh_resource_conflicts_total";
/// Alert transitions written (all kinds).
pub const ALERT_TRANSITIONS: &str = "atlasmesh_alert_transitions_total";
/// Partials of settled fleet windows and vehicle window revisions, not evaluated.
pub const ALERT_REVISIONS_IGNORED: &str = "atlasmesh_alert_revisions_ignored_total";
/// Performance score rows written (window and day, per batch).
pub const PERFORMANCE_SCORES: &str = "atlasmesh_performance_scores_total";
/// Trend rows written (per batch).
pub const PERFORMANCE_TRENDS: &str = "atlasmesh_performance_trends_total";
/// Inter-fleet messages: broker acknowledgement time minus send time (the relay's delay).
pub const COMMUNICATION_LATENCY_SECONDS: &str = "atlasmesh_communication_latency_seconds";
/// Inter-fleet messages published on the coordination topic.
pub const COMMUNICATIONS_DELIVERED: &str = "atlasmesh_communications_delivered_total";
/// Federations (computed with the coordination metrics).
pub const FEDERATIONS: &str = "atlasmesh_federations";
/// Capacity shared within federations that the target fleets hold ÷ capacity shared, over all
/// federations (computed with the coordination metrics).
pub const SHARING_EFFICIENCY: &str = "atlasmesh_federation_sharing_efficiency";
/// Of the inter-fleet messages sent in the last hour, the share the recipient acknowledged.
pub const COORDINATION_ACK_RATIO: &str = "atlasmesh_coordination_acknowledgement_ratio";
/// Of the inter-fleet messages sent in the last hour (older than a minute), the share on the
/// topic: the coordination success rate.
pub const COORDINATION_SUCCESS_RATIO: &str = "atlasmesh_coordination_success_ratio";
/// Time to build an analytics report (API).
pub const REPORT_SECONDS: &str = "atlasmesh_report_generation_seconds";
/// Alert response: from the event time at which a rule's condition held (the window end) to
/// the alert message being produced.
pub const ALERT_RESPONSE_SECONDS: &str = "atlasmesh_alert_response_seconds";
/// Optimization runs executed by the engine, by `outcome` (`completed`, `failed`): the
/// optimization success rate.
pub const OPTIMIZATION_RUNS: &str = "atlasmesh_optimization_runs_total";
/// Of the engine's recommendations issued in the last day (all fleets), the share accepted
/// (`stage="accepted"`), and of the vehicles in the accepted plans the share that moved
/// (`stage="moved"`): the recommendation adoption rate.
pub const OPTIMIZATION_ADOPTION_RATIO: &str = "atlasmesh_optimization_adoption_ratio";
/// Time to execute an optimization run (load, solve, store).
pub const OPTIMIZATION_SECONDS: &str = "atlasmesh_optimization_run_seconds";
/// Telemetry samples the health pipeline left out, by reason (undecodable, invalid, older,
/// late: their day was closed).
pub const HEALTH_SAMPLES_SKIPPED: &str = "atlasmesh_health_samples_skipped_total";
/// Vehicle-days the health pipeline closed.
pub const HEALTH_DAYS_CLOSED: &str = "atlasmesh_health_days_closed_total";
/// Health rows written, by table.
pub const HEALTH_ROWS: &str = "atlasmesh_health_rows_total";
/// Capacity metrics computed by the engine (`POST /api/v1/fleet-analytics/capacity-metrics`),
/// by `outcome` (`completed`, `failed`).
pub const CAPACITY_METRICS: &str = "atlasmesh_capacity_metrics_total";
/// Time to compute a capacity metric (load, forecast, store).
pub const CAPACITY_SECONDS: &str = "atlasmesh_capacity_metric_seconds";
