-- Safety events (all and critical) per window and per 100 km driven.
-- columns: time, safety_events, safety_critical, per_100km
SELECT
    window_start AS time,
    safety_events,
    safety_critical,
    safety_events * 100000 / nullIf(distance_m, 0) AS per_100km
FROM mission_window_metrics FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(window_start)
ORDER BY time
