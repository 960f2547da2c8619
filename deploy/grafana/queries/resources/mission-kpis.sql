-- Mission KPIs over the range: success rate, mean duration, duration against plan, safety events per 1,000 km.
-- columns: success_rate, avg_duration_min, duration_vs_plan_pct, safety_events_per_1000km, missions_started
SELECT
    sum(missions_completed) / nullIf(sum(missions_completed) + sum(missions_failed), 0) AS success_rate,
    sum(duration_ms_sum) / 60000 / nullIf(sum(missions_completed) + sum(missions_failed), 0) AS avg_duration_min,
    sum(duration_ms_sum) * 100 / nullIf(sum(planned_duration_ms_sum), 0) AS duration_vs_plan_pct,
    sum(safety_events) * 1000000 / nullIf(sum(distance_m), 0) AS safety_events_per_1000km,
    sum(missions_started) AS missions_started
FROM mission_window_metrics FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
