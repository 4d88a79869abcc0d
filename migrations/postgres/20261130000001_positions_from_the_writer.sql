-- Positions become gap-free and are drawn by the writer inside its own transaction.
--
-- The sequence handed out numbers that a rolled-back append burned, so the log had gaps and a
-- reader could not tell a gap from an append still in flight. Now the appender takes the
-- log's transaction-scoped advisory lock, reads the head and numbers its events head+1,
-- head+2, ...; the trigger below checks that numbering (and numbers rows that arrive without
-- a position, e.g. a hand-written INSERT), so no writer can leave a gap or reuse a number.
-- Holding the lock until commit keeps positions in commit order, as before.
DROP TRIGGER events_assign_position ON events;
DROP FUNCTION events_assign_position();
DROP SEQUENCE events_position_seq;

CREATE FUNCTION events_check_position() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    next_position bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7271100001);
    -- Rows inserted earlier by the same statement are visible here, so a multi-row insert is
    -- numbered row by row.
    SELECT coalesce(max(position), 0) + 1 INTO next_position FROM events;
    IF NEW.position IS NULL THEN
        NEW.position := next_position;
    ELSIF NEW.position <> next_position THEN
        RAISE EXCEPTION 'event position % out of order: the log continues at %',
            NEW.position, next_position
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    NEW.recorded_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE TRIGGER events_check_position
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_check_position();

-- One snapshot row per aggregate, replaced in place by the writer that takes it.
CREATE UNIQUE INDEX snapshots_one_per_aggregate ON snapshots (aggregate_type, aggregate_id);

-- Where a settled gateway event landed in the log, so a redelivery is answered from this row
-- alone (one read, nothing written).
ALTER TABLE gateway_events ADD COLUMN position bigint;
