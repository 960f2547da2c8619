-- Alerting through the API and federation rules (atlasmesh_core::domain::alerting,
-- pipelines/src/alerts). Every statement is idempotent.

-- alert_instances becomes a resource of the generic layer: an `id` (the dedup key) and a
-- `created_at` for the stable list order (created_at, id), plus the operator's resolve.
ALTER TABLE alert_instances ADD COLUMN IF NOT EXISTS id text GENERATED ALWAYS AS (dedup_key) STORED;
ALTER TABLE alert_instances ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE alert_instances ADD COLUMN IF NOT EXISTS resolved_at timestamptz;
ALTER TABLE alert_instances ADD COLUMN IF NOT EXISTS resolution_note text;
-- Set by the engine when it published the resolve of a manual resolve: the seq of that
-- transition. NULL while the engine has not acted on `resolved_by` yet (or for engine resolves).
ALTER TABLE alert_instances ADD COLUMN IF NOT EXISTS manual_resolve_seq bigint;
CREATE UNIQUE INDEX IF NOT EXISTS alert_instances_id ON alert_instances (id);
CREATE INDEX IF NOT EXISTS alert_instances_fleet_order ON alert_instances (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS alert_instances_order ON alert_instances (created_at, id);
-- The manual resolves the engine still has to publish (read on every rules refresh).
CREATE INDEX IF NOT EXISTS alert_instances_manual ON alert_instances (updated_at)
    WHERE resolved_by IS NOT NULL AND status = 'resolved';

CREATE INDEX IF NOT EXISTS alert_rules_order ON alert_rules (created_at, id);

-- Settled fleet windows of fleets that are members of a federation with a federation rule,
-- written by the alerts pipeline's flush (ON CONFLICT DO NOTHING: a settled window is final).
-- `counters` is atlasmesh_core::window::Counters as JSON.
CREATE TABLE IF NOT EXISTS alert_fleet_windows (
    fleet_id        text        NOT NULL,
    window_start_ms bigint      NOT NULL,
    window_end_ms   bigint      NOT NULL,
    counters        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fleet_id, window_start_ms)
);
CREATE INDEX IF NOT EXISTS alert_fleet_windows_recorded ON alert_fleet_windows (recorded_at);

-- The state machine of one federation rule for one federation, written in the same
-- transaction as its transitions (so each transition is recorded exactly once).
CREATE TABLE IF NOT EXISTS alert_federation_state (
    rule_id            text        NOT NULL,
    federation_id      text        NOT NULL,
    -- atlasmesh_core::analytics::alert::AlertState as JSON.
    state              jsonb       NOT NULL,
    seq                bigint      NOT NULL,
    -- End of the last evaluated federation window (event time).
    clock_ms           bigint,
    -- Start of the last settled federation window: windows up to it are never evaluated again.
    settled_through_ms bigint,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, federation_id)
);
