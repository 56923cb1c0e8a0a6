-- posfleet keeps every domain's records in one table of keys and values,
-- as it does in Badger: keys are the domains' byte keys (ordered bytewise,
-- as bytea compares), values their records (JSON where the domain encodes
-- JSON). expires_at is set for records written with a TTL; reads ignore a
-- row from that second on, and a sweep deletes it.
CREATE TABLE posfleet_kv (
    key        bytea PRIMARY KEY,
    value      bytea NOT NULL,
    expires_at timestamptz
);

CREATE INDEX posfleet_kv_expires_at ON posfleet_kv (expires_at) WHERE expires_at IS NOT NULL;

COMMENT ON TABLE posfleet_kv IS 'posfleet records: the domains'' keys and values (see docs/postgresql.md)';
