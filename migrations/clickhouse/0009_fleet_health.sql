-- Fleet analytics (issue 14), written by the health pipeline (pipelines/src/health).
--
-- One row per vehicle and UTC day once the day is closed for that vehicle: what the stream
-- showed (distance, energy, observed / operating / maintenance time, faults, precursor
-- warnings, failures), the battery's state of health from that day's discharge segments (with
-- its standard error), the health score and its components (efficiency against the fleet's
-- median kWh/km of the same day), and the predictions made at the end of the day (failure risk
-- for the next horizon_days, the state-of-health trajectory and the date it crosses the
-- threshold). A fleet-day is written again with the next version whenever another of its
-- vehicles closes the day (the fleet median moves), so the highest version is the complete
-- one (FINAL or argMax).
CREATE TABLE IF NOT EXISTS vehicle_health_daily
(
    fleet_id String,
    vehicle_id String,
    day_start DateTime('UTC'),
    day_ms Int64,
    version UInt32,
    samples UInt32,
    distance_km Float64,
    energy_kwh Float64,
    kwh_per_km Nullable(Float64),
    fleet_median_kwh_per_km Nullable(Float64),
    observed_hours Float64,
    operating_hours Float64,
    busy_hours Float64,
    maintenance_hours Float64,
    faults UInt32,
    fault_minutes Float64,
    precursors UInt32,
    failures UInt32,
    soh_pct Nullable(Float64),
    soh_stderr_pct Nullable(Float64),
    soh_segments UInt32,
    score Nullable(Float64),
    battery Nullable(Float64),
    reliability Nullable(Float64),
    efficiency Nullable(Float64),
    availability Nullable(Float64),
    failure_risk Nullable(Float64),
    failure_risk_low Nullable(Float64),
    failure_risk_high Nullable(Float64),
    failure_alarm UInt8,
    soh_per_month Nullable(Float64),
    soh_per_1000_km Nullable(Float64),
    soh_crosses_at_ms Nullable(Int64),
    days_to_soh_threshold Nullable(Float64),
    emitted_at_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day_start)
ORDER BY (fleet_id, vehicle_id, day_ms);

-- A fleet's health on a UTC day: the distribution of its vehicles' scores (min, p10, median,
-- mean) and its worst vehicles, the same versions as vehicle_health_daily.
CREATE TABLE IF NOT EXISTS fleet_health_daily
(
    fleet_id String,
    day_start DateTime('UTC'),
    day_ms Int64,
    version UInt32,
    vehicles UInt32,
    scored UInt32,
    min_score Nullable(Float64),
    p10_score Nullable(Float64),
    median_score Nullable(Float64),
    mean_score Nullable(Float64),
    worst_vehicles Array(String),
    worst_scores Array(Float64),
    alarms UInt32,
    emitted_at_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day_start)
ORDER BY (fleet_id, day_ms);

-- Capacity metrics computed by the engine (POST /api/v1/fleet-analytics/capacity-metrics):
-- per metric, zone and hour ahead, the vehicles available at the time of the computation and
-- the forecast demand (mean and the planned quantile), and the shortfall. One insert per
-- computation; a metric id is written once.
CREATE TABLE IF NOT EXISTS capacity_forecast
(
    fleet_id String,
    metric_id String,
    zone_id String,
    hour_start DateTime('UTC'),
    hour_ms Int64,
    available UInt32,
    demand_mean Float64,
    demand_planned Float64,
    shortfall Float64,
    created_at_ms Int64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(hour_start)
ORDER BY (fleet_id, zone_id, hour_ms, metric_id);
