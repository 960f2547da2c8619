-- Active and reporting vehicles per interval (mean over the interval's 1-minute windows).
-- columns: time, active_vehicles, vehicles
SELECT
    toDateTime(intDiv(toUInt32(window_start), $__interval_s) * $__interval_s) AS time,
    avg(active_vehicles) AS active_vehicles,
    max(vehicles) AS vehicles
FROM fleet_window_metrics
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
