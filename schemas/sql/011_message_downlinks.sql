-- Downlinks as the API shows them, and the receive windows the downlink gate keeps apart.

-- A grant remembers its uplink's time: two downlinks of a device whose receive windows overlap cannot
-- both be heard (workers/downlink_gate.py refuses the later one with TOO_MANY_REQUESTS).
ALTER TABLE downlink_grants ADD COLUMN IF NOT EXISTS uplink_time bigint;
CREATE INDEX IF NOT EXISTS downlink_grants_device_uplink_idx ON downlink_grants(device_id, uplink_time);

-- One row per uplink whose downlink was granted or decided (store/stage.py), read as the message's
-- downlinkAnswerStatus: the grant (data, or the DIRECT template's source), the transmission (the
-- station chosen, its rssi, the final data), the ACKNOWLEDGE outcome (the first one decided wins).
-- `time` is the uplink's time (retention), `registration_id` its device's registration (purges).
CREATE TABLE IF NOT EXISTS message_downlinks (
    message_id         text PRIMARY KEY,
    device_id          text NOT NULL,
    registration_id    bigint,
    time               bigint NOT NULL,
    source             text,
    data               text,
    station            text,
    rssi               double precision,
    granted_at         bigint,
    left_at            bigint,
    info_code          integer,
    info_message       text,
    downlink_ack       boolean,
    downlink_overusage boolean,
    acknowledged_at    bigint
);
CREATE INDEX IF NOT EXISTS message_downlinks_registration_idx ON message_downlinks(registration_id);
CREATE INDEX IF NOT EXISTS message_downlinks_time_idx ON message_downlinks(time);
