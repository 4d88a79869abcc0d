//! An in-process sandbox gateway: issues charge ids and QR credentials that point at the
//! service's own sandbox page, so orders can be created on a bare machine with no gateway.

use aggregates::ChargeId;

use super::port::{ChargeRequest, GatewayError, IssuedCharge, PaymentGateway};

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
    async fn create_charge(&self, request: &ChargeRequest) -> Result<IssuedCharge, GatewayError> {
        let charge_id = ChargeId::parse(&format!("ch_{}", uuid::Uuid::new_v4().simple()))
            .map_err(|error| GatewayError::Refused(error.to_string()))?;
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
