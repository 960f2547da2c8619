-- Slope (per hour) and change % of the selected metric per horizon, as computed over time.
-- columns: time, horizon, slope, change_pct, r2
SELECT computed_at AS time, horizon, slope, change_pct, r2
FROM trend_history
WHERE fleet_id = '${fleet_id}' AND metric = '${metric}' AND $__timeFilter(computed_at)
ORDER BY time, horizon
