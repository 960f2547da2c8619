-- Distance and energy per interval, and energy per km.
-- columns: time, distance_km, energy_kwh, kwh_per_km
SELECT
    toDateTime(intDiv(toUInt32(window_start), $__interval_s) * $__interval_s) AS time,
    sum(distance_m) / 1000 AS distance_km,
    sum(energy_wh) / 1000 AS energy_kwh,
    sum(energy_wh) / nullIf(sum(distance_m), 0) AS kwh_per_km
FROM fleet_window_metrics
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
