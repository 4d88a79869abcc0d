//! Assembling a running service from an open store: the gateways (Ping++, Alipay, WeChat Pay
//! or the in-process sandbox, per channel, by configuration), the views, the process managers
//! and the router. `main` and the integration tests both start the service through here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aggregates::Channel;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rsa::RsaPrivateKey;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::api::client_ip::PeerAddr;
use crate::auth::TokenKeys;
use crate::error::ApiError;
use crate::process::reconciler::{self, ReconcilerSettings};
use crate::process::{membership, projection};
use crate::state::AppState;
use crate::store::Store;
use gateways::alipay::client::{AlipayClient, AlipaySettings};
use gateways::clock::{Clock, SystemClock};
use gateways::config::{GatewayConfig, InvalidVariable, Provider};
use gateways::keys::{self, KeyError};
use gateways::pingpp::client::PingppClient;
use gateways::routing::{ProviderName, ProviderSettings, Routing, RoutingError};
use gateways::wechatpay::client::{WechatPayClient, WechatPaySettings};
use gateways::wechatpay::notify::NonceCache;
use gateways::wechatpay::platform::PlatformKeys;
use gateways::wechatpay::resource::ApiV3Key;
use gateways::PaymentGateway;
use sandbox::{AlipaySide, Protocols, Sandbox, SandboxConfig, WechatPaySide, MOUNT_PATH};

/// Where Ping++ (and the sandbox speaking its protocol) delivers webhooks, under the public
/// URL.
pub const WEBHOOK_PATH: &str = "/v1/webhooks/pingpp";

/// The largest body any route accepts (a webhook); tighter per-route limits apply after this.
const BODY_READ_MAX_BYTES: usize = 64 * 1024;

/// How long in-flight requests get to finish after a shutdown signal (a long poll waits at
/// most 30 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(35);

/// What a client may hold of the server: slow or abusive clients are cut off, and the number of
/// open connections is bounded so that they cannot exhaust file descriptors or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// From the start of a request (or of an idle keep-alive wait) to the end of its headers.
    pub header_read_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_read_timeout: Duration,
    /// Open connections at most; further ones wait in the listen backlog.
    pub connections_max: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            connections_max: 1024,
        }
    }
}
/// Where `provider` delivers webhooks, under the public URL.
pub fn webhook_path(provider: ProviderName) -> String {
    format!("/v1/webhooks/{}", provider.as_str())
}

/// The name every sandbox protocol records its events under: no money moved.
const SANDBOX_PROVIDER: &str = "sandbox";
/// The merchant identities the in-process sandbox knows its clients by.
const SANDBOX_ALIPAY_APP_ID: &str = "2021000000000000";
const SANDBOX_WECHATPAY_MCHID: &str = "1900000000";
const SANDBOX_WECHATPAY_APPID: &str = "wx0000000000sandbox";
const SANDBOX_WECHATPAY_MERCHANT_SERIAL: &str = "5A4D5A4D5A4D5A4D";
const SANDBOX_WECHATPAY_PLATFORM_SERIAL: &str = "5A4D5A4D5A4D5A4E";

/// The per-channel variables choosing the protocol a channel speaks to the in-process
/// sandbox.
const SANDBOX_PROTOCOL_VARIABLES: [(Channel, &str); 2] = [
    (Channel::AlipayQr, "SANDBOX_PROTOCOL_ALIPAY_QR"),
    (Channel::WxPubQr, "SANDBOX_PROTOCOL_WX_PUB_QR"),
];

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Views(#[from] projections::ProjectionError),
    #[error("the sandbox signing key: {0}")]
    SandboxKey(#[from] KeyError),
    #[error("the {provider} client: {reason}")]
    Client {
        provider: &'static str,
        reason: String,
    },
    #[error("PINGPP_PUBLIC_KEY_PATH: required to verify Ping++ webhooks")]
    MissingWebhookKey,
    #[error(transparent)]
    Routing(#[from] RoutingError),
}

impl StartError {
    fn client(provider: ProviderName, error: impl std::fmt::Display) -> Self {
        Self::Client {
            provider: provider.as_str(),
            reason: error.to_string(),
        }
    }
}

/// How the service reaches its gateways.
#[derive(Debug, Clone)]
pub struct GatewaySetup {
    /// Which provider serves each channel, with each provider's credentials.
    pub providers: ProviderSettings,
    /// For the channels the sandbox serves: the protocol each speaks to it (`pingpp`,
    /// `alipay` or `wechatpay`; Ping++'s unless configured), so a sandbox deployment
    /// exercises the same adapter a production one uses.
    pub sandbox_protocols: HashMap<Channel, ProviderName>,
    /// The merchant key the sandbox's Alipay and WeChat Pay protocols know the service by;
    /// generated at start-up when unset (nothing is secret in the sandbox).
    pub sandbox_merchant_key: Option<RsaPrivateKey>,
    /// The APIv3 key the sandbox's WeChat Pay protocol seals callbacks with; random per start
    /// when unset. Set, `payledger verify` can be given it to open kept callbacks.
    pub sandbox_wechatpay_api_v3_key: Option<ApiV3Key>,
}

impl From<GatewayConfig> for GatewaySetup {
    /// Every channel through Ping++'s client: Ping++ itself or the sandbox speaking its
    /// protocol.
    fn from(config: GatewayConfig) -> Self {
        let name = match config.provider {
            Provider::Sandbox => ProviderName::Sandbox,
            Provider::Pingpp => ProviderName::Pingpp,
        };
        Self {
            providers: ProviderSettings {
                default: name,
                channels: Channel::all()
                    .iter()
                    .map(|channel| (*channel, name))
                    .collect(),
                pingpp: Some(config),
                alipay: None,
                wechatpay: None,
            },
            sandbox_protocols: HashMap::new(),
            sandbox_merchant_key: None,
            sandbox_wechatpay_api_v3_key: None,
        }
    }
}

impl GatewaySetup {
    /// `PAYMENT_PROVIDER`, `PAYMENT_PROVIDER_ALIPAY_QR`, `PAYMENT_PROVIDER_WX_PUB_QR`, each
    /// provider's credentials and `SANDBOX_PROTOCOL_*`; every bad variable is named at once.
    pub fn from_env(public_url: &str) -> Result<Self, Vec<InvalidVariable>> {
        Self::from_lookup(|name| std::env::var(name).ok(), public_url)
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        public_url: &str,
    ) -> Result<Self, Vec<InvalidVariable>> {
        let providers = ProviderSettings::from_lookup(&lookup, public_url);
        let mut problems = Vec::new();
        let mut sandbox_protocols = HashMap::new();
        for (channel, variable) in SANDBOX_PROTOCOL_VARIABLES {
            let Some(text) = lookup(variable)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
            else {
                continue;
            };
            match ProviderName::parse(&text).filter(|name| *name != ProviderName::Sandbox) {
                Some(protocol) => {
                    sandbox_protocols.insert(channel, protocol);
                }
                None => problems.push(InvalidVariable {
                    variable,
                    reason: format!(
                        "expected one of `pingpp`, `alipay`, `wechatpay`, got `{text}`"
                    ),
                }),
            }
        }
        let providers = match providers {
            Ok(providers) => Some(providers),
            Err(found) => {
                problems.extend(found);
                None
            }
        };
        if let Some(providers) = &providers {
            // A protocol the sandbox speaks for one channel cannot also be the real
            // provider of another: its webhooks arrive at the same path.
            for (channel, variable) in SANDBOX_PROTOCOL_VARIABLES {
                let Some(protocol) = sandbox_protocols.get(&channel) else {
                    continue;
                };
                if providers.provider_for(channel) != ProviderName::Sandbox {
                    continue;
                }
                if Channel::all()
                    .iter()
                    .any(|other| providers.provider_for(*other) == *protocol)
                {
                    problems.push(InvalidVariable {
                        variable,
                        reason: format!(
                            "{} serves a channel for real; the sandbox cannot speak it too",
                            protocol.as_str()
                        ),
                    });
                }
            }
        }
        match providers {
            Some(providers) if problems.is_empty() => Ok(Self {
                providers,
                sandbox_protocols,
                sandbox_merchant_key: None,
                sandbox_wechatpay_api_v3_key: None,
            }),
            _ => Err(problems),
        }
    }
}

/// A started service: its state, the sandbox when it runs in-process, and the background
/// tasks that keep the views current.
pub struct Service {
    pub state: AppState,
    pub sandbox: Option<Sandbox>,
    tasks: Vec<JoinHandle<()>>,
}

impl Service {
    /// Builds the gateways and starts the projector and the membership process on `store`
    /// (already migrated). `public_url` is where this service is reachable.
    pub async fn start(
        store: Store,
        tokens: TokenKeys,
        public_url: &str,
        setup: &GatewaySetup,
    ) -> Result<Self, StartError> {
        let public_url = public_url.trim_end_matches('/');
        let (routing, sandbox) = build_gateways(public_url, setup)?;
        let (views, projector_task) = projection::start(&store).await?;
        let mut state = AppState::new(store, views, tokens, routing);
        state.public_url = Arc::from(public_url);
        let process_task = tokio::spawn(membership::finish(state.store.clone()));
        Ok(Self {
            state,
            sandbox,
            tasks: vec![projector_task, process_task],
        })
    }

    /// Starts the background reconciler (a pass every `settings.interval`; one instance at a
    /// time whatever the number of servers). Stopped with the service.
    pub fn spawn_reconciler(&mut self, settings: ReconcilerSettings) {
        let task = tokio::spawn(reconciler::follow(self.state.clone(), settings));
        self.tasks.push(task);
    }

    /// Starts what tells the merchant: the outbox follower, a webhook sender per endpoint and
    /// the membership expiry pass. Stopped with the service.
    pub async fn spawn_merchant(
        &mut self,
        settings: &crate::merchant::MerchantSettings,
    ) -> Result<(), crate::merchant::MerchantError> {
        let tasks = crate::merchant::start(&self.state, settings).await?;
        self.tasks.extend(tasks);
        Ok(())
    }

    /// The API, with the sandbox mounted under `/sandbox` when it runs in-process.
    pub fn router(&self) -> Router {
        let api = crate::router(self.state.clone());
        match &self.sandbox {
            Some(sandbox) => api.nest(MOUNT_PATH, sandbox.router()),
            None => api,
        }
    }

    /// Serves on `listener` with the default limits until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_with(listener, shutdown, ServeLimits::default())
            .await
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight requests finish.
    pub async fn serve_with(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        limits: ServeLimits,
    ) -> std::io::Result<()> {
        let body_read_timeout = limits.body_read_timeout;
        let app = self
            .router()
            .layer(axum::middleware::from_fn(move |request, next| {
                read_body_within(body_read_timeout, request, next)
            }));
        let result = serve_router(listener, app, shutdown, limits).await;
        self.stop().await;
        result
    }

    /// Stops the background tasks and closes the store.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        self.state.store.close().await;
    }
}

/// Accepts connections while fewer than `limits.connections_max` are open, serves each with
/// HTTP/1.1 under the header read timeout, and on `shutdown` stops accepting and waits (at most
/// `DRAIN_TIMEOUT`) for the requests in flight.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // pause rather than spin, and keep serving.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Handlers learn the peer's address (the client's, unless it is a trusted proxy).
        let service = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutdown requested: no new connections, draining requests in flight");
    match tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await {
        Ok(()) => tracing::info!("every request in flight finished; stopping"),
        Err(_) => tracing::warn!(
            timeout_secs = DRAIN_TIMEOUT.as_secs(),
            "requests still in flight after the drain timeout; stopping anyway"
        ),
    }
    Ok(())
}

/// Reads the whole request body within `timeout` of the headers, so that a client sending one
/// byte every few seconds cannot hold a connection and a task forever. A body too slow is
/// answered 408, one too large 413, and the connection is closed either way.
async fn read_body_within(timeout: Duration, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let error = match tokio::time::timeout(timeout, axum::body::to_bytes(body, BODY_READ_MAX_BYTES))
        .await
    {
        Ok(Ok(bytes)) => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => ApiError::TooLarge,
        Err(_) => ApiError::BodyTimeout,
    };
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Gateway clients by the provider name their channels and webhooks are routed by.
type NamedGateways = Vec<(ProviderName, Arc<dyn PaymentGateway>)>;

/// One client per provider in use, routed by channel and webhook path, and the in-process
/// sandbox when some channel is served by it.
fn build_gateways(
    public_url: &str,
    setup: &GatewaySetup,
) -> Result<(Routing, Option<Sandbox>), StartError> {
    let settings = &setup.providers;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let notify_url = |provider: ProviderName| format!("{public_url}{}", webhook_path(provider));
    // The routing's view of the channels: a sandbox channel is routed to the protocol it
    // speaks, whose webhook path the sandbox delivers to.
    let mut routed = settings.clone();
    let mut gateways: NamedGateways = Vec::new();
    let mut sandbox = None;
    if let Some(pingpp) = &settings.pingpp {
        match pingpp.provider {
            Provider::Sandbox => {
                let (started, clients) = start_sandbox(public_url, setup, pingpp, &clock)?;
                for channel in Channel::all() {
                    if settings.provider_for(*channel) == ProviderName::Sandbox {
                        let protocol = setup
                            .sandbox_protocols
                            .get(channel)
                            .copied()
                            .unwrap_or(ProviderName::Pingpp);
                        routed.channels.insert(*channel, protocol);
                    }
                }
                gateways.extend(clients);
                sandbox = Some(started);
            }
            Provider::Pingpp => {
                let webhook_key = pingpp
                    .webhook_public_key
                    .clone()
                    .ok_or(StartError::MissingWebhookKey)?;
                let client = PingppClient::new(pingpp.pingpp_settings(&webhook_key))
                    .map_err(|error| StartError::client(ProviderName::Pingpp, error))?;
                gateways.push((ProviderName::Pingpp, Arc::new(client)));
            }
        }
    }
    if let Some(alipay) = &settings.alipay {
        let client = alipay
            .client(notify_url(ProviderName::Alipay), Arc::clone(&clock))
            .map_err(|error| StartError::client(ProviderName::Alipay, error))?;
        gateways.push((ProviderName::Alipay, Arc::new(client)));
    }
    if let Some(wechatpay) = &settings.wechatpay {
        let client = wechatpay
            .client(notify_url(ProviderName::WechatPay), Arc::clone(&clock))
            .map_err(|error| StartError::client(ProviderName::WechatPay, error))?;
        gateways.push((ProviderName::WechatPay, Arc::new(client)));
    }
    let routing = Routing::new(&routed, gateways)?;
    Ok((routing, sandbox))
}

/// The in-process sandbox, speaking all three protocols, and a client for each protocol some
/// channel speaks to it.
fn start_sandbox(
    public_url: &str,
    setup: &GatewaySetup,
    config: &GatewayConfig,
    clock: &Arc<dyn Clock>,
) -> Result<(Sandbox, NamedGateways), StartError> {
    let notify_url = |provider: ProviderName| format!("{public_url}{}", webhook_path(provider));
    let signing_key = match &config.sandbox_private_key {
        Some(key) => key.clone(),
        None => keys::generate()?,
    };
    let merchant_key = match &setup.sandbox_merchant_key {
        Some(key) => key.clone(),
        None => keys::generate()?,
    };
    // Random per start, like the signing key: the sandbox and its clients share it in memory.
    let api_v3_key = match &setup.sandbox_wechatpay_api_v3_key {
        Some(key) => key.clone(),
        None => ApiV3Key::parse(&uuid::Uuid::new_v4().simple().to_string())
            .map_err(|error| StartError::client(ProviderName::WechatPay, error))?,
    };
    let protocols = Protocols {
        alipay: Some(AlipaySide {
            app_id: SANDBOX_ALIPAY_APP_ID.to_owned(),
            app_public_key: merchant_key.to_public_key(),
            alipay_key: signing_key.clone(),
            notify_url: notify_url(ProviderName::Alipay),
        }),
        wechatpay: Some(WechatPaySide {
            mchid: SANDBOX_WECHATPAY_MCHID.to_owned(),
            appid: SANDBOX_WECHATPAY_APPID.to_owned(),
            merchant_serial: SANDBOX_WECHATPAY_MERCHANT_SERIAL.to_owned(),
            merchant_public_key: merchant_key.to_public_key(),
            platform_serial: SANDBOX_WECHATPAY_PLATFORM_SERIAL.to_owned(),
            platform_key: signing_key.clone(),
            api_v3_key: api_v3_key.clone(),
            notify_url: notify_url(ProviderName::WechatPay),
        }),
    };
    let sandbox = Sandbox::with_protocols(
        SandboxConfig {
            api_key: config.api_key.clone(),
            signing_key: signing_key.clone(),
            webhook_url: format!("{public_url}{WEBHOOK_PATH}"),
            public_url: public_url.to_owned(),
        },
        protocols,
    );
    let spoken = |protocol: ProviderName| {
        Channel::all().iter().any(|channel| {
            setup.providers.provider_for(*channel) == ProviderName::Sandbox
                && setup
                    .sandbox_protocols
                    .get(channel)
                    .copied()
                    .unwrap_or(ProviderName::Pingpp)
                    == protocol
        })
    };
    let mut clients: NamedGateways = Vec::new();
    if spoken(ProviderName::Pingpp) {
        let client = PingppClient::new(config.pingpp_settings(&sandbox.public_key()))
            .map_err(|error| StartError::client(ProviderName::Pingpp, error))?;
        clients.push((ProviderName::Pingpp, Arc::new(client)));
    }
    if spoken(ProviderName::Alipay) {
        let client = AlipayClient::new(
            AlipaySettings {
                gateway_url: format!("{public_url}{MOUNT_PATH}/alipay/gateway.do"),
                app_id: SANDBOX_ALIPAY_APP_ID.to_owned(),
                merchant_private_key: merchant_key.clone(),
                alipay_public_key: signing_key.to_public_key(),
                notify_url: notify_url(ProviderName::Alipay),
                provider_name: SANDBOX_PROVIDER,
            },
            Arc::clone(clock),
        )
        .map_err(|error| StartError::client(ProviderName::Alipay, error))?;
        clients.push((ProviderName::Alipay, Arc::new(client)));
    }
    if spoken(ProviderName::WechatPay) {
        let client = WechatPayClient::new(
            WechatPaySettings {
                api_base: format!("{public_url}{MOUNT_PATH}/wechatpay"),
                mchid: SANDBOX_WECHATPAY_MCHID.to_owned(),
                appid: SANDBOX_WECHATPAY_APPID.to_owned(),
                merchant_serial: SANDBOX_WECHATPAY_MERCHANT_SERIAL.to_owned(),
                merchant_private_key: merchant_key,
                platform_keys: PlatformKeys::new().with(
                    SANDBOX_WECHATPAY_PLATFORM_SERIAL,
                    signing_key.to_public_key(),
                ),
                api_v3_key,
                notify_url: notify_url(ProviderName::WechatPay),
                provider_name: SANDBOX_PROVIDER,
            },
            Arc::clone(clock),
            NonceCache::default(),
        )
        .map_err(|error| StartError::client(ProviderName::WechatPay, error))?;
        clients.push((ProviderName::WechatPay, Arc::new(client)));
    }
    Ok((sandbox, clients))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn setup(vars: &[(&str, &str)]) -> Result<GatewaySetup, Vec<InvalidVariable>> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        GatewaySetup::from_lookup(|name| env.get(name).cloned(), "http://127.0.0.1:8080")
    }

    #[test]
    fn the_sandbox_speaks_pingpp_unless_a_channel_names_another_protocol() {
        let plain = setup(&[]).unwrap();
        assert!(plain.sandbox_protocols.is_empty());
        let mixed = setup(&[("SANDBOX_PROTOCOL_ALIPAY_QR", "alipay")]).unwrap();
        assert_eq!(
            mixed.sandbox_protocols.get(&Channel::AlipayQr),
            Some(&ProviderName::Alipay)
        );
        assert_eq!(mixed.sandbox_protocols.get(&Channel::WxPubQr), None);
    }

    #[test]
    fn every_bad_protocol_and_provider_is_named() {
        let problems = setup(&[
            ("PAYMENT_PROVIDER", "stripe"),
            ("SANDBOX_PROTOCOL_ALIPAY_QR", "sandbox"),
            ("SANDBOX_PROTOCOL_WX_PUB_QR", "paypal"),
        ])
        .unwrap_err();
        let named: Vec<&str> = problems.iter().map(|problem| problem.variable).collect();
        assert!(named.contains(&"PAYMENT_PROVIDER"), "{named:?}");
        assert!(named.contains(&"SANDBOX_PROTOCOL_ALIPAY_QR"), "{named:?}");
        assert!(named.contains(&"SANDBOX_PROTOCOL_WX_PUB_QR"), "{named:?}");
    }
}
