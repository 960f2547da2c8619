-- Every pool of the fleet at its newest sample in the range.
-- columns: pool_id, pool_kind, capacity, allocated, utilization, queued, sampled_at
SELECT
    pool_id,
    argMax(pool_kind, ts_ms) AS pool_kind,
    argMax(capacity, ts_ms) AS capacity,
    argMax(allocated, ts_ms) AS allocated,
    argMax(utilization, ts_ms) AS utilization,
    argMax(queued, ts_ms) AS queued,
    max(ts) AS sampled_at
FROM resource_pool_utilization
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(ts)
GROUP BY pool_id
ORDER BY utilization DESC, pool_id
