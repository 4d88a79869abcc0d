//! Assembling a running service from an open store: the gateways (built by `gateway_setup`),
//! the views, the process managers and the router, then serving HTTP under limits. `main` and
//! the integration tests both start the service through here.

use std::sync::Arc;
use std::time::Duration;

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
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::api::client_ip::PeerAddr;
use crate::auth::TokenKeys;
use crate::error::ApiError;
use crate::gateway_setup::{build_gateways, GatewayError};
use crate::process::reconciler::{self, ReconcilerSettings};
use crate::process::{membership, projection};
use crate::state::AppState;
use crate::store::Store;
use sandbox::{Sandbox, MOUNT_PATH};

// The gateway settings and their wiring have a module of their own; these paths stay valid.
pub use crate::gateway_setup::{webhook_path, GatewaySetup, WEBHOOK_PATH};

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
    #[error(transparent)]
    Gateways(#[from] GatewayError),
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
