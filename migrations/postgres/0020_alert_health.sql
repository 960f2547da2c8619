-- Vehicle alert rules on the daily vehicle health metrics (vehicle_health_score, failure_risk,
-- days_to_soh_threshold): the state of pipelines/src/alerts/health.rs, which judges the health
-- pipeline's streamed rows (analytics_health_scores, analytics_predictions of 0018) after
-- every rules refresh. Both tables are written in the transaction that records the
-- transitions (so each transition is recorded exactly once). Every statement is idempotent.

-- The state machine of one health rule for one vehicle.
CREATE TABLE IF NOT EXISTS alert_health_state (
    rule_id    text        NOT NULL,
    -- The vehicle id (the alert's subject).
    subject    text        NOT NULL,
    -- atlasmesh_core::analytics::alert::AlertState as JSON.
    state      jsonb       NOT NULL,
    -- Seq of the last transition of (rule_id, subject).
    seq        bigint      NOT NULL,
    -- Event time (epoch ms) of the last judged daily value (the end of its day): values at or
    -- before it are never judged again (re-written days, late days).
    clock_ms   bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, subject)
);

-- Per health rule: the metric it was evaluated for and the start of the last evaluation
-- (database clock). Health-score rows created after scanned_to, less a grace for writers'
-- transactions that committed late, are read on the next evaluation; a rule without a row
-- (or whose metric changed) starts from each vehicle's newest day.
CREATE TABLE IF NOT EXISTS alert_health_marks (
    rule_id    text        PRIMARY KEY,
    metric     text        NOT NULL,
    scanned_to timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
