-- Latest reported state of every vehicle of the fleet (from raw telemetry in the range).
-- columns: vehicle_id, status, energy_pct, speed_kph, mission_id, zone_id, lat, lon, last_seen
SELECT
    vehicle_id,
    argMax(status, ts_ms) AS status,
    argMax(energy_pct, ts_ms) AS energy_pct,
    argMax(speed_kph, ts_ms) AS speed_kph,
    argMax(mission_id, ts_ms) AS mission_id,
    argMax(zone_id, ts_ms) AS zone_id,
    argMax(lat, ts_ms) AS lat,
    argMax(lon, ts_ms) AS lon,
    max(ts) AS last_seen
FROM telemetry_raw
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(ts)
GROUP BY vehicle_id
ORDER BY vehicle_id
