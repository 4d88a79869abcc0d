//! The client side of the API and the sandbox, as the workloads call them. Every request goes
//! to the loopback server only and has a timeout.

use std::time::Duration;

use anyhow::{bail, Context};
use payledger::auth::{Role, TokenKeys};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The longest any single request may take (long polls ask for at most 5 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const POSITION_HEADER: &str = "x-ledger-position";

/// A keep-alive client for one task; never goes through a proxy.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(4)
        // Below the server's idle keep-alive limit (its 10 s header read timeout), so no
        // request goes out on a connection the server is closing.
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()?)
}

/// The server under test and the key its tokens are signed with.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    keys: TokenKeys,
}

/// What creating an order returned.
#[derive(Debug, Clone)]
pub struct CreatedOrder {
    pub id: String,
    pub charge_id: String,
    /// The log position the answer reflects (`X-Ledger-Position`).
    pub position: i64,
}

/// The outcome of one order poll.
#[derive(Debug)]
pub struct Poll {
    pub status: StatusCode,
    pub order_status: Option<String>,
    pub position: Option<i64>,
    pub etag: Option<String>,
}

impl Api {
    pub fn new(base: String, keys: TokenKeys) -> Self {
        Self { base, keys }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn token(&self, user: &str, role: Role) -> anyhow::Result<String> {
        Ok(self
            .keys
            .issue(user, role, chrono::Duration::hours(4), chrono::Utc::now())?)
    }

    /// `POST /v1/orders`; `Ok(Err(status))` when the server refused.
    pub async fn create_order(
        &self,
        client: &reqwest::Client,
        token: &str,
        plan_id: &str,
    ) -> anyhow::Result<Result<CreatedOrder, StatusCode>> {
        let response = client
            .post(self.url("/v1/orders"))
            .bearer_auth(token)
            .json(&json!({ "plan_id": plan_id, "channel": "alipay_qr" }))
            .send()
            .await?;
        let status = response.status();
        if status != StatusCode::CREATED {
            return Ok(Err(status));
        }
        let position = position_of(response.headers()).unwrap_or(0);
        let body: Value = response.json().await?;
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .context("a created order has no id")?
            .to_owned();
        let qr_code = body
            .get("qr_code")
            .and_then(Value::as_str)
            .context("a created order has no qr_code")?;
        Ok(Ok(CreatedOrder {
            id,
            charge_id: charge_id_from_qr(qr_code)?,
            position,
        }))
    }

    /// The customer presses *Pay* in the sandbox; `knobs` is a query string or empty.
    pub async fn pay(
        &self,
        client: &reqwest::Client,
        charge_id: &str,
        knobs: &str,
    ) -> anyhow::Result<StatusCode> {
        let mut url = self.url(&format!("/sandbox/charges/{charge_id}/pay"));
        if !knobs.is_empty() {
            url.push('?');
            url.push_str(knobs);
        }
        let response = client.post(url).send().await?;
        Ok(response.status())
    }

    /// `GET /v1/orders/{id}` with an optional query and `If-None-Match`.
    pub async fn poll(
        &self,
        client: &reqwest::Client,
        token: &str,
        order_id: &str,
        query: &str,
        if_none_match: Option<&str>,
    ) -> anyhow::Result<Poll> {
        let mut url = self.url(&format!("/v1/orders/{order_id}"));
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let mut request = client.get(url).bearer_auth(token);
        if let Some(etag) = if_none_match {
            request = request.header("if-none-match", etag);
        }
        let response = request.send().await?;
        let status = response.status();
        let position = position_of(response.headers());
        let etag = response
            .headers()
            .get("etag")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let order_status = if status == StatusCode::OK {
            let body: Value = response.json().await?;
            body.get("status")
                .and_then(Value::as_str)
                .map(str::to_owned)
        } else {
            // Read the body so the connection can be reused.
            let _ = response.bytes().await?;
            None
        };
        Ok(Poll {
            status,
            order_status,
            position,
            etag,
        })
    }

    /// Webhooks the sandbox delivered so far (answered 2xx).
    pub async fn delivered_webhooks(&self, client: &reqwest::Client) -> anyhow::Result<u64> {
        let response = client
            .get(self.url("/sandbox/deliveries"))
            .bearer_auth(crate::server::SANDBOX_API_KEY)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("GET /sandbox/deliveries answered {}", response.status());
        }
        let body: Value = response.json().await?;
        body.get("delivered")
            .and_then(Value::as_u64)
            .context("/sandbox/deliveries has no `delivered` count")
    }

    /// The charge as the sandbox stores it (`GET /sandbox/v1/charges/{id}`).
    pub async fn sandbox_charge(
        &self,
        client: &reqwest::Client,
        charge_id: &str,
    ) -> anyhow::Result<Value> {
        let response = client
            .get(self.url(&format!("/sandbox/v1/charges/{charge_id}")))
            .bearer_auth(crate::server::SANDBOX_API_KEY)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("GET the sandbox charge answered {}", response.status());
        }
        Ok(response.json().await?)
    }
}

fn position_of(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    headers
        .get(POSITION_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// The sandbox's QR code is its charge page, `.../sandbox/charges/{charge id}[?...]`.
pub fn charge_id_from_qr(qr_code: &str) -> anyhow::Result<String> {
    let path = qr_code.split(['?', '#']).next().unwrap_or(qr_code);
    let id = path.rsplit('/').next().unwrap_or_default();
    if !id.starts_with("ch_") {
        bail!("no charge id in the QR code {qr_code}");
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::charge_id_from_qr;

    #[test]
    fn finds_the_charge_in_a_qr_code() {
        let id = charge_id_from_qr("http://127.0.0.1:1/sandbox/charges/ch_abc123?x=1");
        assert_eq!(id.ok().as_deref(), Some("ch_abc123"));
        assert!(charge_id_from_qr("http://127.0.0.1:1/elsewhere").is_err());
    }
}
