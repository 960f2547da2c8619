-- Battery state of health (%) of each vehicle of the fleet per UTC day (days without
-- discharge segments to estimate it from are left out).
-- columns: time, vehicle_id, soh_pct
SELECT day_start AS time, vehicle_id, soh_pct
FROM vehicle_health_daily FINAL
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(day_start) AND isNotNull(soh_pct)
ORDER BY time, vehicle_id
