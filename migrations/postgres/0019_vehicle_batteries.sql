-- The nominal battery capacity of each vehicle (kWh, as built): the health pipeline's state of
-- health is the usable capacity it estimates from discharges as a share of it. Vehicles without
-- a row get `health.default_nominal_kwh`, or no state of health.
CREATE TABLE IF NOT EXISTS vehicle_batteries (
    vehicle_id  text             PRIMARY KEY,
    fleet_id    text             NOT NULL,
    nominal_kwh double precision NOT NULL CHECK (nominal_kwh > 0),
    updated_at  timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS vehicle_batteries_fleet ON vehicle_batteries (fleet_id, vehicle_id);
