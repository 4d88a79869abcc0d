-- How many orders each checkout link has asked for, counted by one conditional update, so
-- concurrent requests through one link cannot pass its bound together.
ALTER TABLE checkout_sessions ADD COLUMN orders_placed bigint NOT NULL DEFAULT 0;
