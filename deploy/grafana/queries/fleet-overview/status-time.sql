-- Share of observed vehicle time per status (stacked to 1).
-- columns: time, busy, idle, charging, maintenance, fault, offline
SELECT
    toDateTime(intDiv(toUInt32(window_start), $__interval_s) * $__interval_s) AS time,
    sum(busy_ms) / nullIf(sum(observed_ms), 0) AS busy,
    sum(idle_ms) / nullIf(sum(observed_ms), 0) AS idle,
    sum(charging_ms) / nullIf(sum(observed_ms), 0) AS charging,
    sum(maintenance_ms) / nullIf(sum(observed_ms), 0) AS maintenance,
    sum(fault_ms) / nullIf(sum(observed_ms), 0) AS fault,
    sum(offline_ms) / nullIf(sum(observed_ms), 0) AS offline
FROM fleet_window_metrics
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
