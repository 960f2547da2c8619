-- Variable zone_id: the fleet's zones with computed capacity hours in the range.
-- columns: zone_id
SELECT DISTINCT zone_id
FROM capacity_forecast
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(hour_start)
ORDER BY zone_id
