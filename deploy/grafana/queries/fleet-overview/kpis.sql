-- Fleet KPIs over the range: shares of observed time, distance, energy per km, moving speed, faults, missions.
-- columns: utilization, availability, distance_km, kwh_per_km, avg_moving_speed_kph, faults, missions
SELECT
    sum(busy_ms) / nullIf(sum(observed_ms), 0) AS utilization,
    sum(available_ms) / nullIf(sum(observed_ms), 0) AS availability,
    sum(distance_m) / 1000 AS distance_km,
    sum(energy_wh) / nullIf(sum(distance_m), 0) AS kwh_per_km,
    sum(moving_speed_ckph_sum) / 100 / nullIf(sum(moving_samples), 0) AS avg_moving_speed_kph,
    sum(fault_count) AS faults,
    sum(mission_count) AS missions
FROM fleet_window_metrics
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
