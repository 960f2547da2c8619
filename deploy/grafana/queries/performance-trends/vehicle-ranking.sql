-- Vehicles of the fleet by mean hourly score over the range.
-- columns: vehicle_id, avg_total, min_total, efficiency, utilization, reliability, safety, cost, hours
SELECT
    vehicle_id,
    avg(total) AS avg_total,
    min(total) AS min_total,
    avg(efficiency) AS efficiency,
    avg(utilization) AS utilization,
    avg(reliability) AS reliability,
    avg(safety) AS safety,
    avg(cost) AS cost,
    count() AS hours
FROM performance_score_history FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id != '' AND period = 'hour' AND $__timeFilter(period_start)
GROUP BY vehicle_id
ORDER BY avg_total DESC
