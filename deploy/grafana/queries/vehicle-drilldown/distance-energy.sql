-- Distance, energy and energy per km of the vehicle per interval.
-- columns: time, distance_km, energy_kwh, kwh_per_km, avg_moving_speed_kph
SELECT
    toDateTime(intDiv(toUInt32(window_start), $__interval_s) * $__interval_s) AS time,
    sum(distance_m) / 1000 AS distance_km,
    sum(energy_wh) / 1000 AS energy_kwh,
    sum(energy_wh) / nullIf(sum(distance_m), 0) AS kwh_per_km,
    sum(moving_speed_ckph_sum) / 100 / nullIf(sum(moving_samples), 0) AS avg_moving_speed_kph
FROM vehicle_window_metrics FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
