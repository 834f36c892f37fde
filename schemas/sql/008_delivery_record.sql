-- Every send on the record, and why a delivery waits (workers/delivery.py, store/stage.py).

-- One row per request sent (announced before it goes: status NULL until its answer is recorded),
-- keyed by the send's id; `attempt` is the row's order among the delivery's sends.
ALTER TABLE callback_attempts ADD COLUMN IF NOT EXISTS send_id text;
UPDATE callback_attempts SET send_id = delivery_id || '#' || attempt WHERE send_id IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS callback_attempts_send_idx ON callback_attempts(send_id);
ALTER TABLE callback_attempts ALTER COLUMN status DROP NOT NULL;

-- A waiting delivery says for which endpoint, which message, and why (shown in cbStatus).
ALTER TABLE delivery_retries
    ADD COLUMN IF NOT EXISTS endpoint text,
    ADD COLUMN IF NOT EXISTS callback_id text,
    ADD COLUMN IF NOT EXISTS message_id text,
    ADD COLUMN IF NOT EXISTS registration_id bigint,
    ADD COLUMN IF NOT EXISTS message_time bigint,
    ADD COLUMN IF NOT EXISTS reason text,
    ADD COLUMN IF NOT EXISTS info text,
    ADD COLUMN IF NOT EXISTS waiting_since bigint;
UPDATE delivery_retries SET callback_id = delivery->>'callbackId', message_id = delivery->>'messageId',
    registration_id = (delivery->>'registrationId')::bigint,
    message_time = COALESCE(delivery->>'messageTime', delivery->>'origin')::numeric::bigint,
    reason = 'retry', info = 'waiting: next try at ' || to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    waiting_since = (extract(epoch FROM now()) * 1000)::bigint
WHERE message_id IS NULL AND reason IS NULL;
CREATE INDEX IF NOT EXISTS delivery_retries_message_idx ON delivery_retries(message_id);
CREATE INDEX IF NOT EXISTS delivery_retries_endpoint_idx ON delivery_retries(endpoint, message_time);

-- When each callback last had a delivery succeed: decides `callbacks.dead` (store/stage.py).
CREATE TABLE IF NOT EXISTS callback_health (
    callback_id      text PRIMARY KEY,
    last_success_at  bigint NOT NULL            -- epoch ms of the successful request
);
