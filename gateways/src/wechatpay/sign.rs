//! The `WECHATPAY2-SHA256-RSA2048` scheme: what a merchant signs for a request, what the
//! platform signs for an answer or a callback, and the Authorization header carrying it.

use rsa::RsaPrivateKey;

use crate::signature;

/// The scheme name, first in every Authorization header and in `Wechatpay-Signature-Type`.
pub const SCHEMA: &str = "WECHATPAY2-SHA256-RSA2048";

pub const TIMESTAMP_HEADER: &str = "wechatpay-timestamp";
pub const NONCE_HEADER: &str = "wechatpay-nonce";
pub const SIGNATURE_HEADER: &str = "wechatpay-signature";
pub const SERIAL_HEADER: &str = "wechatpay-serial";
pub const SIGNATURE_TYPE_HEADER: &str = "wechatpay-signature-type";

/// What a merchant signs: method, path with query, timestamp, nonce and body, each followed
/// by a newline (an empty body still gets its newline).
pub fn request_message(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut message = format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// What the platform signs for an answer or a callback: `timestamp\nnonce\nbody\n`.
pub fn platform_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// The fields of an Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce_str: String,
    pub signature: String,
    pub timestamp: i64,
    pub serial_no: String,
}

impl Authorization {
    /// Signs a request and fills in the header's fields.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &RsaPrivateKey,
        mchid: &str,
        serial_no: &str,
        method: &str,
        path_and_query: &str,
        timestamp: i64,
        nonce_str: &str,
        body: &[u8],
    ) -> Self {
        let message = request_message(method, path_and_query, timestamp, nonce_str, body);
        Self {
            mchid: mchid.to_owned(),
            nonce_str: nonce_str.to_owned(),
            signature: signature::sign(key, &message),
            timestamp,
            serial_no: serial_no.to_owned(),
        }
    }

    /// The header value.
    pub fn header_value(&self) -> String {
        format!(
            "{SCHEMA} mchid=\"{}\",nonce_str=\"{}\",signature=\"{}\",timestamp=\"{}\",serial_no=\"{}\"",
            self.mchid, self.nonce_str, self.signature, self.timestamp, self.serial_no
        )
    }

    /// Reads a header value (the sandbox checks what clients send). None when it is not
    /// this scheme or lacks a field.
    pub fn parse(value: &str) -> Option<Self> {
        let fields = value.strip_prefix(SCHEMA)?.strip_prefix(' ')?;
        let mut mchid = None;
        let mut nonce_str = None;
        let mut signature = None;
        let mut timestamp = None;
        let mut serial_no = None;
        for field in fields.split(',') {
            let (name, quoted) = field.trim().split_once('=')?;
            let value = quoted.strip_prefix('"')?.strip_suffix('"')?.to_owned();
            let slot = match name {
                "mchid" => &mut mchid,
                "nonce_str" => &mut nonce_str,
                "signature" => &mut signature,
                "timestamp" => &mut timestamp,
                "serial_no" => &mut serial_no,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(Self {
            mchid: mchid?,
            nonce_str: nonce_str?,
            signature: signature?,
            timestamp: timestamp?.parse().ok()?,
            serial_no: serial_no?,
        })
    }
}

/// A fresh nonce: 32 random hex characters, as the SDKs make them.
pub fn nonce() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_request_message_ends_every_line_with_a_newline() {
        assert_eq!(
            request_message("GET", "/v3/certificates", 1554208460, "593BEC0C", b""),
            b"GET\n/v3/certificates\n1554208460\n593BEC0C\n\n".to_vec()
        );
        assert_eq!(platform_message("1", "n", b"{}"), b"1\nn\n{}\n".to_vec());
    }

    #[test]
    fn the_header_round_trips_and_verifies() {
        let key = crate::test_keys::merchant();
        let authorization = Authorization::sign(
            key,
            "1900009191",
            "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
            "POST",
            "/v3/pay/transactions/native",
            1554208460,
            &nonce(),
            b"{\"a\":1}",
        );
        let value = authorization.header_value();
        assert!(value.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1900009191\","));
        let parsed = Authorization::parse(&value).unwrap();
        assert_eq!(parsed, authorization);
        let message = request_message(
            "POST",
            "/v3/pay/transactions/native",
            parsed.timestamp,
            &parsed.nonce_str,
            b"{\"a\":1}",
        );
        assert!(signature::verify(&key.to_public_key(), &message, &parsed.signature).is_ok());
        assert_eq!(Authorization::parse("Bearer x"), None);
        assert_eq!(
            Authorization::parse(&format!("{SCHEMA} mchid=\"1\",mchid=\"2\"")),
            None
        );
    }
}
