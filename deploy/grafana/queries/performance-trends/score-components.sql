-- Hourly fleet score and its components (0..100).
-- columns: time, total, efficiency, utilization, reliability, safety, cost
SELECT period_start AS time, total, efficiency, utilization, reliability, safety, cost
FROM performance_score_history FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '' AND period = 'hour' AND $__timeFilter(period_start)
ORDER BY time
