-- Shortfall per zone and hour (the newest metric covering each zone-hour): vehicles missing
-- to meet the planned demand.
-- columns: time, zone_id, vehicle_shortfall
SELECT
    hour_start AS time,
    zone_id,
    argMax(shortfall, created_at_ms) AS vehicle_shortfall
FROM capacity_forecast
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(hour_start)
GROUP BY hour_start, zone_id
ORDER BY time, zone_id
