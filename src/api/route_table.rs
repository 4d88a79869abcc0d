//! The service's routes, each added once with its method and path. The router is built from
//! it and the same list is published, so the OpenAPI document's test compares the document
//! with what is really served instead of with a second hand-kept list that could drift.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;

use crate::state::AppState;

/// A router being built, with the (method, path) of every route added to it.
pub struct RouteTable {
    router: Router<AppState>,
    served: Vec<(Method, &'static str)>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            served: Vec::new(),
        }
    }

    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, path, get(handler))
    }

    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, path, post(handler))
    }

    pub fn delete<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::DELETE, path, delete(handler))
    }

    /// A route that needs more than its handler (a layer of its own); `route` must answer
    /// `method` only.
    pub fn add(
        mut self,
        method: Method,
        path: &'static str,
        route: MethodRouter<AppState>,
    ) -> Self {
        self.router = self.router.route(path, route);
        self.served.push((method, path));
        self
    }

    pub fn served(&self) -> &[(Method, &'static str)] {
        &self.served
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new()
    }
}
