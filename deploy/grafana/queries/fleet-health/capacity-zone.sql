-- Zone ${zone_id}: per hour, the vehicles available (when the newest metric covering the hour
-- was computed) against the forecast demand (mean, and the quantile planned for) and the
-- shortfall (planned demand minus available, at least 0).
-- columns: time, vehicles_available, mean_demand, planned_demand, vehicle_shortfall
SELECT
    hour_start AS time,
    argMax(available, created_at_ms) AS vehicles_available,
    argMax(demand_mean, created_at_ms) AS mean_demand,
    argMax(demand_planned, created_at_ms) AS planned_demand,
    argMax(shortfall, created_at_ms) AS vehicle_shortfall
FROM capacity_forecast
WHERE fleet_id = '${fleet_id}' AND zone_id = '${zone_id}' AND $__timeFilter(hour_start)
GROUP BY hour_start
ORDER BY time
