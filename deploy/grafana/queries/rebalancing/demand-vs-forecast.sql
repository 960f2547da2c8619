-- Requests per bucket in zone ${zone_id} against the newest forecast of each bucket: the mean,
-- the 80 % upper bound and the demand the plan planned for (the run's quantile).
-- columns: time, series, value
SELECT time, series, value
FROM
(
    SELECT bucket_start AS time, 'requests' AS series, toFloat64(requests) AS value
    FROM zone_demand FINAL
    WHERE fleet_id = '${fleet_id}' AND zone_id = '${zone_id}' AND $__timeFilter(bucket_start)
    UNION ALL
    SELECT bucket_start AS time, 'forecast mean' AS series, argMax(mean, created_at_ms) AS value
    FROM zone_demand_forecast
    WHERE fleet_id = '${fleet_id}' AND zone_id = '${zone_id}' AND $__timeFilter(bucket_start)
    GROUP BY bucket_start
    UNION ALL
    SELECT bucket_start AS time, 'forecast 80 % upper' AS series, argMax(upper80, created_at_ms) AS value
    FROM zone_demand_forecast
    WHERE fleet_id = '${fleet_id}' AND zone_id = '${zone_id}' AND $__timeFilter(bucket_start)
    GROUP BY bucket_start
    UNION ALL
    SELECT bucket_start AS time, 'planned for' AS series, toFloat64(argMax(planned, created_at_ms)) AS value
    FROM zone_demand_forecast
    WHERE fleet_id = '${fleet_id}' AND zone_id = '${zone_id}' AND $__timeFilter(bucket_start)
    GROUP BY bucket_start
)
ORDER BY time, series
