-- Every zone-hour of the range (the newest metric covering it): vehicles available, forecast
-- demand (mean and planned) and shortfall, largest shortfall first.
-- columns: hour_start, zone_id, vehicles_available, mean_demand, planned_demand, vehicle_shortfall, newest_metric
SELECT
    hour_start,
    zone_id,
    argMax(available, created_at_ms) AS vehicles_available,
    argMax(demand_mean, created_at_ms) AS mean_demand,
    argMax(demand_planned, created_at_ms) AS planned_demand,
    argMax(shortfall, created_at_ms) AS vehicle_shortfall,
    argMax(metric_id, created_at_ms) AS newest_metric
FROM capacity_forecast
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(hour_start)
GROUP BY hour_start, zone_id
ORDER BY vehicle_shortfall DESC, hour_start, zone_id
LIMIT 200
