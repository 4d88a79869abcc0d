-- Leases that let one process at a time run a singleton job. On PostgreSQL the reconciler uses
-- a session advisory lock instead (released by the server if the holder's connection dies);
-- the table exists on both backends so their schemas stay alike.
CREATE TABLE leases
(
    name       text PRIMARY KEY NOT NULL,
    holder     text             NOT NULL,
    expires_at text             NOT NULL
);
