-- Allocated over capacity of all the fleet's pools over the range, and the peak of any pool.
-- columns: pooled_utilization, peak_utilization, max_queued
SELECT
    sum(allocated) / nullIf(sum(capacity), 0) AS pooled_utilization,
    max(utilization) AS peak_utilization,
    max(queued) AS max_queued
FROM resource_pool_utilization
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(ts)
