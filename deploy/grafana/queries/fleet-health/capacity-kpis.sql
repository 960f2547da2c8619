-- The fleet's newest capacity metric with hours in the range: its zone-hours, those short of
-- vehicles, the largest shortfall and the highest planned demand of a zone-hour.
-- columns: zone_hours, shortfall_hours, max_shortfall, peak_demand
SELECT
    count() AS zone_hours,
    countIf(shortfall > 0) AS shortfall_hours,
    max(shortfall) AS max_shortfall,
    max(demand_planned) AS peak_demand
FROM capacity_forecast FINAL
WHERE fleet_id = '${fleet_id}' AND metric_id IN
(
    SELECT argMax(metric_id, created_at_ms)
    FROM capacity_forecast
    WHERE fleet_id = '${fleet_id}' AND $__timeFilter(hour_start)
)
