-- Components of the fleet's newest hourly score.
-- columns: efficiency, utilization, reliability, safety, cost
SELECT efficiency, utilization, reliability, safety, cost
FROM performance_score_history FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '' AND period = 'hour' AND $__timeFilter(period_start)
ORDER BY period_start_ms DESC
LIMIT 1
