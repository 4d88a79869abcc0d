//! `ApiError`: every failure a client can see, mapped to HTTP in exactly one place.
//! The body is always `{"error": {"code": "...", "message": "..."}}`; codes are stable.

use aggregates::{OrderError, SubscriptionError};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cqrs_es::AggregateError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use gateways::{GatewayError, WebhookRejection};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is not well-formed (bad JSON syntax, bad header, bad query).
    #[error("{message}")]
    Malformed { code: &'static str, message: String },
    /// 401 or 403.
    #[error("{0}")]
    Auth(AuthError),
    /// 404: unknown, or not the caller's (we do not reveal which).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 405: the path exists, the method does not.
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// 413.
    #[error("the request body is too large")]
    TooLarge,
    /// 408: the body did not arrive in time.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// 415.
    #[error("expected a JSON body with content type application/json")]
    UnsupportedMediaType,
    /// 422: well-formed but invalid (unknown plan, bad amount, wrong field types).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// A webhook whose signature or body we refuse: 401 for signatures, 400 otherwise.
    #[error("{0}")]
    Webhook(WebhookRejection),
    /// The payment gateway failed us: 502, 503 or 504.
    #[error("{0}")]
    Gateway(GatewayError),
    /// 429: too many requests of this kind from this caller; `Retry-After` says when.
    #[error("{message}")]
    TooMany {
        code: &'static str,
        message: String,
        retry_after: std::time::Duration,
    },
    /// 503: the database or the gateway is unavailable; try again.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// 500: something we did not expect. The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed { .. } => StatusCode::BAD_REQUEST,
            Self::Auth(AuthError::Forbidden) => StatusCode::FORBIDDEN,
            Self::Auth(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Webhook(WebhookRejection::Signature(_)) => StatusCode::UNAUTHORIZED,
            Self::Webhook(WebhookRejection::Malformed(_)) => StatusCode::BAD_REQUEST,
            Self::Gateway(GatewayError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Self::Gateway(GatewayError::Unreachable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Gateway(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Invalid { code, .. }
            | Self::TooMany { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::Auth(error) => error.code(),
            Self::Webhook(rejection) => rejection.code(),
            Self::Gateway(error) => error.code(),
            Self::MethodNotAllowed => "request.method_not_allowed",
            Self::TooLarge => "request.too_large",
            Self::BodyTimeout => "request.body_timeout",
            Self::UnsupportedMediaType => "request.unsupported_media_type",
            Self::Internal(_) => "internal",
        }
    }

    /// What the client is told. A gateway failure's detail (its address, a TCP error, the
    /// provider's own text) is logged, never sent: the code says what kind it was.
    fn public_message(&self) -> String {
        match self {
            Self::Gateway(error) => match error {
                GatewayError::Timeout => "the payment gateway did not answer in time; try again",
                GatewayError::Unreachable(_) | GatewayError::Upstream(_) => {
                    "the payment gateway is unavailable; try again later"
                }
                GatewayError::Authentication | GatewayError::Protocol(_) => {
                    "the payment gateway could not serve this request; it has been logged"
                }
                GatewayError::Rejected { .. } => "the payment gateway refused the request",
            }
            .to_owned(),
            other => other.to_string(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn malformed(code: &'static str, message: impl Into<String>) -> Self {
        Self::Malformed {
            code,
            message: message.into(),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            Self::Unavailable { message, .. } => tracing::warn!(%message, "unavailable"),
            Self::Gateway(error) => tracing::warn!(code = self.code(), %error, "gateway failed"),
            _ => {
                if let Some(left_out) = crate::log_budget::REFUSALS.take() {
                    tracing::info!(code = self.code(), left_out, "request refused");
                }
            }
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::TooMany { retry_after, .. } = &self {
            // Whole seconds, rounded up: a client that waits this long is admitted.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code for programs and a sentence for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and unique, `<area>.<reason>` (e.g. `order.not_found`, `auth.missing_token`);
    /// each operation lists the codes it answers. A 500 is always `internal`.
    pub code: &'static str,
    /// For people; may change. Never carries a secret or an internal detail.
    pub message: String,
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        Self::Gateway(error)
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self::Auth(error)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable {
                    code: "service.database_unavailable",
                    message: "the database is unavailable; try again".to_owned(),
                }
            }
            other => Self::internal(other),
        }
    }
}

impl From<projections::ProjectionError> for ApiError {
    fn from(error: projections::ProjectionError) -> Self {
        Self::internal(error)
    }
}

impl From<projections::LogError> for ApiError {
    fn from(error: projections::LogError) -> Self {
        Self::internal(error)
    }
}

/// Domain rejections: state conflicts are 409, invalid input 422, unknown things 404.
impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        let code = error.code();
        let message = error.to_string();
        match error {
            OrderError::NotCreated | OrderError::UnknownRefund { .. } => {
                Self::NotFound { code, message }
            }
            OrderError::AlreadyCreated
            | OrderError::InvalidTransition { .. }
            | OrderError::NotYetExpired { .. }
            | OrderError::ChargeMismatch { .. }
            | OrderError::RefundAmountMismatch { .. }
            | OrderError::GatewayRefundMismatch { .. }
            | OrderError::RefundExceedsRefundable { .. }
            | OrderError::RefundAlreadyRequested { .. }
            | OrderError::TooManyRefunds { .. }
            | OrderError::Ledger(_) => Self::Conflict { code, message },
            OrderError::NotPurchasable { .. }
            | OrderError::ExpiryNotInFuture { .. }
            | OrderError::NonPositiveAmount
            | OrderError::CurrencyMismatch { .. }
            | OrderError::TextTooLong { .. } => Self::Invalid { code, message },
        }
    }
}

impl From<SubscriptionError> for ApiError {
    fn from(error: SubscriptionError) -> Self {
        let code = error.code();
        let message = error.to_string();
        match error {
            SubscriptionError::OrderNotActivated { .. } => Self::NotFound { code, message },
            SubscriptionError::NotYetDue { .. }
            | SubscriptionError::UserMismatch { .. }
            | SubscriptionError::TimeOutOfRange => Self::Conflict { code, message },
        }
    }
}

impl<E> From<AggregateError<E>> for ApiError
where
    E: std::error::Error + Into<ApiError>,
{
    fn from(error: AggregateError<E>) -> Self {
        match error {
            AggregateError::UserError(error) => error.into(),
            // Retries were exhausted: the client may simply try again.
            AggregateError::AggregateConflict => Self::Conflict {
                code: "request.concurrent_update",
                message: "the resource was changed concurrently; retry the request".to_owned(),
            },
            AggregateError::DatabaseConnectionError(error) => Self::Unavailable {
                code: "service.database_unavailable",
                message: format!(
                    "the database is unavailable; try again ({})",
                    kind_of(&*error)
                ),
            },
            AggregateError::DeserializationError(error)
            | AggregateError::UnexpectedError(error) => Self::internal(error),
        }
    }
}

fn kind_of(error: &(dyn std::error::Error + Send + Sync)) -> &'static str {
    if error.to_string().contains("timed out") {
        "timed out"
    } else {
        "connection error"
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(error) => {
                Self::invalid("request.invalid_body", error.body_text())
            }
            JsonRejection::JsonSyntaxError(error) => {
                Self::malformed("request.malformed_json", error.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            JsonRejection::BytesRejection(error) => {
                if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Self::TooLarge
                } else {
                    Self::malformed("request.unreadable_body", error.body_text())
                }
            }
            other => Self::malformed("request.malformed", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::malformed("request.malformed_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::malformed("request.malformed_query", rejection.body_text())
    }
}

/// Merchant webhook and feed failures, each to its one status and stable code.
impl From<crate::merchant::MerchantError> for ApiError {
    fn from(error: crate::merchant::MerchantError) -> Self {
        use crate::merchant::MerchantError as M;
        let message = error.to_string();
        match error {
            M::InvalidUrl => Self::invalid("webhook_endpoint.invalid_url", message),
            M::UnknownEventType(_) => Self::invalid("webhook_endpoint.unknown_event_type", message),
            M::TooManyEndpoints => Self::Conflict {
                code: "webhook_endpoint.too_many",
                message,
            },
            M::ConfiguredEndpoint => Self::Conflict {
                code: "webhook_endpoint.configured",
                message,
            },
            M::EndpointNotFound => Self::not_found("webhook_endpoint.not_found", message),
            M::DeliveryNotFound => Self::not_found("webhook_delivery.not_found", message),
            M::EndpointDeleted => Self::Conflict {
                code: "webhook_delivery.endpoint_deleted",
                message,
            },
            M::UnknownStatus(_) => Self::invalid("webhook_delivery.unknown_status", message),
            M::Data(detail) => Self::internal(detail),
            M::Database(error) => error.into(),
            M::Log(error) => error.into(),
        }
    }
}

/// Use-case failures, each to its one status and stable code.
impl From<crate::ledger::LedgerError> for ApiError {
    fn from(error: crate::ledger::LedgerError) -> Self {
        use crate::ledger::LedgerError as L;
        let message = error.to_string();
        match error {
            L::UnknownPlan => Self::invalid("plan.unknown", message),
            L::AmountOutOfRange { .. } => Self::invalid("order.amount_out_of_range", message),
            L::InvalidUser => Self::invalid("user.invalid", message),
            L::RateLimited { retry_after } => Self::TooMany {
                code: "order.rate_limited",
                message,
                retry_after,
            },
            L::TooManyOpenOrders { .. } => Self::Conflict {
                code: "order.too_many_open",
                message,
            },
            L::InvalidRefundAmount(_) => Self::invalid("refund.invalid_amount", message),
            L::NothingToRefund => Self::Conflict {
                code: "order.invalid_transition",
                message,
            },
            L::MalformedIdempotencyKey => Self::malformed("idempotency.malformed_key", message),
            L::IdempotencyKeyReused => Self::invalid("idempotency.key_reused", message),
            L::IdempotencyInProgress => Self::Conflict {
                code: "idempotency.in_progress",
                message,
            },
            L::Order(error) => error.into(),
            L::Gateway(error) => error.into(),
            L::RefundRefused => Self::Gateway(GatewayError::Rejected {
                code: Some("refund_failed".to_owned()),
                message: "the gateway refused the refund".to_owned(),
            }),
            L::Database(error) => error.into(),
            L::Log(error) => error.into(),
            L::Load(crate::store::load::LoadError::Database(error)) => error.into(),
            L::Load(error) => Self::internal(error),
        }
    }
}

/// Checkout refusals, each to its one status and stable code.
impl From<crate::checkout::CheckoutError> for ApiError {
    fn from(error: crate::checkout::CheckoutError) -> Self {
        use crate::checkout::CheckoutError as C;
        let message = error.to_string();
        match error {
            C::SessionNotFound => Self::not_found("checkout.session_not_found", message),
            C::SessionExpired => Self::not_found("checkout.session_expired", message),
            C::RedirectNotAllowed { .. } => Self::invalid("checkout.redirect_not_allowed", message),
            C::UnknownChannel => Self::invalid("channel.unknown", message),
            C::ActingForOthers => Self::Auth(AuthError::Forbidden),
            C::PlanRequired => Self::invalid("checkout.plan_required", message),
            C::ChannelRequired => Self::invalid("checkout.channel_required", message),
            C::NotThisCheckout { .. } => Self::invalid("checkout.not_this_checkout", message),
            C::TooManyOrders(_) => Self::Conflict {
                code: "checkout.too_many_orders",
                message,
            },
            C::OrderNotFound => Self::not_found("order.not_found", message),
            C::NotPayable => Self::Conflict {
                code: "order.not_payable",
                message,
            },
            C::Qr(error) => Self::internal(error),
            C::Random(error) => Self::internal(error),
            C::Ledger(error) => error.into(),
            C::Database(error) => error.into(),
        }
    }
}
