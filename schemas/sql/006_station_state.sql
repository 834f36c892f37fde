-- Only frames from registered, enabled stations are accepted (ingest rejects the others with
-- `station.unknown` or `station.disabled`). A planned station is registered but not enabled.
ALTER TABLE base_stations ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'enabled';
DO $$ BEGIN
    ALTER TABLE base_stations ADD CONSTRAINT base_stations_state_check
        CHECK (state IN ('enabled', 'disabled', 'planned'));
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
