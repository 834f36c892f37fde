-- Base stations as the operator's registry (issue 13): who created a station and who edited it last
-- (API user ids; NULL for rows a file import or the demo wrote). `updated_at` (001) is set on every
-- change, so oss.storage.base_stations.coverage_version moves with it.
ALTER TABLE base_stations ADD COLUMN IF NOT EXISTS created_by text;
ALTER TABLE base_stations ADD COLUMN IF NOT EXISTS last_edited_by text;
