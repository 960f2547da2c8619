-- Alerts of the fleet firing now: their newest transition, and when they fired.
-- columns: since, rule_id, scope, subject, severity, metric, value, threshold, last_sent, summary
SELECT
    toDateTime(intDiv(starts_at_ms, 1000)) AS since,
    rule_id, scope, subject, severity, metric, value, threshold,
    toDateTime(intDiv(last_at_ms, 1000)) AS last_sent,
    summary
FROM
(
    SELECT
        dedup_key,
        argMax(rule_id, at_ms) AS rule_id,
        argMax(scope, at_ms) AS scope,
        argMax(subject, at_ms) AS subject,
        argMax(severity, at_ms) AS severity,
        argMax(metric, at_ms) AS metric,
        argMax(status, at_ms) AS last_status,
        argMax(value, at_ms) AS value,
        argMax(threshold, at_ms) AS threshold,
        argMax(starts_at_ms, at_ms) AS starts_at_ms,
        max(at_ms) AS last_at_ms,
        argMax(summary, at_ms) AS summary
    FROM alert_history
    WHERE fleet_id = '${fleet_id}'
    GROUP BY dedup_key
)
WHERE last_status IN ('firing', 'resent')
ORDER BY severity DESC, since
