-- Faults and missions started per interval.
-- columns: time, faults, missions
SELECT
    toDateTime(intDiv(toUInt32(window_start), $__interval_s) * $__interval_s) AS time,
    sum(fault_count) AS faults,
    sum(mission_count) AS missions
FROM fleet_window_metrics
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
