-- Fleet analytics (issue 14): the entities of /api/v1/fleet-analytics/… and the health
-- pipeline's own bookkeeping.
--
-- The entity tables hold rows created through the API (source 'reported', a command) and the
-- rows the health pipeline derives from the stream (source 'stream', ids derived from their
-- subject and day, upserted only forward by version), so one list shows both.

-- Health score 0..100 of a vehicle (vehicle_id set) or a fleet (vehicle_id NULL: score = the
-- median of its vehicles, the distribution in `distribution`) over a period (a UTC day for
-- streamed rows), with its components and the battery state of health.
CREATE TABLE IF NOT EXISTS analytics_health_scores (
    id             text        PRIMARY KEY,
    fleet_id       text        NOT NULL,
    vehicle_id     text,
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL,
    score          double precision CHECK (score BETWEEN 0 AND 100),
    battery        double precision CHECK (battery BETWEEN 0 AND 100),
    reliability    double precision CHECK (reliability BETWEEN 0 AND 100),
    efficiency     double precision CHECK (efficiency BETWEEN 0 AND 100),
    availability   double precision CHECK (availability BETWEEN 0 AND 100),
    soh_pct        double precision CHECK (soh_pct BETWEEN 0 AND 150),
    soh_stderr_pct double precision CHECK (soh_stderr_pct >= 0),
    distribution   jsonb,
    source         text        NOT NULL DEFAULT 'reported' CHECK (source IN ('stream', 'reported')),
    version        bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analytics_health_scores_period CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS analytics_health_scores_fleet_order ON analytics_health_scores (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS analytics_health_scores_order ON analytics_health_scores (created_at, id);
CREATE INDEX IF NOT EXISTS analytics_health_scores_vehicle ON analytics_health_scores (vehicle_id, period_start);

-- Utilization, efficiency and reliability of a vehicle (or a fleet) over a period.
CREATE TABLE IF NOT EXISTS analytics_efficiency_metrics (
    id                        text        PRIMARY KEY,
    fleet_id                  text        NOT NULL,
    vehicle_id                text,
    period_start              timestamptz NOT NULL,
    period_end                timestamptz NOT NULL,
    distance_km               double precision NOT NULL CHECK (distance_km >= 0),
    energy_kwh                double precision NOT NULL CHECK (energy_kwh >= 0),
    kwh_per_km                double precision CHECK (kwh_per_km >= 0),
    fleet_median_kwh_per_km   double precision CHECK (fleet_median_kwh_per_km >= 0),
    efficiency_ratio          double precision CHECK (efficiency_ratio >= 0),
    operating_hours           double precision NOT NULL CHECK (operating_hours >= 0),
    utilization_pct           double precision CHECK (utilization_pct BETWEEN 0 AND 100),
    availability_pct          double precision CHECK (availability_pct BETWEEN 0 AND 100),
    maintenance_share         double precision CHECK (maintenance_share BETWEEN 0 AND 1),
    faults                    bigint      NOT NULL DEFAULT 0 CHECK (faults >= 0),
    fault_minutes             double precision NOT NULL DEFAULT 0 CHECK (fault_minutes >= 0),
    faults_per_1000_km        double precision CHECK (faults_per_1000_km >= 0),
    faults_per_operating_hour double precision CHECK (faults_per_operating_hour >= 0),
    fault_minutes_per_1000_km double precision CHECK (fault_minutes_per_1000_km >= 0),
    source                    text        NOT NULL DEFAULT 'reported' CHECK (source IN ('stream', 'reported')),
    version                   bigint      NOT NULL DEFAULT 0,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analytics_efficiency_metrics_period CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS analytics_efficiency_metrics_fleet_order ON analytics_efficiency_metrics (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS analytics_efficiency_metrics_order ON analytics_efficiency_metrics (created_at, id);
CREATE INDEX IF NOT EXISTS analytics_efficiency_metrics_vehicle ON analytics_efficiency_metrics (vehicle_id, period_start);

-- A prediction for a vehicle, with the inputs it used and an interval:
-- - failure_risk: `value` = probability of a failure within `horizon_days` after `as_of`,
--   `lower`/`upper` its interval, `alarm` = value ≥ the model's cost-optimal threshold;
-- - soh_threshold: `value` = days from `as_of` until the state of health crosses `threshold`
--   (%), `predicted_at` that date, `lower`/`upper` the days at which the 95 % band crosses it
--   (upper NULL: not within 20 years), `slope_per_month` / `slope_per_1000_km` the trajectory.
-- Streamed rows: the newest prediction per vehicle and kind (id derived from both).
CREATE TABLE IF NOT EXISTS analytics_predictions (
    id                text        PRIMARY KEY,
    fleet_id          text        NOT NULL,
    vehicle_id        text        NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('failure_risk', 'soh_threshold')),
    as_of             timestamptz NOT NULL,
    horizon_days      integer     CHECK (horizon_days > 0),
    value             double precision,
    lower             double precision,
    upper             double precision,
    alarm             boolean,
    threshold         double precision,
    predicted_at      timestamptz,
    slope_per_month   double precision,
    slope_per_1000_km double precision,
    inputs            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    model             text        NOT NULL,
    source            text        NOT NULL DEFAULT 'reported' CHECK (source IN ('stream', 'reported')),
    version           bigint      NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS analytics_predictions_fleet_order ON analytics_predictions (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS analytics_predictions_order ON analytics_predictions (created_at, id);
CREATE INDEX IF NOT EXISTS analytics_predictions_vehicle ON analytics_predictions (vehicle_id, kind);

-- Capacity: vehicles available against the forecast demand of the next hours, per zone of a
-- fleet. Created through the API (status queued) and computed by the engine (running →
-- completed | failed): `hours` = [{zone_id, hour_start, available, demand_mean,
-- demand_planned, shortfall}], summaries beside it.
CREATE TABLE IF NOT EXISTS analytics_capacity_metrics (
    id                 text        PRIMARY KEY,
    fleet_id           text        NOT NULL,
    zone_id            text,
    as_of              timestamptz,
    horizon_hours      integer     NOT NULL DEFAULT 12 CHECK (horizon_hours BETWEEN 1 AND 72),
    demand_quantile    double precision NOT NULL DEFAULT 0.9 CHECK (demand_quantile > 0 AND demand_quantile < 1),
    history_days       integer     NOT NULL DEFAULT 14 CHECK (history_days BETWEEN 1 AND 90),
    status             text        NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    hours              jsonb,
    available_vehicles integer     CHECK (available_vehicles >= 0),
    peak_demand        double precision CHECK (peak_demand >= 0),
    max_shortfall      double precision CHECK (max_shortfall >= 0),
    shortfall_hours    integer     CHECK (shortfall_hours >= 0),
    error              text,
    started_at         timestamptz,
    finished_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS analytics_capacity_metrics_fleet_order ON analytics_capacity_metrics (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS analytics_capacity_metrics_order ON analytics_capacity_metrics (created_at, id);
CREATE INDEX IF NOT EXISTS analytics_capacity_metrics_queued ON analytics_capacity_metrics (created_at, id) WHERE status = 'queued';

-- A trend of a vehicle's (or fleet's) health metric over a period: least-squares slope per day
-- with its standard error, per 1,000 km where it applies, the direction and the value now.
CREATE TABLE IF NOT EXISTS analytics_trends (
    id                text        PRIMARY KEY,
    fleet_id          text        NOT NULL,
    vehicle_id        text,
    metric            text        NOT NULL,
    period_start      timestamptz NOT NULL,
    period_end        timestamptz NOT NULL,
    points            integer     NOT NULL CHECK (points >= 0),
    slope_per_day     double precision,
    slope_se          double precision CHECK (slope_se >= 0),
    slope_per_1000_km double precision,
    direction         text        NOT NULL CHECK (direction IN ('improving', 'stable', 'declining')),
    value_now         double precision,
    source            text        NOT NULL DEFAULT 'reported' CHECK (source IN ('stream', 'reported')),
    version           bigint      NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analytics_trends_period CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS analytics_trends_fleet_order ON analytics_trends (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS analytics_trends_order ON analytics_trends (created_at, id);

-- An analytics report of a fleet over a period; its content is rendered on read
-- (GET …/reports/{id}/content?format=json|csv) from the rows above.
CREATE TABLE IF NOT EXISTS analytics_reports (
    id           text        PRIMARY KEY,
    fleet_id     text        NOT NULL,
    title        text        NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    worst_n      integer     NOT NULL DEFAULT 5 CHECK (worst_n BETWEEN 1 AND 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analytics_reports_period CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS analytics_reports_fleet_order ON analytics_reports (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS analytics_reports_order ON analytics_reports (created_at, id);

-- The health pipeline's closed vehicle-days (its facts, from which each fleet-day's scores
-- are recomputed when another vehicle closes the day) and the version of each fleet-day.
CREATE TABLE IF NOT EXISTS health_vehicle_days (
    fleet_id   text   NOT NULL,
    vehicle_id text   NOT NULL,
    day_ms     bigint NOT NULL,
    facts      jsonb  NOT NULL,
    PRIMARY KEY (fleet_id, day_ms, vehicle_id)
);
CREATE TABLE IF NOT EXISTS health_day_versions (
    fleet_id text   NOT NULL,
    day_ms   bigint NOT NULL,
    version  bigint NOT NULL,
    PRIMARY KEY (fleet_id, day_ms)
);
