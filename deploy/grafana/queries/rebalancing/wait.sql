-- Mean wait from request to assignment per zone and interval, seconds.
-- columns: time, zone_id, mean_wait_s
SELECT
    toDateTime(intDiv(toUInt32(bucket_start), $__interval_s) * $__interval_s) AS time,
    zone_id,
    sum(wait_ms_sum) / 1000 / nullIf(sum(served), 0) AS mean_wait_s
FROM zone_demand FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(bucket_start)
GROUP BY time, zone_id
ORDER BY time, zone_id
