-- The console's device list (issue 12): indexes for the Backhaul filters and sorts of GET /v2/devices/
-- (README "API v2 compatibility"), so a list of 100,000 devices pages without scanning them all.

-- Sort by name (the default sort; read in order, the first page of 100,000 devices needs no sort) and
-- by creation time.
CREATE INDEX IF NOT EXISTS devices_name_idx ON devices(name, id);
CREATE INDEX IF NOT EXISTS devices_created_idx ON devices(created_at, id);
-- Filter and sort by when a device was last heard.
CREATE INDEX IF NOT EXISTS device_status_last_com_idx ON device_status(last_com);
-- Filter by state.
CREATE INDEX IF NOT EXISTS devices_state_idx ON devices(state);
-- A device's events (GET /v2/devices/{id}/events) come by registration, newest first:
-- device_events_registration_idx (005) serves them.
-- The deleted devices (GET /v2/deleted-devices/): registrations ended by a deletion, by group.
CREATE INDEX IF NOT EXISTS device_registrations_deleted_idx ON device_registrations(group_id, ended_at DESC)
    WHERE ended_by = 'deleted';
