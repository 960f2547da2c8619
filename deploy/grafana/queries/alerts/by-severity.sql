-- Alerts triggered in the range per severity.
-- columns: severity, triggered
SELECT toString(severity) AS severity, count() AS triggered
FROM alert_history
WHERE fleet_id = '${fleet_id}' AND status = 'firing' AND $__timeFilter(at)
GROUP BY severity
ORDER BY triggered DESC, severity
