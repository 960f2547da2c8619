-- Missions started, completed and failed per window (newest version of each window).
-- columns: time, started, completed, failed
SELECT window_start AS time, missions_started AS started, missions_completed AS completed, missions_failed AS failed
FROM mission_window_metrics FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
ORDER BY time
