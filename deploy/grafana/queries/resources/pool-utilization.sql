-- Utilization of every pool of the fleet per interval (mean of the samples).
-- columns: time, pool_id, utilization
SELECT
    toDateTime(intDiv(toUInt32(ts), $__interval_s) * $__interval_s) AS time,
    pool_id,
    avg(utilization) AS utilization
FROM resource_pool_utilization
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(ts)
GROUP BY time, pool_id
ORDER BY time, pool_id
