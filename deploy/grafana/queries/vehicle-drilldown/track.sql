-- The vehicle's track: mean position and speed per interval (geomap).
-- columns: time, lat, lon, speed_kph
SELECT
    toDateTime(intDiv(toUInt32(ts), $__interval_s) * $__interval_s) AS time,
    avg(lat) AS lat,
    avg(lon) AS lon,
    avg(speed_kph) AS speed_kph
FROM telemetry_raw
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND $__timeFilter(ts)
GROUP BY time
ORDER BY time
