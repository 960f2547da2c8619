-- Resource pool utilization samples: one row per pool and sample time (the resources pipeline
-- samples every pool periodically and on every allocation change). utilization = allocated /
-- capacity (0 when capacity is 0); queued = requests waiting for the pool.
-- Retention: ALTER TABLE resource_pool_utilization DROP PARTITION <yyyymmdd>.
CREATE TABLE IF NOT EXISTS resource_pool_utilization
(
    pool_id String,
    fleet_id String,
    pool_kind String,
    ts DateTime('UTC'),
    ts_ms Int64,
    capacity Float64,
    allocated Float64,
    utilization Float64,
    queued UInt32
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (fleet_id, pool_id, ts_ms);

-- Mission metrics per fleet and window (window_end_ms - window_start_ms long, 1 hour by
-- default). Durations are of the missions completed or failed in the window; planned is what
-- their templates estimated. The highest version of a window wins (FINAL or argMax).
CREATE TABLE IF NOT EXISTS mission_window_metrics
(
    fleet_id String,
    window_start DateTime('UTC'),
    window_start_ms Int64,
    window_end_ms Int64,
    version UInt32,
    missions_started UInt64,
    missions_completed UInt64,
    missions_failed UInt64,
    duration_ms_sum UInt64,
    planned_duration_ms_sum UInt64,
    safety_events UInt64,
    safety_critical UInt64,
    distance_m UInt64,
    emitted_at_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (fleet_id, window_start_ms);
