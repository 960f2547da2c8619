-- Vehicles whose state-of-health trajectory (newest prediction in the range) crosses the
-- threshold: the date, the days from that prediction, the slope per month and per 1,000 km,
-- soonest first.
-- columns: vehicle_id, crosses_at, days_to_threshold, soh_pct, soh_per_month, soh_per_1000_km, predicted_on
SELECT
    vehicle_id,
    toDateTime(intDiv(ifNull(soh_crosses_at_ms, 0), 1000)) AS crosses_at,
    days_to_soh_threshold AS days_to_threshold,
    soh_pct,
    soh_per_month,
    soh_per_1000_km,
    day_start AS predicted_on
FROM
(
    SELECT vehicle_id, day_start, day_ms, soh_crosses_at_ms, days_to_soh_threshold, soh_pct, soh_per_month, soh_per_1000_km
    FROM vehicle_health_daily FINAL
    WHERE fleet_id = '${fleet_id}' AND $__timeFilter(day_start) AND isNotNull(soh_crosses_at_ms)
    ORDER BY day_ms DESC
    LIMIT 1 BY vehicle_id
)
ORDER BY crosses_at, vehicle_id
LIMIT 50
