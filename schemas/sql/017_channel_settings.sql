-- Issue 14: channels beyond HTTP and e-mail (MQTT, KAFKA, later AWS_IOT, KINESIS, SQS, AZURE_IOT_HUB,
-- AZURE_EVENT_HUBS) keep their settings in one object, `channelSettings` in the API. Its secret members
-- (backhaul.callback_secrets.SETTINGS_SECRETS) are not in `channel_settings`: they are in `channel_secrets`
-- (dotted path -> sealed value), as secret headers are in `secret_headers`.
ALTER TABLE callbacks ADD COLUMN IF NOT EXISTS channel_settings jsonb;
ALTER TABLE callbacks ADD COLUMN IF NOT EXISTS channel_secrets jsonb NOT NULL DEFAULT '{}'::jsonb;
