-- The command-driven domain (atlasmesh_core::domain): one table per resource. Written only by
-- the command worker (atlasmesh_sinks::store::apply), read by the API with the caller's scope in
-- every statement. Common columns: id (derived from the command id), the owning fleet_id (or
-- federation), created_at / updated_at (the issuing command's time). Lists are keyset-paginated
-- in the order (created_at, id), hence the (scope, created_at, id) indexes.

-- ------------------------------------------------------------------ fleet-performance

CREATE TABLE IF NOT EXISTS perf_benchmarks (
    id               text        PRIMARY KEY,
    fleet_id         text        NOT NULL,
    name             text        NOT NULL,
    metric           text        NOT NULL,
    target_value     double precision NOT NULL,
    higher_is_better boolean     NOT NULL,
    description      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT perf_benchmarks_name_unique UNIQUE (fleet_id, name)
);
CREATE INDEX IF NOT EXISTS perf_benchmarks_fleet_order ON perf_benchmarks (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS perf_benchmarks_order ON perf_benchmarks (created_at, id);

CREATE TABLE IF NOT EXISTS perf_scores (
    id           text        PRIMARY KEY,
    fleet_id     text        NOT NULL,
    vehicle_id   text,
    benchmark_id text        REFERENCES perf_benchmarks (id) ON DELETE SET NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    efficiency   double precision NOT NULL CHECK (efficiency BETWEEN 0 AND 100),
    utilization  double precision NOT NULL CHECK (utilization BETWEEN 0 AND 100),
    reliability  double precision NOT NULL CHECK (reliability BETWEEN 0 AND 100),
    safety       double precision NOT NULL CHECK (safety BETWEEN 0 AND 100),
    cost         double precision NOT NULL CHECK (cost BETWEEN 0 AND 100),
    overall      double precision NOT NULL CHECK (overall BETWEEN 0 AND 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT perf_scores_period CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS perf_scores_fleet_order ON perf_scores (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS perf_scores_order ON perf_scores (created_at, id);
CREATE INDEX IF NOT EXISTS perf_scores_period ON perf_scores (fleet_id, period_start);

CREATE TABLE IF NOT EXISTS perf_metrics (
    id           text        PRIMARY KEY,
    fleet_id     text        NOT NULL,
    vehicle_id   text,
    metric       text        NOT NULL,
    value        double precision NOT NULL,
    unit         text,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT perf_metrics_period CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS perf_metrics_fleet_order ON perf_metrics (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS perf_metrics_order ON perf_metrics (created_at, id);
CREATE INDEX IF NOT EXISTS perf_metrics_period ON perf_metrics (fleet_id, period_start);

CREATE TABLE IF NOT EXISTS perf_reports (
    id           text        PRIMARY KEY,
    fleet_id     text        NOT NULL,
    title        text        NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    summary      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT perf_reports_period CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS perf_reports_fleet_order ON perf_reports (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS perf_reports_order ON perf_reports (created_at, id);

CREATE TABLE IF NOT EXISTS perf_alerts (
    id              text        PRIMARY KEY,
    fleet_id        text        NOT NULL,
    vehicle_id      text,
    metric          text,
    severity        text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message         text        NOT NULL,
    value           double precision,
    threshold       double precision,
    status          text        NOT NULL DEFAULT 'firing' CHECK (status IN ('firing', 'resolved')),
    resolved_at     timestamptz,
    resolved_by     text,
    resolution_note text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT perf_alerts_resolved CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS perf_alerts_fleet_order ON perf_alerts (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS perf_alerts_order ON perf_alerts (created_at, id);
CREATE INDEX IF NOT EXISTS perf_alerts_status ON perf_alerts (status, created_at, id);

CREATE TABLE IF NOT EXISTS perf_trends (
    id           text        PRIMARY KEY,
    fleet_id     text        NOT NULL,
    metric       text        NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    samples      double precision[] NOT NULL CHECK (cardinality(samples) >= 2),
    slope        double precision NOT NULL,
    direction    text        NOT NULL CHECK (direction IN ('up', 'down', 'flat')),
    change_pct   double precision,
    forecast     double precision NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT perf_trends_period CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS perf_trends_fleet_order ON perf_trends (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS perf_trends_order ON perf_trends (created_at, id);

-- ------------------------------------------------------------------ fleet-resources

CREATE TABLE IF NOT EXISTS resource_pools (
    id            text        PRIMARY KEY,
    fleet_id      text        NOT NULL,
    name          text        NOT NULL,
    resource_type text        NOT NULL,
    capacity      bigint      NOT NULL CHECK (capacity >= 0),
    -- Sum of the pool's allocation amounts; may exceed capacity only after a capacity cut
    -- (which raises an over_allocation conflict).
    allocated     bigint      NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS resource_pools_fleet_order ON resource_pools (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS resource_pools_order ON resource_pools (created_at, id);

CREATE TABLE IF NOT EXISTS resource_requests (
    id            text        PRIMARY KEY,
    fleet_id      text        NOT NULL,
    pool_id       text        NOT NULL REFERENCES resource_pools (id) ON DELETE CASCADE,
    amount        bigint      NOT NULL CHECK (amount > 0),
    priority      integer     NOT NULL CHECK (priority BETWEEN 0 AND 1000),
    holder        text        NOT NULL,
    resource_id   text,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz,
    status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'fulfilled', 'cancelled')),
    allocation_id text,
    fulfilled_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT resource_requests_range CHECK (ends_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX IF NOT EXISTS resource_requests_fleet_order ON resource_requests (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS resource_requests_order ON resource_requests (created_at, id);
-- The queue of a pool in serving order.
CREATE INDEX IF NOT EXISTS resource_requests_queue ON resource_requests (pool_id, priority DESC, created_at, id)
    WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS resource_allocations (
    id          text        PRIMARY KEY,
    fleet_id    text        NOT NULL,
    pool_id     text        NOT NULL REFERENCES resource_pools (id) ON DELETE RESTRICT,
    amount      bigint      NOT NULL CHECK (amount > 0),
    holder      text        NOT NULL,
    resource_id text,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz,
    request_id  text        REFERENCES resource_requests (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT resource_allocations_range CHECK (ends_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX IF NOT EXISTS resource_allocations_fleet_order ON resource_allocations (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS resource_allocations_order ON resource_allocations (created_at, id);
CREATE INDEX IF NOT EXISTS resource_allocations_pool ON resource_allocations (pool_id, resource_id);

CREATE TABLE IF NOT EXISTS resource_utilization (
    id          text        PRIMARY KEY,
    fleet_id    text        NOT NULL,
    pool_id     text        NOT NULL REFERENCES resource_pools (id) ON DELETE CASCADE,
    measured_at timestamptz NOT NULL,
    in_use      bigint      NOT NULL CHECK (in_use >= 0),
    capacity    bigint      NOT NULL CHECK (capacity >= 0),
    utilization double precision CHECK (utilization >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS resource_utilization_fleet_order ON resource_utilization (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS resource_utilization_order ON resource_utilization (created_at, id);
CREATE INDEX IF NOT EXISTS resource_utilization_pool ON resource_utilization (pool_id, created_at, id);

CREATE TABLE IF NOT EXISTS resource_plans (
    id               text        PRIMARY KEY,
    fleet_id         text        NOT NULL,
    pool_id          text        REFERENCES resource_pools (id) ON DELETE SET NULL,
    name             text        NOT NULL,
    horizon_start    timestamptz NOT NULL,
    horizon_end      timestamptz NOT NULL,
    planned_capacity bigint      NOT NULL CHECK (planned_capacity >= 0),
    expected_demand  bigint      NOT NULL CHECK (expected_demand >= 0),
    notes            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT resource_plans_horizon CHECK (horizon_end > horizon_start)
);
CREATE INDEX IF NOT EXISTS resource_plans_fleet_order ON resource_plans (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS resource_plans_order ON resource_plans (created_at, id);

CREATE TABLE IF NOT EXISTS resource_conflicts (
    id             text        PRIMARY KEY,
    fleet_id       text        NOT NULL,
    pool_id        text        NOT NULL REFERENCES resource_pools (id) ON DELETE CASCADE,
    kind           text        NOT NULL CHECK (kind IN ('double_booking', 'over_allocation', 'other')),
    resource_id    text,
    allocation_ids text[]      NOT NULL DEFAULT '{}',
    description    text        NOT NULL,
    status         text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolution     text,
    resolved_at    timestamptz,
    resolved_by    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT resource_conflicts_resolved CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS resource_conflicts_fleet_order ON resource_conflicts (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS resource_conflicts_order ON resource_conflicts (created_at, id);
CREATE INDEX IF NOT EXISTS resource_conflicts_pool ON resource_conflicts (pool_id, status);

-- ------------------------------------------------------------------ fleet-coordination

CREATE TABLE IF NOT EXISTS federations (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS federations_order ON federations (created_at, id);

CREATE TABLE IF NOT EXISTS federation_members (
    id            text        PRIMARY KEY,
    federation_id text        NOT NULL REFERENCES federations (id) ON DELETE CASCADE,
    fleet_id      text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('member', 'coordinator')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT federation_members_unique UNIQUE (federation_id, fleet_id)
);
CREATE INDEX IF NOT EXISTS federation_members_order ON federation_members (federation_id, created_at, id);
CREATE INDEX IF NOT EXISTS federation_members_fleet ON federation_members (fleet_id, federation_id);

CREATE TABLE IF NOT EXISTS resource_shares (
    id              text        PRIMARY KEY,
    fleet_id        text        NOT NULL,
    target_fleet_id text        NOT NULL,
    pool_id         text        NOT NULL REFERENCES resource_pools (id) ON DELETE CASCADE,
    amount          bigint      NOT NULL CHECK (amount > 0),
    federation_id   text        REFERENCES federations (id) ON DELETE SET NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT resource_shares_distinct CHECK (target_fleet_id <> fleet_id),
    CONSTRAINT resource_shares_range CHECK (ends_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX IF NOT EXISTS resource_shares_fleet_order ON resource_shares (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS resource_shares_target_order ON resource_shares (target_fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS resource_shares_order ON resource_shares (created_at, id);

CREATE TABLE IF NOT EXISTS federation_metrics (
    id            text        PRIMARY KEY,
    federation_id text        NOT NULL REFERENCES federations (id) ON DELETE CASCADE,
    metric        text        NOT NULL,
    value         double precision NOT NULL,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT federation_metrics_period CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS federation_metrics_order ON federation_metrics (federation_id, created_at, id);

-- ------------------------------------------------------------------ fleet-optimization

CREATE TABLE IF NOT EXISTS optimization_runs (
    id                text        PRIMARY KEY,
    fleet_id          text        NOT NULL,
    name              text        NOT NULL,
    cost_weight       double precision NOT NULL CHECK (cost_weight BETWEEN 0 AND 1),
    efficiency_weight double precision NOT NULL CHECK (efficiency_weight BETWEEN 0 AND 1),
    coverage_weight   double precision NOT NULL CHECK (coverage_weight BETWEEN 0 AND 1),
    parameters        jsonb,
    status            text        NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    started_at        timestamptz,
    finished_at       timestamptz,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT optimization_runs_weights CHECK (cost_weight + efficiency_weight + coverage_weight > 0)
);
CREATE INDEX IF NOT EXISTS optimization_runs_fleet_order ON optimization_runs (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS optimization_runs_order ON optimization_runs (created_at, id);

CREATE TABLE IF NOT EXISTS optimization_rebalancing (
    id            text        PRIMARY KEY,
    fleet_id      text        NOT NULL,
    run_id        text        REFERENCES optimization_runs (id) ON DELETE SET NULL,
    from_zone     text        NOT NULL,
    to_zone       text        NOT NULL,
    vehicle_count bigint      NOT NULL CHECK (vehicle_count > 0),
    reason        text,
    status        text        NOT NULL DEFAULT 'proposed'
                  CHECK (status IN ('proposed', 'approved', 'executed', 'rejected')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT optimization_rebalancing_zones CHECK (from_zone <> to_zone)
);
CREATE INDEX IF NOT EXISTS optimization_rebalancing_fleet_order ON optimization_rebalancing (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS optimization_rebalancing_order ON optimization_rebalancing (created_at, id);

CREATE TABLE IF NOT EXISTS optimization_results (
    id         text        PRIMARY KEY,
    fleet_id   text        NOT NULL,
    run_id     text        NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
    cost       double precision NOT NULL CHECK (cost BETWEEN 0 AND 1),
    efficiency double precision NOT NULL CHECK (efficiency BETWEEN 0 AND 1),
    coverage   double precision NOT NULL CHECK (coverage BETWEEN 0 AND 1),
    details    jsonb,
    score      double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS optimization_results_fleet_order ON optimization_results (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS optimization_results_order ON optimization_results (created_at, id);
CREATE INDEX IF NOT EXISTS optimization_results_run ON optimization_results (run_id, created_at, id);

CREATE TABLE IF NOT EXISTS optimization_recommendations (
    id            text        PRIMARY KEY,
    fleet_id      text        NOT NULL,
    run_id        text        NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
    action        text        NOT NULL,
    priority      integer     NOT NULL CHECK (priority BETWEEN 0 AND 100),
    expected_gain double precision NOT NULL,
    details       jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS optimization_recommendations_fleet_order ON optimization_recommendations (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS optimization_recommendations_order ON optimization_recommendations (created_at, id);

CREATE TABLE IF NOT EXISTS optimization_metrics (
    id         text        PRIMARY KEY,
    fleet_id   text        NOT NULL,
    run_id     text        REFERENCES optimization_runs (id) ON DELETE SET NULL,
    metric     text        NOT NULL,
    value      double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS optimization_metrics_fleet_order ON optimization_metrics (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS optimization_metrics_order ON optimization_metrics (created_at, id);

-- ------------------------------------------------------------------ missions

CREATE TABLE IF NOT EXISTS mission_templates (
    id                   text        PRIMARY KEY,
    fleet_id             text        NOT NULL,
    name                 text        NOT NULL,
    description          text,
    steps                text[]      NOT NULL CHECK (cardinality(steps) >= 1),
    estimated_duration_s bigint      NOT NULL CHECK (estimated_duration_s > 0),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mission_templates_fleet_order ON mission_templates (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS mission_templates_order ON mission_templates (created_at, id);

CREATE TABLE IF NOT EXISTS mission_executions (
    id            text        PRIMARY KEY,
    fleet_id      text        NOT NULL,
    template_id   text        REFERENCES mission_templates (id) ON DELETE SET NULL,
    vehicle_id    text        NOT NULL,
    scheduled_for timestamptz,
    status        text        NOT NULL DEFAULT 'scheduled'
                  CHECK (status IN ('scheduled', 'running', 'completed', 'failed', 'aborted')),
    started_at    timestamptz,
    completed_at  timestamptz,
    note          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT mission_executions_started CHECK (status = 'scheduled' OR status = 'aborted' OR started_at IS NOT NULL),
    CONSTRAINT mission_executions_completed
        CHECK ((status IN ('completed', 'failed', 'aborted')) = (completed_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS mission_executions_fleet_order ON mission_executions (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS mission_executions_order ON mission_executions (created_at, id);

CREATE TABLE IF NOT EXISTS mission_dependencies (
    id            text        PRIMARY KEY,
    fleet_id      text        NOT NULL,
    execution_id  text        NOT NULL REFERENCES mission_executions (id) ON DELETE CASCADE,
    depends_on_id text        NOT NULL REFERENCES mission_executions (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT mission_dependencies_unique UNIQUE (execution_id, depends_on_id),
    CONSTRAINT mission_dependencies_self CHECK (execution_id <> depends_on_id)
);
CREATE INDEX IF NOT EXISTS mission_dependencies_fleet_order ON mission_dependencies (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS mission_dependencies_order ON mission_dependencies (created_at, id);

CREATE TABLE IF NOT EXISTS mission_logs (
    id           text        PRIMARY KEY,
    fleet_id     text        NOT NULL,
    execution_id text        NOT NULL REFERENCES mission_executions (id) ON DELETE CASCADE,
    level        text        NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message      text        NOT NULL,
    logged_at    timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mission_logs_fleet_order ON mission_logs (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS mission_logs_order ON mission_logs (created_at, id);
CREATE INDEX IF NOT EXISTS mission_logs_execution ON mission_logs (execution_id, created_at, id);

CREATE TABLE IF NOT EXISTS mission_metrics (
    id           text        PRIMARY KEY,
    fleet_id     text        NOT NULL,
    execution_id text        NOT NULL REFERENCES mission_executions (id) ON DELETE CASCADE,
    metric       text        NOT NULL,
    value        double precision NOT NULL,
    unit         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mission_metrics_fleet_order ON mission_metrics (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS mission_metrics_order ON mission_metrics (created_at, id);

CREATE TABLE IF NOT EXISTS mission_safety_events (
    id           text        PRIMARY KEY,
    fleet_id     text        NOT NULL,
    execution_id text        REFERENCES mission_executions (id) ON DELETE SET NULL,
    vehicle_id   text        NOT NULL,
    severity     text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    kind         text        NOT NULL,
    description  text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    status       text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolution   text,
    resolved_at  timestamptz,
    resolved_by  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT mission_safety_events_resolved CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS mission_safety_events_fleet_order ON mission_safety_events (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS mission_safety_events_order ON mission_safety_events (created_at, id);
