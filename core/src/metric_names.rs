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
