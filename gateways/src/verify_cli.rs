//! Checking a captured Alipay notification or WeChat Pay callback offline
//! (`payledger webhook verify --provider alipay|wechatpay`): when a delivery was refused, an
//! operator can tell a wrong key from an altered body or a stale capture. Exit statuses as for
//! Ping++: 0 genuine, 1 not genuine, 2 bad input (unusable key, unreadable headers or body).

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::keys::{self, KeyError};
use crate::port::WebhookRejection;
use crate::signature::SignatureError;
use crate::wechatpay::notify;
use crate::wechatpay::platform::PlatformKeys;
use crate::wechatpay::sign::SERIAL_HEADER;
use crate::WebhookHeaders;

pub use crate::pingpp::verify_cli::VerifyOutcome;

/// The exit status for input we cannot judge.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Input that allows no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadInput {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("header line {0:?} is not `Name: value`")]
    Header(String),
    #[error("the body is not a notification: {0}")]
    Body(String),
    #[error("{0} is not a representable time")]
    Time(i64),
}

impl BadInput {
    pub fn exit_code(&self) -> u8 {
        EXIT_BAD_INPUT
    }
}

fn verdict(outcome: Result<(), WebhookRejection>) -> Result<VerifyOutcome, BadInput> {
    match outcome {
        Ok(()) => Ok(VerifyOutcome::Genuine),
        Err(WebhookRejection::Signature(error)) => Ok(VerifyOutcome::NotGenuine(error)),
        Err(WebhookRejection::Malformed(reason)) => Err(BadInput::Body(reason)),
    }
}

/// Verifies a captured Alipay notification (the form-encoded body, byte for byte) with
/// Alipay's public key: PEM, bare base64 as the console shows it, or a certificate.
pub fn alipay(public_key_path: &Path, body: &[u8]) -> Result<VerifyOutcome, BadInput> {
    let key = keys::public_key_from_file(public_key_path)?;
    verdict(crate::alipay::notify::verify(&key, body).map(|_| ()))
}

/// Reads `Name: value` header lines.
pub fn header_lines(lines: &[String]) -> Result<WebhookHeaders, BadInput> {
    let mut headers = WebhookHeaders::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .filter(|(name, _)| !name.trim().is_empty())
            .ok_or_else(|| BadInput::Header(line.clone()))?;
        headers.push(name.trim(), value.trim());
    }
    Ok(headers)
}

/// Verifies a captured WeChat Pay callback with the platform key or certificate: the
/// signature over `timestamp\nnonce\nbody\n`, and the timestamp within five minutes of `at`
/// (unix seconds; default now). A certificate must carry the serial the callback names; a
/// bare key is taken to be the one it names. No replay check: a capture is judged alone.
pub fn wechatpay(
    public_key_path: &Path,
    headers: &WebhookHeaders,
    body: &[u8],
    at: Option<i64>,
) -> Result<VerifyOutcome, BadInput> {
    let material = keys::public_key_material_from_file(public_key_path)?;
    let named = headers
        .get(SERIAL_HEADER)
        .and_then(|serial| std::str::from_utf8(serial).ok())
        .unwrap_or_default()
        .trim()
        .to_owned();
    let serial = material
        .certificate_serial
        .clone()
        .unwrap_or_else(|| named.clone());
    let platform_keys = PlatformKeys::new().with(&serial, material.key);
    let now = match at {
        Some(seconds) => DateTime::from_timestamp(seconds, 0).ok_or(BadInput::Time(seconds))?,
        None => Utc::now(),
    };
    let outcome = notify::verify_signature(&platform_keys, headers, body, now)
        .map(|_| ())
        .map_err(WebhookRejection::from);
    verdict(outcome)
}

/// The reason line for a verdict, for people.
pub fn describe(outcome: &VerifyOutcome) -> String {
    match outcome {
        VerifyOutcome::Genuine => "genuine: the signature matches".to_owned(),
        VerifyOutcome::NotGenuine(SignatureError::Stale) => {
            "NOT genuine: the signed timestamp is 5 minutes or more from the time checked at \
             (pass --at with the capture's time)"
                .to_owned()
        }
        VerifyOutcome::NotGenuine(reason) => format!("NOT genuine: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::*;

    fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path)
    }

    fn read(path: &str) -> Vec<u8> {
        std::fs::read(fixture(path)).unwrap()
    }

    #[test]
    fn alipay_captures_get_a_verdict() {
        let key = fixture("alipay/notify_public_key_v1_bare.txt");
        let genuine = alipay(&key, &read("alipay/trade_status_sync.form")).unwrap();
        assert_eq!(genuine, VerifyOutcome::Genuine);
        assert_eq!(genuine.exit_code(), 0);
        let tampered = alipay(&key, &read("alipay/trade_status_sync_tampered.form")).unwrap();
        assert_eq!(
            tampered,
            VerifyOutcome::NotGenuine(SignatureError::Mismatch)
        );
        assert_eq!(tampered.exit_code(), 1);
        let certificate = fixture("alipay/alipay_cert_public_key_rsa2.crt");
        assert_eq!(
            alipay(&certificate, &read("alipay/trade_status_sync.form")).unwrap(),
            VerifyOutcome::NotGenuine(SignatureError::Mismatch)
        );
        let bad = alipay(&fixture("alipay/trade_status_sync.form"), b"").unwrap_err();
        assert_eq!(bad.exit_code(), EXIT_BAD_INPUT);
        assert!(matches!(alipay(&key, b"a=%zz"), Err(BadInput::Body(_))));
    }

    fn published_headers() -> Vec<String> {
        String::from_utf8(read("wechatpay/headers.txt"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn wechatpay_captures_get_a_verdict_at_their_time() {
        let certificate = fixture("wechatpay/platform_certificate.pem");
        let headers = header_lines(&published_headers()).unwrap();
        let body = read("wechatpay/body.json");
        let at = Some(1_624_523_846);
        assert_eq!(
            wechatpay(&certificate, &headers, &body, at).unwrap(),
            VerifyOutcome::Genuine
        );
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert_eq!(
            wechatpay(&certificate, &headers, &tampered, at).unwrap(),
            VerifyOutcome::NotGenuine(SignatureError::Mismatch)
        );
        let stale = wechatpay(&certificate, &headers, &body, None).unwrap();
        assert_eq!(stale, VerifyOutcome::NotGenuine(SignatureError::Stale));
        assert!(describe(&stale).contains("--at"));
        // The same key without its certificate is taken as the key the callback names.
        let pem =
            keys::public_key_to_pem(&keys::public_key_from_file(&certificate).unwrap()).unwrap();
        let key_file = std::env::temp_dir().join(format!(
            "payledger-verify-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&key_file, pem).unwrap();
        let outcome = wechatpay(&key_file, &headers, &body, at);
        let _ = std::fs::remove_file(&key_file);
        assert_eq!(outcome.unwrap(), VerifyOutcome::Genuine);
        assert!(matches!(
            header_lines(&["no colon".to_owned()]),
            Err(BadInput::Header(_))
        ));
    }
}
