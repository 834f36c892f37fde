-- Downlinks granted to devices, one row per downlink (its id is the uplink's
-- message id), counted per UTC day against the daily quota.
CREATE TABLE IF NOT EXISTS downlink_grants (
    id          text PRIMARY KEY,
    device_id   text NOT NULL,
    day         date NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS downlink_grants_device_day_idx ON downlink_grants(device_id, day);
