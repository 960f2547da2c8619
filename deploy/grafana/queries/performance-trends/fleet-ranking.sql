-- Every fleet by its newest daily score, with the range average.
-- columns: fleet_id, latest_total, latest_benchmark_pct, avg_total, days
SELECT
    fleet_id,
    argMax(total, period_start_ms) AS latest_total,
    argMax(benchmark_pct, period_start_ms) AS latest_benchmark_pct,
    avg(total) AS avg_total,
    count() AS days
FROM
(
    SELECT fleet_id, period_start_ms, total, benchmark_pct
    FROM performance_score_history FINAL
    WHERE vehicle_id = '' AND period = 'day' AND $__timeFilter(period_start)
)
GROUP BY fleet_id
ORDER BY latest_total DESC
