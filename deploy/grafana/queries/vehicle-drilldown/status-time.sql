-- Minutes per status per interval (newest version of each window).
-- columns: time, busy, idle, charging, maintenance, fault, offline
SELECT
    toDateTime(intDiv(toUInt32(window_start), $__interval_s) * $__interval_s) AS time,
    sum(busy_ms) / 60000 AS busy,
    sum(idle_ms) / 60000 AS idle,
    sum(charging_ms) / 60000 AS charging,
    sum(maintenance_ms) / 60000 AS maintenance,
    sum(fault_ms) / 60000 AS fault,
    sum(offline_ms) / 60000 AS offline
FROM vehicle_window_metrics FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
