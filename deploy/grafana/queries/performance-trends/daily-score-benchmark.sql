-- Daily fleet score and its percent of the benchmark target.
-- columns: time, total, benchmark_pct
SELECT period_start AS time, total, benchmark_pct
FROM performance_score_history FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '' AND period = 'day' AND $__timeFilter(period_start)
ORDER BY time
