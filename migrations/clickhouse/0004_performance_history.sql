-- Performance score history: one row per fleet (vehicle_id = '') or vehicle, period kind and
-- period start. The performance pipeline re-emits a period with a higher version when late
-- data changes it; the highest version wins (query with FINAL or argMax(..., version)).
-- Components and total are 0..100; benchmark_pct is the total as a percent of the benchmark
-- target (100 = on target), 0 with benchmark_id = '' when no benchmark applies.
-- Retention: ALTER TABLE performance_score_history DROP PARTITION <yyyymm>.
CREATE TABLE IF NOT EXISTS performance_score_history
(
    fleet_id String,
    vehicle_id String,
    period Enum8('window' = 1, 'hour' = 2, 'day' = 3),
    period_start DateTime('UTC'),
    period_start_ms Int64,
    period_end_ms Int64,
    version UInt32,
    total Float64,
    efficiency Float64,
    utilization Float64,
    reliability Float64,
    safety Float64,
    cost Float64,
    benchmark_id String,
    benchmark_pct Float64,
    computed_at_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(period_start)
ORDER BY (fleet_id, period, vehicle_id, period_start_ms);
