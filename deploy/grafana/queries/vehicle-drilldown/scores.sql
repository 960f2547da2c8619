-- Hourly performance score of the vehicle with its components (newest version of each hour).
-- columns: time, total, efficiency, utilization, reliability, safety, cost
SELECT period_start AS time, total, efficiency, utilization, reliability, safety, cost
FROM performance_score_history FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND period = 'hour' AND $__timeFilter(period_start)
ORDER BY time
