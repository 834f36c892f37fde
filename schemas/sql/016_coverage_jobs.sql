-- Coverage bulk jobs (POST /v2/coverages/global/predictions/bulk): the request (up to 100,000 locations)
-- and, once computed, the answer per location. A job belongs to the caller's group (another group's
-- caller is answered 404); jobs older than 7 days are purged when a new one is created.
CREATE TABLE IF NOT EXISTS coverage_jobs (
    id          text PRIMARY KEY,
    group_id    text NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
    request     jsonb NOT NULL,          -- {locations, radius, deviceSituation, deviceClassId}
    result      jsonb,                   -- done: [{lat, lng, locationCovered, margins}]; failed: {message}
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);
CREATE INDEX IF NOT EXISTS coverage_jobs_running_idx ON coverage_jobs(created_at) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS coverage_jobs_created_idx ON coverage_jobs(created_at);
