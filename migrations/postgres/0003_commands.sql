-- The command path: every write request of the API is a command on fleet.commands.v1.
-- The API records it as pending (idempotency by actor + key), the command worker applies it
-- exactly once per command_id in one transaction together with its audit row.

CREATE TABLE IF NOT EXISTS command_log (
    command_id      TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    actor           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    aggregate_id    TEXT NOT NULL,
    fleet_scope     TEXT[] NOT NULL,
    payload         JSONB NOT NULL,
    -- sha256 of kind + canonical payload: the same key with another request is a conflict.
    request_hash    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'rejected')),
    reason          TEXT,
    entity_type     TEXT,
    entity_id       TEXT,
    issued_at       TIMESTAMPTZ NOT NULL,
    applied_at      TIMESTAMPTZ,
    source_partition INTEGER,
    source_offset    BIGINT,
    UNIQUE (actor, idempotency_key)
);

CREATE INDEX IF NOT EXISTS command_log_pending ON command_log (issued_at) WHERE status = 'pending';

-- One row per applied or rejected command, written in the command's transaction.
CREATE TABLE IF NOT EXISTS audit_log (
    id          BIGSERIAL PRIMARY KEY,
    command_id  TEXT NOT NULL UNIQUE REFERENCES command_log (command_id),
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    reason      TEXT,
    entity_type TEXT,
    entity_id   TEXT,
    fleet_id    TEXT,
    payload     JSONB NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS audit_log_actor_at ON audit_log (actor, at);
CREATE INDEX IF NOT EXISTS audit_log_fleet_at ON audit_log (fleet_id, at);

-- A single row the command worker rewrites with a synchronous commit before publishing
-- results: commands are applied with synchronous_commit = off, and this write makes every
-- earlier commit durable (the WAL is flushed in order).
CREATE TABLE IF NOT EXISTS command_worker_barrier (
    id  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    at  TIMESTAMPTZ NOT NULL
);
