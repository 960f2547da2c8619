-- AtlasMesh fleet metrics as an Arroyo SQL pipeline, with the core kernels as UDFs
-- (status_ms, fleet_score, trend_slope, threshold_check: see README.md).
--
-- Computes, per fleet and 1-minute tumbling window, what the telemetry workers write to
-- fleet_window_metrics (core/src/window): observed/busy/available/idle time from status
-- segments, utilization, availability, idle share, distance, energy, kWh/km, average moving
-- speed, active vehicles, fault onsets, missions; then the performance score per window, the
-- 30-minute utilization trend and a low-utilization flag with hysteresis.
-- Differences to the workers, all inherent to a per-window SQL group: the head of each window
-- (window start → a vehicle's first sample) is not covered by the previous window's last
-- sample; distance and energy are max − min of the window's samples rather than deltas against
-- the previous sample (so the step from the previous window's last sample is missing, and a
-- counter reset inside a window is not clamped); fault onsets (a fault sample after a
-- non-fault one) need the previous sample, so SQL counts vehicles with a fault sample in the
-- window (faulted_vehicles) instead; late data follows Arroyo's watermark, not the workers'
-- allowed_lateness re-emission.

CREATE TABLE telemetry (
    event_id TEXT NOT NULL,
    fleet_id TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    lat DOUBLE NOT NULL,
    lon DOUBLE NOT NULL,
    speed_kph DOUBLE NOT NULL,
    odometer_km DOUBLE NOT NULL,
    energy_pct DOUBLE NOT NULL,
    energy_used_kwh DOUBLE NOT NULL,
    status TEXT NOT NULL,            -- Avro enum VehicleStatus
    mission_id TEXT,
    zone_id TEXT,
    payload_kg DOUBLE NOT NULL,
    event_time TIMESTAMP GENERATED ALWAYS AS (to_timestamp_millis(ts_ms)) STORED,
    WATERMARK FOR event_time AS (event_time - INTERVAL '5 seconds')   -- telemetry.out_of_orderness_ms
) WITH (
    connector = 'kafka',
    bootstrap_servers = '127.0.0.1:9092',
    topic = 'fleet.telemetry.v1',
    type = 'source',
    'source.offset' = 'earliest',
    'source.read_mode' = 'read_committed',
    format = 'avro',
    'avro.confluent_schema_registry' = 'true',
    'schema_registry.endpoint' = 'http://127.0.0.1:8081',
    event_time_field = 'event_time'
);

CREATE TABLE fleet_metrics_arroyo (
    fleet_id TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    observed_ms BIGINT,
    busy_ms BIGINT,
    available_ms BIGINT,
    idle_ms BIGINT,
    utilization DOUBLE,
    availability DOUBLE,
    idle_share DOUBLE,
    distance_m BIGINT,
    energy_wh BIGINT,
    kwh_per_km DOUBLE,
    avg_moving_speed_kph DOUBLE,
    active_vehicles BIGINT,
    faulted_vehicles BIGINT,
    mission_count BIGINT,
    score DOUBLE,
    low_utilization INT
) WITH (
    connector = 'kafka',
    bootstrap_servers = '127.0.0.1:9092',
    topic = 'fleet.metrics.arroyo.v1',
    type = 'sink',
    format = 'json'
);

-- 1. Per vehicle and 1-minute window. Timestamps go to the UDAFs as microseconds, flags as INT.
CREATE VIEW vehicle_windows AS
SELECT
    fleet_id,
    vehicle_id,
    tumble(INTERVAL '1 minute') AS window,
    status_ms(ts_ms * 1000, 1) AS observed_ms,
    status_ms(ts_ms * 1000, CASE WHEN status IN ('en_route', 'on_mission') THEN 1 ELSE 0 END) AS busy_ms,
    status_ms(ts_ms * 1000, CASE WHEN status IN ('maintenance', 'fault', 'offline') THEN 0 ELSE 1 END) AS available_ms,
    status_ms(ts_ms * 1000, CASE WHEN status = 'idle' THEN 1 ELSE 0 END) AS idle_ms,
    CAST(round((max(odometer_km) - min(odometer_km)) * 1000) AS BIGINT) AS distance_m,
    CAST(round((max(energy_used_kwh) - min(energy_used_kwh)) * 1000) AS BIGINT) AS energy_wh,
    sum(CASE WHEN speed_kph > 0.5 THEN speed_kph ELSE 0 END) AS moving_speed_sum,
    sum(CASE WHEN speed_kph > 0.5 THEN 1 ELSE 0 END) AS moving_samples,
    max(CASE WHEN status <> 'offline' THEN 1 ELSE 0 END) AS active,
    max(CASE WHEN status = 'fault' THEN 1 ELSE 0 END) AS faulted,
    count(DISTINCT mission_id) AS missions
FROM telemetry
GROUP BY fleet_id, vehicle_id, window;

-- 2. Per fleet and window: sums of the vehicles, ratios of sums (as the workers do).
CREATE VIEW fleet_windows AS
SELECT
    fleet_id,
    window,
    sum(observed_ms) AS observed_ms,
    sum(busy_ms) AS busy_ms,
    sum(available_ms) AS available_ms,
    sum(idle_ms) AS idle_ms,
    sum(distance_m) AS distance_m,
    sum(energy_wh) AS energy_wh,
    sum(moving_speed_sum) / nullif(sum(moving_samples), 0) AS avg_moving_speed_kph,
    sum(active) AS active_vehicles,
    sum(faulted) AS faulted_vehicles,
    sum(missions) AS mission_count
FROM vehicle_windows
GROUP BY fleet_id, window;

-- 3. Ratios, score (weights = [performance.score.weights]) and the hysteresis flag
--    (utilization < 0.5, clears at >= 0.6; stateless here, so was_active = 0: the `for`,
--    keep-firing-for and re-send timers are the alerts pipeline's).
INSERT INTO fleet_metrics_arroyo
SELECT
    fleet_id,
    window.start AS window_start,
    window.end AS window_end,
    observed_ms,
    busy_ms,
    available_ms,
    idle_ms,
    CAST(busy_ms AS DOUBLE) / nullif(observed_ms, 0) AS utilization,
    CAST(available_ms AS DOUBLE) / nullif(observed_ms, 0) AS availability,
    CAST(idle_ms AS DOUBLE) / nullif(observed_ms, 0) AS idle_share,
    distance_m,
    energy_wh,
    CAST(energy_wh AS DOUBLE) / nullif(distance_m, 0) AS kwh_per_km,
    avg_moving_speed_kph,
    active_vehicles,
    faulted_vehicles,
    mission_count,
    fleet_score(observed_ms, busy_ms, available_ms, distance_m, energy_wh, faulted_vehicles,
                0.2, 0.2, 0.2, 0.2, 0.2) AS score,
    threshold_check(CAST(busy_ms AS DOUBLE) / nullif(observed_ms, 0), 'lt', 0.5, 0.6, 0) AS low_utilization
FROM fleet_windows;

-- 4. Utilization trend per fleet over a sliding 30-minute horizon, every minute
--    (slope in utilization per hour).
CREATE TABLE fleet_trends_arroyo (
    fleet_id TEXT NOT NULL,
    horizon_end TIMESTAMP NOT NULL,
    utilization_slope_per_hour DOUBLE
) WITH (
    connector = 'kafka',
    bootstrap_servers = '127.0.0.1:9092',
    topic = 'fleet.trends.arroyo.v1',
    type = 'sink',
    format = 'json'
);

INSERT INTO fleet_trends_arroyo
SELECT fleet_id, horizon.end AS horizon_end, slope AS utilization_slope_per_hour
FROM (
    SELECT
        fleet_id,
        hop(INTERVAL '1 minute', INTERVAL '30 minutes') AS horizon,
        trend_slope(
            CAST(extract(epoch FROM window.end) * 1000000 AS BIGINT),
            CAST(busy_ms AS DOUBLE) / nullif(observed_ms, 0)
        ) AS slope
    FROM fleet_windows
    GROUP BY fleet_id, horizon
);
