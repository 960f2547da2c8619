-- Recommendations are accepted or rejected (`POST …/recommendations/{id}/accept|reject`, commands):
-- an accepted one creates its rebalancing plan; both count towards the run's adoption rate.
ALTER TABLE optimization_recommendations
    ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'issued'
        CHECK (status IN ('issued', 'accepted', 'rejected')),
    ADD COLUMN IF NOT EXISTS decided_at timestamptz,
    ADD COLUMN IF NOT EXISTS decided_by text,
    ADD COLUMN IF NOT EXISTS rebalancing_id text;
