-- How often each pool of the fleet was saturated (utilization >= 0.9) in the range.
-- columns: pool_id, pool_kind, samples, saturated_share, avg_utilization, peak_utilization
SELECT
    pool_id,
    any(pool_kind) AS pool_kind,
    count() AS samples,
    countIf(utilization >= 0.9) / count() AS saturated_share,
    avg(utilization) AS avg_utilization,
    max(utilization) AS peak_utilization
FROM resource_pool_utilization
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(ts)
GROUP BY pool_id
ORDER BY saturated_share DESC, pool_id
