-- Every zone over the range: requests, served share, expired, mean wait, arrivals, and
-- arrivals minus requests (a zone that loses vehicles is negative), and the mean vehicles idle
-- in it per bucket.
-- columns: zone_id, total_requests, served_pct, total_expired, mean_wait_s, total_arrivals, net_inflow, mean_idle_vehicles
SELECT
    zone_id,
    sum(requests) AS total_requests,
    sum(served) / nullIf(sum(requests), 0) AS served_pct,
    sum(expired) AS total_expired,
    sum(wait_ms_sum) / 1000 / nullIf(sum(served), 0) AS mean_wait_s,
    sum(arrivals) AS total_arrivals,
    toInt64(sum(arrivals)) - toInt64(sum(requests)) AS net_inflow,
    avg(idle_vehicles) AS mean_idle_vehicles
FROM zone_demand FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(bucket_start)
GROUP BY zone_id
ORDER BY total_expired DESC, zone_id
