-- Battery state of health (%) of vehicle ${vehicle_id} per UTC day with its 95 % confidence
-- band (± 1.96 standard errors of the day's estimate).
-- columns: time, soh_pct, soh_low95, soh_high95
SELECT
    day_start AS time,
    soh_pct,
    soh_pct - 1.96 * soh_stderr_pct AS soh_low95,
    soh_pct + 1.96 * soh_stderr_pct AS soh_high95
FROM vehicle_health_daily FINAL
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND $__timeFilter(day_start)
    AND isNotNull(soh_pct)
ORDER BY time
