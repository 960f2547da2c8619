-- Alert transitions of the fleet per interval and kind.
-- columns: time, status, transitions
SELECT
    toDateTime(intDiv(toUInt32(at), $__interval_s) * $__interval_s) AS time,
    toString(status) AS status,
    count() AS transitions
FROM alert_history
WHERE fleet_id = '${fleet_id}' AND $__timeFilter(at)
GROUP BY time, status
ORDER BY time, status
