-- Daily fleet KPIs from the closed windows: utilization, availability, energy per km.
-- columns: time, utilization, availability, kwh_per_km
SELECT
    toStartOfDay(window_start) AS time,
    sum(busy_ms) / nullIf(sum(observed_ms), 0) AS utilization,
    sum(available_ms) / nullIf(sum(observed_ms), 0) AS availability,
    sum(energy_wh) / nullIf(sum(distance_m), 0) AS kwh_per_km
FROM fleet_window_metrics
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
