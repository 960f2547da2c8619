-- Raw telemetry, one row per accepted event. Replays insert identical rows; ReplacingMergeTree
-- collapses them (query with FINAL for exact counts).
CREATE TABLE IF NOT EXISTS telemetry_raw
(
    event_id String,
    fleet_id String,
    vehicle_id String,
    ts DateTime('UTC'),
    ts_ms Int64,
    seq Int64,
    lat Float64,
    lon Float64,
    speed_kph Float64,
    odometer_km Float64,
    energy_pct Float64,
    energy_used_kwh Float64,
    status Enum8('offline' = 0, 'idle' = 1, 'en_route' = 2, 'on_mission' = 3, 'charging' = 4, 'maintenance' = 5, 'fault' = 6),
    mission_id String,
    zone_id String,
    payload_kg Float64,
    fault_codes Array(String),
    source_partition Int32,
    source_offset Int64,
    ingested_at_ms Int64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (fleet_id, vehicle_id, ts_ms, seq);
