-- Requests waiting per pool kind per interval (peak of the samples).
-- columns: time, pool_kind, queued
SELECT
    toDateTime(intDiv(toUInt32(ts), $__interval_s) * $__interval_s) AS time,
    pool_kind,
    max(queued) AS queued
FROM resource_pool_utilization
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(ts)
GROUP BY time, pool_kind
ORDER BY time, pool_kind
