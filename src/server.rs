//! Assembling a running service from an open store: the views, the process managers and the
//! router. `main` and the integration tests both start the service through here.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::auth::TokenKeys;
use crate::gateway::{LocalSandbox, PaymentGateway};
use crate::process::{membership, projection};
use crate::state::AppState;
use crate::store::Store;

/// A started service: its state and the background tasks that keep it current.
pub struct Service {
    pub state: AppState,
    tasks: Vec<JoinHandle<()>>,
}

impl Service {
    /// Starts the projector and the membership process on `store` (already migrated).
    pub async fn start(
        store: Store,
        tokens: TokenKeys,
        public_url: &str,
    ) -> Result<Self, projections::ProjectionError> {
        let gateway: Arc<dyn PaymentGateway> = Arc::new(LocalSandbox::new(public_url));
        let (views, projector_task) = projection::start(&store).await?;
        let state = AppState::new(store, views, tokens, gateway);
        let process_wake = Arc::new(Notify::new());
        let views = state.views.clone();
        let process_task = tokio::spawn(membership::follow(
            state.store.read.clone(),
            state.subscriptions.clone(),
            process_wake,
            move || views.wake(),
        ));
        Ok(Self {
            state,
            tasks: vec![projector_task, process_task],
        })
    }

    /// Serves the API on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = crate::router(self.state.clone());
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
