-- When the reconciler next asks the gateway about each order still pending. Without it every
-- pass took the same oldest orders, so a flood of abandoned orders starved a real payment
-- whose webhook was lost. An order never checked comes first; one checked and still unpaid
-- waits a growing interval. Rows of orders no longer pending are removed by the reconciler.
CREATE TABLE reconcile_schedule
(
    order_id      text PRIMARY KEY NOT NULL,
    checks        bigint           NOT NULL,
    next_check_at text             NOT NULL
);
