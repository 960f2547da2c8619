-- Alert history: every state transition of every (rule, subject), including the unpaged ones
-- (pending, cancelled). dedup_key is the stable PagerDuty/Alertmanager key of (rule, subject);
-- event_action is what the pager heard ('none' for pending/cancelled). starts_at_ms is when the
-- breach began (pending/cancelled) or when it fired; ends_at_ms is set (> 0) on 'resolved' only.
-- Labels are two parallel arrays (name i has value i). A re-played transition is a duplicate
-- row of the same sorting key that ReplacingMergeTree collapses.
-- Retention: ALTER TABLE alert_history DROP PARTITION <yyyymm>.
CREATE TABLE IF NOT EXISTS alert_history
(
    dedup_key String,
    rule_id String,
    scope Enum8('fleet' = 1, 'vehicle' = 2, 'federation' = 3),
    subject String,
    fleet_id String,
    metric String,
    severity Enum8('info' = 1, 'warning' = 2, 'error' = 3, 'critical' = 4),
    status Enum8('pending' = 1, 'cancelled' = 2, 'firing' = 3, 'resent' = 4, 'resolved' = 5),
    event_action Enum8('none' = 0, 'trigger' = 1, 'resolve' = 2),
    value Float64,
    threshold Float64,
    at DateTime('UTC'),
    at_ms Int64,
    starts_at_ms Int64,
    ends_at_ms Int64,
    summary String,
    label_names Array(String),
    label_values Array(String)
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(at)
ORDER BY (fleet_id, rule_id, subject, at_ms, status);
