//! Assembling a running service from an open store: the gateway (Ping++ or the in-process
//! sandbox, by configuration), the views, the process managers and the router. `main` and the
//! integration tests both start the service through here.

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::TokenKeys;
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

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self.router();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
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
