-- API keys of the query API. Only the SHA-256 of a key is stored (hex); the plaintext
-- (`amk_<random>`) is shown once when the key is created. key_prefix is its first 12 characters
-- (`amk_` + 8), kept to recognise a key in listings. A revoked key stays for the audit trail.
CREATE TABLE IF NOT EXISTS api_keys (
    id           text        PRIMARY KEY,
    name         text        NOT NULL UNIQUE,
    key_prefix   text        NOT NULL,
    key_hash     text        NOT NULL UNIQUE,
    role         text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    fleets       text[]      NOT NULL DEFAULT '{}',
    federations  text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz NULL,
    last_used_at timestamptz NULL
);
