-- Per rule: triggers, re-sends, resolves, cancelled pendings and mean time from firing to resolved.
-- columns: rule_id, severity, triggered, resent, resolved, cancelled, mean_time_to_resolve_s, last_transition
SELECT
    rule_id,
    any(severity) AS severity,
    countIf(status = 'firing') AS triggered,
    countIf(status = 'resent') AS resent,
    countIf(status = 'resolved') AS resolved,
    countIf(status = 'cancelled') AS cancelled,
    sumIf(ends_at_ms - starts_at_ms, status = 'resolved') / 1000 / nullIf(countIf(status = 'resolved'), 0) AS mean_time_to_resolve_s,
    max(at) AS last_transition
FROM alert_history
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(at)
GROUP BY rule_id
ORDER BY triggered DESC, rule_id
