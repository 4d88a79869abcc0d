//! Checking a captured webhook offline (`payledger webhook verify`): when a delivery was
//! refused, an operator can tell a wrong key from a body that was altered on its way.

use std::path::Path;

use super::keys::{self, KeyError};
use super::signature::{self, SignatureError};

/// The exit status when the key itself could not be loaded (neither verdict applies).
pub const EXIT_KEY_ERROR: u8 = 2;

/// The verdict on a captured webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// The signature matches the body's exact bytes under the given key.
    Genuine,
    /// It does not, and why.
    NotGenuine(SignatureError),
}

impl VerifyOutcome {
    /// 0 for genuine, 1 for not genuine; see `EXIT_KEY_ERROR` for an unusable key.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Genuine => 0,
            Self::NotGenuine(_) => 1,
        }
    }
}

/// Verifies `body` (the exact bytes captured, never re-serialised) against the base64
/// `signature_b64` with the public key in the PEM file. Surrounding whitespace around the
/// signature is ignored, so it can be pasted or read from a file ending in a newline.
pub fn verify_captured(
    public_key_pem_path: &Path,
    signature_b64: &str,
    body: &[u8],
) -> Result<VerifyOutcome, KeyError> {
    let public_key = keys::public_key_from_file(public_key_pem_path)?;
    Ok(match signature::verify(&public_key, body, signature_b64) {
        Ok(()) => VerifyOutcome::Genuine,
        Err(error) => VerifyOutcome::NotGenuine(error),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pingpp")
            .join(name)
    }

    fn signature() -> String {
        std::fs::read_to_string(fixture("signature.b64")).unwrap()
    }

    fn verdict(body_file: &str) -> VerifyOutcome {
        let body = std::fs::read(fixture(body_file)).unwrap();
        verify_captured(&fixture("public_key.pem"), &signature(), &body).unwrap()
    }

    #[test]
    fn the_genuine_capture_is_genuine() {
        let outcome = verdict("body.raw");
        assert_eq!(outcome, VerifyOutcome::Genuine);
        assert_eq!(outcome.exit_code(), 0);
    }

    #[test]
    fn altered_captures_are_not_genuine() {
        for body_file in ["body_tampered.raw", "body_trailing_newline.raw"] {
            let outcome = verdict(body_file);
            assert_eq!(
                outcome,
                VerifyOutcome::NotGenuine(SignatureError::Mismatch),
                "{body_file}"
            );
            assert_eq!(outcome.exit_code(), 1);
        }
    }

    #[test]
    fn a_bad_signature_is_not_genuine() {
        let body = std::fs::read(fixture("body.raw")).unwrap();
        let key = fixture("public_key.pem");
        assert_eq!(
            verify_captured(&key, "%%%", &body).unwrap(),
            VerifyOutcome::NotGenuine(SignatureError::NotBase64)
        );
        assert_eq!(
            verify_captured(&key, "  \n", &body).unwrap(),
            VerifyOutcome::NotGenuine(SignatureError::Missing)
        );
    }

    #[test]
    fn an_unusable_key_is_an_error_not_a_verdict() {
        let body = std::fs::read(fixture("body.raw")).unwrap();
        let missing = verify_captured(&fixture("no_such_key.pem"), &signature(), &body);
        assert!(
            matches!(missing, Err(KeyError::Unreadable { .. })),
            "{missing:?}"
        );
        let not_a_key = verify_captured(&fixture("body.raw"), &signature(), &body);
        assert_eq!(not_a_key, Err(KeyError::NotAPublicKey));
    }
}
