-- Alerts of the fleet whose newest transition is firing or re-sent (over the whole history).
-- columns: firing, critical
SELECT count() AS firing, countIf(severity = 'critical') AS critical
FROM
(
    SELECT dedup_key, argMax(status, at_ms) AS last_status, argMax(severity, at_ms) AS severity
    FROM alert_history
    WHERE fleet_id = '${fleet_id}'
    GROUP BY dedup_key
)
WHERE last_status IN ('firing', 'resent')
