-- Rebalancing plans created by accepting a recommendation follow the vehicles that actually
-- moved (the run executor's tracker reads the raw samples in ClickHouse): when the plan was
-- approved, how many vehicles went from its origin to its destination since, and when that
-- reached the planned count (status `executed`).
ALTER TABLE optimization_rebalancing
    ADD COLUMN IF NOT EXISTS approved_at timestamptz,
    ADD COLUMN IF NOT EXISTS moved_vehicles bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS executed_at timestamptz;
