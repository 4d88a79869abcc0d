//! What every request handler can reach.

use std::sync::Arc;
use std::time::Duration;

use aggregates::{Channel, Order, PlanCatalog, Subscription};

use crate::api::client_ip::TrustedProxies;
use crate::auth::TokenKeys;
use crate::checkout::CheckoutSettings;
use crate::ledger::settle::SettledEvents;
use crate::ledger::{CreationQuota, QuotaSettings};
use crate::limits::OrderLimits;
use crate::metrics::Metrics;
use crate::process::projection::Views;
use crate::store::{CommandBus, Store};
use gateways::routing::Routing;
use gateways::{GatewayError, PaymentGateway};

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
    /// Which gateway charges each channel and which verifies each webhook path.
    pub gateways: Routing,
    pub metrics: Arc<Metrics>,
    /// Bounds on an order's amount, checked at creation.
    pub limits: OrderLimits,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// How many orders one user may start per minute and hold open.
    pub quota: Arc<CreationQuota>,
    /// Gateway events this process saw settled, so redeliveries cost nothing.
    pub settled: Arc<SettledEvents>,
    /// Browser origins, redirect origins and link lifetime of hosted checkouts.
    pub checkout: Arc<CheckoutSettings>,
    /// Where this service is reachable (no trailing slash), for links it hands out.
    pub public_url: Arc<str>,
    /// Wakes this process's merchant webhook senders (new or retried deliveries).
    pub outbound: Arc<tokio::sync::Notify>,
    /// Signs the published head (`PAYLEDGER_AUDIT_KEY_PATH`); None: heads go out unsigned.
    pub audit_key: Option<Arc<rsa::RsaPrivateKey>>,
}

impl AppState {
    pub fn new(store: Store, views: Views, tokens: TokenKeys, gateways: Routing) -> Self {
        Self {
            orders: Arc::new(CommandBus::new(&store)),
            subscriptions: Arc::new(CommandBus::new(&store)),
            store,
            views,
            tokens,
            catalog: Arc::new(PlanCatalog::standard()),
            gateways,
            metrics: Arc::new(Metrics::default()),
            limits: OrderLimits::default(),
            trusted_proxies: Arc::default(),
            quota: Arc::new(CreationQuota::new(QuotaSettings::default())),
            settled: Arc::default(),
            checkout: Arc::default(),
            public_url: Arc::from(""),
            outbound: Arc::default(),
            audit_key: None,
        }
    }
}

impl AppState {
    /// The gateway an order of `channel` is charged, refunded, looked up and closed through.
    /// An order's channel never changes, so every call for it reaches the provider that
    /// created its charge (as long as the channel's provider is not reconfigured while
    /// orders are open; see the README).
    pub fn gateway_for(&self, channel: Channel) -> Result<&Arc<dyn PaymentGateway>, GatewayError> {
        // `Routing::new` refuses a channel without a gateway, so this only fails for a
        // routing built by hand.
        self.gateways.for_channel(channel).ok_or_else(|| {
            GatewayError::Unreachable(format!("no gateway serves the channel {channel}"))
        })
    }
}
