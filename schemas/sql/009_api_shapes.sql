-- API v2 shapes (issue 16): every device has a PAC, every contract says who last edited it.

-- A device registered outside the API (the demo's seeding, older rows) gets a PAC of 16 random hex
-- digits: the device model always has one, and a PAC is what another backend asks for to take it.
ALTER TABLE devices ALTER COLUMN pac SET DEFAULT upper(substr(md5(gen_random_uuid()::text), 1, 16));
UPDATE devices SET pac = upper(substr(md5(gen_random_uuid()::text), 1, 16)) WHERE pac IS NULL;
ALTER TABLE devices ALTER COLUMN pac SET NOT NULL;

ALTER TABLE contract_infos ADD COLUMN IF NOT EXISTS last_edited_by text;
UPDATE contract_infos SET last_edited_by = created_by WHERE last_edited_by IS NULL;
