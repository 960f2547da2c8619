-- The vehicle's newest sample in the range.
-- columns: last_seen, status, energy_pct, speed_kph, odometer_km, payload_kg, mission_id, zone_id, fault_codes
SELECT
    ts AS last_seen,
    status,
    energy_pct,
    speed_kph,
    odometer_km,
    payload_kg,
    mission_id,
    zone_id,
    arrayStringConcat(fault_codes, ', ') AS fault_codes
FROM telemetry_raw
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND $__timeFilter(ts)
ORDER BY ts_ms DESC, seq DESC
LIMIT 1
