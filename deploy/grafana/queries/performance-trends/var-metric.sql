-- Variable metric: metrics with trends of the selected fleet in the range.
-- columns: metric
SELECT DISTINCT metric
FROM trend_history
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(computed_at)
ORDER BY metric
