-- Closed 1-minute windows per vehicle. The highest version of a window wins.
CREATE TABLE IF NOT EXISTS vehicle_window_metrics
(
    fleet_id String,
    vehicle_id String,
    window_start DateTime('UTC'),
    window_start_ms Int64,
    window_end_ms Int64,
    version UInt32,
    source_partition Int32,
    samples UInt64,
    observed_ms UInt64,
    busy_ms UInt64,
    available_ms UInt64,
    idle_ms UInt64,
    charging_ms UInt64,
    maintenance_ms UInt64,
    fault_ms UInt64,
    offline_ms UInt64,
    distance_m UInt64,
    energy_wh UInt64,
    moving_samples UInt64,
    moving_speed_ckph_sum UInt64,
    fault_count UInt64,
    mission_count UInt64,
    active_vehicles UInt64,
    vehicles UInt64,
    emitted_at_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (fleet_id, vehicle_id, window_start_ms);

-- Fleet windows as partials of each source partition (a vehicle lives in exactly one
-- partition); the fleet value is the sum of the newest partials.
CREATE TABLE IF NOT EXISTS fleet_window_partials
(
    fleet_id String,
    window_start DateTime('UTC'),
    window_start_ms Int64,
    window_end_ms Int64,
    version UInt32,
    source_partition Int32,
    samples UInt64,
    observed_ms UInt64,
    busy_ms UInt64,
    available_ms UInt64,
    idle_ms UInt64,
    charging_ms UInt64,
    maintenance_ms UInt64,
    fault_ms UInt64,
    offline_ms UInt64,
    distance_m UInt64,
    energy_wh UInt64,
    moving_samples UInt64,
    moving_speed_ckph_sum UInt64,
    fault_count UInt64,
    mission_count UInt64,
    active_vehicles UInt64,
    vehicles UInt64,
    emitted_at_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (fleet_id, window_start_ms, source_partition);
