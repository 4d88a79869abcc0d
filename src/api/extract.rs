//! Request extractors whose rejections speak our error shape.

use axum::extract::{FromRef, FromRequest, FromRequestParts};
use axum::http::request::Parts;

use crate::auth::{authenticate, Principal, TokenKeys};
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body; malformed, mistyped or oversized bodies become `ApiError`s.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// A path parameter; undecodable paths become `ApiError`s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// Query parameters; unknown or mistyped ones become `ApiError`s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let keys: &TokenKeys = &state.tokens;
        Ok(Self(authenticate(&parts.headers, keys)?))
    }
}

impl Caller {
    /// Refuses a caller who is not an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.is_admin() {
            Ok(())
        } else {
            Err(crate::auth::AuthError::Forbidden.into())
        }
    }

    /// True when the caller may see resources of `user_id`.
    pub fn may_see(&self, user_id: &str) -> bool {
        self.0.is_admin() || self.0.user_id == user_id
    }
}
