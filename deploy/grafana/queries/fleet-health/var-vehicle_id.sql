-- Variable vehicle_id: the fleet's vehicles with closed health days in the range.
-- columns: vehicle_id
SELECT DISTINCT vehicle_id
FROM vehicle_health_daily
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(day_start)
ORDER BY vehicle_id
