-- Each vehicle's newest failure-risk prediction in the range with its interval and alarm
-- (risk at or above the model's cost-optimal threshold), highest risk first, with the day's
-- precursor warnings and failures.
-- columns: vehicle_id, day_start, failure_risk, failure_risk_low, failure_risk_high, failure_alarm, precursors, failures
SELECT vehicle_id, day_start, failure_risk, failure_risk_low, failure_risk_high, failure_alarm, precursors, failures
FROM
(
    SELECT vehicle_id, day_start, day_ms, failure_risk, failure_risk_low, failure_risk_high, failure_alarm, precursors, failures
    FROM vehicle_health_daily FINAL
    WHERE fleet_id = '${fleet_id}' AND $__timeFilter(day_start) AND isNotNull(failure_risk)
    ORDER BY day_ms DESC
    LIMIT 1 BY vehicle_id
)
ORDER BY failure_risk DESC, vehicle_id
LIMIT 50
