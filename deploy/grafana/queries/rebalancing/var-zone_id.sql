-- Variable zone_id: the fleet's zones with demand in the range.
-- columns: zone_id
SELECT DISTINCT zone_id
FROM zone_demand
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(bucket_start)
ORDER BY zone_id
