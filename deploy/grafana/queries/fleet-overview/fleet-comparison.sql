-- Every fleet over the range, side by side.
-- columns: fleet_id, utilization, availability, distance_km, kwh_per_km, faults, missions, max_vehicles
SELECT
    fleet_id,
    sum(busy_ms) / nullIf(sum(observed_ms), 0) AS utilization,
    sum(available_ms) / nullIf(sum(observed_ms), 0) AS availability,
    sum(distance_m) / 1000 AS distance_km,
    sum(energy_wh) / nullIf(sum(distance_m), 0) AS kwh_per_km,
    sum(fault_count) AS faults,
    sum(mission_count) AS missions,
    max(vehicles) AS max_vehicles
FROM fleet_window_metrics
WHERE $__timeFilter(window_start)
GROUP BY fleet_id
ORDER BY fleet_id
