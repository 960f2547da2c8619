-- Zone demand (issue 13): mission requests per origin zone on fleet.mission-events.v1
-- (`requested`, then `assigned` or `expired`) and arrivals (`completed` with the zone the vehicle
-- ended in). The missions pipeline records them here like every mission event and folds them per
-- fleet, zone and bucket into ClickHouse `zone_demand`; the optimization engine forecasts from them.
ALTER TABLE mission_event_log ADD COLUMN IF NOT EXISTS zone_id text;
ALTER TABLE mission_event_log DROP CONSTRAINT IF EXISTS mission_event_log_kind_check;
ALTER TABLE mission_event_log ADD CONSTRAINT mission_event_log_kind_check CHECK (kind IN
    ('created', 'started', 'waypoint_reached', 'completed', 'failed', 'aborted', 'safety_event',
     'requested', 'assigned', 'expired'));
CREATE INDEX IF NOT EXISTS mission_event_log_zone_time
    ON mission_event_log (fleet_id, zone_id, ts_ms) WHERE zone_id IS NOT NULL;

-- The request behind a mission: when it was made and taken, from which zone.
ALTER TABLE mission_runs ADD COLUMN IF NOT EXISTS zone_id text;
ALTER TABLE mission_runs ADD COLUMN IF NOT EXISTS requested_ms bigint;
ALTER TABLE mission_runs ADD COLUMN IF NOT EXISTS assigned_ms bigint;

-- The version of each emitted zone bucket (ClickHouse ReplacingMergeTree(version)).
CREATE TABLE IF NOT EXISTS zone_demand_versions (
    fleet_id        text   NOT NULL,
    zone_id         text   NOT NULL,
    bucket_start_ms bigint NOT NULL,
    version         bigint NOT NULL,
    PRIMARY KEY (fleet_id, zone_id, bucket_start_ms)
);

-- When the request expired untaken (requested / assigned / expired are not mission outcomes).
ALTER TABLE mission_runs ADD COLUMN IF NOT EXISTS expired_ms bigint;
CREATE INDEX IF NOT EXISTS mission_runs_zone_requested
    ON mission_runs (fleet_id, zone_id, requested_ms) WHERE requested_ms IS NOT NULL;
