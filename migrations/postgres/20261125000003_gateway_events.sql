-- Every verified webhook we received, kept whatever became of it: applied to an order, a
-- duplicate, for an order we do not know (kept for reconciliation), or a type we do not act
-- on (kept for audit). Signature failures never get here: nothing unverified is stored.
CREATE TABLE gateway_events
(
    provider    text   NOT NULL,
    event_id    text   NOT NULL,
    event_type  text   NOT NULL,
    order_id    text,
    outcome     text   NOT NULL,
    body        text   NOT NULL,
    received_at text   NOT NULL,
    updated_at  text   NOT NULL,
    deliveries  bigint NOT NULL,
    PRIMARY KEY (provider, event_id)
);

CREATE INDEX gateway_events_by_outcome ON gateway_events (outcome, received_at);
