-- Variable fleet_id: fleets with closed windows in the range.
-- columns: fleet_id
SELECT DISTINCT fleet_id
FROM fleet_window_partials
WHERE $__timeFilter(window_start)
ORDER BY fleet_id
