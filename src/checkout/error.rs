//! Why a checkout request was refused. Mapped to HTTP once, in `crate::error`.

use super::qr::QrError;
use super::secret::RandomSourceFailed;
use crate::ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The link's secret opens no session (never issued, or mistyped).
    #[error("no checkout has this link")]
    SessionNotFound,
    /// The link was real but its time is up; the merchant must open a new checkout.
    #[error("this checkout link has expired")]
    SessionExpired,
    /// `success_url` or `cancel_url` is not an absolute URL on an allowed origin.
    #[error("{field} must be an http(s) URL on an origin listed in PAYLEDGER_CHECKOUT_ALLOWED_REDIRECTS")]
    RedirectNotAllowed { field: &'static str },
    #[error("channel must be alipay_qr or wx_pub_qr")]
    UnknownChannel,
    /// Only an admin may open a checkout for another user.
    #[error("only an admin token may open a checkout for another user")]
    ActingForOthers,
    /// The session names no plan and the page chose none.
    #[error("choose a plan")]
    PlanRequired,
    /// The session names no channel and the page chose none.
    #[error("choose a payment channel")]
    ChannelRequired,
    /// The session names its plan (or channel); the page may not pick another.
    #[error("this checkout sells {expected} only")]
    NotThisCheckout { expected: String },
    /// Each new code is an order; a link gets this many at most.
    #[error("this checkout has placed its {0} orders; open a new checkout")]
    TooManyOrders(i64),
    /// The order is not one this link placed (or does not exist).
    #[error("no such order")]
    OrderNotFound,
    /// The order has no code to show: it is paid, expired, failed or cancelled.
    #[error("this order is not waiting for payment")]
    NotPayable,
    #[error(transparent)]
    Qr(#[from] QrError),
    #[error(transparent)]
    Random(#[from] RandomSourceFailed),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the checkout's database failed: {0}")]
    Database(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::error::ApiError;

    #[test]
    fn every_refusal_has_its_status_and_stable_code() {
        let cases = [
            (
                CheckoutError::SessionNotFound,
                StatusCode::NOT_FOUND,
                "checkout.session_not_found",
            ),
            (
                CheckoutError::SessionExpired,
                StatusCode::NOT_FOUND,
                "checkout.session_expired",
            ),
            (
                CheckoutError::RedirectNotAllowed {
                    field: "success_url",
                },
                StatusCode::UNPROCESSABLE_ENTITY,
                "checkout.redirect_not_allowed",
            ),
            (
                CheckoutError::UnknownChannel,
                StatusCode::UNPROCESSABLE_ENTITY,
                "channel.unknown",
            ),
            (
                CheckoutError::ActingForOthers,
                StatusCode::FORBIDDEN,
                "auth.forbidden",
            ),
            (
                CheckoutError::PlanRequired,
                StatusCode::UNPROCESSABLE_ENTITY,
                "checkout.plan_required",
            ),
            (
                CheckoutError::ChannelRequired,
                StatusCode::UNPROCESSABLE_ENTITY,
                "checkout.channel_required",
            ),
            (
                CheckoutError::NotThisCheckout {
                    expected: "pro-monthly".to_owned(),
                },
                StatusCode::UNPROCESSABLE_ENTITY,
                "checkout.not_this_checkout",
            ),
            (
                CheckoutError::TooManyOrders(20),
                StatusCode::CONFLICT,
                "checkout.too_many_orders",
            ),
            (
                CheckoutError::OrderNotFound,
                StatusCode::NOT_FOUND,
                "order.not_found",
            ),
            (
                CheckoutError::NotPayable,
                StatusCode::CONFLICT,
                "order.not_payable",
            ),
            (
                CheckoutError::Ledger(LedgerError::UnknownPlan),
                StatusCode::UNPROCESSABLE_ENTITY,
                "plan.unknown",
            ),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status(), api.code()), (status, code));
        }
    }
}
