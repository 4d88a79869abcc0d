-- Leases that let one process at a time run a singleton job (the reconciler). A lease is taken
-- by updating its row only when the current one has run out, so two takers cannot both win;
-- an abandoned lease (a crashed holder) simply expires. Times are RFC 3339 UTC text, which
-- sorts in time order.
CREATE TABLE leases
(
    name       text PRIMARY KEY NOT NULL,
    holder     text             NOT NULL,
    expires_at text             NOT NULL
);
