-- The alert engine (pipelines/src/alerts): rules, one instance per (rule, subject) and the
-- transition history. The alerts pipeline writes instances and transitions idempotently from
-- its checkpointed state, so a replayed batch changes nothing:
--   alert_transitions: INSERT ... ON CONFLICT (dedup_key, seq) DO NOTHING;
--   alert_instances:   upsert guarded by last_transition_seq (an older transition never
--                      overwrites a newer one; operator fields survive the upsert).
-- (perf_alerts in 0004 is the separate, manually created alert resource.)

CREATE TABLE IF NOT EXISTS alert_rules (
    id                 text        PRIMARY KEY,
    -- The owning fleet: fleet rules watch this fleet, vehicle rules its vehicles.
    fleet_id           text        NOT NULL,
    scope              text        NOT NULL CHECK (scope IN ('fleet', 'vehicle', 'federation')),
    federation_id      text,
    metric             text        NOT NULL,
    comparison         text        NOT NULL CHECK (comparison IN ('gt', 'ge', 'lt', 'le')),
    threshold          double precision NOT NULL,
    -- NULL: clears at threshold (no hysteresis band).
    clear_threshold    double precision,
    for_ms             bigint      NOT NULL DEFAULT 0 CHECK (for_ms >= 0),
    keep_firing_for_ms bigint      NOT NULL DEFAULT 0 CHECK (keep_firing_for_ms >= 0),
    -- 0: never re-sent while firing.
    resend_interval_ms bigint      NOT NULL DEFAULT 0 CHECK (resend_interval_ms >= 0),
    severity           text        NOT NULL CHECK (severity IN ('critical', 'error', 'warning', 'info')),
    labels             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    runbook_url        text,
    enabled            boolean     NOT NULL DEFAULT TRUE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_rules_federation CHECK ((scope = 'federation') = (federation_id IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS alert_rules_fleet_order ON alert_rules (fleet_id, created_at, id);

CREATE TABLE IF NOT EXISTS alert_instances (
    -- atlasmesh_core::analytics::alert::dedup_key(rule_id, subject); the alert topic's key.
    dedup_key           text        PRIMARY KEY,
    rule_id             text        NOT NULL,
    subject             text        NOT NULL,
    fleet_id            text        NOT NULL,
    -- cancelled: was pending, the breach did not last `for`.
    status              text        NOT NULL CHECK (status IN ('pending', 'firing', 'resolved', 'cancelled')),
    value               double precision NOT NULL,
    -- Event time: pending/cancelled — when the breach began; firing/resolved — when it fired.
    started_at_ms       bigint      NOT NULL,
    ended_at_ms         bigint,
    last_transition_seq bigint      NOT NULL,
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    -- Who resolved it by hand (API); NULL when the engine resolved it.
    resolved_by         text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_instances_fleet_status ON alert_instances (fleet_id, status, updated_at);
CREATE INDEX IF NOT EXISTS alert_instances_rule ON alert_instances (rule_id);

CREATE TABLE IF NOT EXISTS alert_transitions (
    dedup_key text   NOT NULL,
    -- 1, 2, ... per dedup_key, from the checkpointed state: a replay reproduces the same seq.
    seq       bigint NOT NULL,
    kind      text   NOT NULL CHECK (kind IN ('pending', 'cancelled', 'firing', 'resent', 'resolved')),
    at_ms     bigint NOT NULL,
    rule_id   text   NOT NULL,
    subject   text   NOT NULL,
    fleet_id  text   NOT NULL,
    value     double precision NOT NULL,
    -- The message published on the alert topic (NULL for pending/cancelled, which are not paged).
    message   jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dedup_key, seq)
);
CREATE INDEX IF NOT EXISTS alert_transitions_fleet_time ON alert_transitions (fleet_id, at_ms);
