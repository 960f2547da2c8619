-- Fixture rows for the Grafana panel queries, shared by sinks/tests/grafana_queries.rs (ClickHouse
-- 18.16 server) and scripts/chdb-check.py (chdb, ClickHouse 26.x). Statements end with ';' at
-- the end of a line. Every time is relative to now() so the rows fall inside the test range
-- of macros.json (and no engine drops them as old). Two fleets (fleet-gq-1, fleet-gq-2) of
-- four vehicles each (veh-gq-<fleet>-<n>); the variables of macros.json name fleet-gq-1.

-- 2 hours of one-per-minute telemetry per vehicle (8 vehicles x 120 samples).
INSERT INTO telemetry_raw (event_id, fleet_id, vehicle_id, ts, ts_ms, seq, lat, lon, speed_kph, odometer_km, energy_pct, energy_used_kwh, status, mission_id, zone_id, payload_kg, fault_codes, source_partition, source_offset, ingested_at_ms)
SELECT
    concat('ev-gq-', toString(number)) AS event_id,
    concat('fleet-gq-', toString(intDiv(number % 8, 4) + 1)) AS fleet_id,
    concat('veh-gq-', toString(intDiv(number % 8, 4) + 1), '-', toString(number % 4 + 1)) AS vehicle_id,
    toDateTime(intDiv(toUInt32(now()), 60) * 60 - 60 * intDiv(number, 8) - 60) AS ts,
    toInt64(toUInt32(ts)) * 1000 AS ts_ms,
    toInt64(1000 - intDiv(number, 8)) AS seq,
    52.37 + (number % 8) * 0.01 + intDiv(number, 8) * 0.0005 AS lat,
    4.89 + (number % 8) * 0.01 - intDiv(number, 8) * 0.0004 AS lon,
    if(intDiv(number, 8) % 5 = 0, 0, 20 + (number % 37)) AS speed_kph,
    10000 - intDiv(number, 8) * 0.5 + (number % 8) * 100 AS odometer_km,
    90 - ((119 - intDiv(number, 8)) * 0.4) AS energy_pct,
    intDiv(number, 8) * 0.1 AS energy_used_kwh,
    multiIf(intDiv(number, 8) % 10 = 9, 'fault', intDiv(number, 8) % 5 = 0, 'idle', intDiv(number, 8) % 7 = 0, 'charging', 'on_mission') AS status,
    concat('mission-gq-', toString(number % 8), '-', toString(intDiv(number, 240))) AS mission_id,
    concat('zone-', toString(number % 3)) AS zone_id,
    250 + (number % 5) * 10 AS payload_kg,
    if(intDiv(number, 8) % 10 = 9, ['E42', 'P0A80'], emptyArrayString()) AS fault_codes,
    toInt32(number % 2) AS source_partition,
    toInt64(number) AS source_offset,
    toInt64(toUInt32(now())) * 1000 AS ingested_at_ms
FROM numbers(960);

-- Closed 1-minute windows per vehicle for the same 2 hours; a few windows re-emitted as version 2.
INSERT INTO vehicle_window_metrics (fleet_id, vehicle_id, window_start, window_start_ms, window_end_ms, version, source_partition, samples, observed_ms, busy_ms, available_ms, idle_ms, charging_ms, maintenance_ms, fault_ms, offline_ms, distance_m, energy_wh, moving_samples, moving_speed_ckph_sum, fault_count, mission_count, active_vehicles, vehicles, emitted_at_ms)
SELECT
    concat('fleet-gq-', toString(intDiv(number % 8, 4) + 1)) AS fleet_id,
    concat('veh-gq-', toString(intDiv(number % 8, 4) + 1), '-', toString(number % 4 + 1)) AS vehicle_id,
    toDateTime(intDiv(toUInt32(now()), 60) * 60 - 60 * intDiv(number, 8) - 120) AS window_start,
    toInt64(toUInt32(window_start)) * 1000 AS window_start_ms,
    window_start_ms + 60000 AS window_end_ms,
    toUInt32(1) AS version,
    toInt32(number % 2) AS source_partition,
    toUInt64(1) AS samples,
    toUInt64(60000) AS observed_ms,
    toUInt64(if(intDiv(number, 8) % 5 = 0, 0, 30000 + (number % 8) * 3000)) AS busy_ms,
    toUInt64(if(intDiv(number, 8) % 10 = 9, 0, 60000)) AS available_ms,
    toUInt64(60000 - busy_ms - 5000) AS idle_ms,
    toUInt64(if(intDiv(number, 8) % 7 = 0, 5000, 0)) AS charging_ms,
    toUInt64(0) AS maintenance_ms,
    toUInt64(if(intDiv(number, 8) % 7 != 0 AND intDiv(number, 8) % 10 = 9, 5000, 0)) AS fault_ms,
    toUInt64(5000 - charging_ms - fault_ms) AS offline_ms,
    toUInt64(400 + (number % 8) * 50) AS distance_m,
    toUInt64(80 + (number % 8) * 5) AS energy_wh,
    toUInt64(1) AS moving_samples,
    toUInt64(2500 + (number % 8) * 100) AS moving_speed_ckph_sum,
    toUInt64(if(intDiv(number, 8) % 10 = 9, 1, 0)) AS fault_count,
    toUInt64(if(intDiv(number, 8) % 30 = 0, 1, 0)) AS mission_count,
    toUInt64(if(busy_ms > 0, 1, 0)) AS active_vehicles,
    toUInt64(1) AS vehicles,
    toInt64(toUInt32(now())) * 1000 AS emitted_at_ms
FROM numbers(960);
INSERT INTO vehicle_window_metrics (fleet_id, vehicle_id, window_start, window_start_ms, window_end_ms, version, samples, observed_ms, busy_ms, available_ms, idle_ms, distance_m, energy_wh, moving_samples, moving_speed_ckph_sum, active_vehicles, vehicles)
SELECT 'fleet-gq-1', 'veh-gq-1-1', toDateTime(intDiv(toUInt32(now()), 60) * 60 - 60 * number - 120) AS window_start, toInt64(toUInt32(window_start)) * 1000 AS window_start_ms, window_start_ms + 60000, toUInt32(2), toUInt64(2), toUInt64(60000), toUInt64(60000), toUInt64(60000), toUInt64(0), toUInt64(900), toUInt64(150), toUInt64(2), toUInt64(6000), toUInt64(1), toUInt64(1)
FROM numbers(3);

-- Fleet partials for the same windows: two source partitions per fleet, two vehicles each.
INSERT INTO fleet_window_partials (fleet_id, window_start, window_start_ms, window_end_ms, version, source_partition, samples, observed_ms, busy_ms, available_ms, idle_ms, charging_ms, maintenance_ms, fault_ms, offline_ms, distance_m, energy_wh, moving_samples, moving_speed_ckph_sum, fault_count, mission_count, active_vehicles, vehicles, emitted_at_ms)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    toDateTime(intDiv(toUInt32(now()), 60) * 60 - 60 * intDiv(number, 4) - 120) AS window_start,
    toInt64(toUInt32(window_start)) * 1000 AS window_start_ms,
    window_start_ms + 60000 AS window_end_ms,
    toUInt32(1) AS version,
    toInt32(intDiv(number % 4, 2)) AS source_partition,
    toUInt64(2) AS samples,
    toUInt64(120000) AS observed_ms,
    toUInt64(if(intDiv(number, 4) % 5 = 0, 0, 60000 + (number % 4) * 6000)) AS busy_ms,
    toUInt64(if(intDiv(number, 4) % 10 = 9, 60000, 120000)) AS available_ms,
    toUInt64(120000 - busy_ms - 10000) AS idle_ms,
    toUInt64(if(intDiv(number, 4) % 7 = 0, 10000, 0)) AS charging_ms,
    toUInt64(if(intDiv(number, 4) % 11 = 0, 5000, 0)) AS maintenance_ms,
    toUInt64(if(intDiv(number, 4) % 10 = 9, 10000, 0)) AS fault_ms,
    toUInt64(if(intDiv(number, 4) % 7 = 0, 0, 10000)) AS offline_ms,
    toUInt64(900 + (number % 4) * 100) AS distance_m,
    toUInt64(170 + (number % 4) * 10) AS energy_wh,
    toUInt64(2) AS moving_samples,
    toUInt64(5200 + (number % 4) * 200) AS moving_speed_ckph_sum,
    toUInt64(if(intDiv(number, 4) % 10 = 9, 2, 0)) AS fault_count,
    toUInt64(if(intDiv(number, 4) % 30 = 0, 2, 0)) AS mission_count,
    toUInt64(if(busy_ms > 0, 2, 0)) AS active_vehicles,
    toUInt64(2) AS vehicles,
    toInt64(toUInt32(now())) * 1000 AS emitted_at_ms
FROM numbers(480);

-- Scores: hourly for 48 hours and daily for 14 days, per fleet (vehicle_id = ''), plus hourly
-- scores of each vehicle for 6 hours; the newest hour also as version 2.
INSERT INTO performance_score_history (fleet_id, vehicle_id, period, period_start, period_start_ms, period_end_ms, version, total, efficiency, utilization, reliability, safety, cost, benchmark_id, benchmark_pct, computed_at_ms)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    '' AS vehicle_id,
    'hour' AS period,
    toDateTime(intDiv(toUInt32(now()), 3600) * 3600 - 3600 * intDiv(number, 2) - 3600) AS period_start,
    toInt64(toUInt32(period_start)) * 1000 AS period_start_ms,
    period_start_ms + 3600000 AS period_end_ms,
    toUInt32(1) AS version,
    0.25 * efficiency + 0.25 * utilization + 0.2 * reliability + 0.2 * safety + 0.1 * cost AS total,
    70 + (number % 7) * 2 AS efficiency,
    55 + (intDiv(number, 2) % 12) * 3 AS utilization,
    80 + (number % 5) AS reliability,
    90 - (number % 3) AS safety,
    60 + (number % 4) * 5 AS cost,
    concat('bench-gq-', toString(number % 2 + 1)) AS benchmark_id,
    total / 75 * 100 AS benchmark_pct,
    toInt64(toUInt32(now())) * 1000 AS computed_at_ms
FROM numbers(96);
INSERT INTO performance_score_history (fleet_id, vehicle_id, period, period_start, period_start_ms, period_end_ms, version, total, efficiency, utilization, reliability, safety, cost, benchmark_id, benchmark_pct, computed_at_ms)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    '' AS vehicle_id,
    'day' AS period,
    toDateTime(intDiv(toUInt32(now()), 86400) * 86400 - 86400 * intDiv(number, 2)) AS period_start,
    toInt64(toUInt32(period_start)) * 1000 AS period_start_ms,
    period_start_ms + 86400000 AS period_end_ms,
    toUInt32(1) AS version,
    0.25 * efficiency + 0.25 * utilization + 0.2 * reliability + 0.2 * safety + 0.1 * cost AS total,
    72 + (intDiv(number, 2) % 5) AS efficiency,
    60 + intDiv(number, 2) AS utilization,
    82 + (number % 3) AS reliability,
    91 - (number % 2) AS safety,
    65 + (number % 4) * 3 AS cost,
    concat('bench-gq-', toString(number % 2 + 1)) AS benchmark_id,
    total / 75 * 100 AS benchmark_pct,
    toInt64(toUInt32(now())) * 1000 AS computed_at_ms
FROM numbers(28);
INSERT INTO performance_score_history (fleet_id, vehicle_id, period, period_start, period_start_ms, period_end_ms, version, total, efficiency, utilization, reliability, safety, cost, benchmark_id, benchmark_pct, computed_at_ms)
SELECT
    concat('fleet-gq-', toString(intDiv(number % 8, 4) + 1)) AS fleet_id,
    concat('veh-gq-', toString(intDiv(number % 8, 4) + 1), '-', toString(number % 4 + 1)) AS vehicle_id,
    'hour' AS period,
    toDateTime(intDiv(toUInt32(now()), 3600) * 3600 - 3600 * intDiv(number, 8) - 3600) AS period_start,
    toInt64(toUInt32(period_start)) * 1000 AS period_start_ms,
    period_start_ms + 3600000 AS period_end_ms,
    toUInt32(if(number < 8, 2, 1)) AS version,
    0.25 * efficiency + 0.25 * utilization + 0.2 * reliability + 0.2 * safety + 0.1 * cost AS total,
    65 + (number % 8) * 3 AS efficiency,
    50 + (number % 8) * 5 AS utilization,
    78 + (number % 6) AS reliability,
    88 + (number % 4) AS safety,
    60 + (number % 5) * 4 AS cost,
    '' AS benchmark_id,
    0 AS benchmark_pct,
    toInt64(toUInt32(now())) * 1000 AS computed_at_ms
FROM numbers(48);

-- Trends: hourly computations over the last 24 hours for 4 metrics x 2 horizons x 2 fleets.
INSERT INTO trend_history (fleet_id, metric, horizon, computed_at, computed_at_ms, slope, direction, change_pct, forecast, lower, upper, r2, n)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    ['utilization', 'kwh_per_km', 'score_total', 'availability'][intDiv(number, 2) % 4 + 1] AS metric,
    ['1h', '24h'][intDiv(number, 8) % 2 + 1] AS horizon,
    toDateTime(intDiv(toUInt32(now()), 3600) * 3600 - 3600 * intDiv(number, 16)) AS computed_at,
    toInt64(toUInt32(computed_at)) * 1000 AS computed_at_ms,
    (toInt64(number % 5) - 2) * 0.01 AS slope,
    multiIf(slope > 0, 'improving', slope < 0, 'declining', 'stable') AS direction,
    if(number % 11 = 0, NULL, slope * 100) AS change_pct,
    0.6 + (number % 10) * 0.02 AS forecast,
    forecast - 0.05 AS lower,
    forecast + 0.05 AS upper,
    0.5 + (number % 5) * 0.1 AS r2,
    toUInt32(60) AS n
FROM numbers(384);

-- Alert transitions: per fleet, a fleet utilization alert that fired, was re-sent and resolved;
-- a vehicle fault alert still firing; a pending one that was cancelled.
INSERT INTO alert_history (dedup_key, rule_id, scope, subject, fleet_id, metric, severity, status, event_action, value, threshold, at, at_ms, starts_at_ms, ends_at_ms, summary, label_names, label_values)
SELECT
    concat(rule_id, '/', subject) AS dedup_key,
    ['low-utilization', 'low-utilization', 'low-utilization', 'low-utilization', 'vehicle-faults', 'vehicle-faults', 'energy-low', 'energy-low'][number % 8 + 1] AS rule_id,
    if(number % 8 < 4, 'fleet', 'vehicle') AS scope,
    if(number % 8 < 4, fleet_id, concat('veh-gq-', toString(intDiv(number, 8) + 1), '-', toString(number % 8 - 3))) AS subject,
    concat('fleet-gq-', toString(intDiv(number, 8) + 1)) AS fleet_id,
    ['utilization', 'utilization', 'utilization', 'utilization', 'fault_count', 'fault_count', 'energy_pct', 'energy_pct'][number % 8 + 1] AS metric,
    ['warning', 'warning', 'warning', 'warning', 'critical', 'critical', 'info', 'info'][number % 8 + 1] AS severity,
    ['pending', 'firing', 'resent', 'resolved', 'pending', 'firing', 'pending', 'cancelled'][number % 8 + 1] AS status,
    ['none', 'trigger', 'trigger', 'resolve', 'none', 'trigger', 'none', 'none'][number % 8 + 1] AS event_action,
    [0.42, 0.41, 0.39, 0.63, 3, 4, 18, 25][number % 8 + 1] AS value,
    [0.5, 0.5, 0.5, 0.5, 2, 2, 20, 20][number % 8 + 1] AS threshold,
    toDateTime(intDiv(toUInt32(now()), 60) * 60 - [7200, 6900, 5100, 3600, 2400, 2100, 1800, 1500][number % 8 + 1]) AS at,
    toInt64(toUInt32(at)) * 1000 AS at_ms,
    toInt64(intDiv(toUInt32(now()), 60) * 60 - [7200, 6900, 6900, 6900, 2400, 2100, 1800, 1800][number % 8 + 1]) * 1000 AS starts_at_ms,
    if(status = 'resolved', at_ms, toInt64(0)) AS ends_at_ms,
    concat(if(status = 'resolved', 'RESOLVED: ', ''), metric, ' of ', subject, ' is ', toString(value), ' (threshold ', toString(threshold), ')') AS summary,
    ['team', 'region'] AS label_names,
    ['fleet-ops', concat('region-', toString(intDiv(number, 8) + 1))] AS label_values
FROM numbers(16);

-- Pool utilization every 5 minutes for 2 hours: 3 pools per fleet.
INSERT INTO resource_pool_utilization (pool_id, fleet_id, pool_kind, ts, ts_ms, capacity, allocated, utilization, queued)
SELECT
    concat('pool-gq-', toString(intDiv(number % 6, 3) + 1), '-', ['chargers', 'bays', 'drivers'][number % 3 + 1]) AS pool_id,
    concat('fleet-gq-', toString(intDiv(number % 6, 3) + 1)) AS fleet_id,
    ['charger', 'bay', 'driver'][number % 3 + 1] AS pool_kind,
    toDateTime(intDiv(toUInt32(now()), 300) * 300 - 300 * intDiv(number, 6)) AS ts,
    toInt64(toUInt32(ts)) * 1000 AS ts_ms,
    toFloat64([10, 4, 20][number % 3 + 1]) AS capacity,
    toFloat64((intDiv(number, 6) * 3 + number % 7) % toUInt64(capacity + 1)) AS allocated,
    allocated / capacity AS utilization,
    toUInt32(if(allocated >= capacity, number % 4, 0)) AS queued
FROM numbers(150);

-- Mission windows: hourly for 48 hours per fleet.
INSERT INTO mission_window_metrics (fleet_id, window_start, window_start_ms, window_end_ms, version, missions_started, missions_completed, missions_failed, duration_ms_sum, planned_duration_ms_sum, safety_events, safety_critical, distance_m, emitted_at_ms)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    toDateTime(intDiv(toUInt32(now()), 3600) * 3600 - 3600 * intDiv(number, 2) - 3600) AS window_start,
    toInt64(toUInt32(window_start)) * 1000 AS window_start_ms,
    window_start_ms + 3600000 AS window_end_ms,
    toUInt32(1) AS version,
    toUInt64(5 + number % 4) AS missions_started,
    toUInt64(4 + number % 3) AS missions_completed,
    toUInt64(number % 5 = 0) AS missions_failed,
    missions_completed * toUInt64(1500000 + (number % 6) * 60000) AS duration_ms_sum,
    missions_completed * toUInt64(1600000) AS planned_duration_ms_sum,
    toUInt64(number % 3) AS safety_events,
    toUInt64(number % 17 = 0) AS safety_critical,
    toUInt64(40000 + (number % 9) * 2500) AS distance_m,
    toInt64(toUInt32(now())) * 1000 AS emitted_at_ms
FROM numbers(96);

-- Zone demand: 15-minute buckets for 24 hours, 2 zones per fleet.
INSERT INTO zone_demand (fleet_id, zone_id, bucket_start, bucket_start_ms, bucket_end_ms, version, requests, served, expired, wait_ms_sum, arrivals, idle_vehicles, emitted_at_ms)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    ['zone-gq-north', 'zone-gq-south'][intDiv(number, 2) % 2 + 1] AS zone_id,
    toDateTime(intDiv(toUInt32(now()), 900) * 900 - 900 * intDiv(number, 4) - 900) AS bucket_start,
    toInt64(toUInt32(bucket_start)) * 1000 AS bucket_start_ms,
    bucket_start_ms + 900000 AS bucket_end_ms,
    toUInt32(1) AS version,
    toUInt64(6 + number % 9) AS requests,
    toUInt64(requests - number % 4) AS served,
    toUInt64(number % 4) AS expired,
    served * toUInt64(60000 + (number % 5) * 30000) AS wait_ms_sum,
    toUInt64(3 + number % 7) AS arrivals,
    toUInt64(number % 5) AS idle_vehicles,
    toInt64(toUInt32(now())) * 1000 AS emitted_at_ms
FROM numbers(384);

-- Demand forecasts of two runs over the last 2 hours and the next 2 hours, both zones.
INSERT INTO zone_demand_forecast (fleet_id, run_id, zone_id, bucket_start, bucket_start_ms, method, mean, upper80, upper95, planned, created_at_ms)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    concat('run-gq-', toString(intDiv(number, 32) + 1)) AS run_id,
    ['zone-gq-north', 'zone-gq-south'][intDiv(number, 2) % 2 + 1] AS zone_id,
    toDateTime(intDiv(toUInt32(now()), 900) * 900 + 900 * (intDiv(number, 4) % 8) - 7200) AS bucket_start,
    toInt64(toUInt32(bucket_start)) * 1000 AS bucket_start_ms,
    'holt_winters' AS method,
    toFloat64(7 + number % 5) AS mean,
    mean + 2.5 AS upper80,
    mean + 4 AS upper95,
    toUInt32(mean + 2) AS planned,
    toInt64(toUInt32(now()) - 7200 + intDiv(number, 32) * 600) * 1000 AS created_at_ms
FROM numbers(64);

-- Plan moves of the last 2 hours: one per fleet and 15 minutes.
INSERT INTO optimization_plan_moves (fleet_id, run_id, from_zone, to_zone, depart_at, depart_ms, vehicles, created_at_ms)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    concat('run-gq-', toString(intDiv(number, 8) + 1)) AS run_id,
    if(number % 4 < 2, 'zone-gq-north', 'zone-gq-south') AS from_zone,
    if(number % 4 < 2, 'zone-gq-south', 'zone-gq-north') AS to_zone,
    toDateTime(intDiv(toUInt32(now()), 900) * 900 - 900 * intDiv(number, 2)) AS depart_at,
    toInt64(toUInt32(depart_at)) * 1000 AS depart_ms,
    toUInt32(1 + number % 3) AS vehicles,
    toInt64(toUInt32(now())) * 1000 AS created_at_ms
FROM numbers(16);

-- Vehicle health days: the 10 UTC days up to today, every vehicle, each written twice (version
-- 1, then the complete version 2 with other numbers: FINAL / argMax must pick version 2). The
-- state of health declines ~0.05 %/day; vehicle 1 of each fleet has a failure alarm on the
-- 3 newest days; every trajectory crosses the 80 % threshold between 200 and 500 days ahead.
INSERT INTO vehicle_health_daily (fleet_id, vehicle_id, day_start, day_ms, version, samples, distance_km, energy_kwh, kwh_per_km, fleet_median_kwh_per_km, observed_hours, operating_hours, busy_hours, maintenance_hours, faults, fault_minutes, precursors, failures, soh_pct, soh_stderr_pct, soh_segments, score, battery, reliability, efficiency, availability, failure_risk, failure_risk_low, failure_risk_high, failure_alarm, soh_per_month, soh_per_1000_km, soh_crosses_at_ms, days_to_soh_threshold, emitted_at_ms)
SELECT
    concat('fleet-gq-', toString(intDiv(number % 8, 4) + 1)) AS fleet_id,
    concat('veh-gq-', toString(intDiv(number % 8, 4) + 1), '-', toString(number % 4 + 1)) AS vehicle_id,
    toDateTime(toUInt32(toStartOfDay(now())) - 86400 * (intDiv(number, 8) % 10)) AS day_start,
    toInt64(toUInt32(day_start)) * 1000 AS day_ms,
    toUInt32(intDiv(number, 80) + 1) AS version,
    toUInt32(1440) AS samples,
    120 + (number % 8) * 10 AS distance_km,
    distance_km * (0.18 + (number % 4) * 0.01) AS energy_kwh,
    energy_kwh / distance_km AS kwh_per_km,
    0.195 AS fleet_median_kwh_per_km,
    24.0 AS observed_hours,
    10.0 + number % 4 AS operating_hours,
    8.0 + number % 3 AS busy_hours,
    if(number % 4 = 3, 2.0, 0.0) AS maintenance_hours,
    toUInt32(number % 3) AS faults,
    toFloat64(number % 3) * 12 AS fault_minutes,
    toUInt32(number % 4 = 0) AS precursors,
    toUInt32(0) AS failures,
    97 - (number % 4) * 3 + (intDiv(number, 8) % 10) * 0.05 + intDiv(number, 80) * 0.2 AS soh_pct,
    0.4 + (number % 4) * 0.1 AS soh_stderr_pct,
    toUInt32(3 + number % 5) AS soh_segments,
    50 + (number % 4) * 12 - (intDiv(number, 8) % 10) * 0.5 + intDiv(number, 80) * 3 AS score,
    60 + (number % 4) * 10 AS battery,
    70 + (number % 3) * 10 AS reliability,
    65 + (number % 5) * 7 AS efficiency,
    80 + (number % 2) * 10 AS availability,
    if(number % 4 = 0, 0.3, 0.02 + (number % 4) * 0.01) + intDiv(number, 80) * 0.01 AS failure_risk,
    failure_risk * 0.6 AS failure_risk_low,
    least(failure_risk * 1.5, 1.0) AS failure_risk_high,
    toUInt8(number % 4 = 0 AND intDiv(number, 8) % 10 < 3) AS failure_alarm,
    -0.5 - (number % 4) * 0.2 AS soh_per_month,
    -0.3 - (number % 4) * 0.1 AS soh_per_1000_km,
    toInt64(toUInt32(day_start)) * 1000 + toInt64(200 + (number % 4) * 100) * 86400000 AS soh_crosses_at_ms,
    toFloat64(200 + (number % 4) * 100) AS days_to_soh_threshold,
    toInt64(toUInt32(now())) * 1000 AS emitted_at_ms
FROM numbers(160);

-- Fleet health days matching the vehicle days above (both fleets, 10 days, versions 1 and 2).
INSERT INTO fleet_health_daily (fleet_id, day_start, day_ms, version, vehicles, scored, min_score, p10_score, median_score, mean_score, worst_vehicles, worst_scores, alarms, emitted_at_ms)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    toDateTime(toUInt32(toStartOfDay(now())) - 86400 * (intDiv(number, 2) % 10)) AS day_start,
    toInt64(toUInt32(day_start)) * 1000 AS day_ms,
    toUInt32(intDiv(number, 20) + 1) AS version,
    toUInt32(4) AS vehicles,
    toUInt32(3 + intDiv(number, 20)) AS scored,
    50 - (intDiv(number, 2) % 10) * 0.5 + intDiv(number, 20) * 3 AS min_score,
    min_score + 3.6 AS p10_score,
    min_score + 18 AS median_score,
    min_score + 17 AS mean_score,
    [concat('veh-gq-', toString(number % 2 + 1), '-1'), concat('veh-gq-', toString(number % 2 + 1), '-2')] AS worst_vehicles,
    [min_score, min_score + 12] AS worst_scores,
    toUInt32(intDiv(number, 2) % 10 < 3) AS alarms,
    toInt64(toUInt32(now())) * 1000 AS emitted_at_ms
FROM numbers(40);

-- Capacity: two metrics per fleet and zone, 12 hours each — one computed 14 hours ago (hours
-- from 13 hours ago), a newer one 8 hours ago (hours from 7 hours ago, into the future) — so
-- the newest metric of a zone-hour decides; the north is short of vehicles at the peak.
INSERT INTO capacity_forecast (fleet_id, metric_id, zone_id, hour_start, hour_ms, available, demand_mean, demand_planned, shortfall, created_at_ms)
SELECT
    concat('fleet-gq-', toString(number % 2 + 1)) AS fleet_id,
    concat('cap-gq-', toString(number % 2 + 1), '-', toString(intDiv(number, 48) + 1)) AS metric_id,
    ['zone-gq-north', 'zone-gq-south'][intDiv(number, 2) % 2 + 1] AS zone_id,
    toDateTime(intDiv(toUInt32(now()), 3600) * 3600 - 3600 * (13 - intDiv(number, 48) * 6) + 3600 * (intDiv(number, 4) % 12)) AS hour_start,
    toInt64(toUInt32(hour_start)) * 1000 AS hour_ms,
    toUInt32(if(zone_id = 'zone-gq-north', 6, 9) + intDiv(number, 48)) AS available,
    toFloat64(4 + (intDiv(number, 4) % 12) % 5) * 1.5 AS demand_mean,
    ceil(demand_mean * 1.3) AS demand_planned,
    greatest(demand_planned - available, 0) AS shortfall,
    toInt64(intDiv(toUInt32(now()), 3600) * 3600 - 3600 * (14 - intDiv(number, 48) * 6)) * 1000 AS created_at_ms
FROM numbers(96);
