-- Vehicles of the fleet with a failure alarm per UTC day, and the vehicles scored that day.
-- columns: time, failure_alarms, vehicles_scored
SELECT day_start AS time, alarms AS failure_alarms, scored AS vehicles_scored
FROM fleet_health_daily FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(day_start)
ORDER BY time
