-- Demand KPIs over the range: requests, share served, expired, mean wait to assignment.
-- columns: total_requests, served_pct, total_expired, mean_wait_s
SELECT
    sum(requests) AS total_requests,
    sum(served) / nullIf(sum(requests), 0) AS served_pct,
    sum(expired) AS total_expired,
    sum(wait_ms_sum) / 1000 / nullIf(sum(served), 0) AS mean_wait_s
FROM zone_demand FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(bucket_start)
