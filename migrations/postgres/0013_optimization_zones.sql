-- Zones of a fleet's service area (fleet-optimization): the nodes the rebalancing engine moves
-- vehicles between. `neighbours` (a JSON array of zone ids of the same fleet, checked by the
-- command worker) limits where a move from the zone may go; NULL: every zone of the fleet.
CREATE TABLE IF NOT EXISTS optimization_zones (
    id               text        PRIMARY KEY,
    fleet_id         text        NOT NULL,
    name             text        NOT NULL,
    lat              double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon              double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    vehicle_capacity bigint      NOT NULL CHECK (vehicle_capacity >= 0),
    neighbours       jsonb       CHECK (neighbours IS NULL OR jsonb_typeof(neighbours) = 'array'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS optimization_zones_fleet_order ON optimization_zones (fleet_id, created_at, id);
CREATE INDEX IF NOT EXISTS optimization_zones_order ON optimization_zones (created_at, id);
