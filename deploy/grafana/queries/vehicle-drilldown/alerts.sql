-- Alert transitions of the vehicle, newest first.
-- columns: time, rule_id, status, severity, value, threshold, summary
SELECT at AS time, rule_id, status, severity, value, threshold, summary
FROM alert_history
WHERE fleet_id = '${fleet_id}' AND scope = 'vehicle' AND subject = '${vehicle_id}' AND $__timeFilter(at)
ORDER BY at_ms DESC
LIMIT 200
