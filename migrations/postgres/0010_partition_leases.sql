-- Who consumes which partition in manual assignment (kafka.assignment = "manual"): a worker
-- holds a lease per (pipeline, topic, partition), renews it while it runs and deletes it when
-- it stops. A second worker that would consume the same partition finds a live lease and
-- refuses to start; a lease left by a crashed worker expires after kafka.lease_ttl_ms. A
-- checkpoint is saved only while its worker still holds the partition's lease.
CREATE TABLE IF NOT EXISTS partition_leases (
    pipeline    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    owner       text        NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (pipeline, topic, partition)
);
