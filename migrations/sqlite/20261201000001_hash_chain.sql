-- The hash chain: every event carries SHA-256(previous event's hash || its canonical bytes),
-- computed by the writer in the same INSERT (docs/LEDGER_CHAIN.md).
--
-- Rows written before this migration have no hash yet; the first start (or `payledger
-- migrate`) links them once, in position order. That is the only update the log allows: a
-- missing hash may be filled in, nothing else may change.
ALTER TABLE events ADD COLUMN hash blob CHECK (hash IS NULL OR length(hash) = 32);

DROP TRIGGER events_append_only_update;

CREATE TRIGGER events_append_only_update
    BEFORE UPDATE ON events
    WHEN NOT (OLD.hash IS NULL AND NEW.hash IS NOT NULL
        AND NEW.aggregate_type IS OLD.aggregate_type AND NEW.aggregate_id IS OLD.aggregate_id
        AND NEW.sequence IS OLD.sequence AND NEW.event_type IS OLD.event_type
        AND NEW.event_version IS OLD.event_version AND NEW.payload IS OLD.payload
        AND NEW.metadata IS OLD.metadata AND NEW.position IS OLD.position
        AND NEW.recorded_at IS OLD.recorded_at)
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed');
END;
