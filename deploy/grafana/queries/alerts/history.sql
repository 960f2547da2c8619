-- The fleet's alert transitions, newest first, with what the pager was told and the labels.
-- columns: time, status, event_action, severity, rule_id, scope, subject, value, threshold, summary, labels, dedup_key
SELECT
    at AS time, status, event_action, severity, rule_id, scope, subject, value, threshold, summary,
    arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), label_names, label_values), ', ') AS labels,
    dedup_key
FROM alert_history
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(at)
ORDER BY at_ms DESC, status DESC
LIMIT 500
