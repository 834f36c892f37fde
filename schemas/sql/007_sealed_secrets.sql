-- Callback secrets sealed at rest (backhaul.callback_secrets, backhaul.secretbox).
-- `url` no longer holds `user:password@`: the userinfo is in `url_credentials`;
-- secret headers (Authorization, API keys, ...) are in `secret_headers`, apart
-- from `headers`; `signing_secret` holds its secret sealed. Every sealed value
-- is a Fernet token made with the operator's key. The values earlier versions
-- stored in clear are sealed by this migration's data step, in Python
-- (backhaul.db.DATA_STEPS), right after this file and in the same transaction.
ALTER TABLE callbacks ADD COLUMN IF NOT EXISTS url_credentials text;
ALTER TABLE callbacks ADD COLUMN IF NOT EXISTS secret_headers jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN callbacks.url_credentials IS 'sealed userinfo (user:password) split off url';
COMMENT ON COLUMN callbacks.secret_headers IS 'header name -> sealed value (backhaul.callback_secrets.is_secret_header)';
COMMENT ON COLUMN callbacks.signing_secret IS 'sealed Standard Webhooks secret (whsec_...); NULL = unsigned';
