-- The performance pipeline (pipelines/src/performance): latest fleet scores and trends, and the
-- daily rank of each fleet among the fleets of its federations. History lives in ClickHouse
-- (performance_score_history, trend_history). Every write is an idempotent upsert guarded by
-- the row's event-time key, so a replayed batch changes nothing (not even updated_at).

-- The newest window score and the newest (fullest) score of the newest UTC day of each fleet.
-- Upsert only when (period_start_ms, version) is newer than the stored one.
CREATE TABLE IF NOT EXISTS perf_score_latest (
    fleet_id         text             NOT NULL,
    period           text             NOT NULL CHECK (period IN ('window', 'day')),
    period_start_ms  bigint           NOT NULL,
    period_end_ms    bigint           NOT NULL,
    -- window: 1; day: the number of settled windows summed into the day so far.
    version          bigint           NOT NULL,
    total            double precision NOT NULL CHECK (total BETWEEN 0 AND 100),
    -- NULL: undefined for the period (e.g. efficiency, safety and cost without distance).
    efficiency       double precision,
    utilization      double precision,
    reliability      double precision,
    safety           double precision,
    cost             double precision,
    -- The fleet's benchmark of metric 'score' (first by name), NULL when it has none.
    benchmark_id     text,
    benchmark_target double precision,
    benchmark_pct    double precision,
    -- Event time: end of the window whose settling produced the row.
    computed_at_ms   bigint           NOT NULL,
    updated_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (fleet_id, period)
);

-- The newest trend per fleet, metric and horizon ('60w': last 60 windows, '14d': last 14 days).
-- Upsert only when computed_at_ms is newer.
CREATE TABLE IF NOT EXISTS perf_trend_latest (
    fleet_id         text             NOT NULL,
    metric           text             NOT NULL,
    horizon          text             NOT NULL,
    computed_at_ms   bigint           NOT NULL,
    -- Time of the first and last fitted point (window end or day start).
    first_at_ms      bigint           NOT NULL,
    last_at_ms       bigint           NOT NULL,
    n                integer          NOT NULL CHECK (n >= 3),
    slope_per_hour   double precision NOT NULL,
    intercept        double precision NOT NULL,
    r2               double precision NOT NULL,
    p_value          double precision NOT NULL,
    significant      boolean          NOT NULL,
    direction        text             NOT NULL CHECK (direction IN ('improving', 'stable', 'declining')),
    change_pct       double precision,
    forecast_at_ms   bigint,
    forecast         double precision,
    forecast_lower   double precision,
    forecast_upper   double precision,
    confidence       double precision,
    updated_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (fleet_id, metric, horizon)
);

-- Daily score of each fleet in each of its federations (federation_members) and its
-- competition rank among them that day (1 = best, ties share a rank). A day score replaces the
-- stored one only with a higher version (more windows summed); ranks of a (federation, day)
-- are recomputed after every such write and rows change only when their values do.
CREATE TABLE IF NOT EXISTS perf_federation_ranks (
    federation_id text             NOT NULL,
    day_start_ms  bigint           NOT NULL,
    fleet_id      text             NOT NULL,
    total         double precision NOT NULL,
    -- perf_score_latest.version of the day score: windows summed.
    version       bigint           NOT NULL,
    -- 0 until ranked (within the same transaction).
    rank          integer          NOT NULL,
    fleets        integer          NOT NULL,
    updated_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (federation_id, day_start_ms, fleet_id)
);
CREATE INDEX IF NOT EXISTS perf_federation_ranks_fleet ON perf_federation_ranks (fleet_id, day_start_ms);
