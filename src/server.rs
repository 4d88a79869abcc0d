//! Assembling a running service from an open store: the gateway (Ping++ or the in-process
//! sandbox, by configuration), the views, the process managers and the router. `main` and the
//! integration tests both start the service through here.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::auth::TokenKeys;
use crate::error::ApiError;
use crate::process::reconciler::{self, ReconcilerSettings};
use crate::process::{membership, projection};
use crate::state::AppState;
use crate::store::Store;
use gateways::config::{GatewayConfig, Provider};
use gateways::pingpp::client::{ClientBuildError, PingppClient};
use gateways::pingpp::keys::{self, KeyError};
use gateways::PaymentGateway;
use sandbox::{Sandbox, SandboxConfig, MOUNT_PATH};

/// Where gateways deliver webhooks, under the public URL.
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

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Views(#[from] projections::ProjectionError),
    #[error("the sandbox signing key: {0}")]
    SandboxKey(#[from] KeyError),
    #[error("the payment gateway client: {0:?}")]
    Client(ClientBuildError),
    #[error("PINGPP_PUBLIC_KEY_PATH: required to verify Ping++ webhooks")]
    MissingWebhookKey,
}

/// A started service: its state, the sandbox when it runs in-process, and the background
/// tasks that keep the views current.
pub struct Service {
    pub state: AppState,
    pub sandbox: Option<Sandbox>,
    tasks: Vec<JoinHandle<()>>,
}

impl Service {
    /// Builds the gateway and starts the projector and the membership process on `store`
    /// (already migrated). `public_url` is where this service is reachable.
    pub async fn start(
        store: Store,
        tokens: TokenKeys,
        public_url: &str,
        gateway: &GatewayConfig,
    ) -> Result<Self, StartError> {
        let public_url = public_url.trim_end_matches('/');
        let (client, sandbox) = match gateway.provider {
            Provider::Sandbox => {
                let signing_key = match &gateway.sandbox_private_key {
                    Some(key) => key.clone(),
                    None => keys::generate()?,
                };
                let sandbox = Sandbox::new(SandboxConfig {
                    api_key: gateway.api_key.clone(),
                    signing_key,
                    webhook_url: format!("{public_url}{WEBHOOK_PATH}"),
                    public_url: public_url.to_owned(),
                });
                let client = PingppClient::new(gateway.pingpp_settings(&sandbox.public_key()))
                    .map_err(StartError::Client)?;
                (client, Some(sandbox))
            }
            Provider::Pingpp => {
                let webhook_key = gateway
                    .webhook_public_key
                    .clone()
                    .ok_or(StartError::MissingWebhookKey)?;
                let client = PingppClient::new(gateway.pingpp_settings(&webhook_key))
                    .map_err(StartError::Client)?;
                (client, None)
            }
        };
        let client: Arc<dyn PaymentGateway> = Arc::new(client);
        let (views, projector_task) = projection::start(&store).await?;
        let state = AppState::new(store, views, tokens, client);
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
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
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
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
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
