-- Missions the vehicle reported in the range.
-- columns: mission_id, started, last_seen, samples, distance_km, avg_speed_kph, payload_kg
SELECT
    mission_id,
    min(ts) AS started,
    max(ts) AS last_seen,
    count() AS samples,
    max(odometer_km) - min(odometer_km) AS distance_km,
    avg(speed_kph) AS avg_speed_kph,
    max(payload_kg) AS payload_kg
FROM telemetry_raw
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND $__timeFilter(ts) AND mission_id != ''
GROUP BY mission_id
ORDER BY started DESC
