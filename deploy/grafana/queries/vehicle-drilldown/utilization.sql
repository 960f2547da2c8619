-- Utilization and availability of the vehicle per interval (newest version of each window).
-- columns: time, utilization, availability
SELECT
    toDateTime(intDiv(toUInt32(window_start), $__interval_s) * $__interval_s) AS time,
    sum(busy_ms) / nullIf(sum(observed_ms), 0) AS utilization,
    sum(available_ms) / nullIf(sum(observed_ms), 0) AS availability
FROM vehicle_window_metrics FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
