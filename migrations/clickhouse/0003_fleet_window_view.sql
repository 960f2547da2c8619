-- Fleet windows: the sum of the newest partial of every source partition.
CREATE VIEW IF NOT EXISTS fleet_window_metrics AS
SELECT
    fleet_id,
    window_start,
    window_start_ms,
    any(window_end_ms) AS window_end_ms,
    count() AS partials,
    sum(samples) AS samples,
    sum(observed_ms) AS observed_ms,
    sum(busy_ms) AS busy_ms,
    sum(available_ms) AS available_ms,
    sum(idle_ms) AS idle_ms,
    sum(charging_ms) AS charging_ms,
    sum(maintenance_ms) AS maintenance_ms,
    sum(fault_ms) AS fault_ms,
    sum(offline_ms) AS offline_ms,
    sum(distance_m) AS distance_m,
    sum(energy_wh) AS energy_wh,
    sum(moving_samples) AS moving_samples,
    sum(moving_speed_ckph_sum) AS moving_speed_ckph_sum,
    sum(fault_count) AS fault_count,
    sum(mission_count) AS mission_count,
    sum(active_vehicles) AS active_vehicles,
    sum(vehicles) AS vehicles
FROM fleet_window_partials FINAL
GROUP BY fleet_id, window_start, window_start_ms;
