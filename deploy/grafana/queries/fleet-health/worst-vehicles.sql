-- The fleet's worst vehicles: each vehicle's newest closed day in the range (highest version),
-- lowest health score first, with the components, battery state of health and failure risk.
-- columns: vehicle_id, day_start, score, battery, reliability, efficiency, availability, soh_pct, failure_risk, failure_alarm
SELECT vehicle_id, day_start, score, battery, reliability, efficiency, availability, soh_pct, failure_risk, failure_alarm
FROM
(
    SELECT vehicle_id, day_start, day_ms, score, battery, reliability, efficiency, availability, soh_pct, failure_risk, failure_alarm
    FROM vehicle_health_daily FINAL
    WHERE fleet_id = '${fleet_id}' AND $__timeFilter(day_start)
    ORDER BY day_ms DESC
    LIMIT 1 BY vehicle_id
)
ORDER BY score, vehicle_id
LIMIT 10
