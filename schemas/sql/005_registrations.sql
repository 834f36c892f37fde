-- A device's history belongs to its registration, not to its radio id.
--
-- Every registration of a device id (its creation, and each transfer to
-- another group) gets a new number from `device_registration_seq`. The
-- pipeline stamps every record with the registration it was made for, the
-- store keeps it on every row, and the API reads a device's history through
-- its current registration only. When a device is deleted, or transferred
-- without keepHistory, its registration is `purged`: its rows are deleted, and
-- rows still in flight that arrive later are never shown (and deleted by the
-- retention loop). So nobody who registers the same id later, in any group,
-- can read the earlier history. See README, "Device history and registrations".

CREATE SEQUENCE IF NOT EXISTS device_registration_seq;

ALTER TABLE devices ADD COLUMN IF NOT EXISTS registration_id bigint NOT NULL
    DEFAULT nextval('device_registration_seq');

CREATE TABLE IF NOT EXISTS device_registrations (
    id           bigint PRIMARY KEY,
    device_id    text NOT NULL,
    group_id     text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    -- 'deleted' or 'transferred'
    ended_by     text,
    -- its history is deleted and never shown again
    purged       boolean NOT NULL DEFAULT false,
    -- keepHistory transfers move the rows to the next registration
    moved_to     bigint
);
CREATE INDEX IF NOT EXISTS device_registrations_device_idx ON device_registrations(device_id);
CREATE INDEX IF NOT EXISTS device_registrations_purged_idx ON device_registrations(id) WHERE purged;

INSERT INTO device_registrations(id, device_id, group_id)
    SELECT registration_id, id, group_id FROM devices ON CONFLICT (id) DO NOTHING;

-- Every code path that creates, re-registers or deletes a device keeps the registrations (API, bulk, seeding).
CREATE OR REPLACE FUNCTION device_registration_track() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO device_registrations(id, device_id, group_id) VALUES (NEW.registration_id, NEW.id, NEW.group_id)
            ON CONFLICT (id) DO NOTHING;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.registration_id <> OLD.registration_id THEN
            UPDATE device_registrations SET ended_at = now(), ended_by = 'transferred' WHERE id = OLD.registration_id;
            INSERT INTO device_registrations(id, device_id, group_id) VALUES (NEW.registration_id, NEW.id, NEW.group_id)
                ON CONFLICT (id) DO NOTHING;
        ELSIF NEW.group_id IS DISTINCT FROM OLD.group_id THEN
            UPDATE device_registrations SET group_id = NEW.group_id WHERE id = NEW.registration_id;
        END IF;
    ELSE
        UPDATE device_registrations SET ended_at = now(), ended_by = 'deleted', purged = true
            WHERE id = OLD.registration_id;
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS devices_registration ON devices;
CREATE TRIGGER devices_registration AFTER INSERT OR UPDATE OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION device_registration_track();

-- The registration on every history row. Rows of devices that exist now are theirs; rows
-- of devices deleted before this migration stay NULL and are never shown.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS registration_id bigint;
ALTER TABLE callback_attempts ADD COLUMN IF NOT EXISTS registration_id bigint;
ALTER TABLE undelivered_callbacks ADD COLUMN IF NOT EXISTS registration_id bigint;
ALTER TABLE device_events ADD COLUMN IF NOT EXISTS registration_id bigint;
ALTER TABLE device_status ADD COLUMN IF NOT EXISTS registration_id bigint;

UPDATE messages m SET registration_id = d.registration_id FROM devices d WHERE d.id = m.device_id;
UPDATE callback_attempts a SET registration_id = d.registration_id FROM devices d WHERE d.id = a.device_id;
UPDATE undelivered_callbacks u SET registration_id = d.registration_id FROM devices d WHERE d.id = u.device_id;
UPDATE device_events e SET registration_id = d.registration_id FROM devices d WHERE d.id = e.device_id;
UPDATE device_status s SET registration_id = d.registration_id FROM devices d WHERE d.id = s.device_id;
DELETE FROM device_status WHERE registration_id IS NULL;

CREATE INDEX IF NOT EXISTS messages_registration_time_idx ON messages(registration_id, time DESC);
CREATE INDEX IF NOT EXISTS callback_attempts_registration_idx ON callback_attempts(registration_id);
CREATE INDEX IF NOT EXISTS undelivered_registration_idx ON undelivered_callbacks(registration_id, time DESC);
CREATE INDEX IF NOT EXISTS device_events_registration_idx ON device_events(registration_id, time DESC);
