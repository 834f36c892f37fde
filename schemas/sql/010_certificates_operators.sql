-- The registry the operator fills (`backhaul registry load FILE`, oss/registry.py): modem and
-- product certificates, the devices manufactured under a product certificate (id + PAC, before
-- anyone registers them), and the geolocation payload formats groups may use. And the settings of
-- operators: an operator is a group of type 0 (SO); its settings row exists once someone set one
-- (the defaults of what is unset are in oss/storage/operators.py).

CREATE TABLE IF NOT EXISTS certificates (
    id                    text PRIMARY KEY,            -- 24 hex, derived from (kind, key): reloading updates
    kind                  text NOT NULL CHECK (kind IN ('modem', 'product')),
    key                   text NOT NULL,               -- what devices name (`productCertificate.key`)
    name                  text NOT NULL,
    status                int  NOT NULL DEFAULT 1,     -- 0 ongoing, 1 finalized
    version               text,
    description           text,
    manufacturer_id       text,
    manufacturer_name     text,
    modes                 int[] NOT NULL DEFAULT '{}', -- 0 uplink only, 1 uplink and downlink
    input_sensitivity     int,
    radio_configurations  jsonb NOT NULL DEFAULT '[]',
    repeater_function     boolean,                     -- modem certificates
    dev_kit               boolean,                     -- product certificates
    modem_certificate_id  text REFERENCES certificates(id),  -- a product's modem
    external_id           text,
    certificate_code      int,
    certificate_index     int,
    qualification_time    bigint,
    report_number         text,
    encryption_payload    boolean,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, key)
);

-- Devices as their manufacturer declared them: answers /devices/{id}/product-certificate?pac=,
-- and gives a registered device without a productCertificate key its certificate (same id and PAC).
CREATE TABLE IF NOT EXISTS certified_devices (
    device_id               text PRIMARY KEY,          -- upper-case hex
    pac                     text NOT NULL,             -- upper-case hex, 16 characters
    product_certificate_id  text NOT NULL REFERENCES certificates(id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS geoloc_payloads (
    id        text PRIMARY KEY,
    name      text NOT NULL,
    -- offered to this group and the groups below it; NULL: to every group
    group_id  text REFERENCES groups(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS geoloc_payloads_group_idx ON geoloc_payloads(group_id);

CREATE TABLE IF NOT EXISTS operators (
    group_id                  text PRIMARY KEY REFERENCES groups(id) ON DELETE CASCADE,
    auto_close_campaign       boolean,
    transmitter_power         int,                     -- mW
    min_db                    int,                     -- dBm
    max_db                    int,                     -- dBm
    alert_time                int,                     -- s
    request_tracker_base_url  text,
    telecommunication_standard jsonb,                  -- {id, name}
    antenna_model             text,
    warranty_mode             int,                     -- 0 MANUFACTURER, 1 PROVISIONING
    network_type              int,                     -- 0 SNO_PUBLIC .. 3 PILOT_PRIVATE
    last_edited_by            text,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
