-- Speed and state of charge per interval (mean of the samples).
-- columns: time, speed_kph, energy_pct
SELECT
    toDateTime(intDiv(toUInt32(ts), $__interval_s) * $__interval_s) AS time,
    avg(speed_kph) AS speed_kph,
    avg(energy_pct) AS energy_pct
FROM telemetry_raw
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND $__timeFilter(ts)
GROUP BY time
ORDER BY time
