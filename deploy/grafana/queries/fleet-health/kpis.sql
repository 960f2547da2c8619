-- The fleet's newest closed day in the range (the highest version of each fleet-day): median,
-- 10th percentile and lowest vehicle health score, vehicles scored, failure alarms.
-- columns: median_score_now, p10_score_now, min_score_now, vehicles_scored, failure_alarms
SELECT
    median_score AS median_score_now,
    p10_score AS p10_score_now,
    min_score AS min_score_now,
    scored AS vehicles_scored,
    alarms AS failure_alarms
FROM fleet_health_daily FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(day_start)
ORDER BY day_ms DESC
LIMIT 1
