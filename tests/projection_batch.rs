//! The views against how the log is cut into batches: random event sequences (including rows
//! touched before they exist, repeated creations, refunds and revocations spanning batches),
//! applied as one batch and as random runs of batches, on both stores, must leave every view
//! table identical.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use aggregates::{
    Channel, ChargeId, Currency, GatewayRefundId, Money, OrderAfterRefund, OrderEvent, OrderId,
    OrderStatus, Period, PlanId, RefundId, SubscriptionEvent, Tier, UserId,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use projections::log::{LedgerEvent, StoredEvent};
use projections::{Projector, Tables};
use sqlx::{AnyPool, Row};

use crate::helpers::on_both_stores;

/// A small deterministic generator (xorshift64*): every failure names its seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound).unwrap()).unwrap()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }

    fn money(&mut self) -> Money {
        Money::new(
            i64::try_from(100 + self.below(5_000)).unwrap(),
            Currency::Cny,
        )
        .unwrap()
    }

    /// Instants within a few days, so starts, ends and revocations overlap in every way.
    fn instant(&mut self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
            + Duration::seconds(i64::try_from(self.below(4 * 86_400)).unwrap())
    }

    fn tier(&mut self) -> Tier {
        *self
            .pick(&[Tier::Free, Tier::Pro, Tier::Enterprise])
            .unwrap()
    }
}

/// Generates `count` events that the per-event apply accepts without error.
fn events(seed: u64, count: usize) -> Vec<StoredEvent> {
    let mut random = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let orders: Vec<OrderId> = (0..12_u128)
        .map(|n| OrderId::from_uuid(uuid::Uuid::from_u128(u128::from(seed) * 1_000 + n + 1)))
        .collect();
    let users: Vec<UserId> = (0..4)
        .map(|n| UserId::parse(&format!("user-{n}")).unwrap())
        .collect();
    let mut created: Vec<OrderId> = Vec::new();
    let mut refunds: Vec<RefundId> = Vec::new();
    let mut activated: Vec<UserId> = Vec::new();
    let mut grants: HashMap<UserId, Vec<OrderId>> = HashMap::new();
    let mut out = Vec::new();
    while out.len() < count {
        let position = i64::try_from(out.len()).unwrap() + 1;
        let order = *random.pick(&orders).unwrap();
        let charge = ChargeId::parse(&format!("ch_{}", random.below(50))).unwrap();
        let at = random.instant();
        let event = match random.below(17) {
            0 | 1 => {
                created.push(order);
                LedgerEvent::Order(OrderEvent::OrderCreated {
                    order_id: order,
                    user_id: random.pick(&users).unwrap().clone(),
                    plan_id: PlanId::parse("pro-monthly").unwrap(),
                    plan_name: format!("Plan {}", random.below(3)),
                    tier: random.tier(),
                    period: *random.pick(&[Period::Monthly, Period::Yearly]).unwrap(),
                    amount: random.money(),
                    channel: *random.pick(&[Channel::AlipayQr, Channel::WxPubQr]).unwrap(),
                    created_at: at,
                })
            }
            2 => LedgerEvent::Order(OrderEvent::ChargeRequested {
                charge_id: charge,
                qr_code: format!("qr-{}", random.below(100)),
                expires_at: random.instant(),
                requested_at: at,
            }),
            3 => LedgerEvent::Order(OrderEvent::OrderExpired { expired_at: at }),
            4 => LedgerEvent::Order(OrderEvent::OrderCancelled {
                reason: "changed mind".to_owned(),
                cancelled_at: at,
            }),
            5 => LedgerEvent::Order(OrderEvent::PaymentFailed {
                charge_id: charge,
                gateway_event_id: None,
                failure_code: None,
                failure_message: None,
                failed_at: at,
            }),
            6 => {
                let refund_id = if random.chance(20) {
                    random.pick(&refunds).copied()
                } else {
                    None
                }
                .unwrap_or_else(|| RefundId::from_uuid(uuid::Uuid::new_v4()));
                refunds.push(refund_id);
                LedgerEvent::Order(OrderEvent::RefundRequested {
                    refund_id,
                    amount: random.money(),
                    reason: format!("reason {}", random.below(3)),
                    requested_at: at,
                })
            }
            // Money movements need an existing order (their entry names its owner).
            7..=11 => {
                let Some(order) = random.pick(&created).copied() else {
                    continue;
                };
                let amount = random.money();
                let event = match random.below(5) {
                    0 => OrderEvent::PaymentConfirmed {
                        charge_id: charge,
                        gateway_event_id: None,
                        amount,
                        transaction_no: None,
                        paid_at: at,
                        recorded_at: at,
                        membership: None,
                    },
                    1 => OrderEvent::PaymentAmountMismatch {
                        charge_id: charge,
                        gateway_event_id: None,
                        expected: random.money(),
                        received: amount,
                        received_at: at,
                    },
                    2 => OrderEvent::LatePaymentReceived {
                        charge_id: charge,
                        gateway_event_id: None,
                        amount,
                        status_at_arrival: OrderStatus::Expired,
                        received_at: at,
                    },
                    3 => OrderEvent::DuplicatePaymentReceived {
                        charge_id: charge,
                        gateway_event_id: None,
                        amount,
                        received_at: at,
                    },
                    _ => OrderEvent::Refunded {
                        refund_id: random
                            .pick(&refunds)
                            .copied()
                            .filter(|_| random.chance(80))
                            .unwrap_or_else(|| RefundId::from_uuid(uuid::Uuid::new_v4())),
                        gateway_refund_id: random
                            .chance(50)
                            .then(|| GatewayRefundId::parse("re_1").unwrap()),
                        gateway_event_id: None,
                        amount,
                        refunded_at: at,
                        // Half as 1.1 (copied into the view), half as 1.0 (derived by it).
                        order_after: random.chance(50).then(|| OrderAfterRefund {
                            status: *random
                                .pick(&[
                                    OrderStatus::PartiallyRefunded,
                                    OrderStatus::Refunded,
                                    OrderStatus::Expired,
                                ])
                                .unwrap(),
                            refunded_total: random.money(),
                            needs_refund: random.money(),
                        }),
                    },
                };
                out.push(stored(
                    position,
                    "Order",
                    order.to_string(),
                    LedgerEvent::Order(event),
                ));
                continue;
            }
            // A failed refund of version 1.0 subtracts the refund's amount as the refund view
            // holds it: the refund must exist.
            12 => {
                let Some(refund_id) = random.pick(&refunds).copied() else {
                    continue;
                };
                LedgerEvent::Order(OrderEvent::RefundFailed {
                    refund_id,
                    gateway_refund_id: None,
                    gateway_event_id: None,
                    failure_code: None,
                    failure_message: Some("declined".to_owned()),
                    failed_at: at,
                    released: random.chance(50).then(|| random.money()),
                })
            }
            13..=16 => {
                let user = random.pick(&users).unwrap().clone();
                let starts_at = random.instant();
                let ends_at = starts_at + Duration::days(i64::try_from(random.below(3)).unwrap());
                let event = match random.below(4) {
                    0 | 1 if random.chance(50) || !activated.contains(&user) => {
                        activated.push(user.clone());
                        grants.entry(user.clone()).or_default().push(order);
                        SubscriptionEvent::MembershipActivated {
                            user_id: user.clone(),
                            order_id: order,
                            plan_id: PlanId::parse("pro-monthly").unwrap(),
                            tier: random.tier(),
                            period: Period::Monthly,
                            starts_at,
                            ends_at,
                        }
                    }
                    0 | 1 => {
                        grants.entry(user.clone()).or_default().push(order);
                        SubscriptionEvent::MembershipExtended {
                            order_id: order,
                            plan_id: PlanId::parse("pro-yearly").unwrap(),
                            tier: random.tier(),
                            period: Period::Yearly,
                            starts_at,
                            ends_at,
                        }
                    }
                    2 => SubscriptionEvent::MembershipRevoked {
                        order_id: grants
                            .get(&user)
                            .and_then(|orders| random.pick(orders).copied())
                            .unwrap_or(order),
                        removed_seconds: 60,
                        ends_at,
                        revoked_at: random.instant(),
                        grant_tier: None,
                        grant_run: None,
                    },
                    _ => SubscriptionEvent::MembershipExpired { expired_at: at },
                };
                out.push(stored(
                    position,
                    "Subscription",
                    user.to_string(),
                    LedgerEvent::Subscription(event),
                ));
                continue;
            }
            _ => unreachable!(),
        };
        out.push(stored(position, "Order", order.to_string(), event));
    }
    out
}

fn stored(
    position: i64,
    aggregate_type: &str,
    aggregate_id: String,
    event: LedgerEvent,
) -> StoredEvent {
    StoredEvent {
        position,
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id,
        sequence: position,
        event_type: String::new(),
        event_version: "1.0".to_owned(),
        payload: serde_json::Value::Null,
        metadata: HashMap::new(),
        recorded_at: String::new(),
        event,
    }
}

async fn fresh(pool: &AnyPool, prefix: &'static str) -> Tables {
    let projector = Projector::new(pool.clone(), Tables::with_prefix(prefix));
    projector.reset().await.unwrap();
    projector.tables().clone()
}

/// Rows of `one` missing from `other`, both ways, and both row counts, per view.
async fn differences(pool: &AnyPool, one: &Tables, other: &Tables) -> Vec<String> {
    let mut found = Vec::new();
    for ((a, _), (b, _)) in one.views().into_iter().zip(other.views()) {
        for (from, to) in [(a, b), (b, a)] {
            let sql = format!(
                "SELECT CAST(count(*) AS BIGINT) AS n FROM (SELECT * FROM {from} EXCEPT SELECT * FROM {to}) AS d"
            );
            let n: i64 = sqlx::query(&sql).fetch_one(pool).await.unwrap().get("n");
            if n != 0 {
                found.push(format!("{n} rows of {from} not in {to}"));
            }
        }
        let count = |table: &str| format!("SELECT CAST(count(*) AS BIGINT) AS n FROM {table}");
        let n_a: i64 = sqlx::query(&count(a))
            .fetch_one(pool)
            .await
            .unwrap()
            .get("n");
        let n_b: i64 = sqlx::query(&count(b))
            .fetch_one(pool)
            .await
            .unwrap()
            .get("n");
        if n_a != n_b {
            found.push(format!("{a} has {n_a} rows, {b} {n_b}"));
        }
    }
    found
}

async fn row_count(pool: &AnyPool, tables: &Tables) -> i64 {
    let mut total = 0;
    for (table, _) in tables.views() {
        let sql = format!("SELECT CAST(count(*) AS BIGINT) AS n FROM {table}");
        total += sqlx::query(&sql)
            .fetch_one(pool)
            .await
            .unwrap()
            .get::<i64, _>("n");
    }
    total
}

on_both_stores! {
    // Writers apply one commit's events, catch-up and replay whole pages: the views must not
    // depend on where the log was cut, so rows carried across batches (read back from the
    // tables) must fold exactly as rows kept in memory within one batch.
    async fn views_do_not_depend_on_how_the_log_is_batched(db: &TestDb) {
        let pool = &db.store.read;
        let reference = fresh(pool, "ref_").await;
        let batched = fresh(pool, "bat_").await;
        for seed in 1..=12_u64 {
            let log = events(seed, 400);
            for (table, _) in reference.views().into_iter().chain(batched.views()) {
                sqlx::query(&format!("DELETE FROM {table}")).execute(pool).await.unwrap();
            }
            // The whole log as one batch: every row stays in memory throughout.
            let mut transaction = pool.begin().await.unwrap();
            projections::batch::apply_batch(&mut transaction, &reference, &log).await.unwrap();
            transaction.commit().await.unwrap();

            // Batches of every size from one event to the whole sequence, each committed.
            let mut random = Random(seed | 1);
            let mut rest = log.as_slice();
            while !rest.is_empty() {
                let size = match random.below(4) {
                    0 => 1,
                    1 => 1 + random.below(10),
                    2 => 1 + random.below(100),
                    _ => rest.len(),
                }
                .min(rest.len());
                let (batch, later) = rest.split_at(size);
                let mut transaction = pool.begin().await.unwrap();
                projections::batch::apply_batch(&mut transaction, &batched, batch).await.unwrap();
                transaction.commit().await.unwrap();
                rest = later;
            }

            assert!(row_count(pool, &reference).await > 20, "seed {seed}: too few rows to compare");
            let found = differences(pool, &reference, &batched).await;
            assert!(found.is_empty(), "seed {seed}: {found:?}");
        }
    }
}

/// One paid order of 9,900 with two refunds requested (3,000 and 1,000), then the first
/// refund's success and the second's failure as `refunded` and `failed` say.
fn refunds_of_a_paid_order(refunded: OrderEvent, failed: OrderEvent) -> Vec<StoredEvent> {
    let order = OrderId::from_uuid(uuid::Uuid::from_u128(0xaf7e_5000));
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let cny = |amount_minor| Money::new(amount_minor, Currency::Cny).unwrap();
    let requested = |n: u128, amount_minor| OrderEvent::RefundRequested {
        refund_id: RefundId::from_uuid(uuid::Uuid::from_u128(n)),
        amount: cny(amount_minor),
        reason: "goodwill".to_owned(),
        requested_at: at,
    };
    [
        OrderEvent::OrderCreated {
            order_id: order,
            user_id: UserId::parse("user-0").unwrap(),
            plan_id: PlanId::parse("pro-monthly").unwrap(),
            plan_name: "Pro (monthly)".to_owned(),
            tier: Tier::Pro,
            period: Period::Monthly,
            amount: cny(9_900),
            channel: Channel::AlipayQr,
            created_at: at,
        },
        OrderEvent::PaymentConfirmed {
            charge_id: ChargeId::parse("ch_copied").unwrap(),
            gateway_event_id: None,
            amount: cny(9_900),
            transaction_no: None,
            paid_at: at,
            recorded_at: at,
            membership: None,
        },
        requested(1, 3_000),
        requested(2, 1_000),
        refunded,
        failed,
    ]
    .into_iter()
    .zip(1..)
    .map(|(event, position)| {
        stored(
            position,
            "Order",
            order.to_string(),
            LedgerEvent::Order(event),
        )
    })
    .collect()
}

/// The refund success and failure of `refunds_of_a_paid_order`, carrying what 1.1 adds when
/// given it (`None` for both: the events as 1.0 stored them).
fn settled(
    order_after: Option<OrderAfterRefund>,
    released: Option<Money>,
) -> (OrderEvent, OrderEvent) {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 0).unwrap();
    (
        OrderEvent::Refunded {
            refund_id: RefundId::from_uuid(uuid::Uuid::from_u128(1)),
            gateway_refund_id: None,
            gateway_event_id: None,
            amount: Money::new(3_000, Currency::Cny).unwrap(),
            refunded_at: at,
            order_after,
        },
        OrderEvent::RefundFailed {
            refund_id: RefundId::from_uuid(uuid::Uuid::from_u128(2)),
            gateway_refund_id: None,
            gateway_event_id: None,
            failure_code: None,
            failure_message: Some("declined".to_owned()),
            failed_at: at,
            released,
        },
    )
}

/// The order's (status, refunded, pending, needs refund) in the view.
async fn figures(pool: &AnyPool, tables: &Tables, log: &[StoredEvent]) -> (String, i64, i64, i64) {
    let mut transaction = pool.begin().await.unwrap();
    projections::batch::apply_batch(&mut transaction, tables, log)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    let row = sqlx::query(&format!(
        "SELECT status, refunded_minor, refund_pending_minor, needs_refund_minor FROM {} \
         WHERE order_id = $1",
        tables.order_status
    ))
    .bind(log[0].aggregate_id.clone())
    .fetch_one(pool)
    .await
    .unwrap();
    (
        row.get("status"),
        row.get("refunded_minor"),
        row.get("refund_pending_minor"),
        row.get("needs_refund_minor"),
    )
}

on_both_stores! {
    // A 1.1 refund event says what it left and released, and the view takes its word: these
    // values are ones the view could not derive (they contradict the rows it holds), so only
    // copying puts them there. The same events stored as 1.0 are derived as before.
    async fn the_order_view_copies_what_a_refund_event_of_version_1_1_says(db: &TestDb) {
        let pool = &db.store.read;
        let (refunded, failed) = settled(None, None);
        let legacy = fresh(pool, "old_").await;
        let log = refunds_of_a_paid_order(refunded, failed);
        assert_eq!(
            figures(pool, &legacy, &log).await,
            ("partially_refunded".to_owned(), 3_000, 0, 0)
        );

        let cny = |amount_minor| Money::new(amount_minor, Currency::Cny).unwrap();
        let (refunded, failed) = settled(
            Some(OrderAfterRefund {
                status: OrderStatus::Refunded,
                refunded_total: cny(9_900),
                needs_refund: cny(700),
            }),
            Some(cny(400)),
        );
        let current = fresh(pool, "new_").await;
        let log = refunds_of_a_paid_order(refunded, failed);
        assert_eq!(
            figures(pool, &current, &log).await,
            ("refunded".to_owned(), 9_900, 600, 700)
        );
    }
}
