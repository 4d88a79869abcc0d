-- What each gateway money event rests on: the exact bytes the gateway sent (not a lossy
-- string), the headers carrying its signature, the protocol and the fingerprint of the key
-- that verified it (hex SHA-256 of its SubjectPublicKeyInfo DER). A fact the ledger learnt
-- from the gateway's answer to a query rather than a signed notification has no fingerprint:
-- it is marked unsigned. Written in the settlement's transaction, with the events it led to
-- (first_position..last_position). Append-only, like the events.
CREATE TABLE gateway_evidence
(
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider          text   NOT NULL,
    event_id          text   NOT NULL,
    protocol          text   NOT NULL,
    body              bytea  NOT NULL,
    signature_headers text   NOT NULL,
    key_fingerprint   text CHECK (key_fingerprint IS NULL OR key_fingerprint ~ '^[0-9a-f]{64}$'),
    first_position    bigint NOT NULL,
    last_position     bigint NOT NULL CHECK (last_position >= first_position),
    received_at       text   NOT NULL
);

CREATE INDEX gateway_evidence_by_position ON gateway_evidence (first_position, last_position);

CREATE FUNCTION gateway_evidence_reject_rewrite() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'gateway evidence is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER gateway_evidence_append_only
    BEFORE UPDATE OR DELETE ON gateway_evidence
    FOR EACH ROW EXECUTE FUNCTION gateway_evidence_reject_rewrite();

CREATE TRIGGER gateway_evidence_no_truncate
    BEFORE TRUNCATE ON gateway_evidence
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_evidence_reject_rewrite();

-- Money events at or below this position were written before evidence was kept; verify
-- does not ask them for any. One row, set when this migration ran, never changed.
CREATE TABLE gateway_evidence_since
(
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    after_position bigint  NOT NULL
);

INSERT INTO gateway_evidence_since (after_position)
SELECT coalesce(max(position), 0) FROM events;

CREATE TRIGGER gateway_evidence_since_fixed
    BEFORE UPDATE OR DELETE ON gateway_evidence_since
    FOR EACH ROW EXECUTE FUNCTION gateway_evidence_reject_rewrite();
