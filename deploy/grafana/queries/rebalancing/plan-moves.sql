-- The newest planned moves (the chosen plans of the engine's runs), latest departure first.
-- columns: depart_at, from_zone, to_zone, vehicles, run_id
SELECT depart_at, from_zone, to_zone, vehicles, run_id
FROM optimization_plan_moves
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(depart_at)
ORDER BY depart_ms DESC, from_zone, to_zone
LIMIT 100
