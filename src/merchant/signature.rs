//! The `Payledger-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw
//! body>")>`, with one `v1=` per secret in use (two while a secret is being rotated). The
//! receiver recomputes the MAC over the exact bytes it received and refuses a `t` further than
//! the tolerance from its clock, so a captured delivery cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header every delivery carries.
pub const SIGNATURE_HEADER: &str = "Payledger-Signature";
/// How far `t` may be from the receiver's clock, either way.
pub const TOLERANCE_SECONDS: i64 = 300;
/// The shortest secret accepted (trimmed): the length of the MAC.
pub const SECRET_BYTES_MIN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The hex MAC of `"<t>.<body>"` under `secret`.
pub fn mac_hex(secret: &[u8], t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body).finalize().into_bytes())
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length (longer ones are hashed): this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at `t`, one `v1=` per secret (the current one first).
pub fn header_value<S: AsRef<[u8]>>(secrets: &[S], t: i64, body: &[u8]) -> String {
    let mut value = format!("t={t}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&mac_hex(secret.as_ref(), t, body));
    }
    value
}

/// Why a delivery's signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    #[error("the header is not `t=<unix seconds>,v1=<hex>`: {0}")]
    Malformed(&'static str),
    #[error("t={t} is more than {TOLERANCE_SECONDS} s from now ({now})")]
    OutsideTolerance { t: i64, now: i64 },
    #[error("no v1 signature matches the secret")]
    Mismatch,
}

/// Checks a received header against `body` (the raw bytes) and `secret`, as of `now`.
pub fn verify(header: &str, body: &[u8], secret: &[u8], now: i64) -> Result<(), SignatureProblem> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureProblem::Malformed("a part without `=`"))?;
        match key {
            "t" if t.is_none() => {
                t = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureProblem::Malformed("t is not whole seconds"))?,
                );
            }
            "t" => return Err(SignatureProblem::Malformed("two t values")),
            "v1" => signatures.push(
                hex::decode(value).map_err(|_| SignatureProblem::Malformed("v1 is not hex"))?,
            ),
            // Other schemes may be added later; a receiver ignores what it does not know.
            _ => {}
        }
    }
    let t = t.ok_or(SignatureProblem::Malformed("no t"))?;
    if signatures.is_empty() {
        return Err(SignatureProblem::Malformed("no v1 signature"));
    }
    if now.abs_diff(t) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureProblem::OutsideTolerance { t, now });
    }
    // `verify_slice` compares in constant time.
    if signatures
        .iter()
        .any(|signature| mac(secret, t, body).verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureProblem::Mismatch)
    }
}

/// Why a captured delivery cannot be judged (`payledger webhook verify` exits 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapturedInputError {
    #[error("no `{SIGNATURE_HEADER}: ...` among the --header lines")]
    NoHeader,
    #[error("more than one `{SIGNATURE_HEADER}` header")]
    TwoHeaders,
    #[error("header line {0:?} is not `Name: value`")]
    BadLine(String),
    #[error(transparent)]
    Signature(SignatureProblem),
}

/// Judges a captured delivery offline: the `Payledger-Signature` among `header_lines`
/// (`Name: value`; a bare value is taken as the signature itself), the exact body, the
/// secret, and the time to judge `t` at. Ok(Err(..)) means "not genuine".
pub fn check_captured(
    header_lines: &[String],
    body: &[u8],
    secret: &[u8],
    now: i64,
) -> Result<Result<(), SignatureProblem>, CapturedInputError> {
    let mut found = None;
    for line in header_lines {
        let value = match line.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case(SIGNATURE_HEADER) => value,
            Some((name, _)) if !name.trim().is_empty() && !name.contains('=') => continue,
            Some(_) => return Err(CapturedInputError::BadLine(line.clone())),
            None if line.trim_start().starts_with("t=") => line.as_str(),
            None => return Err(CapturedInputError::BadLine(line.clone())),
        };
        if found.replace(value.trim().to_owned()).is_some() {
            return Err(CapturedInputError::TwoHeaders);
        }
    }
    let header = found.ok_or(CapturedInputError::NoHeader)?;
    match verify(&header, body, secret, now) {
        Err(SignatureProblem::Malformed(reason)) => Err(CapturedInputError::Signature(
            SignatureProblem::Malformed(reason),
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &[u8] = b"whsec_0123456789abcdef0123456789abcdef";
    const OLD: &[u8] = b"whsec_fedcba9876543210fedcba9876543210";

    #[test]
    fn the_mac_is_hmac_sha256_over_t_dot_body() {
        // RFC 4231 test case 2 shape: a known key and message give a known MAC.
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut expected = HmacSha256::new_from_slice(SECRET).unwrap();
        expected.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            mac_hex(SECRET, 1_700_000_000, b"{\"a\":1}"),
            hex::encode(expected.finalize().into_bytes())
        );
    }

    #[test]
    fn a_signed_body_verifies_within_the_tolerance_only() {
        let body = br#"{"id":"evt_1"}"#;
        let header = header_value(&[SECRET], 1_000, body);
        assert_eq!(verify(&header, body, SECRET, 1_000), Ok(()));
        assert_eq!(verify(&header, body, SECRET, 1_300), Ok(()));
        assert_eq!(
            verify(&header, body, SECRET, 1_301),
            Err(SignatureProblem::OutsideTolerance {
                t: 1_000,
                now: 1_301
            })
        );
        assert_eq!(
            verify(&header, b"{\"id\":\"evt_2\"}", SECRET, 1_000),
            Err(SignatureProblem::Mismatch)
        );
        assert_eq!(
            verify(&header, body, OLD, 1_000),
            Err(SignatureProblem::Mismatch)
        );
    }

    #[test]
    fn during_a_rotation_either_secret_verifies() {
        let body = b"{}";
        let header = header_value(&[SECRET, OLD], 5, body);
        assert_eq!(header.matches("v1=").count(), 2);
        assert_eq!(verify(&header, body, SECRET, 5), Ok(()));
        assert_eq!(verify(&header, body, OLD, 5), Ok(()));
    }

    #[test]
    fn a_captured_delivery_is_judged_from_its_header_lines() {
        let body = br#"{"id":"evt_7"}"#;
        let value = header_value(&[SECRET], 100, body);
        let lines = vec![
            "Content-Type: application/json".to_owned(),
            format!("payledger-signature: {value}"),
        ];
        assert_eq!(check_captured(&lines, body, SECRET, 100), Ok(Ok(())));
        assert_eq!(
            check_captured(std::slice::from_ref(&value), body, SECRET, 100),
            Ok(Ok(()))
        );
        assert_eq!(
            check_captured(&lines, body, OLD, 100),
            Ok(Err(SignatureProblem::Mismatch))
        );
        assert!(matches!(
            check_captured(&lines, body, SECRET, 1_000),
            Ok(Err(SignatureProblem::OutsideTolerance { .. }))
        ));
        assert_eq!(
            check_captured(&lines[..1], body, SECRET, 100),
            Err(CapturedInputError::NoHeader)
        );
        let twice = vec![lines[1].clone(), lines[1].clone()];
        assert_eq!(
            check_captured(&twice, body, SECRET, 100),
            Err(CapturedInputError::TwoHeaders)
        );
        assert!(matches!(
            check_captured(
                &["Payledger-Signature: v1=00".to_owned()],
                body,
                SECRET,
                100
            ),
            Err(CapturedInputError::Signature(_))
        ));
    }

    #[test]
    fn malformed_headers_are_named() {
        for header in [
            "",
            "t=x,v1=00",
            "v1=00",
            "t=1",
            "t=1,v1=zz",
            "t=1,t=2,v1=00",
        ] {
            assert!(
                matches!(
                    verify(header, b"", SECRET, 1),
                    Err(SignatureProblem::Malformed(_))
                ),
                "{header}"
            );
        }
    }
}
