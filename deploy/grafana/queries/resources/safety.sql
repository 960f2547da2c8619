-- Safety events (all and critical) per window and per 1,000 km driven.
-- columns: time, safety_events, safety_critical, per_1000km
SELECT
    window_start AS time,
    safety_events,
    safety_critical,
    safety_events * 1000000 / nullIf(distance_m, 0) AS per_1000km
FROM mission_window_metrics FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
ORDER BY time
