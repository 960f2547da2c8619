-- Active vehicles (busy in the window) and vehicles reporting, in the fleet's newest closed window.
-- columns: active_vehicles, vehicles
SELECT active_vehicles, vehicles
FROM fleet_window_metrics
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
ORDER BY window_start_ms DESC
LIMIT 1
