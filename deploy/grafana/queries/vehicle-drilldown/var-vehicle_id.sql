-- Variable vehicle_id: vehicles of the selected fleet with closed windows in the range.
-- columns: vehicle_id
SELECT DISTINCT vehicle_id
FROM vehicle_window_metrics
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
ORDER BY vehicle_id
