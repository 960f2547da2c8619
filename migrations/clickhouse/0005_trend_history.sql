-- Trend history: every trend the performance pipeline computes, per fleet, metric and horizon
-- (the span of the fitted series, e.g. '1h', '24h', '7d'), stamped with when it was computed.
-- slope is per hour; change_pct is NULL when the first fitted value is 0; forecast with its
-- prediction interval [lower, upper] is for one horizon step ahead; r2 and n describe the fit.
-- Re-inserting the same computation is idempotent (same sorting key, identical row).
-- Retention: ALTER TABLE trend_history DROP PARTITION <yyyymm>.
CREATE TABLE IF NOT EXISTS trend_history
(
    fleet_id String,
    metric String,
    horizon String,
    computed_at DateTime('UTC'),
    computed_at_ms Int64,
    slope Float64,
    direction Enum8('declining' = -1, 'stable' = 0, 'improving' = 1),
    change_pct Nullable(Float64),
    forecast Float64,
    lower Float64,
    upper Float64,
    r2 Float64,
    n UInt32
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(computed_at)
ORDER BY (fleet_id, metric, horizon, computed_at_ms);
