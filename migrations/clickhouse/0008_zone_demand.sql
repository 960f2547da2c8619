-- Demand per fleet, origin zone and bucket (missions.zone_bucket_ms, 15 min by default), folded
-- by the missions pipeline from fleet.mission-events.v1: requests made in the bucket, of those
-- requests assigned and expired (by request time, so served + expired + pending = requests), the
-- summed wait to assignment of the assigned ones, arrivals (missions that ended in the zone), and
-- idle_vehicles: the fleet's vehicles seen idle in the zone during the bucket (telemetry_raw at
-- the time the bucket was last written).
-- The highest version of a bucket wins (FINAL or argMax).
CREATE TABLE IF NOT EXISTS zone_demand
(
    fleet_id String,
    zone_id String,
    bucket_start DateTime('UTC'),
    bucket_start_ms Int64,
    bucket_end_ms Int64,
    version UInt32,
    requests UInt64,
    served UInt64,
    expired UInt64,
    wait_ms_sum UInt64,
    arrivals UInt64,
    idle_vehicles UInt64,
    emitted_at_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(bucket_start)
ORDER BY (fleet_id, zone_id, bucket_start_ms);

-- The demand forecast each optimization run planned for: per run, zone and bucket ahead, the
-- mean and the 80 % / 95 % upper bounds and the quantile used (what the dashboard plots against
-- zone_demand). One insert per run; a run id is written once.
CREATE TABLE IF NOT EXISTS zone_demand_forecast
(
    fleet_id String,
    run_id String,
    zone_id String,
    bucket_start DateTime('UTC'),
    bucket_start_ms Int64,
    method String,
    mean Float64,
    upper80 Float64,
    upper95 Float64,
    planned UInt32,
    created_at_ms Int64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(bucket_start)
ORDER BY (fleet_id, zone_id, bucket_start_ms, run_id);

-- The moves of each completed engine run's chosen plan (what the dashboard shows as planned
-- moves; the decisions on them and the vehicles that moved are in PostgreSQL and in the
-- atlasmesh_optimization_adoption_ratio gauge). One insert per run.
CREATE TABLE IF NOT EXISTS optimization_plan_moves
(
    fleet_id String,
    run_id String,
    from_zone String,
    to_zone String,
    depart_at DateTime('UTC'),
    depart_ms Int64,
    vehicles UInt32,
    created_at_ms Int64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(depart_at)
ORDER BY (fleet_id, depart_ms, from_zone, to_zone, run_id);
