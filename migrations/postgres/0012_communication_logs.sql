-- Inter-fleet communication (fleet-coordination): one row per message and recipient. The
-- command worker writes `sent`; the coordination relay publishes each undelivered row on
-- topics.coordination (Avro, keyed by the recipient) and sets `delivered_at` once the broker
-- acknowledged it; the recipient's `acknowledge` sets `acknowledged_at`.
CREATE TABLE IF NOT EXISTS communication_logs (
    id               text        PRIMARY KEY,
    federation_id    text        NOT NULL REFERENCES federations (id) ON DELETE CASCADE,
    fleet_id         text        NOT NULL,
    target_fleet_id  text        NOT NULL,
    kind             text        NOT NULL
                     CHECK (kind IN ('resource_offer', 'resource_request', 'handover', 'notice')),
    message_id       text        NOT NULL,
    conversation_id  text        NOT NULL,
    body             jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'sent'
                     CHECK (status IN ('sent', 'delivered', 'acknowledged')),
    sent_at          timestamptz NOT NULL,
    delivered_at     timestamptz,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT communication_logs_distinct CHECK (target_fleet_id <> fleet_id)
);
CREATE INDEX IF NOT EXISTS communication_logs_order ON communication_logs (created_at, id);
CREATE INDEX IF NOT EXISTS communication_logs_fleet_order ON communication_logs (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS communication_logs_target_order ON communication_logs (target_fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS communication_logs_federation_order ON communication_logs (federation_id, created_at, id);
CREATE INDEX IF NOT EXISTS communication_logs_conversation ON communication_logs (conversation_id, created_at, id);
-- The relay's queue: rows not yet on the topic.
CREATE INDEX IF NOT EXISTS communication_logs_undelivered ON communication_logs (created_at, id)
    WHERE delivered_at IS NULL;
