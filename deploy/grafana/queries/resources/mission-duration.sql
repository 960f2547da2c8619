-- Mean actual and planned mission duration per window, in minutes.
-- columns: time, duration_min, planned_min
SELECT
    window_start AS time,
    duration_ms_sum / 60000 / nullIf(missions_completed + missions_failed, 0) AS duration_min,
    planned_duration_ms_sum / 60000 / nullIf(missions_completed + missions_failed, 0) AS planned_min
FROM mission_window_metrics FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
ORDER BY time
