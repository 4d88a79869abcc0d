//! The HTTP plumbing Alipay's and WeChat Pay's clients share: one reqwest client per gateway
//! with bounded timeouts and no redirects, and a retry loop for the failures where the
//! gateway cannot have acted or where repeating is harmless (every call of these two
//! protocols is keyed by our own order or refund number, so a repeat finds the first).

use std::time::Duration;

use crate::port::GatewayError;
use crate::WebhookHeaders;

/// How long establishing a connection (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole call may take, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries in all for one call, on timeouts, refused connections and 502/503/504.
pub const ATTEMPTS_MAX: u32 = 3;
/// The wait before the first repeat; it doubles before each further one.
pub const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(200);
/// Answers larger than this are refused unread: no gateway answer comes near it.
pub const ANSWER_BYTES_MAX: usize = 1024 * 1024;

/// An answer as received.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: WebhookHeaders,
    pub body: Vec<u8>,
}

pub fn build_client(
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        // A redirect would be a misconfigured base URL; following it could carry a signed
        // request somewhere else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| error.to_string())
}

/// Sends the request `build` makes (afresh for each try, so signatures with nonces stay
/// unique) until it gets an answer that is not 502/503/504, or the tries run out.
pub async fn send(
    provider: &'static str,
    mut build: impl FnMut() -> Result<reqwest::RequestBuilder, GatewayError>,
) -> Result<Answer, GatewayError> {
    let mut attempt: u32 = 1;
    let mut backoff = RETRY_BACKOFF_INITIAL;
    loop {
        let outcome = try_once(build()?).await;
        let repeat = match &outcome {
            Ok(answer) => matches!(answer.status, 502..=504),
            Err(GatewayError::Timeout | GatewayError::Unreachable(_)) => true,
            Err(_) => false,
        };
        match &outcome {
            Ok(answer) => tracing::info!(provider, status = answer.status, attempt, "gateway call"),
            Err(error) => tracing::info!(
                provider,
                attempt,
                error = error.code(),
                "gateway call failed"
            ),
        }
        if !repeat || attempt >= ATTEMPTS_MAX {
            return match outcome {
                Ok(answer) if matches!(answer.status, 502..=504) => Err(GatewayError::Upstream(
                    format!("HTTP {} after {attempt} tries", answer.status),
                )),
                other => other,
            };
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
        attempt = attempt.saturating_add(1);
    }
}

async fn try_once(request: reqwest::RequestBuilder) -> Result<Answer, GatewayError> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    if response
        .content_length()
        .is_some_and(|length| length > u64::try_from(ANSWER_BYTES_MAX).unwrap_or(u64::MAX))
    {
        return Err(GatewayError::Protocol("the answer is too large".to_owned()));
    }
    let body = response.bytes().await.map_err(transport)?;
    if body.len() > ANSWER_BYTES_MAX {
        return Err(GatewayError::Protocol("the answer is too large".to_owned()));
    }
    Ok(Answer {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// A transport failure, described without the URL (it may carry query parameters).
fn transport(error: reqwest::Error) -> GatewayError {
    if error.is_timeout() {
        return GatewayError::Timeout;
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    GatewayError::Unreachable(text)
}
