//! The API key check, accepting both ways Ping++'s SDKs send the secret key: `Bearer <key>`,
//! or HTTP Basic with the key as the user and an empty password.

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::error::SandboxError;
use gateways::Secret;

/// Ok when no key is configured or the request carries the configured one.
pub(super) fn check(expected: Option<&Secret>, headers: &HeaderMap) -> Result<(), SandboxError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(SandboxError::Unauthorized(
            "No API key provided: send Authorization: Bearer <key>",
        ))?;
    let presented =
        value
            .to_str()
            .ok()
            .and_then(presented_key)
            .ok_or(SandboxError::Unauthorized(
                "The Authorization header is neither Bearer nor Basic credentials",
            ))?;
    if same_bytes(presented.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(SandboxError::Unauthorized("Invalid API key provided"))
    }
}

fn presented_key(value: &str) -> Option<String> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(STANDARD.decode(credentials).ok()?).ok()?;
        let user = decoded
            .split_once(':')
            .map_or(decoded.as_str(), |(user, _)| user);
        return Some(user.to_owned());
    }
    None
}

/// Compares without stopping at the first difference, so timing does not reveal the key.
fn same_bytes(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0_u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}
