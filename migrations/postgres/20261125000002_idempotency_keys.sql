-- Client idempotency keys: the same key with the same request returns the first result; with
-- a different request it is refused. Durable (not a view): it records what a client was told.
CREATE TABLE idempotency_keys
(
    user_id      text   NOT NULL,
    scope        text   NOT NULL,
    key          text   NOT NULL,
    request_hash text   NOT NULL,
    resource_id  text   NOT NULL,
    created_at   text   NOT NULL,
    PRIMARY KEY (user_id, scope, key)
);

-- How far each process manager has acted on the log. Durable: unlike the views, its effects
-- are commands, which replaying would repeat (harmlessly, they are idempotent, but needlessly).
CREATE TABLE process_checkpoints
(
    process  text   NOT NULL PRIMARY KEY,
    position bigint NOT NULL
);
