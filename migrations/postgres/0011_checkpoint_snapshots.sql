-- Checkpoints kept over time, so `atlasmesh reset --pipeline NAME --to-time T` can put a
-- pipeline's state and offsets back to what they were at T, together: each partition's
-- checkpoint is copied here when it is saved and its previous copy is older than
-- runner.snapshot_interval_ms; copies older than runner.snapshot_retention_hours are deleted.
CREATE TABLE IF NOT EXISTS checkpoint_snapshots (
    pipeline    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    taken_at    timestamptz NOT NULL DEFAULT now(),
    next_offset bigint      NOT NULL,
    state       bytea       NOT NULL,
    PRIMARY KEY (pipeline, topic, partition, taken_at)
);
