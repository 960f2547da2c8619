-- Mission and resource operations as reported on fleet.mission-events.v1 and
-- fleet.resource-events.v1 (pipelines/src/missions, pipelines/src/resources).
-- Every event is recorded once by its event id: a replayed or duplicated event changes nothing.

CREATE TABLE IF NOT EXISTS mission_event_log (
    event_id   text   PRIMARY KEY,
    mission_id text   NOT NULL,
    fleet_id   text   NOT NULL,
    vehicle_id text,
    kind       text   NOT NULL CHECK (kind IN ('created', 'started', 'waypoint_reached', 'completed', 'failed', 'aborted', 'safety_event')),
    ts_ms      bigint NOT NULL,
    severity   text,
    detail     text
);
CREATE INDEX IF NOT EXISTS mission_event_log_fleet_kind_time ON mission_event_log (fleet_id, kind, ts_ms);

-- One row per reported mission. The first end event decides the outcome.
CREATE TABLE IF NOT EXISTS mission_runs (
    mission_id      text    PRIMARY KEY,
    fleet_id        text    NOT NULL,
    vehicle_id      text,
    created_ms      bigint,
    started_ms      bigint,
    ended_ms        bigint,
    outcome         text    CHECK (outcome IN ('completed', 'failed', 'aborted')),
    safety_events   integer NOT NULL DEFAULT 0,
    safety_critical integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mission_runs_fleet_ended ON mission_runs (fleet_id, ended_ms);

-- The version of each emitted mission window (ClickHouse ReplacingMergeTree(version)).
CREATE TABLE IF NOT EXISTS mission_window_versions (
    fleet_id        text   NOT NULL,
    window_start_ms bigint NOT NULL,
    version         bigint NOT NULL,
    PRIMARY KEY (fleet_id, window_start_ms)
);

-- Who occupies each resource now. `vehicle_ids` has more than one entry during a double booking.
CREATE TABLE IF NOT EXISTS resource_occupancy (
    resource_id text     PRIMARY KEY,
    pool_id     text     NOT NULL,
    fleet_id    text     NOT NULL,
    state       text     NOT NULL CHECK (state IN ('occupied', 'free', 'out_of_service')),
    vehicle_ids text[]   NOT NULL DEFAULT '{}',
    since_ms    bigint   NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS resource_occupancy_pool ON resource_occupancy (pool_id);

CREATE TABLE IF NOT EXISTS resource_event_log (
    event_id    text   PRIMARY KEY,
    resource_id text   NOT NULL,
    pool_id     text   NOT NULL,
    fleet_id    text   NOT NULL,
    vehicle_id  text,
    state       text   NOT NULL,
    ts_ms       bigint NOT NULL,
    -- The pool right after this event (the utilization sample written to ClickHouse; a
    -- replayed event re-writes the same sample).
    pool_capacity bigint NOT NULL,
    pool_occupied bigint NOT NULL,
    pool_queued   bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS resource_event_log_pool_time ON resource_event_log (pool_id, ts_ms);
