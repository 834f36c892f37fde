-- The web console (console/): users' passwords, sessions, invitation and reset links, preferences.

-- A user's console password (argon2id, console/passwords.py); NULL until set through a link or by an
-- admin. terms_accepted_at: the first login asks to accept the terms before anything else.
ALTER TABLE users ADD COLUMN IF NOT EXISTS password_hash text;
ALTER TABLE users ADD COLUMN IF NOT EXISTS password_changed_at bigint;
ALTER TABLE users ADD COLUMN IF NOT EXISTS terms_accepted_at bigint;
-- What the console remembers per user (the device list's columns, ...): {"deviceColumns": [...]}.
ALTER TABLE users ADD COLUMN IF NOT EXISTS console_preferences jsonb NOT NULL DEFAULT '{}';

-- One row per signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
-- read of this table hands no session over. group_id: the group the user works in (one of its roles'
-- groups); csrf: the token every change must carry.
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash  text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id    text NOT NULL,
    csrf        text NOT NULL,
    created_at  bigint NOT NULL,
    last_seen   bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_user_idx ON console_sessions(user_id);

-- Invitation and password-reset links: one use, until expires_at; the SHA-256 of the token only.
CREATE TABLE IF NOT EXISTS console_links (
    token_hash  text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('invite', 'reset')),
    expires_at  bigint NOT NULL,
    used_at     bigint
);
