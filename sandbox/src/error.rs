//! The sandbox's failures, answered in Ping++'s own error shape
//! (`{"error": {"type", "message", "code", "param"}}`), so the ledger's client reads a sandbox
//! refusal exactly as it reads the real gateway's.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use gateways::pingpp::wire::{ErrorBody, ErrorDetail};

/// Everything the sandbox can refuse or fail at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// 400: a request Ping++ would refuse (a bad field, an order number reused with other
    /// parameters, a refund larger than what is left).
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    /// 401: the API key is missing or wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404.
    #[error("No such {kind}: {id}")]
    NotFound { kind: &'static str, id: String },
    /// 409: the customer tries to pay a charge twice.
    #[error("charge {charge_id} has already been paid")]
    AlreadyPaid { charge_id: String },
    /// 409: the customer tries to pay after `time_expire`.
    #[error("charge {charge_id} expired at {expired_at} (unix seconds)")]
    Expired { charge_id: String, expired_at: i64 },
    /// 429: the in-memory store reached its bound.
    #[error("the sandbox holds at most {limit} {kind}; restart it to start afresh")]
    Full { kind: &'static str, limit: usize },
    /// 500: logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl SandboxError {
    pub(super) fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    pub(super) fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::AlreadyPaid { .. } | Self::Expired { .. } => StatusCode::CONFLICT,
            Self::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Ping++'s error `type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. }
            | Self::Unauthorized(_)
            | Self::NotFound { .. }
            | Self::AlreadyPaid { .. }
            | Self::Expired { .. } => "invalid_request_error",
            Self::Full { .. } => "rate_limit_error",
            Self::Internal(_) => "api_error",
        }
    }

    /// A stable code per variant, so tests and clients never match on messages.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Unauthorized(_) => "authentication_failed",
            Self::NotFound { .. } => "resource_missing",
            Self::AlreadyPaid { .. } => "charge_already_paid",
            Self::Expired { .. } => "charge_expired",
            Self::Full { .. } => "sandbox_full",
            Self::Internal(_) => "internal",
        }
    }

    fn param(&self) -> Option<String> {
        match self {
            Self::InvalidRequest { param, .. } => param.clone(),
            Self::NotFound { .. } => Some("id".to_owned()),
            Self::Unauthorized(_)
            | Self::AlreadyPaid { .. }
            | Self::Expired { .. }
            | Self::Full { .. }
            | Self::Internal(_) => None,
        }
    }

    /// The Ping++ error body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                error_type: self.error_type().to_owned(),
                message: self.to_string(),
                code: Some(self.code().to_owned()),
                param: self.param(),
            },
        }
    }
}

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "sandbox gateway failed");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Self::Unauthorized(_) = self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sandbox\""),
            );
        }
        response
    }
}
