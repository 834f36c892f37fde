-- Core entities the data path reads (through the config view) and writes.
-- Ids of OSS entities are 24 hex characters, as Sigfox API v2; devices and
-- stations use their radio ids (hex, upper case).

CREATE TABLE IF NOT EXISTS groups (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    description text,
    type        int  NOT NULL DEFAULT 2,
    timezone    text NOT NULL DEFAULT 'UTC',
    parent_id   text REFERENCES groups(id),
    -- ancestors, nearest first (Sigfox `path`); the root has an empty path
    path        text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS groups_parent_idx ON groups(parent_id);
CREATE INDEX IF NOT EXISTS groups_path_idx ON groups USING gin(path);

CREATE TABLE IF NOT EXISTS base_stations (
    id          text PRIMARY KEY,            -- 4 hex
    name        text,
    lat         double precision NOT NULL,
    lng         double precision NOT NULL,
    group_id    text REFERENCES groups(id),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS device_types (
    id                    text PRIMARY KEY,
    name                  text NOT NULL,
    description           text,
    group_id              text NOT NULL REFERENCES groups(id),
    contract_id           text,
    keep_alive            int  NOT NULL DEFAULT 0,     -- seconds, 0 = off
    alert_email           text,
    downlink_mode         int  NOT NULL DEFAULT 2,     -- 0 DIRECT, 1 CALLBACK, 2 NONE, 3 MANAGED
    downlink_data_string  text,
    payload_type          int  NOT NULL DEFAULT 2,     -- 2 regular, 3 custom grammar, 4 geoloc, 5 ASCII
    payload_config        text,
    automatic_renewal     boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS device_types_group_idx ON device_types(group_id);

CREATE TABLE IF NOT EXISTS devices (
    id                     text PRIMARY KEY,           -- 1..8 hex, upper case
    name                   text,
    pac                    text,
    device_type_id         text NOT NULL REFERENCES device_types(id),
    group_id               text NOT NULL REFERENCES groups(id),
    contract_id            text,
    lat                    double precision,
    lng                    double precision,
    prototype              boolean NOT NULL DEFAULT false,
    product_certificate    text,
    state                  int  NOT NULL DEFAULT 0,
    token_state            int  NOT NULL DEFAULT 0,
    token_end              bigint,
    automatic_renewal      boolean NOT NULL DEFAULT true,
    activable              boolean NOT NULL DEFAULT true,
    activation_time        bigint,
    -- set by `disengage`: the stream accepts the next seqNumber whatever it is
    disengaged_at          bigint,
    unsubscription_time    bigint,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS devices_type_idx ON devices(device_type_id);
CREATE INDEX IF NOT EXISTS devices_group_idx ON devices(group_id);

CREATE TABLE IF NOT EXISTS callbacks (
    id               text PRIMARY KEY,
    device_type_id   text NOT NULL REFERENCES device_types(id) ON DELETE CASCADE,
    -- 0 DATA, 1 SERVICE, 2 ERROR (Sigfox `callbackType`)
    callback_type    int  NOT NULL DEFAULT 0,
    -- DATA: 0 UPLINK, 1 BIDIR; SERVICE: 2 STATUS, 3 ACKNOWLEDGE, 4 REPEATER,
    -- 5 DATA_ADVANCED; ERROR: 6 ERROR; 7 EVENT (ours: device events)
    callback_subtype int  NOT NULL DEFAULT 0,
    channel          text NOT NULL DEFAULT 'URL',       -- URL | BATCH_URL | EMAIL
    enabled          boolean NOT NULL DEFAULT true,
    dead             boolean NOT NULL DEFAULT false,
    downlink_hook    boolean NOT NULL DEFAULT false,
    url              text,
    http_method      text,
    headers          jsonb NOT NULL DEFAULT '{}',
    body_template    text,
    content_type     text,
    line_pattern     text,
    send_sni         boolean NOT NULL DEFAULT false,
    recipient        text,
    subject          text,
    message          text,
    payload_config   text,
    retry_schedule   double precision[],               -- seconds; NULL = the Sigfox preset
    signing_secret   text,                             -- Standard Webhooks secret; NULL = unsigned
    rate_per_s       double precision,
    concurrency      int,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS callbacks_type_idx ON callbacks(device_type_id);

-- What the network learns of a device, written by the pipeline in batches
-- (kept apart from `devices` so that radio traffic never churns the config outbox).
CREATE TABLE IF NOT EXISTS device_status (
    device_id              text PRIMARY KEY,
    sequence_number        int,
    trash_sequence_number  int,
    last_com               bigint,
    com_state              int NOT NULL DEFAULT 5,   -- 0 NO, 1 OK, 2 WARN, 3 KO, 4 NA, 5 NOT_SEEN
    missed_periods         int NOT NULL DEFAULT 0,
    lqi                    int NOT NULL DEFAULT 4,
    last_computed_location jsonb,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Messages as the pipeline stores them (one row per (device, seqNumber) message).
CREATE TABLE IF NOT EXISTS messages (
    id             text PRIMARY KEY,
    device_id      text NOT NULL,
    device_type_id text,
    time           bigint NOT NULL,             -- epoch ms of the first frame
    seq_number     int NOT NULL,
    data           text NOT NULL,
    nb_frames      int NOT NULL DEFAULT 1,
    lqi            int,
    ack_required   boolean NOT NULL DEFAULT false,
    oob            boolean NOT NULL DEFAULT false,
    rinfos         jsonb NOT NULL DEFAULT '[]',
    computed_location jsonb,
    over_quota     boolean NOT NULL DEFAULT false,
    stored_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_device_time_idx ON messages(device_id, time DESC);
CREATE INDEX IF NOT EXISTS messages_type_time_idx ON messages(device_type_id, time DESC);

-- One row per delivery attempt of one callback for one message/event.
CREATE TABLE IF NOT EXISTS callback_attempts (
    delivery_id   text NOT NULL,
    attempt       int NOT NULL,
    message_id    text,
    device_id     text,
    callback_id   text NOT NULL,
    time          bigint NOT NULL,             -- epoch ms of the attempt
    status        int NOT NULL,                -- HTTP status, 600 non-HTTP failure
    info          text,
    latency_ms    double precision,
    error_class   text,
    answer        text,
    PRIMARY KEY (delivery_id, attempt)
);
CREATE INDEX IF NOT EXISTS callback_attempts_message_idx ON callback_attempts(message_id);

-- Callbacks whose retries are exhausted (Sigfox "callbacks-not-delivered").
CREATE TABLE IF NOT EXISTS undelivered_callbacks (
    delivery_id    text PRIMARY KEY,
    device_id      text,
    device_type_id text,
    group_id       text,
    callback_id    text NOT NULL,
    message_id     text,
    time           bigint NOT NULL,
    data           text,
    snr            double precision,
    status         int NOT NULL,
    message        text,
    callback       jsonb NOT NULL,
    parameters     jsonb NOT NULL DEFAULT '{}',
    delivery       jsonb NOT NULL,             -- the rendered request, for replay
    replayed_at    timestamptz
);
CREATE INDEX IF NOT EXISTS undelivered_device_idx ON undelivered_callbacks(device_id, time DESC);
CREATE INDEX IF NOT EXISTS undelivered_callback_idx ON undelivered_callbacks(callback_id, time DESC);

-- Deliveries waiting for their next attempt (retries, and deliveries parked
-- while their endpoint is saturated or its circuit is open). Durable, so a
-- waiting retry survives a worker restart; claimed with SKIP LOCKED.
CREATE TABLE IF NOT EXISTS delivery_retries (
    delivery_id    text PRIMARY KEY,
    due_at         timestamptz NOT NULL,
    attempts       int NOT NULL,               -- attempts already made
    delivery       jsonb NOT NULL,
    claimed_until  timestamptz
);
CREATE INDEX IF NOT EXISTS delivery_retries_due_idx ON delivery_retries(due_at);

CREATE TABLE IF NOT EXISTS device_events (
    id          text PRIMARY KEY,
    device_id   text NOT NULL,
    type        text NOT NULL,
    time        bigint NOT NULL,
    body        jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS device_events_device_idx ON device_events(device_id, time DESC);

-- Configuration outbox: every change of an entity the stream needs lands here
-- (by trigger, so no code path can forget it); the relay publishes each row to
-- the compacted `config` topic and deletes it.
CREATE TABLE IF NOT EXISTS config_outbox (
    seq         bigserial PRIMARY KEY,
    key         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION config_outbox_notify() RETURNS trigger AS $$
DECLARE
    entity text := TG_ARGV[0];
    rid text;
BEGIN
    IF TG_OP = 'DELETE' THEN rid := OLD.id; ELSE rid := NEW.id; END IF;
    INSERT INTO config_outbox(key) VALUES (entity || ':' || rid);
    IF TG_OP = 'UPDATE' AND OLD.id <> NEW.id THEN
        INSERT INTO config_outbox(key) VALUES (entity || ':' || OLD.id);
    END IF;
    PERFORM pg_notify('config_outbox', entity || ':' || rid);
    RETURN NULL;
END $$ LANGUAGE plpgsql;

DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('devices','device'), ('device_types','deviceType'),
                                   ('callbacks','callback'), ('base_stations','station'),
                                   ('groups','group')) AS v(tbl, entity) LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I_outbox ON %I', t.tbl, t.tbl);
        EXECUTE format('CREATE TRIGGER %I_outbox AFTER INSERT OR UPDATE OR DELETE ON %I
                        FOR EACH ROW EXECUTE FUNCTION config_outbox_notify(%L)', t.tbl, t.tbl, t.entity);
    END LOOP;
END $$;
