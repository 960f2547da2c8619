-- Utilization, availability and idle share of the fleet per interval.
-- columns: time, utilization, availability, idle_share
SELECT
    toDateTime(intDiv(toUInt32(window_start), $__interval_s) * $__interval_s) AS time,
    sum(busy_ms) / nullIf(sum(observed_ms), 0) AS utilization,
    sum(available_ms) / nullIf(sum(observed_ms), 0) AS availability,
    sum(idle_ms) / nullIf(sum(observed_ms), 0) AS idle_share
FROM fleet_window_metrics
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
