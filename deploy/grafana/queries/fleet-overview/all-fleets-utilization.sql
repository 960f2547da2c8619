-- Utilization (busy / observed) of every fleet per closed window.
-- columns: time, fleet_id, utilization
SELECT window_start AS time, fleet_id, busy_ms / observed_ms AS utilization
FROM fleet_window_metrics
WHERE $__timeFilter(window_start) AND observed_ms > 0
ORDER BY time
