-- Predicted probability of a failure within the model's horizon, per vehicle of the fleet,
-- as predicted at the end of each UTC day.
-- columns: time, vehicle_id, failure_risk
SELECT day_start AS time, vehicle_id, failure_risk
FROM vehicle_health_daily FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(day_start) AND isNotNull(failure_risk)
ORDER BY time, vehicle_id
