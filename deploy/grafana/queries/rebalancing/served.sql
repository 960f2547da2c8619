-- Share of the requests made in each interval that were served (assigned) and that expired.
-- columns: time, served_share, expired_share
SELECT
    toDateTime(intDiv(toUInt32(bucket_start), $__interval_s) * $__interval_s) AS time,
    sum(served) / nullIf(sum(requests), 0) AS served_share,
    sum(expired) / nullIf(sum(requests), 0) AS expired_share
FROM zone_demand FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(bucket_start)
GROUP BY time
ORDER BY time
