-- The fleet's newest daily score and its percent of the benchmark.
-- columns: total, benchmark_pct, period_start
SELECT total, benchmark_pct, period_start
FROM performance_score_history FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '' AND period = 'day' AND $__timeFilter(period_start)
ORDER BY period_start_ms DESC
LIMIT 1
