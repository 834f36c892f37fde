-- Operations support: contracts, API users, users, bulk jobs, and the columns
-- the API needs on the core tables.

ALTER TABLE groups ADD COLUMN IF NOT EXISTS created_by text;
ALTER TABLE device_types ADD COLUMN IF NOT EXISTS created_by text;
ALTER TABLE device_types ADD COLUMN IF NOT EXISTS last_edited_by text;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS created_by text;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS last_edited_by text;
-- set by `disengage`: the stream accepts the next seqNumber whatever it is
ALTER TABLE devices ADD COLUMN IF NOT EXISTS disengaged_at bigint;
CREATE INDEX IF NOT EXISTS devices_contract_idx ON devices(contract_id);
CREATE INDEX IF NOT EXISTS device_types_contract_idx ON device_types(contract_id);
CREATE INDEX IF NOT EXISTS messages_time_idx ON messages(time);
CREATE INDEX IF NOT EXISTS callback_attempts_time_idx ON callback_attempts(time);
CREATE INDEX IF NOT EXISTS undelivered_time_idx ON undelivered_callbacks(time);
CREATE INDEX IF NOT EXISTS undelivered_type_idx ON undelivered_callbacks(device_type_id, time DESC);
CREATE INDEX IF NOT EXISTS undelivered_group_idx ON undelivered_callbacks(group_id, time DESC);
CREATE INDEX IF NOT EXISTS device_events_time_idx ON device_events(time);

-- An order line: the tokens devices take. Tokens in use are counted from the
-- devices; `tokens_used` counts every token ever taken.
CREATE TABLE IF NOT EXISTS contract_infos (
    id                      text PRIMARY KEY,
    name                    text NOT NULL,
    group_id                text NOT NULL REFERENCES groups(id),
    contract_id             text,
    user_id                 text,
    order_id                text NOT NULL,
    order_name              text,
    pricing_model           int NOT NULL DEFAULT 2,
    subscription_plan       int NOT NULL DEFAULT 0,
    start_time              bigint NOT NULL,
    activation_end_time     bigint,
    communication_end_time  bigint,
    timezone                text NOT NULL DEFAULT 'UTC',
    token_duration          int NOT NULL DEFAULT 0,       -- months, 0 = unlimited
    max_tokens              int NOT NULL DEFAULT 0,       -- 0 = unlimited
    tokens_used             int NOT NULL DEFAULT 0,
    bidir                   boolean NOT NULL DEFAULT false,
    high_priority_downlink  boolean NOT NULL DEFAULT false,
    max_uplink_frames       int NOT NULL DEFAULT 140,
    max_downlink_frames     int NOT NULL DEFAULT 4,
    automatic_renewal       boolean NOT NULL DEFAULT true,
    renewal_duration        int NOT NULL DEFAULT 0,
    options                 jsonb NOT NULL DEFAULT '[]',
    blacklisted_territories text[] NOT NULL DEFAULT '{}',
    created_by              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS contract_infos_group_idx ON contract_infos(group_id);

CREATE TABLE IF NOT EXISTS api_users (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    timezone     text NOT NULL DEFAULT 'UTC',
    group_id     text NOT NULL REFERENCES groups(id),
    profile_ids  text[] NOT NULL DEFAULT '{}',
    secret_hash  text NOT NULL,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS api_users_group_idx ON api_users(group_id);

CREATE TABLE IF NOT EXISTS users (
    id               text PRIMARY KEY,
    first_name       text NOT NULL,
    last_name        text NOT NULL,
    email            text NOT NULL,
    timezone         text NOT NULL DEFAULT 'UTC',
    locked           boolean NOT NULL DEFAULT false,
    last_login_time  bigint,
    created_by       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_idx ON users(lower(email));

CREATE TABLE IF NOT EXISTS user_roles (
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id    text NOT NULL REFERENCES groups(id),
    profile_id  text NOT NULL,
    PRIMARY KEY (user_id, group_id, profile_id)
);
CREATE INDEX IF NOT EXISTS user_roles_group_idx ON user_roles(group_id);

-- Asynchronous bulk operations. The input rows are kept so that a job
-- interrupted by a restart resumes where its last committed chunk ended.
CREATE TABLE IF NOT EXISTS bulk_jobs (
    id           text PRIMARY KEY,
    kind         text NOT NULL,
    group_id     text NOT NULL,
    api_user_id  text NOT NULL,
    params       jsonb NOT NULL DEFAULT '{}',
    rows         jsonb NOT NULL DEFAULT '[]',
    total        int NOT NULL,
    processed    int NOT NULL DEFAULT 0,
    success      int NOT NULL DEFAULT 0,
    job_done     boolean NOT NULL DEFAULT false,
    heartbeat    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX IF NOT EXISTS bulk_jobs_pending_idx ON bulk_jobs(job_done) WHERE NOT job_done;

CREATE TABLE IF NOT EXISTS bulk_job_errors (
    job_id   text NOT NULL REFERENCES bulk_jobs(id) ON DELETE CASCADE,
    row      int NOT NULL,
    entity   text,
    field    text,
    message  text NOT NULL,
    type     int NOT NULL DEFAULT 0,       -- 0 ENTITY, 1 SYSTEM
    PRIMARY KEY (job_id, row, message)
);
