-- Positions are drawn by the writer inside its own (immediate, so exclusive) transaction:
-- it reads the head and numbers its events head+1, head+2, ... . The trigger checks that
-- numbering, so no writer can leave a gap or reuse a number; SQLite's single writer keeps
-- positions in commit order.
DROP TRIGGER events_assign_position;
DROP TRIGGER events_append_only_update;

CREATE TRIGGER events_check_position
    BEFORE INSERT ON events
    WHEN NEW.position IS NULL
      OR NEW.position <> (SELECT coalesce(max(position), 0) + 1 FROM events)
BEGIN
    SELECT RAISE(ABORT, 'event position out of order: the log continues at max(position) + 1');
END;

-- The log is append-only: no update at all now that positions arrive with the row.
CREATE TRIGGER events_append_only_update
    BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed');
END;

CREATE UNIQUE INDEX snapshots_one_per_aggregate ON snapshots (aggregate_type, aggregate_id);

ALTER TABLE gateway_events ADD COLUMN position integer;
