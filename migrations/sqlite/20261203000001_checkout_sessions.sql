-- Checkout sessions: a link that lets a browser see and pay one user's orders placed through
-- it, until it expires. Only the SHA-256 of the link's secret is kept. Not a fact about money
-- (the orders are events in the log); times are RFC 3339 UTC text, which sorts in time order.
CREATE TABLE checkout_sessions
(
    id          text PRIMARY KEY NOT NULL,
    secret_hash text UNIQUE      NOT NULL,
    user_id     text             NOT NULL,
    plan_id     text,
    channel     text,
    success_url text,
    cancel_url  text,
    created_at  text             NOT NULL,
    expires_at  text             NOT NULL
);

-- The orders placed through each session: the only orders its link may show.
CREATE TABLE checkout_session_orders
(
    order_id   text PRIMARY KEY NOT NULL,
    session_id text             NOT NULL REFERENCES checkout_sessions (id),
    created_at text             NOT NULL
);

CREATE INDEX checkout_session_orders_by_session ON checkout_session_orders (session_id, created_at);
