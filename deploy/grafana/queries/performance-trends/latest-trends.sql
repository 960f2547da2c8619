-- The newest trend of every metric and horizon of the fleet.
-- columns: metric, horizon, direction, slope, change_pct, forecast, lower, upper, r2, n, last_computed_at
SELECT
    metric,
    horizon,
    argMax(direction, computed_at_ms) AS direction,
    argMax(slope, computed_at_ms) AS slope,
    argMax(change_pct, computed_at_ms) AS change_pct,
    argMax(forecast, computed_at_ms) AS forecast,
    argMax(lower, computed_at_ms) AS lower,
    argMax(upper, computed_at_ms) AS upper,
    argMax(r2, computed_at_ms) AS r2,
    argMax(n, computed_at_ms) AS n,
    max(computed_at) AS last_computed_at
FROM trend_history
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(computed_at)
GROUP BY metric, horizon
ORDER BY metric, horizon
