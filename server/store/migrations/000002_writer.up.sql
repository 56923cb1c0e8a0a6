-- One node at a time writes a database: the writer. It holds a
-- session-level advisory lock (keyed on this table's OID, so each schema has
-- its own) and, each time a node takes the role, it increments epoch here.
-- Every read-write transaction of the writer first calls
-- posfleet_fence(its epoch): the call fails once another node has taken
-- over, and its FOR SHARE row lock makes a takeover wait for the writer's
-- transactions in flight, so an old writer can never commit after the new
-- one has started.
CREATE TABLE posfleet_writer (
    id    smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    epoch bigint NOT NULL,
    node  text NOT NULL,
    since timestamptz NOT NULL
);

COMMENT ON TABLE posfleet_writer IS 'posfleet: the node that writes this database and its fencing epoch (see docs/postgresql.md)';

CREATE FUNCTION posfleet_fence(want bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM posfleet_writer WHERE id = 1 AND epoch = want FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'posfleet: writer epoch % is over: another node has taken the writer role', want
            USING ERRCODE = 'PF001';
    END IF;
END
$$;
