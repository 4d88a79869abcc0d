-- The inbox keeps every webhook body as the exact bytes received, like the evidence: a body
-- that is not valid UTF-8, or holds a NUL, must come back byte for byte. SQLite cannot change
-- a column's type, so the table is copied; bodies kept so far were text, and their UTF-8
-- encoding is their bytes.
CREATE TABLE gateway_events_bytes
(
    provider    text    NOT NULL,
    event_id    text    NOT NULL,
    event_type  text    NOT NULL,
    order_id    text,
    outcome     text    NOT NULL,
    body        blob    NOT NULL,
    received_at text    NOT NULL,
    updated_at  text    NOT NULL,
    deliveries  integer NOT NULL,
    position    integer,
    PRIMARY KEY (provider, event_id)
);

INSERT INTO gateway_events_bytes (provider, event_id, event_type, order_id, outcome, body,
                                  received_at, updated_at, deliveries, position)
SELECT provider, event_id, event_type, order_id, outcome, CAST(body AS blob), received_at,
       updated_at, deliveries, position
FROM gateway_events;

DROP TABLE gateway_events;
ALTER TABLE gateway_events_bytes RENAME TO gateway_events;
CREATE INDEX gateway_events_by_outcome ON gateway_events (outcome, received_at);
