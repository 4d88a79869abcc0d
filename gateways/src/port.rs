//! The gateway port. The domain never calls it: the server asks the gateway first and puts the
//! answer (charge id, QR credential, expiry, a verified webhook's facts) into commands as data.

use aggregates::{Channel, ChargeId, GatewayEventId, GatewayRefundId, Money, OrderId, RefundId};
use chrono::{DateTime, Utc};

use crate::signature::SignatureError;
use crate::WebhookHeaders;

/// The merchant order number a gateway sees for an order: the order id's 32 hex digits, within
/// every channel's rules (letters and digits, at most 32), and the same on every retry, so a
/// retried create cannot become a second payable order.
pub fn order_no_for(order_id: &OrderId) -> String {
    order_id.as_uuid().simple().to_string()
}

/// The order an order number belongs to, if it is one of ours.
pub fn order_id_from_order_no(order_no: &str) -> Option<OrderId> {
    if order_no.len() != 32 || !order_no.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    uuid::Uuid::parse_str(order_no).ok().map(OrderId::from_uuid)
}

/// Alipay and WeChat Pay know a charge by our order number (their own trade number only
/// exists once it is paid), so our charge id for them is that number behind `ch_`: a
/// retrieve or close needs nothing but the id. None for a number that is not one of ours.
pub fn charge_id_for_order_no(order_no: &str) -> Option<ChargeId> {
    order_id_from_order_no(order_no)?;
    ChargeId::parse(&format!("{CHARGE_ID_PREFIX}{order_no}")).ok()
}

/// The order number inside a charge id made by [`charge_id_for_order_no`].
pub fn order_no_of_charge(charge_id: &ChargeId) -> &str {
    let id = charge_id.as_str();
    id.strip_prefix(CHARGE_ID_PREFIX).unwrap_or(id)
}

const CHARGE_ID_PREFIX: &str = "ch_";
const REFUND_ID_PREFIX: &str = "re_";

/// Our refund number at Alipay (`out_request_no`) and WeChat Pay (`out_refund_no`): the
/// refund id's 32 hex digits, the same on every retry, so a retried refund is one refund.
pub fn refund_no_for(refund_id: &RefundId) -> String {
    refund_id.as_uuid().simple().to_string()
}

/// The refund a refund number belongs to, if it is one of ours.
pub fn refund_id_from_refund_no(refund_no: &str) -> Option<RefundId> {
    if refund_no.len() != 32 || !refund_no.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    uuid::Uuid::parse_str(refund_no)
        .ok()
        .map(RefundId::from_uuid)
}

/// Our gateway refund id for Alipay and WeChat Pay: our refund number behind `re_`.
pub fn gateway_refund_id_for_refund_no(refund_no: &str) -> Option<GatewayRefundId> {
    refund_id_from_refund_no(refund_no)?;
    GatewayRefundId::parse(&format!("{REFUND_ID_PREFIX}{refund_no}")).ok()
}

/// The refund number inside a gateway refund id made by [`gateway_refund_id_for_refund_no`].
pub fn refund_no_of(gateway_refund_id: &GatewayRefundId) -> &str {
    let id = gateway_refund_id.as_str();
    id.strip_prefix(REFUND_ID_PREFIX).unwrap_or(id)
}

/// What we ask a gateway to charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub order_id: OrderId,
    pub amount: Money,
    pub channel: Channel,
    /// Shown to the payer; at most 32 characters.
    pub subject: String,
    /// At most 128 characters.
    pub body: String,
    pub client_ip: String,
    pub expires_at: DateTime<Utc>,
}

/// A charge the gateway created: show `qr_code` to the customer until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCharge {
    pub charge_id: ChargeId,
    pub qr_code: String,
    pub expires_at: DateTime<Utc>,
}

/// A charge as the gateway reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeState {
    pub charge_id: ChargeId,
    pub order_no: String,
    pub amount: Money,
    pub paid: bool,
    pub time_paid: Option<DateTime<Utc>>,
    pub transaction_no: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}

/// What we ask a gateway to refund. Our refund id travels in the refund's metadata so its
/// webhook finds the refund it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub charge_id: ChargeId,
    pub refund_id: RefundId,
    pub amount: Money,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    Pending,
    Succeeded,
    Failed,
}

/// A refund the gateway accepted, with the answer that said how it stands: when that answer
/// already says the refund is done, the ledger settles it on this answer and keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRefund {
    pub gateway_refund_id: GatewayRefundId,
    pub state: RefundState,
    pub answer: QueryAnswer,
}

/// A charge as the gateway reports it now, with the answer that said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievedCharge {
    pub charge: ChargeState,
    pub answer: QueryAnswer,
}

/// A refund as the gateway reports it now, with the answer that said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievedRefund {
    pub state: RefundState,
    pub facts: RefundFacts,
    pub answer: QueryAnswer,
}

/// The protocols a kept query answer is read again by: which gateway's answer to which
/// query it is.
pub mod answer_protocols {
    /// Ping++ `GET /v1/charges/{id}`: unsigned.
    pub const PINGPP_CHARGE: &str = "pingpp.charge";
    /// Ping++ `GET /v1/charges/{ch}/refunds/{re}`, and the answer to `POST
    /// /v1/charges/{ch}/refunds`, which is the same refund object: unsigned.
    pub const PINGPP_REFUND: &str = "pingpp.refund";
    /// Alipay `alipay.trade.query`: signed inside the JSON over the `*_response` text.
    pub const ALIPAY_TRADE_QUERY: &str = "alipay.trade.query";
    /// Alipay `alipay.trade.fastpay.refund.query`: signed like every Alipay answer.
    pub const ALIPAY_REFUND_QUERY: &str = "alipay.trade.fastpay.refund.query";
    /// Alipay `alipay.trade.refund`, the refund request itself, which finishes the refund in
    /// its answer: signed like every Alipay answer. It names the trade and the total refunded
    /// on it so far, not the refund.
    pub const ALIPAY_REFUND: &str = "alipay.trade.refund";
    /// WeChat Pay v3 order query: signed in the `Wechatpay-*` headers like a callback.
    pub const WECHATPAY_TRANSACTION: &str = "wechatpay.transaction";
    /// WeChat Pay v3 refund query, and the answer to the refund request, which is the same
    /// refund object: signed like the order query.
    pub const WECHATPAY_REFUND: &str = "wechatpay.refund";

    /// Every protocol above.
    pub const ALL: [&str; 7] = [
        PINGPP_CHARGE,
        PINGPP_REFUND,
        ALIPAY_TRADE_QUERY,
        ALIPAY_REFUND_QUERY,
        ALIPAY_REFUND,
        WECHATPAY_TRANSACTION,
        WECHATPAY_REFUND,
    ];
}

/// A gateway's answer to a query or to a refund request, exactly as it came: what a fact the
/// ledger learns by asking (rather than by a notification) rests on, kept so that it can be read and, when
/// the gateway signs its answers, verified again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAnswer {
    /// One of [`answer_protocols`].
    pub protocol: &'static str,
    /// The response body, byte for byte.
    pub body: Vec<u8>,
    /// The response headers carrying its signature (lowercase names), values as received;
    /// empty where the signature is inside the body or there is none.
    pub signature_headers: Vec<(String, String)>,
    /// Hex SHA-256 of the key that verified the answer; None: the gateway does not sign its
    /// answers (Ping++).
    pub key_fingerprint: Option<String>,
}

impl QueryAnswer {
    /// An answer the gateway does not sign.
    pub fn unsigned(protocol: &'static str, body: Vec<u8>) -> Self {
        Self {
            protocol,
            body,
            signature_headers: Vec::new(),
            key_fingerprint: None,
        }
    }

    /// An answer verified with `key`, keeping the headers named in `signature_headers`.
    pub fn signed(
        protocol: &'static str,
        body: Vec<u8>,
        key: &rsa::RsaPublicKey,
        headers: &WebhookHeaders,
        signature_headers: &[&str],
    ) -> Self {
        let kept = WebhookEvidence::new(protocol, Some(key), headers, signature_headers);
        Self {
            protocol,
            body,
            signature_headers: kept.signature_headers,
            key_fingerprint: kept.key_fingerprint,
        }
    }
}

/// What closing (revoking) a charge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The charge can no longer be paid.
    Closed,
    /// Too late: it was paid first. The payment stands; refund it if it is unwanted.
    AlreadyPaid,
    /// The gateway has no such charge yet. Alipay only creates a trade once the buyer scans
    /// the QR code, so until the code's own expiry it may still be paid: keep polling until
    /// then instead of treating the order as closed.
    NotFound,
}

/// How the service fared with a webhook delivery, for the provider's own reply format.
#[derive(Debug, Clone, Copy)]
pub enum WebhookVerdict<'a> {
    /// Verified and durably recorded (or recognised as already recorded): stop resending.
    Recorded,
    /// Refused before anything was recorded.
    Refused(&'a WebhookRejection),
    /// Genuine but not recorded yet (storage down, order not ready): resend later.
    RetryLater,
}

/// The HTTP answer to a webhook delivery, exactly as the provider expects it, so the HTTP
/// layer never special-cases a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// A verified webhook, reduced to the facts the ledger acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    ChargeSucceeded {
        event_id: GatewayEventId,
        charge: ChargeState,
    },
    ChargeFailed {
        event_id: GatewayEventId,
        charge: ChargeState,
    },
    RefundSucceeded {
        event_id: GatewayEventId,
        refund: RefundFacts,
    },
    RefundFailed {
        event_id: GatewayEventId,
        refund: RefundFacts,
    },
    /// A type we do not act on (daily summaries, transfers): acknowledged and kept for audit.
    Other {
        event_id: GatewayEventId,
        event_type: String,
    },
}

impl GatewayEvent {
    pub fn event_id(&self) -> &GatewayEventId {
        match self {
            Self::ChargeSucceeded { event_id, .. }
            | Self::ChargeFailed { event_id, .. }
            | Self::RefundSucceeded { event_id, .. }
            | Self::RefundFailed { event_id, .. }
            | Self::Other { event_id, .. } => event_id,
        }
    }

    pub fn event_type(&self) -> &str {
        match self {
            Self::ChargeSucceeded { .. } => "charge.succeeded",
            Self::ChargeFailed { .. } => "charge.failed",
            Self::RefundSucceeded { .. } => "refund.succeeded",
            Self::RefundFailed { .. } => "refund.failed",
            Self::Other { event_type, .. } => event_type,
        }
    }
}

/// A refund object's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundFacts {
    pub gateway_refund_id: GatewayRefundId,
    pub charge_id: ChargeId,
    pub charge_order_no: Option<String>,
    /// Our id, from the refund's metadata; None for a refund we did not ask for.
    pub refund_id: Option<RefundId>,
    pub amount: Money,
    pub succeeded_at: Option<DateTime<Utc>>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}

/// Why a webhook was refused before anything was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed correctly but not an event we can read.
    #[error("the webhook body is not a readable event: {0}")]
    Malformed(String),
}

impl WebhookRejection {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Signature(error) => error.code(),
            Self::Malformed(_) => "webhook.malformed",
        }
    }
}

/// A failed gateway call, typed so the API can answer clearly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the payment gateway did not answer in time")]
    Timeout,
    #[error("the payment gateway is unreachable: {0}")]
    Unreachable(String),
    #[error("the payment gateway refused our credentials")]
    Authentication,
    #[error("the payment gateway refused the request: {message}")]
    Rejected {
        code: Option<String>,
        message: String,
    },
    #[error("the payment gateway failed: {0}")]
    Upstream(String),
    #[error("the payment gateway answered something we cannot read: {0}")]
    Protocol(String),
}

impl GatewayError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout => "gateway.timeout",
            Self::Unreachable(_) => "gateway.unreachable",
            Self::Authentication => "gateway.authentication",
            Self::Rejected { .. } => "gateway.rejected",
            Self::Upstream(_) => "gateway.upstream_error",
            Self::Protocol(_) => "gateway.protocol_error",
        }
    }
}

/// What is kept with a verified webhook's raw bytes so that it can be verified again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvidence {
    /// The protocol whose rules verified it: `pingpp`, `alipay` or `wechatpay`.
    pub protocol: &'static str,
    /// The headers that carry the signature (lowercase names), values as received.
    pub signature_headers: Vec<(String, String)>,
    /// Hex SHA-256 of the verifying key's SubjectPublicKeyInfo DER
    /// ([`crate::keys::fingerprint`]).
    pub key_fingerprint: Option<String>,
}

impl WebhookEvidence {
    /// The evidence of a webhook verified under `protocol` with `key`, keeping the headers
    /// named in `signature_headers`.
    pub fn new(
        protocol: &'static str,
        key: Option<&rsa::RsaPublicKey>,
        headers: &WebhookHeaders,
        signature_headers: &[&str],
    ) -> Self {
        let mut kept = Vec::new();
        for name in signature_headers {
            for value in headers.get_all(name) {
                kept.push((
                    (*name).to_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                ));
            }
        }
        Self {
            protocol,
            signature_headers: kept,
            key_fingerprint: key.and_then(|key| crate::keys::fingerprint(key).ok()),
        }
    }
}

/// A payment gateway.
#[async_trait::async_trait]
pub trait PaymentGateway: Send + Sync {
    /// "pingpp", "sandbox", ...: recorded with every webhook we keep.
    fn provider(&self) -> &'static str;

    /// Creates a charge for an order; returns its id and QR credential.
    async fn create_charge(&self, request: &ChargeRequest) -> Result<IssuedCharge, GatewayError>;

    /// The charge as the gateway sees it now (for reconciliation), with the exact answer.
    async fn retrieve_charge(&self, charge_id: &ChargeId) -> Result<RetrievedCharge, GatewayError>;

    /// Asks for (part of) a charge back.
    async fn create_refund(&self, request: &RefundRequest) -> Result<IssuedRefund, GatewayError>;

    /// A refund as the gateway sees it now (for a refund whose webhook never came), with the
    /// exact answer.
    async fn retrieve_refund(
        &self,
        charge_id: &ChargeId,
        gateway_refund_id: &GatewayRefundId,
    ) -> Result<RetrievedRefund, GatewayError>;

    /// A refund of `charge_id` found by our own refund id, for a refund whose gateway id was
    /// never recorded (the process stopped between reserving it and reading the gateway's
    /// answer). `None` when the gateway has no such refund: the request never reached it.
    async fn find_refund(
        &self,
        charge_id: &ChargeId,
        refund_id: &RefundId,
    ) -> Result<Option<RetrievedRefund>, GatewayError>;

    /// Closes an unpaid charge so its QR code can no longer be paid. Closing a closed charge
    /// again answers `Closed`: a pass that died after closing repeats it harmlessly.
    async fn close_charge(&self, charge_id: &ChargeId) -> Result<CloseOutcome, GatewayError>;

    /// Verifies a webhook over its exact raw bytes, then reads it. The single entry point
    /// for every provider; `headers` are as received, `body` untouched.
    fn verify_webhook(
        &self,
        headers: &WebhookHeaders,
        body: &[u8],
    ) -> Result<GatewayEvent, WebhookRejection>;

    /// What to keep of a webhook this gateway verified, besides its raw bytes, so that it can
    /// be verified again later: the protocol, the headers carrying the signature, and the
    /// fingerprint of the key that verified it.
    fn webhook_evidence(&self, headers: &WebhookHeaders) -> WebhookEvidence;

    /// The answer the provider expects for a delivery that fared as `verdict`. Answer
    /// `Recorded` only once the event is durable: every provider stops resending on it.
    fn webhook_reply(&self, verdict: WebhookVerdict<'_>) -> WebhookReply;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn order_numbers_round_trip_and_fit_every_channel() {
        let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
        let order_no = order_no_for(&order_id);
        assert_eq!(order_no.len(), 32);
        assert!(order_no.bytes().all(|byte| byte.is_ascii_alphanumeric()));
        assert_eq!(order_id_from_order_no(&order_no), Some(order_id));
        assert_eq!(order_id_from_order_no("2015d019f7cf6c0d"), None);
        assert_eq!(order_id_from_order_no("../../etc/passwd"), None);
    }

    #[test]
    fn charge_and_refund_ids_carry_our_numbers_both_ways() {
        let order_no = order_no_for(&OrderId::from_uuid(uuid::Uuid::new_v4()));
        let charge_id = charge_id_for_order_no(&order_no).unwrap();
        assert_eq!(order_no_of_charge(&charge_id), order_no);
        assert_eq!(charge_id_for_order_no("20190815155618536-564-57"), None);

        let refund_id = RefundId::from_uuid(uuid::Uuid::new_v4());
        let refund_no = refund_no_for(&refund_id);
        assert_eq!(refund_id_from_refund_no(&refund_no), Some(refund_id));
        let gateway_refund_id = gateway_refund_id_for_refund_no(&refund_no).unwrap();
        assert_eq!(refund_no_of(&gateway_refund_id), refund_no);
    }

    /// Codes are what clients and dashboards branch on: each one names one failure.
    #[test]
    fn every_error_code_is_distinct() {
        use crate::keys::KeyError;
        use crate::signature::SignatureError;
        use crate::yuan::AmountError;

        let signature = [
            SignatureError::Missing,
            SignatureError::NotBase64,
            SignatureError::Mismatch,
            SignatureError::Stale,
            SignatureError::Replayed,
            SignatureError::UnknownKey,
            SignatureError::Undecryptable,
            SignatureError::Unsupported,
            SignatureError::Ambiguous,
        ];
        let mut codes: Vec<&str> = signature.iter().map(|error| error.code()).collect();
        codes.push(WebhookRejection::Malformed(String::new()).code());
        codes.extend(
            [
                GatewayError::Timeout,
                GatewayError::Unreachable(String::new()),
                GatewayError::Authentication,
                GatewayError::Rejected {
                    code: None,
                    message: String::new(),
                },
                GatewayError::Upstream(String::new()),
                GatewayError::Protocol(String::new()),
            ]
            .iter()
            .map(GatewayError::code),
        );
        codes.extend(
            [
                KeyError::Unreadable {
                    path: String::new(),
                    reason: String::new(),
                },
                KeyError::NotAPrivateKey,
                KeyError::NotAPublicKey,
                KeyError::Generate(String::new()),
            ]
            .iter()
            .map(KeyError::code),
        );
        codes.extend(
            [
                AmountError::Empty,
                AmountError::NotDecimal(String::new()),
                AmountError::TooPrecise(String::new()),
                AmountError::Overflow(String::new()),
                AmountError::Negative(-1),
            ]
            .iter()
            .map(AmountError::code),
        );
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len(), "{codes:?}");
    }
}
