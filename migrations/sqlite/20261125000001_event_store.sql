-- The event store: the only write of business state. sqlite-es appends here; every read
-- model is derived from it by global position.
CREATE TABLE events
(
    aggregate_type text    NOT NULL,
    aggregate_id   text    NOT NULL,
    sequence       integer NOT NULL CHECK (sequence >= 0),
    event_type     text    NOT NULL,
    event_version  text    NOT NULL,
    payload        text    NOT NULL,
    metadata       text    NOT NULL,
    -- Assigned by the trigger below. SQLite has one writer at a time, so drawing the next
    -- number inside the inserting transaction follows commit order.
    position       integer UNIQUE,
    recorded_at    text    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- sqlite-es recognises a primary-key violation (and only that) as an optimistic-lock
    -- conflict, so the stream key must stay the primary key.
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;

CREATE TRIGGER events_assign_position
    AFTER INSERT ON events
BEGIN
    UPDATE events
    SET position = (SELECT coalesce(max(position), 0) + 1 FROM events)
    WHERE rowid = NEW.rowid;
END;

-- The log is append-only; the only update allowed is the position assignment above.
CREATE TRIGGER events_append_only_update
    BEFORE UPDATE ON events
    WHEN OLD.position IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed');
END;

CREATE TRIGGER events_append_only_delete
    BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE is not allowed');
END;

CREATE TABLE snapshots
(
    aggregate_type   text    NOT NULL,
    aggregate_id     text    NOT NULL,
    last_sequence    integer NOT NULL CHECK (last_sequence >= 0),
    current_snapshot integer NOT NULL CHECK (current_snapshot >= 0),
    payload          text    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
) STRICT;
