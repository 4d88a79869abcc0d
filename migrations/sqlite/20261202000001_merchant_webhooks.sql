-- Outbound webhooks to the merchant: where to deliver (endpoints), what to deliver and how it
-- went (deliveries, one per event and endpoint, and their attempts). Deliveries are derived
-- from the log by the outbox follower, whose checkpoint is its row in process_checkpoints and
-- moves in the same transaction as the deliveries it enqueued. Times are unix milliseconds.
CREATE TABLE merchant_webhook_endpoints
(
    id          text   PRIMARY KEY NOT NULL,
    url         text   NOT NULL,
    -- NULL for the endpoint configured in the environment: its secrets stay there.
    secret      text,
    -- A JSON array of event types; empty means every type.
    event_types text   NOT NULL,
    -- Only events after this log position are delivered to it (the head when it was added).
    from_position bigint NOT NULL,
    created_at  bigint NOT NULL,
    deleted_at  bigint
);

CREATE TABLE merchant_webhook_deliveries
(
    id            text   PRIMARY KEY NOT NULL,
    endpoint_id   text   NOT NULL REFERENCES merchant_webhook_endpoints (id),
    -- The event's stable id: the receiver deduplicates by it.
    event_id      text   NOT NULL,
    event_type    text   NOT NULL,
    position      bigint NOT NULL,
    -- Deliveries with one key (an order, a member) go out in position order.
    ordering_key  text   NOT NULL,
    body          text   NOT NULL,
    status        text   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts      bigint NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    give_up_at    bigint NOT NULL,
    -- A sender holds the delivery until then; another may take it afterwards.
    leased_until  bigint NOT NULL DEFAULT 0,
    last_response_code bigint,
    last_error    text,
    created_at    bigint NOT NULL,
    delivered_at  bigint,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX merchant_webhook_deliveries_due
    ON merchant_webhook_deliveries (endpoint_id, status, position);
CREATE INDEX merchant_webhook_deliveries_key
    ON merchant_webhook_deliveries (endpoint_id, ordering_key, status, position);

CREATE TABLE merchant_webhook_attempts
(
    delivery_id   text    NOT NULL REFERENCES merchant_webhook_deliveries (id),
    attempt       bigint  NOT NULL,
    at            bigint  NOT NULL,
    response_code bigint,
    error         text,
    duration_ms   bigint  NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
