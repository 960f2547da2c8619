-- Fault codes the vehicle reported, newest first.
-- columns: time, fault_code, status, lat, lon
SELECT ts AS time, arrayJoin(fault_codes) AS fault_code, status, lat, lon
FROM telemetry_raw
WHERE fleet_id = '${fleet_id}' AND vehicle_id = '${vehicle_id}' AND $__timeFilter(ts) AND notEmpty(fault_codes)
ORDER BY time DESC
LIMIT 200
