-- How far each partition of the metrics topic has settled fleet windows (every telemetry
-- partition's watermark has passed them; pipelines/src/settle.rs). Written by the alerts
-- pipeline in the transaction that stores the settled windows of federated fleets
-- (alert_fleet_windows); the federation evaluator settles a federation window once every
-- metrics partition has passed it, so all its members' windows are stored.
CREATE TABLE IF NOT EXISTS alert_settle_frontier (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    frontier_ms bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
