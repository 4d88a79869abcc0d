//! What every request handler can reach.

use std::sync::Arc;
use std::time::Duration;

use aggregates::{Order, PlanCatalog, Subscription};

use crate::auth::TokenKeys;
use crate::limits::OrderLimits;
use crate::metrics::Metrics;
use crate::process::projection::Views;
use crate::process::settled_events::SettledEvents;
use crate::store::{CommandBus, Store};
use gateways::PaymentGateway;

/// How long a command waits for the views to show its own write before answering.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// Shared, cheaply clonable application state.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub orders: Arc<CommandBus<Order>>,
    pub subscriptions: Arc<CommandBus<Subscription>>,
    pub views: Views,
    pub tokens: TokenKeys,
    pub catalog: Arc<PlanCatalog>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub metrics: Arc<Metrics>,
    /// Bounds on an order's amount, checked at creation.
    pub limits: OrderLimits,
    /// Gateway events this process saw settled, so redeliveries cost nothing.
    pub settled: Arc<SettledEvents>,
}

impl AppState {
    pub fn new(
        store: Store,
        views: Views,
        tokens: TokenKeys,
        gateway: Arc<dyn PaymentGateway>,
    ) -> Self {
        Self {
            orders: Arc::new(CommandBus::new(&store)),
            subscriptions: Arc::new(CommandBus::new(&store)),
            store,
            views,
            tokens,
            catalog: Arc::new(PlanCatalog::standard()),
            gateway,
            metrics: Arc::new(Metrics::default()),
            limits: OrderLimits::default(),
            settled: Arc::default(),
        }
    }
}
