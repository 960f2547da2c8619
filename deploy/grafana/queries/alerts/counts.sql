-- Transitions of the fleet's alerts in the range by kind.
-- columns: triggered, resent, resolved, pending, cancelled
SELECT
    countIf(status = 'firing') AS triggered,
    countIf(status = 'resent') AS resent,
    countIf(status = 'resolved') AS resolved,
    countIf(status = 'pending') AS pending,
    countIf(status = 'cancelled') AS cancelled
FROM alert_history
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(at)
