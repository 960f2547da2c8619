-- Incremental checkpoints (issue 12): a partition's checkpoint is a full state (`state`, named
-- by `base_id`) plus the deltas saved after it, applied in order (`seq` 1..`deltas`). A delta
-- is only appended onto the base it was taken from (a worker that lost the partition cannot
-- extend its successor's checkpoint), and a full save drops the deltas of the base it replaces.
ALTER TABLE stream_checkpoints ADD COLUMN IF NOT EXISTS base_id bigint;
ALTER TABLE stream_checkpoints ADD COLUMN IF NOT EXISTS deltas integer NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS stream_checkpoint_deltas (
    pipeline    text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    seq         integer NOT NULL,
    next_offset bigint  NOT NULL,
    delta       bytea   NOT NULL,
    PRIMARY KEY (pipeline, topic, partition, seq),
    FOREIGN KEY (pipeline, topic, partition)
        REFERENCES stream_checkpoints (pipeline, topic, partition) ON DELETE CASCADE
);
