-- The hash chain: every event carries SHA-256(previous event's hash || its canonical bytes),
-- computed by the writer under the log lock in the same INSERT (docs/LEDGER_CHAIN.md).
--
-- Rows written before this migration have no hash yet; the first start (or `payledger
-- migrate`) links them once, in position order. That is the only update the log allows: a
-- missing hash may be filled in, nothing else may change.
ALTER TABLE events ADD COLUMN hash bytea CHECK (hash IS NULL OR octet_length(hash) = 32);

CREATE FUNCTION events_reject_update() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF OLD.hash IS NULL AND NEW.hash IS NOT NULL
        AND (NEW.aggregate_type, NEW.aggregate_id, NEW.sequence, NEW.event_type,
             NEW.event_version, NEW.payload, NEW.metadata, NEW.position, NEW.recorded_at)
            IS NOT DISTINCT FROM
            (OLD.aggregate_type, OLD.aggregate_id, OLD.sequence, OLD.event_type,
             OLD.event_version, OLD.payload, OLD.metadata, OLD.position, OLD.recorded_at)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'events are append-only: UPDATE is not allowed'
        USING ERRCODE = 'restrict_violation';
END
$$;

DROP TRIGGER events_append_only ON events;

CREATE TRIGGER events_append_only
    BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_rewrite();

CREATE TRIGGER events_append_only_update
    BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_update();
