-- The fleet's health score distribution per UTC day: median, 10th percentile and lowest
-- vehicle score (the highest version of each fleet-day).
-- columns: time, median_score, p10_score, min_score
SELECT day_start AS time, median_score, p10_score, min_score
FROM fleet_health_daily FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(day_start)
ORDER BY time
