-- Forecast of the selected metric with its prediction interval, per horizon, as computed over time.
-- columns: time, horizon, forecast, lower, upper
SELECT computed_at AS time, horizon, forecast, lower, upper
FROM trend_history
WHERE fleet_id = '${fleet_id}' AND metric = '${metric}' AND $__timeFilter(computed_at)
ORDER BY time, horizon
