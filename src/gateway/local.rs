//! An in-process sandbox gateway: issues charge ids and QR credentials that point at the
//! service's own sandbox page, so orders can be created on a bare machine with no gateway.

use aggregates::ChargeId;

use aggregates::ChargeId as Id;
use axum::http::HeaderMap;

use super::port::{
    ChargeRequest, ChargeState, GatewayError, GatewayEvent, IssuedCharge, IssuedRefund,
    PaymentGateway, RefundRequest, WebhookRejection,
};

/// Issues sandbox charges under `public_url`.
#[derive(Debug, Clone)]
pub struct LocalSandbox {
    public_url: String,
}

impl LocalSandbox {
    pub fn new(public_url: &str) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl PaymentGateway for LocalSandbox {
    fn provider(&self) -> &'static str {
        "local"
    }

    async fn retrieve_charge(&self, _charge_id: &Id) -> Result<ChargeState, GatewayError> {
        Err(GatewayError::Unreachable(
            "the local issuer keeps no charges".to_owned(),
        ))
    }

    async fn create_refund(&self, _request: &RefundRequest) -> Result<IssuedRefund, GatewayError> {
        Err(GatewayError::Unreachable(
            "the local issuer cannot refund".to_owned(),
        ))
    }

    fn verify_webhook(
        &self,
        _headers: &HeaderMap,
        _body: &[u8],
    ) -> Result<GatewayEvent, WebhookRejection> {
        Err(WebhookRejection::Malformed(
            "the local issuer sends no webhooks".to_owned(),
        ))
    }

    async fn create_charge(&self, request: &ChargeRequest) -> Result<IssuedCharge, GatewayError> {
        let charge_id = ChargeId::parse(&format!("ch_{}", uuid::Uuid::new_v4().simple()))
            .map_err(|error| GatewayError::Protocol(error.to_string()))?;
        let qr_code = format!(
            "{}/sandbox/charges/{}?channel={}",
            self.public_url,
            charge_id,
            request.channel.as_str()
        );
        Ok(IssuedCharge {
            charge_id,
            qr_code,
            expires_at: request.expires_at,
        })
    }
}
