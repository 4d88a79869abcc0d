//! How every view follows the log: a batch of events (one commit's, or a page of the log
//! during catch-up and replay) is applied with a few multi-row statements per view. Writers
//! call it inside their append transaction; the catch-up projector and `payledger replay`
//! call it page by page. Being the only place the views' rules live, the three cannot differ.
//!
//! The rows a batch touches that already exist are read once (one `IN (...)` query per view),
//! the batch is folded onto them in memory in position order, and each changed row is written
//! once by a multi-row upsert. The events of one order mostly arrive together, so most rows are
//! created and finished inside one batch. Memory is bounded by the batch, never by the log.

use std::collections::{BTreeSet, HashMap};

use aggregates::{OrderEvent, SubscriptionEvent, Tier};
use sqlx::{AnyConnection, Row};

use crate::error::ProjectionError;
use crate::log::{LedgerEvent, StoredEvent};
use crate::membership::parse_tier;
use crate::schema::{timestamp, Tables};
use crate::sql::{enum_text, Bind};
use crate::transaction_history::movement;

mod legacy;

/// Keys per `IN (...)` lookup: well under SQLite's and PostgreSQL's parameter limits.
const KEYS_PER_LOOKUP: usize = 1_000;
/// Parameters per multi-row write, under SQLite's limit of 32,766.
const PARAMETERS_PER_WRITE: usize = 20_000;

/// Applies `events` (in position order) to every view, as applying each in turn would.
pub async fn apply_batch(
    connection: &mut AnyConnection,
    tables: &Tables,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    let mut state = State::load(&mut *connection, tables, events).await?;
    for event in events {
        match &event.event {
            LedgerEvent::Order(order_event) => state.order_event(event, order_event)?,
            LedgerEvent::Subscription(subscription_event) => {
                state.subscription_event(event, subscription_event)?;
            }
            LedgerEvent::Other => {}
        }
    }
    state.write(connection, tables).await
}

/// A row as the batch found it and as the batch left it.
#[derive(Debug)]
struct Slot<T> {
    row: Option<T>,
    dirty: bool,
}

impl<T> Slot<T> {
    fn loaded(row: Option<T>) -> Self {
        Self { row, dirty: false }
    }

    /// The row to change, when it exists (an update of a missing row changes nothing).
    fn change(&mut self) -> Option<&mut T> {
        let row = self.row.as_mut()?;
        self.dirty = true;
        Some(row)
    }

    /// `INSERT ... ON CONFLICT DO NOTHING`.
    fn insert(&mut self, row: T) {
        if self.row.is_none() {
            self.row = Some(row);
            self.dirty = true;
        }
    }

    /// `INSERT ... ON CONFLICT DO UPDATE` of every column.
    fn upsert(&mut self, row: T) {
        self.row = Some(row);
        self.dirty = true;
    }
}

#[derive(Debug, Clone)]
struct OrderRow {
    order_id: String,
    user_id: String,
    plan_id: String,
    plan_name: String,
    tier: String,
    period: String,
    channel: String,
    status: String,
    amount_minor: i64,
    currency: String,
    paid_minor: i64,
    refunded_minor: i64,
    refund_pending_minor: i64,
    needs_refund_minor: i64,
    needs_review: i64,
    charge_id: Option<String>,
    qr_code: Option<String>,
    expires_at: Option<String>,
    paid_at: Option<String>,
    created_at: String,
    updated_at: String,
    last_position: i64,
}

const ORDER_COLUMNS: &[&str] = &[
    "order_id",
    "user_id",
    "plan_id",
    "plan_name",
    "tier",
    "period",
    "channel",
    "status",
    "amount_minor",
    "currency",
    "paid_minor",
    "refunded_minor",
    "refund_pending_minor",
    "needs_refund_minor",
    "needs_review",
    "charge_id",
    "qr_code",
    "expires_at",
    "paid_at",
    "created_at",
    "updated_at",
    "last_position",
];

impl OrderRow {
    fn decode(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            order_id: row.try_get("order_id")?,
            user_id: row.try_get("user_id")?,
            plan_id: row.try_get("plan_id")?,
            plan_name: row.try_get("plan_name")?,
            tier: row.try_get("tier")?,
            period: row.try_get("period")?,
            channel: row.try_get("channel")?,
            status: row.try_get("status")?,
            amount_minor: row.try_get("amount_minor")?,
            currency: row.try_get("currency")?,
            paid_minor: row.try_get("paid_minor")?,
            refunded_minor: row.try_get("refunded_minor")?,
            refund_pending_minor: row.try_get("refund_pending_minor")?,
            needs_refund_minor: row.try_get("needs_refund_minor")?,
            needs_review: row.try_get("needs_review")?,
            charge_id: row.try_get("charge_id")?,
            qr_code: row.try_get("qr_code")?,
            expires_at: row.try_get("expires_at")?,
            paid_at: row.try_get("paid_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            last_position: row.try_get("last_position")?,
        })
    }

    fn binds(self, out: &mut Vec<Bind>) {
        out.extend([
            Bind::Text(self.order_id),
            Bind::Text(self.user_id),
            Bind::Text(self.plan_id),
            Bind::Text(self.plan_name),
            Bind::Text(self.tier),
            Bind::Text(self.period),
            Bind::Text(self.channel),
            Bind::Text(self.status),
            Bind::Int(self.amount_minor),
            Bind::Text(self.currency),
            Bind::Int(self.paid_minor),
            Bind::Int(self.refunded_minor),
            Bind::Int(self.refund_pending_minor),
            Bind::Int(self.needs_refund_minor),
            Bind::Int(self.needs_review),
            Bind::OptText(self.charge_id),
            Bind::OptText(self.qr_code),
            Bind::OptText(self.expires_at),
            Bind::OptText(self.paid_at),
            Bind::Text(self.created_at),
            Bind::Text(self.updated_at),
            Bind::Int(self.last_position),
        ]);
    }

    /// What every update of the view sets besides its own columns.
    fn touch(&mut self, at: &chrono::DateTime<chrono::Utc>, position: i64) {
        self.updated_at = timestamp(at);
        self.last_position = position;
    }
}

#[derive(Debug, Clone)]
struct RefundRow {
    refund_id: String,
    order_id: String,
    amount_minor: i64,
    currency: String,
    status: String,
    reason: String,
    gateway_refund_id: Option<String>,
    requested_at: String,
    completed_at: Option<String>,
    last_position: i64,
}

const REFUND_COLUMNS: &[&str] = &[
    "refund_id",
    "order_id",
    "amount_minor",
    "currency",
    "status",
    "reason",
    "gateway_refund_id",
    "requested_at",
    "completed_at",
    "last_position",
];

impl RefundRow {
    fn decode(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            refund_id: row.try_get("refund_id")?,
            order_id: row.try_get("order_id")?,
            amount_minor: row.try_get("amount_minor")?,
            currency: row.try_get("currency")?,
            status: row.try_get("status")?,
            reason: row.try_get("reason")?,
            gateway_refund_id: row.try_get("gateway_refund_id")?,
            requested_at: row.try_get("requested_at")?,
            completed_at: row.try_get("completed_at")?,
            last_position: row.try_get("last_position")?,
        })
    }

    fn binds(self, out: &mut Vec<Bind>) {
        out.extend([
            Bind::Text(self.refund_id),
            Bind::Text(self.order_id),
            Bind::Int(self.amount_minor),
            Bind::Text(self.currency),
            Bind::Text(self.status),
            Bind::Text(self.reason),
            Bind::OptText(self.gateway_refund_id),
            Bind::Text(self.requested_at),
            Bind::OptText(self.completed_at),
            Bind::Int(self.last_position),
        ]);
    }
}

#[derive(Debug, Clone)]
struct HistoryRow {
    position: i64,
    user_id: String,
    order_id: String,
    kind: &'static str,
    amount_minor: i64,
    currency: String,
    channel: String,
    gateway_ref: Option<String>,
    at: String,
}

const HISTORY_COLUMNS: &[&str] = &[
    "entry_id",
    "position",
    "user_id",
    "order_id",
    "kind",
    "amount_minor",
    "currency",
    "channel",
    "gateway_ref",
    "at",
];

impl HistoryRow {
    fn binds(self, out: &mut Vec<Bind>) {
        out.extend([
            Bind::Text(format!("tx_{}", self.position)),
            Bind::Int(self.position),
            Bind::Text(self.user_id),
            Bind::Text(self.order_id),
            Bind::Text(self.kind.to_owned()),
            Bind::Int(self.amount_minor),
            Bind::Text(self.currency),
            Bind::Text(self.channel),
            Bind::OptText(self.gateway_ref),
            Bind::Text(self.at),
        ]);
    }
}

#[derive(Debug, Clone)]
struct MembershipRow {
    user_id: String,
    tier: String,
    plan_id: String,
    status: String,
    starts_at: String,
    ends_at: String,
    last_position: i64,
}

const MEMBERSHIP_COLUMNS: &[&str] = &[
    "user_id",
    "tier",
    "plan_id",
    "status",
    "starts_at",
    "ends_at",
    "last_position",
];

impl MembershipRow {
    fn decode(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            user_id: row.try_get("user_id")?,
            tier: row.try_get("tier")?,
            plan_id: row.try_get("plan_id")?,
            status: row.try_get("status")?,
            starts_at: row.try_get("starts_at")?,
            ends_at: row.try_get("ends_at")?,
            last_position: row.try_get("last_position")?,
        })
    }

    fn binds(self, out: &mut Vec<Bind>) {
        out.extend([
            Bind::Text(self.user_id),
            Bind::Text(self.tier),
            Bind::Text(self.plan_id),
            Bind::Text(self.status),
            Bind::Text(self.starts_at),
            Bind::Text(self.ends_at),
            Bind::Int(self.last_position),
        ]);
    }
}

#[derive(Debug, Clone)]
struct GrantRow {
    user_id: String,
    order_id: String,
    plan_id: String,
    tier: String,
    period: String,
    starts_at: String,
    ends_at: String,
    revoked: i64,
}

const GRANT_COLUMNS: &[&str] = &[
    "user_id",
    "order_id",
    "plan_id",
    "tier",
    "period",
    "starts_at",
    "ends_at",
    "revoked",
];

impl GrantRow {
    fn decode(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            user_id: row.try_get("user_id")?,
            order_id: row.try_get("order_id")?,
            plan_id: row.try_get("plan_id")?,
            tier: row.try_get("tier")?,
            period: row.try_get("period")?,
            starts_at: row.try_get("starts_at")?,
            ends_at: row.try_get("ends_at")?,
            revoked: row.try_get("revoked")?,
        })
    }

    fn binds(self, out: &mut Vec<Bind>) {
        out.extend([
            Bind::Text(self.user_id),
            Bind::Text(self.order_id),
            Bind::Text(self.plan_id),
            Bind::Text(self.tier),
            Bind::Text(self.period),
            Bind::Text(self.starts_at),
            Bind::Text(self.ends_at),
            Bind::Int(self.revoked),
        ]);
    }
}

/// Every row the batch reads or writes, keyed as in the tables.
#[derive(Debug, Default)]
struct State {
    orders: HashMap<String, Slot<OrderRow>>,
    refunds: HashMap<String, Slot<RefundRow>>,
    history: Vec<HistoryRow>,
    memberships: HashMap<String, Slot<MembershipRow>>,
    /// Per user, the grants the batch knows of. For users revoked in the batch these are all
    /// their grants (the tier after a revocation is a maximum over them); for the others only
    /// the ones the batch names.
    grants: HashMap<String, HashMap<String, Slot<GrantRow>>>,
}

impl State {
    /// Reads the rows the batch will touch, once per view.
    async fn load(
        connection: &mut AnyConnection,
        tables: &Tables,
        events: &[StoredEvent],
    ) -> Result<Self, ProjectionError> {
        let mut order_ids = BTreeSet::new();
        let mut refund_ids = BTreeSet::new();
        let mut user_ids = BTreeSet::new();
        let mut revoked_users = BTreeSet::new();
        let mut grant_keys = BTreeSet::new();
        for stored in events {
            match &stored.event {
                LedgerEvent::Order(event) => {
                    order_ids.insert(stored.aggregate_id.clone());
                    match event {
                        OrderEvent::RefundRequested { refund_id, .. }
                        | OrderEvent::Refunded { refund_id, .. }
                        | OrderEvent::RefundFailed { refund_id, .. } => {
                            refund_ids.insert(refund_id.to_string());
                        }
                        _ => {}
                    }
                }
                LedgerEvent::Subscription(event) => {
                    user_ids.insert(stored.aggregate_id.clone());
                    match event {
                        SubscriptionEvent::MembershipActivated { order_id, .. }
                        | SubscriptionEvent::MembershipExtended { order_id, .. } => {
                            grant_keys.insert((stored.aggregate_id.clone(), order_id.to_string()));
                        }
                        SubscriptionEvent::MembershipRevoked { .. } => {
                            revoked_users.insert(stored.aggregate_id.clone());
                        }
                        SubscriptionEvent::MembershipExpired { .. } => {}
                    }
                }
                LedgerEvent::Other => {}
            }
        }
        grant_keys.retain(|(user_id, _)| !revoked_users.contains(user_id));

        let mut state = State::default();
        let order_ids: Vec<String> = order_ids.into_iter().collect();
        for row in select_in(connection, &tables.order_status, "order_id", &order_ids).await? {
            let row = OrderRow::decode(&row)?;
            state
                .orders
                .insert(row.order_id.clone(), Slot::loaded(Some(row)));
        }
        for key in order_ids {
            state
                .orders
                .entry(key)
                .or_insert_with(|| Slot::loaded(None));
        }

        let refund_ids: Vec<String> = refund_ids.into_iter().collect();
        for row in select_in(connection, &tables.refund_status, "refund_id", &refund_ids).await? {
            let row = RefundRow::decode(&row)?;
            state
                .refunds
                .insert(row.refund_id.clone(), Slot::loaded(Some(row)));
        }
        for key in refund_ids {
            state
                .refunds
                .entry(key)
                .or_insert_with(|| Slot::loaded(None));
        }

        let user_ids: Vec<String> = user_ids.into_iter().collect();
        for row in select_in(connection, &tables.membership, "user_id", &user_ids).await? {
            let row = MembershipRow::decode(&row)?;
            state
                .memberships
                .insert(row.user_id.clone(), Slot::loaded(Some(row)));
        }
        for key in user_ids {
            state
                .memberships
                .entry(key)
                .or_insert_with(|| Slot::loaded(None));
        }

        let revoked_users: Vec<String> = revoked_users.into_iter().collect();
        let mut grants = Vec::new();
        for row in select_in(
            connection,
            &tables.membership_orders,
            "user_id",
            &revoked_users,
        )
        .await?
        {
            grants.push(GrantRow::decode(&row)?);
        }
        // Both key columns in lists: the primary key index serves it, and the few rows that
        // match the cross product without being named are dropped below.
        let named: Vec<(String, String)> = grant_keys.iter().cloned().collect();
        for chunk in named.chunks(KEYS_PER_LOOKUP / 2) {
            let users: BTreeSet<&String> = chunk.iter().map(|(user, _)| user).collect();
            let orders: BTreeSet<&String> = chunk.iter().map(|(_, order)| order).collect();
            let sql = format!(
                "SELECT {columns} FROM {t} WHERE user_id IN ({u}) AND order_id IN ({o})",
                columns = GRANT_COLUMNS.join(", "),
                t = tables.membership_orders,
                u = placeholders(1, users.len()),
                o = placeholders(users.len() + 1, orders.len()),
            );
            let mut query = sqlx::query(&sql).persistent(prepared_for(chunk.len()));
            for key in users.into_iter().chain(orders) {
                query = query.bind(key.clone());
            }
            for row in query.fetch_all(&mut *connection).await? {
                let row = GrantRow::decode(&row)?;
                if grant_keys.contains(&(row.user_id.clone(), row.order_id.clone())) {
                    grants.push(row);
                }
            }
        }
        for row in grants {
            state
                .grants
                .entry(row.user_id.clone())
                .or_default()
                .insert(row.order_id.clone(), Slot::loaded(Some(row)));
        }
        Ok(state)
    }

    fn order_event(
        &mut self,
        stored: &StoredEvent,
        event: &OrderEvent,
    ) -> Result<(), ProjectionError> {
        let position = stored.position;
        let order_id = stored.aggregate_id.as_str();
        let order = self
            .orders
            .entry(order_id.to_owned())
            .or_insert_with(|| Slot::loaded(None));

        // The order-status view.
        match event {
            OrderEvent::OrderCreated {
                order_id: _,
                user_id,
                plan_id,
                plan_name,
                tier,
                period,
                amount,
                channel,
                created_at,
            } => order.insert(OrderRow {
                order_id: order_id.to_owned(),
                user_id: user_id.to_string(),
                plan_id: plan_id.to_string(),
                plan_name: plan_name.clone(),
                tier: enum_text(tier),
                period: enum_text(period),
                channel: channel.as_str().to_owned(),
                status: "created".to_owned(),
                amount_minor: amount.amount_minor(),
                currency: amount.currency().code().to_owned(),
                paid_minor: 0,
                refunded_minor: 0,
                refund_pending_minor: 0,
                needs_refund_minor: 0,
                needs_review: 0,
                charge_id: None,
                qr_code: None,
                expires_at: None,
                paid_at: None,
                created_at: timestamp(created_at),
                updated_at: timestamp(created_at),
                last_position: position,
            }),
            OrderEvent::ChargeRequested {
                charge_id,
                qr_code,
                expires_at,
                requested_at,
            } => {
                if let Some(row) = order.change() {
                    row.status = "pending".to_owned();
                    row.charge_id = Some(charge_id.to_string());
                    row.qr_code = Some(qr_code.clone());
                    row.expires_at = Some(timestamp(expires_at));
                    row.touch(requested_at, position);
                }
            }
            OrderEvent::PaymentConfirmed {
                amount, paid_at, ..
            } => {
                if let Some(row) = order.change() {
                    row.status = "paid".to_owned();
                    row.paid_minor = amount.amount_minor();
                    row.paid_at = Some(timestamp(paid_at));
                    row.qr_code = None;
                    row.touch(paid_at, position);
                }
            }
            OrderEvent::PaymentAmountMismatch { received_at, .. } => {
                if let Some(row) = order.change() {
                    row.needs_review = 1;
                    row.touch(received_at, position);
                }
            }
            OrderEvent::LatePaymentReceived {
                amount,
                received_at,
                ..
            }
            | OrderEvent::DuplicatePaymentReceived {
                amount,
                received_at,
                ..
            } => {
                if let Some(row) = order.change() {
                    row.needs_refund_minor += amount.amount_minor();
                    row.touch(received_at, position);
                }
            }
            OrderEvent::PaymentFailed { failed_at: at, .. }
            | OrderEvent::OrderExpired { expired_at: at }
            | OrderEvent::OrderCancelled {
                cancelled_at: at, ..
            } => {
                let status = match event {
                    OrderEvent::PaymentFailed { .. } => "failed",
                    OrderEvent::OrderExpired { .. } => "expired",
                    _ => "cancelled",
                };
                if let Some(row) = order.change() {
                    row.status = status.to_owned();
                    row.qr_code = None;
                    row.touch(at, position);
                }
            }
            OrderEvent::RefundRequested {
                amount,
                requested_at,
                ..
            } => {
                if let Some(row) = order.change() {
                    row.refund_pending_minor += amount.amount_minor();
                    row.touch(requested_at, position);
                }
            }
            OrderEvent::Refunded {
                amount,
                refunded_at,
                order_after,
                ..
            } => {
                if let Some(row) = order.change() {
                    let amount = amount.amount_minor();
                    // The order decided what the refund left; only 1.0 events leave it to us.
                    match order_after {
                        Some(after) => {
                            row.status = after.status.as_str().to_owned();
                            row.refunded_minor = after.refunded_total.amount_minor();
                            row.needs_refund_minor = after.needs_refund.amount_minor();
                        }
                        None => legacy::refunded(row, amount),
                    }
                    row.refund_pending_minor -= amount;
                    row.touch(refunded_at, position);
                }
            }
            OrderEvent::RefundFailed {
                refund_id,
                failed_at,
                released,
                ..
            } => {
                if let Some(row) = order.change() {
                    let released = match released {
                        Some(amount) => amount.amount_minor(),
                        None => legacy::released(&self.refunds, refund_id, position)?,
                    };
                    row.refund_pending_minor -= released;
                    row.touch(failed_at, position);
                }
            }
        }

        // The refund-status view.
        match event {
            OrderEvent::RefundRequested {
                refund_id,
                amount,
                reason,
                requested_at,
            } => self
                .refunds
                .entry(refund_id.to_string())
                .or_insert_with(|| Slot::loaded(None))
                .insert(RefundRow {
                    refund_id: refund_id.to_string(),
                    order_id: order_id.to_owned(),
                    amount_minor: amount.amount_minor(),
                    currency: amount.currency().code().to_owned(),
                    status: "pending".to_owned(),
                    reason: reason.clone(),
                    gateway_refund_id: None,
                    requested_at: timestamp(requested_at),
                    completed_at: None,
                    last_position: position,
                }),
            OrderEvent::Refunded {
                refund_id,
                gateway_refund_id,
                refunded_at: at,
                ..
            }
            | OrderEvent::RefundFailed {
                refund_id,
                gateway_refund_id,
                failed_at: at,
                ..
            } => {
                let status = if matches!(event, OrderEvent::Refunded { .. }) {
                    "succeeded"
                } else {
                    "failed"
                };
                if let Some(row) = self
                    .refunds
                    .get_mut(&refund_id.to_string())
                    .and_then(Slot::change)
                {
                    row.status = status.to_owned();
                    row.gateway_refund_id = gateway_refund_id.as_ref().map(ToString::to_string);
                    row.completed_at = Some(timestamp(at));
                    row.last_position = position;
                }
            }
            _ => {}
        }

        // The transaction-history view.
        if let Some((kind, amount, gateway_ref, at)) = movement(event) {
            let owner = self
                .orders
                .get(order_id)
                .and_then(|slot| slot.row.as_ref())
                .ok_or_else(|| ProjectionError::MissingRow {
                    position,
                    what: "order",
                    id: order_id.to_owned(),
                })?;
            self.history.push(HistoryRow {
                position,
                user_id: owner.user_id.clone(),
                order_id: order_id.to_owned(),
                kind,
                amount_minor: amount.amount_minor(),
                currency: amount.currency().code().to_owned(),
                channel: owner.channel.clone(),
                gateway_ref,
                at,
            });
        }
        Ok(())
    }

    fn subscription_event(
        &mut self,
        stored: &StoredEvent,
        event: &SubscriptionEvent,
    ) -> Result<(), ProjectionError> {
        let position = stored.position;
        let user_id = stored.aggregate_id.as_str();
        let membership = self
            .memberships
            .entry(user_id.to_owned())
            .or_insert_with(|| Slot::loaded(None));
        let grants = self.grants.entry(user_id.to_owned()).or_default();
        match event {
            SubscriptionEvent::MembershipActivated {
                order_id,
                plan_id,
                tier,
                period,
                starts_at,
                ends_at,
                ..
            }
            | SubscriptionEvent::MembershipExtended {
                order_id,
                plan_id,
                tier,
                period,
                starts_at,
                ends_at,
            } => {
                if matches!(event, SubscriptionEvent::MembershipActivated { .. }) {
                    membership.upsert(MembershipRow {
                        user_id: user_id.to_owned(),
                        tier: enum_text(tier),
                        plan_id: plan_id.to_string(),
                        status: "active".to_owned(),
                        starts_at: timestamp(starts_at),
                        ends_at: timestamp(ends_at),
                        last_position: position,
                    });
                } else {
                    // The entitlement keeps the higher tier, as the aggregate does.
                    let row = membership
                        .change()
                        .ok_or_else(|| ProjectionError::MissingRow {
                            position,
                            what: "membership",
                            id: user_id.to_owned(),
                        })?;
                    let current = parse_tier(row.tier.clone(), position)?;
                    let kept = if *tier > current { *tier } else { current };
                    row.tier = enum_text(&kept);
                    row.plan_id = plan_id.to_string();
                    row.status = "active".to_owned();
                    row.ends_at = timestamp(ends_at);
                    row.last_position = position;
                }
                grants
                    .entry(order_id.to_string())
                    .or_insert_with(|| Slot::loaded(None))
                    .insert(GrantRow {
                        user_id: user_id.to_owned(),
                        order_id: order_id.to_string(),
                        plan_id: plan_id.to_string(),
                        tier: enum_text(tier),
                        period: enum_text(period),
                        starts_at: timestamp(starts_at),
                        ends_at: timestamp(ends_at),
                        revoked: 0,
                    });
            }
            SubscriptionEvent::MembershipRevoked {
                order_id,
                ends_at,
                revoked_at,
                ..
            } => {
                if let Some(grant) = grants.get_mut(&order_id.to_string()).and_then(Slot::change) {
                    grant.revoked = 1;
                }
                // As the aggregate does: the tier falls back to the highest grant still paid
                // for in the current run, and a membership whose end moved into the past is
                // over. Every grant of this user was loaded, so the maximum is over all.
                let mut best: Option<Tier> = None;
                if let Some(run_start) = membership.row.as_ref().map(|row| &row.starts_at) {
                    for grant in grants.values().filter_map(|slot| slot.row.as_ref()) {
                        if grant.revoked == 0 && grant.starts_at >= *run_start {
                            let tier = parse_tier(grant.tier.clone(), position)?;
                            best = Some(best.map_or(tier, |current| current.max(tier)));
                        }
                    }
                }
                let status = if ends_at <= revoked_at {
                    "expired"
                } else {
                    "active"
                };
                if let Some(row) = membership.change() {
                    row.ends_at = timestamp(ends_at);
                    row.status = status.to_owned();
                    if let Some(tier) = best {
                        row.tier = enum_text(&tier);
                    }
                    row.last_position = position;
                }
            }
            SubscriptionEvent::MembershipExpired { .. } => {
                if let Some(row) = membership.change() {
                    row.status = "expired".to_owned();
                    row.last_position = position;
                }
            }
        }
        Ok(())
    }

    /// Writes every changed row with multi-row statements.
    async fn write(
        self,
        connection: &mut AnyConnection,
        tables: &Tables,
    ) -> Result<(), ProjectionError> {
        let orders = changed(self.orders.into_values());
        write_rows(
            connection,
            &tables.order_status,
            ORDER_COLUMNS,
            1,
            OnConflict::Replace,
            orders,
            OrderRow::binds,
        )
        .await?;
        let refunds = changed(self.refunds.into_values());
        write_rows(
            connection,
            &tables.refund_status,
            REFUND_COLUMNS,
            1,
            OnConflict::Replace,
            refunds,
            RefundRow::binds,
        )
        .await?;
        // Entries are only ever added, and their key is their position: a fact applied twice
        // keeps its first entry.
        write_rows(
            connection,
            &tables.transaction_history,
            HISTORY_COLUMNS,
            1,
            OnConflict::Keep,
            self.history,
            HistoryRow::binds,
        )
        .await?;
        let memberships = changed(self.memberships.into_values());
        write_rows(
            connection,
            &tables.membership,
            MEMBERSHIP_COLUMNS,
            1,
            OnConflict::Replace,
            memberships,
            MembershipRow::binds,
        )
        .await?;
        let grants = changed(self.grants.into_values().flat_map(HashMap::into_values));
        write_rows(
            connection,
            &tables.membership_orders,
            GRANT_COLUMNS,
            2,
            OnConflict::Replace,
            grants,
            GrantRow::binds,
        )
        .await
    }
}

fn changed<T>(slots: impl Iterator<Item = Slot<T>>) -> Vec<T> {
    slots
        .filter(|slot| slot.dirty)
        .filter_map(|slot| slot.row)
        .collect()
}

/// `$from, $from+1, ...` for `count` parameters.
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|index| format!("${index}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every row of `table` whose `key` is one of `keys`.
/// Rows up to which a statement is kept prepared on the connection. A statement's shape changes
/// with its row count: one commit's few rows take a handful of shapes, each worth preparing
/// once (writers hold the log lock while they run, so every round trip saved there counts);
/// the large pages of catch-up and replay take a new shape each, not worth a prepared
/// statement that would crowd the others out of the connection's cache.
const PREPARED_ROWS_MAX: usize = 8;

fn prepared_for(rows: usize) -> bool {
    rows <= PREPARED_ROWS_MAX
}

async fn select_in(
    connection: &mut AnyConnection,
    table: &str,
    key: &str,
    keys: &[String],
) -> Result<Vec<sqlx::any::AnyRow>, ProjectionError> {
    let mut rows = Vec::new();
    for chunk in keys.chunks(KEYS_PER_LOOKUP) {
        let sql = format!(
            "SELECT * FROM {table} WHERE {key} IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql).persistent(prepared_for(chunk.len()));
        for value in chunk {
            query = query.bind(value.clone());
        }
        rows.extend(query.fetch_all(&mut *connection).await?);
    }
    Ok(rows)
}

/// What a multi-row write does with a row whose key is already in the table.
#[derive(Debug, Clone, Copy)]
enum OnConflict {
    /// Replace every column but the key (the row was read first and folded onto).
    Replace,
    /// Keep the existing row.
    Keep,
}

/// Multi-row insert of whole rows; the `key_columns` leading columns are the conflict target.
async fn write_rows<T>(
    connection: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    key_columns: usize,
    on_conflict: OnConflict,
    rows: Vec<T>,
    binds: fn(T, &mut Vec<Bind>),
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let width = columns.len();
    let per_statement = (PARAMETERS_PER_WRITE / width).max(1);
    let (keys, values) = columns.split_at(key_columns);
    let on_conflict = match on_conflict {
        OnConflict::Replace => format!(
            "DO UPDATE SET {}",
            values
                .iter()
                .map(|column| format!("{column} = excluded.{column}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        OnConflict::Keep => "DO NOTHING".to_owned(),
    };
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut parameters = Vec::with_capacity(per_statement * width);
        for row in rows.by_ref().take(per_statement) {
            binds(row, &mut parameters);
        }
        let count = parameters.len() / width;
        let tuples = (0..count)
            .map(|row| format!("({})", placeholders(row * width + 1, width)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO {table} ({columns}) VALUES {tuples} ON CONFLICT ({keys}) {on_conflict}",
            columns = columns.join(", "),
            keys = keys.join(", "),
        );
        let mut query = sqlx::query(&sql).persistent(prepared_for(count));
        for parameter in parameters {
            query = match parameter {
                Bind::Text(text) => query.bind(text),
                Bind::Int(number) => query.bind(number),
                Bind::OptText(text) => query.bind(text),
            };
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}
