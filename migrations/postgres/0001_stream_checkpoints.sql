-- Per-partition operator state checkpointed together with the next offset to read.
-- A row only moves forward: an older owner of the partition can never overwrite a newer one.
CREATE TABLE IF NOT EXISTS stream_checkpoints (
    pipeline    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    state       bytea       NOT NULL,
    state_format smallint   NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, topic, partition)
);
