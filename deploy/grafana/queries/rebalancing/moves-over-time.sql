-- Vehicles the plans move per interval of departure, per destination zone.
-- columns: time, to_zone, vehicles
SELECT
    toDateTime(intDiv(toUInt32(depart_at), $__interval_s) * $__interval_s) AS time,
    to_zone,
    sum(vehicles) AS vehicles
FROM optimization_plan_moves
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(depart_at)
GROUP BY time, to_zone
ORDER BY time, to_zone
