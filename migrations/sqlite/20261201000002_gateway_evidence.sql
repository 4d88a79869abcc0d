-- What each gateway money event rests on: the exact bytes the gateway sent (not a lossy
-- string), the headers carrying its signature, the protocol and the fingerprint of the key
-- that verified it (hex SHA-256 of its SubjectPublicKeyInfo DER). A fact the ledger learnt
-- from the gateway's answer to a query rather than a signed notification has no fingerprint:
-- it is marked unsigned. Written in the settlement's transaction, with the events it led to
-- (first_position..last_position). Append-only, like the events.
CREATE TABLE gateway_evidence
(
    id                integer PRIMARY KEY,
    provider          text    NOT NULL,
    event_id          text    NOT NULL,
    protocol          text    NOT NULL,
    body              blob    NOT NULL,
    signature_headers text    NOT NULL,
    key_fingerprint   text CHECK (key_fingerprint IS NULL OR length(key_fingerprint) = 64),
    first_position    integer NOT NULL,
    last_position     integer NOT NULL CHECK (last_position >= first_position),
    received_at       text    NOT NULL
) STRICT;

CREATE INDEX gateway_evidence_by_position ON gateway_evidence (first_position, last_position);

CREATE TRIGGER gateway_evidence_append_only_update
    BEFORE UPDATE ON gateway_evidence
BEGIN
    SELECT RAISE(ABORT, 'gateway evidence is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER gateway_evidence_append_only_delete
    BEFORE DELETE ON gateway_evidence
BEGIN
    SELECT RAISE(ABORT, 'gateway evidence is append-only: DELETE is not allowed');
END;

-- Money events at or below this position were written before evidence was kept; verify
-- does not ask them for any. One row, set when this migration ran, never changed.
CREATE TABLE gateway_evidence_since
(
    singleton      integer PRIMARY KEY CHECK (singleton = 1),
    after_position integer NOT NULL
) STRICT;

INSERT INTO gateway_evidence_since (singleton, after_position)
SELECT 1, coalesce(max(position), 0) FROM events;

CREATE TRIGGER gateway_evidence_since_update
    BEFORE UPDATE ON gateway_evidence_since
BEGIN
    SELECT RAISE(ABORT, 'gateway_evidence_since is fixed');
END;

CREATE TRIGGER gateway_evidence_since_delete
    BEFORE DELETE ON gateway_evidence_since
BEGIN
    SELECT RAISE(ABORT, 'gateway_evidence_since is fixed');
END;
